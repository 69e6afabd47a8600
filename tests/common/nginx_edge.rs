//! Debian's nginx as a caching edge in front of a running framecast, with the shipped
//! `contrib/nginx.conf` included verbatim: this file writes only what the contrib file asks
//! its user to write around it (the `framecast` upstream, the two cache zones, a `server`
//! with a `listen`) plus what an unprivileged run needs (temp paths, logs, pid file, all in
//! one directory of its own).
//!
//! Optionally a tap sits between the edge and framecast: a second, uncaching nginx server
//! that logs every request reaching framecast, query included (framecast's own request log
//! leaves queries out on purpose). The edge's access log records what each viewer got and
//! the cache status.
//!
//! Used by `tests/edge_cache.rs` and, through `#[path]`, `benches/edge_cache.rs`: std only.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's nginx (packages `nginx` / `nginx-light`).
pub const NGINX: &str = "/usr/sbin/nginx";

/// The Lua module the contrib file's waiting (`contrib/framecast_edge.lua`) runs on, and the
/// kit it needs, as Debian installs them (package `libnginx-mod-http-lua`).
pub const NGINX_LUA_MODULES: [&str; 2] = [
    "/usr/lib/nginx/modules/ndk_http_module.so",
    "/usr/lib/nginx/modules/ngx_http_lua_module.so",
];

/// What is missing to run the edge, named with its Debian package; `None` when nothing is.
pub fn missing() -> Option<String> {
    if !Path::new(NGINX).exists() {
        return Some(format!("{NGINX} (Debian package nginx)"));
    }
    NGINX_LUA_MODULES
        .iter()
        .find(|module| !Path::new(module).exists())
        .map(|module| format!("{module} (Debian package libnginx-mod-http-lua)"))
}

/// How long nginx may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stopped nginx may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts at a free port pair: a port found free can be taken before nginx binds it.
const START_ATTEMPTS: u32 = 3;

/// What an edge log line holds, in this order, space-separated (request URIs hold no spaces).
const EDGE_LOG_FORMAT: &str = "$request_method $request_uri $status $upstream_cache_status";
/// What a tap log line holds: every request that reached framecast, and whether it carried
/// credentials (never the credentials themselves).
const TAP_LOG_FORMAT: &str = "$request_method $request_uri $status $tap_credentials";

/// The contrib file, as shipped; `FRAMECAST_EDGE_CONF` names another to compare (the bench).
pub fn contrib_conf() -> PathBuf {
    std::env::var_os("FRAMECAST_EDGE_CONF")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/nginx.conf"))
}

/// One line of an access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// Path and query as the client sent them.
    pub uri: String,
    pub status: u16,
    /// In the edge's log `$upstream_cache_status` (HIT, MISS, BYPASS…, `-` where no cache is
    /// involved); in the tap's, `credentials` when the request had an Authorization header,
    /// `-` when not.
    pub tag: String,
}

impl LoggedRequest {
    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.split(' ');
        let method = fields.next()?.to_owned();
        let uri = fields.next()?.to_owned();
        let status = fields.next()?.parse().ok()?;
        let tag = fields.next().unwrap_or("").to_owned();
        Some(Self {
            method,
            uri,
            status,
            tag,
        })
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or(&self.uri)
    }
}

/// A running nginx; stopped (by its process id) and its directory removed when dropped.
pub struct NginxEdge {
    /// Where viewers connect.
    pub addr: SocketAddr,
    dir: PathBuf,
    child: Child,
}

