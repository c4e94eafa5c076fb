//! What a row of each archived dataset is: a [`Row`] for every record
//! archived as it is, and the row types of the view changelogs (a record
//! of those gives several rows).

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, StringBuilder, StringDictionaryBuilder,
    UInt32Builder,
};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, Int32Array, Int64Array, TimestampMillisecondArray, UInt32Array, UInt64Array,
};
use arrow_schema::SchemaRef;
use ingest::source::Envelope;
use schemas::tournament::{TournamentChange, TournamentEvent};
use schemas::{
    CalcTask, ChatEvent, GpsPoint, Leader, RaceDefinition, RankChange, RoomMember, RoomMessage,
    Split, SplitKey, StandingRow, TaskResult, TimingCrossing,
};

use super::Row;

pub(super) fn times(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter(values).with_timezone("UTC"))
}

pub(super) fn ids<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringDictionaryBuilder::<Int32Type>::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

pub(super) fn texts<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

pub(super) fn f64s(values: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    let mut b = Float64Builder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

pub(super) fn u32s(values: impl Iterator<Item = Option<u32>>) -> ArrayRef {
    let mut b = UInt32Builder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

/// The name serde gives an enum value (`"join"`, `"timing_lines"`, …).
pub(super) fn wire_name<T: serde::Serialize>(v: &T) -> String {
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

impl Row for GpsPoint {
    const DATASET: &'static str = "gps";
    fn schema() -> SchemaRef {
        schemas::arrow::gps_point()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        vec![
            ids(r().map(|p| Some(p.race.as_str()))),
            ids(r().map(|p| Some(p.participant.as_str()))),
            times(r().map(|p| Some(p.time.0))),
            f64s(r().map(|p| Some(p.lat))),
            f64s(r().map(|p| Some(p.lon))),
            f64s(r().map(|p| p.elevation)),
            f64s(r().map(|p| p.accuracy)),
        ]
    }
}

impl Row for TimingCrossing {
    const DATASET: &'static str = "timing";
    fn schema() -> SchemaRef {
        schemas::arrow::timing_crossing()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        vec![
            ids(r().map(|c| Some(c.race.as_str()))),
            ids(r().map(|c| Some(c.participant.as_str()))),
            ids(r().map(|c| Some(c.line.as_str()))),
            times(r().map(|c| Some(c.time.0))),
        ]
    }
}

impl Row for RaceDefinition {
    const DATASET: &'static str = "races";
    fn schema() -> SchemaRef {
        schemas::arrow::race_definition()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let kinds: Vec<String> = r().map(|d| wire_name(&d.kind)).collect();
        let json: Vec<String> = r()
            .map(|d| serde_json::to_string(d).expect("definitions serialize"))
            .collect();
        vec![
            ids(r().map(|d| Some(d.id.as_str()))),
            texts(r().map(|d| Some(d.name.as_str()))),
            times(r().map(|d| Some(d.start.0))),
            ids(kinds.iter().map(|k| Some(k.as_str()))),
            Arc::new(UInt32Array::from_iter_values(r().map(|d| d.laps))),
            times(r().map(|d| d.cutoff.map(|t| t.0))),
            texts(json.iter().map(|j| Some(j.as_str()))),
        ]
    }
}

impl Row for ChatEvent {
    const DATASET: &'static str = "chat";
    fn schema() -> SchemaRef {
        schemas::arrow::chat_event()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let kinds: Vec<String> = r().map(|c| wire_name(&c.kind)).collect();
        let vis: Vec<Option<String>> = r().map(|c| c.visibility.map(|v| wire_name(&v))).collect();
        vec![
            ids(r().map(|c| Some(c.room.as_str()))),
            ids(r().map(|c| Some(c.user.as_str()))),
            ids(kinds.iter().map(|k| Some(k.as_str()))),
            texts(r().map(|c| c.text.as_deref())),
            texts(r().map(|c| c.client_msg_id.as_deref())),
            ids(vis.iter().map(|v| v.as_deref())),
            ids(r().map(|c| c.invitee.as_deref())),
            times(r().map(|c| Some(c.time.0))),
        ]
    }
}

impl Row for CalcTask {
    const DATASET: &'static str = "tasks";
    fn schema() -> SchemaRef {
        schemas::arrow::calc_task()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        vec![
            ids(r().map(|t| Some(t.id.as_str()))),
            texts(r().map(|t| Some(t.expression.as_str()))),
            times(r().map(|t| Some(t.time.0))),
        ]
    }
}

impl Row for TaskResult {
    const DATASET: &'static str = "results";
    fn schema() -> SchemaRef {
        schemas::arrow::task_result()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        vec![
            ids(r().map(|t| Some(t.id.as_str()))),
            texts(r().map(|t| Some(t.expression.as_str()))),
            ids(r().map(|t| Some(t.status.as_str()))),
            texts(r().map(|t| t.result.as_deref())),
            texts(r().map(|t| t.error.as_deref())),
            times(r().map(|t| Some(t.submitted_at.0))),
            times(r().map(|t| t.completed_at.map(|c| c.0))),
        ]
    }
}

impl Row for RoomMessage {
    const DATASET: &'static str = "room_messages";
    fn schema() -> SchemaRef {
        schemas::arrow::room_message()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        vec![
            ids(r().map(|m| Some(m.room.as_str()))),
            Arc::new(UInt64Array::from_iter_values(r().map(|m| m.seq))),
            ids(r().map(|m| Some(m.user.as_str()))),
            texts(r().map(|m| Some(m.text.as_str()))),
            texts(r().map(|m| m.client_msg_id.as_deref())),
            times(r().map(|m| Some(m.time.0))),
        ]
    }
}

impl Row for TournamentEvent {
    const DATASET: &'static str = "tournament_events";
    fn schema() -> SchemaRef {
        schemas::arrow::tournament_event()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let actions: Vec<String> = r().map(|e| json(&e.action)).collect();
        vec![
            ids(r().map(|e| Some(e.tournament.as_str()))),
            ids(r().map(|e| Some(e.user.as_str()))),
            ids(r().map(|e| Some(e.action.kind()))),
            texts(actions.iter().map(|a| Some(a.as_str()))),
            texts(r().map(|e| e.client_msg_id.as_deref())),
            times(r().map(|e| Some(e.time.0))),
        ]
    }
}

impl Row for TournamentChange {
    const DATASET: &'static str = "tournament_changes";
    fn schema() -> SchemaRef {
        schemas::arrow::tournament_change()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let info: Vec<Option<String>> = r().map(|c| c.info.as_ref().map(json)).collect();
        let players: Vec<String> = r().map(|c| json(&c.players)).collect();
        let draw: Vec<Option<String>> = r().map(|c| c.draw.as_ref().map(json)).collect();
        let outcomes: Vec<String> = r().map(|c| json(&c.outcomes)).collect();
        vec![
            ids(r().map(|c| Some(c.tournament.as_str()))),
            Arc::new(UInt64Array::from_iter_values(r().map(|c| c.seq))),
            texts(info.iter().map(|v| v.as_deref())),
            texts(players.iter().map(|v| Some(v.as_str()))),
            texts(draw.iter().map(|v| v.as_deref())),
            texts(outcomes.iter().map(|v| Some(v.as_str()))),
        ]
    }
}

/// `v` as JSON text.
fn json<T: serde::Serialize>(v: &T) -> String {
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
    fn name(self) -> &'static str {
        match self {
            Change::Upsert => "upsert",
            Change::Remove => "remove",
        }
    }
}

/// A participant's row of a standings change: the whole row, or its removal.
#[derive(Clone, Debug, PartialEq)]
pub struct StandingChange {
    /// Race id.
    pub race: String,
    /// The change's sequence number.
    pub seq: u64,
    /// Participant id.
    pub participant: String,
    /// The row (`None` for a removal).
    pub row: Option<StandingRow>,
}

impl Row for StandingChange {
    const DATASET: &'static str = "standings";
    fn schema() -> SchemaRef {
        schemas::arrow::standing_change()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let row = || r().map(|c| c.row.as_ref());
        let change = |c: &StandingChange| {
            if c.row.is_some() {
                Change::Upsert
            } else {
                Change::Remove
            }
        };
        vec![
            ids(r().map(|c| Some(c.race.as_str()))),
            Arc::new(UInt64Array::from_iter_values(r().map(|c| c.seq))),
            ids(r().map(|c| Some(change(c).name()))),
            ids(r().map(|c| Some(c.participant.as_str()))),
            texts(row().map(|s| s.map(|s| s.name.as_str()))),
            f64s(row().map(|s| s.map(|s| s.distance_m))),
            u32s(row().map(|s| s.and_then(|s| s.laps))),
            u32s(row().map(|s| s.and_then(|s| s.leg))),
            f64s(row().map(|s| s.and_then(|s| s.gap_s))),
            f64s(row().map(|s| s.and_then(|s| s.speed_mps))),
            f64s(row().map(|s| s.and_then(|s| s.last_lap_s))),
            times(row().map(|s| s.map(|s| s.last_seen.0))),
            ids(row().map(|s| s.map(|s| s.status.name()))),
            times(row().map(|s| s.and_then(|s| s.eta.map(|t| t.0)))),
            f64s(row().map(|s| s.and_then(|s| s.position.map(|p| p.lat)))),
            f64s(row().map(|s| s.and_then(|s| s.position.map(|p| p.lon)))),
        ]
    }
}

/// A participant's rank in a standings change that moved it.
#[derive(Clone, Debug, PartialEq)]
pub struct RankRow {
    /// Race id.
    pub race: String,
    /// The change's sequence number.
    pub seq: u64,
    /// Who, and where from this change on.
    pub rank: RankChange,
}

impl Row for RankRow {
    const DATASET: &'static str = "ranks";
    fn schema() -> SchemaRef {
        schemas::arrow::rank_change()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        vec![
            ids(r().map(|c| Some(c.race.as_str()))),
            Arc::new(UInt64Array::from_iter_values(r().map(|c| c.seq))),
            ids(r().map(|c| Some(c.rank.participant.as_str()))),
            Arc::new(UInt32Array::from_iter_values(r().map(|c| c.rank.rank))),
        ]
    }
}

/// The leader of a standings change that moved it.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderChange {
    /// Race id.
    pub race: String,
    /// The change's sequence number.
    pub seq: u64,
    /// Who leads from this change on.
    pub leader: Leader,
}

impl Row for LeaderChange {
    const DATASET: &'static str = "leaders";
    fn schema() -> SchemaRef {
        schemas::arrow::leader_change()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        vec![
            ids(r().map(|c| Some(c.race.as_str()))),
            Arc::new(UInt64Array::from_iter_values(r().map(|c| c.seq))),
            ids(r().map(|c| Some(c.leader.participant.as_str()))),
            f64s(r().map(|c| c.leader.distance_m)),
        ]
    }
}

/// A split of a standings change: the split, or its removal.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitChange {
    /// Race id.
    pub race: String,
    /// The change's sequence number.
    pub seq: u64,
    /// Whose split, and which.
    pub key: SplitKey,
    /// The split (`None` for a removal).
    pub split: Option<Split>,
}

