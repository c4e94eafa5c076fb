//! Latency at a fixed offered load, seen from outside as a user sees it.
//!
//! `pace pipeline` and `pace edge` run as two processes. Generated races are
//! produced in real time (one point per runner per second, spread evenly
//! over the second, each point stamped with the wall clock when it is
//! sent), while `spectators` WebSocket clients each follow one runner or,
//! `windows` of them, watch a race's top-20 window (protocol v2).
//!
//! - produce→view: the bench reads the standings changelog; a row showing a
//!   runner's new `last_seen` is that point's view update.
//! - produce→frame: a spectator's frame showing its runner's new
//!   `last_seen` (in a window: a row already in the window showing a newer
//!   `last_seen`) is that point's frame.
//!
//! Both are recorded in HdrHistograms, after a warm-up. Since pace and the
//! bench share the machine's clock, `receive time − last_seen` is the
//! latency, to the millisecond.
//!
//! The edge's memory per idle WebSocket is measured in `idle.rs`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use ingest::KafkaConfig;
use ingest::producer::TrackedProducer;
use ingest::source::StaticConsumer;
use schemas::{RaceDefinition, StandingsChange, Timestamp};
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use crate::process::Pace;
pub use crate::spectators::Audience;
use crate::spectators::{Watch, frame_samples};
use crate::workload::{Generated, send_definitions};

/// Latency percentiles, milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `h`.
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// A latency figure of [`Percentiles`].
pub type Figure = fn(&Percentiles) -> u64;

impl Percentiles {
    /// The `figures` as `a / b ms`, or `none measured` when not one
    /// sample came: a run that collapsed says so, it never shows 0 ms.
    pub fn ms(&self, figures: &[Figure]) -> String {
        if self.count == 0 {
            return "none measured".to_owned();
        }
        let v: Vec<String> = figures.iter().map(|f| f(self).to_string()).collect();
        format!("{} ms", v.join(" / "))
    }
}

/// 99th percentile.
pub const P99: &[Figure] = &[|p| p.p99];
/// Median and 99th percentile.
pub const P50_P99: &[Figure] = &[|p| p.p50, |p| p.p99];
/// Median, 99th percentile and largest.
pub const P50_P99_MAX: &[Figure] = &[|p| p.p50, |p| p.p99, |p| p.max];

/// One fixed-load run.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    /// Points per second offered (races × runners).
    pub offered_per_s: f64,
    /// Points per second actually sent.
    pub sent_per_s: f64,
    /// Spectators connected.
    pub spectators: usize,
    /// Of them, those watching a race's top-20 window (the rest follow a runner).
    #[serde(default)]
    pub windows: usize,
    /// Timely workers.
    pub workers: usize,
    /// The pipeline's epoch, milliseconds.
    pub tick_ms: u64,
    /// Seconds measured (after the warm-up).
    pub seconds: f64,
    /// Point produced → standings changelog record read.
    pub produce_to_view_ms: Percentiles,
    /// Point produced → spectator's frame read.
    pub produce_to_frame_ms: Percentiles,
    /// The same, of the points sent in the first and the second half of
    /// the measurement: a run whose latency grows is not keeping up.
    pub produce_to_frame_halves_ms: [Percentiles; 2],
    /// Frames the spectators read.
    pub frames: u64,
    /// Spectators dropped before the end (connection refused, reset or closed).
    #[serde(default)]
    pub dropped: u64,
    /// CPU used by the pipeline and the edge, cores (CPU s / wall s).
    pub pipeline_cores: f64,
    /// As above, the edge.
    pub edge_cores: f64,
    /// Peak resident memory of the pipeline, bytes.
    pub pipeline_peak_rss: u64,
    /// Peak resident memory of the edge, bytes.
    pub edge_peak_rss: u64,
    /// Pipeline CPU over the run (warm-up included), seconds.
    pub pipeline_cpu_s: f64,
    /// What the standings changelog carried over the run.
    pub changelog: Changelog,
    /// Points sent over the run, warm-up included.
    pub sent: u64,
}

/// How to run one fixed-load measurement (or one replay).
pub struct Setup<'a> {
    /// The `pace` binary.
    pub pace: &'a Path,
    /// Where logs go.
    pub out: &'a Path,
    /// Brokers.
    pub brokers: &'a str,
    /// Races side by side.
    pub races: usize,
    /// Runners per race.
    pub participants: usize,
    /// WebSocket spectators, each following one runner…
    pub spectators: usize,
    /// …but these many of them, which watch a race's top-20 window.
    pub windows: usize,
    /// Timely workers.
    pub workers: usize,
    /// The pipeline's epoch, milliseconds (`--tick-ms`).
    pub tick_ms: u64,
    /// Seconds of warm-up, then of measurement.
    pub warmup_s: u64,
    /// Seconds measured.
    pub measure_s: u64,
}

impl<'a> Setup<'a> {
    /// A setup of processes alone, for a run whose load is a race day.
    pub fn processes(
        pace: &'a Path,
        out: &'a Path,
        brokers: &'a str,
        workers: usize,
        spectators: usize,
        tick_ms: u64,
    ) -> Self {
        Self {
            pace,
            out,
            brokers,
            races: 0,
            participants: 0,
            spectators,
            windows: 0,
            workers,
            tick_ms,
            warmup_s: 0,
            measure_s: 0,
        }
    }
}

