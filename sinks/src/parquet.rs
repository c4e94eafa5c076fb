//! Parquet files of the archive: what a row of each dataset is, how a file is
//! named, and how it is written (whole or not at all) and read back.
//!
//! A file is `<root>/<dataset>/date=YYYY-MM-DD/part-<P>-<FIRST>-<LAST>.parquet`:
//! the rows of Kafka partition `P` whose records lie in the offset range
//! `FIRST..=LAST` (zero-padded, so names sort by offset). zstd, dictionary-encoded
//! ids, page statistics, timestamps as UTC milliseconds, row groups of up to
//! [`ROW_GROUP_ROWS`], rows in offset order. A file is written under a `.tmp`
//! name, fsynced and renamed, and its directory fsynced, so a reader only ever
//! sees whole files.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, StringBuilder, StringDictionaryBuilder,
    UInt32Builder,
};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMillisecondArray, UInt32Array,
    UInt64Array,
};
use arrow_schema::SchemaRef;
use ingest::source::Envelope;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use schemas::tournament::{TournamentChange, TournamentEvent};
use schemas::{
    CalcTask, ChatEvent, GpsPoint, RaceDefinition, RoomMember, RoomMessage, Split, SplitKey,
    StandingRow, TaskResult, TimingCrossing,
};

use crate::SinkError;

/// Most rows in one Parquet row group: large enough for scans, small enough
/// that a reader holds one comfortably.
pub const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// How every archive file is written.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // The library's own `created_by` ("parquet-rs version …"): readers
        // such as Arrow C++ trust a file's float statistics only from a
        // writer they know. pace names itself in the key-value metadata.
        .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
            "writer".into(),
            concat!("pace ", env!("CARGO_PKG_VERSION")).to_owned(),
        )]))
        .build()
}

/// A row of one archived dataset, with its origin in an [`Envelope`].
pub trait Row: Sized + Send + 'static {
    /// The dataset directory under `archive/`.
    const DATASET: &'static str;
    /// The Arrow schema, origin columns last (see `schemas::arrow`).
    fn schema() -> SchemaRef;
    /// The columns of `rows`, without the origin columns.
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef>;
}

/// A record batch of `rows`, origin columns included.
pub fn batch<R: Row>(rows: &[Envelope<R>]) -> Result<RecordBatch, SinkError> {
    let mut columns = R::columns(rows);
    columns.push(Arc::new(Int32Array::from_iter_values(
        rows.iter().map(|e| e.partition),
    )));
    columns.push(Arc::new(Int64Array::from_iter_values(
        rows.iter().map(|e| e.offset),
    )));
    columns.push(times(rows.iter().map(|e| e.timestamp_ms)));
    RecordBatch::try_new(R::schema(), columns).map_err(|e| SinkError::Parquet {
        path: R::DATASET.into(),
        message: e.to_string(),
    })
}

/// The name of an archive file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileName {
    /// Kafka partition.
    pub partition: i32,
    /// First offset of the range the file covers.
    pub first: i64,
    /// Last offset of the range the file covers.
    pub last: i64,
}

impl FileName {
    /// `part-P-FIRST-LAST.parquet`.
    pub fn render(&self) -> String {
        format!(
            "part-{}-{:020}-{:020}.parquet",
            self.partition, self.first, self.last
        )
    }

    /// Parses a name [`FileName::render`] made; `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
        let mut it = rest.split('-');
        let (p, f, l) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        let name = FileName {
            partition: p.parse().ok()?,
            first: f.parse().ok()?,
            last: l.parse().ok()?,
        };
        (name.first <= name.last && name.partition >= 0).then_some(name)
    }
}

/// One file of a dataset, as found on disk.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArchivedFile {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Partition and offset range.
    pub name: FileName,
    /// Where it is.
    pub path: PathBuf,
}

/// Every archive file of the dataset at `dir`, sorted by date, partition and
/// range. Temporary files and anything else are not listed.
pub fn list_files(dir: &Path) -> Result<Vec<ArchivedFile>, SinkError> {
    let mut out = Vec::new();
    for (date, date_dir) in list_dates(dir)? {
        for entry in std::fs::read_dir(&date_dir).map_err(io("list", &date_dir))? {
            let path = entry.map_err(io("list", &date_dir))?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(FileName::parse)
            else {
                continue;
            };
            out.push(ArchivedFile {
                date: date.clone(),
                name,
                path,
            });
        }
    }
    out.sort();
    Ok(out)
}

