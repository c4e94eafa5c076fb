//! An outsider's tools for the attack suite: a real `pace run` on the real
//! broker with a descriptor limit and a log file, raw sockets from chosen
//! loopback addresses, idle and half-sent connections, device connections,
//! and HTTP calls with or without a token.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use super::{Killed, brokers, unique_prefix};

pub const SECRET: &str = "attack suite secret";

pub fn token(user: &str) -> String {
    ws_edge::auth::issue(SECRET, user, ws_edge::auth::now_s(), 3600)
}

/// A `pace run` on the real broker under a topic prefix of its own, with
/// at most `nofile` descriptors; its log goes to a file.
pub struct Pace {
    pub child: Killed,
    pub base: String,
    pub addr: SocketAddr,
    pub kafka: ingest::KafkaConfig,
    pub data: tempfile::TempDir,
    pub log: PathBuf,
}

impl Pace {
    pub fn start(name: &str, nofile: u64, extra: &[&str]) -> Pace {
        let prefix = unique_prefix(name);
        let kafka = ingest::KafkaConfig::new(brokers()).with_topic_prefix(&prefix);
        let data = tempfile::tempdir().unwrap();
        let log = data.path().join("pace.log");
        let pace = env!("CARGO_BIN_EXE_pace");
        let data_dir = data.path().display().to_string();
        let mut args = vec![
            "run",
            "--brokers",
            &kafka.brokers,
            "--topic-prefix",
            &prefix,
            "--listen",
            "127.0.0.1:0",
            "--token-secret",
            SECRET,
            "--data-dir",
            &data_dir,
            "--archive-roll-ms",
            "300",
        ];
        args.extend_from_slice(extra);
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(pace)
            .args(&args)
            .stderr(std::fs::File::create(&log).unwrap());
        let (child, base) = super::spawn_serving(cmd);
        let addr = base.trim_start_matches("http://").parse().unwrap();
        Pace {
            child: Killed(child),
            base,
            addr,
            kafka,
            data,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// The process's resident memory, bytes.
    /// The resident set once pace has settled after starting (its jobs
    /// and consumers allocate for some seconds after it serves): two
    /// samples a second apart within 1 MiB, or what it is after 30 s.
    pub async fn settled_rss(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = self.rss();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = self.rss();
            if now.abs_diff(last) < 1 << 20 || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }

    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        kb * 1024
    }

    pub fn ws(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        self.child.0.try_wait().unwrap().is_none()
    }

    /// SIGTERM, and the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "pace did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A TCP connection to `to` from the loopback address `127.0.0.{from}`.
pub async fn connect_from(from: u8, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, from), 0)))?;
    socket.connect(to).await
}

/// GET `path` on a fresh connection: the status and how long it took.
pub async fn probe(pace_addr: SocketAddr, path: &str) -> (u16, Duration) {
    let t0 = Instant::now();
    let status = async {
        let mut s = connect_from(1, pace_addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nhost: pace\r\nconnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let head = String::from_utf8_lossy(&buf);
        head.split(' ').nth(1)?.parse::<u16>().ok()
    };
    let status = tokio::time::timeout(Duration::from_secs(5), status)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    (status, t0.elapsed())
}

/// What became of an attacker's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Refused with 503 at once.
    Refused,
    /// Closed by pace (idle, evicted or timed out).
    Closed,
}

/// Opens a connection from `from` that sends `sends` (nothing, or half a
/// request) and then idles; resolves with its fate and when it ended.
pub async fn idler(from: u8, to: SocketAddr, sends: &'static [u8]) -> Option<(Fate, Instant)> {
    let mut s = connect_from(from, to).await.ok()?;
    if !sends.is_empty() {
        s.write_all(sends).await.ok()?;
    }
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let fate = if got.starts_with(b"HTTP/1.1 503") {
        Fate::Refused
    } else {
        Fate::Closed
    };
    Some((fate, Instant::now()))
}

