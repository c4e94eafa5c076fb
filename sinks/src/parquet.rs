//! The Parquet archive: GPS points, calc tasks and their results.
//!
//! Layout: `<data-dir>/archive/<dataset>/date=YYYY-MM-DD/part-<P>-<FIRST>-<LAST>.parquet`
//! (`dataset` is `gps`, `tasks` or `results`; hive partitioning by the
//! records' UTC date; `P` the Kafka partition, `FIRST`..`LAST` the offset
//! range the file holds: a result carries its task's), zstd,
//! dictionary-encoded ids, column statistics, timestamps as UTC
//! milliseconds. Files are written under a `.tmp` name, fsynced and renamed,
//! so readers only ever see whole files.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::SchemaRef;
use chrono::DateTime;
use ingest::source::Envelope;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use schemas::{CalcTask, GpsPoint, TaskResult};

use crate::SinkError;

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by("pace".into())
        .build()
}

/// Buffers records of one dataset and writes them as Parquet files.
pub struct Archive<R: Archived> {
    root: PathBuf,
    buffer: Vec<Envelope<R>>,
}

/// The archive of GPS points.
pub type GpsArchive = Archive<GpsPoint>;

/// A record the archive holds.
pub trait Archived: Sized {
    /// The dataset directory under `archive/`.
    const DATASET: &'static str;
    /// The time whose UTC date partitions the record, ms.
    fn time_ms(&self) -> i64;
    /// The Arrow schema (with the origin columns last).
    fn schema() -> SchemaRef;
    /// The columns of `rows`, without the origin columns.
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef>;
}

impl<R: Archived> Archive<R> {
    /// An archive under `<data_dir>/archive/<dataset>`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("archive").join(R::DATASET),
            buffer: Vec::new(),
        }
    }

    /// Buffers one record until the next flush.
    pub fn push(&mut self, record: Envelope<R>) {
        self.buffer.push(record);
    }

    /// Records buffered.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Writes the buffer, one file per (date, partition); the paths written.
    pub fn flush(&mut self) -> Result<Vec<PathBuf>, SinkError> {
        let mut groups: BTreeMap<(String, i32), Vec<Envelope<R>>> = BTreeMap::new();
        for e in self.buffer.drain(..) {
            let date = DateTime::from_timestamp_millis(e.record.time_ms())
                .expect("validated times are in range")
                .format("%Y-%m-%d")
                .to_string();
            groups.entry((date, e.partition)).or_default().push(e);
        }
        let mut written = Vec::new();
        for ((date, partition), mut rows) in groups {
            rows.sort_by_key(|e| e.offset);
            let (first, last) = (rows[0].offset, rows[rows.len() - 1].offset);
            let dir = self.root.join(format!("date={date}"));
            let path = dir.join(format!("part-{partition}-{first:020}-{last:020}.parquet"));
            write_atomically(&dir, &path, &batch(&rows)?)?;
            let m = observability::metrics();
            m.archive_rows
                .with_label_values(&[R::DATASET])
                .inc_by(rows.len() as u64);
            m.archive_files.with_label_values(&[R::DATASET]).inc();
            written.push(path);
        }
        Ok(written)
    }
}

fn batch<R: Archived>(rows: &[Envelope<R>]) -> Result<RecordBatch, SinkError> {
    let mut columns = R::columns(rows);
    columns.push(Arc::new(Int32Array::from_iter_values(
        rows.iter().map(|e| e.partition),
    )));
    columns.push(Arc::new(Int64Array::from_iter_values(
        rows.iter().map(|e| e.offset),
    )));
    RecordBatch::try_new(R::schema(), columns).map_err(|e| SinkError::Parquet {
        path: "(batch)".into(),
        message: e.to_string(),
    })
}

fn times(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter(values).with_timezone("UTC"))
}

