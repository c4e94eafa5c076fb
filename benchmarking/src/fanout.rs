//! Fan-out: one race's changes to N subscribers of its whole standings, on
//! one `pace edge`, for each N asked.
//!
//! A generated race of `runners` moves once a second: every runner's point
//! is produced at once, stamped with the wall clock, so the race changes in
//! one burst a second and each burst becomes one or two delta frames (the
//! pipeline's epochs). N WebSocket clients (`/ws/races/{id}`) read them.
//! The clients are lean on purpose (this machine's 2 cores are shared by
//! the broker, pace and them): each reads a frame's first bytes for its
//! `seq` and skips the rest, and only the first to get a seq reads it whole,
//! for the points' stamp.
//!
//! Reported, over the measured seconds:
//! - frames delivered per second (every subscriber's frames);
//! - produce→frame delay per delivered frame: receipt − the points' stamp;
//! - the fan-out spread per frame: from the first subscriber's receipt to
//!   the last's, the edge's own part;
//! - the edge's CPU per delivered frame, and its memory per connection:
//!   resident growth from none to N connections, first idle (handshake
//!   done, nothing subscribed), then each subscribed to the race (its
//!   snapshot read), before the race moves;
//! - frames missed, and snapshots sent to subscribers that fell behind.
//!
//! N is held to what the process's descriptor limit allows (the bench and
//! the edge each need one per connection): the bench raises its soft limit
//! to the hard one, and says when N was cut.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use ingest::producer::TrackedProducer;
use schemas::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::latency::{Percentiles, Setup, client_runtime, start_pace};
use crate::workload::{Generated, send_definitions};

/// Runners in the race by default: about 80 KB of delta a second.
pub const RUNNERS: usize = 320;

/// Descriptors kept for everything else a process opens.
const RESERVE: u64 = 512;

/// One fan-out size's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Fanout {
    /// Subscribers asked for.
    pub asked: usize,
    /// Subscribers that got their snapshot and were held.
    pub subscribers: usize,
    /// Why fewer were held than asked, if so.
    pub cut: Option<String>,
    /// Runners in the race.
    pub runners: usize,
    /// Mean bytes of a delta frame.
    pub frame_bytes: f64,
    /// Distinct delta frames the race sent in the measured seconds.
    pub frames: u64,
    /// Delta frames delivered per second, all subscribers together.
    pub delivered_per_s: f64,
    /// produce→frame per delivered frame, ms.
    pub delay_ms: Percentiles,
    /// Per frame, the first subscriber's receipt to the last's, ms.
    pub spread_ms: Percentiles,
    /// Frames a subscriber should have had and did not (it may have had a
    /// snapshot instead).
    pub missed: u64,
    /// Snapshots sent to subscribers that fell behind.
    pub lag_snapshots: u64,
    /// Edge CPU per delivered frame, µs.
    pub edge_us_per_frame: f64,
    /// Edge resident growth per idle connection, bytes.
    pub bytes_per_idle: f64,
    /// Edge resident growth per connection subscribed to the race, bytes
    /// (the race still).
    pub bytes_per_subscriber: f64,
    /// Edge peak resident memory, bytes.
    pub edge_peak_rss: u64,
}

/// What one fan-out run is given.
pub struct Options<'a> {
    /// Processes, brokers, workers.
    pub setup: Setup<'a>,
    /// Runners in the race.
    pub runners: usize,
}

/// The subscribers the descriptor limit allows, after raising the soft
/// limit to the hard one: `(n, why it was cut)`.
pub fn within_descriptors(asked: usize) -> (usize, Option<String>) {
    let limit = ws_edge::transport::listener::descriptor_limit().unwrap_or(u64::MAX);
    let fits = limit.saturating_sub(RESERVE) as usize;
    if asked <= fits {
        (asked, None)
    } else {
        let why = format!(
            "held {fits} of {asked}: this machine's descriptor limit is {limit} per process (hard), \
             and the edge needs one per connection"
        );
        (fits, Some(why))
    }
}

