//! Readers for recorded races, so they replay through Kafka like live input.
//!
//! - [`boston`]: published marathon results (the Boston Marathon's
//!   shape): a chip-timed race, each runner read at every mat at the gun
//!   plus their net time there.
//! - [`f1`]: a season of Formula 1 laps in the Ergast CSV schema
//!   (`lap_times.csv`, `races.csv`, `drivers.csv`). Each race becomes a
//!   timing-line race; each driver crosses the line at the gun (the start,
//!   not a lap) and at the end of every lap, at its cumulative time.
//! - [`irc`]: an IRC channel log (`[hh:mm] <nick> text`, `=== nick … has
//!   joined/left`, nick changes, emotes) as the events of one room.
//! - [`sailgp`]: SailGP boat logs (`data_<NAT>.csv`, about 1 Hz) and race
//!   XML (start time, marks and gates). Each race becomes a mark race; each
//!   log row a GPS point of the race the row is labelled with.
//!
//! [`replay`] produces a [`Dataset`] in time order: definitions first, then
//! GPS points and crossings merged by time.
//!
//! A line or row that cannot be read (a message with no text, a number that
//! is not one, a point out of range) is skipped and kept in
//! [`Dataset::skipped`] with its file and line number; the rest of the file
//! is read. Only what makes a whole file unreadable (it cannot be opened, a
//! CSV has no header, an XML does not parse, an IRC log's name has no
//! date) fails the read.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use schemas::{Entrant, GpsPoint, RaceDefinition, Timestamp, TimingCrossing};

pub use crate::jsonl::Skipped;
use crate::producer::TrackedProducer;
use crate::{IngestError, KafkaConfig, jsonl::InputRecord};

/// A recorded race day: definitions, GPS points and timing crossings.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    /// Race definitions.
    pub definitions: Vec<RaceDefinition>,
    /// Entrants of the races (names, waves, genders, categories).
    pub entrants: Vec<Entrant>,
    /// GPS points, in time order.
    pub gps: Vec<GpsPoint>,
    /// Timing crossings, in time order.
    pub timing: Vec<TimingCrossing>,
    /// Chat events, in order.
    pub chat: Vec<schemas::ChatEvent>,
    /// Lines the readers skipped, in the order they met them.
    pub skipped: Vec<Skipped>,
}

/// `row`'s value, or the line it came from in `skipped`.
fn keep<T>(
    skipped: &mut Vec<Skipped>,
    row: Result<T, IngestError>,
) -> Result<Option<T>, IngestError> {
    match row {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            skipped.push(Skipped::from_error(e)?);
            Ok(None)
        }
    }
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s).ok_or_else(|| format!("{s:?} is not an RFC 3339 time"))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn bad(path: &Path, line: usize, reason: impl std::fmt::Display) -> IngestError {
    IngestError::BadLine {
        path: path.display().to_string(),
        line,
        reason: reason.to_string(),
    }
}

/// A CSV row: its line number, and column name → value.
type Row = (usize, BTreeMap<String, String>);

/// Reads a CSV file with a header into rows; a row that does not parse is
/// skipped into `skipped`.
fn csv_rows(path: &Path, skipped: &mut Vec<Skipped>) -> Result<Vec<Row>, IngestError> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| bad(path, 0, e))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| bad(path, 1, e))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let Some(record) = keep(skipped, record.map_err(|e| bad(path, i + 2, e)))? else {
            continue;
        };
        let row = header
            .iter()
            .cloned()
            .zip(record.iter().map(str::to_owned))
            .collect();
        out.push((i + 2, row));
    }
    Ok(out)
}

fn field<'a>(
    path: &Path,
    line: usize,
    row: &'a BTreeMap<String, String>,
    name: &str,
) -> Result<&'a str, IngestError> {
    row.get(name)
        .map(String::as_str)
        .ok_or_else(|| bad(path, line, format_args!("no column {name:?}")))
}

fn number<T: std::str::FromStr>(
    path: &Path,
    line: usize,
    row: &BTreeMap<String, String>,
    name: &str,
) -> Result<T, IngestError> {
    let v = field(path, line, row, name)?;
    v.trim()
        .parse()
        .map_err(|_| bad(path, line, format_args!("{name}: {v:?} is not a number")))
}

pub mod boston;
pub mod f1;
pub mod irc;
pub mod sailgp;

/// A recorded dataset as a command line names it, `KIND:PATH`: the one list
/// of the readers above that `pace run --replay`, `pace replay --dataset`
/// and `pace-bench` take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// SailGP boat logs and race XML in this directory.
    SailGp(std::path::PathBuf),
    /// F1 lap CSVs (Ergast schema) in this directory.
    F1(std::path::PathBuf),
    /// An IRC channel log, replayed into room [`irc::ROOM`].
    Irc(std::path::PathBuf),
    /// Marathon results in the Boston Marathon's shape (a CSV file), as
    /// chip-timing mat reads.
    Boston(std::path::PathBuf),
}

