//! The archiver: every input topic (validated records), the dead letters and
//! every view changelog, to Parquet under `<data-dir>/archive/`, exactly once.
//!
//! It is a Kafka consumer of its own, beside the pipeline. Per topic and
//! partition it buffers the rows of the records it reads and writes them as one
//! file per dataset when the buffer is `max_age` old, holds `max_rows` rows or
//! `max_bytes` of payload, when the next record falls on another UTC date, or
//! when the buffers of all topics together pass `memory` (the largest goes
//! first). A file covers a range of offsets, and its name says which
//! ([`crate::parquet::FileName`]); the files of a dataset and partition tile
//! its offsets without overlap.
//!
//! Exactly once: a file is written whole or not at all (temporary name, fsync,
//! rename); offsets are committed after. On a start the archiver reads, for
//! each dataset and partition, the last offset its files cover, skips records
//! up to it, and resumes reading from the earliest such offset of the topic's
//! datasets (or later, where the group's committed offset says every dataset
//! is done). A `kill -9` at any moment loses only what no file holds yet, and
//! that is read again. The consumer group is named after an id kept in the
//! archive, so a new archive directory starts from the beginning of retention.
//!
//! One archiver writes an archive: it holds `archive/.lock` while it runs.
//!
//! Files: this one the archiver's start and loop; `registry.rs` every
//! archived topic (from `schemas::Topics::archived`; what a record becomes
//! is `schemas::archive`), `topic.rs` one topic's buffers and files,
//! `table.rs` one dataset's rows.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ingest::KafkaConfig;
use ingest::reader::{Reader, Start};

mod registry;
mod table;
mod topic;

pub(crate) use registry::topics;

use crate::SinkError;
use crate::parquet::io;

/// How the archiver runs.
#[derive(Clone, Debug)]
pub struct ArchiveConfig {
    /// Brokers and topics.
    pub kafka: KafkaConfig,
    /// The archive is `<data_dir>/archive`.
    pub data_dir: PathBuf,
    /// A file is written once its buffer is this old…
    pub max_age: Duration,
    /// …or holds this many rows…
    pub max_rows: usize,
    /// …or this many bytes of Kafka payload.
    pub max_bytes: usize,
    /// The buffers of all topics together hold at most this many bytes of
    /// payload; past it, the largest is written.
    pub memory: usize,
}

impl ArchiveConfig {
    /// How old a buffer gets before it is written, unless told otherwise.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30);

    /// Defaults: files every 30 s (data is queryable within a minute), or
    /// 1,000,000 rows, or 32 MiB of payload; 128 MiB of payload buffered in all.
    pub fn new(kafka: KafkaConfig, data_dir: PathBuf) -> Self {
        Self {
            kafka,
            data_dir,
            max_age: Self::DEFAULT_MAX_AGE,
            max_rows: 1_000_000,
            max_bytes: 32 << 20,
            memory: 128 << 20,
        }
    }
}

/// `<data_dir>/archive`.
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("archive")
}

/// An exclusive lock on a file, released when dropped (or the process dies).
pub(crate) struct Lock(File);

impl Lock {
    fn open(path: &Path) -> Result<File, SinkError> {
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io("open", path))
    }

    /// Takes the lock on `path` (created if missing), waiting for it.
    pub(crate) fn wait(path: &Path) -> Result<Self, SinkError> {
        let file = Self::open(path)?;
        file.lock().map_err(io("lock", path))?;
        Ok(Lock(file))
    }

    /// Takes the lock on `path` if no one holds it.
    pub(crate) fn try_take(path: &Path) -> Result<Option<Self>, SinkError> {
        let file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io("lock", path)(e)),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// The lock a dataset's writers take to add or swap files (see `compact`).
pub(crate) fn dataset_lock(dir: &Path) -> Result<Lock, SinkError> {
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    Lock::wait(&dir.join(".lock"))
}

/// Removes what a crash left: temporary files under `dir`.
fn remove_temporaries(dir: &Path) -> Result<(), SinkError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("list", dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io("list", dir))?.path();
        if path.is_dir() {
            remove_temporaries(&path)?;
        } else if path.extension().is_some_and(|e| e == "tmp") {
            tracing::info!(path = %path.display(), "removing a partial file");
            std::fs::remove_file(&path).map_err(io("remove", &path))?;
        }
    }
    Ok(())
}

/// The archive's id (made on first use): it names the consumer group.
fn archive_id(root: &Path) -> Result<String, SinkError> {
    let path = root.join(".archive-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("read", &path)(e)),
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = format!("{nanos:x}{:x}", std::process::id());
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &id).map_err(io("write", &tmp))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io("fsync", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("rename", &path))?;
    crate::parquet::sync_dir(root)?;
    Ok(id)
}

/// How long the archiver asks for its group's committed offsets at start
/// before it gives up: a broker that has just started (or restarted) answers
/// `NotCoordinator` or "coordinator load in progress" until the group
/// coordinator has loaded, which takes seconds on a busy machine.
const COMMITTED_PATIENCE: Duration = Duration::from_secs(60);

