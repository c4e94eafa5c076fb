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

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ingest::KafkaConfig;
use ingest::source::{Envelope, RawRecord, Reader, Start};
use schemas::topics::{
    DLQ_OFFSET_HEADER, DLQ_PARTITION_HEADER, DLQ_REASON_HEADER, DLQ_SOURCE_HEADER,
    DLQ_TOPIC_HEADER, DLQ_TRUNCATED_HEADER,
};
use schemas::tournament::{TournamentChange, TournamentEvent};
use schemas::{
    CalcTask, ChatEvent, GpsPoint, RaceDefinition, RoomChange, RoomMessage, StandingsChange,
    TaskResult, TimingCrossing, Topics,
};

use crate::SinkError;
use crate::parquet::{
    DeadLetterRow, FileName, MemberChange, Row, SplitChange, StandingChange, batch, io, list_files,
    write_atomically,
};

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

/// Where a record came from.
#[derive(Clone, Copy, Debug)]
struct Origin {
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
}

impl Origin {
    fn wrap<R>(self, record: R) -> Envelope<R> {
        Envelope {
            partition: self.partition,
            offset: self.offset,
            timestamp_ms: self.timestamp_ms,
            record,
        }
    }
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

/// The rows of one dataset, per partition, waiting for their file.
struct Table<R> {
    dir: PathBuf,
    parts: BTreeMap<i32, Part<R>>,
}

struct Part<R> {
    rows: Vec<Envelope<R>>,
    /// The last offset the dataset's files cover.
    through: Option<i64>,
}

impl<R> Default for Part<R> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            through: None,
        }
    }
}

impl<R: Row> Table<R> {
    /// The table of `archive`/`R::DATASET`, knowing what its files cover;
    /// with no archive, a scratch table that keeps everything (for counting).
    fn open(archive: Option<&Path>) -> Result<Self, SinkError> {
        let dir = archive.map_or_else(PathBuf::new, |a| a.join(R::DATASET));
        let mut parts: BTreeMap<i32, Part<R>> = BTreeMap::new();
        if archive.is_some() {
            for f in list_files(&dir)? {
                let part = parts.entry(f.name.partition).or_default();
                part.through = part.through.max(Some(f.name.last));
            }
        }
        Ok(Self { dir, parts })
    }

    /// Buffers a row, unless a file already holds its record.
    fn push(&mut self, row: Envelope<R>) -> bool {
        let part = self.parts.entry(row.partition).or_default();
        if part.through.is_some_and(|t| row.offset <= t) {
            return false;
        }
        part.rows.push(row);
        true
    }
}

/// What the archiver needs of a table, whatever its row type.
trait AnyTable: Send {
    fn dataset(&self) -> &'static str;
    fn through(&self, partition: i32) -> Option<i64>;
    fn buffered(&self, partition: i32) -> usize;
    /// Writes the rows of `partition` as the file of the offsets up to
    /// `last` (from where the dataset's files end, or `from`).
    fn write(&mut self, partition: i32, from: i64, last: i64, date: &str) -> Result<(), SinkError>;
    fn clear(&mut self);
}

impl<R: Row> AnyTable for Table<R> {
    fn dataset(&self) -> &'static str {
        R::DATASET
    }

    fn through(&self, partition: i32) -> Option<i64> {
        self.parts.get(&partition).and_then(|p| p.through)
    }

    fn buffered(&self, partition: i32) -> usize {
        self.parts.get(&partition).map_or(0, |p| p.rows.len())
    }

    fn write(&mut self, partition: i32, from: i64, last: i64, date: &str) -> Result<(), SinkError> {
        let Some(part) = self.parts.get_mut(&partition) else {
            return Ok(());
        };
        if part.rows.is_empty() {
            return Ok(());
        }
        let name = FileName {
            partition,
            first: part.through.map_or(from, |t| t + 1),
            last,
        };
        let path = self.dir.join(format!("date={date}")).join(name.render());
        let rows = std::mem::take(&mut part.rows);
        let size = {
            let _lock = dataset_lock(&self.dir)?;
            write_atomically(&path, R::schema(), [batch(&rows)])?
        };
        part.through = Some(last);
        let m = observability::metrics();
        m.archive_rows
            .with_label_values(&[R::DATASET])
            .inc_by(rows.len() as u64);
        m.archive_files.with_label_values(&[R::DATASET]).inc();
        m.archive_bytes
            .with_label_values(&[R::DATASET])
            .inc_by(size);
        tracing::debug!(path = %path.display(), rows = rows.len(), "archived");
        Ok(())
    }

    fn clear(&mut self) {
        self.parts.clear();
    }
}

