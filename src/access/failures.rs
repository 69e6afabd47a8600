//! Back-off for clients that keep sending wrong credentials: per client address, a few
//! failures are answered at once, the next ones only after a growing delay, and beyond that the
//! address gets 429 Too Many Requests with `Retry-After` until it has been quiet for a while.
//! Every failure and every refusal is counted, for `/status` (and `/metrics`).
//!
//! Pure bookkeeping with the time passed in. IPv6 addresses count by their /64, the block one
//! host usually holds. The table is bounded: when full, the entry quiet for longest goes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Failures answered without delay: typing a password wrong twice is normal.
pub const FREE_FAILURES: u32 = 3;
/// From this many failures on, the address is refused (429) without its credentials being
/// looked at, until it has been quiet for [`FORGET_AFTER`].
pub const REFUSE_FROM: u32 = 10;
/// Each failure beyond the free ones waits this much longer before its answer.
const DELAY_STEP: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(2);
/// An address quiet this long since its last failure starts again from zero.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Addresses tracked at once: about 100 bytes each, so at most a megabyte or two.
pub const MAX_ADDRESSES: usize = 16_384;

/// What to do with a request from an address before its credentials are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Check the credentials.
    Check,
    /// Answer 429 and tell the client to retry after this long.
    Refuse { retry_after: Duration },
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
}

/// Failures by client address, and their counts.
#[derive(Debug, Default)]
pub struct FailureTable {
    records: Mutex<HashMap<IpAddr, Record>>,
    failures_total: AtomicU64,
    refused_total: AtomicU64,
}

impl FailureTable {
    /// Whether a request from `address` may have its credentials checked at `now`.
    pub fn admit(&self, address: IpAddr, now: Instant) -> Admission {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        match records.get(&key(address)) {
            Some(record) if record.failures >= REFUSE_FROM => {
                let quiet_for = now.saturating_duration_since(record.last_failure);
                match FORGET_AFTER.checked_sub(quiet_for) {
                    Some(left) if !left.is_zero() => {
                        self.refused_total.fetch_add(1, Ordering::Relaxed);
                        Admission::Refuse { retry_after: left }
                    }
                    _ => Admission::Check,
                }
            }
            _ => Admission::Check,
        }
    }

    /// Records a failure from `address` at `now`; returns how long its answer waits.
    pub fn record_failure(&self, address: IpAddr, now: Instant) -> Duration {
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let address = key(address);
        if records.len() >= MAX_ADDRESSES && !records.contains_key(&address) {
            records.retain(|_, record| {
                now.saturating_duration_since(record.last_failure) < FORGET_AFTER
            });
            if records.len() >= MAX_ADDRESSES
                && let Some(oldest) = records
                    .iter()
                    .min_by_key(|(_, record)| record.last_failure)
                    .map(|(address, _)| *address)
            {
                records.remove(&oldest);
            }
        }
        let record = records.entry(address).or_insert(Record {
            failures: 0,
            last_failure: now,
        });
        if now.saturating_duration_since(record.last_failure) >= FORGET_AFTER {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        delay_after(record.failures)
    }

    /// Wrong or malformed credentials so far.
    pub fn failures_total(&self) -> u64 {
        self.failures_total.load(Ordering::Relaxed)
    }

    /// Requests answered 429 because their address failed too often.
    pub fn refused_total(&self) -> u64 {
        self.refused_total.load(Ordering::Relaxed)
    }

    /// Addresses tracked now.
    pub fn addresses(&self) -> usize {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The wait before answering the `failures`th failure in a row.
fn delay_after(failures: u32) -> Duration {
    let beyond_free = failures.saturating_sub(FREE_FAILURES);
    (DELAY_STEP * beyond_free).min(MAX_DELAY)
}

/// IPv4 addresses as they are; IPv6 ones by their /64 (IPv4-mapped ones as IPv4).
fn key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 8));

    #[test]
    fn failures_wait_longer_then_are_refused_until_quiet() {
        let table = FailureTable::default();
        let start = Instant::now();
        let mut delays = Vec::new();
        for n in 0..REFUSE_FROM {
            assert_eq!(table.admit(HOST, start), Admission::Check, "failure {n}");
            delays.push(table.record_failure(HOST, start).as_millis());
        }
        assert_eq!(delays, [0, 0, 0, 250, 500, 750, 1000, 1250, 1500, 1750]);
        assert_eq!(
            table.admit(HOST, start + Duration::from_secs(10)),
            Admission::Refuse {
                retry_after: FORGET_AFTER - Duration::from_secs(10)
            }
        );
        assert_eq!(
            table.admit(OTHER, start),
            Admission::Check,
            "others are not touched"
        );
        assert_eq!(table.admit(HOST, start + FORGET_AFTER), Admission::Check);
        assert_eq!(table.failures_total(), u64::from(REFUSE_FROM));
        assert_eq!(table.refused_total(), 1);
        // After the quiet time the count starts again.
        assert_eq!(
            table.record_failure(HOST, start + FORGET_AFTER),
            Duration::ZERO
        );
        assert_eq!(delay_after(100), MAX_DELAY);
    }

    #[test]
    fn ipv6_hosts_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let b: IpAddr = "2001:db8:1:2:bbbb::2"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key(a), key(b));
        assert_ne!(key(a), key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key(mapped), HOST);
    }

    #[test]
    fn the_table_stays_bounded() {
        let table = FailureTable::default();
        let start = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            let address = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            table.record_failure(address, start + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(table.addresses(), MAX_ADDRESSES);
    }
}
