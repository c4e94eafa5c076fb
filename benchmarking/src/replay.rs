//! A race day replayed into Kafka at a chosen speed (or as fast as the
//! broker takes it), while `pace pipeline` and `pace edge` run and
//! spectators follow participants: the harness's view of pace on real data.
//!
//! Records keep their recorded times; the bench notes when it handed each
//! one to the producer, so a standings row (or a spectator's frame) showing
//! a participant last seen at time `t` is matched to the send of the record
//! with that key and time. Throughput is records over the time from the
//! first send to the changelog showing every participant's last record (or
//! to its last change, for participants whose last record the job rightly
//! refused).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemas::Timestamp;
use serde::Serialize;

use crate::latency::{Percentiles, Setup, client_runtime, start_pace};
use crate::observers::{Audience, Observers, SentAt};
use crate::workload::{Source, finals};

/// One replay.
#[derive(Clone, Debug, Serialize)]
pub struct Replayed {
    /// What was replayed.
    pub dataset: String,
    /// Recorded seconds per wall second (0 = as fast as possible).
    pub speed: f64,
    /// Timely workers.
    pub workers: usize,
    /// Spectators connected.
    pub spectators: usize,
    /// Points and crossings produced.
    pub records: usize,
    /// Seconds the bench took to produce them.
    pub produce_s: f64,
    /// Seconds from the first send to the standings showing the last record.
    pub seconds: f64,
    /// `records / seconds`.
    pub records_per_s: f64,
    /// Participants with points or crossings.
    pub participants: usize,
    /// Participants whose last record showed in the standings.
    pub participants_complete: usize,
    /// Record produced → standings changelog record read.
    pub produce_to_view_ms: Percentiles,
    /// Record produced → spectator's frame read.
    pub produce_to_frame_ms: Percentiles,
    /// Frames the spectators read.
    pub frames: u64,
    /// CPU seconds of the pipeline.
    pub pipeline_cpu_s: f64,
    /// CPU seconds of the edge.
    pub edge_cpu_s: f64,
    /// Peak resident memory of the pipeline, bytes.
    pub pipeline_peak_rss: u64,
    /// Peak resident memory of the edge, bytes.
    pub edge_peak_rss: u64,
    /// What the standings changelog carried.
    pub changelog: crate::observers::Changelog,
}

impl Replayed {
    /// Records/s as a table shows it: `none measured` when no runner's
    /// last record showed (the rate would be of nothing), and marked
    /// `partial` when only some did (it is the rate of what showed).
    pub fn rate(&self) -> String {
        match self.participants_complete {
            0 => "none measured".to_owned(),
            c if c < self.participants => format!("{:.0} (partial)", self.records_per_s),
            _ => format!("{:.0}", self.records_per_s),
        }
    }
}

/// How long the changelog may be quiet, after the last send, before a
/// replay counts as done: longer than an epoch of a backlog takes (an
/// epoch of Boston 2015's crossings at full speed took over 3 s, and a
/// 3 s quiet ended those runs with half the runners still to show).
const QUIET: Duration = Duration::from_secs(15);

/// Replays `source` at `speed` into fresh topics, with the workers,
/// spectators and tick of `setup` (its races, participants and seconds are
/// the race day's); `progress` hears the records sent.
pub fn run(
    setup: &Setup<'_>,
    source: &Source,
    speed: f64,
    progress: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<Replayed> {
    let (workers, spectators) = (setup.workers, setup.spectators);
    let mut day = source.read()?;
    let finals = finals(&day);
    let participants = finals.len();
    let (pipeline, edge, kafka, _data) = start_pace(setup, "replay")?;
    let defs = std::mem::take(&mut day.definitions);
    crate::workload::send_definitions(&kafka, &defs)?;
    let sends: Arc<Mutex<HashMap<(String, i64), i64>>> = Arc::default();
    let sent_at: SentAt = {
        let sends = sends.clone();
        Arc::new(move |key, time| {
            let sends = sends.lock().expect("sends lock");
            sends.get(&(key.to_owned(), time.0)).copied()
        })
    };
    let rt = client_runtime()?;
    let observers = Observers::start(
        &rt,
        &edge,
        &kafka,
        &defs,
        Audience {
            spectators,
            windows: 0,
        },
        sent_at,
        finals,
    )?;
    observers.window.open();
    let t0 = Instant::now();
    let mut sent = 0u64;
    let records = ingest::datasets::replay(
        &kafka,
        &day,
        speed,
        &Arc::new(AtomicBool::new(false)),
        &mut |key, time| {
            sends
                .lock()
                .expect("sends lock")
                .insert((key.to_owned(), time.0), Timestamp::now().0);
            sent += 1;
            if sent.is_multiple_of(1000) {
                progress(sent);
            }
        },
    )?;
    progress(sent);
    let produce_s = t0.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(300);
    let last_change = loop {
        let p = observers.progress();
        let quiet = p.last_change.is_none_or(|at| at.elapsed() > QUIET);
        if p.complete == participants || quiet && t0.elapsed().as_secs_f64() > produce_s + 3.0 {
            break p.last_change.unwrap_or(t0);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "standings incomplete after 300 s: {} of {} participants",
            p.complete,
            participants
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    observers.window.close();
    let complete = observers.progress().complete;
    let observed = observers.finish(&rt)?;
    let seconds = last_change.saturating_duration_since(t0).as_secs_f64();
    let replayed = Replayed {
        dataset: source.name(),
        speed,
        workers,
        spectators,
        records,
        produce_s,
        seconds,
        records_per_s: records as f64 / seconds,
        participants,
        participants_complete: complete,
        produce_to_view_ms: Percentiles::of(&observed.views),
        produce_to_frame_ms: Percentiles::of(&observed.frames),
        frames: observed.frame_count,
        pipeline_cpu_s: pipeline.cpu_s(),
        edge_cpu_s: edge.cpu_s(),
        pipeline_peak_rss: pipeline.peak_rss(),
        edge_peak_rss: edge.peak_rss(),
        changelog: observed.changelog,
    };
    edge.stop()?;
    pipeline.stop()?;
    Ok(replayed)
}
