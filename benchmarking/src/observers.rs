//! What the bench watches while pace runs: the spectators' WebSocket
//! clients and the standings changelog ([`Observers`]), the window of sends
//! that count ([`Window`]), and the latency samples both take, matched to
//! the sends they reflect ([`SentAt`]). `latency.rs` and `replay.rs` start
//! them around their runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use ingest::KafkaConfig;
use ingest::source::StaticConsumer;
use schemas::{RaceDefinition, StandingsChange, Timestamp};
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use crate::process::Pace;
pub use crate::spectators::Audience;
use crate::spectators::{Watch, frame_samples};

/// Which sends count (after the warm-up, before the end), Unix ms.
pub struct Window {
    from_ms: AtomicU64,
    until_ms: AtomicU64,
    /// Sends from here on are the second half of the measurement.
    mid_ms: AtomicU64,
}

impl Window {
    /// A window that holds nothing until [`Window::open`].
    pub fn closed() -> Self {
        Self {
            from_ms: AtomicU64::new(u64::MAX),
            until_ms: AtomicU64::new(u64::MAX),
            mid_ms: AtomicU64::new(u64::MAX),
        }
    }

    /// Sends from now on count.
    pub fn open(&self) {
        self.from_ms
            .store(Timestamp::now().0 as u64, Ordering::Relaxed);
    }

    /// Sends from now on count, those after `measure / 2` as the second
    /// half (so a run can say whether its latency grew).
    pub fn open_for(&self, measure: Duration) {
        let now = Timestamp::now().0 as u64;
        self.mid_ms
            .store(now + measure.as_millis() as u64 / 2, Ordering::Relaxed);
        self.from_ms.store(now, Ordering::Relaxed);
    }

    /// 0 for a send in the first half, 1 for one in the second.
    fn half(&self, ms: i64) -> usize {
        usize::from(ms as u64 >= self.mid_ms.load(Ordering::Relaxed))
    }

    /// Sends from now on no longer count.
    pub fn close(&self) {
        self.until_ms
            .store(Timestamp::now().0 as u64, Ordering::Relaxed);
    }

    fn holds(&self, ms: i64) -> bool {
        let ms = ms as u64;
        ms >= self.from_ms.load(Ordering::Relaxed) && ms < self.until_ms.load(Ordering::Relaxed)
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000, 3).expect("valid bounds")
}

/// When the bench sent the record that a row showing `key`
/// (`race/participant`) last seen at `time` reflects, Unix ms; `None` for
/// a row no record of this run explains.
pub type SentAt = Arc<dyn Fn(&str, Timestamp) -> Option<i64> + Send + Sync>;

/// `received − sent` for a row, ms, and the half of the window its record
/// was sent in, if it was sent in the window.
fn measured(window: &Window, sent_at: &SentAt, key: &str, time: Timestamp) -> Option<(u64, usize)> {
    let sent_ms = sent_at(key, time).filter(|&ms| window.holds(ms))?;
    Some((
        (Timestamp::now().0 - sent_ms).max(1) as u64,
        window.half(sent_ms),
    ))
}

/// Records `received − sent` for a row, if its record was sent in the window.
fn sample(h: &mut Histogram<u64>, window: &Window, sent_at: &SentAt, key: &str, time: Timestamp) {
    if let Some((latency, _)) = measured(window, sent_at, key, time) {
        h.saturating_record(latency);
    }
}

/// How far the standings changelog has come.
#[derive(Clone, Copy, Debug)]
pub struct ViewProgress {
    /// Participants whose row shows their final time (see [`Observers::start`]).
    pub complete: usize,
    /// When the changelog last showed a new `last_seen`.
    pub last_change: Option<Instant>,
}

/// What watches pace while the bench produces: spectators, each following
/// one participant over a WebSocket (produce→frame), and a reader of the
/// standings changelog (produce→view).
pub struct Observers {
    /// Which sends count.
    pub window: Arc<Window>,
    progress: Arc<Mutex<ViewProgress>>,
    /// Produce→frame, all of it and by half of the window.
    frames: Arc<Mutex<[Histogram<u64>; 3]>>,
    frame_count: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    /// Why spectators were dropped: each reason, how many times.
    dropped_why: Arc<Mutex<BTreeMap<String, u64>>>,
    stop: Arc<AtomicBool>,
    spectators: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    views: std::thread::JoinHandle<anyhow::Result<(Histogram<u64>, Changelog)>>,
}

/// What the standings changelog carried while the bench read it.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Changelog {
    /// Records read.
    pub records: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Rows in them: ranks, standings upserts and removals, split upserts
    /// and removals, leader records.
    pub rows: u64,
}