/// The `date=YYYY-MM-DD` directories of the dataset at `dir`: (date, path).
pub fn list_dates(dir: &Path) -> Result<Vec<(String, PathBuf)>, SinkError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io("list", dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io("list", dir))?.path();
        let date = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("date="))
            .filter(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok());
        if let Some(date) = date
            && path.is_dir()
        {
            out.push((date.to_owned(), path));
        }
    }
    out.sort();
    Ok(out)
}

/// An I/O error naming what was done to which path.
pub(crate) fn io(op: &'static str, p: &Path) -> impl FnOnce(std::io::Error) -> SinkError {
    let path = p.display().to_string();
    move |source| SinkError::Io { op, path, source }
}

/// A Parquet or Arrow error (or any message) about the file at `p`.
pub(crate) fn parquet_error<E: std::fmt::Display>(p: &Path) -> impl Fn(E) -> SinkError {
    let path = p.display().to_string();
    move |e| SinkError::Parquet {
        path: path.clone(),
        message: e.to_string(),
    }
}

/// Writes `batches` to `path` whole or not at all: under a temporary name,
/// fsynced, renamed, the directory fsynced. Returns the file's size.
pub fn write_atomically(
    path: &Path,
    schema: SchemaRef,
    batches: impl IntoIterator<Item = Result<RecordBatch, SinkError>>,
) -> Result<u64, SinkError> {
    let dir = path.parent().expect("archive files live in a directory");
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp).map_err(io("create", &tmp))?;
    let pq = parquet_error::<parquet::errors::ParquetError>(&tmp);
    let mut writer = ArrowWriter::try_new(file, schema, Some(writer_properties())).map_err(&pq)?;
    for b in batches {
        writer.write(&b?).map_err(&pq)?;
    }
    let file = writer.into_inner().map_err(&pq)?;
    file.sync_all().map_err(io("fsync", &tmp))?;
    let size = file.metadata().map_err(io("stat", &tmp))?.len();
    std::fs::rename(&tmp, path).map_err(io("rename", path))?;
    sync_dir(dir)?;
    Ok(size)
}

/// Fsyncs a directory, so a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), SinkError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))
}

/// The `kafka_offset` column of the file at `path`, in file order.
pub fn read_offsets(path: &Path) -> Result<Vec<i64>, SinkError> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = File::open(path).map_err(io("open", path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error(path))?;
    let index = builder
        .schema()
        .index_of("kafka_offset")
        .map_err(parquet_error(path))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
    let mut out = Vec::new();
    let reader = builder.with_projection(mask).build();
    for batch in reader.map_err(parquet_error(path))? {
        let batch = batch.map_err(parquet_error(path))?;
        let col = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| parquet_error(path)("kafka_offset is not int64"))?;
        out.extend(col.values().iter().copied());
    }
    Ok(out)
}

fn times(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter(values).with_timezone("UTC"))
}