fn ids<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    let mut b = StringDictionaryBuilder::<Int32Type>::new();
    for v in values {
        b.append_value(v);
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

impl Archived for CalcTask {
    const DATASET: &'static str = "tasks";
    fn time_ms(&self) -> i64 {
        self.time.0
    }
    fn schema() -> SchemaRef {
        schemas::arrow::calc_task()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        vec![
            ids(rows.iter().map(|e| e.record.id.as_str())),
            texts(rows.iter().map(|e| Some(e.record.expression.as_str()))),
            times(rows.iter().map(|e| Some(e.record.time.0))),
        ]
    }
}

impl Archived for TaskResult {
    const DATASET: &'static str = "results";
    fn time_ms(&self) -> i64 {
        self.submitted_at.0
    }
    fn schema() -> SchemaRef {
        schemas::arrow::task_result()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let status = |r: &TaskResult| match r.status {
            schemas::TaskStatus::Pending => "PENDING",
            schemas::TaskStatus::Successful => "SUCCESSFUL",
            schemas::TaskStatus::Failed => "FAILED",
        };
        vec![
            ids(rows.iter().map(|e| e.record.id.as_str())),
            texts(rows.iter().map(|e| Some(e.record.expression.as_str()))),
            ids(rows.iter().map(|e| status(&e.record))),
            texts(rows.iter().map(|e| e.record.result.as_deref())),
            texts(rows.iter().map(|e| e.record.error.as_deref())),
            times(rows.iter().map(|e| Some(e.record.submitted_at.0))),
            times(rows.iter().map(|e| e.record.completed_at.map(|t| t.0))),
        ]
    }
}

impl Archived for GpsPoint {
    const DATASET: &'static str = "gps";
    fn time_ms(&self) -> i64 {
        self.time.0
    }
    fn schema() -> SchemaRef {
        schemas::arrow::gps_point()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        gps_columns(rows)
    }
}

fn gps_columns(rows: &[Envelope<GpsPoint>]) -> Vec<ArrayRef> {
    let mut elevation = Float64Builder::with_capacity(rows.len());
    let mut accuracy = Float64Builder::with_capacity(rows.len());
    for e in rows {
        elevation.append_option(e.record.elevation);
        accuracy.append_option(e.record.accuracy);
    }
    let f64s = |f: fn(&GpsPoint) -> f64| -> ArrayRef {
        Arc::new(arrow_array::Float64Array::from_iter_values(
            rows.iter().map(|e| f(&e.record)),
        ))
    };
    vec![
        ids(rows.iter().map(|e| e.record.race.as_str())),
        ids(rows.iter().map(|e| e.record.participant.as_str())),
        times(rows.iter().map(|e| Some(e.record.time.0))),
        f64s(|p| p.lat),
        f64s(|p| p.lon),
        Arc::new(elevation.finish()),
        Arc::new(accuracy.finish()),
    ]
}

fn write_atomically(dir: &Path, path: &Path, batch: &RecordBatch) -> Result<(), SinkError> {
    let io = |op, p: &Path| {
        let path = p.display().to_string();
        move |source| SinkError::Io { op, path, source }
    };
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp).map_err(io("create", &tmp))?;
    let pq = |e: parquet::errors::ParquetError| SinkError::Parquet {
        path: tmp.display().to_string(),
        message: e.to_string(),
    };
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), Some(writer_properties())).map_err(pq)?;
    writer.write(batch).map_err(pq)?;
    let file = writer.into_inner().map_err(pq)?;
    file.sync_all().map_err(io("fsync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename", path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use schemas::Timestamp;

    fn point(p: &str, t: i64, offset: i64, partition: i32) -> Envelope<GpsPoint> {
        Envelope {
            partition,
            offset,
            timestamp_ms: None,
            record: GpsPoint {
                race: "r1".into(),
                participant: p.into(),
                time: Timestamp(t),
                lat: 59.3,
                lon: 18.1,
                elevation: (offset % 2 == 0).then_some(12.5),
                accuracy: None,
            },
        }
    }

    #[test]
    fn writes_one_file_per_date_and_partition_with_stats() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = GpsArchive::new(dir.path());
        let day = 1_780_000_000_000; // 2026-05-28
        for o in 0..10 {
            a.push(point("p1", day + o * 1000, o, 0));
        }
        a.push(point("p2", day, 3, 1));
        a.push(point("p2", day + 86_400_000, 4, 1));
        let files = a.flush().unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(a.buffered(), 0);
        let f0 = &files[0];
        assert!(
            f0.ends_with(
                "date=2026-05-28/part-0-00000000000000000000-00000000000000000009.parquet"
            ),
            "{}",
            f0.display()
        );
        let reader = SerializedFileReader::new(File::open(f0).unwrap()).unwrap();
        let md = reader.metadata();
        assert_eq!(md.file_metadata().num_rows(), 10);
        let rg = md.row_group(0);
        assert!(rg.columns().iter().all(|c| c.statistics().is_some()));
        assert!(matches!(rg.column(0).compression(), Compression::ZSTD(_)));
        // No temporary files are left behind.
        let leftovers = walk(dir.path())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "tmp"));
        assert_eq!(leftovers.count(), 0);
    }

    fn walk(p: &Path) -> Vec<PathBuf> {
        let mut out = vec![];
        for e in std::fs::read_dir(p).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
