//! Frames from a command framecast runs (`exec:COMMAND`), like go2rtc's `exec:` sources:
//! `exec:ffmpeg -rtsp_transport tcp -i rtsp://cam/stream -f mjpeg -`.
//!
//! The command runs in a process group of its own, with standard input from `/dev/null`; its
//! standard output is read as MJPEG or raw yuv420p by the pipe readers of [`super::pipe`]. Its
//! standard error goes to framecast's log line by line, each line cut to
//! [`MAX_STDERR_LINE_CHARS`], passwords masked, and at most a burst of lines then a few a
//! minute, over all runs of the command ([`LineBudget`]); the lines left out are counted in the
//! next one.
//!
//! When the command exits or closes its output the source ends with the exit status; the
//! supervisor shows the placeholder and starts the command again with its back-off (1 s,
//! doubling to 10 s while the command delivers no frame), so a command that fails at once is
//! not restarted in a tight loop. A command that runs but writes nothing for
//! [`RESTART_SILENT_AFTER`] is stopped and started again.
//!
//! The process is stopped (SIGTERM to its group, then SIGKILL after [`TERM_GRACE`]) when the
//! source is dropped, when the next one is started, and when the stream stops: std's `Child`
//! does not do that on drop, [`RunningCommand`]'s `Drop` does. Once the command has exited,
//! whatever it started and left running in its group gets SIGKILL before the command is
//! reaped (until then its group id cannot be reused), so no run leaves processes behind.

use std::io::{BufRead, BufReader, ErrorKind};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitId, WaitidOptions, kill_process_group, waitid};

use super::pipe;
use super::redact::mask_secrets;
use super::spec::{PipeFormat, SourceSpec};
use super::{Opener, Source, SourceError};
use crate::frame::{Frame, FrameSize};

/// How long a stopped command gets to exit after SIGTERM before SIGKILL: ffmpeg finishes its
/// output and exits within a fraction of a second; a stuck one must not hold up shutdown.
pub const TERM_GRACE: Duration = Duration::from_secs(2);
/// After a command closed its output, how long it may take to exit by itself before it is
/// stopped: long enough to collect a real exit status.
const EXIT_WAIT: Duration = Duration::from_secs(1);
/// A running command that writes no frame for this long is restarted. Longer than the
/// supervisor's default: ffmpeg connecting to a camera and probing its stream (its
/// `analyzeduration` alone is 5 s) must not be killed before its first frame.
pub const RESTART_SILENT_AFTER: Duration = Duration::from_secs(20);
/// The longest standard error line logged, in characters; the rest of a longer line is
/// dropped.
pub const MAX_STDERR_LINE_CHARS: usize = 300;
/// Bytes of one standard error line kept to be masked and cut: enough for any URL.
const MAX_STDERR_COLLECT_BYTES: usize = 4096;
/// Lines of standard error logged at once (ffmpeg's banner and stream description at a
/// start), then one per [`STDERR_LINE_EVERY`]: a command printing progress twice a second
/// must not fill the log.
const STDERR_BURST_LINES: u32 = 40;
const STDERR_LINE_EVERY: Duration = Duration::from_secs(6);
/// The longest source description shown in `/status` and logs.
const MAX_DESCRIPTION_CHARS: usize = 160;
/// How often a wait for a process's exit looks again.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// How a command source's process is doing, for `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProcessStatus {
    /// The program's file name, e.g. `ffmpeg`.
    pub program: String,
    pub running: bool,
    /// The running process's id.
    pub pid: Option<u32>,
    /// Starts after the first.
    pub restarts: u64,
    /// How the last run ended: "exited with status 1", "was ended by signal 15".
    pub last_exit: Option<String>,
}

/// Starts the command at each open.
pub struct ExecOpener {
    command: Vec<String>,
    format: PipeFormat,
    size: FrameSize,
    /// `exec:ffmpeg`: what log lines name the source by.
    label: String,
    /// The whole command line, passwords masked, cut to a sane length.
    description: String,
    status: Arc<Mutex<ProcessStatus>>,
    starts: u64,
    /// Shared by the runs: a command that fails at once and prints its banner each time
    /// spends it once.
    stderr_budget: Arc<Mutex<LineBudget>>,
    /// The process of the last open, stopped before the next starts.
    current: Option<Arc<RunningCommand>>,
}