impl Row for SplitChange {
    const DATASET: &'static str = "splits";
    fn schema() -> SchemaRef {
        schemas::arrow::split_change()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let change = |c: &SplitChange| {
            if c.split.is_some() {
                Change::Upsert
            } else {
                Change::Remove
            }
        };
        vec![
            ids(r().map(|c| Some(c.race.as_str()))),
            Arc::new(UInt64Array::from_iter_values(r().map(|c| c.seq))),
            ids(r().map(|c| Some(change(c).name()))),
            ids(r().map(|c| Some(c.key.participant.as_str()))),
            Arc::new(UInt32Array::from_iter_values(r().map(|c| c.key.split))),
            times(r().map(|c| c.split.as_ref().map(|s| s.time.0))),
            u32s(r().map(|c| c.split.as_ref().map(|s| s.position))),
        ]
    }
}

/// A member of a room change: the member as it is now, or its removal.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberChange {
    /// Room id.
    pub room: String,
    /// User id.
    pub user: String,
    /// The member (`None` for a removal).
    pub member: Option<RoomMember>,
}

impl Row for MemberChange {
    const DATASET: &'static str = "room_members";
    fn schema() -> SchemaRef {
        schemas::arrow::member_change()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let mut online = BooleanBuilder::new();
        for c in r() {
            online.append_option(c.member.as_ref().map(|m| m.online));
        }
        vec![
            ids(r().map(|c| Some(c.room.as_str()))),
            ids(r().map(|c| {
                Some(if c.member.is_some() {
                    Change::Upsert.name()
                } else {
                    Change::Remove.name()
                })
            })),
            ids(r().map(|c| Some(c.user.as_str()))),
            Arc::new(online.finish()),
            times(r().map(|c| c.member.as_ref().map(|m| m.joined_at.0))),
        ]
    }
}

