//! Arrow schemas of the records, as archived to Parquet.
//!
//! Conventions: ids are dictionary-encoded strings, times are UTC timestamps in
//! milliseconds, coordinates float64. Every archived row also carries its Kafka
//! origin (`kafka_partition`, `kafka_offset`) so the archive can be checked
//! against the topic and deduplicated.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

fn id(name: &str) -> Field {
    Field::new(
        name,
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        false,
    )
}

/// The column type of every timestamp: UTC milliseconds.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn time(name: &str, nullable: bool) -> Field {
    Field::new(name, timestamp_type(), nullable)
}

fn origin() -> [Field; 2] {
    [
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
    ]
}

fn schema(fields: impl IntoIterator<Item = Field>) -> SchemaRef {
    Arc::new(Schema::new(
        fields.into_iter().chain(origin()).collect::<Vec<_>>(),
    ))
}

/// [`crate::GpsPoint`].
pub fn gps_point() -> SchemaRef {
    schema([
        id("race"),
        id("participant"),
        time("time", false),
        Field::new("lat", DataType::Float64, false),
        Field::new("lon", DataType::Float64, false),
        Field::new("elevation", DataType::Float64, true),
        Field::new("accuracy", DataType::Float64, true),
    ])
}

/// [`crate::TimingCrossing`].
pub fn timing_crossing() -> SchemaRef {
    schema([
        id("race"),
        id("participant"),
        id("line"),
        time("time", false),
    ])
}

/// [`crate::RaceDefinition`]; `kind` is the kind's name, `definition` the whole record as JSON.
pub fn race_definition() -> SchemaRef {
    schema([
        id("id"),
        Field::new("name", DataType::Utf8, false),
        time("start", false),
        id("kind"),
        Field::new("laps", DataType::UInt32, false),
        time("cutoff", true),
        Field::new("definition", DataType::Utf8, false),
    ])
}

/// [`crate::ChatEvent`].
pub fn chat_event() -> SchemaRef {
    schema([
        id("room"),
        id("user"),
        id("kind"),
        Field::new("text", DataType::Utf8, true),
        Field::new("client_msg_id", DataType::Utf8, true),
        time("time", false),
    ])
}

/// [`crate::CalcTask`].
pub fn calc_task() -> SchemaRef {
    schema([
        id("id"),
        Field::new("expression", DataType::Utf8, false),
        time("time", false),
    ])
}

/// [`crate::StandingRow`] changes: each row carries the change's `seq` and `diff`
/// (+1 the row holds from `seq` on, -1 it no longer does).
pub fn standing_row() -> SchemaRef {
    schema([
        id("race"),
        Field::new("seq", DataType::UInt64, false),
        Field::new("diff", DataType::Int8, false),
        Field::new("rank", DataType::UInt32, false),
        id("participant"),
        Field::new("distance_m", DataType::Float64, false),
        Field::new("gap_m", DataType::Float64, true),
        Field::new("speed_mps", DataType::Float64, true),
        time("last_seen", false),
        id("status"),
    ])
}

/// [`crate::Split`].
pub fn split() -> SchemaRef {
    schema([
        id("race"),
        id("participant"),
        Field::new("split", DataType::UInt32, false),
        time("time", false),
        Field::new("position", DataType::UInt32, false),
    ])
}

/// [`crate::RoomMember`] changes, with `diff` as in [`standing_row`].
pub fn room_member() -> SchemaRef {
    schema([
        id("room"),
        id("user"),
        Field::new("online", DataType::Boolean, false),
        time("joined_at", false),
        Field::new("diff", DataType::Int8, false),
    ])
}

/// [`crate::RoomMessage`].
pub fn room_message() -> SchemaRef {
    schema([
        id("room"),
        Field::new("seq", DataType::UInt64, false),
        id("user"),
        Field::new("text", DataType::Utf8, false),
        Field::new("client_msg_id", DataType::Utf8, true),
        time("time", false),
    ])
}

/// [`crate::TaskResult`].
pub fn task_result() -> SchemaRef {
    schema([
        id("id"),
        Field::new("expression", DataType::Utf8, false),
        id("status"),
        Field::new("result", DataType::Utf8, true),
        Field::new("error", DataType::Utf8, true),
        time("submitted_at", false),
        time("completed_at", true),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_has_origin_and_utc_times() {
        for s in [
            gps_point(),
            timing_crossing(),
            race_definition(),
            chat_event(),
            calc_task(),
            standing_row(),
            split(),
            room_member(),
            room_message(),
            task_result(),
        ] {
            assert!(s.field_with_name("kafka_offset").is_ok());
            for f in s.fields() {
                if let DataType::Timestamp(unit, tz) = f.data_type() {
                    assert_eq!(*unit, TimeUnit::Millisecond);
                    assert_eq!(tz.as_deref(), Some("UTC"), "{}", f.name());
                }
            }
        }
        assert_eq!(gps_point().fields().len(), 9);
    }
}
