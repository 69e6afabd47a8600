//! The configuration file (`--config`, TOML): its model, and its resolution into
//! [`Settings`] with the flags given beside it. Keys mirror the flags; unknown keys are
//! refused. Every value is checked here, and a wrong one is reported with the line and column
//! where it is written.
//!
//! Which value wins, from strongest to weakest: a stream's own key; a flag (or its
//! environment variable) given beside `--config`; the key at the top of the file; the
//! built-in default.

use std::collections::HashMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::access::{AccessTables, OriginsText, TokenTable, UserTable};
use super::error::{ConfigError, Position};
use super::settings::{
    FPS_RANGE, HLS_IDLE_STOP_SECONDS_RANGE, HLS_PART_SECONDS_RANGE, HLS_SEGMENT_SECONDS_RANGE,
    HLS_WINDOW_RANGE, HlsMode, JPEG_QUALITY_RANGE, JPEG_THREADS_RANGE,
    MAX_CONNECTIONS_PER_ADDRESS_RANGE, MAX_VIEWERS_RANGE, MJPEG_FPS_RANGE, ServerLayer, Settings,
    StreamLayer, StreamName, StreamSettings, TlsFiles, VIEWER_STALL_SECONDS_RANGE,
    WEBRTC_MAX_SESSIONS_RANGE,
};
use super::{parse_bitrate, parse_size};
use crate::encode::h264_choice::H264EncoderKind;
use crate::source::SourceSpec;
use crate::source::redact::mask_secrets;
use crate::source::spec::PipeFormat;

/// Larger than any hand-written file: a path to something else (a video, a device) is
/// refused before it is read into memory.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Larger than any password: `source_password_file` naming something else is refused.
const MAX_PASSWORD_FILE_BYTES: u64 = 4096;

/// The top of the file: server settings, defaults for every stream, and the streams.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTable {
    listen: Option<Spanned<String>>,
    jpeg_threads: Option<Spanned<WholeNumber>>,
    viewer_stall_seconds: Option<Spanned<WholeNumber>>,
    exit_on_eof: Option<bool>,
    max_viewers: Option<Spanned<WholeNumber>>,
    max_connections_per_address: Option<Spanned<WholeNumber>>,
    limit_loopback_connections: Option<bool>,
    /// The key of signed links, in a file of its own; made there if missing.
    signing_key_file: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    webrtc_listen: Option<Spanned<String>>,
    webrtc_public_addresses: Option<Vec<Spanned<String>>>,
    webrtc_max_sessions: Option<Spanned<WholeNumber>>,
    size: Option<Spanned<String>>,
    fps: Option<Spanned<WholeNumber>>,
    jpeg_quality: Option<Spanned<WholeNumber>>,
    mjpeg_fps: Option<Spanned<WholeNumber>>,
    drop_same_frames: Option<bool>,
    hls: Option<HlsMode>,
    h264_bitrate: Option<Spanned<BitrateText>>,
    h264_encoder: Option<H264EncoderKind>,
    hls_segment_seconds: Option<Spanned<Seconds>>,
    hls_part_seconds: Option<Spanned<Seconds>>,
    hls_window: Option<Spanned<WholeNumber>>,
    hls_idle_stop_seconds: Option<Spanned<WholeNumber>>,
    #[serde(default)]
    streams: Vec<StreamTable>,
    #[serde(default)]
    users: Vec<UserTable>,
    #[serde(default)]
    tokens: Vec<TokenTable>,
    metrics_public: Option<bool>,
    cors_allowed_origins: Option<Spanned<OriginsText>>,
}

/// One `[[streams]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamTable {
    name: Spanned<String>,
    source: Spanned<String>,
    format: Option<Spanned<WireFormat>>,
    size: Option<Spanned<String>>,
    fps: Option<Spanned<WholeNumber>>,
    jpeg_quality: Option<Spanned<WholeNumber>>,
    mjpeg_fps: Option<Spanned<WholeNumber>>,
    drop_same_frames: Option<bool>,
    hls: Option<HlsMode>,
    h264_bitrate: Option<Spanned<BitrateText>>,
    h264_encoder: Option<H264EncoderKind>,
    hls_segment_seconds: Option<Spanned<Seconds>>,
    hls_part_seconds: Option<Spanned<Seconds>>,
    hls_window: Option<Spanned<WholeNumber>>,
    hls_idle_stop_seconds: Option<Spanned<WholeNumber>>,
    /// This stream's viewers; the top of the file's `max_viewers` is the limit in total.
    max_viewers: Option<Spanned<WholeNumber>>,
    /// An RTSP camera's user name and password, beside its URL rather than in it; the
    /// password may come from a file of its own (a secret kept out of the config).
    source_user: Option<Spanned<String>>,
    source_password: Option<Spanned<String>>,
    source_password_file: Option<Spanned<String>>,
}

/// The keys a stream's table and the top of the file share, as written.
struct StreamKeys {
    size: Option<Spanned<String>>,
    fps: Option<Spanned<WholeNumber>>,
    jpeg_quality: Option<Spanned<WholeNumber>>,
    mjpeg_fps: Option<Spanned<WholeNumber>>,
    drop_same_frames: Option<bool>,
    hls: Option<HlsMode>,
    h264_bitrate: Option<Spanned<BitrateText>>,
    h264_encoder: Option<H264EncoderKind>,
    hls_segment_seconds: Option<Spanned<Seconds>>,
    hls_part_seconds: Option<Spanned<Seconds>>,
    hls_window: Option<Spanned<WholeNumber>>,
    hls_idle_stop_seconds: Option<Spanned<WholeNumber>>,
}

/// An integer, so that a wrong type says "expected a whole number" rather than a Rust type.
#[derive(Debug, Clone, Copy)]
struct WholeNumber(i64);