/// How the records of one topic become rows.
trait Kind: Send + Sized + 'static {
    type Decoded;
    fn open(archive: Option<&Path>) -> Result<Self, SinkError>;
    /// The record, or `None` if it is not archived here (a record the
    /// pipeline refuses: its dead letter is archived instead).
    fn decode(raw: &RawRecord) -> Option<Self::Decoded>;
    /// The time whose UTC date partitions the rows, if not the Kafka timestamp.
    fn time_ms(d: &Self::Decoded) -> Option<i64>;
    /// Buffers the record's rows; how many were new.
    fn push(&mut self, origin: Origin, d: Self::Decoded) -> usize;
    fn tables(&mut self) -> Vec<&mut dyn AnyTable>;
    fn tables_ref(&self) -> Vec<&dyn AnyTable>;
}

/// A record that is one row of one dataset.
trait Single: Row {
    fn decode(raw: &RawRecord) -> Option<Self>;
    fn time_ms(&self) -> Option<i64>;
}

macro_rules! input {
    ($t:ty, $time:expr) => {
        impl Single for $t {
            fn decode(raw: &RawRecord) -> Option<Self> {
                schemas::decode::<$t>(&raw.payload).ok()
            }
            fn time_ms(&self) -> Option<i64> {
                let f: fn(&$t) -> i64 = $time;
                Some(f(self))
            }
        }
    };
}

input!(GpsPoint, |p| p.time.0);
input!(TimingCrossing, |c| c.time.0);
input!(RaceDefinition, |d| d.start.0);
input!(ChatEvent, |c| c.time.0);
input!(CalcTask, |t| t.time.0);
input!(TournamentEvent, |e| e.time.0);

impl Single for TournamentChange {
    fn decode(raw: &RawRecord) -> Option<Self> {
        serde_json::from_slice(&raw.payload).ok()
    }
    fn time_ms(&self) -> Option<i64> {
        None
    }
}

impl Single for TaskResult {
    fn decode(raw: &RawRecord) -> Option<Self> {
        serde_json::from_slice(&raw.payload).ok()
    }
    fn time_ms(&self) -> Option<i64> {
        Some(self.submitted_at.0)
    }
}

impl Single for DeadLetterRow {
    fn decode(raw: &RawRecord) -> Option<Self> {
        let number = |h| raw.header(h).and_then(|v| v.parse().ok());
        Some(DeadLetterRow {
            source_topic: raw.header(DLQ_TOPIC_HEADER).unwrap_or_default().to_owned(),
            source_partition: number(DLQ_PARTITION_HEADER).unwrap_or(-1) as i32,
            source_offset: number(DLQ_OFFSET_HEADER).unwrap_or(-1),
            reason: raw.header(DLQ_REASON_HEADER).unwrap_or_default().to_owned(),
            refused_by: raw.header(DLQ_SOURCE_HEADER).map(str::to_owned),
            truncated_from: number(DLQ_TRUNCATED_HEADER),
            key: raw.key.clone(),
            payload: raw.payload.clone(),
        })
    }
    fn time_ms(&self) -> Option<i64> {
        None
    }
}

/// A topic of one dataset.
struct One<R>(Table<R>);

