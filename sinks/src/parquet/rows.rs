//! What a row of each archived dataset is: every record archived as it
//! is, and the row types of the view changelogs (a record of those gives
//! several rows), each with its column list ([`dataset!`]), from which its
//! Arrow schema and its record batches both come.

use schemas::tournament::{TournamentChange, TournamentEvent};
use schemas::{
    CalcTask, ChatEvent, GpsPoint, Leader, RaceDefinition, RankChange, RoomMember, RoomMessage,
    Split, SplitKey, StandingRow, TaskResult, TimingCrossing,
};

use super::columns::dataset;

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

/// `v` as JSON text.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("records serialize")
}

// A GPS point ([`GpsPoint`]).
dataset!(GpsPoint, "gps", |p| [
    id("race", &p.race),
    id("participant", &p.participant),
    time("time", p.time.0),
    float64("lat", p.lat),
    float64("lon", p.lon),
    float64_or("elevation", p.elevation),
    float64_or("accuracy", p.accuracy),
]);

// A timing-line crossing ([`TimingCrossing`]).
dataset!(TimingCrossing, "timing", |c| [
    id("race", &c.race),
    id("participant", &c.participant),
    id("line", &c.line),
    time("time", c.time.0),
]);

// A race definition: `kind` is the kind's name, `definition` the whole
// record as JSON.
dataset!(RaceDefinition, "races", |d| [
    id("id", &d.id),
    text("name", &d.name),
    time("start", d.start.0),
    id("kind", wire_name(&d.kind)),
    uint32("laps", d.laps),
    time_or("cutoff", d.cutoff.map(|t| t.0)),
    text("definition", json(d)),
]);

// A chat event ([`ChatEvent`]).
dataset!(ChatEvent, "chat", |c| [
    id("room", &c.room),
    id("user", &c.user),
    id("kind", wire_name(&c.kind)),
    text_or("text", c.text.as_deref()),
    text_or("client_msg_id", c.client_msg_id.as_deref()),
    id_or("visibility", c.visibility.map(|v| wire_name(&v))),
    id_or("invitee", c.invitee.as_deref()),
    time("time", c.time.0),
]);

// A calculation task ([`CalcTask`]).
dataset!(CalcTask, "tasks", |t| [
    id("id", &t.id),
    text("expression", &t.expression),
    time("time", t.time.0),
]);

// A task result ([`TaskResult`]).
dataset!(TaskResult, "results", |t| [
    id("id", &t.id),
    text("expression", &t.expression),
    id("status", t.status.as_str()),
    text_or("result", t.result.as_deref()),
    text_or("error", t.error.as_deref()),
    time("submitted_at", t.submitted_at.0),
    time_or("completed_at", t.completed_at.map(|c| c.0)),
]);

// A room's message ([`RoomMessage`]), with its gapless `seq`.
dataset!(RoomMessage, "room_messages", |m| [
    id("room", &m.room),
    uint64("seq", m.seq),
    id("user", &m.user),
    text("text", &m.text),
    text_or("client_msg_id", m.client_msg_id.as_deref()),
    time("time", m.time.0),
]);

// A tournament event ([`TournamentEvent`]): the action's fields as its JSON.
dataset!(TournamentEvent, "tournament_events", |e| [
    id("tournament", &e.tournament),
    id("user", &e.user),
    id("kind", e.action.kind()),
    text("action", json(&e.action)),
    text_or("client_msg_id", e.client_msg_id.as_deref()),
    time("time", e.time.0),
]);

// A change of a tournament ([`TournamentChange`]): what it carries as JSON
// (`info` when it changed, `players` those who joined or chose, `draw` once
// made, `outcomes` of its events).
dataset!(TournamentChange, "tournament_changes", |c| [
    id("tournament", &c.tournament),
    uint64("seq", c.seq),
    text_or("info", c.info.as_ref().map(json)),
    text("players", json(&c.players)),
    text_or("draw", c.draw.as_ref().map(json)),
    text("outcomes", json(&c.outcomes)),
]);

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
    fn of(present: bool) -> &'static str {
        if present {
            Change::Upsert.name()
        } else {
            Change::Remove.name()
        }
    }

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

// A participant's row of a standings change: the whole row for an upsert;
// `race`, `seq`, `change` and `participant` only for a removal.
dataset!(StandingChange, "standings", |c| [
    id("race", &c.race),
    uint64("seq", c.seq),
    id("change", Change::of(c.row.is_some())),
    id("participant", &c.participant),
    text_or("name", c.row.as_ref().map(|s| s.name.as_str())),
    float64_or("distance_m", c.row.as_ref().map(|s| s.distance_m)),
    uint32_or("laps", c.row.as_ref().and_then(|s| s.laps)),
    uint32_or("leg", c.row.as_ref().and_then(|s| s.leg)),
    float64_or("gap_s", c.row.as_ref().and_then(|s| s.gap_s)),
    float64_or("speed_mps", c.row.as_ref().and_then(|s| s.speed_mps)),
    float64_or("last_lap_s", c.row.as_ref().and_then(|s| s.last_lap_s)),
    time_or("last_seen", c.row.as_ref().map(|s| s.last_seen.0)),
    id_or("status", c.row.as_ref().map(|s| s.status.name())),
    time_or("eta", c.row.as_ref().and_then(|s| s.eta.map(|t| t.0))),
    float64_or(
        "lat",
        c.row.as_ref().and_then(|s| s.position.map(|p| p.lat))
    ),
    float64_or(
        "lon",
        c.row.as_ref().and_then(|s| s.position.map(|p| p.lon))
    ),
]);

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

// A participant's rank from `seq` on (until a later rank, or the
// participant's removal in the standings dataset).
dataset!(RankRow, "ranks", |c| [
    id("race", &c.race),
    uint64("seq", c.seq),
    id("participant", &c.rank.participant),
    uint32("rank", c.rank.rank),
]);

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

// Who leads from `seq` on, and how far (a participant's distance behind the
// leader at a seq is the latest leader's `distance_m` minus theirs).
dataset!(LeaderChange, "leaders", |c| [
    id("race", &c.race),
    uint64("seq", c.seq),
    id("participant", &c.leader.participant),
    float64_or("distance_m", c.leader.distance_m),
]);

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

// A split upserted or removed (`time` and `position` are null for a removal).
dataset!(SplitChange, "splits", |c| [
    id("race", &c.race),
    uint64("seq", c.seq),
    id("change", Change::of(c.split.is_some())),
    id("participant", &c.key.participant),
    uint32("split", c.key.split),
    time_or("time", c.split.as_ref().map(|s| s.time.0)),
    uint32_or("position", c.split.as_ref().map(|s| s.position)),
]);

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

// A room member upserted or removed.
dataset!(MemberChange, "room_members", |c| [
    id("room", &c.room),
    id("change", Change::of(c.member.is_some())),
    id("user", &c.user),
    boolean_or("online", c.member.as_ref().map(|m| m.online)),
    time_or("joined_at", c.member.as_ref().map(|m| m.joined_at.0)),
]);

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

// A record refused by the pipeline or the edge: the reason, the origin
// (`source_partition`/`source_offset` are -1 for a record the edge refused
// before it reached Kafka), and the payload byte for byte.
dataset!(DeadLetterRow, "dead_letters", |d| [
    id("source_topic", &d.source_topic),
    int32("source_partition", d.source_partition),
    int64("source_offset", d.source_offset),
    text("reason", &d.reason),
    id_or("refused_by", d.refused_by.as_deref()),
    int64_or("truncated_from", d.truncated_from),
    binary_or("key", d.key.as_deref()),
    binary("payload", &d.payload),
]);
