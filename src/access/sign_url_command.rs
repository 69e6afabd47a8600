//! `framecast sign-url --config FILE PATH --valid 1h`: prints a signed, expiring link to one
//! of a stream's resources (the path with its `?exp=…&sig=…` query), made with the key the
//! server uses (`signing_key_file`, made there if it does not exist yet).
//!
//! Exit codes as for the server's own command line: 2 for a bad value, path or configuration
//! (the message names it), 0 with the link on standard output.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::signed_link::{self, SIGNABLE_RESOURCES};
use super::signing_key::SigningKey;
use crate::config::settings::ServerLayer;
use crate::config::{Settings, StreamName, file};

/// The arguments of `framecast sign-url`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct SignUrlArgs {
    /// The configuration file: its `signing_key_file` and its streams.
    #[arg(long, env = "FRAMECAST_CONFIG", value_name = "FILE")]
    pub config: PathBuf,

    /// The path to sign: /streams/NAME/stream.mjpg, snapshot.jpg, live.m3u8 (which also covers
    /// the stream's HLS playlists and media) or live.mp4; or the first stream's at the root
    /// (/stream.mjpg, /snapshot.jpg, /live.m3u8, /live.mp4).
    pub path: String,

    /// How long the link is valid: a whole number with s, m, h or d (30s, 15m, 1h, 7d), at
    /// most 366d.
    #[arg(long, default_value = "1h", value_parser = signed_link::parse_validity)]
    pub valid: Duration,

    /// The expiry as Unix time instead of --valid (tests make links that expired already).
    #[arg(long, hide = true, conflicts_with = "valid")]
    pub expires_at_unix: Option<u64>,
}

/// Runs the command: the link on standard output, or the reason on standard error.
pub fn run(args: &SignUrlArgs) -> ExitCode {
    match signed_url(args, super::now_unix()) {
        Ok(link) => {
            // Not `println!`: a closed standard output must not panic.
            let _ = writeln!(std::io::stdout(), "{link}");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("framecast sign-url: {reason}");
            ExitCode::from(2)
        }
    }
}

/// The link `args` ask for, at `now_unix`.
fn signed_url(args: &SignUrlArgs, now_unix: u64) -> Result<String, String> {
    let settings = file::load(&args.config, &ServerLayer::default()).map_err(|e| e.to_string())?;
    let names: Vec<&StreamName> = settings.stream_names().collect();
    check_signable(&args.path, &names)?;
    let key_file = signing_key_file(&settings, args)?;
    let key = SigningKey::load_or_create(&key_file).map_err(|e| e.to_string())?;
    let expires_at_unix = args
        .expires_at_unix
        .unwrap_or_else(|| now_unix.saturating_add(args.valid.as_secs()));
    Ok(signed_link::signed_url(&key, &args.path, expires_at_unix))
}

fn signing_key_file(settings: &Settings, args: &SignUrlArgs) -> Result<PathBuf, String> {
    settings.server.signing_key_file.clone().ok_or_else(|| {
        format!(
            "signed links are off: {} has no signing_key_file",
            args.config.display()
        )
    })
}

/// Whether `path` names a resource a link can be made for: one of [`SIGNABLE_RESOURCES`]
/// of a configured stream (`/streams/NAME/…`) or of the first stream at the root.
pub fn check_signable(path: &str, streams: &[&StreamName]) -> Result<(), String> {
    let shown = || path.escape_debug().to_string();
    let resource = match path.strip_prefix("/streams/") {
        Some(rest) => {
            let (name, resource) = rest
                .split_once('/')
                .ok_or_else(|| format!("`{}` names no resource of the stream", shown()))?;
            if !streams.iter().any(|stream| stream.as_str() == name) {
                let known: Vec<&str> = streams.iter().map(|s| s.as_str()).collect();
                return Err(format!(
                    "`{}`: no stream named `{}` (the configuration has {})",
                    shown(),
                    name.escape_debug(),
                    known.join(", ")
                ));
            }
            resource
        }
        None => path
            .strip_prefix('/')
            .ok_or_else(|| format!("`{}` is not a path starting with /", shown()))?,
    };
    if !SIGNABLE_RESOURCES.contains(&resource) {
        return Err(format!(
            "`{}` is not a resource a link can be made for: {}",
            shown(),
            SIGNABLE_RESOURCES.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_streams_and_media_resources_are_signed() {
        let front = StreamName::new("front").unwrap_or_else(|e| panic!("{e}"));
        let back = StreamName::new("back").unwrap_or_else(|e| panic!("{e}"));
        let streams = [&front, &back];
        for good in [
            "/streams/front/stream.mjpg",
            "/streams/back/snapshot.jpg",
            "/streams/front/live.m3u8",
            "/streams/front/live.mp4",
            "/stream.mjpg",
            "/live.m3u8",
        ] {
            assert_eq!(check_signable(good, &streams), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("/streams/side/stream.mjpg", "no stream named `side`"),
            ("/streams/front", "names no resource"),
            ("/streams/front/", "not a resource"),
            ("/streams/front/status", "not a resource"),
            ("/streams/front/hls/x/seg1.m4s", "not a resource"),
            ("/streams/front/stream.mjpg?x=1", "not a resource"),
            ("stream.mjpg", "starting with /"),
            ("/", "not a resource"),
        ] {
            let error = check_signable(bad, &streams).expect_err(bad);
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
