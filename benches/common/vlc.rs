//! VLC as the peer a user would pick for MJPEG over HTTP: `cvlc` reads concatenated JPEGs on
//! standard input (`--demux mjpeg`) and passes them through its `mpjpeg` mux to its HTTP
//! output, without decoding them. VLC refuses to run as root, so as root it is started as
//! `nobody` through `setpriv` (util-linux).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The path VLC serves the stream on.
pub const STREAM_PATH: &str = "/stream.mjpg";

/// The boundary VLC's `mpjpeg` mux writes. Its HTTP output says `application/octet-stream`
/// unless told the type, so it is told, as a user serving browsers would.
const MPJPEG_BOUNDARY: &str = "7b3cc56e5f51db803f790dad720ed50a";

/// How long VLC may take to start listening on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A VLC the generator started; killed when dropped.
pub struct Vlc {
    pub addr: SocketAddr,
    child: Child,
}

impl Vlc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts VLC serving at `fps` on a free loopback port; returns it and its standard input.
    /// It listens before any frame arrives: [`Vlc::wait_listening`], then feed it.
    pub fn spawn(fps: u32) -> Result<(Self, ChildStdin), String> {
        let addr = free_loopback_port()?;
        let sout = format!(
            "#standard{{access=http{{mime=multipart/x-mixed-replace;boundary={MPJPEG_BOUNDARY}}},\
             mux=mpjpeg,dst={addr}{STREAM_PATH}}}"
        );
        let mut command = if is_root() {
            let mut command = Command::new("setpriv");
            command.args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "cvlc",
            ]);
            command
        } else {
            Command::new("cvlc")
        };
        command
            .args(["--quiet", "--no-audio", "--demux", "mjpeg"])
            .arg(format!("--mjpeg-fps={fps}"))
            .args(["--sout", &sout, "--sout-keep", "-"])
            // nobody has no writable home; VLC only wants it for its caches.
            .env("HOME", "/tmp")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start VLC (cvlc, setpriv): {e}"))?;
        let Some(stdin) = child.stdin.take() else {
            let _ = child.kill();
            return Err("no standard input for VLC".into());
        };
        Ok((Self { addr, child }, stdin))
    }

    /// Waits until VLC accepts connections.
    pub fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("VLC exited: {status}"));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "VLC did not listen on {} within {START_TIMEOUT:?}",
                    self.addr
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Vlc {
    fn drop(&mut self) {
        // Only this child, by its handle; errors mean it has already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_loopback_port() -> Result<SocketAddr, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free loopback port: {e}"))?;
    listener
        .local_addr()
        .map_err(|e| format!("no free loopback port: {e}"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}
