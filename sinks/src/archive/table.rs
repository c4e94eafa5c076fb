//! The rows of one dataset waiting for their file, per partition
//! ([`Table`]), and what the archiver needs of any of them ([`AnyTable`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ingest::source::Envelope;

use super::dataset_lock;
use crate::SinkError;
use crate::parquet::{FileName, Row, batch, list_files, write_atomically};

/// Where a record came from.
#[derive(Clone, Copy, Debug)]
pub(super) struct Origin {
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) timestamp_ms: Option<i64>,
}

impl Origin {
    pub(super) fn wrap<R>(self, record: R) -> Envelope<R> {
        Envelope {
            partition: self.partition,
            offset: self.offset,
            timestamp_ms: self.timestamp_ms,
            record,
        }
    }
}

/// The rows of one dataset, per partition, waiting for their file.
pub(super) struct Table<R> {
    dir: PathBuf,
    parts: BTreeMap<i32, Part<R>>,
}

pub(super) struct Part<R> {
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
    pub(super) fn open(archive: Option<&Path>) -> Result<Self, SinkError> {
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
    pub(super) fn push(&mut self, row: Envelope<R>) -> bool {
        let part = self.parts.entry(row.partition).or_default();
        if part.through.is_some_and(|t| row.offset <= t) {
            return false;
        }
        part.rows.push(row);
        true
    }
}

/// What the archiver needs of a table, whatever its row type.
pub(super) trait AnyTable: Send {
    fn dataset(&self) -> &'static str;
    /// The Arrow schema of the dataset's files.
    #[cfg(test)]
    fn schema(&self) -> arrow_schema::SchemaRef;
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

    #[cfg(test)]
    fn schema(&self) -> arrow_schema::SchemaRef {
        R::schema()
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
