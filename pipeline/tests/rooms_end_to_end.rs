//! Rooms through the whole stack on a real Apache Kafka broker: tokens,
//! create, invite, join and post over the edge, the pipeline's
//! `room_membership`, and the edge serving it back.
//! - Two WebSocket clients; one disconnects while messages flow and resumes
//!   with `since`: it gets exactly the missed messages, in order, once.
//! - Forged, expired or missing tokens, a non-member, 5 KiB of text, an
//!   invite-only room: clear error frames or statuses, and nothing reaches
//!   Kafka.
//! - A flood gets `rate_limited` frames, never silence.
//! - A direct conversation: either of its two opens the same one; to a
//!   third it does not exist, and nothing of theirs reaches Kafka; a read
//!   marker set on one edge is the unread count on another.
//! - An edge SIGKILLed: its users go offline within the lease bound, while
//!   those of the edge that lives stay online.
//! - A room's history older than the edge holds is read back from the
//!   changelog, in pages, each message once.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use schemas::ChatEvent;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "rooms end-to-end secret";

fn token(user: &str) -> String {
    ws_edge::auth::issue(SECRET, user, ws_edge::auth::now_s(), 3600)
}

async fn connect(base: &str, room: &str, query: &str) -> Ws {
    let url = format!("ws{}/ws/rooms/{room}?{query}", &base[4..]);
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

/// The edge's HTTP API, signing requests as a user.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// POSTs `body` to `path` as `user`: the status.
    async fn post(&self, path: &str, user: &str, body: Value) -> u16 {
        let r = self.http.post(format!("{}{path}", self.base));
        let r = r.header("authorization", format!("Bearer {}", token(user)));
        r.json(&body).send().await.unwrap().status().as_u16()
    }

    /// GETs `path`, as `user` if given: the status.
    async fn status(&self, path: &str, user: Option<&str>) -> u16 {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(u) = user {
            r = r.header("authorization", format!("Bearer {}", token(u)));
        }
        r.send().await.unwrap().status().as_u16()
    }
}

/// The next frame that is not a delta (acks, errors, pongs); deltas are skipped.
async fn reply(ws: &mut Ws) -> Value {
    loop {
        let f = next_frame(ws).await;
        if f["type"] != "delta" {
            return f;
        }
    }
}

