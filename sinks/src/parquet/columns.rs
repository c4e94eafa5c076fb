//! The kinds of column an archived dataset has, and [`dataset!`], which
//! declares a dataset's columns once: each column's kind (its Arrow type,
//! and whether it may be null), its name, and how a row gives its value.
//! The Arrow schema and the record batch both come from that one list, so
//! they cannot disagree; the Kafka origin columns follow every list.
//!
//! Conventions: ids are dictionary-encoded strings, times UTC timestamps in
//! milliseconds, coordinates float64. Every row carries its Kafka origin
//! (`kafka_partition`, `kafka_offset`, `kafka_timestamp`), so the archive
//! can be checked against the topic and deduplicated.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// `fields`, then the origin columns, as a schema.
pub(crate) fn with_origin(fields: Vec<Field>) -> SchemaRef {
    let origin = [
        int32::field("kafka_partition"),
        int64::field("kafka_offset"),
        time_or::field("kafka_timestamp"),
    ];
    Arc::new(Schema::new(
        fields.into_iter().chain(origin).collect::<Vec<_>>(),
    ))
}

/// Declares the [`super::Row`] of a dataset from its column list:
/// `dataset!(Type, "name", |row| [kind("column", value), …])`, where
/// `kind` is one of the modules of [`columns`](self) and `value` what a
/// row (bound to `row`) holds in that column.
macro_rules! dataset {
    ($row:ty, $name:literal, |$r:ident| [$($kind:ident($col:literal, $value:expr)),* $(,)?]) => {
        impl $crate::parquet::Row for $row {
            const DATASET: &'static str = $name;
            fn schema() -> arrow_schema::SchemaRef {
                $crate::parquet::columns::with_origin(vec![
                    $($crate::parquet::columns::$kind::field($col)),*
                ])
            }
            fn columns(rows: &[ingest::source::Envelope<Self>]) -> Vec<arrow_array::ArrayRef> {
                vec![$($crate::parquet::columns::$kind::build(rows.iter().map(|e| {
                    let $r = &e.record;
                    $value
                }))),*]
            }
        }
    };
}
pub(crate) use dataset;

/// Declares a kind of column: its module, Arrow type, nullability, the
/// value a row gives, and how a column of them is built.
macro_rules! kind {
    ($(#[$doc:meta])* $name:ident, $ty:expr, $null:literal, |$values:ident: $item:ty $(, $g:ident: $bound:path)?| $build:expr) => {
        $(#[$doc])*
        pub(crate) mod $name {
            use super::*;

            /// The column's field.
            pub(crate) fn field(name: &str) -> Field {
                Field::new(name, $ty, $null)
            }

            /// The column of `values`.
            pub(crate) fn build$(<$g: $bound>)?($values: impl Iterator<Item = $item>) -> ArrayRef {
                Arc::new($build)
            }
        }
    };
}

fn dictionary() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn utc_ms() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

use arrow_array::builder::{BinaryBuilder, StringBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    BooleanArray, Float64Array, Int32Array, Int64Array, TimestampMillisecondArray, UInt32Array,
    UInt64Array,
};

kind!(
    /// An id: a dictionary-encoded string, never null.
    id, dictionary(), false, |values: S, S: AsRef<str>| {
        let mut b = StringDictionaryBuilder::<Int32Type>::new();
        for v in values {
            b.append_value(v.as_ref());
        }
        b.finish()
    }
);
kind!(
    /// An id that may be null.
    id_or, dictionary(), true, |values: Option<S>, S: AsRef<str>| {
        let mut b = StringDictionaryBuilder::<Int32Type>::new();
        for v in values {
            b.append_option(v.as_ref().map(AsRef::as_ref));
        }
        b.finish()
    }
);
kind!(
    /// Text, never null.
    text, DataType::Utf8, false, |values: S, S: AsRef<str>| {
        let mut b = StringBuilder::new();
        for v in values {
            b.append_value(v.as_ref());
        }
        b.finish()
    }
);
kind!(
    /// Text that may be null.
    text_or, DataType::Utf8, true, |values: Option<S>, S: AsRef<str>| {
        let mut b = StringBuilder::new();
        for v in values {
            b.append_option(v.as_ref().map(AsRef::as_ref));
        }
        b.finish()
    }
);
kind!(
    /// A time, UTC milliseconds, never null.
    time, utc_ms(), false, |values: i64| {
        TimestampMillisecondArray::from_iter_values(values).with_timezone("UTC")
    }
);
kind!(
    /// A time that may be null.
    time_or, utc_ms(), true, |values: Option<i64>| {
        TimestampMillisecondArray::from_iter(values).with_timezone("UTC")
    }
);
kind!(
    /// A float64, never null.
    float64, DataType::Float64, false, |values: f64| Float64Array::from_iter_values(values)
);
kind!(
    /// A float64 that may be null.
    float64_or, DataType::Float64, true, |values: Option<f64>| Float64Array::from_iter(values)
);
kind!(
    /// A uint32, never null.
    uint32, DataType::UInt32, false, |values: u32| UInt32Array::from_iter_values(values)
);
kind!(
    /// A uint32 that may be null.
    uint32_or, DataType::UInt32, true, |values: Option<u32>| UInt32Array::from_iter(values)
);
kind!(
    /// A uint64 (a sequence number), never null.
    uint64, DataType::UInt64, false, |values: u64| UInt64Array::from_iter_values(values)
);
kind!(
    /// An int32, never null.
    int32, DataType::Int32, false, |values: i32| Int32Array::from_iter_values(values)
);
kind!(
    /// An int64, never null.
    int64, DataType::Int64, false, |values: i64| Int64Array::from_iter_values(values)
);
kind!(
    /// An int64 that may be null.
    int64_or, DataType::Int64, true, |values: Option<i64>| Int64Array::from_iter(values)
);
kind!(
    /// A boolean that may be null.
    boolean_or, DataType::Boolean, true, |values: Option<bool>| BooleanArray::from_iter(values)
);
kind!(
    /// Bytes, never null.
    binary, DataType::Binary, false, |values: S, S: AsRef<[u8]>| {
        let mut b = BinaryBuilder::new();
        for v in values {
            b.append_value(v.as_ref());
        }
        b.finish()
    }
);
kind!(
    /// Bytes that may be null.
    binary_or, DataType::Binary, true, |values: Option<S>, S: AsRef<[u8]>| {
        let mut b = BinaryBuilder::new();
        for v in values {
            b.append_option(v.as_ref().map(AsRef::as_ref));
        }
        b.finish()
    }
);