impl ExecOpener {
    /// An opener for `command` (program and arguments, not empty) writing `format` frames of
    /// `size` (the size of yuv420p frames). Nothing is started yet.
    pub fn new(command: Vec<String>, format: PipeFormat, size: FrameSize) -> Self {
        let spec = SourceSpec::Exec {
            command: command.clone(),
            format,
        };
        let program = command
            .first()
            .map(std::path::Path::new)
            .and_then(|p| p.file_name())
            .map_or_else(String::new, |p| p.to_string_lossy().into_owned());
        let program = mask_secrets(&program).into_owned();
        Self {
            command,
            format,
            size,
            label: format!("exec:{program}"),
            description: cut(&spec.to_string(), MAX_DESCRIPTION_CHARS),
            status: Arc::new(Mutex::new(ProcessStatus {
                program,
                ..ProcessStatus::default()
            })),
            starts: 0,
            stderr_budget: Arc::new(Mutex::new(LineBudget::new(
                STDERR_BURST_LINES,
                STDERR_LINE_EVERY,
                Instant::now(),
            ))),
            current: None,
        }
    }

    fn start(&self) -> Result<(Child, std::process::ChildStdout, ChildStderr), SourceError> {
        let (program, args) = self
            .command
            .split_first()
            .ok_or_else(|| SourceError::Unsupported("exec: no command".into()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: a terminal's Ctrl-C reaches framecast only, which stops the
            // command in order; and stopping the group reaches what the command started.
            .process_group(0);
        let mut child = command.spawn().map_err(|e| {
            SourceError::Failed(format!(
                "cannot start {}: {e}",
                self.label.trim_start_matches("exec:")
            ))
        })?;
        match (child.stdout.take(), child.stderr.take()) {
            (Some(stdout), Some(stderr)) => Ok((child, stdout, stderr)),
            _ => {
                let _ = kill_process_group(Pid::from_child(&child), Signal::Kill);
                let _ = child.wait();
                Err(SourceError::Failed(
                    "the command's pipes were not set up".into(),
                ))
            }
        }
    }
}

impl Opener for ExecOpener {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn open(&mut self) -> Result<Box<dyn Source>, SourceError> {
        if let Some(previous) = self.current.take() {
            previous.stop();
        }
        let (child, stdout, stderr) = self.start()?;
        let pid = child.id();
        self.starts += 1;
        {
            let mut status = lock(&self.status);
            status.running = true;
            status.pid = Some(pid);
            status.restarts = self.starts - 1;
        }
        let label = self.label.clone();
        let budget = self.stderr_budget.clone();
        // Without the thread the command's stderr closes and it may die of SIGPIPE: the
        // source then ends and is restarted, as for any exit.
        let _ = std::thread::Builder::new()
            .name("exec-stderr".into())
            .spawn(move || forward_stderr(stderr, &label, &budget));
        let running = Arc::new(RunningCommand {
            child: Mutex::new(Some(child)),
            started_at: Instant::now(),
            status: self.status.clone(),
        });
        self.current = Some(running.clone());
        let frames = pipe::reader(
            self.format,
            self.size,
            Box::new(stdout),
            self.description.clone(),
            SourceError::Ended,
        );
        Ok(Box::new(ExecSource {
            frames,
            running,
            label: self.label.clone(),
        }))
    }

    fn process(&self) -> Option<ProcessStatus> {
        Some(lock(&self.status).clone())
    }
}

impl Drop for ExecOpener {
    fn drop(&mut self) {
        if let Some(running) = self.current.take() {
            running.stop();
        }
    }
}

/// The command's output as a source; its end is the command's exit.
struct ExecSource {
    frames: Box<dyn Source>,
    running: Arc<RunningCommand>,
    label: String,
}

impl Source for ExecSource {
    fn describe(&self) -> String {
        self.frames.describe()
    }

    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        match self.frames.next_frame() {
            Err(SourceError::Ended(_)) => {
                let ran_for = self.running.started_at.elapsed();
                let how = match self.running.finish(EXIT_WAIT) {
                    Some(Ended::Exited(status)) => exit_description(status),
                    Some(Ended::Stopped(_)) => "closed its output and was stopped".into(),
                    None => "was stopped".into(),
                };
                Err(SourceError::Ended(format!(
                    "{} {how} after {:.1} s; restarting",
                    self.label,
                    ran_for.as_secs_f64()
                )))
            }
            other => other,
        }
    }

    fn reopen_after_silence(&self) -> Option<Duration> {
        Some(RESTART_SILENT_AFTER)
    }
}

impl Drop for ExecSource {
    fn drop(&mut self) {
        self.running.stop();
    }
}

/// One run of the command, shared by the source that reads it and the opener that starts
/// the next; whoever comes first reaps it, holding the lock meanwhile, so a second caller
/// returns only once the process is gone.
struct RunningCommand {
    child: Mutex<Option<Child>>,
    started_at: Instant,
    status: Arc<Mutex<ProcessStatus>>,
}

/// How a run ended.
enum Ended {
    /// By itself, with this status.
    Exited(ExitStatus),
    /// Stopped by framecast.
    Stopped(Option<ExitStatus>),
}

impl RunningCommand {
    /// Waits up to `wait` for the process to exit by itself, then stops it; then ends what
    /// it left behind in its group, and reaps it. `None` if it was already reaped.
    fn finish(&self, wait: Duration) -> Option<Ended> {
        let mut child = lock(&self.child);
        let process = child.as_mut()?;
        let group = Pid::from_child(process);
        let exited_by_itself = wait_for_exit(group, wait);
        if !exited_by_itself {
            // Errors ignored here and below: the group may be gone already.
            let _ = kill_process_group(group, Signal::Term);
            if !wait_for_exit(group, TERM_GRACE) {
                tracing::warn!(
                    pid = process.id(),
                    "a source command ignored SIGTERM; killing it"
                );
            }
        }
        // The process has exited but is not reaped yet, so its group id cannot have been
        // taken by another: SIGKILL reaches only what the command started and left running
        // (or the command itself, if it ignored SIGTERM).
        let _ = kill_process_group(group, Signal::Kill);
        let status = process.wait().ok();
        *child = None;
        let ended = match status {
            Some(status) if exited_by_itself => Ended::Exited(status),
            other => Ended::Stopped(other),
        };
        let mut process_status = lock(&self.status);
        process_status.running = false;
        process_status.pid = None;
        process_status.last_exit = Some(match &ended {
            Ended::Exited(exit) | Ended::Stopped(Some(exit)) => exit_description(*exit),
            Ended::Stopped(None) => "unknown".into(),
        });
        Some(ended)
    }

