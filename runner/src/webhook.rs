//! Optional notifications to a Discord-compatible webhook on crashes, updates, rollbacks, failures
//! and backups.
//!
//! The body follows Discord's "Execute Webhook" request: `{"username", "content", "embeds":
//! [{"title", "description", "color", "timestamp", "fields": [{"name", "value", "inline"}]}],
//! "allowed_mentions": {"parse": []}}`, with texts cut to Discord's limits (title 256, description
//! 4096, 25 fields of 256/1024, 6000 in all, content 2000) and mentions disabled so a log line
//! cannot ping `@everyone`. Slack-style and most generic JSON receivers accept it too.
//!
//! [`Webhook::notify`] never waits on the network: it puts the event on a bounded queue served by
//! one background task, which sends with a timeout and retries a few times, honouring HTTP 429
//! (`Retry-After` header or Discord's `retry_after` JSON field) and backing off on 5xx or
//! connection errors. Failures are logged, never returned to the caller.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The name shown as the message's author.
pub const USERNAME: &str = "Atlas";
/// Events sent when the config does not say.
pub const DEFAULT_EVENTS: [&str; 6] = [
    "crash",
    "update",
    "rollback",
    "failed",
    "unresponsive",
    "updaters",
];
/// Timeout of one HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per event (the first and the retries).
const ATTEMPTS: u32 = 4;
/// The longest wait for a rate limit; a longer one drops the event.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Events waiting to be sent; more are dropped with a warning.
const QUEUE: usize = 64;

/// `[webhook]` of the daemon's config.
#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// The webhook URL; none (the default) turns notifications off.
    pub url: Option<String>,
    /// Which events are sent: `crash`, `update`, `rollback`, `failed`,
    /// `unresponsive` (a frozen server), `updaters` (a second updater on the
    /// server directory), `backup`.
    pub events: Vec<String>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            url: None,
            events: DEFAULT_EVENTS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookKind {
    Crash,
    Update,
    Rollback,
    Failed,
    Backup,
    /// The server stopped answering pings (frozen).
    Unresponsive,
    /// Another updater (an atlas-fetcher timer) updates the server directory too.
    Updaters,
}

impl WebhookKind {
    pub const ALL: [WebhookKind; 7] = [
        Self::Crash,
        Self::Update,
        Self::Rollback,
        Self::Failed,
        Self::Backup,
        Self::Unresponsive,
        Self::Updaters,
    ];

    /// The name used in `events`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Crash => "crash",
            Self::Update => "update",
            Self::Rollback => "rollback",
            Self::Failed => "failed",
            Self::Backup => "backup",
            Self::Unresponsive => "unresponsive",
            Self::Updaters => "updaters",
        }
    }

    /// The embed's colour (0xRRGGBB).
    pub fn color(self) -> u32 {
        match self {
            Self::Crash => 0xE7_4C_3C,
            Self::Update => 0x2E_CC_71,
            Self::Rollback => 0xE6_7E_22,
            Self::Failed => 0x99_2D_22,
            Self::Backup => 0x34_98_DB,
            Self::Unresponsive => 0xF1_C4_0F,
            Self::Updaters => 0x9B_59_B6,
        }
    }
}

impl std::fmt::Display for WebhookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One notification.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    pub kind: WebhookKind,
    pub title: String,
    pub description: String,
    /// Shown as inline `name: value` fields.
    pub fields: Vec<(String, String)>,
}

/// Why a webhook is not usable, or why one delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook url `{url}` is not an http(s) URL: {message}; fix [webhook] url")]
    Url { url: String, message: String },
    #[error(
        "unknown webhook event `{event}` in [webhook] events; use crash, update, rollback, failed or backup"
    )]
    UnknownEvent { event: String },
    #[error("cannot set up the HTTP client for the webhook: {0}")]
    Client(String),
    #[error("webhook {url}: {message}")]
    Send { url: String, message: String },
}

/// A configured webhook.
#[derive(Debug)]
pub struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    /// The URL without its path (which holds the secret token), for logs and errors.
    display: String,
    events: Vec<WebhookKind>,
    queue: OnceLock<mpsc::Sender<WebhookEvent>>,
}