/// Messages (seq, text) from frames until `n` have been seen.
async fn messages(ws: &mut Ws, n: usize) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let f = next_frame(ws).await;
        for m in f["messages"].as_array().into_iter().flatten() {
            out.push((
                m["seq"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_post_resume_and_refuse() {
    let stack = Stack::start("rooms", SECRET).await;
    let (base, kafka) = (stack.base.clone(), stack.kafka.clone());
    let http = reqwest::Client::new();
    let api = Api {
        http: http.clone(),
        base: base.clone(),
    };

    // ann creates a public room; the edge learns of it from the changelog.
    assert_eq!(
        api.post(
            "/api/rooms",
            "ann",
            json!({"id": "lobby", "visibility": "public"})
        )
        .await,
        201
    );
    eventually("lobby at the edge", Duration::from_secs(60), || async {
        let rooms: Vec<Value> = get_json(&http, &format!("{base}/api/rooms")).await?;
        rooms.iter().any(|r| r["id"] == "lobby").then_some(())
    })
    .await;
    assert_eq!(
        api.post(
            "/api/rooms",
            "bob",
            json!({"id": "lobby", "visibility": "public"})
        )
        .await,
        409,
        "it exists"
    );

    // Two clients; bob joins.
    let mut ann = connect(&base, "lobby", &format!("token={}", token("ann"))).await;
    let mut bob = connect(&base, "lobby", &format!("token={}", token("bob"))).await;
    assert_eq!(next_frame(&mut ann).await["type"], "snapshot");
    assert_eq!(next_frame(&mut bob).await["type"], "snapshot");
    send(&mut bob, json!({"type": "join"})).await;
    assert_eq!(
        reply(&mut bob).await,
        json!({"type": "ack", "op": "join", "room": "lobby", "client_msg_id": null})
    );
    for i in 1..=3 {
        send(
            &mut ann,
            json!({"type": "post", "text": format!("m{i}"), "client_msg_id": format!("a{i}")}),
        )
        .await;
        assert_eq!(reply(&mut ann).await["op"], "post");
    }
    let seen = messages(&mut bob, 3).await;
    assert_eq!(seen, [(1, "m1".into()), (2, "m2".into()), (3, "m3".into())]);
    // bob goes away; four more messages; bob resumes from seq 3.
    bob.close(None).await.unwrap();
    for i in 4..=7 {
        send(&mut ann, json!({"type": "post", "text": format!("m{i}")})).await;
        assert_eq!(reply(&mut ann).await["op"], "post");
    }
    eventually(
        "seven messages at the edge",
        Duration::from_secs(60),
        || async {
            let rooms: Vec<Value> = get_json(&http, &format!("{base}/api/rooms")).await?;
            rooms
                .iter()
                .any(|r| r["id"] == "lobby" && r["last_seq"] == 7)
                .then_some(())
        },
    )
    .await;
    let mut bob = connect(&base, "lobby", &format!("since=3&token={}", token("bob"))).await;
    let snapshot = next_frame(&mut bob).await;
    let missed: Vec<(u64, String)> = snapshot["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        missed,
        (4..=7).map(|i| (i, format!("m{i}"))).collect::<Vec<_>>()
    );
    // bob may post again on this connection (a member since his join).
    send(&mut bob, json!({"type": "post", "text": "back"})).await;
    assert_eq!(reply(&mut bob).await["op"], "post");

    // Refusals.
    let forged = {
        let (a, b) = (token("ann"), token("mallory"));
        let parts = |t: &str| t.split('.').map(String::from).collect::<Vec<_>>();
        format!("{}.{}.{}", parts(&b)[0], parts(&b)[1], parts(&a)[2])
    };
    let mut m = connect(&base, "lobby", &format!("token={forged}")).await;
    let f = next_frame(&mut m).await;
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("error"), Some("unauthorized"))
    );
    let expired = ws_edge::auth::issue(SECRET, "ann", ws_edge::auth::now_s() - 7200, 3600);
    let mut e = connect(&base, "lobby", &format!("token={expired}")).await;
    let f = next_frame(&mut e).await;
    assert_eq!(f["code"], "unauthorized");
    assert!(f["message"].as_str().unwrap().contains("expired"));
    let mut anon = connect(&base, "lobby", "").await;
    assert_eq!(
        next_frame(&mut anon).await["type"],
        "snapshot",
        "anyone may read a public room"
    );
    send(
        &mut anon,
        json!({"type": "post", "text": "REFUSED-anonymous"}),
    )
    .await;
    assert_eq!(reply(&mut anon).await["code"], "unauthorized");
    let mut carol = connect(&base, "lobby", &format!("token={}", token("carol"))).await;
    next_frame(&mut carol).await;
    send(
        &mut carol,
        json!({"type": "post", "text": "REFUSED-not-a-member"}),
    )
    .await;
    assert_eq!(reply(&mut carol).await["code"], "not_member");
    send(
        &mut ann,
        json!({"type": "post", "text": format!("REFUSED-{}", "x".repeat(5000))}),
    )
    .await;
    let f = reply(&mut ann).await;
    assert_eq!(f["code"], "invalid");
    assert!(f["message"].as_str().unwrap().contains("text"), "{f}");
    send(
        &mut ann,
        json!({"type": "shout", "text": "REFUSED-bad-frame"}),
    )
    .await;
    assert_eq!(reply(&mut ann).await["code"], "bad_frame");

    // An invite-only room: closed to carol until ann invites her.
    assert_eq!(
        api.post(
            "/api/rooms",
            "ann",
            json!({"id": "secret", "visibility": "invite_only"})
        )
        .await,
        201
    );
    eventually("secret at the edge", Duration::from_secs(60), || async {
        (api.status("/api/rooms/secret/members", Some("ann")).await == 200).then_some(())
    })
    .await;
    // To anyone but its members and invitees it does not exist.
    assert_eq!(
        api.status("/api/rooms/secret/members", Some("carol")).await,
        404
    );
    assert_eq!(
        api.status("/api/rooms/secret/messages", None).await,
        404,
        "not to anonymous readers either"
    );
    let listed = |who: Option<&'static str>| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let mut req = http.get(format!("{base}/api/rooms"));
            if let Some(who) = who {
                req = req.bearer_auth(token(who));
            }
            let rooms: Vec<Value> = req.send().await.unwrap().json().await.unwrap();
            rooms.iter().any(|r| r["id"] == "secret")
        }
    };
    assert!(!listed(None).await && !listed(Some("carol")).await);
    assert!(listed(Some("ann")).await);
    let mut c2 = connect(&base, "secret", &format!("token={}", token("carol"))).await;
    assert_eq!(next_frame(&mut c2).await["code"], "unknown_room");
    assert_eq!(
        api.post(
            "/api/rooms/secret/invites",
            "carol",
            json!({"user": "carol"})
        )
        .await,
        404,
        "only members invite, and to others it is not there"
    );
    // By now ann has spent her burst of 10 room events (two creates, going
    // online, seven posts); on a fast machine the refill (5/s) may not have
    // come yet. Her invite is taken once her budget allows: 202, never
    // anything but 429 before it.
    let invited = eventually("ann's invite taken", Duration::from_secs(5), || async {
        match api
            .post("/api/rooms/secret/invites", "ann", json!({"user": "carol"}))
            .await
        {
            429 => None,
            status => Some(status),
        }
    })
    .await;
    assert_eq!(invited, 202);
    eventually("carol invited", Duration::from_secs(60), || async {
        (api.status("/api/rooms/secret/members", Some("carol")).await == 200).then_some(())
    })
    .await;
    let mut c3 = connect(&base, "secret", &format!("token={}", token("carol"))).await;
    assert_eq!(next_frame(&mut c3).await["type"], "snapshot");
    send(&mut c3, json!({"type": "join"})).await;
    assert_eq!(reply(&mut c3).await["op"], "join");

    // A flood from dave, who just joined: every post is acked or refused as
    // rate_limited, and the limit is dave's, not his connection's: a second
    // connection of his right after is refused too.
    let mut dave = connect(&base, "lobby", &format!("token={}", token("dave"))).await;
    assert_eq!(next_frame(&mut dave).await["type"], "snapshot");
    send(&mut dave, json!({"type": "join"})).await;
    assert_eq!(reply(&mut dave).await["op"], "join");
    // His second connection below posts as a member the edge knows from
    // the rooms job (this one knows from its own join): wait for that
    // before the flood, so that the budget is all it is refused for.
    eventually("dave a member", Duration::from_secs(30), || async {
        is_online(&api.http, &api.base, "lobby", "dave")
            .await
            .map(|_| ())
    })
    .await;
    for i in 0..25 {
        send(
            &mut dave,
            json!({"type": "post", "text": format!("flood {i}")}),
        )
        .await;
    }
    let (mut acked, mut limited) = (0, 0);
    for _ in 0..25 {
        let f = reply(&mut dave).await;
        match f["type"].as_str() {
            Some("ack") => acked += 1,
            Some("error") => {
                assert_eq!(f["code"], "rate_limited", "{f}");
                limited += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    // dave's budget is 10 room events at once: going online and joining
    // took two of them.
    assert!(
        acked >= 8 && limited >= 1 && acked + limited == 25,
        "{acked} + {limited}"
    );
    let mut dave2 = connect(&base, "lobby", &format!("token={}", token("dave"))).await;
    assert_eq!(next_frame(&mut dave2).await["type"], "snapshot");
    let mut refused = 0;
    for i in 0..5 {
        send(
            &mut dave2,
            json!({"type": "post", "text": format!("again {i}")}),
        )
        .await;
    }
    for _ in 0..5 {
        let f = reply(&mut dave2).await;
        if f["code"] == "rate_limited" {
            refused += 1;
        } else {
            // A refill (5 a second) may let one through.
            assert_eq!(f["type"], "ack", "{f}");
            acked += 1;
        }
    }
    assert!(
        refused >= 3,
        "a second connection has its own budget: {refused}"
    );

    // Nothing refused reached Kafka.
    let topic = kafka.topics.chat.clone();
    let events: Vec<ChatEvent> = tokio::task::block_in_place(|| stack.read_topic(&topic))
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    assert!(events.iter().any(|e| e.text.as_deref() == Some("m7")));
    assert!(
        !events
            .iter()
            .any(|e| e.text.as_deref().is_some_and(|t| t.starts_with("REFUSED"))),
        "a refused post reached Kafka"
    );
    assert!(!events.iter().any(|e| e.user == "mallory"));
    assert_eq!(
        events
            .iter()
            .filter(|e| e
                .text
                .as_deref()
                .is_some_and(|t| t.starts_with("flood") || t.starts_with("again")))
            .count(),
        acked
    );

    stack.stop().await;
}

/// A direct conversation is its two users' alone: either of them opens the
/// same one; to a third it is forbidden (403, and a `forbidden` error
/// frame on the WebSocket), exactly as a conversation of two others that
/// does not exist; their posts and invites never reach Kafka, and nobody
/// can be invited into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_conversation_is_its_two_users_alone() {
    let stack = Stack::start("conversation", SECRET).await;
    let api = Api {
        http: reqwest::Client::new(),
        base: stack.base.clone(),
    };
    let id = schemas::direct_room("ann", "bob");
    assert_eq!(
        api.post("/api/conversations", "ann", json!({"with": "bob"}))
            .await,
        201
    );
    assert_eq!(
        api.post("/api/conversations", "bob", json!({"with": "ann"}))
            .await,
        200,
        "the same conversation"
    );
    assert_eq!(
        api.post("/api/conversations", "ann", json!({"with": "ann"}))
            .await,
        400
    );
    for bad in [
        json!({"id": "talk", "visibility": "direct"}),
        json!({"id": format!("{id}x"), "visibility": "public"}),
    ] {
        assert_eq!(api.post("/api/rooms", "cy", bad).await, 400);
    }
    let listed: Value = api
        .http
        .get(format!("{}/api/conversations", api.base))
        .header("authorization", format!("Bearer {}", token("bob")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([{"id": id, "with": "ann", "last_seq": 0}]));

    // Bob listens; Ann speaks.
    let mut bob = connect(&stack.base, &id, &format!("token={}", token("bob"))).await;
    assert_eq!(next_frame(&mut bob).await["type"], "snapshot");
    let mut ann = connect(&stack.base, &id, &format!("token={}", token("ann"))).await;
    assert_eq!(next_frame(&mut ann).await["type"], "snapshot");
    send(&mut ann, json!({"type": "post", "text": "just us"})).await;
    assert_eq!(reply(&mut ann).await["op"], "post");
    assert_eq!(messages(&mut bob, 1).await, [(1, "just us".to_owned())]);

    // Unread counts: Ann writes twice more; Bob marks the first two read
    // here; another edge, started now, counts one unread for him.
    for text in ["two", "three"] {
        send(&mut ann, json!({"type": "post", "text": text})).await;
        assert_eq!(reply(&mut ann).await["op"], "post");
    }
    assert_eq!(messages(&mut bob, 2).await.len(), 2);
    send(&mut bob, json!({"type": "read", "seq": 2})).await;
    assert_eq!(reply(&mut bob).await["op"], "read");
    let (mut other, other_base) = pace_edge(&stack.kafka, Some(SECRET));
    let unread = eventually(
        "Bob's unread count on the other edge",
        Duration::from_secs(30),
        || {
            let (http, url) = (api.http.clone(), format!("{other_base}/api/me/rooms"));
            let id = id.clone();
            async move {
                let mine: Value = (http.get(url))
                    .header("authorization", format!("Bearer {}", token("bob")))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let dm = mine.as_array()?.iter().find(|r| r["id"] == id)?.clone();
                (dm["read_seq"] == 2).then_some(dm)
            }
        },
    )
    .await;
    assert_eq!(
        unread,
        json!({"id": id, "visibility": "direct", "with": "ann", "last_seq": 3, "read_seq": 2, "unread": 1})
    );
    other.kill().unwrap();
    other.wait().unwrap();

    // Cy: forbidden, the same as for a conversation that does not exist
    // (Ann and Dee never talked), and nothing of his reaches Kafka.
    let never = schemas::direct_room("ann", "dee");
    for room in [&id, &never] {
        for path in [
            format!("/api/rooms/{room}"),
            format!("/api/rooms/{room}/messages"),
            format!("/api/rooms/{room}/members"),
        ] {
            assert_eq!(api.status(&path, Some("cy")).await, 403, "{path}");
        }
        let invite = format!("/api/rooms/{room}/invites");
        assert_eq!(api.post(&invite, "cy", json!({"user": "cy"})).await, 403);
    }
    let invite = format!("/api/rooms/{id}/invites");
    assert_eq!(
        api.post(&invite, "ann", json!({"user": "cy"})).await,
        403,
        "a conversation takes nobody else"
    );
    let url = format!("ws{}/ws?token={}", &stack.base[4..], token("cy"));
    let mut cy = tokio_tungstenite::connect_async(url).await.unwrap().0;
    for frame in [
        json!({"type": "subscribe", "view": "room", "id": id}),
        json!({"type": "join", "room": id}),
        json!({"type": "post", "room": id, "text": "let me in"}),
        json!({"type": "join", "room": never}),
    ] {
        send(&mut cy, frame).await;
        let f = reply(&mut cy).await;
        assert_eq!(f["code"], "forbidden", "{f}");
    }
    let kafka = stack.kafka.clone();
    let chat: Vec<ChatEvent> =
        tokio::task::spawn_blocking(move || common::views::read_all(&kafka, &kafka.topics.chat))
            .await
            .unwrap();
    assert!(chat.iter().any(|e| e.user == "ann" && e.room == id));
    assert!(
        !chat
            .iter()
            .any(|e| e.user == "cy" || e.invitee.as_deref() == Some("cy")),
        "{chat:?}"
    );
    stack.stop().await;
}

/// Whether `user` is online in `room`, by the members route at `base`.
async fn is_online(http: &reqwest::Client, base: &str, room: &str, user: &str) -> Option<bool> {
    let url = format!("{base}/api/rooms/{room}/members");
    let members: Value = get_json(http, &url).await?;
    let m = members.as_array()?.iter().find(|m| m["user"] == user)?;
    m["online"].as_bool()
}

/// An edge that dies renews no lease: its users go offline within
/// `LEASE_MS + LEASE_EVERY_MS` (30 s) of its last renewal, decided by the
/// rooms job from the leases the living edge keeps renewing, and the
/// living edge's users stay online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_edges_users_go_offline() {
    let stack = Stack::start("presence", SECRET).await;
    let api = Api {
        http: reqwest::Client::new(),
        base: stack.base.clone(),
    };
    let room = json!({"id": "lounge", "visibility": "public"});
    assert_eq!(api.post("/api/rooms", "ann", room).await, 201);
    let (doomed, doomed_base) = pace_edge(&stack.kafka, Some(SECRET));
    let mut doomed = Killed(doomed);
    // Ann through the edge that will die, Bob through the one that lives.
    let mut ann = connect(&doomed_base, "lounge", &format!("token={}", token("ann"))).await;
    assert_eq!(next_frame(&mut ann).await["type"], "snapshot");
    let mut bob = connect(&stack.base, "lounge", &format!("token={}", token("bob"))).await;
    assert_eq!(next_frame(&mut bob).await["type"], "snapshot");
    send(&mut bob, json!({"type": "join"})).await;
    assert_eq!(reply(&mut bob).await["op"], "join");
    for user in ["ann", "bob"] {
        eventually("both online", Duration::from_secs(30), || async {
            (is_online(&api.http, &api.base, "lounge", user).await == Some(true)).then_some(())
        })
        .await;
    }
    doomed.0.kill().unwrap();
    doomed.0.wait().unwrap();
    let killed = std::time::Instant::now();
    eventually("Ann offline", Duration::from_secs(90), || async {
        (is_online(&api.http, &api.base, "lounge", "ann").await == Some(false)).then_some(())
    })
    .await;
    let took = killed.elapsed();
    let bound = Duration::from_millis(
        (schemas::records::LEASE_MS + schemas::records::LEASE_EVERY_MS) as u64,
    );
    // The bound, and what the pipeline and the edge take to say so.
    assert!(took < bound + Duration::from_secs(5), "{took:?}");
    assert_eq!(
        is_online(&api.http, &api.base, "lounge", "bob").await,
        Some(true),
        "the living edge renewed Bob's lease"
    );
    drop(ann);
    stack.stop().await;
}

/// 10,000 messages in a room, five times the 2,000 an edge holds: every
/// page from seq 0 on is served, the old ones read back from `pace.rooms`,
/// and the whole log comes out in order, each message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_older_than_the_edge_holds_comes_from_the_changelog() {
    let stack = Stack::start("history", SECRET).await;
    let n = 10_000;
    assert!(n > 4 * ws_edge::views::rooms::MESSAGES_HELD as u64);
    let events: Vec<ChatEvent> = (1..=n)
        .map(|i| ChatEvent {
            text: Some(format!("line {i}")),
            time: schemas::Timestamp(1_780_000_000_000 + i as i64),
            ..ws_edge::input::EdgeInput::event("long", "ann", schemas::ChatKind::Message)
        })
        .collect();
    let kafka = stack.kafka.clone();
    tokio::task::block_in_place(|| {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        ingest::jsonl::replay(&kafka, &kafka.topics.chat, &events, 0.0, &stop).unwrap();
    });
    let http = reqwest::Client::new();
    let room = format!("{}/api/rooms/long", stack.base);
    eventually(
        "every message at the edge",
        Duration::from_secs(60),
        || async {
            let r: Value = get_json(&http, &room).await?;
            (r["last_seq"] == n).then_some(())
        },
    )
    .await;
    let page = |since: u64| {
        let url = format!("{room}/messages?since={since}&limit=500");
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200, "since {since}");
            let page: Vec<Value> = r.json().await.unwrap();
            page.iter()
                .map(|m| m["seq"].as_u64().unwrap())
                .collect::<Vec<u64>>()
        }
    };
    assert_eq!(page(450).await, (451..=950).collect::<Vec<_>>());
    let mut all = Vec::new();
    while all.len() < n as usize {
        let got = page(all.last().copied().unwrap_or(0)).await;
        assert!(!got.is_empty(), "a page after {:?}", all.last());
        all.extend(got);
    }
    assert_eq!(all, (1..=n).collect::<Vec<_>>());
    stack.stop().await;
}