/// Produces a generated race of 50 runners, a tick of points every 100 ms
/// for `ticks` ticks, on a thread; the race id.
pub fn race_in_the_background(
    kafka: &ingest::KafkaConfig,
    ticks: usize,
) -> (String, std::thread::JoinHandle<()>) {
    let id = "attack-race".to_owned();
    let kafka = kafka.clone();
    let race_id = id.clone();
    let producer = std::thread::spawn(move || {
        let p = ingest::producer::TrackedProducer::new(&kafka).unwrap();
        let mut race = ingest::generate::DemoRace::new(&race_id, 50, 7, schemas::Timestamp::now());
        ingest::jsonl::send_record(&p, &kafka.topics.races, &race.definition).unwrap();
        for _ in 0..ticks {
            for point in race.tick() {
                ingest::jsonl::send_record(&p, &kafka.topics.gps, &point).unwrap();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        p.flush(Duration::from_secs(60)).unwrap();
    });
    (id, producer)
}

/// A WebSocket handshake on a raw socket; the socket after the 101.
pub async fn raw_websocket(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = connect_from(3, addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: pace\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// A device's point frame for `participant`, `i` seconds into the race.
pub fn point(participant: &str, i: usize) -> String {
    let t = schemas::Timestamp::now().0 + i as i64;
    json!({"type": "point", "ref": i, "point": {"race": "attack", "participant": participant,
        "time": t, "lat": 59.3 + i as f64 * 1e-6, "lon": 18.0}})
    .to_string()
}

/// Sends `frames` on a new device connection as `user`, then reads replies
/// until it has one per frame or the connection closes; the replies and
/// the close code, if any.
pub async fn device(pace: &Pace, user: &str, frames: Vec<String>) -> (Vec<Value>, Option<u16>) {
    device_at(&pace.ws("/ws/track"), user, frames, Duration::ZERO).await
}

/// [`device`] on the edge whose `/ws/track` is at `url`, a frame every `gap`.
pub async fn device_at(
    url: &str,
    user: &str,
    frames: Vec<String>,
    gap: Duration,
) -> (Vec<Value>, Option<u16>) {
    let url = format!("{url}?token={}", token(user));
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    let n = frames.len();
    let writer = tokio::spawn(async move {
        let t0 = tokio::time::Instant::now();
        for (i, f) in frames.into_iter().enumerate() {
            if !gap.is_zero() {
                tokio::time::sleep_until(t0 + gap * i as u32).await;
            }
            if tx.send(Message::text(f)).await.is_err() {
                break;
            }
        }
        tx
    });
    let mut replies = Vec::new();
    let mut code = None;
    while replies.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), rx.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => replies.push(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Close(c)))) => {
                code = c.map(|c| u16::from(c.code));
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => break,
            Err(_) => panic!("no reply within 30 s"),
        }
    }
    drop(writer.await);
    (replies, code)
}

/// `method path` with `user`'s token (or none), and a JSON body: the
/// status and the body.
pub async fn call(
    http: &reqwest::Client,
    pace: &Pace,
    method: reqwest::Method,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = http.request(method, pace.url(path));
    if let Some(t) = auth {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `POST /api/rooms` of `id` with `visibility` as `token`'s user: the
/// status and the body.
pub async fn create_room(
    http: &reqwest::Client,
    pace: &Pace,
    token: &str,
    id: &str,
    visibility: &str,
) -> (u16, Value) {
    let body = json!({"id": id, "visibility": visibility});
    call(
        http,
        pace,
        reqwest::Method::POST,
        "/api/rooms",
        Some(token),
        Some(body),
    )
    .await
}

/// The first frame on `path`.
pub async fn first_frame(pace: &Pace, path: &str) -> Value {
    let (mut ws, _) = tokio_tungstenite::connect_async(pace.ws(path))
        .await
        .unwrap();
    super::next_frame(&mut ws).await
}
