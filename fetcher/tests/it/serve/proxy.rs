//! A TCP proxy between the fetcher and the web server under test that can
//! stall one response midway: the bytes stop after a given count while the
//! connection stays open, as a network that hangs does, so the test can kill
//! the fetcher in the middle of a blob. Otherwise it passes bytes through,
//! with the `Host` header naming the server (as a CDN in front of an origin
//! does; Caddy logs a site's requests by host and port).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The response to stall: the request line's key, and the bytes of the
/// response (headers included) let through before it stops.
type Stall = Option<(String, u64)>;

#[derive(Debug)]
pub(super) struct StallingProxy {
    port: u16,
    stall: Arc<Mutex<Stall>>,
    stalled: Arc<AtomicBool>,
    /// Set to drop the stalled connection.
    release: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl StallingProxy {
    /// Listens on 127.0.0.1 and forwards to `upstream_port` there.
    pub(super) async fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("address").port();
        let stall: Arc<Mutex<Stall>> = Arc::default();
        let stalled = Arc::new(AtomicBool::new(false));
        let release = Arc::new(tokio::sync::Notify::new());
        let (s, st, r) = (stall.clone(), stalled.clone(), release.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                    continue;
                };
                let host = (
                    format!("host: 127.0.0.1:{port}\r\n"),
                    format!("host: 127.0.0.1:{upstream_port}\r\n"),
                );
                tokio::spawn(connection(
                    client,
                    upstream,
                    host,
                    s.clone(),
                    st.clone(),
                    r.clone(),
                ));
            }
        });
        Self {
            port,
            stall,
            stalled,
            release,
            task,
        }
    }

    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The next response to `GET /<key>` stops after `bytes` bytes.
    pub(super) fn stall_next(&self, key: &str, bytes: u64) {
        *self.stall.lock().expect("lock") = Some((format!("GET /{key} "), bytes));
    }

    /// Whether a response has been stalled.
    pub(super) fn stalled(&self) -> bool {
        self.stalled.load(Ordering::SeqCst)
    }

    /// Closes the stalled connection (both sides).
    pub(super) fn release(&self) {
        self.release.notify_waiters();
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.release.notify_waiters();
        self.task.abort();
    }
}

/// One client connection: requests go up as they come; a request for the
/// armed key sets how much of its response comes back down.
async fn connection(
    client: TcpStream,
    upstream: TcpStream,
    (host_from, host_to): (String, String),
    stall: Arc<Mutex<Stall>>,
    stalled: Arc<AtomicBool>,
    release: Arc<tokio::sync::Notify>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut up_read, mut up_write) = upstream.into_split();
    // Bytes of the current response still to let through (u64::MAX: all).
    let budget = Arc::new(AtomicU64::new(u64::MAX));
    let up_budget = budget.clone();
    let requests = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // Requests are small and arrive whole (a GET has no body).
            let text = String::from_utf8_lossy(&buf[..n]).replace(&host_from, &host_to);
            {
                let mut armed = stall.lock().expect("lock");
                if let Some((line, bytes)) = armed.as_ref()
                    && text.contains(line.as_str())
                {
                    up_budget.store(*bytes, Ordering::SeqCst);
                    *armed = None;
                }
            }
            if up_write.write_all(text.as_bytes()).await.is_err() {
                return;
            }
        }
    };
    let responses = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let left = budget.load(Ordering::SeqCst);
            if left == 0 {
                stalled.store(true, Ordering::SeqCst);
                // Hold both sides open, sending nothing, until released.
                release.notified().await;
                return;
            }
            let n = match up_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // The budget may have been set while this read waited.
            let left = budget.load(Ordering::SeqCst);
            let n = usize::try_from(left).map_or(n, |l| n.min(l));
            if left != u64::MAX {
                budget.store(left - n as u64, Ordering::SeqCst);
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either direction ending ends the connection (both halves drop).
    tokio::select! {
        () = requests => {}
        () = responses => {}
    }
}
