//! The `framecast` command: parse the configuration, run the server, turn failures into exit
//! codes (2 for a bad command line, from clap; 1 for anything that stops the server).

use std::process::ExitCode;

use framecast::config::Config;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = Config::from_args();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match actix_web::rt::System::new().block_on(framecast::app::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("framecast: {error}");
            ExitCode::from(1)
        }
    }
}
