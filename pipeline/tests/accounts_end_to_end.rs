//! Accounts through the whole stack on a real Apache Kafka broker: a user
//! registers, logs in, posts with the access token, refreshes; the old
//! refresh token is refused and revokes the session; a logout ends a
//! session; a wrong password repeated is answered 429; a second `pace
//! edge`, started after the first edge stopped, logs the same user in from
//! the compacted `pace.users` topic; and no password, nor any hash of one,
//! is in the archive, the dead letters or that edge's debug log. Wrong
//! passwords on two edges lock the user's logins on a third. And an
//! edge that takes an outside issuer's ES256 tokens (`--jwks`), checks
//! their issuer and audience, and follows its key rotation.

mod common;

use std::time::Duration;

use common::views::read_all;
use common::*;
use schemas::accounts::AccountChange;
use serde_json::{Value, json};

const SECRET: &str = "accounts end-to-end secret";
const PASSWORD: &str = "correct horse battery";
const OTHER_PASSWORD: &str = "tr0ub4dor&3 staple";

/// POSTs `body` to `path` on `base` (with a bearer token if given): the
/// status and the JSON answer.
async fn post(base: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = reqwest::Client::new().post(format!("{base}{path}"));
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    let r = r.json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn refused(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{answer:?}");
    assert_eq!(answer.1["code"], code, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_refresh_logout_and_a_second_edge() {
    let mut stack = Stack::start("accounts", SECRET).await;
    let base = stack.base.clone();
    let ann = json!({"user": "ann", "password": PASSWORD});

    // Bad requests never reach Kafka.
    for bad in [
        json!({"user": "ann"}),
        json!({"user": "a n", "password": PASSWORD}),
        json!({"user": "ann", "password": "short"}),
        json!({"user": "ann", "password": PASSWORD, "admin": true}),
    ] {
        let (status, answer) = post(&base, "/api/users", None, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(!answer.to_string().contains(PASSWORD), "{answer}");
    }
    let (status, answer) = post(&base, "/api/users", None, ann.clone()).await;
    assert_eq!((status, &answer["user"]), (201, &json!("ann")), "{answer}");
    let eve = json!({"user": "ann", "password": OTHER_PASSWORD});
    refused(&post(&base, "/api/users", None, eve).await, 409, "exists");
    let (status, _) = post(
        &base,
        "/api/users",
        None,
        json!({"user": "bob", "password": OTHER_PASSWORD}),
    )
    .await;
    assert_eq!(status, 201);

    // Log in; the access token posts to a room.
    let (status, login) = post(&base, "/api/login", None, ann.clone()).await;
    assert_eq!(status, 200, "{login}");
    let access = login["access_token"].as_str().unwrap().to_owned();
    let first = login["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(login["token_type"], "Bearer");
    let (status, room) = post(
        &base,
        "/api/rooms",
        Some(&access),
        json!({"id": "ann-room", "visibility": "public"}),
    )
    .await;
    assert_eq!(status, 201, "{room}");

    // Refresh: a new pair; the first refresh token again is refused, and
    // the session is revoked, so the second one is refused too.
    let (status, refreshed) = post(
        &base,
        "/api/token/refresh",
        None,
        json!({"refresh_token": first}),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let second = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert!(ws_edge::auth::verify(Some(SECRET), refreshed["access_token"].as_str()).is_ok());
    refused(
        &post(
            &base,
            "/api/token/refresh",
            None,
            json!({"refresh_token": first}),
        )
        .await,
        401,
        "reused",
    );
    refused(
        &post(
            &base,
            "/api/token/refresh",
            None,
            json!({"refresh_token": second}),
        )
        .await,
        401,
        "revoked",
    );

    // A new session, logged out: its refresh token is refused after, and
    // so is its access token, before it expires (as is the first
    // session's, revoked by the reused refresh token).
    let (_, login) = post(&base, "/api/login", None, ann.clone()).await;
    let third = login["refresh_token"].as_str().unwrap().to_owned();
    let third_access = login["access_token"].as_str().unwrap().to_owned();
    let room = |id: &str| json!({"id": id, "visibility": "public"});
    let (status, _) = post(&base, "/api/rooms", Some(&third_access), room("ann-2")).await;
    assert_eq!(status, 201);
    let (status, _) = post(&base, "/api/logout", None, json!({"refresh_token": third})).await;
    assert_eq!(status, 204);
    refused(
        &post(
            &base,
            "/api/token/refresh",
            None,
            json!({"refresh_token": third}),
        )
        .await,
        401,
        "revoked",
    );
    for (token, name) in [(&third_access, "ann-3"), (&access, "ann-4")] {
        eventually(
            "an ended session's access token refused",
            Duration::from_secs(30),
            || {
                let base = base.clone();
                let body = room(name);
                async move {
                    let (status, _) = post(&base, "/api/rooms", Some(token), body).await;
                    (status == 401).then_some(())
                }
            },
        )
        .await;
    }
    assert_eq!(
        post(
            &base,
            "/api/token/refresh",
            None,
            json!({"refresh_token": "ann~x~y"})
        )
        .await
        .0,
        401
    );

    // A wrong password: 401, the same as no such user; repeated, 429.
    let wrong = json!({"user": "bob", "password": "not the password"});
    let nobody = json!({"user": "nobody", "password": "not the password"});
    let (status, no_user) = post(&base, "/api/login", None, nobody).await;
    let (status2, no_password) = post(&base, "/api/login", None, wrong.clone()).await;
    assert_eq!((status, status2), (401, 401));
    assert_eq!(no_user, no_password, "no hint which is wrong");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(post(&base, "/api/login", None, wrong.clone()).await.0);
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );

    // The first edge stops; a second edge, started after, knows ann from
    // the compacted topic and logs her in.
    stack.stop_edge().await;
    let kafka = stack.kafka.clone();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("edge.log");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pace"));
    let prefix = kafka
        .topics
        .gps
        .strip_suffix("pace.gps")
        .unwrap()
        .to_owned();
    cmd.args([
        "edge",
        "--brokers",
        &kafka.brokers,
        "--topic-prefix",
        &prefix,
        "--listen",
        "127.0.0.1:0",
        "--token-secret",
        SECRET,
    ])
    .env("PACE_LOG", "debug")
    .stderr(std::fs::File::create(&log).unwrap());
    let (mut edge, second) = spawn_serving(cmd);
    // Once it has read the topic it knows ann (a register is refused
    // before any hashing, and takes nothing from her login budget).
    eventually(
        "the second edge to know ann",
        Duration::from_secs(30),
        || {
            let second = second.clone();
            async move {
                let answer = post(
                    &second,
                    "/api/users",
                    None,
                    json!({"user": "ann", "password": OTHER_PASSWORD}),
                )
                .await;
                (answer.1["code"] == "exists").then_some(())
            }
        },
    )
    .await;
    let (status, login) = post(&second, "/api/login", None, ann.clone()).await;
    assert_eq!(status, 200, "{login}");
    let (status, _) = post(
        &second,
        "/api/token/refresh",
        None,
        json!({"refresh_token": login["refresh_token"]}),
    )
    .await;
    assert_eq!(status, 200);
    edge.kill().unwrap();
    edge.wait().unwrap();
    let archive = stack.data_dir().join("archive");
    let users: Vec<AccountChange> = read_all(&kafka, &kafka.topics.users);
    let dead_letters = common::read_raw(&kafka, &kafka.topics.dlq);
    let archived: Vec<(String, Vec<u8>)> = (walk(&archive).into_iter())
        .map(|f| (f.display().to_string(), std::fs::read(&f).unwrap()))
        .collect();
    stack.stop().await;

    // No password, nor hash, anywhere it could leak.
    let hashes: Vec<String> = (users.iter())
        .filter_map(|c| Some(c.account.as_ref()?.password_hash.clone()))
        .collect();
    assert!(hashes.len() >= 2, "{users:?}");
    let mut secrets: Vec<String> = vec![PASSWORD.into(), OTHER_PASSWORD.into()];
    for h in &hashes {
        // The PHC string, and its hash part alone.
        secrets.push(h.clone());
        secrets.push(h.rsplit('$').next().unwrap().to_owned());
    }
    let mut places = archived;
    assert!(places.len() > 1, "the archive wrote files");
    places.push(("the edge's log".into(), std::fs::read(&log).unwrap()));
    assert!(
        places.last().unwrap().1.len() > 1000,
        "the edge logged at debug"
    );
    for r in dead_letters {
        places.push(("a dead letter".into(), r.payload.to_vec()));
    }
    for (place, bytes) in &places {
        for s in &secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{s:?} is in {place}"
            );
        }
    }
}

/// Waits until the edge at `base` knows `user` (a register of the name
/// is refused as taken, before any hashing).
async fn knows(base: &str, user: &str) {
    eventually("the edge to know the user", Duration::from_secs(30), || {
        let base = base.to_owned();
        async move {
            let body = json!({"user": user, "password": OTHER_PASSWORD});
            let answer = post(&base, "/api/users", None, body).await;
            (answer.1["code"] == "exists").then_some(())
        }
    })
    .await;
}

/// Wrong passwords spread over two edges, each within its own edge's
/// budget, add up for the user: the tenth locks their logins on every
/// edge, even a third one with the right password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_on_two_edges_lock_the_user_on_a_third() {
    let stack = Stack::start("lockout", SECRET).await;
    let cy = json!({"user": "cy", "password": PASSWORD});
    assert_eq!(
        post(&stack.base, "/api/users", None, cy.clone()).await.0,
        201
    );
    let (other, other_base) = pace_edge(&stack.kafka, Some(SECRET));
    let _other = Killed(other);
    knows(&other_base, "cy").await;
    let wrong = json!({"user": "cy", "password": "not the password"});
    for base in [&stack.base, &other_base] {
        for _ in 0..schemas::accounts::LOCK_AFTER / 2 {
            let (status, answer) = post(base, "/api/login", None, wrong.clone()).await;
            assert_eq!(status, 401, "{answer}");
        }
    }
    let (third, third_base) = pace_edge(&stack.kafka, Some(SECRET));
    let _third = Killed(third);
    knows(&third_base, "cy").await;
    refused(
        &post(&third_base, "/api/login", None, cy.clone()).await,
        429,
        "locked",
    );
    stack.stop().await;
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A `pace edge` that takes an outside issuer's tokens (`--jwks`): an
/// ES256 token of the issuer, for the audience, names its user; one with
/// another issuer or audience is refused (401); pace's own tokens still
/// hold; and when the key set file changes, the new key is taken and the
/// old refused, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_issuers_tokens_on_an_edge() {
    use ws_edge::issuer::test_keys::{JWK_A, JWK_B, KEY_A, KEY_B, es256, set};
    let prefix = unique_prefix("jwks");
    let kafka = ingest::KafkaConfig::new(brokers()).with_topic_prefix(&prefix);
    ingest::admin::ensure_topics(&kafka, 2).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, set(&[JWK_A])).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pace"));
    cmd.args([
        "edge",
        "--brokers",
        &kafka.brokers,
        "--topic-prefix",
        &prefix,
    ])
    .args(["--listen", "127.0.0.1:0", "--token-secret", SECRET])
    .args([
        "--jwt-issuer",
        "https://id.example",
        "--jwt-audience",
        "pace",
    ])
    .arg("--jwks")
    .arg(&jwks)
    .stderr(std::process::Stdio::null());
    let (mut edge, base) = spawn_serving(cmd);
    let token = |key: &str, kid: &str, iss: &str, aud: &str| {
        let now = ws_edge::auth::now_s();
        let claims = json!({"sub": "ann", "iss": iss, "aud": aud, "exp": now + 300, "iat": now});
        es256(key, kid, &claims)
    };
    let status = |t: String| {
        let url = format!("{base}/api/me/rooms");
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    assert_eq!(
        status(token(KEY_A, "key-a", "https://id.example", "pace")).await,
        200
    );
    assert_eq!(
        status(token(KEY_A, "key-a", "https://evil.example", "pace")).await,
        401
    );
    assert_eq!(
        status(token(KEY_A, "key-a", "https://id.example", "other")).await,
        401
    );
    assert_eq!(
        status(token(KEY_B, "key-b", "https://id.example", "pace")).await,
        401
    );
    let own = ws_edge::auth::issue(SECRET, "bob", ws_edge::auth::now_s(), 60);
    assert_eq!(status(own).await, 200, "pace's own tokens hold");
    // The provider rotates its keys.
    std::fs::write(&jwks, set(&[JWK_B])).unwrap();
    eventually("the new key taken", Duration::from_secs(10), || async {
        (status(token(KEY_B, "key-b", "https://id.example", "pace")).await == 200).then_some(())
    })
    .await;
    assert_eq!(
        status(token(KEY_A, "key-a", "https://id.example", "pace")).await,
        401
    );
    edge.kill().unwrap();
    edge.wait().unwrap();
}

/// A WebSocket opened with a login's access token is closed once that
/// session ends (a logout), within a ping interval, not when the socket
/// happens to close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_closes_the_sessions_websockets() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let stack = Stack::start("logout-ws", SECRET).await;
    let base = stack.base.clone();
    let dee = json!({"user": "dee", "password": PASSWORD});
    assert_eq!(post(&base, "/api/users", None, dee.clone()).await.0, 201);
    let (status, login) = post(&base, "/api/login", None, dee).await;
    assert_eq!(status, 200, "{login}");
    let access = login["access_token"].as_str().unwrap();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(ws_url(&base, &format!("/ws?token={access}")))
            .await
            .unwrap();
    let refresh = login["refresh_token"].clone();
    let (status, _) = post(
        &base,
        "/api/logout",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(status, 204);
    let closed = tokio::time::timeout(Duration::from_secs(60), async {
        let mut told = false;
        while let Some(Ok(m)) = ws.next().await {
            match m {
                Message::Text(t) => {
                    let f: Value = serde_json::from_str(&t).unwrap();
                    told |= f["code"] == "unauthorized";
                }
                Message::Close(Some(c)) => return (told, c.code.into(), c.reason.to_string()),
                _ => {}
            }
        }
        (told, 0u16, String::new())
    })
    .await
    .expect("the socket was not closed within a minute");
    assert_eq!(closed, (true, 1008, "session ended".to_owned()));
    stack.stop().await;
}