impl<R: Single> Kind for One<R> {
    type Decoded = R;
    fn open(archive: Option<&Path>) -> Result<Self, SinkError> {
        Table::open(archive).map(One)
    }
    fn decode(raw: &RawRecord) -> Option<R> {
        R::decode(raw)
    }
    fn time_ms(d: &R) -> Option<i64> {
        d.time_ms()
    }
    fn push(&mut self, origin: Origin, d: R) -> usize {
        usize::from(self.0.push(origin.wrap(d)))
    }
    fn tables(&mut self) -> Vec<&mut dyn AnyTable> {
        vec![&mut self.0]
    }
    fn tables_ref(&self) -> Vec<&dyn AnyTable> {
        vec![&self.0]
    }
}

/// `pace.standings`: standings rows and splits.
struct Standings {
    rows: Table<StandingChange>,
    splits: Table<SplitChange>,
}

impl Kind for Standings {
    type Decoded = StandingsChange;
    fn open(archive: Option<&Path>) -> Result<Self, SinkError> {
        Ok(Self {
            rows: Table::open(archive)?,
            splits: Table::open(archive)?,
        })
    }
    fn decode(raw: &RawRecord) -> Option<StandingsChange> {
        serde_json::from_slice(&raw.payload).ok()
    }
    fn time_ms(_: &StandingsChange) -> Option<i64> {
        None
    }
    fn push(&mut self, o: Origin, c: StandingsChange) -> usize {
        let (race, seq) = (&c.race, c.seq);
        let mut n = 0;
        for row in c.upserts {
            n += usize::from(self.rows.push(o.wrap(StandingChange {
                race: race.clone(),
                seq,
                participant: row.participant.clone(),
                row: Some(row),
            })));
        }
        for participant in c.removes {
            n += usize::from(self.rows.push(o.wrap(StandingChange {
                race: race.clone(),
                seq,
                participant,
                row: None,
            })));
        }
        for split in c.splits {
            n += usize::from(self.splits.push(o.wrap(SplitChange {
                race: race.clone(),
                seq,
                key: schemas::SplitKey {
                    participant: split.participant.clone(),
                    split: split.split,
                },
                split: Some(split),
            })));
        }
        for key in c.split_removes {
            n += usize::from(self.splits.push(o.wrap(SplitChange {
                race: race.clone(),
                seq,
                key,
                split: None,
            })));
        }
        n
    }
    fn tables(&mut self) -> Vec<&mut dyn AnyTable> {
        vec![&mut self.rows, &mut self.splits]
    }
    fn tables_ref(&self) -> Vec<&dyn AnyTable> {
        vec![&self.rows, &self.splits]
    }
}

/// `pace.rooms`: membership changes and messages.
struct Rooms {
    members: Table<MemberChange>,
    messages: Table<RoomMessage>,
}

impl Kind for Rooms {
    type Decoded = RoomChange;
    fn open(archive: Option<&Path>) -> Result<Self, SinkError> {
        Ok(Self {
            members: Table::open(archive)?,
            messages: Table::open(archive)?,
        })
    }
    fn decode(raw: &RawRecord) -> Option<RoomChange> {
        serde_json::from_slice(&raw.payload).ok()
    }
    fn time_ms(_: &RoomChange) -> Option<i64> {
        None
    }
    fn push(&mut self, o: Origin, c: RoomChange) -> usize {
        let mut n = 0;
        for m in c.members {
            n += usize::from(self.members.push(o.wrap(MemberChange {
                room: c.room.clone(),
                user: m.user.clone(),
                member: Some(m),
            })));
        }
        for user in c.removes {
            n += usize::from(self.members.push(o.wrap(MemberChange {
                room: c.room.clone(),
                user,
                member: None,
            })));
        }
        for m in c.messages {
            n += usize::from(self.messages.push(o.wrap(m)));
        }
        n
    }
    fn tables(&mut self) -> Vec<&mut dyn AnyTable> {
        vec![&mut self.members, &mut self.messages]
    }
    fn tables_ref(&self) -> Vec<&dyn AnyTable> {
        vec![&self.members, &self.messages]
    }
}

