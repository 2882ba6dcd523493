//! The Prometheus endpoint over a real socket: series and values after updates, loopback policy.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use atlas_runner::metrics::{self, Metrics, MetricsError, MetricsSettings};

/// `series -> value` of every sample line.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("sample line");
            (series.to_owned(), value.parse().expect("number"))
        })
        .collect()
}

#[tokio::test]
async fn serves_the_series_over_http() {
    let m = Metrics::new();
    m.set_state("running");
    m.set_uptime(Duration::from_millis(12_500));
    m.inc_restarts();
    m.inc_restarts();
    m.observe_update("updated", Duration::from_secs(30));
    m.observe_update("rolled_back", Duration::from_secs(90));
    m.observe_backup(Duration::from_secs(3), 12_345);
    m.set_players(3, 20);
    m.set_build("old", "1");
    m.set_build("abc123", "7");

    let listener = metrics::bind("127.0.0.1:0".parse().expect("addr"), false)
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(metrics::serve(listener, m.clone(), async move {
        let _ = stopped.await;
    }));

    let resp = reqwest::get(format!("http://{addr}/metrics")).await.expect("GET");
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let text = resp.text().await.expect("body");
    let s = samples(&text);
    let get = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no {k} in\n{text}"));

    assert_eq!(get(r#"atlas_runner_state{state="running"}"#), 1.0);
    for other in ["stopped", "starting", "stopping", "crashed", "updating", "failed"] {
        assert_eq!(
            get(&format!(r#"atlas_runner_state{{state="{other}"}}"#)),
            0.0,
            "{other}"
        );
    }
    assert_eq!(get("atlas_runner_uptime_seconds"), 12.5);
    assert_eq!(get("atlas_runner_restarts_total"), 2.0);
    assert_eq!(get(r#"atlas_runner_updates_total{outcome="updated"}"#), 1.0);
    assert_eq!(get(r#"atlas_runner_updates_total{outcome="rolled_back"}"#), 1.0);
    assert_eq!(get("atlas_runner_update_duration_seconds_count"), 2.0);
    assert_eq!(get("atlas_runner_update_duration_seconds_sum"), 120.0);
    assert_eq!(
        get(r#"atlas_runner_update_duration_seconds_bucket{le="+Inf"}"#),
        2.0
    );
    assert_eq!(get("atlas_runner_backup_duration_seconds_count"), 1.0);
    assert_eq!(get("atlas_runner_backup_duration_seconds_sum"), 3.0);
    assert_eq!(get("atlas_runner_backup_size_bytes"), 12_345.0);
    assert_eq!(get("atlas_runner_players_online"), 3.0);
    assert_eq!(get("atlas_runner_players_max"), 20.0);
    assert_eq!(get(r#"atlas_runner_build_info{build="abc123",version="7"}"#), 1.0);
    assert!(
        !text.contains(r#"build="old""#),
        "the previous build is gone:\n{text}"
    );
    assert!(text.ends_with("# EOF\n"));

    // Later changes show on the next scrape.
    m.set_state("stopping");
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let s = samples(&text);
    assert_eq!(s[r#"atlas_runner_state{state="stopping"}"#], 1.0);
    assert_eq!(s[r#"atlas_runner_state{state="running"}"#], 0.0);

    let missing = reqwest::get(format!("http://{addr}/other")).await.expect("GET");
    assert_eq!(missing.status(), 404);

    stop.send(()).expect("stop");
    server.await.expect("join").expect("serve ends cleanly");
}

#[tokio::test]
async fn refuses_remote_addresses_unless_allowed() {
    let any: SocketAddr = "0.0.0.0:0".parse().expect("addr");
    let err = metrics::bind(any, false).await.expect_err("refused");
    assert!(matches!(err, MetricsError::NotLoopback { .. }), "{err}");
    assert!(err.to_string().contains("allow_remote"), "{err}");
    let l = metrics::bind(any, true).await.expect("allowed explicitly");
    drop(l);
    let l = metrics::bind("[::1]:0".parse().expect("addr"), false).await;
    // IPv6 loopback is loopback (when the host has it).
    if let Err(e) = l {
        assert!(matches!(e, MetricsError::Bind { .. }), "{e}");
    }

    let st: MetricsSettings = toml::from_str("listen = \"127.0.0.1:9108\"").expect("parse");
    assert_eq!(st.listen, Some("127.0.0.1:9108".parse().expect("addr")));
    assert!(!st.allow_remote);
    assert!(toml::from_str::<MetricsSettings>("port = 1").is_err());
    assert!(MetricsSettings::default().listen.is_none());
}
