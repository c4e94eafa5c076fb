//! What pace archives, described once and without Arrow: each dataset's
//! column list ([`crate::dataset!`]: a column's kind, its name and what a row
//! holds there), and how a record of an archived topic becomes rows
//! ([`Archived`]). The list of archived topics is the `topics!` table of
//! [`crate::topics`]. `sinks` makes the Arrow schema of a [`Dataset`] and
//! fills Arrow builders through [`Values`]: both come from the one list, so
//! they cannot disagree.
//!
//! Conventions: ids are dictionary-encoded strings, times UTC timestamps in
//! milliseconds, coordinates float64. `sinks` adds the Kafka origin columns
//! (`kafka_partition`, `kafka_offset`, `kafka_timestamp`) to every dataset.

/// The kinds of column: `sinks` gives each its Arrow type; `_or` may be
/// null. Named as [`crate::dataset!`] and [`Values`] name them.
#[allow(non_camel_case_types, missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    id,
    id_or,
    text,
    text_or,
    time,
    time_or,
    float64,
    float64_or,
    uint32,
    uint32_or,
    uint64,
    int32,
    int64,
    int64_or,
    boolean_or,
    binary,
    binary_or,
}

impl ColumnKind {
    /// Whether the column may be null.
    pub fn nullable(self) -> bool {
        matches!(
            self,
            Self::id_or
                | Self::text_or
                | Self::time_or
                | Self::float64_or
                | Self::uint32_or
                | Self::int64_or
                | Self::boolean_or
                | Self::binary_or
        )
    }
}

/// An archived dataset: its directory under the archive root, and its
/// columns in order.
#[derive(Debug)]
pub struct Dataset {
    /// The directory name (`gps`, `standings`, …).
    pub name: &'static str,
    /// Each column's name and kind.
    pub columns: &'static [(&'static str, ColumnKind)],
}

/// Where a row's values go, one call per column in its dataset's order;
/// [`crate::dataset!`] makes the calls from the same list as the columns.
#[allow(missing_docs)]
pub trait Values {
    fn id(&mut self, v: impl AsRef<str>);
    fn id_or<S: AsRef<str>>(&mut self, v: Option<S>);
    fn text(&mut self, v: impl AsRef<str>);
    fn text_or<S: AsRef<str>>(&mut self, v: Option<S>);
    fn time(&mut self, v: i64);
    fn time_or(&mut self, v: Option<i64>);
    fn float64(&mut self, v: f64);
    fn float64_or(&mut self, v: Option<f64>);
    fn uint32(&mut self, v: u32);
    fn uint32_or(&mut self, v: Option<u32>);
    fn uint64(&mut self, v: u64);
    fn int32(&mut self, v: i32);
    fn int64(&mut self, v: i64);
    fn int64_or(&mut self, v: Option<i64>);
    fn boolean_or(&mut self, v: Option<bool>);
    fn binary(&mut self, v: impl AsRef<[u8]>);
    fn binary_or<S: AsRef<[u8]>>(&mut self, v: Option<S>);
}

/// A row of one dataset.
pub trait Row {
    /// Its dataset.
    const DATASET: Dataset;
    /// Its values, column by column.
    fn values<V: Values>(&self, v: &mut V);
}

/// Where the rows of one record go.
pub trait Rows {
    /// Takes a row of `R`'s dataset (one of the record's [`Archived::DATASETS`]).
    fn push<R: Row>(&mut self, row: &R);
}

/// A Kafka record as the archive sees it.
pub trait Record {
    /// Its payload.
    fn payload(&self) -> &[u8];
    /// Its key, if any.
    fn key(&self) -> Option<&[u8]>;
    /// The value of its header `name`, if present and UTF-8.
    fn header(&self, name: &str) -> Option<&str>;
}

/// A record of an archived topic: how it decodes, the date its rows go
/// under, and its rows.
pub trait Archived: Sized + Send + 'static {
    /// The datasets its rows go to.
    const DATASETS: &'static [&'static Dataset];
    /// The record, or `None` if it is not archived here (a record the
    /// pipeline refuses: its dead letter is archived instead).
    fn decode(record: &impl Record) -> Option<Self>;
    /// The time whose UTC date partitions its rows, if not the Kafka timestamp.
    fn time_ms(&self) -> Option<i64>;
    /// Its rows.
    fn rows(&self, out: &mut impl Rows);
}

/// Declares the [`Row`] of a dataset from its column list:
/// `dataset!(Type, "name", |row| [kind("column", value), …])`, where
/// `kind` is a [`ColumnKind`] and `value` what a row (bound to `row`)
/// holds in that column.
#[macro_export]
macro_rules! dataset {
    ($row:ty, $name:literal, |$r:ident| [$($kind:ident($col:literal, $value:expr)),* $(,)?]) => {
        impl $crate::archive::Row for $row {
            const DATASET: $crate::archive::Dataset = $crate::archive::Dataset {
                name: $name,
                columns: &[$(($col, $crate::archive::ColumnKind::$kind)),*],
            };
            fn values<V: $crate::archive::Values>(&self, v: &mut V) {
                let $r = self;
                $(v.$kind($value);)*
            }
        }
    };
}

/// Declares a record that is one row of its own dataset ([`crate::dataset!`]):
/// `one_row!(Type, decode, |record| time)`, where `decode` turns a payload
/// into a `Result<Type, _>` and `time` is the record's time in Unix ms
/// (`None`: the Kafka timestamp).
#[macro_export]
macro_rules! one_row {
    ($t:ty, $decode:path, |$r:ident| $time:expr) => {
        impl $crate::archive::Archived for $t {
            const DATASETS: &'static [&'static $crate::archive::Dataset] =
                &[&<$t as $crate::archive::Row>::DATASET];
            fn decode(record: &impl $crate::archive::Record) -> Option<Self> {
                $decode(record.payload()).ok()
            }
            fn time_ms(&self) -> Option<i64> {
                let $r = self;
                $time
            }
            fn rows(&self, out: &mut impl $crate::archive::Rows) {
                out.push(self);
            }
        }
    };
}

/// The name serde gives an enum value (`"join"`, `"timing_lines"`, …).
pub fn wire_name<T: serde::Serialize>(v: &T) -> String {
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

/// `v` as JSON text.
pub fn json<T: serde::Serialize>(v: &T) -> String {
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
    /// `upsert` if `present`, else `remove`.
    pub fn of(present: bool) -> &'static str {
        if present {
            Change::Upsert.name()
        } else {
            Change::Remove.name()
        }
    }

    /// Its name in the `change` column.
    pub fn name(self) -> &'static str {
        match self {
            Change::Upsert => "upsert",
            Change::Remove => "remove",
        }
    }
}

/// Visits every archived topic with its record type (see the `topics!`
/// table of [`crate::topics`]).
pub trait EachTopic {
    /// The archived topic `name`, whose records are `A`s.
    fn topic<A: Archived>(&mut self, name: &str);
}