/// A record of `pace.dlq`.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetterRow {
    /// The topic it was refused from.
    pub source_topic: String,
    /// Its partition there (-1: refused by the edge before reaching Kafka).
    pub source_partition: i32,
    /// Its offset there (-1 likewise).
    pub source_offset: i64,
    /// Why.
    pub reason: String,
    /// Who refused it, when not the pipeline (`ws-edge`).
    pub refused_by: Option<String>,
    /// The original size, when the payload was cut.
    pub truncated_from: Option<i64>,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Payload, byte for byte.
    pub payload: Vec<u8>,
}

impl Row for DeadLetterRow {
    const DATASET: &'static str = "dead_letters";
    fn schema() -> SchemaRef {
        schemas::arrow::dead_letter()
    }
    fn columns(rows: &[Envelope<Self>]) -> Vec<ArrayRef> {
        let r = || rows.iter().map(|e| &e.record);
        let mut key = BinaryBuilder::new();
        let mut payload = BinaryBuilder::new();
        for d in r() {
            key.append_option(d.key.as_deref());
            payload.append_value(&d.payload);
        }
        vec![
            ids(r().map(|d| Some(d.source_topic.as_str()))),
            Arc::new(Int32Array::from_iter_values(
                r().map(|d| d.source_partition),
            )),
            Arc::new(Int64Array::from_iter_values(r().map(|d| d.source_offset))),
            texts(r().map(|d| Some(d.reason.as_str()))),
            ids(r().map(|d| d.refused_by.as_deref())),
            Arc::new(Int64Array::from_iter(r().map(|d| d.truncated_from))),
            Arc::new(key.finish()),
            Arc::new(payload.finish()),
        ]
    }
}
