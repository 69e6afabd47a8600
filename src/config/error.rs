//! Why the settings could not be read: a configuration file that cannot be read or is wrong
//! (with the line and column of what is wrong), or flags that do not go together. Every one
//! is a usage error: the program exits with code 2.

use std::path::{Path, PathBuf};

use crate::source::redact::mask_secrets;

/// A usage error in the configuration. Its text, `{}` and `{:?}` alike, never holds a password
/// from a source URL.
pub enum ConfigError {
    /// The file named by `--config` could not be read.
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a value in it is wrong.
    File {
        path: PathBuf,
        /// Where the wrong value (or the syntax error) is; `None` for the file as a whole.
        at: Option<Position>,
        message: String,
    },
    /// Flags that cannot be used together, or settings this build cannot serve.
    Usage(String),
}

/// A place in a text file, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    /// In characters, not bytes.
    pub column: usize,
}

impl Position {
    /// The line and column of byte `offset` of `text` (clamped to the text).
    pub fn of(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl ConfigError {
    /// A wrong value at byte `offset` of the file's `text`.
    pub fn at(path: &Path, text: &str, offset: usize, message: impl Into<String>) -> Self {
        Self::File {
            path: path.to_owned(),
            at: Some(Position::of(text, offset)),
            message: message.into(),
        }
    }

    /// Something wrong with the file as a whole.
    pub fn in_file(path: &Path, message: impl Into<String>) -> Self {
        Self::File {
            path: path.to_owned(),
            at: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Self::Read { path, source } => {
                format!(
                    "cannot read the configuration file {}: {source}",
                    path.display()
                )
            }
            // `FILE:LINE:COLUMN: reason`, the form compilers use and editors jump to.
            Self::File {
                path,
                at: Some(at),
                message,
            } => format!("{}:{}:{}: {message}", path.display(), at.line, at.column),
            Self::File {
                path,
                at: None,
                message,
            } => format!("{}: {message}", path.display()),
            Self::Usage(message) => message.clone(),
        };
        // Masked here, once, so that no message quoting a source can leak its password.
        f.write_str(&mask_secrets(&text))
    }
}

impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ConfigError")
            .field(&self.to_string())
            .finish()
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(Position::of(text, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::of(text, 4), Position { line: 1, column: 5 });
        assert_eq!(Position::of(text, 6), Position { line: 2, column: 1 });
        // `é` is two bytes and one column.
        assert_eq!(Position::of(text, 10), Position { line: 2, column: 4 });
        // Inside `é`, or past the end: clamped.
        assert_eq!(Position::of(text, 8), Position { line: 2, column: 2 });
        assert_eq!(Position::of(text, 99), Position { line: 3, column: 1 });
    }

    #[test]
    fn messages_name_file_line_and_column_and_hide_passwords() {
        let error = ConfigError::at(
            Path::new("cams.toml"),
            "x = 1\nsource = 2\n",
            15,
            "bad source `exec:ffmpeg -i rtsp://admin:hunter2@cam/1 -f mjpeg -`",
        );
        assert_eq!(
            error.to_string(),
            "cams.toml:2:10: bad source `exec:ffmpeg -i rtsp://admin:***@cam/1 -f mjpeg -`"
        );
        assert!(!format!("{error:?}").contains("hunter2"), "{error:?}");
        let error = ConfigError::in_file(Path::new("cams.toml"), "no streams");
        assert_eq!(error.to_string(), "cams.toml: no streams");
    }
}
