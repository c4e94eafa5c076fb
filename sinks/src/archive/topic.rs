//! One archived topic as the archiver drives it ([`Topic`]): its open
//! buffers per partition, when they are due, and the files they become.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use ingest::source::RawRecord;

use super::ArchiveConfig;
use super::kinds::Kind;
use super::table::Origin;
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

pub(super) struct TopicArchive<K> {
    name: String,
    kind: K,
    open: BTreeMap<i32, Open>,
}

pub(super) const DAY_MS: i64 = 86_400_000;

/// `YYYY-MM-DD` of a UTC day number.
pub(super) fn date_of(day: i64) -> String {
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

    #[cfg(test)]
    fn schemas(&self) -> Vec<arrow_schema::SchemaRef> {
        self.kind.tables_ref().iter().map(|t| t.schema()).collect()
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

pub(super) fn open_topic<K: Kind>(
    name: &str,
    archive: Option<&Path>,
) -> Result<Box<dyn Topic>, SinkError> {
    Ok(Box::new(TopicArchive {
        name: name.to_owned(),
        kind: K::open(archive)?,
        open: BTreeMap::new(),
    }))
}