impl Webhook {
    /// `None` when no URL is configured.
    pub fn new(settings: WebhookSettings) -> Result<Option<Self>, WebhookError> {
        let Some(raw) = settings.url.filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let url = reqwest::Url::parse(raw.trim()).map_err(|e| WebhookError::Url {
            url: raw.clone(),
            message: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(WebhookError::Url {
                url: raw,
                message: "only http:// and https:// URLs with a host are supported".into(),
            });
        }
        let mut events = Vec::new();
        for e in &settings.events {
            let kind = WebhookKind::ALL
                .into_iter()
                .find(|k| k.name() == e.trim())
                .ok_or_else(|| WebhookError::UnknownEvent { event: e.clone() })?;
            events.push(kind);
        }
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("atlas-runner/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        let display = format!("{}://{}/…", url.scheme(), url.authority());
        Ok(Some(Self {
            client,
            url,
            display,
            events,
            queue: OnceLock::new(),
        }))
    }

    /// Whether events of `kind` are sent.
    pub fn wants(&self, kind: WebhookKind) -> bool {
        self.events.contains(&kind)
    }

    /// Queues `event` for sending (if its kind is wanted) and returns at once; delivery failures
    /// are logged. Needs a Tokio runtime (the sender task is started on first use).
    pub async fn notify(&self, event: WebhookEvent) {
        if !self.wants(event.kind) {
            return;
        }
        let tx = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(worker(
                self.client.clone(),
                self.url.clone(),
                self.display.clone(),
                rx,
            ));
            tx
        });
        if let Err(e) = tx.try_send(event) {
            tracing::warn!(webhook = %self.display, "webhook queue full or closed, event dropped: {e}");
        }
    }

    /// Sends `event` now (whatever its kind), with the retries, and says how it went.
    pub async fn deliver(&self, event: &WebhookEvent) -> Result<(), WebhookError> {
        send(&self.client, &self.url, &self.display, event).await
    }
}

async fn worker(
    client: reqwest::Client,
    url: reqwest::Url,
    display: String,
    mut rx: mpsc::Receiver<WebhookEvent>,
) {
    while let Some(event) = rx.recv().await {
        if let Err(e) = send(&client, &url, &display, &event).await {
            tracing::warn!("webhook notification `{}` not delivered: {e}", event.title);
        }
    }
}

/// `s` cut to at most `max` characters (with an ellipsis when cut).
fn cut(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn non_empty(s: String) -> String {
    if s.trim().is_empty() { "-".to_owned() } else { s }
}

/// The JSON body for `event`, within Discord's limits.
pub fn payload(event: &WebhookEvent) -> Value {
    let title = non_empty(cut(&event.title, 256));
    // Discord refuses embeds over 6000 characters in all: fields that do not fit are left out,
    // then the description is cut to what is left.
    let mut budget = 6000usize.saturating_sub(title.chars().count());
    let mut fields = Vec::new();
    for (n, v) in event.fields.iter().take(25) {
        let (n, v) = (non_empty(cut(n, 256)), non_empty(cut(v, 1024)));
        let len = n.chars().count() + v.chars().count();
        if len > budget {
            break;
        }
        budget -= len;
        fields.push((n, v));
    }
    let description = cut(&event.description, 4096.min(budget));
    let timestamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let mut embed = json!({
        "title": title,
        "color": event.kind.color(),
        "timestamp": timestamp,
        "fields": fields
            .iter()
            .map(|(n, v)| json!({"name": n, "value": v, "inline": true}))
            .collect::<Vec<_>>(),
    });
    if !description.is_empty() {
        embed["description"] = Value::String(description);
    }
    json!({
        "username": USERNAME,
        "content": cut(&format!("[{}] {}", event.kind, event.title), 2000),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    })
}

/// How long a 429 asks to wait: the `Retry-After` header (seconds) or Discord's `retry_after`.
fn retry_after(headers: &reqwest::header::HeaderMap, body: &str) -> Option<Duration> {
    let from_header = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok());
    let from_body = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("retry_after").and_then(Value::as_f64));
    from_body
        .or(from_header)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

async fn send(
    client: &reqwest::Client,
    url: &reqwest::Url,
    shown: &str,
    event: &WebhookEvent,
) -> Result<(), WebhookError> {
    let body = serde_json::to_vec(&payload(event)).unwrap_or_default();
    let fail = |message: String| WebhookError::Send {
        url: shown.to_owned(),
        message,
    };
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let wait = match client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
        {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                let text = resp.text().await.unwrap_or_default();
                last = format!("HTTP {status}: {}", cut(text.trim(), 300));
                if status.as_u16() == 429 {
                    let wait = retry_after(&headers, &text).unwrap_or(Duration::from_secs(1));
                    if wait > MAX_RETRY_AFTER {
                        return Err(fail(format!(
                            "rate limited for {}; event dropped",
                            humantime::format_duration(wait)
                        )));
                    }
                    wait
                } else if status.is_server_error() {
                    Duration::from_secs(1 << (attempt - 1))
                } else {
                    return Err(fail(format!(
                        "{last}; check that [webhook] url is a valid webhook"
                    )));
                }
            }
            Err(e) => {
                // Without the URL: its path holds the webhook's secret token.
                last = format!("request failed: {}", e.without_url());
                Duration::from_secs(1 << (attempt - 1))
            }
        };
        if attempt < ATTEMPTS {
            tracing::debug!("webhook {shown}: attempt {attempt}: {last}; retrying in {wait:?}");
            tokio::time::sleep(wait).await;
        }
    }
    Err(fail(format!("gave up after {ATTEMPTS} attempts: {last}")))
}