impl Changelog {
    /// The cost of a point: `(pipeline µs, changelog bytes, changelog rows)`
    /// per point sent, given the pipeline's CPU seconds over the same run;
    /// `None` when nothing was sent.
    pub fn per_point(&self, pipeline_cpu_s: f64, sent: u64) -> Option<(f64, f64, f64)> {
        let n = sent as f64;
        (sent > 0).then(|| {
            (
                pipeline_cpu_s * 1e6 / n,
                self.bytes as f64 / n,
                self.rows as f64 / n,
            )
        })
    }
}

/// What the observers measured.
pub struct Observed {
    /// Point produced → standings changelog record read.
    pub views: Histogram<u64>,
    /// Point produced → spectator's frame read.
    pub frames: Histogram<u64>,
    /// The same, of the points sent in the first and in the second half
    /// of the window.
    pub frame_halves: [Histogram<u64>; 2],
    /// Frames the spectators read.
    pub frame_count: u64,
    /// Spectators whose connection failed or the edge closed before the end.
    pub dropped: u64,
    /// Why, by reason (the error's text), most frequent first.
    pub dropped_why: Vec<(String, u64)>,
    /// What the standings changelog carried, from the start to the end.
    pub changelog: Changelog,
}

impl Observers {
    /// Waits for `edge` to know `defs`, then connects `spectators`
    /// (spectator i follows participant i / races of race i % races, or,
    /// the first `windows` of them, watches race i % races' top 20) and
    /// starts reading `kafka`'s standings changelog. `finals` are the
    /// participants' last times, for [`Observers::progress`].
    pub fn start(
        rt: &tokio::runtime::Runtime,
        edge: &Pace,
        kafka: &KafkaConfig,
        defs: &[RaceDefinition],
        audience: Audience,
        sent_at: SentAt,
        finals: HashMap<String, Timestamp>,
    ) -> anyhow::Result<Self> {
        wait_for_races(rt, edge, defs.len())?;
        let window = Arc::new(Window::closed());
        let frames = Arc::new(Mutex::new([histogram(), histogram(), histogram()]));
        let frame_count = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let dropped_why = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let ws_url = format!("ws{}/ws", &edge.base[4..]);
        let Audience {
            spectators,
            windows,
        } = audience;
        // Each race's participants: the definition's, or those with records
        // (a chip-timed race's definition need not list its runners).
        let mut recorded: HashMap<&str, Vec<&str>> = HashMap::new();
        for key in finals.keys() {
            if let Some((race, p)) = key.split_once('/') {
                recorded.entry(race).or_default().push(p);
            }
        }
        recorded.values_mut().for_each(|v| v.sort_unstable());
        let runners: Vec<Vec<String>> = (defs.iter())
            .map(|d| match d.participants.is_empty() {
                false => d.participants.iter().map(|p| p.id.clone()).collect(),
                true => (recorded.get(d.id.as_str()).into_iter().flatten())
                    .map(|p| (*p).to_owned())
                    .collect(),
            })
            .collect();
        let spectators = (0..spectators)
            .map(|i| {
                let def = &defs[i % defs.len()];
                let runners = &runners[i % defs.len()];
                let (subscribe, watch) = if i < windows || runners.is_empty() {
                    let subscribe = serde_json::json!({"type": "subscribe", "view": "race",
                        "id": def.id, "window": {"top": 20}});
                    (subscribe, Watch::Top(def.id.clone()))
                } else {
                    let runner = &runners[(i / defs.len()) % runners.len()];
                    let subscribe = serde_json::json!({"type": "subscribe", "view": "participant",
                        "id": def.id, "participant": runner});
                    (subscribe, Watch::Runner(format!("{}/{runner}", def.id)))
                };
                let subscribe = subscribe.to_string();
                let (url, window, frames, count, stop, sent_at) = (
                    ws_url.clone(),
                    window.clone(),
                    frames.clone(),
                    frame_count.clone(),
                    stop.clone(),
                    sent_at.clone(),
                );
                let (dropped, dropped_why) = (dropped.clone(), dropped_why.clone());
                rt.spawn(async move {
                    let mut h = [histogram(), histogram(), histogram()];
                    let mut n = 0;
                    // A spectator the edge drops (or never admits) is a
                    // figure of the run, not a failure of the bench.
                    let watched = async {
                        let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
                        ws.send(Message::text(subscribe)).await?;
                        let mut last = HashMap::new();
                        while !stop.load(Ordering::Relaxed) {
                            let next = tokio::time::timeout(Duration::from_millis(200), ws.next());
                            let msg = match next.await {
                                Err(_) => continue,
                                Ok(None) => anyhow::bail!("closed by the edge"),
                                Ok(Some(m)) => m?,
                            };
                            let Message::Text(text) = msg else { continue };
                            n += 1;
                            frame_samples(&watch, &text, &mut last, |key, time| {
                                if let Some((latency, half)) =
                                    measured(&window, &sent_at, key, time)
                                {
                                    h[0].saturating_record(latency);
                                    h[1 + half].saturating_record(latency);
                                }
                            });
                        }
                        anyhow::Ok(())
                    };
                    if let Err(e) = watched.await {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        let why: String = format!("{e:#}").chars().take(120).collect();
                        *dropped_why
                            .lock()
                            .expect("drops lock")
                            .entry(why)
                            .or_insert(0) += 1;
                    }
                    count.fetch_add(n, Ordering::Relaxed);
                    let mut all = frames.lock().expect("frames lock");
                    for (all, mine) in all.iter_mut().zip(&h) {
                        all.add(mine)?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        let progress = Arc::new(Mutex::new(ViewProgress {
            complete: 0,
            last_change: None,
        }));
        let views = {
            let (kafka, window, stop, progress) = (
                kafka.clone(),
                window.clone(),
                stop.clone(),
                progress.clone(),
            );
            std::thread::spawn(move || -> anyhow::Result<(Histogram<u64>, Changelog)> {
                let mut changelog =
                    StaticConsumer::new(&kafka, "pace-bench", &kafka.topics.standings, 0, 1)?;
                let mut h = histogram();
                let mut carried = Changelog::default();
                let mut last: HashMap<String, Timestamp> = HashMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let batch = changelog.poll(1024);
                    if batch.is_empty() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    for raw in batch {
                        let change: StandingsChange = serde_json::from_slice(&raw.payload)?;
                        carried.records += 1;
                        carried.bytes += raw.payload.len() as u64;
                        carried.rows += (change.ranks.len()
                            + change.upserts.len()
                            + change.removes.len()
                            + change.splits.len()
                            + change.split_removes.len()
                            + usize::from(change.leader.is_some()))
                            as u64;
                        for row in change.upserts {
                            let key = format!("{}/{}", row.race, row.participant);
                            let fin = finals.get(&key).copied();
                            let seen = last.entry(key.clone()).or_insert(Timestamp(i64::MIN));
                            if row.last_seen > *seen {
                                let mut p = progress.lock().expect("progress lock");
                                p.last_change = Some(Instant::now());
                                match (Some(*seen) == fin, Some(row.last_seen) == fin) {
                                    (false, true) => p.complete += 1,
                                    (true, false) => p.complete -= 1,
                                    _ => {}
                                }
                                *seen = row.last_seen;
                                sample(&mut h, &window, &sent_at, &key, row.last_seen);
                            }
                        }
                    }
                }
                Ok((h, carried))
            })
        };
        // Let the spectators connect and take their snapshots.
        std::thread::sleep(Duration::from_secs(2));
        Ok(Self {
            window,
            progress,
            frames,
            frame_count,
            dropped,
            dropped_why,
            stop,
            spectators,
            views,
        })
    }

    /// How far the changelog has come.
    pub fn progress(&self) -> ViewProgress {
        *self.progress.lock().expect("progress lock")
    }

    /// Stops the spectators and the reader, and returns what they measured.
    pub fn finish(self, rt: &tokio::runtime::Runtime) -> anyhow::Result<Observed> {
        self.stop.store(true, Ordering::Relaxed);
        for s in self.spectators {
            rt.block_on(s)??;
        }
        let (views, changelog) = self
            .views
            .join()
            .map_err(|_| anyhow::anyhow!("the changelog reader panicked"))??;
        let [frames, first, second] = self.frames.lock().expect("frames lock").clone();
        Ok(Observed {
            views,
            frames,
            frame_halves: [first, second],
            frame_count: self.frame_count.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            dropped_why: crate::process::most_first(
                (self.dropped_why.lock().expect("drops lock").iter()).map(|(k, n)| (k.clone(), *n)),
            ),
            changelog,
        })
    }
}

/// Waits up to a minute for `edge` to list `races` races.
fn wait_for_races(rt: &tokio::runtime::Runtime, edge: &Pace, races: usize) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let races_url = format!("{}/api/races", edge.base);
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let known: Vec<serde_json::Value> =
                match http.get(&races_url).send().await.map(|r| r.json()) {
                    Ok(f) => f.await.unwrap_or_default(),
                    Err(_) => Vec::new(),
                };
            if known.len() >= races {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the edge did not see the races");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}
