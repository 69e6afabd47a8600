//! Bounded logging of conditions that can repeat per frame or per request: a source sending
//! truncated JPEGs thirty times a second must not write thirty log lines a second.
//!
//! The first occurrence of a run is logged in full; while the run lasts, a summary with the
//! count is logged at most once per interval; a run ends after a quiet interval, and the count
//! its last lines did not report is handed out when the next run starts. Time is passed in, so
//! the rules are tested without sleeping. The counts themselves belong in `/status`.

use std::time::{Duration, Instant};

/// How often a repeating condition is summarised: a few seconds, so an operator reading the
/// log sees it is ongoing, and a day of it is a few thousand lines, not millions.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(5);

/// What to log for one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// The first of a run (or of another kind than the run before): log it in full.
    First {
        /// Occurrences of the previous run that no line reported yet.
        unreported_before: u64,
    },
    /// The run goes on: `count` occurrences (this one included) since the last line, over `over`.
    Summary { count: u64, over: Duration },
}

/// One condition's run state.
#[derive(Debug)]
pub struct RepeatedLog {
    interval: Duration,
    run: Option<Run>,
}

#[derive(Debug)]
struct Run {
    kind: &'static str,
    last_line_at: Instant,
    last_seen_at: Instant,
    unreported: u64,
}

impl RepeatedLog {
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            run: None,
        }
    }

    /// Records one occurrence of `kind` at `now`; returns what to log, if anything.
    pub fn record(&mut self, kind: &'static str, now: Instant) -> Option<Logged> {
        if let Some(run) = &mut self.run {
            let same_run =
                run.kind == kind && now.saturating_duration_since(run.last_seen_at) < self.interval;
            if same_run {
                run.last_seen_at = now;
                run.unreported += 1;
                let over = now.saturating_duration_since(run.last_line_at);
                if over < self.interval {
                    return None;
                }
                let count = std::mem::take(&mut run.unreported);
                run.last_line_at = now;
                return Some(Logged::Summary { count, over });
            }
        }
        let unreported_before = self.run.as_ref().map_or(0, |run| run.unreported);
        self.run = Some(Run {
            kind,
            last_line_at: now,
            last_seen_at: now,
            unreported: 0,
        });
        Some(Logged::First { unreported_before })
    }
}

impl RepeatedLog {
    /// Logs `error` at WARN under `what` by these rules: the first of a run in full, then a
    /// count every interval while it lasts.
    pub fn warn(&mut self, what: &'static str, error: &dyn std::fmt::Display, now: Instant) {
        match self.record(what, now) {
            Some(Logged::First { unreported_before }) => {
                if unreported_before > 0 {
                    tracing::warn!(count = unreported_before, "earlier errors not logged");
                }
                tracing::warn!(%error, "{what}");
            }
            Some(Logged::Summary { count, over }) => {
                tracing::warn!(count, over_s = over.as_secs(), last_error = %error, "{what}, repeated");
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = SUMMARY_INTERVAL;

    #[test]
    fn thirty_a_second_for_a_minute_is_a_dozen_lines() {
        let start = Instant::now();
        let mut log = RepeatedLog::new(S);
        let mut lines = Vec::new();
        for n in 0..30 * 60 {
            let now = start + Duration::from_millis(n * 1000 / 30);
            if let Some(logged) = log.record("BAD FRAME", now) {
                lines.push(logged);
            }
        }
        assert_eq!(
            lines[0],
            Logged::First {
                unreported_before: 0
            }
        );
        assert_eq!(lines.len(), 12, "{lines:?}");
        let counted: u64 = lines
            .iter()
            .map(|l| match l {
                Logged::Summary { count, .. } => *count,
                Logged::First { .. } => 1,
            })
            .sum();
        // Every occurrence but those after the last line is reported.
        assert!(counted > 30 * 60 - 30 * 5, "{counted}");
        assert!(
            lines[1..]
                .iter()
                .all(|l| matches!(l, Logged::Summary { over, .. } if *over >= S))
        );
    }

    #[test]
    fn a_quiet_interval_ends_the_run_and_the_next_reports_the_rest() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut log = RepeatedLog::new(S);
        assert!(log.record("BAD FRAME", at(0)).is_some());
        assert_eq!(log.record("BAD FRAME", at(100)), None);
        assert_eq!(log.record("BAD FRAME", at(200)), None);
        assert_eq!(
            log.record("BAD FRAME", at(200 + 5_000)),
            Some(Logged::First {
                unreported_before: 2
            })
        );
    }

    #[test]
    fn another_kind_is_logged_at_once() {
        let start = Instant::now();
        let mut log = RepeatedLog::new(S);
        assert!(log.record("BAD FRAME", start).is_some());
        assert_eq!(log.record("BAD FRAME", start), None);
        assert_eq!(
            log.record("NO SIGNAL", start),
            Some(Logged::First {
                unreported_before: 1
            })
        );
    }
}
