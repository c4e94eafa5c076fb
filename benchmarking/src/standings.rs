//! The standings throughput benchmark.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ingest::KafkaConfig;
use ingest::generate::DemoRace;
use ingest::source::StaticConsumer;
use schemas::{StandingsChange, Timestamp};

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    /// GPS points produced.
    pub points: usize,
    /// Participants.
    pub participants: usize,
    /// Seconds to produce every point (acknowledged).
    pub produce_s: f64,
    /// Seconds from the first point sent until the standings reflected the last.
    pub end_to_end_s: f64,
    /// Seconds to consume every point again with no processing.
    pub consume_s: f64,
    /// Standings changes read.
    pub changes: usize,
}

impl Report {
    /// The report as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "points": self.points,
            "participants": self.participants,
            "produce_s": self.produce_s,
            "end_to_end_s": self.end_to_end_s,
            "end_to_end_points_per_s": self.points as f64 / self.end_to_end_s,
            "consume_ceiling_points_per_s": self.points as f64 / self.consume_s,
            "changes": self.changes,
        })
    }
}

/// Produces a race of `participants` × `seconds` and waits (at most
/// `timeout`) for the standings to reflect all of it.
pub fn run(
    kafka: &KafkaConfig,
    participants: usize,
    seconds: usize,
    timeout: Duration,
) -> anyhow::Result<Report> {
    let mut race = DemoRace::new("bench", participants, 42, Timestamp::now());
    let mut points = Vec::with_capacity(participants * seconds);
    for _ in 0..seconds {
        points.extend(race.tick());
    }
    let mut last: HashMap<String, Timestamp> = HashMap::new();
    for p in &points {
        last.insert(p.participant.clone(), p.time);
    }
    // Follow the changelog from its start before producing anything.
    let mut changelog = StaticConsumer::new(kafka, "pace-bench", &kafka.topics.standings, 0, 1)?;
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    ingest::jsonl::replay(
        kafka,
        &kafka.topics.races,
        std::slice::from_ref(&race.definition),
        0.0,
        &stop,
    )?;
    ingest::jsonl::replay(kafka, &kafka.topics.gps, &points, 0.0, &stop)?;
    let produce_s = t0.elapsed().as_secs_f64();

    let mut seen: HashMap<String, Timestamp> = HashMap::new();
    let mut done = 0;
    let mut changes = 0;
    while done < last.len() {
        anyhow::ensure!(
            t0.elapsed() < timeout,
            "standings incomplete after {timeout:?}: {done} of {} participants",
            last.len()
        );
        let batch = changelog.poll(4096);
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        for raw in batch {
            let change: StandingsChange = serde_json::from_slice(&raw.payload)?;
            changes += 1;
            for row in change.upserts {
                let want = last.get(&row.participant).copied();
                let before = seen.insert(row.participant.clone(), row.last_seen);
                let was_done = before.is_some() && before == want;
                let is_done = Some(row.last_seen) == want;
                match (was_done, is_done) {
                    (false, true) => done += 1,
                    (true, false) => done -= 1,
                    _ => {}
                }
            }
        }
    }
    let end_to_end_s = t0.elapsed().as_secs_f64();

    // The ceiling: read the same records again, decoding nothing.
    let t1 = Instant::now();
    let mut raw = StaticConsumer::new(kafka, "pace-bench-raw", &kafka.topics.gps, 0, 1)?;
    let mut n = 0;
    while n < points.len() {
        anyhow::ensure!(t1.elapsed() < timeout, "raw consume incomplete");
        let got = raw.poll(8192).len();
        if got == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        n += got;
    }
    Ok(Report {
        points: points.len(),
        participants,
        produce_s,
        end_to_end_s,
        consume_s: t1.elapsed().as_secs_f64(),
        changes,
    })
}
