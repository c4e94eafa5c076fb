//! Replay of JSON-lines files: one input record per line, produced to its
//! topic at the pace of the records' own times (scaled by a speed factor) or
//! as fast as possible.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use schemas::{CalcTask, ChatEvent, Entrant, GpsPoint, RaceDefinition, Timestamp, TimingCrossing};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::producer::TrackedProducer;
use crate::{IngestError, KafkaConfig};

/// A line a reader skipped: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: String,
    /// 1-based line number.
    pub line: usize,
    /// Why it was skipped.
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.reason)
    }
}

impl Skipped {
    /// The skipped line `e` names, or `e` itself if it is about more than a
    /// line (the file cannot be read at all).
    pub(crate) fn from_error(e: IngestError) -> Result<Self, IngestError> {
        match e {
            IngestError::BadLine { path, line, reason } if line > 0 => {
                Ok(Skipped { path, line, reason })
            }
            other => Err(other),
        }
    }
}

/// An input record: how it is keyed (which fixes its partition and so its
/// order) and when it happened.
pub trait InputRecord: Serialize + DeserializeOwned + schemas::Validate {
    /// The Kafka key: records with one key keep their order.
    fn key(&self) -> String;
    /// The record's own time, for paced replay.
    fn time(&self) -> Timestamp;
}

impl InputRecord for GpsPoint {
    fn key(&self) -> String {
        format!("{}/{}", self.race, self.participant)
    }
    fn time(&self) -> Timestamp {
        self.time
    }
}

impl InputRecord for TimingCrossing {
    fn key(&self) -> String {
        format!("{}/{}", self.race, self.participant)
    }
    fn time(&self) -> Timestamp {
        self.time
    }
}

impl InputRecord for RaceDefinition {
    fn key(&self) -> String {
        self.id.clone()
    }
    fn time(&self) -> Timestamp {
        self.start
    }
}

/// An entrant has no time of its own: it is sent before its race's points,
/// and a paced replay does not wait for it.
impl InputRecord for Entrant {
    fn key(&self) -> String {
        format!("{}/{}", self.race, self.participant)
    }
    fn time(&self) -> Timestamp {
        Timestamp(0)
    }
}

impl InputRecord for ChatEvent {
    fn key(&self) -> String {
        self.room.clone()
    }
    fn time(&self) -> Timestamp {
        self.time
    }
}

impl InputRecord for CalcTask {
    fn key(&self) -> String {
        self.id.clone()
    }
    fn time(&self) -> Timestamp {
        self.time
    }
}

/// Reads `path`, one record per non-blank line; a line that is not a
/// valid record is skipped, and named in the second list.
pub fn read<T: InputRecord>(path: &Path) -> Result<(Vec<T>, Vec<Skipped>), IngestError> {
    let io = |source| IngestError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            // Not UTF-8: this line only.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                skipped.push(Skipped {
                    path: path.display().to_string(),
                    line: i + 1,
                    reason: "not UTF-8".to_owned(),
                });
                continue;
            }
            Err(e) => return Err(io(e)),
        };
        if line.trim().is_empty() {
            continue;
        }
        match schemas::decode::<T>(line.as_bytes()) {
            Ok(record) => out.push(record),
            Err(e) => skipped.push(Skipped {
                path: path.display().to_string(),
                line: i + 1,
                reason: e.to_string(),
            }),
        }
    }
    Ok((out, skipped))
}

/// Sends one input record to `topic`, keyed by [`InputRecord::key`].
pub fn send_record<R: InputRecord>(
    producer: &TrackedProducer,
    topic: &str,
    record: &R,
) -> Result<(), IngestError> {
    let payload = serde_json::to_vec(record).expect("records serialize");
    producer.send(topic, Some(record.key().as_bytes()), &payload, &[], 0)
}

/// Produces `records` to `topic`, spaced as their times are, divided by
/// `speed` (0 = as fast as possible), until done or `stop`. Returns how many
/// were produced, all acknowledged by the broker.
pub fn replay<T: InputRecord>(
    config: &KafkaConfig,
    topic: &str,
    records: &[T],
    speed: f64,
    stop: &Arc<AtomicBool>,
) -> Result<usize, IngestError> {
    let producer = TrackedProducer::new(config)?;
    let t0 = records.first().map(InputRecord::time);
    let wall0 = Instant::now();
    let mut sent = 0;
    for r in records {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let (Some(t0), true) = (t0, speed > 0.0) {
            let due = (r.time().0 - t0.0).max(0) as f64 / 1000.0 / speed;
            let wait = Duration::from_secs_f64(due).saturating_sub(wall0.elapsed());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
        send_record(&producer, topic, r)?;
        sent += 1;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_lines_and_names_the_bad_ones() {
        let dir = std::env::temp_dir().join(format!("pace-jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gps.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        let good =
            r#"{"race":"r","participant":"p","time":"2026-01-01T00:00:00Z","lat":1,"lon":2}"#;
        writeln!(f, "{good}\n\n{good}").unwrap();
        drop(f);
        let (ok, skipped): (Vec<GpsPoint>, _) = read(&path).unwrap();
        assert_eq!(ok.len(), 2);
        assert!(skipped.is_empty());
        assert_eq!(ok[0].key(), "r/p");
        let mut bytes =
            format!("{good}\n{}\n{{\n", good.replace("\"lat\":1", "\"lat\":95")).into_bytes();
        bytes.extend(b"\xff\xfe\n");
        bytes.extend(good.as_bytes());
        std::fs::write(&path, bytes).unwrap();
        let (ok, skipped) = read::<GpsPoint>(&path).unwrap();
        assert_eq!(ok.len(), 2, "the good lines around the bad ones");
        let named: Vec<String> = skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(named.len(), 3, "{named:?}");
        assert!(
            named[0].ends_with(":2: invalid lat: 95 is outside -90..=90"),
            "{named:?}"
        );
        assert!(named[1].contains(":3: "), "{named:?}");
        assert!(named[2].ends_with(":4: not UTF-8"), "{named:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
