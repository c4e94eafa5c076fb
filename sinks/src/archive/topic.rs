//! One archived topic as the archiver drives it ([`Topic`]): its open
//! buffers per partition, when they are due, and the files they become.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::Path;
use std::time::Instant;

use ingest::source::RawRecord;

use schemas::archive::{Archived, Record, Row, Rows};

use super::ArchiveConfig;
use super::table::{Origin, Table};
use crate::SinkError;

/// What a partition's buffers hold.
pub(super) struct Open {
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
    /// The Arrow schema of each (in [`Topic::datasets`] order).
    #[cfg(test)]
    fn schemas(&self) -> Vec<arrow_schema::SchemaRef>;
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

/// An archived topic of `A` records: a table per dataset of `A`'s.
pub(super) struct TopicArchive<A> {
    name: String,
    tables: Vec<Table>,
    open: BTreeMap<i32, Open>,
    records: PhantomData<fn() -> A>,
}

/// A Kafka record as `schemas::archive` reads it.
struct Raw<'a>(&'a RawRecord);

impl Record for Raw<'_> {
    fn payload(&self) -> &[u8] {
        &self.0.payload
    }
    fn key(&self) -> Option<&[u8]> {
        self.0.key.as_deref()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.0.header(name)
    }
}

/// A record's rows into the tables of its topic.
struct Into<'a> {
    tables: &'a mut [Table],
    origin: Origin,
    /// Rows that were new.
    added: usize,
}

impl Rows for Into<'_> {
    fn push<R: Row>(&mut self, row: &R) {
        let table = (self.tables.iter_mut())
            .find(|t| t.dataset() == R::DATASET.name)
            .expect("a record's rows are of its datasets");
        self.added += usize::from(table.push(self.origin, row));
    }
}

/// Buffers the rows of `record` in `tables`; how many were new.
fn push_rows<A: Archived>(tables: &mut [Table], origin: Origin, record: &A) -> usize {
    let mut into = Into {
        tables,
        origin,
        added: 0,
    };
    record.rows(&mut into);
    into.added
}

pub(super) const DAY_MS: i64 = 86_400_000;

/// `YYYY-MM-DD` of a UTC day number.
pub(super) fn date_of(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .expect("days of validated times are in range")
        .format("%Y-%m-%d")
        .to_string()
}

impl<A: Archived> Topic for TopicArchive<A> {
    fn name(&self) -> &str {
        &self.name
    }

    fn datasets(&self) -> Vec<&'static str> {
        self.tables.iter().map(Table::dataset).collect()
    }

    #[cfg(test)]
    fn schemas(&self) -> Vec<arrow_schema::SchemaRef> {
        self.tables.iter().map(Table::schema).collect()
    }

    fn start(&self, partition: i32) -> i64 {
        self.tables
            .iter()
            .map(|t| t.through(partition).map_or(0, |l| l + 1))
            .min()
            .unwrap_or(0)
    }

    fn push(&mut self, raw: &RawRecord) -> Result<Option<(i32, i64)>, SinkError> {
        let p = raw.partition;
        let decoded = A::decode(&Raw(raw));
        let day = decoded.as_ref().map(|d| {
            d.time_ms()
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
            let added = push_rows(&mut self.tables, origin, &d);
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
            for t in &mut self.tables {
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
        if let Some(d) = A::decode(&Raw(raw)) {
            push_rows(&mut self.tables, origin, &d);
        }
        self.tables
            .iter_mut()
            .map(|t| {
                let n = t.buffered(raw.partition);
                t.clear();
                n
            })
            .collect()
    }
}

/// The archive of topic `name`, whose records are `A`s, with the state of
/// the archive at `archive` (or none, for counting).
pub(super) fn open_topic<A: Archived>(
    name: &str,
    archive: Option<&Path>,
) -> Result<Box<dyn Topic>, SinkError> {
    let tables = (A::DATASETS.iter())
        .map(|d| Table::open(d, archive))
        .collect::<Result<_, _>>()?;
    Ok(Box::new(TopicArchive::<A> {
        name: name.to_owned(),
        tables,
        open: BTreeMap::new(),
        records: PhantomData,
    }))
}
