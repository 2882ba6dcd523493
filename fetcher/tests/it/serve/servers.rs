//! The web servers of the serving tests: nginx and Caddy as child processes
//! on 127.0.0.1, configured from the committed files of `examples/serve/`,
//! and what their access logs say.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::repo_root;

/// A web server that serves a store with a committed example configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Nginx,
    Caddy,
}

impl Kind {
    /// The binary, on PATH or where Debian's package puts it.
    fn binary(self) -> PathBuf {
        let (name, debian, package) = match self {
            Kind::Nginx => ("nginx", "/usr/sbin/nginx", "nginx"),
            Kind::Caddy => ("caddy", "/usr/bin/caddy", "caddy"),
        };
        let on_path = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join(name))
            .find(|p| p.is_file());
        match on_path.or_else(|| Some(PathBuf::from(debian)).filter(|p| p.is_file())) {
            Some(p) => p,
            None => panic!(
                "{name} is not installed: the serving tests run the real server against the \
                 committed example configuration. Install Debian's package: `apt-get install {package}` \
                 (`bash .ci/run` does)"
            ),
        }
    }
}

/// A server child process on 127.0.0.1 with its configuration and logs in a
/// temporary prefix; stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub(super) struct Server {
    kind: Kind,
    child: Child,
    port: u16,
    prefix: tempfile::TempDir,
    access_log: PathBuf,
}

/// One line of the server's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hit {
    pub(super) method: String,
    /// Store key (the URL path without its leading `/`).
    pub(super) key: String,
    pub(super) status: u16,
    /// Body bytes sent.
    pub(super) bytes: u64,
    /// The request's `Range` header, if any.
    pub(super) range: Option<String>,
}

/// Replaces the one occurrence of `from` in a committed file's text: a file
/// that no longer has it exactly once fails the test instead of being served
/// in some other shape than the one documented.
fn replace_once(text: &str, from: &str, to: &str, file: &Path) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{}: the test serves this file with `{from}` replaced; it must occur exactly once",
        file.display()
    );
    text.replacen(from, to, 1)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

impl Server {
    /// Starts `kind` serving the store directory `store`. The port is found
    /// free beforehand; if another process takes it in between, a new one is tried.
    pub(super) fn start(kind: Kind, store: &Path) -> Self {
        let binary = kind.binary();
        let mut last_error = String::new();
        for _ in 0..5 {
            let prefix = tempfile::tempdir().expect("tmp");
            let port = free_port();
            let access_log = prefix.path().join("access.log");
            let mut command = match kind {
                Kind::Nginx => nginx_command(&binary, prefix.path(), port, store, &access_log),
                Kind::Caddy => caddy_command(&binary, prefix.path(), port, store, &access_log),
            };
            let stderr_file = prefix.path().join("stderr.log");
            let stderr = std::fs::File::create(&stderr_file).expect("create stderr log");
            let child = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            let mut server = Self {
                kind,
                child,
                port,
                prefix,
                access_log,
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(log) => last_error = log,
            }
            if !last_error.contains("ddress already in use") {
                break;
            }
        }
        panic!("{kind:?} did not start:\n{last_error}");
    }

    /// Waits until the port accepts connections; on exit or timeout, the logs.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("exited with {status}:\n{}", self.logs()));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Still running a moment later: the listener is ours, not
                // another process's that took the port first.
                std::thread::sleep(Duration::from_millis(50));
                if let Some(status) = self.child.try_wait().expect("try_wait") {
                    return Err(format!("exited with {status}:\n{}", self.logs()));
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not listening after 20 s:\n{}", self.logs()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.prefix.path().join(f)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Every request logged so far. A server writes the line once the
    /// response is sent, so this waits until the log stops growing.
    pub(super) fn hits(&self) -> Vec<Hit> {
        let read = || std::fs::read_to_string(&self.access_log).unwrap_or_default();
        let mut text = read();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let again = read();
            if again == text {
                break;
            }
            text = again;
        }
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| self.parse_hit(l))
            .collect()
    }

    /// The requests logged after the first `since`.
    pub(super) fn hits_since(&self, since: usize) -> Vec<Hit> {
        self.hits().into_iter().skip(since).collect()
    }

    fn parse_hit(&self, line: &str) -> Hit {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("access log line {line:?}: {e}"));
        let (method, uri, status, bytes, range) = match self.kind {
            // The `atlas_test` log_format of nginx_command.
            Kind::Nginx => (&v["method"], &v["uri"], &v["status"], &v["bytes"], &v["range"]),
            // Caddy's JSON access log (request headers as lists of values).
            Kind::Caddy => (
                &v["request"]["method"],
                &v["request"]["uri"],
                &v["status"],
                &v["size"],
                &v["request"]["headers"]["Range"][0],
            ),
        };
        let text = |x: &serde_json::Value| x.as_str().unwrap_or_else(|| panic!("{line}")).to_owned();
        let number = |x: &serde_json::Value| x.as_u64().unwrap_or_else(|| panic!("{line}"));
        Hit {
            method: text(method),
            key: text(uri).trim_start_matches('/').to_owned(),
            status: u16::try_from(number(status)).expect("an HTTP status"),
            bytes: number(bytes),
            range: range.as_str().filter(|r| !r.is_empty()).map(str::to_owned),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("a pid"));
        // nginx: fast shutdown of master and workers; Caddy: graceful stop.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx, as Debian's /etc/nginx/nginx.conf sets up its `http` block