/// What a partition's buffers hold.
struct Open {
    /// The first offset read since the last file.
    from: i64,
    /// The last offset read.
    last: i64,
    /// The UTC day (days since 1970) of the rows buffered.
    day: Option<i64>,
    rows: usize,
    bytes: usize,
    since: Instant,
}

/// One archived topic, whatever its kind.
pub(crate) trait Topic: Send {
    /// The topic's name.
    fn name(&self) -> &str;
    /// The datasets it fills.
    fn datasets(&self) -> Vec<&'static str>;
    /// The first offset of `partition` some dataset's files do not cover yet.
    fn start(&self, partition: i32) -> i64;
    /// Takes one record; the offset to commit if a file was written first.
    fn push(&mut self, raw: &RawRecord) -> Result<Option<(i32, i64)>, SinkError>;
    /// Writes the files of `partition`; the offset to commit.
    fn roll(&mut self, partition: i32) -> Result<Option<i64>, SinkError>;
    /// Partitions whose buffers are due by age, rows or bytes.
    fn due(&self, config: &ArchiveConfig) -> Vec<i32>;
    /// Partitions with anything buffered, and their payload bytes.
    fn buffered(&self) -> Vec<(i32, usize)>;
    /// The rows `raw` gives, per dataset (in [`Topic::datasets`] order).
    fn count(&mut self, raw: &RawRecord) -> Vec<usize>;
}

struct TopicArchive<K> {
    name: String,
    kind: K,
    open: BTreeMap<i32, Open>,
}

const DAY_MS: i64 = 86_400_000;

/// `YYYY-MM-DD` of a UTC day number.
fn date_of(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .expect("days of validated times are in range")
        .format("%Y-%m-%d")
        .to_string()
}

impl<K: Kind> Topic for TopicArchive<K> {
    fn name(&self) -> &str {
        &self.name
    }

    fn datasets(&self) -> Vec<&'static str> {
        self.kind.tables_ref().iter().map(|t| t.dataset()).collect()
    }

    fn start(&self, partition: i32) -> i64 {
        self.kind
            .tables_ref()
            .iter()
            .map(|t| t.through(partition).map_or(0, |l| l + 1))
            .min()
            .unwrap_or(0)
    }

    fn push(&mut self, raw: &RawRecord) -> Result<Option<(i32, i64)>, SinkError> {
        let p = raw.partition;
        let decoded = K::decode(raw);
        let day = decoded.as_ref().map(|d| {
            K::time_ms(d)
                .or(raw.timestamp_ms)
                .unwrap_or_else(|| schemas::Timestamp::now().0)
                .div_euclid(DAY_MS)
        });
        // Rows of another date go to another file.
        let mut committed = None;
        if let (Some(day), Some(open)) = (day, self.open.get(&p))
            && open.rows > 0
            && open.day != Some(day)
        {
            committed = self.roll(p)?.map(|o| (p, o));
        }
        let open = self.open.entry(p).or_insert_with(|| Open {
            from: raw.offset,
            last: raw.offset,
            day: None,
            rows: 0,
            bytes: 0,
            since: Instant::now(),
        });
        open.last = raw.offset;
        if let (Some(d), Some(day)) = (decoded, day) {
            let origin = Origin {
                partition: p,
                offset: raw.offset,
                timestamp_ms: raw.timestamp_ms,
            };
            let added = self.kind.push(origin, d);
            if added > 0 {
                open.day = Some(day);
                open.rows += added;
                open.bytes += raw.payload.len();
            }
        }
        Ok(committed)
    }

    fn roll(&mut self, partition: i32) -> Result<Option<i64>, SinkError> {
        let Some(open) = self.open.remove(&partition) else {
            return Ok(None);
        };
        if let Some(day) = open.day {
            let date = date_of(day);
            for t in self.kind.tables() {
                t.write(partition, open.from, open.last, &date)?;
            }
        }
        Ok(Some(open.last + 1))
    }

    fn due(&self, config: &ArchiveConfig) -> Vec<i32> {
        self.open
            .iter()
            .filter(|(_, o)| {
                o.since.elapsed() >= config.max_age
                    || o.rows >= config.max_rows
                    || o.bytes >= config.max_bytes
            })
            .map(|(p, _)| *p)
            .collect()
    }

    fn buffered(&self) -> Vec<(i32, usize)> {
        self.open.iter().map(|(p, o)| (*p, o.bytes)).collect()
    }

    fn count(&mut self, raw: &RawRecord) -> Vec<usize> {
        let origin = Origin {
            partition: raw.partition,
            offset: raw.offset,
            timestamp_ms: raw.timestamp_ms,
        };
        if let Some(d) = K::decode(raw) {
            self.kind.push(origin, d);
        }
        self.kind
            .tables()
            .into_iter()
            .map(|t| {
                let n = t.buffered(raw.partition);
                t.clear();
                n
            })
            .collect()
    }
}