fn ids<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringDictionaryBuilder::<Int32Type>::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn texts<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn f64s(values: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    let mut b = Float64Builder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn u32s(values: impl Iterator<Item = Option<u32>>) -> ArrayRef {
    let mut b = UInt32Builder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

/// The name serde gives an enum value (`"join"`, `"timing_lines"`, …).
fn wire_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(o)) => o
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

impl Row for GpsPoint {
    const DATASET: &'static str = "gps";
    fn schema() -> SchemaRef {
        schemas::arrow::gps_point()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        vec![
            ids(r().map(|p| Some(p.race.as_str()))),
            ids(r().map(|p| Some(p.participant.as_str()))),
            times(r().map(|p| Some(p.time.0))),
            f64s(r().map(|p| Some(p.lat))),
            f64s(r().map(|p| Some(p.lon))),
            f64s(r().map(|p| p.elevation)),
            f64s(r().map(|p| p.accuracy)),
        ]
    }
}

impl Row for TimingCrossing {
    const DATASET: &'static str = "timing";
    fn schema() -> SchemaRef {
        schemas::arrow::timing_crossing()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        vec![
            ids(r().map(|c| Some(c.race.as_str()))),
            ids(r().map(|c| Some(c.participant.as_str()))),
            ids(r().map(|c| Some(c.line.as_str()))),
            times(r().map(|c| Some(c.time.0))),
        ]
    }
}

impl Row for RaceDefinition {
    const DATASET: &'static str = "races";
    fn schema() -> SchemaRef {
        schemas::arrow::race_definition()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let kinds: Vec<String> = r().map(|d| wire_name(&d.kind)).collect();
        let json: Vec<String> = r()
            .map(|d| serde_json::to_string(d).expect("definitions serialize"))
            .collect();
        vec![
            ids(r().map(|d| Some(d.id.as_str()))),
            texts(r().map(|d| Some(d.name.as_str()))),
            times(r().map(|d| Some(d.start.0))),
            ids(kinds.iter().map(|k| Some(k.as_str()))),
            Arc::new(UInt32Array::from_iter_values(r().map(|d| d.laps))),
            times(r().map(|d| d.cutoff.map(|t| t.0))),
            texts(json.iter().map(|j| Some(j.as_str()))),
        ]
    }
}

impl Row for ChatEvent {
    const DATASET: &'static str = "chat";
    fn schema() -> SchemaRef {
        schemas::arrow::chat_event()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let kinds: Vec<String> = r().map(|c| wire_name(&c.kind)).collect();
        let vis: Vec<Option<String>> = r().map(|c| c.visibility.map(|v| wire_name(&v))).collect();
        vec![
            ids(r().map(|c| Some(c.room.as_str()))),
            ids(r().map(|c| Some(c.user.as_str()))),
            ids(kinds.iter().map(|k| Some(k.as_str()))),
            texts(r().map(|c| c.text.as_deref())),
            texts(r().map(|c| c.client_msg_id.as_deref())),
            ids(vis.iter().map(|v| v.as_deref())),
            ids(r().map(|c| c.invitee.as_deref())),
            times(r().map(|c| Some(c.time.0))),
        ]
    }
}

impl Row for CalcTask {
    const DATASET: &'static str = "tasks";
    fn schema() -> SchemaRef {
        schemas::arrow::calc_task()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        vec![
            ids(r().map(|t| Some(t.id.as_str()))),
            texts(r().map(|t| Some(t.expression.as_str()))),
            times(r().map(|t| Some(t.time.0))),
        ]
    }
}

impl Row for TaskResult {
    const DATASET: &'static str = "results";
    fn schema() -> SchemaRef {
        schemas::arrow::task_result()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        vec![
            ids(r().map(|t| Some(t.id.as_str()))),
            texts(r().map(|t| Some(t.expression.as_str()))),
            ids(r().map(|t| Some(t.status.as_str()))),
            texts(r().map(|t| t.result.as_deref())),
            texts(r().map(|t| t.error.as_deref())),
            times(r().map(|t| Some(t.submitted_at.0))),
            times(r().map(|t| t.completed_at.map(|c| c.0))),
        ]
    }
}

impl Row for RoomMessage {
    const DATASET: &'static str = "room_messages";
    fn schema() -> SchemaRef {
        schemas::arrow::room_message()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        vec![
            ids(r().map(|m| Some(m.room.as_str()))),
            Arc::new(UInt64Array::from_iter_values(r().map(|m| m.seq))),
            ids(r().map(|m| Some(m.user.as_str()))),
            texts(r().map(|m| Some(m.text.as_str()))),
            texts(r().map(|m| m.client_msg_id.as_deref())),
            times(r().map(|m| Some(m.time.0))),
        ]
    }
}

impl Row for TournamentEvent {
    const DATASET: &'static str = "tournament_events";
    fn schema() -> SchemaRef {
        schemas::arrow::tournament_event()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let actions: Vec<String> = r().map(|e| json(&e.action)).collect();
        vec![
            ids(r().map(|e| Some(e.tournament.as_str()))),
            ids(r().map(|e| Some(e.user.as_str()))),
            ids(r().map(|e| Some(e.action.kind()))),
            texts(actions.iter().map(|a| Some(a.as_str()))),
            texts(r().map(|e| e.client_msg_id.as_deref())),
            times(r().map(|e| Some(e.time.0))),
        ]
    }
}

impl Row for TournamentChange {
    const DATASET: &'static str = "tournament_changes";
    fn schema() -> SchemaRef {
        schemas::arrow::tournament_change()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let info: Vec<Option<String>> = r().map(|c| c.info.as_ref().map(json)).collect();
        let players: Vec<String> = r().map(|c| json(&c.players)).collect();
        let draw: Vec<Option<String>> = r().map(|c| c.draw.as_ref().map(json)).collect();
        let outcomes: Vec<String> = r().map(|c| json(&c.outcomes)).collect();
        vec![
            ids(r().map(|c| Some(c.tournament.as_str()))),
            Arc::new(UInt64Array::from_iter_values(r().map(|c| c.seq))),
            texts(info.iter().map(|v| v.as_deref())),
            texts(players.iter().map(|v| Some(v.as_str()))),
            texts(draw.iter().map(|v| v.as_deref())),
            texts(outcomes.iter().map(|v| Some(v.as_str()))),
        ]
    }
}

/// `v` as JSON text.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("records serialize")
}