/// Runs one size: `asked` subscribers of one race.
pub fn run(o: &Options<'_>, asked: usize) -> anyhow::Result<Fanout> {
    let (n, cut) = within_descriptors(asked);
    let setup = &o.setup;
    let (pipeline, edge, kafka, _data) = start_pace(setup, "fanout")?;
    let mut workload = Generated::new(1, o.runners, Timestamp::now());
    let defs = workload.definitions();
    let race = defs[0].id.clone();
    send_definitions(&kafka, &defs)?;
    let producer = TrackedProducer::new(&kafka)?;
    let burst = |workload: &mut Generated| -> anyhow::Result<()> {
        let now = Timestamp::now();
        for mut p in workload.tick() {
            p.time = now;
            ingest::jsonl::send_record(&producer, &kafka.topics.gps, &p)?;
        }
        Ok(())
    };
    // The race has its rows before anyone subscribes.
    burst(&mut workload)?;
    producer.flush(Duration::from_secs(30))?;
    let addr: SocketAddr = edge.base["http://".len()..].parse()?;
    let path = format!("/ws/races/{race}");
    let rt = client_runtime()?;
    wait_for_rows(&rt, addr, &path)?;
    std::thread::sleep(Duration::from_secs(1));
    let rss_before = edge.rss();
    let tally = Arc::new(Tally::default());
    let (conns, refused) = rt.block_on(open_all(addr, n));
    let held = conns.len();
    anyhow::ensure!(held > 0, "no connection held: {refused:?}");
    let cut = match (cut, refused) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    std::thread::sleep(Duration::from_secs(2));
    let rss_idle = edge.rss();
    rt.block_on(subscribe_all(conns, &race, &tally))?;
    std::thread::sleep(Duration::from_secs(2));
    let rss_subscribed = edge.rss();

    let warmup = Duration::from_secs(setup.warmup_s);
    let measure = Duration::from_secs(setup.measure_s);
    let t0 = Instant::now();
    let mut window = (None, None);
    let mut edge_cpu = (0.0, 0.0);
    for second in 0..(setup.warmup_s + setup.measure_s) {
        let due = Duration::from_secs(second);
        std::thread::sleep(due.saturating_sub(t0.elapsed()));
        if due == warmup {
            window.0 = Some(Instant::now());
            edge_cpu.0 = edge.cpu_s();
        }
        burst(&mut workload)?;
    }
    std::thread::sleep((warmup + measure).saturating_sub(t0.elapsed()));
    window.1 = Some(Instant::now());
    edge_cpu.1 = edge.cpu_s();
    // What was sent in the window arrives.
    std::thread::sleep(Duration::from_secs(3));
    let edge_peak_rss = edge.peak_rss();
    let (from, to) = (window.0.expect("opened"), window.1.expect("closed"));
    let figures = tally.figures(from, to, held);
    rt.block_on(async { tally.stop() });
    drop(rt);
    edge.stop()?;
    pipeline.stop()?;
    let secs = (to - from).as_secs_f64();
    Ok(Fanout {
        asked,
        subscribers: held,
        cut,
        runners: o.runners,
        frame_bytes: figures.frame_bytes,
        frames: figures.frames,
        delivered_per_s: figures.delivered as f64 / secs,
        delay_ms: Percentiles::of(&figures.delay),
        spread_ms: Percentiles::of(&figures.spread),
        missed: figures.missed,
        lag_snapshots: tally
            .snapshots
            .lock()
            .expect("tally")
            .saturating_sub(held as u64),
        edge_us_per_frame: if figures.delivered == 0 {
            0.0
        } else {
            (edge_cpu.1 - edge_cpu.0) * 1e6 / figures.delivered as f64
        },
        bytes_per_idle: (rss_idle as f64 - rss_before as f64) / held.max(1) as f64,
        bytes_per_subscriber: (rss_subscribed as f64 - rss_before as f64) / held.max(1) as f64,
        edge_peak_rss,
    })
}

