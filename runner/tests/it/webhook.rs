//! Webhooks against a local HTTP server capturing the JSON: the Discord body, event filtering,
//! retries after 429, no retry after a client error.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_runner::webhook::{Webhook, WebhookEvent, WebhookKind, WebhookSettings};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

/// A safety limit for waits, never an assertion about speed.
const PATIENCE: Duration = Duration::from_secs(60);

/// A response: status, headers, body.
type Scripted = (u16, Vec<(&'static str, &'static str)>, &'static str);

/// Answers with the scripted responses in order (then 204), recording every body.
#[derive(Clone, Default)]
struct Capture {
    bodies: Arc<Mutex<Vec<Value>>>,
    script: Arc<Mutex<VecDeque<Scripted>>>,
}

impl Capture {
    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().expect("bodies").clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let b = self.bodies();
            if b.len() >= n || tokio::time::Instant::now() > deadline {
                return b;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn hook(State(c): State<Capture>, headers: HeaderMap, body: String) -> (StatusCode, HeaderMap, String) {
    assert_eq!(headers["content-type"], "application/json");
    c.bodies
        .lock()
        .expect("bodies")
        .push(serde_json::from_str(&body).expect("JSON body"));
    let next = c.script.lock().expect("script").pop_front();
    let (status, hdrs, body) = next.unwrap_or((204, Vec::new(), ""));
    let mut out = HeaderMap::new();
    for (k, v) in hdrs {
        out.insert(k, v.parse().expect("header"));
    }
    (
        StatusCode::from_u16(status).expect("status"),
        out,
        body.to_owned(),
    )
}

async fn start(capture: &Capture) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new()
        .route("/api/webhooks/1/secret", post(hook))
        .with_state(capture.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/api/webhooks/1/secret")
}

fn webhook(url: &str, events: Option<&[&str]>) -> Webhook {
    let mut settings = WebhookSettings {
        url: Some(url.to_owned()),
        ..Default::default()
    };
    if let Some(e) = events {
        settings.events = e.iter().map(|s| (*s).to_owned()).collect();
    }
    Webhook::new(settings).expect("settings").expect("configured")
}

fn event(kind: WebhookKind, title: &str) -> WebhookEvent {
    WebhookEvent {
        kind,
        title: title.to_owned(),
        description: "the server stopped unexpectedly".to_owned(),
        fields: vec![
            ("Build".into(), "abc123".into()),
            ("Restarts".into(), String::new()),
        ],
    }
}

#[tokio::test]
async fn sends_discord_json_for_wanted_events_only() {
    let capture = Capture::default();
    let url = start(&capture).await;
    let hook = webhook(&url, None);
    assert!(!hook.wants(WebhookKind::Backup), "not a default event");

    hook.notify(event(WebhookKind::Backup, "Backup written")).await;
    hook.notify(event(WebhookKind::Crash, "Server crashed")).await;
    let bodies = capture.wait_for(1).await;
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    let b = &bodies[0];
    assert_eq!(b["username"], "Atlas");
    assert!(b["content"].as_str().expect("content").contains("Server crashed"));
    assert_eq!(b["allowed_mentions"]["parse"], serde_json::json!([]));
    let embed = &b["embeds"][0];
    assert_eq!(embed["title"], "Server crashed");
    assert_eq!(embed["description"], "the server stopped unexpectedly");
    assert_eq!(embed["color"], WebhookKind::Crash.color());
    humantime::parse_rfc3339(embed["timestamp"].as_str().expect("timestamp")).expect("RFC 3339");
    assert_eq!(embed["fields"][0]["name"], "Build");
    assert_eq!(embed["fields"][0]["value"], "abc123");
    assert_eq!(
        embed["fields"][1]["value"], "-",
        "Discord refuses empty field values"
    );

    // Discord's limits.
    let mut big = event(WebhookKind::Failed, &"t".repeat(300));
    big.description = "d".repeat(10_000);
    big.fields = (0..30)
        .map(|i| {
            (
                format!("f{i}"),
                if i == 0 { "v".repeat(2000) } else { "v".into() },
            )
        })
        .collect();
    hook.deliver(&big).await.expect("deliver");
    let b = capture.wait_for(2).await.pop().expect("body");
    let embed = &b["embeds"][0];
    assert_eq!(embed["title"].as_str().expect("title").chars().count(), 256);
    assert_eq!(embed["fields"].as_array().expect("fields").len(), 25);
    let total = embed["title"].as_str().expect("t").chars().count()
        + embed["description"].as_str().map_or(0, |d| d.chars().count())
        + embed["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|f| {
                f["name"].as_str().expect("n").chars().count()
                    + f["value"].as_str().expect("v").chars().count()
            })
            .sum::<usize>();
    assert!(total <= 6000, "{total}");
    assert!(embed["fields"][0]["value"].as_str().expect("v").chars().count() <= 1024);
}

#[tokio::test]
async fn retries_after_429_honouring_retry_after() {
    let capture = Capture::default();
    capture.script.lock().expect("script").extend([
        (
            429,
            vec![],
            r#"{"message": "You are being rate limited.", "retry_after": 0.05, "global": false}"#,
        ),
        (429, vec![("retry-after", "0")], ""),
    ]);
    let url = start(&capture).await;
    let hook = webhook(&url, None);
    hook.deliver(&event(WebhookKind::Update, "Server updated"))
        .await
        .expect("delivered on the third try");
    let bodies = capture.bodies();
    assert_eq!(bodies.len(), 3);
    assert!(bodies.iter().all(|b| b == &bodies[0]), "the same body each time");

    // A queued notification is retried the same way.
    capture
        .script
        .lock()
        .expect("script")
        .push_back((429, vec![], r#"{"retry_after": 0.01}"#));
    hook.notify(event(WebhookKind::Rollback, "Rolled back")).await;
    let bodies = capture.wait_for(5).await;
    assert_eq!(bodies.len(), 5);
    assert_eq!(bodies[4]["embeds"][0]["title"], "Rolled back");
}

#[tokio::test]
async fn client_errors_are_not_retried_and_not_propagated() {
    let capture = Capture::default();
    capture.script.lock().expect("script").push_back((
        400,
        vec![],
        r#"{"message": "Cannot send an empty message", "code": 50006}"#,
    ));
    let url = start(&capture).await;
    let hook = webhook(&url, Some(&["crash"]));
    let err = hook
        .deliver(&event(WebhookKind::Crash, "x"))
        .await
        .expect_err("400");
    assert!(err.to_string().contains("400"), "{err}");
    assert!(
        !err.to_string().contains("secret"),
        "the token in the URL is not logged: {err}"
    );
    assert_eq!(capture.bodies().len(), 1);
    // notify returns at once even though the receiver is gone.
    let dead = webhook("http://127.0.0.1:1/hook", None);
    dead.notify(event(WebhookKind::Crash, "x")).await;
}

#[test]
fn settings() {
    assert!(Webhook::new(WebhookSettings::default()).expect("ok").is_none());
    assert_eq!(
        WebhookSettings::default().events,
        [
            "crash",
            "update",
            "rollback",
            "failed",
            "unresponsive",
            "updaters"
        ]
    );
    let bad = WebhookSettings {
        url: Some("ftp://x/y".into()),
        ..Default::default()
    };
    assert!(Webhook::new(bad).is_err());
    let bad = WebhookSettings {
        url: Some("not a url".into()),
        ..Default::default()
    };
    assert!(Webhook::new(bad).is_err());
    let bad = WebhookSettings {
        url: Some("https://x/y".into()),
        events: vec!["explode".into()],
    };
    let err = Webhook::new(bad).expect_err("unknown event");
    assert!(err.to_string().contains("explode"), "{err}");
    let st: WebhookSettings =
        toml::from_str("url = \"https://discord.com/api/webhooks/1/t\"\nevents = [\"backup\"]")
            .expect("parse");
    assert_eq!(st.events, ["backup"]);
    assert!(toml::from_str::<WebhookSettings>("hook = 1").is_err());
}

#[tokio::test]
async fn errors_never_show_the_token_in_the_url() {
    // A port nothing listens on: the delivery fails, and its error is logged.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("http://127.0.0.1:{port}/api/webhooks/123/s3cr3t-t0ken");
    let hook = Webhook::new(WebhookSettings {
        url: Some(url),
        events: vec!["crash".into()],
    })
    .expect("valid")
    .expect("enabled");
    let e = hook
        .deliver(&event(WebhookKind::Crash, "down"))
        .await
        .expect_err("nothing listens");
    let text = format!("{e} {e:?}");
    assert!(!text.contains("s3cr3t-t0ken"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
}