/// Whether a changelog row is new or changed (`upsert`) or gone (`remove`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The row holds from this change on (replacing the key's earlier row).
    Upsert,
    /// The key has no row from this change on.
    Remove,
}

impl Change {
    fn name(self) -> &'static str {
        match self {
            Change::Upsert => "upsert",
            Change::Remove => "remove",
        }
    }
}

/// A participant's row of a standings change: the whole row, or its removal.
#[derive(Clone, Debug, PartialEq)]
pub struct StandingChange {
    /// Race id.
    pub race: String,
    /// The change's sequence number.
    pub seq: u64,
    /// Participant id.
    pub participant: String,
    /// The row (`None` for a removal).
    pub row: Option<StandingRow>,
}

impl Row for StandingChange {
    const DATASET: &'static str = "standings";
    fn schema() -> SchemaRef {
        schemas::arrow::standing_change()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let row = || r().map(|c| c.row.as_ref());
        let change = |c: &StandingChange| {
            if c.row.is_some() {
                Change::Upsert
            } else {
                Change::Remove
            }
        };
        vec![
            ids(r().map(|c| Some(c.race.as_str()))),
            Arc::new(UInt64Array::from_iter_values(r().map(|c| c.seq))),
            ids(r().map(|c| Some(change(c).name()))),
            ids(r().map(|c| Some(c.participant.as_str()))),
            u32s(row().map(|s| s.map(|s| s.rank))),
            texts(row().map(|s| s.map(|s| s.name.as_str()))),
            f64s(row().map(|s| s.map(|s| s.distance_m))),
            u32s(row().map(|s| s.and_then(|s| s.laps))),
            u32s(row().map(|s| s.and_then(|s| s.leg))),
            f64s(row().map(|s| s.and_then(|s| s.gap_m))),
            f64s(row().map(|s| s.and_then(|s| s.gap_s))),
            f64s(row().map(|s| s.and_then(|s| s.speed_mps))),
            f64s(row().map(|s| s.and_then(|s| s.last_lap_s))),
            times(row().map(|s| s.map(|s| s.last_seen.0))),
            ids(row().map(|s| s.map(|s| s.status.name()))),
            times(row().map(|s| s.and_then(|s| s.eta.map(|t| t.0)))),
            f64s(row().map(|s| s.and_then(|s| s.position.map(|p| p.lat)))),
            f64s(row().map(|s| s.and_then(|s| s.position.map(|p| p.lon)))),
        ]
    }
}

/// A split of a standings change: the split, or its removal.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitChange {
    /// Race id.
    pub race: String,
    /// The change's sequence number.
    pub seq: u64,
    /// Whose split, and which.
    pub key: SplitKey,
    /// The split (`None` for a removal).
    pub split: Option<Split>,
}

impl Row for SplitChange {
    const DATASET: &'static str = "splits";
    fn schema() -> SchemaRef {
        schemas::arrow::split_change()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let change = |c: &SplitChange| {
            if c.split.is_some() {
                Change::Upsert
            } else {
                Change::Remove
            }
        };
        vec![
            ids(r().map(|c| Some(c.race.as_str()))),
            Arc::new(UInt64Array::from_iter_values(r().map(|c| c.seq))),
            ids(r().map(|c| Some(change(c).name()))),
            ids(r().map(|c| Some(c.key.participant.as_str()))),
            Arc::new(UInt32Array::from_iter_values(r().map(|c| c.key.split))),
            times(r().map(|c| c.split.as_ref().map(|s| s.time.0))),
            u32s(r().map(|c| c.split.as_ref().map(|s| s.position))),
        ]
    }
}

/// A member of a room change: the member as it is now, or its removal.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberChange {
    /// Room id.
    pub room: String,
    /// User id.
    pub user: String,
    /// The member (`None` for a removal).
    pub member: Option<RoomMember>,
}

impl Row for MemberChange {
    const DATASET: &'static str = "room_members";
    fn schema() -> SchemaRef {
        schemas::arrow::member_change()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let mut online = BooleanBuilder::new();
        for c in r() {
            online.append_option(c.member.as_ref().map(|m| m.online));
        }
        vec![
            ids(r().map(|c| Some(c.room.as_str()))),
            ids(r().map(|c| {
                Some(if c.member.is_some() {
                    Change::Upsert.name()
                } else {
                    Change::Remove.name()
                })
            })),
            ids(r().map(|c| Some(c.user.as_str()))),
            Arc::new(online.finish()),
            times(r().map(|c| c.member.as_ref().map(|m| m.joined_at.0))),
        ]
    }
}