impl NginxEdge {
    /// Starts nginx in front of `origin`; with `tap`, requests reach framecast through the
    /// logging tap ([`NginxEdge::origin_requests`]).
    pub fn start(origin: SocketAddr, tap: bool) -> Result<Self, String> {
        let mut last_error = String::new();
        for attempt in 0..START_ATTEMPTS {
            let dir = std::env::temp_dir().join(format!(
                "framecast-edge-{}-{}-{attempt}",
                std::process::id(),
                unique_suffix()
            ));
            match Self::start_in(&dir, origin, tap) {
                Ok(edge) => return Ok(edge),
                Err(error) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    fn start_in(dir: &Path, origin: SocketAddr, tap: bool) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let edge_port = free_port()?;
        let tap_port = free_port()?;
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            config(dir, edge_port, tap.then_some(tap_port), origin),
        )
        .map_err(|e| format!("{}: {e}", conf.display()))?;
        let globals = format!(
            "daemon off; pid {}; error_log {} warn;",
            dir.join("nginx.pid").display(),
            dir.join("error.log").display()
        );
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .args(["-g", &globals])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{NGINX}: {e}"))?;
        let mut edge = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], edge_port)),
            dir: dir.to_owned(),
            child,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = edge.child.try_wait() {
                return Err(format!("nginx exited ({status}): {}", edge.error_log()));
            }
            let ports = [Some(edge_port), tap.then_some(tap_port)];
            if ports
                .iter()
                .flatten()
                .all(|port| TcpStream::connect(("127.0.0.1", *port)).is_ok())
            {
                return Ok(edge);
            }
            if Instant::now() >= deadline {
                return Err(format!("nginx not listening: {}", edge.error_log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every request the edge answered, in the order they ended.
    pub fn edge_responses(&self) -> Vec<LoggedRequest> {
        read_log(&self.dir.join("edge.log"))
    }

    /// Every request that reached framecast (empty without the tap), in the order they ended.
    pub fn origin_requests(&self) -> Vec<LoggedRequest> {
        read_log(&self.dir.join("tap.log"))
    }

    /// The master's process id and its workers' (proc(5) `children`), for CPU figures.
    pub fn process_ids(&self) -> Vec<u32> {
        let master = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .unwrap_or_default();
        std::iter::once(master)
            .chain(
                children
                    .split_whitespace()
                    .filter_map(|pid| pid.parse().ok()),
            )
            .collect()
    }

    /// nginx's warnings and errors so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for NginxEdge {
    fn drop(&mut self) {
        // SIGTERM to the master (this child, by its id): it stops its workers, whose
        // listening sockets would otherwise outlive it. Killed if it does not exit in time.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::Term);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The generated nginx.conf: the Lua module, two workers (a viewer and the request fetching
/// what it waits for may be in different ones, as with `worker_processes auto`), an `http` block with the `framecast` upstream,
/// the cache zones, the Lua file's path and dictionary, the edge server including the contrib
/// file, and optionally the tap.
fn config(dir: &Path, edge_port: u16, tap_port: Option<u16>, origin: SocketAddr) -> String {
    let d = dir.display();
    // A master started as root hands its workers to `nobody`, who could not write here.
    let user = if running_as_root() {
        "user root;\n"
    } else {
        ""
    };
    let upstream = tap_port.map_or(origin, |port| SocketAddr::from(([127, 0, 0, 1], port)));
    let tap = tap_port.map_or(String::new(), |port| {
        format!(
            r#"
    upstream framecast_origin {{
        server {origin};
        keepalive 32;
        keepalive_timeout 4s;
    }}
    server {{
        listen 127.0.0.1:{port};
        access_log {d}/tap.log tap;
        location / {{
            proxy_pass http://framecast_origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 60s;
        }}
    }}
"#
        )
    });
    let modules: String = NGINX_LUA_MODULES
        .iter()
        .map(|module| format!("load_module {module};\n"))
        .collect();
    let contrib = contrib_conf();
    let lua_dir = contrib
        .parent()
        .unwrap_or(Path::new("."))
        .display()
        .to_string();
    format!(
        r#"{modules}{user}worker_processes 2;
events {{
    worker_connections 4096;
}}
http {{
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    log_format edge '{EDGE_LOG_FORMAT}';
    log_format tap '{TAP_LOG_FORMAT}';
    map $http_authorization $tap_credentials {{
        "" "-";
        default credentials;
    }}

    upstream framecast {{
        server {upstream};
        keepalive 32;
        keepalive_timeout 4s;
    }}
    proxy_cache_path {d}/cache levels=1:2 keys_zone=framecast:16m max_size=256m inactive=1m use_temp_path=off;
    proxy_cache_path {d}/viewers levels=1:2 keys_zone=framecast_viewers:4m max_size=16m inactive=1m use_temp_path=off;
    lua_package_path "{lua_dir}/?.lua;;";
    lua_shared_dict framecast_fetches 1m;
    server {{
        listen 127.0.0.1:{edge_port};
        access_log {d}/edge.log edge;
        include {contrib};
    }}
{tap}}}
"#,
        contrib = contrib.display(),
    )
}

fn read_log(path: &Path) -> Vec<LoggedRequest> {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    text.lines().filter_map(LoggedRequest::parse).collect()
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Also built into `benches/edge_cache.rs`, outside the tests' `common`.
fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Tells apart the directories of several edges in one process.
fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