/// The group's committed offsets of `partitions` of `topic`, asked again
/// while the broker cannot answer yet (see [`COMMITTED_PATIENCE`]).
fn committed_once_ready(
    probe: &Reader,
    topic: &str,
    partitions: &[i32],
    stop: &AtomicBool,
) -> Result<BTreeMap<i32, i64>, SinkError> {
    let deadline = Instant::now() + COMMITTED_PATIENCE;
    loop {
        match probe.committed(topic, partitions) {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() < deadline && !stop.load(Ordering::SeqCst) => {
                tracing::info!(topic, error = %e, "committed offsets not available yet; asking again");
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Archives until `stop` is set, then writes what it holds and returns.
pub fn run(config: &ArchiveConfig, stop: &AtomicBool) -> Result<(), SinkError> {
    let root = root(&config.data_dir);
    std::fs::create_dir_all(&root).map_err(io("create", &root))?;
    let _lock = Lock::try_take(&root.join(".lock"))?.ok_or_else(|| SinkError::Busy {
        path: root.display().to_string(),
    })?;
    remove_temporaries(&root)?;
    let group = format!("pace-archive-{}", archive_id(&root)?);
    let mut topics = topics(&config.kafka.topics, Some(&root))?;
    // Where to start: past what every dataset's files hold, or past the
    // group's committed offset, whichever is later.
    let probe = Reader::new(&config.kafka, &group, &[])?;
    let mut starts = Vec::new();
    for t in &topics {
        let partitions: Vec<i32> = (0..probe.partitions(t.name())?).collect();
        let committed = committed_once_ready(&probe, t.name(), &partitions, stop)?;
        for p in partitions {
            let from = t.start(p).max(committed.get(&p).copied().unwrap_or(0));
            starts.push((t.name().to_owned(), p, Start::At(from)));
        }
    }
    drop(probe);
    tracing::info!(archive = %root.display(), %group, "archiving");
    let mut reader = Reader::new(&config.kafka, &group, &starts)?;
    let commit = |reader: &Reader, topic: &str, p: i32, next: i64| {
        if let Err(e) = reader.commit(topic, p, next) {
            tracing::warn!(topic, partition = p, error = %e, "commit failed (the archive is not affected)");
        }
    };
    let metrics = observability::metrics();
    let mut last_check = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        for (t, raw) in reader.poll(4096, Duration::from_millis(100)) {
            if let Some((p, next)) = topics[t].push(&raw)? {
                commit(&reader, topics[t].name(), p, next);
            }
        }
        // Past the memory budget, the largest buffers go first.
        loop {
            let all: Vec<(usize, i32, usize)> = topics
                .iter()
                .enumerate()
                .flat_map(|(i, t)| t.buffered().into_iter().map(move |(p, b)| (i, p, b)))
                .collect();
            if all.iter().map(|x| x.2).sum::<usize>() <= config.memory {
                break;
            }
            let (i, p, _) = *all
                .iter()
                .max_by_key(|x| x.2)
                .expect("over budget: not empty");
            if let Some(next) = topics[i].roll(p)? {
                commit(&reader, topics[i].name(), p, next);
            }
        }
        if last_check.elapsed() >= Duration::from_millis(200) {
            last_check = Instant::now();
            for t in topics.iter_mut() {
                for p in t.due(config) {
                    if let Some(next) = t.roll(p)? {
                        commit(&reader, t.name(), p, next);
                    }
                }
                metrics
                    .archive_buffered
                    .with_label_values(&[t.name()])
                    .set(t.buffered().iter().map(|(_, b)| *b as i64).sum());
            }
        }
    }
    for t in topics.iter_mut() {
        for (p, _) in t.buffered() {
            if let Some(next) = t.roll(p)? {
                commit(&reader, t.name(), p, next);
            }
        }
    }
    tracing::info!("archive written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use ingest::source::RawRecord;
    use schemas::GpsPoint;

    use super::topic::{DAY_MS, open_topic};
    use super::*;
    use crate::parquet::{FileName, list_files, read_offsets};

    const DAY: i64 = 1_780_000_000_000; // 2026-05-28

    /// Every dataset's Arrow schema as text: a line per dataset, then a
    /// line per column (name, type, nullable or not).
    fn schemas_text() -> String {
        let mut out = String::new();
        for topic in topics(&schemas::Topics::default(), None).unwrap() {
            for (dataset, schema) in topic.datasets().into_iter().zip(topic.schemas()) {
                out.push_str(&format!("{dataset} ({})\n", topic.name()));
                for f in schema.fields() {
                    let null = if f.is_nullable() { ", nullable" } else { "" };
                    out.push_str(&format!("  {}: {:?}{null}\n", f.name(), f.data_type()));
                }
            }
        }
        out
    }

    /// The archive's datasets keep their columns: what data engineers'
    /// queries read. `schemas.txt` is the copy checked in; a change to a
    /// dataset's columns must change it too, on purpose.
    #[test]
    fn every_dataset_keeps_its_arrow_schema() {
        let now = schemas_text();
        assert_eq!(
            now,
            include_str!("schemas.txt"),
            "the archive's schemas changed; now:\n{now}"
        );
    }

    fn raw(partition: i32, offset: i64, payload: String) -> RawRecord {
        RawRecord {
            partition,
            offset,
            key: None,
            payload: payload.into_bytes(),
            timestamp_ms: Some(DAY),
            headers: vec![],
        }
    }

    fn gps(partition: i32, offset: i64, time: i64) -> RawRecord {
        raw(
            partition,
            offset,
            format!(
                r#"{{"race":"r","participant":"p{offset}","time":{time},"lat":59.3,"lon":18.1}}"#
            ),
        )
    }

    fn files(root: &Path, dataset: &str) -> Vec<(String, FileName, Vec<i64>)> {
        list_files(&root.join(dataset))
            .unwrap()
            .into_iter()
            .map(|f| (f.date.clone(), f.name, read_offsets(&f.path).unwrap()))
            .collect()
    }

    #[test]
    fn files_tile_the_offsets_roll_on_date_and_skip_what_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut t = open_topic::<GpsPoint>("pace.gps", Some(root)).unwrap();
        // 0..3 on one day, 3 invalid, 4 on the next day, 5 back on the first.
        for o in 0..3 {
            assert_eq!(t.push(&gps(0, o, DAY + o)).unwrap(), None);
        }
        t.push(&raw(0, 3, "{".into())).unwrap();
        assert_eq!(t.push(&gps(0, 4, DAY + DAY_MS)).unwrap(), Some((0, 4)));
        assert_eq!(t.push(&gps(0, 5, DAY)).unwrap(), Some((0, 5)));
        assert_eq!(t.roll(0).unwrap(), Some(6));
        let got = files(root, "gps");
        let name = |first, last| FileName {
            partition: 0,
            first,
            last,
        };
        assert_eq!(
            got,
            vec![
                ("2026-05-28".into(), name(0, 3), vec![0, 1, 2]),
                ("2026-05-28".into(), name(5, 5), vec![5]),
                ("2026-05-29".into(), name(4, 4), vec![4]),
            ]
        );
        // A restart: the archive covers 0..=5, records up to 5 are skipped.
        let mut t = open_topic::<GpsPoint>("pace.gps", Some(root)).unwrap();
        assert_eq!((t.start(0), t.start(1)), (6, 0));
        for o in 2..8 {
            t.push(&gps(0, o, DAY)).unwrap();
        }
        t.roll(0).unwrap();
        let got = files(root, "gps");
        assert_eq!(got.len(), 4);
        assert_eq!(got[1], ("2026-05-28".into(), name(5, 5), vec![5]));
        assert_eq!(got[2], ("2026-05-28".into(), name(6, 7), vec![6, 7]));
    }

    #[test]
    fn a_changelog_record_gives_rows_in_two_datasets_each_resuming_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // With `splits`, a change also ranks, passes a split and moves the leader.
        let change = |seq: u64, splits: bool| {
            let ranks = r#""ranks":[{"participant":"a","rank":1}],"#;
            let split = r#"{"race":"r","participant":"a","split":1,"time":5,"position":1}"#;
            let leader = r#","leader":{"participant":"a","distance_m":1.0}"#;
            format!(
                r#"{{"race":"r","seq":{seq},{}"upserts":[{{"race":"r","participant":"a","name":"A","distance_m":1.0,"last_seen":5,"status":"racing"}}],"removes":["b"],"splits":[{}]{}}}"#,
                if splits { ranks } else { "" },
                if splits { split } else { "" },
                if splits { leader } else { "" }
            )
        };
        let mut t = open_topic::<schemas::StandingsChange>("pace.standings", Some(root)).unwrap();
        assert_eq!(t.count(&raw(0, 0, change(1, true))), vec![2, 1, 1, 1]);
        t.push(&raw(0, 0, change(1, true))).unwrap();
        t.push(&raw(0, 1, change(2, false))).unwrap();
        t.roll(0).unwrap();
        t.push(&raw(0, 2, change(3, false))).unwrap();
        t.roll(0).unwrap();
        // Standings cover 0..=2, ranks, splits and leaders only 0..=1 (none since):
        // a restart reads from 2 again, and only they would take offset 2.
        let t = open_topic::<schemas::StandingsChange>("pace.standings", Some(root)).unwrap();
        assert_eq!(t.start(0), 2);
        assert_eq!(files(root, "standings").len(), 2);
        assert_eq!(files(root, "ranks")[0].1.last, 1);
        assert_eq!(files(root, "splits")[0].1.last, 1);
        assert_eq!(files(root, "leaders")[0].1.last, 1);
    }

    #[test]
    fn the_archive_is_locked_by_its_archiver() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let held = Lock::try_take(&path).unwrap();
        assert!(held.is_some());
        assert!(Lock::try_take(&path).unwrap().is_none());
        drop(held);
        assert!(Lock::try_take(&path).unwrap().is_some());
    }
}
