//! What a request's credentials cost: a full argon2id verification (`framecast hash-password`'s
//! parameters: 19 MiB, two passes), against the check of a secret verified lately (a keyed
//! SHA-256 digest compared in constant time), in one run. The second is what an MJPEG viewer
//! or an HLS player pays per request; the first what each new viewer (and each wrong guess)
//! pays once. Also the parsing of the `Authorization` header alone.
//!
//! Each case runs a fixed number of rounds within a time budget; reported: mean time per
//! check and the ratio. Prints figures and always exits 0.

use std::hint::black_box;
use std::time::{Duration, Instant};

use framecast::access::credentials::{self, Credentials};
use framecast::access::users::{AccessList, hash_secret};
use framecast::config::access::{AccessSettings, Role, SecretHash, StreamScope, UserSettings};

const PASSWORD: &str = "correct horse battery staple";
/// Full verifications: each takes tens of milliseconds.
const SLOW_ROUNDS: u32 = 20;
/// Remembered checks and header parses: each takes about a microsecond.
const FAST_ROUNDS: u32 = 200_000;
const CASE_BUDGET: Duration = Duration::from_secs(5);

type BenchError = Box<dyn std::error::Error>;

fn main() {
    if let Err(error) = run() {
        eprintln!("auth_check: could not measure: {error}");
    }
}

/// Mean time per call of `check`, over at most `rounds` calls within the budget.
fn mean(rounds: u32, mut check: impl FnMut()) -> Duration {
    let started = Instant::now();
    let mut done = 0;
    while done < rounds && (done < 3 || started.elapsed() < CASE_BUDGET) {
        check();
        done += 1;
    }
    started.elapsed() / done.max(1)
}

fn run() -> Result<(), BenchError> {
    let settings = AccessSettings {
        users: vec![UserSettings {
            name: "alice".into(),
            password_hash: SecretHash::new(&hash_secret(PASSWORD)?)?,
            streams: StreamScope::All,
            role: Role::View,
        }],
        ..Default::default()
    };
    let list = AccessList::new(&settings);
    let header = credentials::basic_header("alice", PASSWORD);
    let right: Credentials = credentials::parse(header.as_bytes())?;
    let now = Instant::now();

    // A fresh list each time, so that nothing is remembered.
    let full = mean(SLOW_ROUNDS, || {
        let fresh = AccessList::new(&settings);
        assert!(black_box(fresh.verify(&right, now)).is_some());
    });
    list.verify(&right, now)
        .ok_or("the password does not verify")?;
    let remembered = mean(FAST_ROUNDS, || {
        assert!(black_box(list.remembered(&right, now)).is_some());
    });
    let parse = mean(FAST_ROUNDS, || {
        assert!(black_box(credentials::parse(black_box(header.as_bytes()))).is_ok());
    });
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!("auth_check: per request with HTTP Basic credentials");
    println!(
        "  argon2id verification (first request)   {:>10.1} µs",
        micros(full)
    );
    println!(
        "  remembered verification (later ones)    {:>10.3} µs",
        micros(remembered)
    );
    println!(
        "  Authorization header parse              {:>10.3} µs",
        micros(parse)
    );
    println!(
        "  remembered / full: {:.6} ({:.0}x cheaper)",
        remembered.as_secs_f64() / full.as_secs_f64(),
        full.as_secs_f64() / remembered.as_secs_f64().max(1e-12)
    );
    Ok(())
}