impl<'de> Deserialize<'de> for WholeNumber {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = WholeNumber;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_i64<E>(self, value: i64) -> Result<WholeNumber, E> {
                Ok(WholeNumber(value))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A number of seconds: a TOML float or integer.
#[derive(Debug, Clone, Copy)]
struct Seconds(f64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Seconds;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of seconds")
            }
            fn visit_i64<E>(self, value: i64) -> Result<Seconds, E> {
                Ok(Seconds(value as f64))
            }
            fn visit_f64<E>(self, value: f64) -> Result<Seconds, E> {
                Ok(Seconds(value))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// What a pipe, FIFO or command writes (`format = …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum WireFormat {
    Mjpeg,
    Yuv420p,
    H264,
}

impl From<WireFormat> for PipeFormat {
    fn from(format: WireFormat) -> Self {
        match format {
            WireFormat::Mjpeg => Self::Mjpeg,
            WireFormat::Yuv420p => Self::Yuv420p,
            WireFormat::H264 => Self::H264,
        }
    }
}

/// A bitrate as written: a number of bits per second (`2000000`) or text with a suffix
/// (`"2M"`), checked later by [`parse_bitrate`] like the flag.
#[derive(Debug)]
struct BitrateText(String);

impl<'de> Deserialize<'de> for BitrateText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = BitrateText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a bitrate such as 2000000, \"800k\" or \"2M\"")
            }
            fn visit_i64<E>(self, value: i64) -> Result<BitrateText, E> {
                Ok(BitrateText(value.to_string()))
            }
            fn visit_u64<E>(self, value: u64) -> Result<BitrateText, E> {
                Ok(BitrateText(value.to_string()))
            }
            fn visit_str<E>(self, value: &str) -> Result<BitrateText, E> {
                Ok(BitrateText(value.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Reads and resolves the file at `path`; `flags` are the server settings given as flags
/// beside it.
pub fn load(path: &Path, flags: &ServerLayer) -> Result<Settings, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    // Read through a limit rather than trusting the file's length: `--config` may name a FIFO
    // or a device.
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(read_error)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::in_file(
            path,
            format!("larger than {MAX_FILE_BYTES} bytes: not a configuration file"),
        ));
    }
    parse(path, &text, flags)
}

/// Parses and resolves `text`, the file at `path` (named in messages).
pub fn parse(path: &Path, text: &str, flags: &ServerLayer) -> Result<Settings, ConfigError> {
    let file: FileTable = toml::from_str(text).map_err(|error| match error.span() {
        Some(span) => ConfigError::at(path, text, span.start, error.message().trim_end()),
        None => ConfigError::in_file(path, error.message().trim_end()),
    })?;
    Resolver { path, text }.resolve(file, flags)
}

