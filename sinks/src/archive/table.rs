//! The rows of one dataset waiting for their file, per partition
//! ([`Table`]), built into Arrow columns as they arrive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_schema::SchemaRef;
use schemas::archive::{Dataset, Row};

use super::dataset_lock;
use crate::SinkError;
use crate::parquet::columns::{self, Columns};
use crate::parquet::{FileName, list_files, write_atomically};

/// Where a record came from.
#[derive(Clone, Copy, Debug)]
pub(super) struct Origin {
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) timestamp_ms: Option<i64>,
}

/// The rows of one dataset, per partition, waiting for their file.
pub(super) struct Table {
    dataset: &'static Dataset,
    schema: SchemaRef,
    dir: PathBuf,
    parts: BTreeMap<i32, Part>,
}

pub(super) struct Part {
    columns: Columns,
    /// The last offset the dataset's files cover.
    through: Option<i64>,
}

impl Table {
    /// The table of `archive`/`dataset`, knowing what its files cover;
    /// with no archive, a scratch table that keeps everything (for counting).
    pub(super) fn open(
        dataset: &'static Dataset,
        archive: Option<&Path>,
    ) -> Result<Self, SinkError> {
        let dir = archive.map_or_else(PathBuf::new, |a| a.join(dataset.name));
        let mut parts: BTreeMap<i32, Part> = BTreeMap::new();
        if archive.is_some() {
            for f in list_files(&dir)? {
                let part = parts.entry(f.name.partition).or_insert_with(|| Part {
                    columns: Columns::new(dataset),
                    through: None,
                });
                part.through = part.through.max(Some(f.name.last));
            }
        }
        Ok(Self {
            dataset,
            schema: columns::schema(dataset),
            dir,
            parts,
        })
    }

    /// The dataset's name.
    pub(super) fn dataset(&self) -> &'static str {
        self.dataset.name
    }

    /// The Arrow schema of the dataset's files.
    #[cfg(test)]
    pub(super) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Buffers a row, unless a file already holds its record.
    pub(super) fn push<R: Row>(&mut self, origin: Origin, row: &R) -> bool {
        let dataset = self.dataset;
        let part = self.parts.entry(origin.partition).or_insert_with(|| Part {
            columns: Columns::new(dataset),
            through: None,
        });
        if part.through.is_some_and(|t| origin.offset <= t) {
            return false;
        }
        (part.columns).push(row, origin.partition, origin.offset, origin.timestamp_ms);
        true
    }

    pub(super) fn through(&self, partition: i32) -> Option<i64> {
        self.parts.get(&partition).and_then(|p| p.through)
    }

    pub(super) fn buffered(&self, partition: i32) -> usize {
        self.parts.get(&partition).map_or(0, |p| p.columns.rows())
    }

    /// Writes the rows of `partition` as the file of the offsets up to
    /// `last` (from where the dataset's files end, or `from`).
    pub(super) fn write(
        &mut self,
        partition: i32,
        from: i64,
        last: i64,
        date: &str,
    ) -> Result<(), SinkError> {
        let Some(part) = self.parts.get_mut(&partition) else {
            return Ok(());
        };
        let rows = part.columns.rows();
        if rows == 0 {
            return Ok(());
        }
        let name = FileName {
            partition,
            first: part.through.map_or(from, |t| t + 1),
            last,
        };
        let path = self.dir.join(format!("date={date}")).join(name.render());
        let batch = part
            .columns
            .finish(self.schema.clone())
            .map_err(|e| SinkError::Parquet {
                path: self.dataset.name.into(),
                message: e.to_string(),
            });
        let size = {
            let _lock = dataset_lock(&self.dir)?;
            write_atomically(&path, self.schema.clone(), [batch])?
        };
        part.through = Some(last);
        let dataset = self.dataset.name;
        let m = observability::metrics();
        m.archive_rows
            .with_label_values(&[dataset])
            .inc_by(rows as u64);
        m.archive_files.with_label_values(&[dataset]).inc();
        m.archive_bytes.with_label_values(&[dataset]).inc_by(size);
        tracing::debug!(path = %path.display(), rows, "archived");
        Ok(())
    }

    /// Drops everything buffered.
    pub(super) fn clear(&mut self) {
        self.parts.clear();
    }
}
