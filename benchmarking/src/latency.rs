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
//! The edge's memory per connection, and its fan-out, are measured in
//! `fanout.rs`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ingest::KafkaConfig;
use ingest::producer::TrackedProducer;
use schemas::Timestamp;
use serde::Serialize;

use crate::process::Pace;

use crate::observers::{Audience, Changelog, Observers, SentAt};
use crate::stages::{Counters, Stages};
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
    /// Why, by reason, most frequent first.
    #[serde(default)]
    pub dropped_why: Vec<(String, u64)>,
    /// Connections the edge refused or dropped over the run, by its reason
    /// (`pace_edge_refused_connections_total`), most frequent first.
    #[serde(default)]
    pub edge_refused: Vec<(String, u64)>,
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
    /// The pipeline's time over the measurement by stage (`None`: it
    /// counted none, see [`Setup::operator_seconds`]).
    #[serde(default)]
    pub stages: Option<Stages>,
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
    /// Whether the pipeline counts its time per operator
    /// (`--operator-seconds`), for the breakdown by stage.
    pub operator_seconds: bool,
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
            operator_seconds: false,
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
    if setup.operator_seconds {
        pipeline_args.push("--operator-seconds".into());
    }
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

/// The pipeline's counters now (`None` if its page cannot be read: then
/// no breakdown, rather than one from a start of zero).
fn counters(pipeline: &Pace) -> Option<Counters> {
    Some(Counters::read(&pipeline.metrics().ok()?))
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
    let mut opened = None;
    for second in 0..total_s {
        if second == setup.warmup_s {
            observers
                .window
                .open_for(Duration::from_secs(setup.measure_s));
            opened = Some((Instant::now(), counters(&pipeline)));
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
    let stages = opened.and_then(|(at, before)| {
        let wall = at.elapsed().as_secs_f64();
        Stages::between(&before?, &counters(&pipeline)?, setup.workers, wall)
    });
    let wall = t0.elapsed().as_secs_f64();
    producer.flush(Duration::from_secs(60))?;
    // Let what was sent in the window arrive.
    std::thread::sleep(Duration::from_secs(3));
    let (cpu1, edge_cpu1) = (pipeline.cpu_s(), edge.cpu_s());
    let observed = observers.finish(&rt)?;
    let edge_refused = edge.metrics().map_or_else(
        |_| Vec::new(),
        |m| crate::process::by_label(&m, "pace_edge_refused_connections_total", "reason"),
    );
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
        dropped_why: observed.dropped_why,
        edge_refused,
        pipeline_cores: (cpu1 - cpu0) / busy,
        edge_cores: (edge_cpu1 - edge_cpu0) / busy,
        pipeline_peak_rss: pipeline.peak_rss(),
        edge_peak_rss: edge.peak_rss(),
        pipeline_cpu_s: cpu1 - cpu0,
        changelog: observed.changelog,
        sent: sent as u64,
        stages,
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