    /// Stops the process if it still runs.
    fn stop(&self) {
        self.finish(Duration::ZERO);
    }
}

impl Drop for RunningCommand {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether the child `pid` has exited within `limit`, leaving it to be reaped (`WNOWAIT`).
fn wait_for_exit(pid: Pid, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let options = WaitidOptions::EXITED | WaitidOptions::NOHANG | WaitidOptions::NOWAIT;
        match waitid(WaitId::Pid(pid), options) {
            Ok(Some(_)) => return true,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(EXIT_POLL),
            Ok(None) | Err(_) => return false,
        }
    }
}

/// "exit status 1", "signal 9": how a process ended, in words.
fn exit_description(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was ended by signal {signal}"),
        (None, None) => "exited".into(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// `text` cut to `max_chars` characters, with an ellipsis when cut.
fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Logs the command's standard error line by line until it closes (a line ends at `\n` or
/// `\r`, which ffmpeg ends its progress lines with), within `budget`, which all runs of the
/// command share.
fn forward_stderr(stderr: ChildStderr, label: &str, budget: &Mutex<LineBudget>) {
    let mut reader = BufReader::new(stderr);
    let lines = StderrLines { label, budget };
    let mut line: Vec<u8> = Vec::with_capacity(MAX_STDERR_COLLECT_BYTES);
    let mut cut_short = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok([]) => break,
            Ok(buf) => buf,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let end = buf.iter().position(|b| matches!(b, b'\n' | b'\r'));
        let content = &buf[..end.unwrap_or(buf.len())];
        let room = MAX_STDERR_COLLECT_BYTES - line.len();
        line.extend_from_slice(&content[..content.len().min(room)]);
        cut_short |= content.len() > room;
        let used = end.map_or(buf.len(), |at| at + 1);
        reader.consume(used);
        if end.is_some() {
            lines.log(&line, cut_short, Instant::now());
            line.clear();
            cut_short = false;
        }
    }
    lines.log(&line, cut_short, Instant::now());
    lines.finish();
}

/// One command's standard error lines, logged within a [`LineBudget`].
struct StderrLines<'a> {
    label: &'a str,
    budget: &'a Mutex<LineBudget>,
}

impl StderrLines<'_> {
    fn log(&self, line: &[u8], cut_short: bool, now: Instant) {
        let Some(text) = loggable_line(line, cut_short) else {
            return;
        };
        let Some(left_out) = lock(self.budget).admit(now) else {
            return;
        };
        if left_out > 0 {
            tracing::info!(
                source = self.label,
                lines = left_out,
                "command output lines not logged"
            );
        }
        if looks_like_an_error(&text) {
            tracing::warn!(source = self.label, "{text}");
        } else {
            tracing::info!(source = self.label, "{text}");
        }
    }

