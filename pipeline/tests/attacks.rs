//! The attack suite: what an outsider with no account (or one token) can do
//! to a real `pace run` (the binary, on the real broker, with a token
//! secret), and what must come of it. Each attack once stopped pace, grew it
//! without bound or showed what it should not; none may come back.
//!
//! - Idle and half-sent connections past the descriptor limit: pace stays
//!   up, `/healthz` answers within a second throughout, the idle ones are
//!   closed, every record is archived, and pace exits cleanly.
//! - A ping flood from a client that never reads: it is closed, and pace
//!   does not grow.
//! - Device points from one token over 20 connections: at most the token's
//!   budget is accepted; refused ones are dead-lettered (byte for byte)
//!   within a budget of their own; connections that keep sending refused
//!   points are closed.
//! - Invite-only rooms, racing creates, squatting, tokens not valid yet or
//!   from another issuer, room ids no route can reach, chunked bodies and
//!   bad queries.
//! - WebSockets opened and dropped by the thousand: memory comes back.
//! - A recorded IRC log with bad lines: they are skipped and named.
//!
//! The figures (`--nocapture`) are what the closing notes quote.
#![allow(clippy::print_stdout)] // the figures are the point

mod common;

use std::time::{Duration, Instant};

use common::outsider::*;
use common::{Killed, brokers, eventually, unique_prefix};
use futures_util::SinkExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// One attack at a time: they measure the process and hold many sockets.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_past_the_descriptor_limit_neither_stop_pace_nor_lose_a_record() {
    let _serial = SERIAL.lock().await;
    // The test holds thousands of sockets itself.
    ws_edge::transport::listener::descriptor_limit();
    let mut pace = Pace::start("attack-idle", 4096, &["--demo-participants", "0"]);
    let addr = pace.addr;
    assert_eq!(probe(addr, "/healthz").await.0, 200);
    // A race flows into pace throughout: the archive must keep all of it.
    let (race, producer) = race_in_the_background(&pace.kafka, 150);
    let half_sent: &'static [u8] = b"GET /api/races HTTP/1.1\r\nhost: pace\r\nx-slow: ";

    // One address: its share (1,000), then 503s.
    let t0 = Instant::now();
    let one: Vec<_> = (0..1500)
        .map(|i| tokio::spawn(idler(2, addr, if i % 2 == 0 { b"" } else { half_sent })))
        .collect();
    eventually(
        "one address refused past its share",
        Duration::from_secs(60),
        || async { (one.iter().filter(|h| h.is_finished()).count() >= 500).then_some(()) },
    )
    .await;
    // 5,000 more from fifty addresses: more than the descriptors allow.
    let phase_two = Instant::now();
    let mut many = Vec::new();
    for i in 0..5000u32 {
        let from = 10 + (i % 50) as u8;
        let sends = if i % 3 == 0 { half_sent } else { b"" };
        many.push(tokio::spawn(idler(from, addr, sends)));
        if i % 250 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // /healthz answers within a second throughout, until every idle one is
    // gone (the header timeout is 10 s).
    let mut slowest = Duration::ZERO;
    let mut probes = 0;
    while many.iter().chain(&one).any(|h| !h.is_finished()) {
        let (status, took) = probe(addr, "/healthz").await;
        assert_eq!(status, 200, "/healthz after {:?}", t0.elapsed());
        assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
        slowest = slowest.max(took);
        probes += 1;
        assert!(pace.alive(), "pace exited under the attack");
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "idle connections still open after {:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_closed = t0.elapsed();
    let mut fates = Vec::new();
    for h in one {
        fates.extend(h.await.unwrap());
    }
    assert_eq!(fates.len(), 1500);
    // Nothing else closes a connection before the second phase (the table
    // has room, the header timeout is 10 s): what ended by then was refused.
    let refused_one = fates.iter().filter(|(_, at)| *at < phase_two).count();
    let with_503 = fates.iter().filter(|(f, _)| *f == Fate::Refused).count();
    assert!(
        refused_one >= 500,
        "one address got more than its share: {refused_one} of 1500 refused"
    );
    assert!(with_503 > 0, "no refusal said 503");
    fates.clear();
    for h in many {
        fates.extend(h.await.unwrap());
    }
    let refused = fates.iter().filter(|(f, _)| *f == Fate::Refused).count();
    println!(
        "one address, 1500 connections: {refused_one} refused ({with_503} with a 503); 50 addresses, \
         5000 connections against a 4096-descriptor pace: {refused} refused with a 503, {} closed by pace, \
         all gone {all_closed:?} after the first; /healthz answered {probes} times, slowest {slowest:?}",
        fates.len() - refused
    );
    assert_eq!(
        fates.len(),
        5000,
        "every attacker connection was accepted or refused"
    );
    let metrics = common::get_text(&reqwest::Client::new(), &pace.url("/metrics")).await;
    for reason in ["address", "evicted", "header_timeout"] {
        assert!(
            metrics.contains(&format!(
                "pace_edge_refused_connections_total{{reason=\"{reason}\"}}"
            )),
            "no {reason} refusals counted"
        );
    }

    // And it recovers: a WebSocket spectator and the API work as before.
    let (mut ws, _) = tokio_tungstenite::connect_async(pace.ws(&format!("/ws/races/{race}")))
        .await
        .unwrap();
    assert_eq!(common::next_frame(&mut ws).await["type"], "snapshot");
    drop(ws);
    // Nothing was lost: every record the topics hold is archived once.
    tokio::task::spawn_blocking(move || producer.join().unwrap())
        .await
        .unwrap();
    let (kafka, data) = (pace.kafka.clone(), pace.data.path().to_path_buf());
    let report = tokio::task::spawn_blocking(move || {
        common::settled(&kafka, &data, Duration::from_secs(180))
    })
    .await
    .unwrap();
    assert!(report.ok(), "{report}");
    let status = pace.stop();
    assert!(status.success(), "pace exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_from_a_client_that_never_reads_is_closed_and_costs_no_memory() {
    let _serial = SERIAL.lock().await;
    let pace = Pace::start("attack-ping", 4096, &["--demo-participants", "0"]);
    let mut s = raw_websocket(pace.addr, "/ws").await;
    let before = pace.settled_rss().await;
    // Masked pings with no payload, 6 bytes each: 5,000,000 of them.
    let chunk: Vec<u8> = [0x89u8, 0x80, 1, 2, 3, 4].repeat(100_000);
    let mut sent = 0usize;
    let t0 = Instant::now();
    let mut closed = false;
    while sent < 5_000_000 {
        match tokio::time::timeout(Duration::from_secs(30), s.write_all(&chunk)).await {
            Ok(Ok(())) => sent += 100_000,
            // Reset by pace: closed.
            Ok(Err(_)) => {
                closed = true;
                break;
            }
            Err(_) => panic!("pace neither read nor closed for 30 s"),
        }
    }
    let grew = pace.rss().saturating_sub(before);
    if !closed {
        // Everything was written into buffers: pace must close it now.
        let mut buf = vec![0u8; 1 << 16];
        let gone = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        closed = gone.is_ok();
    }
    println!(
        "ping flood: {sent} pings written in {:?} before pace closed the connection; pace grew {} KB",
        t0.elapsed(),
        grew / 1024
    );
    assert!(closed, "the flooding client was not closed");
    assert!(grew < 50 << 20, "pace grew {grew} bytes under a ping flood");
    let metrics = common::get_text(&reqwest::Client::new(), &pace.url("/metrics")).await;
    assert!(metrics.contains("pace_edge_rate_limited_total{input=\"frame\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_budgets_are_the_tokens_over_all_its_connections() {
    let _serial = SERIAL.lock().await;
    let pace = Pace::start("attack-track", 4096, &["--demo-participants", "0"]);

    // A refused point is dead-lettered as the bytes it came as.
    let odd =
        r#"{"race":"attack",  "participant":"dev-bytes","time":1,"lat":95.0,"lon":18.0 , "x":"é"}"#;
    let frame = format!(r#"{{"type":"point","ref":1,"point":{odd}}}"#);
    let (replies, _) = device(&pace, "dev-bytes", vec![frame]).await;
    assert_eq!(replies[0]["code"], "invalid", "{}", replies[0]);

    // 5,000 good points from one token over 20 connections at once.
    let t0 = Instant::now();
    let sends = (0..20).map(|c| {
        let frames = (0..250).map(|i| point("dev-1", c * 250 + i)).collect();
        device(&pace, "dev-1", frames)
    });
    let results = futures_util::future::join_all(sends).await;
    let took = t0.elapsed().as_secs_f64();
    let replies: Vec<&Value> = results.iter().flat_map(|(r, _)| r).collect();
    let acked = replies.iter().filter(|r| r["type"] == "ack").count();
    let limited = replies
        .iter()
        .filter(|r| r["code"] == "rate_limited")
        .count();
    let budget = 200.0 + 50.0 * took;
    println!(
        "one token, 20 connections, 5000 points: {acked} accepted, {limited} rate_limited in {took:.1} s (budget {budget:.0})"
    );
    assert_eq!(acked + limited, 5000, "every point answered");
    assert!(
        acked as f64 <= budget + 1.0,
        "{acked} accepted, over the token's {budget:.0}"
    );
    assert!(acked >= 200, "the burst is accepted: {acked}");

    // Junk from another token over 20 connections: dead letters within the
    // refusal budget, the rest refused without one, then the sockets closed.
    let t0 = Instant::now();
    let junk = format!(
        r#"{{"type":"point","ref":0,"point":{{"race":"attack","participant":"dev-2","junk":"{}"}}}}"#,
        "j".repeat(6000)
    );
    let sends = (0..20).map(|_| device(&pace, "dev-2", vec![junk.clone(); 250]));
    let results = futures_util::future::join_all(sends).await;
    let took = t0.elapsed().as_secs_f64();
    let answered: usize = results.iter().map(|(r, _)| r.len()).sum();
    let closes: Vec<Option<u16>> = results.iter().map(|(_, c)| *c).collect();
    assert!(
        closes.iter().all(|c| *c == Some(1008)),
        "connections that keep sending refused points are closed: {closes:?}"
    );
    assert!(answered < 5000, "{answered}");
    let kafka = pace.kafka.clone();
    let dead = tokio::task::spawn_blocking(move || common::read_raw(&kafka, &kafka.topics.dlq))
        .await
        .unwrap();
    let junk_letters = dead
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.payload).contains("dev-2"))
        .count();
    let budget = 20.0 + 2.0 * took;
    println!(
        "one token, 20 connections, 5000 junk points: {answered} answered, {junk_letters} dead-lettered in {took:.1} s (budget {budget:.0}), every connection closed 1008"
    );
    assert!(
        junk_letters >= 1 && junk_letters as f64 <= budget + 1.0,
        "{junk_letters}"
    );
    assert!(
        dead.iter().any(|r| r.payload == odd.as_bytes()),
        "the dead letter is not the bytes received"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokens_point_budget_holds_over_two_edges() {
    let _serial = SERIAL.lock().await;
    let kafka =
        ingest::KafkaConfig::new(brokers()).with_topic_prefix(&unique_prefix("attack-edges"));
    ingest::admin::ensure_topics(&kafka, 4).await.unwrap();
    let (a, base_a) = common::pace_edge(&kafka, Some(SECRET));
    let (b, base_b) = common::pace_edge(&kafka, Some(SECRET));
    let _edges = (Killed(a), Killed(b));
    // Ten connections to each edge, 60 points a second each, for 6 s: far
    // more than one token's 50 a second.
    const SECONDS: u32 = 6;
    let t0 = Instant::now();
    let sends = (0..20).map(|c| {
        let base = if c % 2 == 0 { &base_a } else { &base_b };
        let url = common::ws_url(base, "/ws/track");
        let frames = (0..60 * SECONDS as usize)
            .map(|i| point("dev-3", c * 1000 + i))
            .collect();
        async move { device_at(&url, "dev-3", frames, Duration::from_millis(1000 / 60)).await }
    });
    let results = futures_util::future::join_all(sends).await;
    let took = t0.elapsed().as_secs_f64();
    let replies: Vec<&Value> = results.iter().flat_map(|(r, _)| r).collect();
    let acked = replies.iter().filter(|r| r["type"] == "ack").count();
    // Each edge starts the token with a full burst; after that the edges
    // share its sustained rate (with some slack for the news on its way).
    let shared = 2.0 * 200.0 + 50.0 * took * 1.5;
    let apart = 2.0 * (200.0 + 50.0 * took);
    println!(
        "one token over two edges, {} points in {took:.1} s: {acked} accepted (shared budget {shared:.0}; two budgets would be {apart:.0})",
        replies.len()
    );
    assert_eq!(
        replies.len(),
        20 * 60 * SECONDS as usize,
        "every point answered"
    );
    assert!(
        (acked as f64) <= shared,
        "{acked} accepted over two edges: each kept its own budget"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_outsider_may_not_see_or_take() {
    let _serial = SERIAL.lock().await;
    let pace = Pace::start("attack-authz", 4096, &["--demo-participants", "0"]);
    let http = reqwest::Client::new();
    let get = reqwest::Method::GET;
    let (ann, eve) = (token("ann"), token("eve"));

    // An invite-only room exists for its members only.
    let (s, _) = create_room(&http, &pace, &ann, "vip", "invite_only").await;
    assert_eq!(s, 201);
    for who in [None, Some(eve.as_str())] {
        let (s, rooms) = call(&http, &pace, get.clone(), "/api/rooms", who, None).await;
        assert_eq!(s, 200);
        assert!(
            rooms.as_array().unwrap().iter().all(|r| r["id"] != "vip"),
            "{rooms}"
        );
        for path in [
            "/api/rooms/vip",
            "/api/rooms/vip/members",
            "/api/rooms/vip/messages",
        ] {
            let (s, _) = call(&http, &pace, get.clone(), path, who, None).await;
            assert_eq!(s, 404, "{path} as {who:?}");
        }
    }
    let (_, rooms) = call(&http, &pace, get.clone(), "/api/rooms", Some(&ann), None).await;
    assert!(
        rooms
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "vip" && r["visibility"] == "invite_only")
    );
    assert_eq!(
        first_frame(&pace, &format!("/ws/rooms/vip?token={eve}")).await["code"],
        "unknown_room"
    );
    assert_eq!(
        first_frame(&pace, "/ws/rooms/vip").await["code"],
        "unknown_room"
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(pace.ws(&format!("/ws?token={eve}")))
        .await
        .unwrap();
    ws.send(Message::text(r#"{"type":"join","room":"vip"}"#))
        .await
        .unwrap();
    assert_eq!(common::next_frame(&mut ws).await["code"], "unknown_room");

    // Who leaves an invite-only room no longer sees it, also on a
    // subscription that was open.
    let (mut own, _) =
        tokio_tungstenite::connect_async(pace.ws(&format!("/ws/rooms/vip?token={ann}")))
            .await
            .unwrap();
    assert_eq!(common::next_frame(&mut own).await["type"], "snapshot");
    own.send(Message::text(r#"{"type":"leave"}"#))
        .await
        .unwrap();
    let mut codes = Vec::new();
    while !codes.iter().any(|c| c == "unknown_room") {
        let f = common::next_frame(&mut own).await;
        assert!(
            f["type"] != "snapshot",
            "a fresh snapshot after leaving: {f}"
        );
        codes.push(
            f["code"]
                .as_str()
                .unwrap_or(f["type"].as_str().unwrap())
                .to_owned(),
        );
    }
    assert_eq!(codes.first().map(String::as_str), Some("ack"), "{codes:?}");
    let (s, _) = call(
        &http,
        &pace,
        get.clone(),
        "/api/rooms/vip",
        Some(&ann),
        None,
    )
    .await;
    assert_eq!(s, 404, "the room is gone for who left it");

    // Racing creates: one 201, one 409, and the room is the winner's.
    for round in 0..3 {
        let id = format!("race-{round}");
        let bob = token("bob");
        let (a, b) = tokio::join!(
            create_room(&http, &pace, &ann, &id, "invite_only"),
            create_room(&http, &pace, &bob, &id, "public"),
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(statuses, [201, 409], "round {round}");
        let (winner, visibility) = if a.0 == 201 {
            (&ann, "invite_only")
        } else {
            (&bob, "public")
        };
        let (s, room) = call(
            &http,
            &pace,
            get.clone(),
            &format!("/api/rooms/{id}"),
            Some(winner),
            None,
        )
        .await;
        assert_eq!(
            (s, room["visibility"].as_str()),
            (200, Some(visibility)),
            "round {round}"
        );
        let (_, members) = call(
            &http,
            &pace,
            get.clone(),
            &format!("/api/rooms/{id}/members"),
            Some(winner),
            None,
        )
        .await;
        assert_eq!(members.as_array().unwrap().len(), 1, "{members}");
    }
    // A squatter who joins a name first gains nothing.
    ws.send(Message::text(r#"{"type":"join","room":"club"}"#))
        .await
        .unwrap();
    assert_eq!(common::next_frame(&mut ws).await["code"], "unknown_room");
    let (s, _) = create_room(&http, &pace, &ann, "club", "invite_only").await;
    assert_eq!(s, 201);
    let (_, members) = call(
        &http,
        &pace,
        get.clone(),
        "/api/rooms/club/members",
        Some(&ann),
        None,
    )
    .await;
    let users: Vec<&str> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["ann"]);

    // Tokens not valid yet, or from another issuer.
    let now = ws_edge::auth::now_s();
    let later = ws_edge::auth::issue_claims(SECRET, "ann", now, now + 3600, now + 7200);
    let (s, _) = call(&http, &pace, get.clone(), "/api/rooms", Some(&later), None).await;
    assert_eq!(s, 401);
    assert_eq!(
        first_frame(&pace, &format!("/ws?token={later}")).await["code"],
        "unauthorized"
    );
    assert_eq!(
        first_frame(&pace, &format!("/ws/track?token={later}")).await["code"],
        "unauthorized"
    );

    // Room ids: only what a path segment carries as it is.
    for bad in [
        "a b",
        "a/b",
        "50%",
        "zero\u{200b}width",
        "bidi\u{202e}x",
        ".x",
        "#chan",
    ] {
        let (s, e) = create_room(&http, &pace, &ann, bad, "public").await;
        assert_eq!(s, 400, "{bad:?}: {e}");
    }
    let (s, _) = create_room(&http, &pace, &ann, "Ok.room-1_x~", "public").await;
    assert_eq!(s, 201);
    for path in [
        "/api/rooms/Ok.room-1_x~",
        "/api/rooms/Ok.room-1_x~/members",
        "/api/rooms/Ok.room-1_x~/messages",
    ] {
        assert_eq!(
            call(&http, &pace, get.clone(), path, None, None).await.0,
            200,
            "{path}"
        );
    }
    assert_eq!(
        first_frame(&pace, "/ws/rooms/Ok.room-1_x~").await["type"],
        "snapshot"
    );

    // Bodies without a length, and bad queries.
    let mut s = TcpStream::connect(pace.addr).await.unwrap();
    let body = r#"{"expression":"6*7","id":"chunked"}"#;
    let req = format!(
        "POST /api/tasks HTTP/1.1\r\nhost: pace\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let (s, e) = call(
        &http,
        &pace,
        get.clone(),
        "/api/tasks?limit=abc",
        None,
        None,
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = call(&http, &pace, get.clone(), "/ws", None, None).await;
    assert_eq!(s, 426, "a plain GET of a WebSocket route");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_opened_and_dropped_by_the_thousand_give_their_memory_back() {
    let _serial = SERIAL.lock().await;
    ws_edge::transport::listener::descriptor_limit();
    let pace = Pace::start(
        "attack-churn",
        16384,
        &[
            "--demo-participants",
            "0",
            "--requests-per-address",
            "100000",
        ],
    );
    let before = pace.settled_rss().await;
    let mut held = Vec::new();
    let mut open_rss = 0;
    for round in 0..2 {
        for chunk in 0..20u8 {
            let opened = futures_util::future::join_all((0..250).map(|_| async {
                let s = connect_from(20 + chunk, pace.addr).await.unwrap();
                tokio_tungstenite::client_async(pace.ws("/ws"), s)
                    .await
                    .unwrap()
                    .0
            }))
            .await;
            held.extend(opened);
        }
        open_rss = open_rss.max(pace.rss());
        for ws in held.drain(..) {
            drop(ws);
        }
        eventually("the connections gone", Duration::from_secs(60), || async {
            let m = common::get_text(&reqwest::Client::new(), &pace.url("/metrics")).await;
            m.lines()
                .any(|l| l.starts_with("pace_edge_clients ") && l.ends_with(" 0"))
                .then_some(())
        })
        .await;
        println!(
            "round {round}: 5000 WebSockets open: +{} MB",
            (open_rss - before) >> 20
        );
    }
    let after = pace.rss();
    let per = (open_rss - before) / 5000;
    println!(
        "5000 WebSockets: {} KB each while open; after dropping them twice, pace is {} MB above where it started",
        per / 1024,
        after.saturating_sub(before) >> 20
    );
    assert!(per < 40 << 10, "an idle WebSocket costs {per} bytes");
    assert!(
        after.saturating_sub(before) < 150 << 20,
        "memory did not come back: +{}",
        after - before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_irc_log_with_bad_lines_replays_the_good_ones_and_names_the_bad() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ubuntu_irc_2005-07-08_14.raw.txt");
    std::fs::write(
        &file,
        "[12:14] <ann> hello\n\
         [12:15] <bob>\n\
         not a log line\n\
         === carl [~c@host]  has joined #ubuntu\n\
         [12:16] <carl> hi ann\n\
         [25:61] <ann> when\n\
         [12:17] <ann> bye\n",
    )
    .unwrap();
    let replay = format!("irc:{}", file.display());
    let pace = Pace::start("attack-irc", 4096, &["--replay", &replay, "--speed", "0"]);
    let http = reqwest::Client::new();
    let messages: Vec<Value> = eventually("the good lines", Duration::from_secs(60), || async {
        let m: Vec<Value> =
            common::get_json(&http, &pace.url("/api/rooms/irc/messages?since=0")).await?;
        (m.len() == 3).then_some(m)
    })
    .await;
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hello", "hi ann", "bye"]);
    let log = pace.log_text();
    for line in [2, 3, 6] {
        assert!(
            log.contains(&format!("line={line}")) && log.contains("skipped a bad line"),
            "line {line} not named:\n{log}"
        );
    }
    assert!(log.contains("skipped=3"), "{log}");
    assert!(log.contains(&file.display().to_string()));
}
