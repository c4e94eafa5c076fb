//! What the benchmarks feed pace: generated races (`races` × `participants`
//! runners, one GPS point per runner per second, with the generator's lost
//! points, silences and outliers) and the recorded race days.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ingest::KafkaConfig;
use ingest::generate::DemoRace;
use ingest::producer::TrackedProducer;
use schemas::{GpsPoint, RaceDefinition, Timestamp};

/// Several generated races run side by side.
pub struct Generated {
    races: Vec<DemoRace>,
}

impl Generated {
    /// `races` races `bench-1`… of `participants` runners each, starting at `start`.
    pub fn new(races: usize, participants: usize, start: Timestamp) -> Self {
        Self {
            races: (1..=races)
                .map(|i| DemoRace::new(&format!("bench-{i}"), participants, i as u64, start))
                .collect(),
        }
    }

    /// The race definitions.
    pub fn definitions(&self) -> Vec<RaceDefinition> {
        self.races.iter().map(|r| r.definition.clone()).collect()
    }

    /// One second of every race.
    pub fn tick(&mut self) -> Vec<GpsPoint> {
        self.races.iter_mut().flat_map(DemoRace::tick).collect()
    }
}

/// Sends the race definitions and waits for the broker to have them.
pub fn send_definitions(kafka: &KafkaConfig, defs: &[RaceDefinition]) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    ingest::jsonl::replay(kafka, &kafka.topics.races, defs, 0.0, &stop)?;
    Ok(())
}

/// What was preloaded.
pub struct Preloaded {
    /// GPS points produced.
    pub points: usize,
    /// Each runner's last point time, by (race, participant).
    pub last: HashMap<(String, String), Timestamp>,
    /// Seconds to produce them all (acknowledged).
    pub produce_s: f64,
}

/// Produces `seconds` of `workload` as fast as the broker takes it, calling
/// `progress` with the points sent so far.
pub fn preload(
    kafka: &KafkaConfig,
    workload: &mut Generated,
    seconds: usize,
    progress: &dyn Fn(u64),
) -> anyhow::Result<Preloaded> {
    send_definitions(kafka, &workload.definitions())?;
    let producer = TrackedProducer::new(kafka)?;
    let t0 = Instant::now();
    let mut last = HashMap::new();
    let mut points = 0;
    for _ in 0..seconds {
        for p in workload.tick() {
            ingest::jsonl::send_record(&producer, &kafka.topics.gps, &p)?;
            last.insert((p.race, p.participant), p.time);
            points += 1;
        }
        progress(points as u64);
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(Preloaded {
        points,
        last,
        produce_s: t0.elapsed().as_secs_f64(),
    })
}