/// Turns the file's values into settings; knows the text to say where a wrong value is.
struct Resolver<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Resolver<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.path, self.text, span.start, message)
    }

    fn resolve(&self, file: FileTable, flags: &ServerLayer) -> Result<Settings, ConfigError> {
        let file_layer = ServerLayer {
            listen: file
                .listen
                .map(|listen| {
                    listen.as_ref().parse::<SocketAddr>().map_err(|_| {
                        self.error(
                            listen.span(),
                            format!(
                                "listen: `{}` is not ADDRESS:PORT, e.g. 127.0.0.1:8080",
                                listen.as_ref().escape_debug()
                            ),
                        )
                    })
                })
                .transpose()?,
            jpeg_threads: self.int_in("jpeg_threads", &file.jpeg_threads, JPEG_THREADS_RANGE)?,
            viewer_stall_seconds: self.int_in(
                "viewer_stall_seconds",
                &file.viewer_stall_seconds,
                VIEWER_STALL_SECONDS_RANGE,
            )?,
            exit_on_eof: file.exit_on_eof,
            max_viewers: self.int_in("max_viewers", &file.max_viewers, MAX_VIEWERS_RANGE)?,
            max_connections_per_address: self.int_in(
                "max_connections_per_address",
                &file.max_connections_per_address,
                MAX_CONNECTIONS_PER_ADDRESS_RANGE,
            )?,
            limit_loopback_connections: file.limit_loopback_connections,
            tls: self.tls_files(file.tls_cert, file.tls_key)?,
            webrtc_listen: file
                .webrtc_listen
                .map(|listen| {
                    listen.as_ref().parse::<SocketAddr>().map_err(|_| {
                        self.error(
                            listen.span(),
                            format!(
                                "webrtc_listen: `{}` is not ADDRESS:PORT, e.g. 0.0.0.0:8189",
                                listen.as_ref().escape_debug()
                            ),
                        )
                    })
                })
                .transpose()?,
            webrtc_public_addresses: file
                .webrtc_public_addresses
                .map(|addresses| {
                    addresses
                        .iter()
                        .map(|address| {
                            super::parse_public_address(address.as_ref()).map_err(|reason| {
                                self.error(
                                    address.span(),
                                    format!("webrtc_public_addresses: {reason}"),
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?,
            webrtc_max_sessions: self.int_in(
                "webrtc_max_sessions",
                &file.webrtc_max_sessions,
                WEBRTC_MAX_SESSIONS_RANGE,
            )?,
            streams: self.stream_layer(StreamKeys {
                size: file.size,
                fps: file.fps,
                jpeg_quality: file.jpeg_quality,
                mjpeg_fps: file.mjpeg_fps,
                drop_same_frames: file.drop_same_frames,
                hls: file.hls,
                h264_bitrate: file.h264_bitrate,
                h264_encoder: file.h264_encoder,
                hls_segment_seconds: file.hls_segment_seconds,
                hls_part_seconds: file.hls_part_seconds,
                hls_window: file.hls_window,
                hls_idle_stop_seconds: file.hls_idle_stop_seconds,
            })?,
        };
        let server = flags.clone().or(file_layer);
        if file.streams.is_empty() {
            return Err(ConfigError::in_file(
                self.path,
                "no stream: add a [[streams]] table with a `name` and a `source`",
            ));
        }
        let mut streams: Vec<StreamSettings> = Vec::with_capacity(file.streams.len());
        // The line each name was first seen on, and the stream reading standard input.
        let mut names_seen: HashMap<StreamName, usize> = HashMap::new();
        let mut stdin_reader: Option<StreamName> = None;
        for table in file.streams {
            let (name_span, source_span) = (table.name.span(), table.source.span());
            let stream = self.stream(table, &server.streams)?;
            if let Some(first) = names_seen.get(&stream.name) {
                return Err(self.error(
                    name_span,
                    format!(
                        "stream name `{}` is used twice (first on line {first}); names must be \
                         unique",
                        stream.name
                    ),
                ));
            }
            let line = Position::of(self.text, name_span.start).line;
            names_seen.insert(stream.name.clone(), line);
            if reads_standard_input(&stream.source) {
                if let Some(first) = &stdin_reader {
                    return Err(self.error(
                        source_span,
                        format!(
                            "stream `{}` reads standard input, and so does stream `{first}`: \
                             only one stream can; give the other a FIFO or a command",
                            stream.name
                        ),
                    ));
                }
                stdin_reader = Some(stream.name.clone());
            }
            streams.push(stream);
        }
        let stream_names: Vec<StreamName> = streams.iter().map(|s| s.name.clone()).collect();
        let access = super::access::resolve(
            AccessTables {
                users: file.users,
                tokens: file.tokens,
                metrics_public: file.metrics_public,
                cors_allowed_origins: file.cors_allowed_origins,
            },
            &stream_names,
            self.text,
            &|span, message| self.error(span, message),
        )?;
        let mut server = server.resolve();
        server.signing_key_file = file
            .signing_key_file
            .map(|named| self.signing_key_path(&named))
            .transpose()?;
        Ok(Settings {
            server,
            streams,
            access,
        })
    }

    /// One stream's settings from its table, `defaults` (the flags' and the top of the
    /// file's) where it has no key.
    fn stream(
        &self,
        table: StreamTable,
        defaults: &StreamLayer,
    ) -> Result<StreamSettings, ConfigError> {
        let name = StreamName::new(table.name.as_ref())
            .map_err(|reason| self.error(table.name.span(), reason))?;
        let source = SourceSpec::parse(table.source.as_ref())
            .map_err(|reason| self.error(table.source.span(), format!("source: {reason}")))?;
        let source = self.apply_format(source, &table.source, table.format.as_ref())?;
        let source = self.apply_credentials(source, &table)?;
        let max_viewers = self.int_in("max_viewers", &table.max_viewers, MAX_VIEWERS_RANGE)?;
        let layer = self
            .stream_layer(StreamKeys {
                size: table.size,
                fps: table.fps,
                jpeg_quality: table.jpeg_quality,
                mjpeg_fps: table.mjpeg_fps,
                drop_same_frames: table.drop_same_frames,
                hls: table.hls,
                h264_bitrate: table.h264_bitrate,
                h264_encoder: table.h264_encoder,
                hls_segment_seconds: table.hls_segment_seconds,
                hls_part_seconds: table.hls_part_seconds,
                hls_window: table.hls_window,
                hls_idle_stop_seconds: table.hls_idle_stop_seconds,
            })?
            .or(defaults.clone());
        if layer.size.is_none() && carries_raw_frames(&source) {
            // Pointing at what says the frames are raw: `format` when written, else `source`.
            let kind_span = table
                .format
                .as_ref()
                .map_or(table.source.span(), Spanned::span);
            return Err(self.error(
                kind_span,
                "raw yuv420p frames carry no size: set `size = \"WIDTHxHEIGHT\"` for this \
                 stream (or at the top of the file)",
            ));
        }
        Ok(StreamSettings {
            max_viewers,
            ..layer.resolve(name, source)
        })
    }

    /// The source with the table's `source_user` and `source_password` (or the password in
    /// `source_password_file`, relative to the config file's directory), which only an RTSP
    /// camera takes, and only if its URL holds none.
    fn apply_credentials(
        &self,
        source: SourceSpec,
        table: &StreamTable,
    ) -> Result<SourceSpec, ConfigError> {
        let (user, password, password_file) = (
            table.source_user.as_ref(),
            table.source_password.as_ref(),
            table.source_password_file.as_ref(),
        );
        let Some(first) = user.or(password).or(password_file) else {
            return Ok(source);
        };
        let SourceSpec::Rtsp(address) = source else {
            return Err(self.error(
                first.span(),
                "source_user and source_password: only an rtsp:// or rtsps:// source takes them",
            ));
        };
        let Some(user) = user else {
            return Err(self.error(first.span(), "a password needs `source_user` too"));
        };
        let password = match (password, password_file) {
            (Some(_), Some(file)) => {
                return Err(self.error(
                    file.span(),
                    "source_password_file: give `source_password` or `source_password_file`, \
                     not both",
                ));
            }
            (Some(password), None) => password.as_ref().clone(),
            (None, Some(file)) => self.read_password(file)?,
            (None, None) => String::new(),
        };
        let credentials = crate::source::rtsp::RtspCredentials {
            username: user.as_ref().clone(),
            password,
        };
        address
            .with_credentials(credentials)
            .map(SourceSpec::Rtsp)
            .map_err(|reason| self.error(user.span(), format!("source_user: {reason}")))
    }

    /// The path `signing_key_file` names, relative to the configuration file's directory.
    /// The file itself is read (or made) when the server starts.
    fn signing_key_path(&self, named: &Spanned<String>) -> Result<PathBuf, ConfigError> {
        if named.as_ref().trim().is_empty() {
            return Err(self.error(named.span(), "signing_key_file: empty path"));
        }
        Ok(self.beside_file(named.as_ref()))
    }

    /// `tls_cert` and `tls_key`, relative to the config file's directory: both or neither.
    /// Whether they load is checked when the server starts.
    fn tls_files(
        &self,
        cert: Option<Spanned<String>>,
        key: Option<Spanned<String>>,
    ) -> Result<Option<TlsFiles>, ConfigError> {
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: self.beside_file(cert.as_ref()),
                key: self.beside_file(key.as_ref()),
            })),
            (Some(given), None) | (None, Some(given)) => Err(self.error(
                given.span(),
                "tls_cert and tls_key go together: give both (PEM files) to serve HTTPS, or \
                 neither for plain HTTP",
            )),
        }
    }

    /// `named`, taken relative to the config file's directory when it is relative.
    fn beside_file(&self, named: &str) -> PathBuf {
        let named = Path::new(named);
        match self.path.parent() {
            Some(dir) if named.is_relative() => dir.join(named),
            _ => named.to_owned(),
        }
    }

    /// The password in the file `source_password_file` names: its first line. Never shown.
    fn read_password(&self, file: &Spanned<String>) -> Result<String, ConfigError> {
        let named = Path::new(file.as_ref());
        let path = match self.path.parent() {
            Some(dir) if named.is_relative() => dir.join(named),
            _ => named.to_owned(),
        };
        let mut text = String::new();
        std::fs::File::open(&path)
            .and_then(|f| {
                f.take(MAX_PASSWORD_FILE_BYTES + 1)
                    .read_to_string(&mut text)
            })
            .map_err(|e| {
                self.error(
                    file.span(),
                    format!(
                        "source_password_file: cannot read `{}`: {e}",
                        path.display()
                    ),
                )
            })?;
        if text.len() as u64 > MAX_PASSWORD_FILE_BYTES {
            return Err(self.error(
                file.span(),
                format!(
                    "source_password_file: `{}` is larger than {MAX_PASSWORD_FILE_BYTES} bytes: \
                     not a password",
                    path.display()
                ),
            ));
        }
        Ok(text.lines().next().unwrap_or_default().to_owned())
    }

    /// Checks the keys a stream's table and the top of the file share.
    fn stream_layer(&self, keys: StreamKeys) -> Result<StreamLayer, ConfigError> {
        Ok(StreamLayer {
            size: keys
                .size
                .map(|size| {
                    parse_size(size.as_ref())
                        .map_err(|reason| self.error(size.span(), format!("size: {reason}")))
                })
                .transpose()?,
            fps: self.int_in("fps", &keys.fps, FPS_RANGE)?,
            jpeg_quality: self.int_in("jpeg_quality", &keys.jpeg_quality, JPEG_QUALITY_RANGE)?,
            mjpeg_fps: self.int_in("mjpeg_fps", &keys.mjpeg_fps, MJPEG_FPS_RANGE)?,
            drop_same_frames: keys.drop_same_frames,
            hls: keys.hls,
            h264_bitrate: keys
                .h264_bitrate
                .map(|bitrate| {
                    parse_bitrate(&bitrate.as_ref().0).map_err(|reason| {
                        self.error(bitrate.span(), format!("h264_bitrate: {reason}"))
                    })
                })
                .transpose()?,
            h264_encoder: keys.h264_encoder,
            hls_segment_seconds: self.seconds_in(
                "hls_segment_seconds",
                &keys.hls_segment_seconds,
                HLS_SEGMENT_SECONDS_RANGE,
            )?,
            hls_part_seconds: self.seconds_in(
                "hls_part_seconds",
                &keys.hls_part_seconds,
                HLS_PART_SECONDS_RANGE,
            )?,
            hls_window: self.int_in("hls_window", &keys.hls_window, HLS_WINDOW_RANGE)?,
            hls_idle_stop_seconds: self.int_in(
                "hls_idle_stop_seconds",
                &keys.hls_idle_stop_seconds,
                HLS_IDLE_STOP_SECONDS_RANGE,
            )?,
        })
    }

    /// A whole number within `range`, converted to the setting's type.
    fn int_in<T: TryFrom<i64>>(
        &self,
        key: &str,
        value: &Option<Spanned<WholeNumber>>,
        range: RangeInclusive<i64>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        let number = value.as_ref().0;
        match T::try_from(number) {
            Ok(converted) if range.contains(&number) => Ok(Some(converted)),
            _ => Err(self.error(
                value.span(),
                format!(
                    "{key}: {number} is outside {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    fn seconds_in(
        &self,
        key: &str,
        value: &Option<Spanned<Seconds>>,
        range: RangeInclusive<f64>,
    ) -> Result<Option<f64>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        let seconds = value.as_ref().0;
        if !range.contains(&seconds) {
            return Err(self.error(
                value.span(),
                format!(
                    "{key}: {seconds} is outside {} to {} seconds",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(Some(seconds))
    }

    /// The source with `format` applied: a pipe's own format must agree with it, and a source
    /// that produces its own pictures takes none. Source kinds that carry bytes (a FIFO, a
    /// command's output) take the format here.
    fn apply_format(
        &self,
        source: SourceSpec,
        written: &Spanned<String>,
        format: Option<&Spanned<WireFormat>>,
    ) -> Result<SourceSpec, ConfigError> {
        let Some(format) = format else {
            return Ok(source);
        };
        let wanted = PipeFormat::from(*format.as_ref());
        let contradiction = |own: PipeFormat| {
            self.error(
                format.span(),
                format!(
                    "format: `{wanted}` contradicts source `{}`, which carries {own}",
                    mask_secrets(written.as_ref())
                ),
            )
        };
        match source {
            SourceSpec::Pipe(own) | SourceSpec::Fifo { format: own, .. } if own == wanted => {
                Ok(source)
            }
            SourceSpec::Pipe(own) | SourceSpec::Fifo { format: own, .. } => Err(contradiction(own)),
            // `exec:COMMAND` carries MJPEG unless it says otherwise; `format` says otherwise
            // too, but not against a format the source names itself.
            SourceSpec::Exec { format: own, .. }
                if own != wanted && names_its_format(written.as_ref()) =>
            {
                Err(contradiction(own))
            }
            SourceSpec::Exec { .. } => source
                .with_format(wanted)
                .map_err(|reason| self.error(format.span(), reason)),
            _ => Err(self.error(
                format.span(),
                format!(
                    "format: only a pipe, FIFO or command source takes a format; `{}` makes \
                     its own pictures",
                    mask_secrets(written.as_ref())
                ),
            )),
        }
    }
}

/// Whether the source reads this process's standard input, which only one stream can own.
/// (A source kind that reads a FIFO or a command's output does not.)
fn reads_standard_input(source: &SourceSpec) -> bool {
    matches!(source, SourceSpec::Pipe(_))
}

/// Whether the source delivers raw frames, whose size nothing in the bytes says.
fn carries_raw_frames(source: &SourceSpec) -> bool {
    matches!(
        source,
        SourceSpec::Pipe(PipeFormat::Yuv420p)
            | SourceSpec::Fifo {
                format: PipeFormat::Yuv420p,
                ..
            }
            | SourceSpec::Exec {
                format: PipeFormat::Yuv420p,
                ..
            }
    )
}

/// Whether an `exec:` source string names its format (`exec:yuv420p:…`, `exec:mjpeg:…`).
fn names_its_format(written: &str) -> bool {
    ["exec:yuv420p:", "exec:mjpeg:"]
        .iter()
        .any(|prefix| written.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::DEFAULT_SIZE;
    use crate::frame::FrameSize;

    /// Parses `text` as `cams.toml` with no flags beside it.
    fn parse_text(text: &str) -> Result<Settings, String> {
        parse(Path::new("cams.toml"), text, &ServerLayer::default()).map_err(|e| e.to_string())
    }

    fn error_of(text: &str) -> String {
        match parse_text(text) {
            Ok(settings) => panic!("accepted: {settings:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn a_stream_with_a_name_and_a_source_gets_every_default() {
        let settings = parse_text("[[streams]]\nname = \"cam\"\nsource = \"test\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.server, ServerLayer::default().resolve());
        let [stream] = settings.streams.as_slice() else {
            panic!("one stream: {settings:?}")
        };
        assert_eq!(
            *stream,
            StreamLayer::default().resolve(
                StreamName::new("cam").unwrap_or_else(|e| panic!("{e}")),
                SourceSpec::TestPattern
            )
        );
        assert_eq!(stream.size, DEFAULT_SIZE);
        assert_eq!(stream.hls, HlsMode::Always);
    }

    #[test]
    fn max_viewers_at_the_top_is_the_total_and_a_stream_may_set_its_own() {
        let settings = parse_text(
            "max_viewers = 200\nmax_connections_per_address = 16\n\
             limit_loopback_connections = true\n\
             [[streams]]\nname = \"a\"\nsource = \"test\"\nmax_viewers = 10\n\
             [[streams]]\nname = \"b\"\nsource = \"test\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.server.max_viewers, Some(200));
        assert_eq!(settings.server.max_connections_per_address, 16);
        assert!(settings.server.limit_loopback_connections);
        let own: Vec<Option<u32>> = settings.streams.iter().map(|s| s.max_viewers).collect();
        assert_eq!(own, [Some(10), None], "the total is no stream's own limit");
        let defaults = parse_text("[[streams]]\nname = \"a\"\nsource = \"test\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(defaults.server.max_viewers, None);
        assert_eq!(defaults.server.max_connections_per_address, 64);
        assert!(!defaults.server.limit_loopback_connections);
        assert_eq!(
            error_of("[[streams]]\nname = \"a\"\nsource = \"test\"\nmax_viewers = 0\n"),
            "cams.toml:4:15: max_viewers: 0 is outside 1 to 1000000"
        );
    }

    #[test]
    fn commands_and_fifos_take_their_format_from_the_file() {
        let settings = parse_text(
            "[[streams]]\nname = \"cam\"\nsource = \"exec:rpicam-vid -o -\"\n\
             format = \"yuv420p\"\nsize = \"640x480\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            settings.streams[0].source,
            SourceSpec::Exec {
                command: vec!["rpicam-vid".into(), "-o".into(), "-".into()],
                format: PipeFormat::Yuv420p
            }
        );
        assert_eq!(
            error_of(
                "[[streams]]\nname = \"cam\"\nsource = \"exec:yuv420p:cat\"\n\
                 format = \"mjpeg\"\nsize = \"640x480\"\n"
            ),
            "cams.toml:4:10: format: `mjpeg` contradicts source `exec:yuv420p:cat`, which \
             carries yuv420p"
        );
        assert_eq!(
            error_of(
                "[[streams]]\nname = \"cam\"\nsource = \"pipe:mjpeg:/run/cam\"\n\
                 format = \"yuv420p\"\nsize = \"640x480\"\n"
            ),
            "cams.toml:4:10: format: `yuv420p` contradicts source `pipe:mjpeg:/run/cam`, which \
             carries mjpeg"
        );
        // Raw frames from a command need a size as those from standard input do.
        assert!(
            error_of("[[streams]]\nname = \"cam\"\nsource = \"exec:yuv420p:cat\"\n")
                .contains("size"),
        );
    }

    #[test]
    fn tls_files_go_together_and_are_taken_beside_the_file() {
        const STREAM: &str = "[[streams]]\nname = \"a\"\nsource = \"test\"\n";
        let settings = parse(
            Path::new("/etc/framecast/cams.toml"),
            &format!("tls_cert = \"cert.pem\"\ntls_key = \"/keys/key.pem\"\n{STREAM}"),
            &ServerLayer::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            settings.server.tls,
            Some(TlsFiles {
                cert: "/etc/framecast/cert.pem".into(),
                key: "/keys/key.pem".into(),
            })
        );
        assert_eq!(parse_text(STREAM).map(|s| s.server.tls), Ok(None));
        assert_eq!(
            error_of(&format!("\ntls_key = \"key.pem\"\n{STREAM}")),
            "cams.toml:2:11: tls_cert and tls_key go together: give both (PEM files) to serve \
             HTTPS, or neither for plain HTTP"
        );
        // Flags given beside the file win over its pair.
        let flags = ServerLayer {
            tls: Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into(),
            }),
            ..ServerLayer::default()
        };
        let settings = parse(
            Path::new("cams.toml"),
            &format!("tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n{STREAM}"),
            &flags,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.server.tls, flags.tls);
    }

    #[test]
    fn webrtc_keys_are_read_and_bad_values_are_named() {
        const STREAM: &str = "[[streams]]\nname = \"a\"\nsource = \"test\"\n";
        let settings = parse_text(&format!(
            "webrtc_listen = \"0.0.0.0:9189\"\n\
             webrtc_public_addresses = [\"203.0.113.5\", \"198.51.100.7:40000\"]\n\
             webrtc_max_sessions = 5\n{STREAM}"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            settings.server.webrtc_listen,
            Some("0.0.0.0:9189".parse().unwrap_or_else(|e| panic!("{e}")))
        );
        assert_eq!(
            settings.server.webrtc_public_addresses,
            [
                "203.0.113.5:0".parse().unwrap_or_else(|e| panic!("{e}")),
                "198.51.100.7:40000"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
            ]
        );
        assert_eq!(settings.server.webrtc_max_sessions, 5);
        let defaults = parse_text(STREAM).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(defaults.server.webrtc_listen, None);
        assert!(defaults.server.webrtc_public_addresses.is_empty());
        assert_eq!(defaults.server.webrtc_max_sessions, 64);
        assert!(
            error_of(&format!("webrtc_listen = \"8189\"\n{STREAM}"))
                .contains("webrtc_listen: `8189` is not ADDRESS:PORT")
        );
        assert!(
            error_of(&format!("webrtc_public_addresses = [\"nat\"]\n{STREAM}"))
                .contains("webrtc_public_addresses: `nat` is not IP or IP:PORT")
        );
        assert!(
            error_of(&format!("webrtc_max_sessions = 0\n{STREAM}")).contains("webrtc_max_sessions")
        );
    }

    #[test]
    fn streams_take_the_top_of_the_file_and_override_it() {
        let text = r#"
listen = "0.0.0.0:9000"
jpeg_threads = 2
viewer_stall_seconds = 30
exit_on_eof = true
size = "640x360"
fps = 15
jpeg_quality = 70
mjpeg_fps = 5
hls = "off"
hls_window = 20

[[streams]]
name = "printer"
source = "pipe:mjpeg"
format = "mjpeg"

[[streams]]
name = "garage"
source = "camera:/dev/video2"
size = "1920x1080"
fps = 25
jpeg_quality = 90
mjpeg_fps = 12
drop_same_frames = true
hls = "on-demand"
h264_bitrate = "2M"
h264_encoder = "vaapi"
hls_segment_seconds = 2
hls_part_seconds = 0.5
hls_window = 6

[[streams]]
name = "door"
source = "test"
h264_bitrate = 800000
"#;
        let settings = parse_text(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.server.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(settings.server.jpeg_threads, 2);
        assert_eq!(settings.server.viewer_stall_seconds, 30);
        assert!(settings.server.exit_on_eof);
        let [printer, garage, door] = settings.streams.as_slice() else {
            panic!("three streams: {settings:?}")
        };
        assert_eq!(printer.name.as_str(), "printer");
        assert_eq!(printer.source, SourceSpec::Pipe(PipeFormat::Mjpeg));
        assert_eq!(
            (printer.size, printer.fps, printer.jpeg_quality, printer.hls),
            (FrameSize::new(640, 360), 15, 70, HlsMode::Off)
        );
        assert_eq!(printer.hls_window, 20);
        assert!(!printer.drop_same_frames);
        assert_eq!(printer.mjpeg_fps, Some(5), "from the top of the file");
        assert_eq!(garage.mjpeg_fps, Some(12));
        assert_eq!(
            (garage.size, garage.fps, garage.jpeg_quality, garage.hls),
            (FrameSize::new(1920, 1080), 25, 90, HlsMode::OnDemand)
        );
        assert!(garage.drop_same_frames);
        assert_eq!(garage.h264_bitrate, Some(2_000_000));
        assert_eq!(
            (
                garage.hls_segment_seconds,
                garage.hls_part_seconds,
                garage.hls_window
            ),
            (2.0, 0.5, 6)
        );
        assert_eq!(door.h264_bitrate, Some(800_000));
        assert_eq!(door.hls_segment_seconds, 1.0);
        assert_eq!(garage.h264_encoder, H264EncoderKind::Vaapi);
        assert_eq!(door.h264_encoder, H264EncoderKind::OpenH264, "the default");
    }

    #[test]
    fn flags_beside_the_file_override_its_top_but_not_a_streams_own_keys() {
        let text = "listen = \"127.0.0.1:1\"\nfps = 10\njpeg_quality = 50\n\
                    [[streams]]\nname = \"a\"\nsource = \"test\"\n\
                    [[streams]]\nname = \"b\"\nsource = \"test\"\nfps = 5\n";
        let flags = ServerLayer {
            listen: Some("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"))),
            streams: StreamLayer {
                fps: Some(20),
                hls: Some(HlsMode::Off),
                ..Default::default()
            },
            ..Default::default()
        };
        let settings =
            parse(Path::new("cams.toml"), text, &flags).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.server.listen.to_string(), "127.0.0.1:0");
        let [a, b] = settings.streams.as_slice() else {
            panic!("two streams: {settings:?}")
        };
        assert_eq!((a.fps, a.jpeg_quality, a.hls), (20, 50, HlsMode::Off));
        assert_eq!((b.fps, b.jpeg_quality, b.hls), (5, 50, HlsMode::Off));
    }

    #[test]
    fn wrong_files_are_reported_at_their_line_and_column() {
        const STREAM: &str = "[[streams]]\nname = \"a\"\nsource = \"test\"\n";
        for (text, expected) in [
            (
                format!("fpss = 3\n{STREAM}"),
                "cams.toml:1:1: unknown field `fpss`, expected one of `listen`, `jpeg_threads`, \
                 `viewer_stall_seconds`, `exit_on_eof`, `max_viewers`, \
                 `max_connections_per_address`, `limit_loopback_connections`, \
                 `signing_key_file`, `tls_cert`, `tls_key`, `webrtc_listen`, \
                 `webrtc_public_addresses`, `webrtc_max_sessions`, `size`, `fps`, `jpeg_quality`, \
                 `mjpeg_fps`, `drop_same_frames`, `hls`, `h264_bitrate`, `h264_encoder`, \
                 `hls_segment_seconds`, `hls_part_seconds`, `hls_window`, `hls_idle_stop_seconds`, \
                 `streams`, `users`, \
                 `tokens`, `metrics_public`, `cors_allowed_origins`",
            ),
            (
                format!("{STREAM}sauce = \"x\"\n"),
                "cams.toml:4:1: unknown field `sauce`, expected one of `name`, `source`, \
                 `format`, `size`, `fps`, `jpeg_quality`, `mjpeg_fps`, `drop_same_frames`, `hls`, \
                 `h264_bitrate`, `h264_encoder`, `hls_segment_seconds`, `hls_part_seconds`, \
                 `hls_window`, `hls_idle_stop_seconds`, `max_viewers`, `source_user`, `source_password`, \
                 `source_password_file`",
            ),
            (
                "[[streams]]\nname = \"Front Door\"\nsource = \"test\"\n".into(),
                "cams.toml:2:8: stream name `Front Door` is not one of lowercase letters, \
                 digits, `_` and `-`, starting with a letter or digit, at most 64 characters",
            ),
            (
                format!("{STREAM}{STREAM}"),
                "cams.toml:5:8: stream name `a` is used twice (first on line 2); names must be \
                 unique",
            ),
            (
                format!("{STREAM}fps = 0\n"),
                "cams.toml:4:7: fps: 0 is outside 1 to 120",
            ),
            (
                format!("fps = 121\n{STREAM}"),
                "cams.toml:1:7: fps: 121 is outside 1 to 120",
            ),
            (
                format!("{STREAM}fps = \"fast\"\n"),
                "cams.toml:4:7: invalid type: string \"fast\", expected a whole number",
            ),
            (
                format!("{STREAM}jpeg_quality = 101\n"),
                "cams.toml:4:16: jpeg_quality: 101 is outside 1 to 100",
            ),
            (
                format!("{STREAM}mjpeg_fps = 0\n"),
                "cams.toml:4:13: mjpeg_fps: 0 is outside 1 to 120",
            ),
            (
                format!("{STREAM}hls_segment_seconds = 0.1\n"),
                "cams.toml:4:23: hls_segment_seconds: 0.1 is outside 0.5 to 10 seconds",
            ),
            (
                format!("{STREAM}size = \"641x480\"\n"),
                "cams.toml:4:8: size: 641x480 has an odd side; both must be even (4:2:0 chroma)",
            ),
            (
                format!("{STREAM}h264_encoder = \"x265\"\n"),
                "cams.toml:4:16: unknown variant `x265`, expected one of `openh264`, `x264`, \
                 `vaapi`, `v4l2m2m`, `nvenc`, `qsv`, `videotoolbox`, `auto`",
            ),
            (
                format!("{STREAM}h264_bitrate = \"fast\"\n"),
                "cams.toml:4:16: h264_bitrate: `fast` is not a bitrate such as 2000000, 800k or 2M",
            ),
            (
                format!("{STREAM}hls = \"sometimes\"\n"),
                "cams.toml:4:7: unknown variant `sometimes`, expected one of `always`, \
                 `on-demand`, `off`",
            ),
            (
                format!("listen = \"localhost\"\n{STREAM}"),
                "cams.toml:1:10: listen: `localhost` is not ADDRESS:PORT, e.g. 127.0.0.1:8080",
            ),
            (
                "[[streams]]\nname = \"raw\"\nsource = \"pipe:yuv420p\"\n".into(),
                "cams.toml:3:10: raw yuv420p frames carry no size: set `size = \"WIDTHxHEIGHT\"` \
                 for this stream (or at the top of the file)",
            ),
            (
                "[[streams]]\nname = \"raw\"\nsource = \"pipe:yuv420p\"\nformat = \"yuv420p\"\n"
                    .into(),
                "cams.toml:4:10: raw yuv420p frames carry no size: set `size = \"WIDTHxHEIGHT\"` \
                 for this stream (or at the top of the file)",
            ),
            (
                "[[streams]]\nname = \"a\"\nsource = \"pipe:mjpeg\"\n\
                 [[streams]]\nname = \"b\"\nsource = \"pipe:yuv420p\"\nsize = \"640x360\"\n"
                    .into(),
                "cams.toml:6:10: stream `b` reads standard input, and so does stream `a`: only \
                 one stream can; give the other a FIFO or a command",
            ),
            (
                format!("{STREAM}format = \"mjpeg\"\n"),
                "cams.toml:4:10: format: only a pipe, FIFO or command source takes a format; \
                 `test` makes its own pictures",
            ),
            (
                "[[streams]]\nname = \"a\"\nsource = \"pipe:mjpeg\"\nformat = \"yuv420p\"\n\
                 size = \"640x360\"\n"
                    .into(),
                "cams.toml:4:10: format: `yuv420p` contradicts source `pipe:mjpeg`, which \
                 carries mjpeg",
            ),
            (
                "[[streams]]\nname = \"a\"\nsource = \"rtsps://admin:hunter2@cam/1#udp\"\n".into(),
                "cams.toml:3:10: source: `rtsps://admin:***@cam/1#udp`: rtsps:// takes RTP in \
                 its TLS connection only (#tcp); over UDP it would need SRTP, which framecast \
                 does not speak",
            ),
            (
                "[[streams]]\nname = \"a\"\nsource = \"rtsp://admin:hunter2@cam/1\"\n\
                 format = \"mjpeg\"\n"
                    .into(),
                "cams.toml:4:10: format: only a pipe, FIFO or command source takes a format; \
                 `rtsp://admin:***@cam/1` makes its own pictures",
            ),
            (
                "[[streams]]\nname = \"a\"\n".into(),
                "cams.toml:1:1: missing field `source`",
            ),
            (
                "listen = \"127.0.0.1:0\"\n".into(),
                "cams.toml: no stream: add a [[streams]] table with a `name` and a `source`",
            ),
            (
                "[[streams]]\nname = \"a\nsource = \"test\"\n".into(),
                "cams.toml:2:10: invalid basic string, expected `\"`",
            ),
            (
                "[[streams]\nname = \"a\"\n".into(),
                "cams.toml:1:11: unclosed array table, expected `]`",
            ),
        ] {
            assert_eq!(error_of(&text), expected, "{text}");
        }
    }

    #[test]
    fn a_file_that_cannot_be_read_says_which() {
        let error = load(Path::new("/nonexistent/cams.toml"), &ServerLayer::default())
            .map_err(|e| e.to_string());
        assert_eq!(
            error,
            Err(
                "cannot read the configuration file /nonexistent/cams.toml: No such file or \
                 directory (os error 2)"
                    .into()
            )
        );
    }

    #[test]
    fn the_example_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("framecast.example.toml");
        let settings = load(&path, &ServerLayer::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.server, ServerLayer::default().resolve());
        let [stream] = settings.streams.as_slice() else {
            panic!("the example serves one stream: {settings:?}")
        };
        assert_eq!(stream.name.as_str(), "main");
        assert_eq!(stream.source, SourceSpec::TestPattern);
        // Every value the example writes out is the default.
        assert_eq!(
            *stream,
            StreamLayer::default().resolve(stream.name.clone(), SourceSpec::TestPattern)
        );
    }

    #[test]
    fn the_signing_key_file_is_relative_to_the_configuration_file() {
        const STREAM: &str = "[[streams]]\nname = \"a\"\nsource = \"test\"\n";
        let path = Path::new("/etc/framecast/cams.toml");
        let key_of = |text: &str| {
            parse(path, text, &ServerLayer::default()).map(|s| s.server.signing_key_file)
        };
        assert_eq!(key_of(STREAM).map_err(|e| e.to_string()), Ok(None));
        assert_eq!(
            key_of(&format!("signing_key_file = \"signing.key\"\n{STREAM}"))
                .map_err(|e| e.to_string()),
            Ok(Some(PathBuf::from("/etc/framecast/signing.key")))
        );
        assert_eq!(
            key_of(&format!("signing_key_file = \"/run/k\"\n{STREAM}")).map_err(|e| e.to_string()),
            Ok(Some(PathBuf::from("/run/k")))
        );
        let empty = key_of(&format!("signing_key_file = \" \"\n{STREAM}"));
        assert_eq!(
            empty.map_err(|e| e.to_string()),
            Err("/etc/framecast/cams.toml:1:20: signing_key_file: empty path".into())
        );
    }

    #[test]
    fn the_example_files_commented_streams_and_keys_are_valid_too() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("framecast.example.toml");
        let example = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let uncommented: String = example
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(setting)
                    if matches!(setting, "[[streams]]" | "[[users]]" | "[[tokens]]")
                        || setting.split_once(" = ").is_some_and(|(key, _)| {
                            key.bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                        }) =>
                {
                    setting
                }
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let settings = parse(&path, &uncommented, &ServerLayer::default())
            .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        let names: Vec<&str> = settings.stream_names().map(StreamName::as_str).collect();
        assert_eq!(names, ["main", "garage", "phone", "printer", "pipeline"]);
        assert_eq!(settings.streams[0].h264_bitrate, Some(2_000_000));
        assert_eq!(
            (settings.access.users.len(), settings.access.tokens.len()),
            (1, 1)
        );
        assert!(
            settings
                .access
                .cors_allowed_origins
                .allow("https://dashboard.example.org")
                .is_some()
        );
    }

    #[test]
    fn an_rtsp_camera_takes_its_credentials_from_the_table_or_a_file() {
        let dir = std::env::temp_dir().join(format!("framecast-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("door.pass"), "s3cret\n").unwrap();
        let config = dir.join("cams.toml");
        for (keys, password) in [
            (
                "source_user = \"admin\"\nsource_password = \"hunter2\"\n",
                "hunter2",
            ),
            (
                "source_user = \"admin\"\nsource_password_file = \"door.pass\"\n",
                "s3cret",
            ),
            ("source_user = \"viewer\"\n", ""),
        ] {
            let text =
                format!("[[streams]]\nname = \"door\"\nsource = \"rtsp://door/live\"\n{keys}");
            let settings = parse(&config, &text, &ServerLayer::default()).unwrap();
            let SourceSpec::Rtsp(address) = &settings.streams[0].source else {
                panic!("not RTSP");
            };
            let (url, credentials) = address.request().unwrap();
            assert_eq!(url.as_str(), "rtsp://door/live");
            assert_eq!(credentials.unwrap().password, password, "{keys}");
            assert!(!format!("{settings:?}").contains("hunter2"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn credentials_beside_a_source_that_takes_none_are_refused_by_line() {
        let stream = "[[streams]]\nname = \"a\"\n";
        for (keys, message) in [
            (
                "source = \"test\"\nsource_user = \"u\"\n",
                "cams.toml:4:15: source_user and source_password: only an rtsp:// or rtsps:// \
                 source takes them",
            ),
            (
                "source = \"rtsp://cam/x\"\nsource_password = \"pw\"\n",
                "cams.toml:4:19: a password needs `source_user` too",
            ),
            (
                "source = \"rtsp://cam/x\"\nsource_user = \"u\"\nsource_password = \"pw\"\n\
                 source_password_file = \"pw.txt\"\n",
                "cams.toml:6:24: source_password_file: give `source_password` or \
                 `source_password_file`, not both",
            ),
            (
                "source = \"rtsp://u:pw@cam/x\"\nsource_user = \"u\"\n",
                "cams.toml:4:15: source_user: `rtsp://u:***@cam/x` has a user name and password \
                 already; give them in one place",
            ),
            (
                "source = \"rtsp://cam/x\"\nsource_user = \"u\"\nsource_password_file = \"/nonexistent/pw\"\n",
                "cams.toml:5:24: source_password_file: cannot read `/nonexistent/pw`: No such \
                 file or directory (os error 2)",
            ),
        ] {
            assert_eq!(error_of(&format!("{stream}{keys}")), message, "{keys}");
        }
    }

    /// A hash `framecast hash-password` printed (of "wonderland").
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$MjgQcaX2OPGk+/e2YG4txQ$\
                        mcL1XM2uRBPxztXm7yPBxwqK9yaS+pOkFNeHuEBe4kQ";

    #[test]
    fn users_tokens_and_origins_are_read_and_checked() {
        use crate::config::access::{CorsOrigins, Role, StreamScope};
        let text = format!(
            "metrics_public = true\ncors_allowed_origins = [\"https://example.org\"]\n\
             [[streams]]\nname = \"front\"\nsource = \"test\"\n\
             [[streams]]\nname = \"garage\"\nsource = \"test\"\n\
             [[users]]\nname = \"alice\"\npassword_hash = \"{HASH}\"\nstreams = [\"*\"]\n\
             role = \"admin\"\n\
             [[users]]\nname = \"bob\"\npassword_hash = \"{HASH}\"\nstreams = [\"garage\"]\n\
             [[tokens]]\nname = \"home-assistant\"\ntoken_hash = \"{HASH}\"\n\
             streams = [\"garage\", \"front\"]\n"
        );
        let access = parse_text(&text).unwrap_or_else(|e| panic!("{e}")).access;
        let [alice, bob] = access.users.as_slice() else {
            panic!("two users: {access:?}")
        };
        assert_eq!((alice.name.as_str(), alice.role), ("alice", Role::Admin));
        assert_eq!(alice.streams, StreamScope::All);
        assert_eq!(bob.role, Role::View, "the default role");
        assert!(bob.streams.allows("garage") && !bob.streams.allows("front"));
        assert_eq!(access.tokens[0].name, "home-assistant");
        assert!(access.tokens[0].streams.allows("front"));
        assert!(access.metrics_public);
        assert_eq!(
            access.cors_allowed_origins,
            CorsOrigins::Only(vec!["https://example.org".into()])
        );
        assert!(
            !format!("{access:?}").contains(HASH),
            "hashes stay out of Debug"
        );
        let open = parse_text("[[streams]]\nname = \"a\"\nsource = \"test\"\n")
            .unwrap_or_else(|e| panic!("{e}"))
            .access;
        assert!(open.is_open() && !open.metrics_public);
        assert_eq!(open.cors_allowed_origins, CorsOrigins::None);
    }

    #[test]
    fn wrong_users_and_tokens_are_reported_at_their_line_and_column() {
        const STREAM: &str = "[[streams]]\nname = \"garage\"\nsource = \"test\"\n";
        let user = |name: &str, hash: &str, streams: &str, more: &str| {
            format!(
                "[[users]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\nstreams = {streams}\n{more}"
            )
        };
        for (text, expected) in [
            (
                format!("{STREAM}{}", user("alice", "hunter2", "[\"*\"]", "")),
                "cams.toml:6:17: password_hash: not a hash string like `$argon2id$v=19$m=…`; \
                 make one with `framecast hash-password`",
            ),
            (
                format!(
                    "{STREAM}{}",
                    user("alice", HASH, "[\"garage\", \"door\"]", "")
                ),
                "cams.toml:7:22: streams: no stream is named `door`; the streams are `garage`",
            ),
            (
                format!(
                    "{STREAM}{}",
                    user("alice", HASH, "[\"*\"]", "role = \"owner\"\n")
                ),
                "cams.toml:8:8: unknown variant `owner`, expected `view` or `admin`",
            ),
            (
                format!(
                    "{STREAM}{}{}",
                    user("alice", HASH, "[\"*\"]", ""),
                    user("alice", HASH, "[\"*\"]", "")
                ),
                "cams.toml:9:8: user name `alice` is used twice (first on line 5); users and \
                 tokens need names of their own",
            ),
            (
                format!(
                    "{STREAM}{}[[tokens]]\nname = \"alice\"\ntoken_hash = \"{HASH}\"\nstreams = [\"*\"]\n",
                    user("alice", HASH, "[\"*\"]", "")
                ),
                "cams.toml:9:8: token name `alice` is used twice (first on line 5); users and \
                 tokens need names of their own",
            ),
            (
                format!("{STREAM}{}", user("al:ice", HASH, "[\"*\"]", "")),
                "cams.toml:5:8: user name `al:ice`: holds a colon, a space or a control character",
            ),
            (
                format!("{STREAM}{}", user("alice", HASH, "[]", "")),
                "cams.toml:7:11: streams: empty; list stream names, or [\"*\"] for every stream",
            ),
            (
                format!("{STREAM}{}", user("alice", HASH, "[\"*\", \"garage\"]", "")),
                "cams.toml:7:11: streams: \"*\" means every stream and stands alone",
            ),
            (
                format!("{STREAM}[[users]]\nname = \"alice\"\npassword_hash = \"{HASH}\"\n"),
                "cams.toml:4:1: missing field `streams`",
            ),
            (
                format!("cors_allowed_origins = [\"https://example.org/\"]\n{STREAM}"),
                "cams.toml:1:24: cors_allowed_origins: `https://example.org/` is not an origin: \
                 scheme://host[:port], without a path or a trailing slash",
            ),
        ] {
            assert_eq!(error_of(&text), expected, "{text}");
        }
    }
}
