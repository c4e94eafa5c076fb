//! Arrow schemas of the records, as archived to Parquet.
//!
//! Conventions: ids are dictionary-encoded strings, times are UTC timestamps in
//! milliseconds, coordinates float64. Every archived row also carries its Kafka
//! origin (`kafka_partition`, `kafka_offset`, `kafka_timestamp`) so the archive
//! can be checked against the topic and deduplicated.
//!
//! A view changelog record is archived as rows of its own: a standings change
//! as one row per upserted or removed participant (`change` is `upsert` or
//! `remove`), and so on; the rows of one change share its origin.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

fn id(name: &str) -> Field {
    Field::new(name, id_type(), false)
}

fn id_nullable(name: &str) -> Field {
    Field::new(name, id_type(), true)
}

/// The column type of every id: a dictionary-encoded string.
pub fn id_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The column type of every timestamp: UTC milliseconds.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn time(name: &str, nullable: bool) -> Field {
    Field::new(name, timestamp_type(), nullable)
}

fn origin() -> [Field; 3] {
    [
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
        time("kafka_timestamp", true),
    ]
}

fn f64(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
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
        id_nullable("visibility"),
        id_nullable("invitee"),
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

/// [`crate::StandingsChange`]s, a row per upserted (the whole row) or removed
/// (`race`, `seq`, `change`, `participant` only) participant.
pub fn standing_change() -> SchemaRef {
    schema([
        id("race"),
        Field::new("seq", DataType::UInt64, false),
        id("change"),
        id("participant"),
        Field::new("name", DataType::Utf8, true),
        f64("distance_m"),
        Field::new("laps", DataType::UInt32, true),
        Field::new("leg", DataType::UInt32, true),
        f64("gap_s"),
        f64("speed_mps"),
        f64("last_lap_s"),
        time("last_seen", true),
        id_nullable("status"),
        time("eta", true),
        f64("lat"),
        f64("lon"),
    ])
}

/// The leaders of [`crate::StandingsChange`]s, a row per change that moved
/// its race's leader: who leads from `seq` on, and how far (a participant's
/// distance behind the leader at a seq is the latest leader's `distance_m`
/// minus theirs).
pub fn leader_change() -> SchemaRef {
    schema([
        id("race"),
        Field::new("seq", DataType::UInt64, false),
        id("participant"),
        f64("distance_m"),
    ])
}

/// The ranks of [`crate::StandingsChange`]s, a row per
/// [`crate::RankChange`]: the participant's rank from `seq` on (until a
/// later rank, or the participant's removal in the standings dataset).
pub fn rank_change() -> SchemaRef {
    schema([
        id("race"),
        Field::new("seq", DataType::UInt64, false),
        id("participant"),
        Field::new("rank", DataType::UInt32, false),
    ])
}

/// The splits of [`crate::StandingsChange`]s, a row per upserted or removed
/// [`crate::Split`] (`time` and `position` are null for a removal).
pub fn split_change() -> SchemaRef {
    schema([
        id("race"),
        Field::new("seq", DataType::UInt64, false),
        id("change"),
        id("participant"),
        Field::new("split", DataType::UInt32, false),
        time("time", true),
        Field::new("position", DataType::UInt32, true),
    ])
}

/// The membership part of [`crate::RoomChange`]s, a row per upserted or
/// removed [`crate::RoomMember`].
pub fn member_change() -> SchemaRef {
    schema([
        id("room"),
        id("change"),
        id("user"),
        Field::new("online", DataType::Boolean, true),
        time("joined_at", true),
    ])
}

/// Records refused by the pipeline or the edge (`pace.dlq`): the reason, the
/// origin (`source_partition`/`source_offset` are -1 for a record the edge
/// refused before it reached Kafka), and the payload byte for byte.
pub fn dead_letter() -> SchemaRef {
    schema([
        id("source_topic"),
        Field::new("source_partition", DataType::Int32, false),
        Field::new("source_offset", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
        id_nullable("refused_by"),
        Field::new("truncated_from", DataType::Int64, true),
        Field::new("key", DataType::Binary, true),
        Field::new("payload", DataType::Binary, false),
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

/// [`crate::tournament::TournamentEvent`]: the action's fields as its JSON.
pub fn tournament_event() -> SchemaRef {
    schema([
        id("tournament"),
        id("user"),
        id("kind"),
        Field::new("action", DataType::Utf8, false),
        Field::new("client_msg_id", DataType::Utf8, true),
        time("time", false),
    ])
}

/// [`crate::tournament::TournamentChange`]s, a row per change: what it
/// carries as JSON (`tournament` the info when it changed, `players` those
/// who joined or chose, `draw` once made, `outcomes` of its events).
pub fn tournament_change() -> SchemaRef {
    schema([
        id("tournament"),
        Field::new("seq", DataType::UInt64, false),
        Field::new("info", DataType::Utf8, true),
        Field::new("players", DataType::Utf8, false),
        Field::new("draw", DataType::Utf8, true),
        Field::new("outcomes", DataType::Utf8, false),
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
            tournament_event(),
            tournament_change(),
            race_definition(),
            chat_event(),
            calc_task(),
            standing_change(),
            rank_change(),
            split_change(),
            member_change(),
            dead_letter(),
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
        assert_eq!(gps_point().fields().len(), 10);
    }
}