/// (mime.types, octet-stream default, gzip on), with the committed site
/// `examples/serve/nginx/atlas.conf` enabled and its `include
/// snippets/atlas-store.conf` resolving to the committed snippet. Run as root
/// (CI), nginx's workers run as `nobody`, as they run as `www-data` on a host:
/// the store must be readable by another user.
fn nginx_command(binary: &Path, prefix: &Path, port: u16, store: &Path, access_log: &Path) -> Command {
    let examples = repo_root().join("examples/serve/nginx");
    let site_file = examples.join("atlas.conf");
    let site = std::fs::read_to_string(&site_file).expect("read the example site");
    let site = replace_once(
        &site,
        "listen 80;",
        &format!("listen 127.0.0.1:{port};"),
        &site_file,
    );
    let site = replace_once(&site, "listen [::]:80;", "", &site_file);
    let site = replace_once(
        &site,
        "root /srv/atlas/store;",
        &format!("root {};", store.display()),
        &site_file,
    );
    std::fs::create_dir_all(prefix.join("snippets")).expect("mkdir");
    std::os::unix::fs::symlink(
        examples.join("atlas-store.conf"),
        prefix.join("snippets/atlas-store.conf"),
    )
    .expect("link the snippet");
    let site_path = prefix.join("atlas.conf");
    std::fs::write(&site_path, site).expect("write the site");
    let mime_types = nginx_conf_dir(binary).join("mime.types");
    assert!(
        mime_types.is_file(),
        "{} is missing: the test reads nginx's own mime.types, as Debian's nginx.conf does",
        mime_types.display()
    );
    let p = prefix.display();
    let main = format!(
        r#"daemon off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log;
events {{ worker_connections 64; }}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include {mime};
    default_type application/octet-stream;
    gzip on;
    log_format atlas_test escape=json
        '{{"method":"$request_method","uri":"$request_uri","status":$status,'
        '"bytes":$body_bytes_sent,"range":"$http_range"}}';
    access_log {log} atlas_test;
    client_body_temp_path {p}/client_body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    include {site};
}}
"#,
        mime = mime_types.display(),
        log = access_log.display(),
        site = site_path.display(),
    );
    let conf = prefix.join("nginx.conf");
    std::fs::write(&conf, main).expect("write nginx.conf");
    let mut c = Command::new(binary);
    c.arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(prefix.join("error.log"));
    c
}

/// The directory of nginx's compiled-in configuration (`--conf-path`),
/// where its mime.types is.
fn nginx_conf_dir(binary: &Path) -> PathBuf {
    let out = Command::new(binary).arg("-V").output().expect("nginx -V");
    let text = String::from_utf8_lossy(&out.stderr);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("--conf-path="))
        .and_then(|p| Path::new(p).parent())
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("/etc/nginx"))
}

/// Caddy with the committed `examples/serve/caddy/Caddyfile`, its site
/// address made `http://127.0.0.1:PORT` (no HTTPS), and global options that
/// keep a test run to itself: no admin endpoint, loopback only.
fn caddy_command(binary: &Path, prefix: &Path, port: u16, store: &Path, access_log: &Path) -> Command {
    let examples = repo_root().join("examples/serve/caddy");
    let site_file = examples.join("Caddyfile");
    let site = std::fs::read_to_string(&site_file).expect("read the example Caddyfile");
    let site = replace_once(
        &site,
        "\ncdn.example.com {",
        &format!("\nhttp://127.0.0.1:{port} {{"),
        &site_file,
    );
    let site = replace_once(
        &site,
        "root * /srv/atlas/store",
        &format!("root * {}", store.display()),
        &site_file,
    );
    let site = replace_once(
        &site,
        "output file /var/log/caddy/atlas-access.log",
        &format!("output file {}", access_log.display()),
        &site_file,
    );
    std::os::unix::fs::symlink(
        examples.join("atlas-store.caddy"),
        prefix.join("atlas-store.caddy"),
    )
    .expect("link the snippet");
    let conf = prefix.join("Caddyfile");
    std::fs::write(
        &conf,
        format!("{{\n\tadmin off\n\tdefault_bind 127.0.0.1\n}}\n\n{site}"),
    )
    .expect("write Caddyfile");
    let mut c = Command::new(binary);
    c.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&conf)
        // Caddy's data and autosaved configuration stay in the prefix.
        .env("HOME", prefix)
        .env("XDG_DATA_HOME", prefix.join("data"))
        .env("XDG_CONFIG_HOME", prefix.join("config"));
    c
}
