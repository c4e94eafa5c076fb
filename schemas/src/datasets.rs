//! The archived datasets of the race, rooms and tasks views: each dataset's column list ([`crate::dataset!`]), the
//! rows a changelog record gives (a standings change gives rows of four
//! datasets), and how each archived record decodes ([`Archived`]). The
//! tournament's are in [`crate::tournament`].

use crate::archive::{Archived, Change, Record, Rows, json, wire_name};
use crate::{
    CalcTask, ChatEvent, Entrant, GpsPoint, Leader, RaceDefinition, RankChange, RoomChange,
    RoomMember, RoomMessage, Split, StandingRow, StandingsChange, TaskResult, TimingCrossing,
};

// A GPS point ([`GpsPoint`]).
crate::dataset!(GpsPoint, "gps", |p| [
    id("race", &p.race),
    id("participant", &p.participant),
    time("time", p.time.0),
    float64("lat", p.lat),
    float64("lon", p.lon),
    float64_or("elevation", p.elevation),
    float64_or("accuracy", p.accuracy),
]);

// A timing-line crossing ([`TimingCrossing`]).
crate::dataset!(TimingCrossing, "timing", |c| [
    id("race", &c.race),
    id("participant", &c.participant),
    id("line", &c.line),
    time("time", c.time.0),
]);

// A race definition: `kind` is the kind's name, `definition` the whole
// record as JSON.
crate::dataset!(RaceDefinition, "races", |d| [
    id("id", &d.id),
    text("name", &d.name),
    time("start", d.start.0),
    id("kind", wire_name(&d.kind)),
    uint32("laps", d.laps),
    time_or("cutoff", d.cutoff.map(|t| t.0)),
    text("definition", json(d)),
]);

// A race's entrant ([`Entrant`]).
crate::dataset!(Entrant, "entrants", |e| [
    id("race", &e.race),
    id("participant", &e.participant),
    text("name", &e.name),
    id_or("wave", e.wave.as_deref()),
    id_or("gender", e.gender.as_deref()),
    id_or("category", e.category.as_deref()),
]);

// A chat event ([`ChatEvent`]).
crate::dataset!(ChatEvent, "chat", |c| [
    id("room", &c.room),
    id("user", &c.user),
    id("kind", wire_name(&c.kind)),
    text_or("text", c.text.as_deref()),
    text_or("client_msg_id", c.client_msg_id.as_deref()),
    id_or("visibility", c.visibility.map(|v| wire_name(&v))),
    id_or("invitee", c.invitee.as_deref()),
    int64_or("seq", c.seq.map(|s| s as i64)),
    time("time", c.time.0),
]);

// A calculation task ([`CalcTask`]).
crate::dataset!(CalcTask, "tasks", |t| [
    id("id", &t.id),
    text("expression", &t.expression),
    time("time", t.time.0),
]);

// A task result ([`TaskResult`]).
crate::dataset!(TaskResult, "results", |t| [
    id("id", &t.id),
    text("expression", &t.expression),
    id("status", t.status.as_str()),
    text_or("result", t.result.as_deref()),
    text_or("error", t.error.as_deref()),
    time("submitted_at", t.submitted_at.0),
    time_or("completed_at", t.completed_at.map(|c| c.0)),
]);

// A room's message ([`RoomMessage`]), with its gapless `seq`.
crate::dataset!(RoomMessage, "room_messages", |m| [
    id("room", &m.room),
    uint64("seq", m.seq),
    id("user", &m.user),
    text("text", &m.text),
    text_or("client_msg_id", m.client_msg_id.as_deref()),
    time("time", m.time.0),
]);

/// A participant's row of a standings change: the whole row, or its removal.
#[derive(Clone, Debug, PartialEq)]
pub struct StandingChange<'a> {
    /// Race id.
    pub race: &'a str,
    /// The change's sequence number.
    pub seq: u64,
    /// Participant id.
    pub participant: &'a str,
    /// The row (`None` for a removal).
    pub row: Option<&'a StandingRow>,
}

// A participant's row of a standings change: the whole row for an upsert;
// `race`, `seq`, `change` and `participant` only for a removal.
crate::dataset!(StandingChange<'_>, "standings", |c| [
    id("race", &c.race),
    uint64("seq", c.seq),
    id("change", Change::of(c.row.is_some())),
    id("participant", &c.participant),
    text_or("name", c.row.as_ref().map(|s| s.name.as_str())),
    id_or("gender", c.row.as_ref().and_then(|s| s.gender.as_deref())),
    id_or(
        "category",
        c.row.as_ref().and_then(|s| s.category.as_deref())
    ),
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
pub struct RankRow<'a> {
    /// Race id.
    pub race: &'a str,
    /// The change's sequence number.
    pub seq: u64,
    /// Who, and where from this change on.
    pub rank: &'a RankChange,
}

// A participant's rank from `seq` on (until a later rank, or the
// participant's removal in the standings dataset).
crate::dataset!(RankRow<'_>, "ranks", |c| [
    id("race", &c.race),
    uint64("seq", c.seq),
    id("participant", &c.rank.participant),
    uint32("rank", c.rank.rank),
]);

/// The leader of a standings change that moved it.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderChange<'a> {
    /// Race id.
    pub race: &'a str,
    /// The change's sequence number.
    pub seq: u64,
    /// Who leads from this change on.
    pub leader: &'a Leader,
}

