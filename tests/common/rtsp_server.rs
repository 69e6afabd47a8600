//! The RTSP camera of the tests: gst-rtsp-server through Debian's python3-gi
//! (`tests/fixtures/rtsp_server.py`), listening on loopback and encoding a moving test
//! pattern with x264 (or x265), killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SERVER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rtsp_server.py");
/// Debian's Python, which has python3-gi (a python3 earlier on PATH may not).
const PYTHON: &str = "/usr/bin/python3";
/// How long the server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// What the test server needs, or `None` when all of it is there.
pub fn missing() -> Option<String> {
    let check = "import gi\n\
                 gi.require_version('Gst', '1.0')\n\
                 gi.require_version('GstRtspServer', '1.0')\n\
                 from gi.repository import Gst, GstRtspServer\n\
                 Gst.init(None)\n\
                 missing = [e for e in ('videotestsrc', 'x264enc', 'rtph264pay', 'tee', 'filesink') \
                            if Gst.ElementFactory.find(e) is None]\n\
                 assert not missing, missing\n";
    let ok = Command::new(PYTHON)
        .args(["-c", check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!ok).then(|| {
        "gst-rtsp-server through python3-gi with x264enc (Debian: python3-gi \
         gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly)"
            .to_owned()
    })
}

/// Whether this GStreamer has the H.265 encoder (gstreamer1.0-plugins-bad).
pub fn has_x265() -> bool {
    Command::new(PYTHON)
        .args([
            "-c",
            "import gi\ngi.require_version('Gst', '1.0')\nfrom gi.repository import Gst\n\
             Gst.init(None)\nassert Gst.ElementFactory.find('x265enc')",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The test RTSP server, killed when dropped.
pub struct RtspServer {
    child: Child,
    pub port: u16,
}

impl RtspServer {
    /// Starts the server on `port` (0: any) with the script's `args`.
    pub fn start(port: u16, args: &[&str]) -> Self {
        let mut child = Command::new(PYTHON)
            .arg(SERVER_SCRIPT)
            .args(["--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the RTSP server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("PORT ") {
                    let _ = tx.send(port.trim().parse::<u16>());
                }
            }
        });
        let port = rx
            .recv_timeout(START_TIMEOUT)
            .expect("the RTSP server did not say its port")
            .expect("the RTSP server's port");
        Self { child, port }
    }

    /// Starts the server as [`RtspServer::start`] does, also writing the H.264 it sends, as
    /// x264 made it (Annex B), to `dump`.
    pub fn start_dumping(port: u16, args: &[&str], dump: &Path) -> Self {
        let dump = dump.to_str().expect("a UTF-8 path");
        let mut all = args.to_vec();
        all.extend(["--dump", dump]);
        Self::start(port, &all)
    }

    /// The stream's address, with `userinfo` (`user:pass@`) and `fragment` (`#udp`).
    pub fn url(&self, userinfo: &str, fragment: &str) -> String {
        format!("rtsp://{userinfo}127.0.0.1:{}/test{fragment}", self.port)
    }

    /// Stops the server; its port is free again once this returns.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.kill();
    }
}
