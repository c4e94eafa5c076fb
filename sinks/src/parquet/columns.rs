//! Arrow for the archive's datasets: the schema of a
//! [`Dataset`] (its column list, then the Kafka
//! origin columns), and [`Columns`], the builders its rows are written into
//! through [`Values`]. Both follow the one column list of the dataset
//! (`schemas::archive`), so a file's schema and its columns cannot disagree.
//!
//! Every row carries its Kafka origin (`kafka_partition`, `kafka_offset`,
//! `kafka_timestamp`), so the archive can be checked against the topic and
//! deduplicated.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    StringDictionaryBuilder, TimestampMillisecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use schemas::archive::{ColumnKind, Dataset, Row, Values};

/// The origin columns every dataset ends with.
const ORIGIN: [(&str, ColumnKind); 3] = [
    ("kafka_partition", ColumnKind::int32),
    ("kafka_offset", ColumnKind::int64),
    ("kafka_timestamp", ColumnKind::time_or),
];

fn data_type(kind: ColumnKind) -> DataType {
    use ColumnKind as K;
    match kind {
        K::id | K::id_or => {
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        }
        K::text | K::text_or => DataType::Utf8,
        K::time | K::time_or => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        K::float64 | K::float64_or => DataType::Float64,
        K::uint32 | K::uint32_or => DataType::UInt32,
        K::uint64 => DataType::UInt64,
        K::int32 => DataType::Int32,
        K::int64 | K::int64_or => DataType::Int64,
        K::boolean_or => DataType::Boolean,
        K::binary | K::binary_or => DataType::Binary,
    }
}

/// The Arrow schema of `dataset`'s files: its columns, then the origin's.
pub fn schema(dataset: &Dataset) -> SchemaRef {
    let fields: Vec<Field> = (dataset.columns.iter().chain(&ORIGIN))
        .map(|(name, kind)| Field::new(*name, data_type(*kind), kind.nullable()))
        .collect();
    Arc::new(Schema::new(fields))
}

/// One column being built.
enum Builder {
    Id(StringDictionaryBuilder<Int32Type>),
    Text(StringBuilder),
    Time(TimestampMillisecondBuilder),
    Float64(Float64Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Boolean(BooleanBuilder),
    Binary(BinaryBuilder),
}

impl Builder {
    fn new(kind: ColumnKind) -> Self {
        use ColumnKind as K;
        match kind {
            K::id | K::id_or => Self::Id(StringDictionaryBuilder::new()),
            K::text | K::text_or => Self::Text(StringBuilder::new()),
            K::time | K::time_or => Self::Time(TimestampMillisecondBuilder::new()),
            K::float64 | K::float64_or => Self::Float64(Float64Builder::new()),
            K::uint32 | K::uint32_or => Self::UInt32(UInt32Builder::new()),
            K::uint64 => Self::UInt64(UInt64Builder::new()),
            K::int32 => Self::Int32(Int32Builder::new()),
            K::int64 | K::int64_or => Self::Int64(Int64Builder::new()),
            K::boolean_or => Self::Boolean(BooleanBuilder::new()),
            K::binary | K::binary_or => Self::Binary(BinaryBuilder::new()),
        }
    }

    /// The column built so far; the builder starts again empty.
    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Id(b) => Arc::new(b.finish()),
            Self::Text(b) => Arc::new(b.finish()),
            Self::Time(b) => Arc::new(b.finish().with_timezone("UTC")),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::UInt32(b) => Arc::new(b.finish()),
            Self::UInt64(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Binary(b) => Arc::new(b.finish()),
        }
    }
}

/// The columns of one dataset's rows (origin columns included), built row
/// by row.
pub struct Columns {
    builders: Vec<Builder>,
    rows: usize,
}

impl Columns {
    /// Empty columns for `dataset`.
    pub fn new(dataset: &Dataset) -> Self {
        Self {
            builders: (dataset.columns.iter().chain(&ORIGIN))
                .map(|(_, kind)| Builder::new(*kind))
                .collect(),
            rows: 0,
        }
    }

    /// Rows taken since the last [`Columns::finish`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Takes `row`, from `offset` of `partition` (Kafka timestamp
    /// `timestamp_ms`).
    pub fn push<R: Row>(
        &mut self,
        row: &R,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
    ) {
        let mut w = Writer {
            builders: self.builders.iter_mut(),
        };
        row.values(&mut w);
        w.int32(partition);
        w.int64(offset);
        w.time_or(timestamp_ms);
        self.rows += 1;
    }

    /// The rows taken as a record batch of `schema`; the columns start
    /// again empty.
    pub fn finish(&mut self, schema: SchemaRef) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let columns = self.builders.iter_mut().map(Builder::finish).collect();
        RecordBatch::try_new(schema, columns)
    }
}

/// Writes one row's values into the next builders, in column order.
struct Writer<'a> {
    builders: std::slice::IterMut<'a, Builder>,
}

/// Appends to the next builder, which the column list made of `$variant`.
macro_rules! put {
    ($w:ident, $variant:ident, |$b:ident| $append:expr) => {
        match $w.builders.next() {
            Some(Builder::$variant($b)) => $append,
            _ => unreachable!("a row's values follow its dataset's column list"),
        }
    };
}

impl Values for Writer<'_> {
    fn id(&mut self, v: impl AsRef<str>) {
        put!(self, Id, |b| b.append_value(v.as_ref()))
    }
    fn id_or<S: AsRef<str>>(&mut self, v: Option<S>) {
        put!(self, Id, |b| b.append_option(v.as_ref().map(AsRef::as_ref)))
    }
    fn text(&mut self, v: impl AsRef<str>) {
        put!(self, Text, |b| b.append_value(v.as_ref()))
    }
    fn text_or<S: AsRef<str>>(&mut self, v: Option<S>) {
        put!(self, Text, |b| b
            .append_option(v.as_ref().map(AsRef::as_ref)))
    }
    fn time(&mut self, v: i64) {
        put!(self, Time, |b| b.append_value(v))
    }
    fn time_or(&mut self, v: Option<i64>) {
        put!(self, Time, |b| b.append_option(v))
    }
    fn float64(&mut self, v: f64) {
        put!(self, Float64, |b| b.append_value(v))
    }
    fn float64_or(&mut self, v: Option<f64>) {
        put!(self, Float64, |b| b.append_option(v))
    }
    fn uint32(&mut self, v: u32) {
        put!(self, UInt32, |b| b.append_value(v))
    }
    fn uint32_or(&mut self, v: Option<u32>) {
        put!(self, UInt32, |b| b.append_option(v))
    }
    fn uint64(&mut self, v: u64) {
        put!(self, UInt64, |b| b.append_value(v))
    }
    fn int32(&mut self, v: i32) {
        put!(self, Int32, |b| b.append_value(v))
    }
    fn int64(&mut self, v: i64) {
        put!(self, Int64, |b| b.append_value(v))
    }
    fn int64_or(&mut self, v: Option<i64>) {
        put!(self, Int64, |b| b.append_option(v))
    }
    fn boolean_or(&mut self, v: Option<bool>) {
        put!(self, Boolean, |b| b.append_option(v))
    }
    fn binary(&mut self, v: impl AsRef<[u8]>) {
        put!(self, Binary, |b| b.append_value(v.as_ref()))
    }
    fn binary_or<S: AsRef<[u8]>>(&mut self, v: Option<S>) {
        put!(self, Binary, |b| b
            .append_option(v.as_ref().map(AsRef::as_ref)))
    }
}