fn topic<K: Kind>(name: &str, archive: Option<&Path>) -> Result<Box<dyn Topic>, SinkError> {
    Ok(Box::new(TopicArchive {
        name: name.to_owned(),
        kind: K::open(archive)?,
        open: BTreeMap::new(),
    }))
}

/// Every archived topic, with the state of the archive at `archive` (or
/// none, for counting).
pub(crate) fn topics(t: &Topics, archive: Option<&Path>) -> Result<Vec<Box<dyn Topic>>, SinkError> {
    Ok(vec![
        topic::<One<GpsPoint>>(&t.gps, archive)?,
        topic::<One<TimingCrossing>>(&t.timing, archive)?,
        topic::<One<RaceDefinition>>(&t.races, archive)?,
        topic::<One<ChatEvent>>(&t.chat, archive)?,
        topic::<One<CalcTask>>(&t.calc, archive)?,
        topic::<One<DeadLetterRow>>(&t.dlq, archive)?,
        topic::<Standings>(&t.standings, archive)?,
        topic::<Rooms>(&t.rooms, archive)?,
        topic::<One<TaskResult>>(&t.results, archive)?,
        topic::<One<TournamentEvent>>(&t.tournament, archive)?,
        topic::<One<TournamentChange>>(&t.tournaments, archive)?,
    ])
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
    use super::*;
    use crate::parquet::read_offsets;

    const DAY: i64 = 1_780_000_000_000; // 2026-05-28

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
        let mut t = topic::<One<GpsPoint>>("pace.gps", Some(root)).unwrap();
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
        let mut t = topic::<One<GpsPoint>>("pace.gps", Some(root)).unwrap();
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
        let change = |seq: u64, splits: bool| {
            let split = r#"{"race":"r","participant":"a","split":1,"time":5,"position":1}"#;
            format!(
                r#"{{"race":"r","seq":{seq},"upserts":[{{"race":"r","rank":1,"participant":"a","name":"A","distance_m":1.0,"last_seen":5,"status":"racing"}}],"removes":["b"],"splits":[{}]}}"#,
                if splits { split } else { "" }
            )
        };
        let mut t = topic::<Standings>("pace.standings", Some(root)).unwrap();
        assert_eq!(t.count(&raw(0, 0, change(1, true))), vec![2, 1]);
        t.push(&raw(0, 0, change(1, true))).unwrap();
        t.push(&raw(0, 1, change(2, false))).unwrap();
        t.roll(0).unwrap();
        t.push(&raw(0, 2, change(3, false))).unwrap();
        t.roll(0).unwrap();
        // Standings cover 0..=2, splits only 0..=1 (no split since): a
        // restart reads from 2 again, and only splits would take offset 2.
        let t = topic::<Standings>("pace.standings", Some(root)).unwrap();
        assert_eq!(t.start(0), 2);
        assert_eq!(files(root, "standings").len(), 2);
        assert_eq!(files(root, "splits")[0].1.last, 1);
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