/// Waits until the race's snapshot has rows (the pipeline has taken its
/// first burst in).
fn wait_for_rows(rt: &tokio::runtime::Runtime, addr: SocketAddr, path: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = rt.block_on(async {
            let (mut r, _w) = connect(addr, path).await?;
            let (_, payload) = read_frame(&mut r, usize::MAX).await?;
            let v: serde_json::Value = serde_json::from_slice(&payload)?;
            anyhow::Ok(v["rows"].as_array().map_or(0, Vec::len))
        })?;
        if rows > 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the race showed no rows within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One connection of the bench: its reading and writing halves.
type Conn = (BufReader<OwnedReadHalf>, OwnedWriteHalf);

/// Opens `n` connections to `/ws` (a few hundred handshakes at a time),
/// subscribed to nothing; stops at the first the edge refuses, and says
/// why.
async fn open_all(addr: SocketAddr, n: usize) -> (Vec<Conn>, Option<String>) {
    let mut conns = Vec::with_capacity(n);
    for chunk in chunks(n) {
        let opened = futures_util::future::join_all((0..chunk).map(|_| connect(addr, "/ws"))).await;
        let mut refused = None;
        for c in opened {
            match c {
                Ok(c) => conns.push(c),
                Err(e) => refused = refused.or(Some(e)),
            }
        }
        if let Some(e) = refused {
            let why = format!("the edge held {} of {n}, then refused: {e:#}", conns.len());
            return (conns, Some(why));
        }
    }
    (conns, None)
}

/// `n` in chunks of at most 250.
fn chunks(n: usize) -> impl Iterator<Item = usize> {
    (0..n).step_by(250).map(move |from| (n - from).min(250))
}

/// Subscribes every connection to `race` (a few hundred at a time), reads
/// its snapshot, and leaves it reading.
async fn subscribe_all(conns: Vec<Conn>, race: &str, tally: &Arc<Tally>) -> anyhow::Result<()> {
    let frame = format!(r#"{{"type":"subscribe","view":"race","id":"{race}"}}"#);
    anyhow::ensure!(frame.len() < 126, "a subscribe frame fits one short header");
    // A client's frames are masked (here with a zero key).
    let mut masked = vec![0x81, 0x80 | frame.len() as u8, 0, 0, 0, 0];
    masked.extend_from_slice(frame.as_bytes());
    let mut conns = conns.into_iter();
    loop {
        let chunk: Vec<Conn> = conns.by_ref().take(250).collect();
        if chunk.is_empty() {
            return Ok(());
        }
        let subscribed = futures_util::future::join_all(chunk.into_iter().map(|(mut r, mut w)| {
            let masked = &masked;
            async move {
                w.write_all(masked).await?;
                let (op, head) = read_frame(&mut r, HEAD_BYTES).await?;
                anyhow::ensure!(
                    op == OP_TEXT && kind_and_seq(&head).is_some_and(|(delta, _)| !delta),
                    "the first frame is not a snapshot"
                );
                anyhow::Ok((r, w))
            }
        }))
        .await;
        for c in subscribed {
            let (r, w) = c.context("a subscriber")?;
            *tally.snapshots.lock().expect("tally") += 1;
            let task = tokio::spawn(read_on(r, w, tally.clone()));
            tally.tasks.lock().expect("tally").push(task);
        }
    }
}

/// A WebSocket handshake on a fresh connection to `path`.
async fn connect(addr: SocketAddr, path: &str) -> anyhow::Result<Conn> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (r, mut w) = tcp.into_split();
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    w.write_all(request.as_bytes()).await?;
    let mut r = BufReader::with_capacity(8 * 1024, r);
    let mut line = String::new();
    r.read_line(&mut line).await?;
    anyhow::ensure!(
        line.starts_with("HTTP/1.1 101"),
        "handshake refused: {line:?}"
    );
    while line != "\r\n" {
        line.clear();
        anyhow::ensure!(
            r.read_line(&mut line).await? > 0,
            "the handshake ended early"
        );
    }
    Ok((r, w))
}

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;

/// A frame's header: its opcode and payload length.
async fn read_head(r: &mut BufReader<OwnedReadHalf>) -> std::io::Result<(u8, u64)> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h).await?;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        len = u64::from(r.read_u16().await?);
    } else if len == 127 {
        len = r.read_u64().await?;
    }
    if h[1] & 0x80 != 0 {
        r.read_u32().await?; // a mask: servers do not send one
    }
    Ok((h[0] & 0x0f, len))
}

