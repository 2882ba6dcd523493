//! Prometheus metrics of the runner (`GET /metrics` in the OpenMetrics text format), served on
//! loopback by default.
//!
//! The endpoint has no authentication and reveals the server's state, build and player count, so
//! [`bind`] refuses a non-loopback address unless `allow_remote = true` is set explicitly: put a
//! reverse proxy or a firewall in front before exposing it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// The supervisor states, exported one-hot as `atlas_runner_state{state=...}`.
pub const STATES: [&str; 7] = [
    "stopped", "starting", "running", "stopping", "crashed", "updating", "failed",
];

/// What the OpenMetrics text encoder produces.
pub const CONTENT_TYPE_OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `[metrics]` of the daemon's config.
#[derive(Deserialize, Serialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// `host:port` of the endpoint; none (the default) turns it off.
    pub listen: Option<SocketAddr>,
    /// Allow a non-loopback `listen` address (the endpoint has no authentication).
    pub allow_remote: bool,
}

/// Why the endpoint cannot run.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "metrics listen address {addr} is not a loopback address; the endpoint has no \
         authentication, so use 127.0.0.1 (or ::1), or set `allow_remote = true` in [metrics] \
         behind a firewall or reverse proxy"
    )]
    NotLoopback { addr: SocketAddr },
    #[error("cannot listen for metrics on {addr}: {reason}; pick a free port in [metrics] listen")]
    Bind {
        addr: SocketAddr,
        reason: std::io::Error,
    },
    #[error("the metrics endpoint on {addr} failed: {reason}")]
    Serve { addr: String, reason: std::io::Error },
}

type Labels = Vec<(String, String)>;

#[derive(Debug)]
struct Inner {
    registry: Registry,
    state: Family<Labels, Gauge>,
    uptime: Gauge<f64, AtomicU64>,
    restarts: Counter,
    updates: Family<Labels, Counter>,
    update_duration: Histogram,
    backup_duration: Histogram,
    backup_size: Gauge,
    players_online: Gauge,
    players_max: Gauge,
    build_info: Family<Labels, Gauge>,
}

/// The runner's metrics; cheap to clone (one shared registry).
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn label(name: &str, value: &str) -> Labels {
    vec![(name.to_owned(), value.to_owned())]
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Metrics {
    /// A registry with every series; the state starts as `stopped`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("atlas_runner");
        let state = Family::<Labels, Gauge>::default();
        let uptime = Gauge::<f64, AtomicU64>::default();
        let restarts = Counter::default();
        let updates = Family::<Labels, Counter>::default();
        // 1 s .. ~68 min
        let update_duration = Histogram::new(exponential_buckets(1.0, 2.0, 13));
        // 0.1 s .. ~55 min
        let backup_duration = Histogram::new(exponential_buckets(0.1, 2.0, 16));
        let backup_size = Gauge::default();
        let players_online = Gauge::default();
        let players_max = Gauge::default();
        let build_info = Family::<Labels, Gauge>::default();
        registry.register("state", "Supervisor state (1 for the current one)", state.clone());
        registry.register(
            "uptime_seconds",
            "Seconds since the server became ready",
            uptime.clone(),
        );
        registry.register("restarts", "Restarts after a crash", restarts.clone());
        registry.register("updates", "Updates by outcome", updates.clone());
        registry.register(
            "update_duration_seconds",
            "Duration of updates",
            update_duration.clone(),
        );
        registry.register(
            "backup_duration_seconds",
            "Duration of backups",
            backup_duration.clone(),
        );
        registry.register(
            "backup_size_bytes",
            "Size of the latest backup archive",
            backup_size.clone(),
        );
        registry.register("players_online", "Players online", players_online.clone());
        registry.register("players_max", "Player slots", players_max.clone());
        registry.register("build_info", "The installed build (always 1)", build_info.clone());
        let metrics = Self {
            inner: Arc::new(Inner {
                registry,
                state,
                uptime,
                restarts,
                updates,
                update_duration,
                backup_duration,
                backup_size,
                players_online,
                players_max,
                build_info,
            }),
        };
        metrics.set_state("stopped");
        metrics
    }

    /// Makes `state` the only state at 1 (an unknown name is added as its own series).
    pub fn set_state(&self, state: &str) {
        for s in STATES {
            self.inner.state.get_or_create(&label("state", s)).set(0);
        }
        self.inner.state.get_or_create(&label("state", state)).set(1);
        if !STATES.contains(&state) {
            tracing::debug!(state, "metrics: state outside the known set");
        }
    }

    pub fn set_uptime(&self, uptime: Duration) {
        self.inner.uptime.set(uptime.as_secs_f64());
    }

    pub fn inc_restarts(&self) {
        self.inner.restarts.inc();
    }

    /// Counts an update with its `outcome` (`updated`, `rolled_back`, `failed`, ...) and duration.
    pub fn observe_update(&self, outcome: &str, duration: Duration) {
        self.inner.updates.get_or_create(&label("outcome", outcome)).inc();
        self.inner.update_duration.observe(duration.as_secs_f64());
    }

    pub fn observe_backup(&self, duration: Duration, size: u64) {
        self.inner.backup_duration.observe(duration.as_secs_f64());
        self.inner.backup_size.set(saturating_i64(size));
    }

    pub fn set_players(&self, online: u32, max: u32) {
        self.inner.players_online.set(i64::from(online));
        self.inner.players_max.set(i64::from(max));
    }

    /// Replaces `atlas_runner_build_info{build,version}`.
    pub fn set_build(&self, build: &str, version: &str) {
        self.inner.build_info.clear();
        let labels = vec![
            ("build".to_owned(), build.to_owned()),
            ("version".to_owned(), version.to_owned()),
        ];
        self.inner.build_info.get_or_create(&labels).set(1);
    }

    /// The OpenMetrics text exposition ([`CONTENT_TYPE_OPENMETRICS`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.inner.registry) {
            tracing::error!("encoding metrics failed: {e}");
        }
        out
    }
}

/// Listens on `addr`, refusing a non-loopback address unless `allow_remote`: the endpoint has no
/// authentication and would tell anyone on the network about the server.
pub async fn bind(addr: SocketAddr, allow_remote: bool) -> Result<TcpListener, MetricsError> {
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(MetricsError::NotLoopback { addr });
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, reason: source })
}

async fn get_metrics(State(metrics): State<Metrics>) -> impl IntoResponse {
    ([(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)], metrics.encode())
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MetricsError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "(unknown address)".to_owned(), |a| a.to_string());
    let app = Router::new()
        .route("/metrics", get(get_metrics))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| MetricsError::Serve { addr, reason: source })
}
