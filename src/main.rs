//! The `framecast` command: parse the configuration, run the server (or only list the cameras
//! with `--list-sources`), turn failures into exit codes (2 for a bad command line, from clap;
//! 1 for anything that stops the server).

use std::io::Write as _;
use std::process::ExitCode;

use framecast::config::Config;
use tracing_subscriber::EnvFilter;

/// Logging unless RUST_LOG says otherwise. actix logs every malformed request at ERROR; any
/// client could flood the log with those, so they are left out.
const DEFAULT_LOG: &str = "info,actix_http::h1::dispatcher=off";

fn main() -> ExitCode {
    let config = Config::from_args();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)),
        )
        .with_writer(std::io::stderr)
        .init();
    if config.list_sources {
        // Not `print!`: a closed stdout (`| head -1`) must not panic.
        let listing = framecast::source::camera::list_sources();
        let _ = std::io::stdout().write_all(listing.as_bytes());
        return ExitCode::SUCCESS;
    }
    match actix_web::rt::System::new().block_on(framecast::app::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("framecast: {error}");
            ExitCode::from(1)
        }
    }
}