/// A whole frame, reading at most `keep` bytes of its payload and skipping
/// the rest.
async fn read_frame(
    r: &mut BufReader<OwnedReadHalf>,
    keep: usize,
) -> std::io::Result<(u8, Vec<u8>)> {
    let (op, len) = read_head(r).await?;
    let kept = len.min(keep as u64) as usize;
    let mut payload = vec![0u8; kept];
    r.read_exact(&mut payload).await?;
    skip(r, len - kept as u64).await?;
    Ok((op, payload))
}

async fn skip(r: &mut BufReader<OwnedReadHalf>, n: u64) -> std::io::Result<()> {
    let copied = tokio::io::copy(&mut r.take(n), &mut tokio::io::sink()).await?;
    if copied < n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Where a delta frame's seq is found: within its first bytes
/// (`{"type":"delta","view":"race","id":…,"seq":N,…`).
const HEAD_BYTES: usize = 160;

/// One subscriber's reading, until the edge closes or the bench stops.
async fn read_on(mut r: BufReader<OwnedReadHalf>, mut w: OwnedWriteHalf, tally: Arc<Tally>) {
    loop {
        let Ok((op, len)) = read_head(&mut r).await else {
            return;
        };
        match op {
            OP_TEXT => {}
            OP_PING => {
                let mut payload = vec![0u8; len as usize];
                if r.read_exact(&mut payload).await.is_err() {
                    return;
                }
                // A client's frames are masked (here with a zero key).
                let mut pong = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                pong.extend_from_slice(&payload);
                if w.write_all(&pong).await.is_err() {
                    return;
                }
                continue;
            }
            OP_CLOSE => return,
            _ => {
                if skip(&mut r, len).await.is_err() {
                    return;
                }
                continue;
            }
        }
        let at = Instant::now();
        let wall = Timestamp::now().0;
        let head_len = len.min(HEAD_BYTES as u64) as usize;
        let mut head = vec![0u8; head_len];
        if r.read_exact(&mut head).await.is_err() {
            return;
        }
        let rest = len - head_len as u64;
        let Some((delta, seq)) = kind_and_seq(&head) else {
            if skip(&mut r, rest).await.is_err() {
                return;
            }
            continue;
        };
        if !delta {
            *tally.snapshots.lock().expect("tally") += 1;
            if skip(&mut r, rest).await.is_err() {
                return;
            }
            continue;
        }
        let first = tally.receipt(seq, at, wall, len);
        if first {
            // The first to get it reads it whole, for the points' stamp.
            let mut whole = head;
            whole.resize(len as usize, 0);
            if r.read_exact(&mut whole[head_len..]).await.is_err() {
                return;
            }
            tally.stamp(seq, stamp_of(&whole));
        } else if skip(&mut r, rest).await.is_err() {
            return;
        }
    }
}

/// Whether a frame's first bytes are a delta's, and its seq.
fn kind_and_seq(head: &[u8]) -> Option<(bool, u64)> {
    let delta = head.starts_with(br#"{"type":"delta""#);
    let snapshot = head.starts_with(br#"{"type":"snapshot""#);
    if !delta && !snapshot {
        return None;
    }
    let key = br#""seq":"#;
    let at = head.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = head[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    let seq = std::str::from_utf8(&head[at..at + digits])
        .ok()?
        .parse()
        .ok()?;
    Some((delta, seq))
}

/// A delta of a race, as far as the stamp goes.
#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    upserts: Vec<Stamped>,
}

#[derive(Deserialize)]
struct Stamped {
    last_seen: Timestamp,
}

/// The newest point a delta shows (the burst it carries), Unix ms.
fn stamp_of(frame: &[u8]) -> Option<i64> {
    let d: Delta = serde_json::from_slice(frame).ok()?;
    d.upserts.iter().map(|r| r.last_seen.0).max()
}

/// One delta frame as its subscribers got it.
struct Receipts {
    first: Instant,
    last: Instant,
    walls: Vec<i64>,
    bytes: u64,
    stamp: Option<i64>,
}

/// What every subscriber got.
#[derive(Default)]
struct Tally {
    frames: Mutex<HashMap<u64, Receipts>>,
    snapshots: Mutex<u64>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The figures of the frames first received in a window.
struct Figures {
    frames: u64,
    delivered: u64,
    frame_bytes: f64,
    delay: Histogram<u64>,
    spread: Histogram<u64>,
    missed: u64,
}

impl Tally {
    /// A subscriber got delta `seq`; whether it is the first to.
    fn receipt(&self, seq: u64, at: Instant, wall: i64, bytes: u64) -> bool {
        let mut frames = self.frames.lock().expect("tally");
        match frames.get_mut(&seq) {
            Some(r) => {
                r.last = r.last.max(at);
                r.first = r.first.min(at);
                r.walls.push(wall);
                false
            }
            None => {
                frames.insert(
                    seq,
                    Receipts {
                        first: at,
                        last: at,
                        walls: vec![wall],
                        bytes,
                        stamp: None,
                    },
                );
                true
            }
        }
    }

    fn stamp(&self, seq: u64, stamp: Option<i64>) {
        if let Some(r) = self.frames.lock().expect("tally").get_mut(&seq) {
            r.stamp = stamp;
        }
    }

    fn figures(&self, from: Instant, to: Instant, subscribers: usize) -> Figures {
        let frames = self.frames.lock().expect("tally");
        let mut f = Figures {
            frames: 0,
            delivered: 0,
            frame_bytes: 0.0,
            delay: Histogram::new(3).expect("histogram"),
            spread: Histogram::new(3).expect("histogram"),
            missed: 0,
        };
        let mut bytes = 0;
        for r in frames.values().filter(|r| r.first >= from && r.first < to) {
            f.frames += 1;
            f.delivered += r.walls.len() as u64;
            f.missed += subscribers.saturating_sub(r.walls.len()) as u64;
            bytes += r.bytes;
            let _ = f.spread.record((r.last - r.first).as_millis() as u64);
            if let Some(stamp) = r.stamp {
                for wall in &r.walls {
                    let _ = f.delay.record(wall.saturating_sub(stamp).max(0) as u64);
                }
            }
        }
        f.frame_bytes = bytes as f64 / f.frames.max(1) as f64;
        f
    }

    /// Ends every subscriber.
    fn stop(&self) {
        for task in self.tasks.lock().expect("tally").drain(..) {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frames_kind_and_seq_come_from_its_first_bytes() {
        let delta = br#"{"type":"delta","view":"race","id":"bench-1","seq":42,"upserts":[]}"#;
        assert_eq!(kind_and_seq(delta), Some((true, 42)));
        let snap = br#"{"type":"snapshot","view":"race","id":"r","seq":7,"rows":[]}"#;
        assert_eq!(kind_and_seq(snap), Some((false, 7)));
        assert_eq!(kind_and_seq(br#"{"type":"error","code":"x"}"#), None);
        assert_eq!(
            stamp_of(br#"{"upserts":[{"last_seen":5,"x":1},{"last_seen":9}]}"#),
            Some(9)
        );
    }

    #[test]
    fn a_frame_missed_by_some_and_one_outside_the_window() {
        let t = Tally::default();
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(40);
        assert!(t.receipt(1, t0, 1_000, 100));
        assert!(!t.receipt(1, later, 1_050, 100));
        t.stamp(1, Some(990));
        assert!(t.receipt(2, t0 + Duration::from_secs(9), 2_000, 300));
        let f = t.figures(t0, t0 + Duration::from_secs(1), 3);
        assert_eq!((f.frames, f.delivered, f.missed), (1, 2, 1));
        assert_eq!(f.spread.max(), 40);
        assert_eq!((f.delay.min(), f.delay.max()), (10, 60));
        assert_eq!(f.frame_bytes, 100.0);
    }
}
