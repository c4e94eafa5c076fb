//! Parquet files of the archive: how a file is named, and how it is written
//! (whole or not at all) and read back; what a row of each dataset is, is
//! in `schemas::archive`, and its Arrow in `columns.rs`.
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

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::SchemaRef;
use ingest::source::Envelope;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::SinkError;

pub mod columns;

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

/// A record batch of `rows` of one dataset, origin columns included.
pub fn batch<R: schemas::archive::Row>(rows: &[Envelope<R>]) -> Result<RecordBatch, SinkError> {
    let mut columns = columns::Columns::new(&R::DATASET);
    for e in rows {
        columns.push(&e.record, e.partition, e.offset, e.timestamp_ms);
    }
    columns
        .finish(columns::schema(&R::DATASET))
        .map_err(|e| SinkError::Parquet {
            path: R::DATASET.name.into(),
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

/// The schema of the GPS dataset.
#[cfg(test)]
pub(crate) fn gps_schema() -> SchemaRef {
    columns::schema(&<schemas::GpsPoint as schemas::archive::Row>::DATASET)
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
    write_atomically(&path, gps_schema(), [batch(&rows)]).unwrap();
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use schemas::{GpsPoint, Timestamp};

    pub(crate) fn point(offset: i64) -> Envelope<GpsPoint> {
        Envelope {
            partition: 0,
            offset,
            timestamp_ms: Some(1_780_000_000_000),
            trace: None,
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
        let size = write_atomically(&path, gps_schema(), [batch(&rows)]).unwrap();
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
