//! CPU time and memory of a process and of its threads, read from Linux `/proc` (proc(5)).
//!
//! CPU figures are cumulative user + system time in clock ticks; a rate in cores is the
//! difference of two readings over the wall time between them. Elsewhere than Linux every
//! reading is `None` and the report says "n/a".

use std::collections::BTreeMap;
use std::time::Duration;

/// Clock ticks per second of `utime`/`stime` (sysconf(_SC_CLK_TCK)); 100 on every Linux
/// architecture framecast targets, asked of `getconf` in case one differs.
pub fn clock_ticks_per_s() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// utime + stime in ticks from the text of a `stat` file. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU ticks used so far by every thread of process `pid` (`"self"` for this process).
pub fn process_cpu_ticks(pid: &str) -> Option<u64> {
    stat_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU ticks the whole machine has spent busy (every core, every process; not idle or
/// waiting for I/O), from the first line of `/proc/stat`.
pub fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    Some(busy)
}

/// Resident set size of process `pid` in bytes (VmRSS).
pub fn rss_bytes(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU ticks of each live thread of `pid`, by thread id, with the thread's name.
pub fn thread_cpu_ticks(pid: &str) -> BTreeMap<u64, (String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    tasks
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let tid: u64 = entry.file_name().to_str()?.parse().ok()?;
            let dir = entry.path();
            let name = std::fs::read_to_string(dir.join("comm")).ok()?;
            let ticks = stat_cpu_ticks(&std::fs::read_to_string(dir.join("stat")).ok()?)?;
            Some((tid, (name.trim().to_owned(), ticks)))
        })
        .collect()
}

/// Cores used between two tick readings `wall` apart.
pub fn cores(ticks_before: u64, ticks_after: u64, ticks_per_s: u64, wall: Duration) -> f64 {
    let cpu_s = ticks_after.saturating_sub(ticks_before) as f64 / ticks_per_s as f64;
    cpu_s / wall.as_secs_f64().max(f64::EPSILON)
}

/// Cores per thread name between two per-thread readings, busiest first. Threads that share a
/// name (the HTTP workers) are summed and counted.
pub fn thread_cores(
    before: &BTreeMap<u64, (String, u64)>,
    after: &BTreeMap<u64, (String, u64)>,
    ticks_per_s: u64,
    wall: Duration,
) -> Vec<(String, usize, f64)> {
    let mut by_name: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for (tid, (name, ticks_after)) in after {
        // A thread born during the window counts from zero.
        let ticks_before = before.get(tid).map_or(0, |(_, t)| *t);
        let entry = by_name.entry(name).or_default();
        entry.0 += 1;
        entry.1 += ticks_after.saturating_sub(ticks_before);
    }
    let mut rows: Vec<(String, usize, f64)> = by_name
        .into_iter()
        .map(|(name, (count, ticks))| (name.to_owned(), count, cores(0, ticks, ticks_per_s, wall)))
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    rows
}

/// The scheduler's run time of each thread of process `pid` (the first field of
/// `/proc/PID/task/TID/schedstat`, nanoseconds on the CPU), by thread id. At most a few
/// thousand threads are read; empty where the kernel does not keep these counts.
pub fn thread_run_ns(pid: &str) -> BTreeMap<u64, u64> {
    const MAX_THREADS: usize = 4096;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    tasks
        .flatten()
        .take(MAX_THREADS)
        .filter_map(|task| {
            let tid: u64 = task.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            let run_ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
            Some((tid, run_ns))
        })
        .collect()
}