// Who leads from `seq` on, and how far (a participant's distance behind the
// leader at a seq is the latest leader's `distance_m` minus theirs).
crate::dataset!(LeaderChange<'_>, "leaders", |c| [
    id("race", &c.race),
    uint64("seq", c.seq),
    id("participant", &c.leader.participant),
    float64_or("distance_m", c.leader.distance_m),
]);

/// A split of a standings change: the split, or its removal.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitChange<'a> {
    /// Race id.
    pub race: &'a str,
    /// The change's sequence number.
    pub seq: u64,
    /// Whose split.
    pub participant: &'a str,
    /// Which split.
    pub number: u32,
    /// The split (`None` for a removal).
    pub split: Option<&'a Split>,
}

// A split upserted or removed (`time` and `position` are null for a removal).
crate::dataset!(SplitChange<'_>, "splits", |c| [
    id("race", &c.race),
    uint64("seq", c.seq),
    id("change", Change::of(c.split.is_some())),
    id("participant", c.participant),
    uint32("split", c.number),
    time_or("time", c.split.as_ref().map(|s| s.time.0)),
    uint32_or("position", c.split.as_ref().map(|s| s.position)),
    uint32_or(
        "gender_position",
        c.split.as_ref().and_then(|s| s.gender_position)
    ),
    uint32_or(
        "category_position",
        c.split.as_ref().and_then(|s| s.category_position)
    ),
]);

/// A member of a room change: the member as it is now, or its removal.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberChange<'a> {
    /// Room id.
    pub room: &'a str,
    /// User id.
    pub user: &'a str,
    /// The member (`None` for a removal).
    pub member: Option<&'a RoomMember>,
}

// A room member upserted or removed.
crate::dataset!(MemberChange<'_>, "room_members", |c| [
    id("room", &c.room),
    id("change", Change::of(c.member.is_some())),
    id("user", &c.user),
    boolean_or("online", c.member.as_ref().map(|m| m.online)),
    time_or("joined_at", c.member.as_ref().map(|m| m.joined_at.0)),
    int64_or("read_seq", c.member.as_ref().map(|m| m.read_seq as i64)),
]);

crate::one_row!(GpsPoint, crate::decode, |p| Some(p.time.0));
crate::one_row!(TimingCrossing, crate::decode, |c| Some(c.time.0));
crate::one_row!(RaceDefinition, crate::decode, |d| Some(d.start.0));
crate::one_row!(Entrant, crate::decode, |_e| None);
crate::one_row!(ChatEvent, crate::decode, |c| Some(c.time.0));
crate::one_row!(CalcTask, crate::decode, |t| Some(t.time.0));
crate::one_row!(TaskResult, serde_json::from_slice, |t| Some(
    t.submitted_at.0
));

/// `pace.standings`: standings rows, ranks, splits and leaders.
impl Archived for StandingsChange {
    const DATASETS: &'static [&'static crate::archive::Dataset] = &[
        &<StandingChange<'static> as crate::archive::Row>::DATASET,
        &<RankRow<'static> as crate::archive::Row>::DATASET,
        &<SplitChange<'static> as crate::archive::Row>::DATASET,
        &<LeaderChange<'static> as crate::archive::Row>::DATASET,
    ];
    fn decode(raw: &impl Record) -> Option<Self> {
        serde_json::from_slice(raw.payload()).ok()
    }
    fn time_ms(&self) -> Option<i64> {
        None
    }
    fn rows(&self, out: &mut impl Rows) {
        let (race, seq) = (&self.race, self.seq);
        for rank in &self.ranks {
            out.push(&RankRow { race, seq, rank });
        }
        for row in &self.upserts {
            out.push(&StandingChange {
                race,
                seq,
                participant: &row.participant,
                row: Some(row),
            });
        }
        for participant in &self.removes {
            out.push(&StandingChange {
                race,
                seq,
                participant,
                row: None,
            });
        }
        for split in &self.splits {
            out.push(&SplitChange {
                race,
                seq,
                participant: &split.participant,
                number: split.split,
                split: Some(split),
            });
        }
        for key in &self.split_removes {
            out.push(&SplitChange {
                race,
                seq,
                participant: &key.participant,
                number: key.split,
                split: None,
            });
        }
        if let Some(leader) = &self.leader {
            out.push(&LeaderChange { race, seq, leader });
        }
    }
}

/// `pace.rooms`: membership changes and messages.
impl Archived for RoomChange {
    const DATASETS: &'static [&'static crate::archive::Dataset] = &[
        &<MemberChange<'static> as crate::archive::Row>::DATASET,
        &<RoomMessage as crate::archive::Row>::DATASET,
    ];
    fn decode(raw: &impl Record) -> Option<Self> {
        serde_json::from_slice(raw.payload()).ok()
    }
    fn time_ms(&self) -> Option<i64> {
        None
    }
    fn rows(&self, out: &mut impl Rows) {
        for m in &self.members {
            out.push(&MemberChange {
                room: &self.room,
                user: &m.user,
                member: Some(m),
            });
        }
        for user in &self.removes {
            out.push(&MemberChange {
                room: &self.room,
                user,
                member: None,
            });
        }
        for m in &self.messages {
            out.push(m);
        }
    }
}
