//! The `framecast` command: parse the configuration, run the server (or only list the cameras
//! with `--list-sources`, hash a password with `hash-password`, or print a signed link with
//! `sign-url`), turn failures into exit codes (2 for a bad command line or configuration file;
//! 1 for anything that stops the server).

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use framecast::config::{Command, Config, Invocation};
use tracing::subscriber::Interest;
use tracing_subscriber::filter::{DynFilterFn, EnvFilter};
use tracing_subscriber::prelude::*;

/// Logging unless RUST_LOG says otherwise. actix logs every malformed request at ERROR; any
/// client could flood the log with those, so they are left out.
const DEFAULT_LOG: &str = "info,actix_http::h1::dispatcher=off";
const QUIET_ACTIX: &str = "actix_http::h1::dispatcher=off";
/// actix logs every failed accept; when file descriptors run out that is twice a second for as
/// long as it lasts. One line per this interval says it is happening.
const ACCEPT_ERROR_INTERVAL: Duration = Duration::from_secs(10);
const ACCEPT_TARGET: &str = "actix_server::accept";

/// jemalloc instead of glibc's malloc, for memory after a load spike. Thousands of connections
/// that come and go (aborted blocking reloads, viewers that leave) allocate and free on every
/// worker thread; glibc keeps the freed pages inside its heaps, and RSS stays near the peak and
/// creeps up with each spike (at 720p: 32 MB idle, then 53, 61 and 63 MB after three waves of
/// 1,000 aborted reloads). jemalloc gives free pages back to the system, from a background
/// thread (cargo feature `background_threads`), so also once the server has gone quiet: 34 MB
/// idle, 47 MB after each wave, flat. Of the 13 MB that stay, about half is actix's pools (per worker, 128
/// requests kept for reuse, each holding its header map and its connection's 8 KB read buffer),
/// the rest pages the allocator keeps around live objects. `benches/churn.rs` measures it.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL_ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start (jemalloc(3), "TUNING"; the name is the one of this
/// prefixed build). Freed pages go back after about a second instead of the default ten: with
/// ten, RSS was still 42 MB 20 s after a spike that this setting brings back to 36 MB within
/// 3 s. A NUL-terminated C string.
#[cfg(not(target_env = "msvc"))]
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_OPTIONS: &[u8; 37] = b"dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> ExitCode {
    let launch = match Config::from_args() {
        Invocation::Serve(launch) => *launch,
        Invocation::Command(Command::HashPassword) => return hash_password(),
        Invocation::Command(Command::SignUrl(args)) => {
            return framecast::access::sign_url_command::run(&args);
        }
    };
    // actix's per-request errors stay off unless RUST_LOG names actix_http itself: a
    // `RUST_LOG=warn` must not bring back a line per malformed request or dropped viewer.
    let directives = match std::env::var("RUST_LOG") {
        Ok(given) if !given.contains("actix_http") => format!("{given},{QUIET_ACTIX}"),
        Ok(given) => given,
        Err(_) => DEFAULT_LOG.to_owned(),
    };
    let levels = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    let last_accept_error: Mutex<Option<Instant>> = Mutex::new(None);
    let accept_errors_once_per_burst = DynFilterFn::new(move |meta, _| {
        if meta.target() != ACCEPT_TARGET {
            return true;
        }
        let mut last = last_accept_error.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let due = last.is_none_or(|at| now.duration_since(at) >= ACCEPT_ERROR_INTERVAL);
        if due {
            *last = Some(now);
        }
        due
    })
    // Asked at every event from the accept loop (not cached per call site): it depends on time.
    .with_callsite_filter(|meta| {
        if meta.target() == ACCEPT_TARGET {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only for a person at a terminal, not in journald or a file.
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(levels)
                .with_filter(accept_errors_once_per_burst),
        )
        .init();
    if launch.list_sources {
        // Not `print!`: a closed stdout (`| head -1`) must not panic.
        let listing = framecast::source::camera::list_sources();
        let _ = std::io::stdout().write_all(listing.as_bytes());
        return ExitCode::SUCCESS;
    }
    match actix_web::rt::System::new().block_on(framecast::app::run(launch)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("framecast: {error}");
            ExitCode::from(1)
        }
    }
}

/// `framecast hash-password`: one line of standard input in, its argon2id hash out. An empty
/// line is a usage error (2); a failure to read or hash is 1. Typed at a terminal, the
/// password is not echoed.
fn hash_password() -> ExitCode {
    let typed = QuietTerminal::start();
    let read = framecast::access::users::read_secret(&mut std::io::stdin().lock());
    if let Some(terminal) = typed {
        terminal.restore();
        if read.as_ref().is_ok_and(|secret| secret.contains('\u{3}')) {
            eprintln!("framecast hash-password: interrupted");
            return ExitCode::from(130);
        }
    }
    let secret = match read {
        Ok(secret) => secret,
        Err(reason) => {
            eprintln!("framecast hash-password: {reason}");
            return ExitCode::from(2);
        }
    };
    match framecast::access::users::hash_secret(&secret) {
        Ok(hash) => {
            let _ = writeln!(std::io::stdout(), "{hash}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("framecast hash-password: cannot hash: {error}");
            ExitCode::from(1)
        }
    }
}

/// Standard input at a terminal, its echo off while a password is typed. Signals from the
/// keyboard are off too, so that Ctrl-C cannot end the process with the echo still off: it
/// arrives as a character, and the line is refused.
struct QuietTerminal {
    saved: rustix::termios::Termios,
}

impl QuietTerminal {
    fn start() -> Option<Self> {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = tcgetattr(&stdin).ok()?;
        let mut quiet = saved.clone();
        quiet
            .local_modes
            .remove(LocalModes::ECHO | LocalModes::ISIG);
        tcsetattr(&stdin, OptionalActions::Now, &quiet).ok()?;
        eprint!("Password (not shown): ");
        Some(Self { saved })
    }

    fn restore(self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
        eprintln!();
    }
}