    fn finish(&self) {
        let left_out = lock(self.budget).take_left_out();
        if left_out > 0 {
            tracing::info!(
                source = self.label,
                lines = left_out,
                "command output lines not logged"
            );
        }
    }
}

/// What is logged of one line a command printed (`cut_short` when more of it was dropped):
/// control characters replaced, passwords masked, cut to [`MAX_STDERR_LINE_CHARS`]; `None`
/// for a blank line. Masking comes before cutting, so that a cut never leaves half a
/// password unrecognised; a line dropped in the middle of a word loses that word.
fn loggable_line(line: &[u8], cut_short: bool) -> Option<String> {
    let mut line = line;
    if cut_short && let Some(last_space) = line.iter().rposition(u8::is_ascii_whitespace) {
        line = &line[..last_space];
    }
    let text: String = String::from_utf8_lossy(line)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let masked = mask_secrets(text);
    let cut_text = cut(&masked, MAX_STDERR_LINE_CHARS);
    Some(if cut_short && cut_text.len() == masked.len() {
        format!("{cut_text}…")
    } else {
        cut_text
    })
}

/// Whether a command's line reports a failure (logged at WARN rather than INFO).
fn looks_like_an_error(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    [
        "error",
        "fail",
        "invalid",
        "cannot",
        "could not",
        "refused",
        "denied",
        "unauthorized",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

/// A token bucket for log lines: `burst` at once, then one per `every`; it counts the lines
/// it turned away. Time is passed in.
#[derive(Debug)]
struct LineBudget {
    burst: u32,
    every: Duration,
    tokens: u32,
    /// When the next token comes (while below `burst`).
    refill_at: Instant,
    left_out: u64,
}

impl LineBudget {
    fn new(burst: u32, every: Duration, now: Instant) -> Self {
        Self {
            burst,
            every,
            tokens: burst,
            refill_at: now + every,
            left_out: 0,
        }
    }

    /// Whether a line at `now` is logged: `Some(lines left out since the last logged one)`,
    /// or `None` when it is left out.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        while self.tokens < self.burst && now >= self.refill_at {
            self.tokens += 1;
            self.refill_at += self.every;
        }
        if self.tokens == self.burst {
            // Full: the next token is due a whole interval after the next line is spent.
            self.refill_at = now + self.every;
        }
        if self.tokens == 0 {
            self.left_out += 1;
            return None;
        }
        self.tokens -= 1;
        Some(self.take_left_out())
    }

    fn take_left_out(&mut self) -> u64 {
        std::mem::take(&mut self.left_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_line_per_interval_and_the_rest_counted() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut budget = LineBudget::new(3, Duration::from_secs(1), start);
        let admitted: Vec<Option<u64>> = (0..5).map(|_| budget.admit(at(0))).collect();
        assert_eq!(admitted, [Some(0), Some(0), Some(0), None, None]);
        assert_eq!(budget.admit(at(999)), None);
        assert_eq!(budget.admit(at(1_000)), Some(3), "three left out before");
        assert_eq!(budget.admit(at(1_500)), None);
        // Two lines a second for a minute: one a second gets through.
        let logged = (0..120)
            .filter(|n| budget.admit(at(2_000 + n * 500)).is_some())
            .count();
        assert!((59..=61).contains(&logged), "{logged}");
        // After a quiet while the whole burst is back.
        let later = at(200_000);
        assert!((0..3).all(|_| budget.admit(later).is_some()));
        assert_eq!(budget.admit(later), None);
    }

    #[test]
    fn descriptions_are_cut_and_masked() {
        let opener = ExecOpener::new(
            [
                "/usr/bin/ffmpeg",
                "-i",
                "rtsp://admin:hunter2@cam/1",
                "-f",
                "mjpeg",
                "-",
            ]
            .map(String::from)
            .to_vec(),
            PipeFormat::Mjpeg,
            FrameSize::new(640, 360),
        );
        assert_eq!(
            opener.describe(),
            "exec:/usr/bin/ffmpeg -i rtsp://admin:***@cam/1 -f mjpeg -"
        );
        assert_eq!(opener.label, "exec:ffmpeg");
        assert_eq!(opener.process().unwrap().program, "ffmpeg");
        let long = "x".repeat(500);
        assert_eq!(cut(&long, 160).chars().count(), 161);
        assert_eq!(cut("short", 160), "short");
    }

    #[test]
    fn lines_are_masked_before_they_are_cut() {
        let password_at_the_cut = format!(
            "{} rtsp://admin:hunter2@cam/stream and more",
            "x".repeat(MAX_STDERR_LINE_CHARS - 20)
        );
        let logged = loggable_line(password_at_the_cut.as_bytes(), false).unwrap();
        assert!(!logged.contains("hunt"), "{logged}");
        assert!(logged.ends_with("rtsp://admin:***@ca…"), "{logged}");
        // A line longer than what is kept loses its last, partial word.
        let dropped_in_a_word = b"open rtsp://admin:hunt";
        assert_eq!(
            loggable_line(dropped_in_a_word, true).as_deref(),
            Some("open…")
        );
        assert_eq!(
            loggable_line(b"\x1b[31mred\x1b[0m\tdone", false).as_deref(),
            Some("[31mred [0m done")
        );
        assert_eq!(loggable_line(b" \t ", false), None);
    }

    #[test]
    fn errors_are_told_from_chatter() {
        assert!(looks_like_an_error(
            "[rtsp @ 0x55] method DESCRIBE failed: 401 Unauthorized"
        ));
        assert!(looks_like_an_error("Connection refused"));
        assert!(!looks_like_an_error(
            "Stream #0:0: Video: mjpeg, yuvj420p, 320x240"
        ));
    }

    fn sh(script: &str) -> ExecOpener {
        ExecOpener::new(
            ["sh", "-c", script].map(String::from).to_vec(),
            PipeFormat::Mjpeg,
            FrameSize::new(320, 240),
        )
    }

    #[test]
    fn the_exit_of_the_command_ends_the_source_with_its_status() {
        let mut opener = sh("exit 3");
        let mut source = opener.open().expect("sh starts");
        let Err(SourceError::Ended(reason)) = source.next_frame() else {
            panic!("a command without output delivered");
        };
        assert!(
            reason.starts_with("exec:sh exited with status 3 after"),
            "{reason}"
        );
        let status = opener.process().unwrap();
        assert!(!status.running);
        assert_eq!(status.last_exit.as_deref(), Some("exited with status 3"));
        drop(source);
        let _again = opener.open().expect("sh starts again");
        let status = opener.process().unwrap();
        assert!(status.running && status.restarts == 1, "{status:?}");
    }

    #[test]
    fn a_program_that_is_not_there_is_a_failure_to_retry() {
        let mut opener = ExecOpener::new(
            vec!["/nonexistent/framecast-test-program".into()],
            PipeFormat::Mjpeg,
            FrameSize::new(320, 240),
        );
        let Err(SourceError::Failed(reason)) = opener.open() else {
            panic!("a missing program started");
        };
        assert!(
            reason.starts_with("cannot start framecast-test-program:"),
            "{reason}"
        );
    }

    #[test]
    fn dropping_the_source_stops_the_command_and_what_it_started() {
        // The shell starts a sleep of its own (the group's second process) and waits.
        let mut opener = sh("sleep 60 & echo $! >&2; wait");
        let source = opener.open().expect("sh starts");
        let pid = opener.process().unwrap().pid.unwrap();
        assert!(process_exists(pid));
        assert!(group_members(pid) >= 1, "sh leads a group of its own");
        drop(source);
        assert!(!process_exists(pid), "sh still runs");
        assert_group_ends(pid);
        let status = opener.process().unwrap();
        assert!(!status.running);
        // SIGTERM was enough, no SIGKILL needed.
        assert_eq!(status.last_exit.as_deref(), Some("was ended by signal 15"));
    }

    #[test]
    fn the_next_start_stops_a_run_that_is_still_going() {
        // A silent command given up by the supervisor: its source is still held by a reader
        // thread blocked in reading it.
        let mut opener = sh("sleep 60");
        let _stuck = opener.open().expect("sh starts");
        let first = opener.process().unwrap().pid.unwrap();
        let next = opener.open().expect("sh starts again");
        assert!(!process_exists(first), "the first run still goes on");
        let status = opener.process().unwrap();
        assert!(status.running && status.restarts == 1, "{status:?}");
        assert_eq!(next.reopen_after_silence(), Some(RESTART_SILENT_AFTER));
    }

    #[test]
    fn a_command_that_ignores_sigterm_is_killed() {
        let mut opener = sh("trap '' TERM; echo ready >&2; while :; do sleep 0.05; done");
        let _source = opener.open().expect("sh starts");
        let pid = opener.process().unwrap().pid.unwrap();
        // Let the shell install its trap.
        std::thread::sleep(Duration::from_millis(300));
        drop(opener);
        assert!(!process_exists(pid));
        assert_group_ends(pid);
    }

    #[test]
    fn what_a_command_leaves_behind_when_it_exits_is_ended_too() {
        // The shell starts a sleep that ignores SIGTERM in the background and exits at once.
        let mut opener = sh("trap '' TERM; sleep 60 >/dev/null & exit 0");
        let mut source = opener.open().expect("sh starts");
        let pid = opener.process().unwrap().pid.unwrap();
        let Err(SourceError::Ended(reason)) = source.next_frame() else {
            panic!("a command without output delivered");
        };
        assert!(reason.contains("exited with status 0"), "{reason}");
        assert_group_ends(pid);
    }

    /// Waits (bounded) until no live process is left in the group `pgid`.
    fn assert_group_ends(pgid: u32) {
        for _ in 0..500 {
            if group_members(pgid) == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("processes of group {pgid} outlived the command");
    }

    /// Live (not zombie) processes whose group is `pgid`, from /proc/PID/stat (proc(5): after
    /// the command name in parentheses come state, ppid, pgrp).
    fn group_members(pgid: u32) -> usize {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0;
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .map_or("", |(_, rest)| rest)
                    .split_whitespace()
                    .collect();
                fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
            })
            .count()
    }

    fn process_exists(pid: u32) -> bool {
        // A reaped process has no /proc entry; a zombie would still have one.
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }
}