impl Recorded {
    /// Every kind, with what its path is.
    pub const KINDS: [(&'static str, &'static str); 4] = [
        ("sailgp", "DIR"),
        ("f1", "DIR"),
        ("irc", "FILE"),
        ("boston", "FILE"),
    ];

    /// The dataset of `kind` at `path`, if `kind` is one of [`Self::KINDS`].
    pub fn of(kind: &str, path: std::path::PathBuf) -> Option<Self> {
        Some(match kind {
            "sailgp" => Recorded::SailGp(path),
            "f1" => Recorded::F1(path),
            "irc" => Recorded::Irc(path),
            "boston" => Recorded::Boston(path),
            _ => return None,
        })
    }

    /// `KIND:PATH`, for each of [`Self::KINDS`], as an expectation.
    pub fn expected() -> String {
        let kinds: Vec<String> = (Self::KINDS.iter())
            .map(|(k, p)| format!("{k}:{p}"))
            .collect();
        kinds.join(", ")
    }

    /// Parses `KIND:PATH`.
    pub fn parse(s: &str) -> Result<Self, String> {
        s.split_once(':')
            .filter(|(_, path)| !path.is_empty())
            .and_then(|(kind, path)| Self::of(kind, path.into()))
            .ok_or_else(|| format!("{s:?}: expected {}", Self::expected()))
    }

    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Recorded::SailGp(_) => "SailGP",
            Recorded::F1(_) => "F1",
            Recorded::Irc(_) => "IRC",
            Recorded::Boston(_) => "Boston 2015",
        }
    }

    /// Reads the dataset.
    pub fn read(&self) -> Result<Dataset, IngestError> {
        match self {
            Recorded::SailGp(dir) => sailgp::read(dir).map(|(d, _)| d),
            Recorded::F1(dir) => f1::read(dir).map(|(d, _)| d),
            Recorded::Irc(file) => irc::read(file, irc::ROOM),
            Recorded::Boston(file) => boston::read(file).map(|(d, _)| d),
        }
    }
}

/// Produces `dataset` to its topics: the definitions and entrants, then points,
/// crossings and chat events merged by time (each kind keeps its order),
/// spaced as their times are divided by `speed` (0 = as fast as possible),
/// until done or `stop`. `sent` hears the key and time of each point,
/// crossing and chat event as it is handed to the producer. Returns how
/// many records were produced, all acknowledged by the broker.
pub fn replay(
    config: &KafkaConfig,
    dataset: &Dataset,
    speed: f64,
    stop: &Arc<AtomicBool>,
    sent: &mut dyn FnMut(&str, Timestamp),
) -> Result<usize, IngestError> {
    let producer = TrackedProducer::new(config)?;
    let topics = &config.topics;
    fn record<'t, R: InputRecord>(topic: &'t str, r: &R) -> (Timestamp, &'t str, String, Vec<u8>) {
        (
            r.time(),
            topic,
            r.key(),
            serde_json::to_vec(r).expect("records serialize"),
        )
    }
    let mut timed: Vec<_> = dataset.gps.iter().map(|r| record(&topics.gps, r)).collect();
    timed.extend(dataset.timing.iter().map(|r| record(&topics.timing, r)));
    timed.extend(dataset.chat.iter().map(|r| record(&topics.chat, r)));
    // Stable: each kind keeps its own order.
    timed.sort_by_key(|r| r.0);
    for d in &dataset.definitions {
        crate::jsonl::send_record(&producer, &topics.races, d)?;
    }
    for e in &dataset.entrants {
        crate::jsonl::send_record(&producer, &topics.entrants, e)?;
    }
    let t0 = timed.first().map(|r| r.0);
    let wall0 = Instant::now();
    let mut count = dataset.definitions.len() + dataset.entrants.len();
    for (time, topic, key, payload) in &timed {
        if let (Some(t0), true) = (t0, speed > 0.0) {
            let due = Duration::from_secs_f64((time.0 - t0.0).max(0) as f64 / 1000.0 / speed);
            // Sleep in short steps, to notice `stop`.
            while wall0.elapsed() < due && !stop.load(Ordering::Relaxed) {
                std::thread::sleep((due - wall0.elapsed()).min(Duration::from_millis(200)));
            }
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        producer.send(topic, Some(key.as_bytes()), payload, &[], 0)?;
        sent(key, *time);
        count += 1;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_day_is_named_kind_colon_path() {
        assert_eq!(
            Recorded::parse("boston:r.csv"),
            Ok(Recorded::Boston("r.csv".into()))
        );
        assert_eq!(Recorded::parse("f1:d"), Ok(Recorded::F1("d".into())));
        for bad in ["boston:", "gpx:a", "x", ""] {
            let e = Recorded::parse(bad).unwrap_err();
            assert!(
                e.contains("sailgp:DIR, f1:DIR, irc:FILE, boston:FILE"),
                "{e}"
            );
        }
    }
}
