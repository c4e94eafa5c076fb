//! What the benchmarks feed pace: generated races (`races` × `participants`
//! runners, one GPS point per runner per second, with the generator's lost
//! points, silences and outliers) and the recorded race days.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ingest::KafkaConfig;
use ingest::datasets::Recorded;
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

/// A race day to replay: recorded, or generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A recorded race day (`sailgp:DIR`, `f1:DIR`, `boston:FILE`, …).
    Recorded(Recorded),
    /// `races` generated races of `participants` runners, `seconds` long.
    Generated {
        /// Races side by side.
        races: usize,
        /// Runners per race.
        participants: usize,
        /// Seconds of race (one point per runner per second).
        seconds: usize,
    },
}

impl Source {
    /// Parses a recorded day (`KIND:PATH`, [`Recorded::KINDS`]) or
    /// `generated:RACESxRUNNERSxSECONDS`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?}: expected {} or generated:RACESxRUNNERSxSECONDS",
                Recorded::expected()
            )
        };
        match s.split_once(':') {
            Some(("generated", shape)) => {
                let n: Vec<usize> = shape
                    .split('x')
                    .map(|v| v.parse().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?;
                match n[..] {
                    [races, participants, seconds] if races > 0 && participants > 0 => {
                        Ok(Source::Generated {
                            races,
                            participants,
                            seconds,
                        })
                    }
                    _ => Err(bad()),
                }
            }
            _ => match Recorded::parse(s) {
                Ok(Recorded::Irc(_)) => Err(format!("{s:?}: an IRC log is no race day")),
                Ok(r) => Ok(Source::Recorded(r)),
                Err(_) => Err(bad()),
            },
        }
    }

    /// A short name for reports.
    pub fn name(&self) -> String {
        match self {
            Source::Recorded(r) => r.name().into(),
            Source::Generated {
                races,
                participants,
                seconds,
            } => format!("generated {races}×{participants}×{seconds}s"),
        }
    }

    /// Reads (or generates) the race day.
    pub fn read(&self) -> anyhow::Result<ingest::datasets::Dataset> {
        use ingest::datasets::Dataset;
        let chain = |e: ingest::IngestError| anyhow::anyhow!(ingest::error_chain(&e));
        Ok(match self {
            Source::Recorded(r) => r.read().map_err(chain)?,
            Source::Generated {
                races,
                participants,
                seconds,
            } => {
                let mut g = Generated::new(*races, *participants, Timestamp::now());
                Dataset {
                    definitions: g.definitions(),
                    gps: (0..*seconds).flat_map(|_| g.tick()).collect(),
                    ..Dataset::default()
                }
            }
        })
    }
}

/// Each participant's last time (`race/participant` → time) over the
/// points and crossings of `dataset`.
pub fn finals(dataset: &ingest::datasets::Dataset) -> HashMap<String, Timestamp> {
    use ingest::jsonl::InputRecord;
    let mut last: HashMap<String, Timestamp> = HashMap::new();
    let times = (dataset.gps.iter().map(|p| (p.key(), p.time)))
        .chain(dataset.timing.iter().map(|c| (c.key(), c.time)));
    for (key, time) in times {
        let t = last.entry(key).or_insert(time);
        *t = (*t).max(time);
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_bad_ones_say_what_is_expected() {
        let recorded = |r| Ok(Source::Recorded(r));
        assert_eq!(Source::parse("f1:/d"), recorded(Recorded::F1("/d".into())));
        assert_eq!(
            Source::parse("sailgp:x"),
            recorded(Recorded::SailGp("x".into()))
        );
        assert_eq!(
            Source::parse("boston:r.csv"),
            recorded(Recorded::Boston("r.csv".into()))
        );
        assert_eq!(
            Source::parse("generated:2x50x30"),
            Ok(Source::Generated {
                races: 2,
                participants: 50,
                seconds: 30
            })
        );
        for bad in ["f1:", "generated:2x50", "generated:0x5x5", "gpx:a", "x"] {
            let e = Source::parse(bad).unwrap_err();
            assert!(e.contains("expected sailgp:DIR"), "{bad}: {e}");
        }
        assert!(
            Source::parse("irc:log.txt")
                .unwrap_err()
                .contains("no race day")
        );
    }

    #[test]
    fn a_generated_day_has_every_second_of_every_runner_and_its_finals() {
        let source = Source::parse("generated:2x10x30").unwrap();
        let day = source.read().unwrap();
        assert_eq!(day.definitions.len(), 2);
        let finals = finals(&day);
        assert_eq!(finals.len(), 20);
        // The generator loses some points, never more than it keeps.
        assert!(day.gps.len() > 2 * 10 * 30 / 2 && day.gps.len() <= 2 * 10 * 30);
        for p in &day.gps {
            assert!(p.time <= finals[&format!("{}/{}", p.race, p.participant)]);
        }
    }
}
