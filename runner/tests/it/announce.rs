//! Restarts players can live with, through the real daemon: the countdown
//! names the pack version at each mark, an automatic update waits (at most
//! `max_wait`) for the players to leave, and outside the maintenance window
//! an automatic update is only staged.

use std::time::Duration;

use atlas_proto::runner::v1::{LogsRequest, UpdateOutcome, UpdateRequest, reply, request};
use atlas_testkit::http::StaticServer;

use crate::host_updates::publish_with;
use crate::rig::*;
use crate::store::Store;
use crate::updates::build;

/// `[source]` following `store` at `url`, with `auto_apply` and a 1 s poll.
fn source(url: &str, store: &Store, announce: &str, auto: bool) -> String {
    format!(
        "[source]\nurl = \"{url}\"\npack = \"{}\"\nchannel = \"{}\"\nkeys = [\"{}\"]\nupdate_interval = \"1s\"\njitter = \"0s\"\nauto_apply = {auto}\nprovision = false\nannounce = \"{announce}\"\n\n[health]\nwindow = \"1s\"\npings = 1\n",
        crate::store::PACK,
        crate::store::CHANNEL,
        store.public().to_text(),
    )
}

async fn console_lines(rig: &Rig) -> Vec<String> {
    let replies = rig
        .call(request::Kind::Logs(LogsRequest {
            tail: 2000,
            follow: false,
        }))
        .await;
    replies
        .into_iter()
        .filter_map(|r| match r.kind {
            Some(reply::Kind::Log(l)) => Some(l.line),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_countdown_names_the_pack_version_at_each_mark() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    publish_with(&mut store, &build(1, ""), |m| m.version = "1.0.1".into());
    let cfg = format!(
        "autostart = true\n{}\n[announce]\nmessage = \"Restart in {{time}} for {{pack}} {{version}}\"\nat = [\"2s\", \"1s\", \"1h\"]\nnow = \"Restarting now for {{version}}\"\n\n{}",
        source(&srv.url(), &store, "3s", false),
        server_table("")
    );
    let mut rig = Rig::new(&cfg, "", false);
    rig.start().await;
    rig.wait_state("running").await;
    publish_with(&mut store, &build(2, ""), |m| m.version = "1.0.2".into());
    let r = rig
        .call(request::Kind::Update(UpdateRequest { apply: true }))
        .await;
    assert!(
        matches!(r.last().and_then(|r| r.kind.clone()), Some(reply::Kind::Update(u)) if u.outcome() == UpdateOutcome::Applied),
        "{r:?}"
    );
    let said: Vec<String> = console_lines(&rig)
        .await
        .into_iter()
        .filter_map(|l| l.split_once("[Server] ").map(|(_, m)| m.to_owned()))
        .collect();
    assert_eq!(
        said,
        [
            "Restart in 3 seconds for demo 1.0.2",
            "Restart in 2 seconds for demo 1.0.2",
            "Restart in 1 second for demo 1.0.2",
            "Restarting now for 1.0.2",
        ]
    );
    rig.terminate().await;
}

#[tokio::test]
async fn an_automatic_update_waits_for_the_players_to_leave_at_most_max_wait() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    store.publish(&build(1, "players_online = 1\n"));
    let cfg = format!(
        "autostart = true\n{}\n[schedule]\nwait_for_empty = true\nmax_wait = \"2s\"\n\n{}",
        source(&srv.url(), &store, "0s", true),
        server_table("")
    );
    let mut rig = Rig::new(&cfg, "", false);
    rig.start().await;
    rig.wait_state("running").await;
    let b2 = store.publish(&build(2, ""));
    let waiting = rig
        .wait_event("waiting for players", |e| e.message.contains("to leave"))
        .await;
    assert!(
        waiting.message.contains("1 player(s) online") && waiting.message.contains("at most 2 seconds"),
        "{}",
        waiting.message
    );
    rig.wait_event("the update goes ahead", |e| {
        e.message.contains("still online after waiting 2 seconds")
    })
    .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let s = rig.status().await;
        if s.state == "running" && s.build == b2.to_hex() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rig.terminate().await;
}

#[tokio::test]
async fn outside_the_maintenance_window_an_automatic_update_is_only_staged() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let b1 = store.publish(&build(1, ""));
    // A one-minute window twelve hours from now (host local time).
    let at = jiff::Zoned::now()
        .checked_add(jiff::Span::new().hours(12))
        .expect("time");
    let end = at.checked_add(jiff::Span::new().minutes(1)).expect("time");
    let window = format!(
        "{:02}:{:02}-{:02}:{:02}",
        at.hour(),
        at.minute(),
        end.hour(),
        end.minute()
    );
    let cfg = format!(
        "autostart = true\n{}\n[schedule]\nwindow = \"{window}\"\n\n{}",
        source(&srv.url(), &store, "0s", true),
        server_table("")
    );
    let mut rig = Rig::new(&cfg, "", false);
    rig.start().await;
    let s = rig.wait_state("running").await;
    assert_eq!(s.build, b1.to_hex(), "the first install is not held back");
    rig.events.lock().expect("events").clear();
    store.publish(&build(2, ""));
    let e = rig
        .wait_event("staged for the window", |e| {
            e.message.contains("maintenance window")
        })
        .await;
    assert!(e.message.contains(&window), "{}", e.message);
    let staged = std::fs::read_dir(rig.server_dir.join(".atlas/prefetch"))
        .expect("staged blobs")
        .count();
    assert!(staged > 0);
    let s = rig.status().await;
    assert_eq!(
        (s.state.as_str(), s.build.as_str()),
        ("running", b1.to_hex().as_str())
    );
    assert!(
        !rig.event_lines().iter().any(|l| l.starts_with("update.step")),
        "{:#?}",
        rig.event_lines()
    );
    rig.terminate().await;
}
