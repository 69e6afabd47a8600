//! The server's key for signed links (`signing_key_file` in the configuration): read from its
//! file, or made and written there when the file does not exist yet.
//!
//! The file holds the key as hexadecimal text, 64 digits (32 random bytes from the operating
//! system) on one line, written with mode 0600. A key written by hand may be longer; anything
//! shorter than [`MIN_KEY_BYTES`] is refused, so is anything but hex digits and a trailing
//! line break. The key never appears in logs or messages: its [`Debug`] says only its length.

use std::fmt;
use std::io::{ErrorKind, Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use password_hash::rand_core::{OsRng, RngCore as _};

/// HMAC-SHA256's own output size; RFC 2104 §3: keys shorter than the output weaken it.
pub const MIN_KEY_BYTES: usize = 32;
/// Bytes of a key framecast makes.
const NEW_KEY_BYTES: usize = 32;
/// More than any key written by hand: a path naming something else is refused unread.
const MAX_FILE_BYTES: u64 = 4096;

/// A secret key for HMAC-SHA256.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({} bytes)", self.0.len())
    }
}

/// Why the key file cannot be used; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("signing_key_file {}: cannot read it: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signing_key_file {}: cannot create it: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signing_key_file {}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

impl SigningKey {
    /// A key from its bytes; `None` when shorter than [`MIN_KEY_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() >= MIN_KEY_BYTES).then(|| Self(bytes.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key in `path`; when there is no such file, a new random key written there first
    /// (mode 0600, never over an existing file).
    pub fn load_or_create(path: &Path) -> Result<Self, SigningKeyError> {
        match read_limited(path) {
            Ok(text) => Self::from_text(&text).map_err(|reason| SigningKeyError::Invalid {
                path: path.to_owned(),
                reason,
            }),
            Err(error) if error.kind() == ErrorKind::NotFound => Self::create(path),
            Err(source) => Err(SigningKeyError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Makes a key and writes it to a file that must not exist yet.
    fn create(path: &Path) -> Result<Self, SigningKeyError> {
        let create_error = |source| SigningKeyError::Create {
            path: path.to_owned(),
            source,
        };
        let mut bytes = [0u8; NEW_KEY_BYTES];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| create_error(std::io::Error::other(e.to_string())))?;
        let mut text = hex(&bytes);
        text.push('\n');
        // create_new: two processes starting at once never overwrite each other's key; the
        // loser reads the winner's below.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                file.sync_all()
            });
        match written {
            Ok(()) => Ok(Self(bytes.to_vec())),
            Err(error) if error.kind() == ErrorKind::AlreadyExists => Self::load_or_create(path),
            Err(error) => Err(create_error(error)),
        }
    }

    /// Parses the file's text: hex digits, at least [`MIN_KEY_BYTES`] bytes' worth, and
    /// nothing else but surrounding whitespace.
    pub fn from_text(text: &str) -> Result<Self, String> {
        let digits = text.trim();
        if digits.is_empty() {
            return Err(format!(
                "empty; delete it to have a new key made, or write {} hex digits",
                MIN_KEY_BYTES * 2
            ));
        }
        if !digits.len().is_multiple_of(2) || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("not a key: expected one line of hex digits (an even number)".into());
        }
        let bytes: Vec<u8> = digits
            .as_bytes()
            .chunks_exact(2)
            .map(|pair| (hex_value(pair[0]) << 4) | hex_value(pair[1]))
            .collect();
        Self::from_bytes(&bytes).ok_or_else(|| {
            format!(
                "the key is too short: {} bytes, at least {MIN_KEY_BYTES} needed ({} hex digits)",
                bytes.len(),
                MIN_KEY_BYTES * 2
            )
        })
    }
}

/// Whether others than the owner may read the file at `path` (a key written by hand with a
/// loose mode): worth a warning at start.
pub fn readable_by_others(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0)
}

fn read_limited(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    let file = std::fs::File::open(path)?;
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("larger than {MAX_FILE_BYTES} bytes: not a key file"),
        ));
    }
    Ok(text)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of one hex digit (the caller checked it is one).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("framecast-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn a_missing_file_gets_a_new_key_with_mode_0600_and_reads_back() {
        let path = scratch("new.key");
        let made = SigningKey::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(made.as_bytes().len(), 32);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text.len(), 65, "64 hex digits and a line break: {text:?}");
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!readable_by_others(&path));
        let again = SigningKey::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, made, "the same key on the next start");
        let other = SigningKey::load_or_create(&scratch("other.key"));
        assert_ne!(other.ok(), Some(made), "random keys");
    }

    #[test]
    fn short_or_malformed_keys_are_refused_naming_the_file() {
        for (text, why) in [
            ("", "empty"),
            ("abcd\n", "too short: 2 bytes"),
            (&"ab".repeat(31), "too short: 31 bytes"),
            ("xyz", "not a key"),
            (&"a".repeat(65), "not a key"),
        ] {
            let path = scratch("bad.key");
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
            let error = SigningKey::load_or_create(&path)
                .expect_err(text)
                .to_string();
            assert!(error.contains(why), "{text:?}: {error}");
            assert!(error.contains("bad.key"), "{error}");
        }
        let long = SigningKey::from_text(&format!("  {}\n", "0F".repeat(48)));
        assert_eq!(long.map(|k| k.as_bytes().len()), Ok(48));
    }

    #[test]
    fn an_unreadable_path_is_refused_naming_it() {
        let dir = scratch("a-directory");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let error = SigningKey::load_or_create(&dir)
            .expect_err("a directory")
            .to_string();
        assert!(error.contains("a-directory"), "{error}");
    }

    #[test]
    fn the_key_stays_out_of_debug_output() {
        let key = SigningKey::from_bytes(&[0x5A; 32]).unwrap_or_else(|| panic!("a key"));
        assert_eq!(format!("{key:?}"), "SigningKey(32 bytes)");
    }
}