/// A record of `pace.dlq`.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetterRow {
    /// The topic it was refused from.
    pub source_topic: String,
    /// Its partition there (-1: refused by the edge before reaching Kafka).
    pub source_partition: i32,
    /// Its offset there (-1 likewise).
    pub source_offset: i64,
    /// Why.
    pub reason: String,
    /// Who refused it, when not the pipeline (`ws-edge`).
    pub refused_by: Option<String>,
    /// The original size, when the payload was cut.
    pub truncated_from: Option<i64>,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Payload, byte for byte.
    pub payload: Vec<u8>,
}

impl Row for DeadLetterRow {
    const DATASET: &'static str = "dead_letters";
    fn schema() -> SchemaRef {
        schemas::arrow::dead_letter()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let mut key = BinaryBuilder::new();
        let mut payload = BinaryBuilder::new();
        for d in r() {
            key.append_option(d.key.as_deref());
            payload.append_value(&d.payload);
        }
        vec![
            ids(r().map(|d| Some(d.source_topic.as_str()))),
            Arc::new(Int32Array::from_iter_values(
                r().map(|d| d.source_partition),
            )),
            Arc::new(Int64Array::from_iter_values(r().map(|d| d.source_offset))),
            texts(r().map(|d| Some(d.reason.as_str()))),
            ids(r().map(|d| d.refused_by.as_deref())),
            Arc::new(Int64Array::from_iter(r().map(|d| d.truncated_from))),
            Arc::new(key.finish()),
            Arc::new(payload.finish()),
        ]
    }
}

/// Writes a GPS file of `offsets` as `name` under `dir`/`date=date`.
#[cfg(test)]
pub(crate) fn test_file(dir: &Path, date: &str, name: FileName, offsets: &[i64]) -> PathBuf {
    let rows: Vec<_> = offsets
        .iter()
        .map(|o| Envelope {
            partition: name.partition,
            ..tests::point(*o)
        })
        .collect();
    let path = dir.join(format!("date={date}")).join(name.render());
    write_atomically(&path, GpsPoint::schema(), [batch(&rows)]).unwrap();
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use schemas::Timestamp;

    pub(crate) fn point(offset: i64) -> Envelope<GpsPoint> {
        Envelope {
            partition: 0,
            offset,
            timestamp_ms: Some(1_780_000_000_000),
            record: GpsPoint {
                race: "r1".into(),
                participant: "p1".into(),
                time: Timestamp(1_780_000_000_000 + offset),
                lat: 59.3,
                lon: 18.1,
                elevation: (offset % 2 == 0).then_some(12.5),
                accuracy: None,
            },
        }
    }

    #[test]
    fn names_round_trip_and_sort_by_offset() {
        let n = FileName {
            partition: 3,
            first: 10,
            last: 2000,
        };
        assert_eq!(
            n.render(),
            "part-3-00000000000000000010-00000000000000002000.parquet"
        );
        assert_eq!(FileName::parse(&n.render()), Some(n));
        for bad in [
            "part-3-10.parquet",
            "part-3-20-10.parquet",
            "part-x-1-2.parquet",
            "part-1-2-3.parquet.tmp",
            "part--1-2-3.parquet",
        ] {
            assert_eq!(FileName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_file_has_statistics_zstd_and_utc_times_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<_> = (0..10).map(point).collect();
        let path = dir.path().join("date=2026-05-28").join(
            FileName {
                partition: 0,
                first: 0,
                last: 9,
            }
            .render(),
        );
        let size = write_atomically(&path, GpsPoint::schema(), [batch(&rows)]).unwrap();
        assert!(size > 0);
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let md = reader.metadata();
        assert_eq!(md.file_metadata().num_rows(), 10);
        let rg = md.row_group(0);
        assert!(rg.columns().iter().all(|c| c.statistics().is_some()));
        assert!(matches!(rg.column(0).compression(), Compression::ZSTD(_)));
        let time = md.file_metadata().schema_descr().column(2);
        assert!(
            format!("{:?}", time.logical_type_ref()).contains("is_adjusted_to_u_t_c: true"),
            "{:?}",
            time.logical_type_ref()
        );
        assert_eq!(read_offsets(&path).unwrap(), (0..10).collect::<Vec<_>>());
        let files = list_files(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].date, "2026-05-28");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }
}