/// Starts `pace pipeline` and `pace edge` on fresh topics; the two
/// processes and the topics.
pub fn start_pace(
    setup: &Setup<'_>,
    what: &str,
) -> anyhow::Result<(Pace, Pace, KafkaConfig, tempfile::TempDir)> {
    let prefix = crate::process::run_prefix(what);
    let kafka = KafkaConfig::new(setup.brokers).with_topic_prefix(&prefix);
    let data = tempfile::tempdir()?;
    let common = |cmd| crate::process::pace_args(cmd, &kafka, setup.workers, data.path());
    let mut pipeline_args = common("pipeline");
    pipeline_args.extend([
        "--no-archive".into(),
        format!("--tick-ms={}", setup.tick_ms),
    ]);
    let log = crate::process::log_path(setup.out, what);
    let pipeline = Pace::start(setup.pace, &pipeline_args, &log)?;
    let mut edge_args = common("edge");
    // Every spectator of the bench comes from 127.0.0.1.
    edge_args.extend([
        "--max-connections-per-address=0".into(),
        "--requests-per-address=1000000".into(),
    ]);
    let edge = Pace::start(setup.pace, &edge_args, &log)?;
    Ok((pipeline, edge, kafka, data))
}

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
                let dropped = dropped.clone();
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
                    if let Err(e) = watched.await
                        && dropped.fetch_add(1, Ordering::Relaxed) == 0
                    {
                        tracing::warn!(error = %e, "a spectator was dropped");
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

/// A runtime for the bench's WebSocket clients.
pub fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

/// One fixed-load run of `setup`, with `progress` told the points sent.
pub fn run(setup: &Setup<'_>, progress: &(dyn Fn(u64) + Sync)) -> anyhow::Result<Run> {
    let (pipeline, edge, kafka, _data) = start_pace(setup, "latency")?;
    let mut workload = Generated::new(setup.races, setup.participants, Timestamp::now());
    let defs = workload.definitions();
    send_definitions(&kafka, &defs)?;
    let rt = client_runtime()?;
    // Each point is stamped with the wall clock when it is sent.
    let sent_at: SentAt = Arc::new(|_, time| Some(time.0));
    let observers = Observers::start(
        &rt,
        &edge,
        &kafka,
        &defs,
        Audience {
            spectators: setup.spectators,
            windows: setup.windows,
        },
        sent_at,
        HashMap::new(),
    )?;

    let (cpu0, edge_cpu0) = (pipeline.cpu_s(), edge.cpu_s());
    let producer = TrackedProducer::new(&kafka)?;
    let t0 = Instant::now();
    let total_s = setup.warmup_s + setup.measure_s;
    let slices = 20u32;
    let mut sent = 0usize;
    let mut sent_measured = 0usize;
    for second in 0..total_s {
        if second == setup.warmup_s {
            observers
                .window
                .open_for(Duration::from_secs(setup.measure_s));
        }
        let points = workload.tick();
        let per_slice = points.len().div_ceil(slices as usize).max(1);
        for (k, chunk) in points.chunks(per_slice).enumerate() {
            let due = Duration::from_secs(second) + Duration::from_secs(1) / slices * k as u32;
            std::thread::sleep(due.saturating_sub(t0.elapsed()));
            let now = Timestamp::now();
            for p in chunk {
                let mut p = p.clone();
                p.time = now;
                ingest::jsonl::send_record(&producer, &kafka.topics.gps, &p)?;
            }
            sent += chunk.len();
            if second >= setup.warmup_s {
                sent_measured += chunk.len();
            }
            progress(sent as u64);
        }
    }
    // The last slice's second runs out.
    std::thread::sleep(Duration::from_secs(total_s).saturating_sub(t0.elapsed()));
    observers.window.close();
    let wall = t0.elapsed().as_secs_f64();
    producer.flush(Duration::from_secs(60))?;
    // Let what was sent in the window arrive.
    std::thread::sleep(Duration::from_secs(3));
    let (cpu1, edge_cpu1) = (pipeline.cpu_s(), edge.cpu_s());
    let observed = observers.finish(&rt)?;
    let busy = wall + 3.0;
    let run = Run {
        offered_per_s: (setup.races * setup.participants) as f64,
        sent_per_s: sent_measured as f64 / setup.measure_s as f64,
        spectators: setup.spectators,
        windows: setup.windows,
        workers: setup.workers,
        tick_ms: setup.tick_ms,
        seconds: setup.measure_s as f64,
        produce_to_view_ms: Percentiles::of(&observed.views),
        produce_to_frame_ms: Percentiles::of(&observed.frames),
        produce_to_frame_halves_ms: observed.frame_halves.each_ref().map(Percentiles::of),
        frames: observed.frame_count,
        dropped: observed.dropped,
        pipeline_cores: (cpu1 - cpu0) / busy,
        edge_cores: (edge_cpu1 - edge_cpu0) / busy,
        pipeline_peak_rss: pipeline.peak_rss(),
        edge_peak_rss: edge.peak_rss(),
        pipeline_cpu_s: cpu1 - cpu0,
        changelog: observed.changelog,
        sent: sent as u64,
    };
    edge.stop()?;
    pipeline.stop()?;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_measured_nothing_says_so_and_never_shows_0_ms() {
        let empty = Percentiles::of(&Histogram::<u64>::new(3).unwrap());
        assert_eq!(empty.ms(P50_P99_MAX), "none measured");
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=100 {
            h.record(v).unwrap();
        }
        assert_eq!(Percentiles::of(&h).ms(P50_P99), "50 / 99 ms");
    }

    #[test]
    fn the_cost_of_a_point_is_none_when_nothing_was_sent() {
        let c = Changelog {
            records: 4,
            bytes: 1_000,
            rows: 30,
        };
        assert_eq!(c.per_point(2.0, 0), None);
        assert_eq!(c.per_point(2.0, 10), Some((200_000.0, 100.0, 3.0)));
    }
}
