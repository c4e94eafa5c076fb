//! View records: the rows of the live views, as served to spectators, written
//! to the changelog topics and archived.

use serde::{Deserialize, Serialize};

use crate::records::LatLon;
use crate::time::Timestamp;

/// A participant's state in a race.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No point since the start yet.
    NotStarted,
    /// On course.
    Racing,
    /// Crossed the finish.
    Finished,
    /// Out of the race.
    Retired,
    /// Entered, never read, and the first cutoff ahead has passed
    /// (chip-timed races).
    DidNotStart,
}

impl Status {
    /// The wire name (`not_started`, `racing`, …).
    pub fn name(self) -> &'static str {
        match self {
            Status::NotStarted => "not_started",
            Status::Racing => "racing",
            Status::Finished => "finished",
            Status::Retired => "retired",
            Status::DidNotStart => "did_not_start",
        }
    }
}

/// One row of a race's leaderboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StandingRow {
    /// Race id.
    pub race: String,
    /// 1 for the leader. Absent in the changelog, where ranks travel apart
    /// ([`StandingsChange::ranks`]) so that a pass is not a change of every
    /// row it passes; the edge puts it back in every row it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    /// Participant id.
    pub participant: String,
    /// Display name (the id when the race lists none).
    pub name: String,
    /// Gender, where the participant's listing gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Category, where the participant's listing gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Progress: distance covered along the course, metres (0 in timing-line
    /// races, which know laps, not distance).
    pub distance_m: f64,
    /// Completed laps, for lap races.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub laps: Option<u32>,
    /// Current leg, for mark races.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leg: Option<u32>,
    /// Time behind the first participant through this one's latest split,
    /// seconds (0 for whoever passed it first), where there is one. Another
    /// participant's move does not change it; the gap in distance does, so
    /// it is not in the row: it is the [`Leader`]'s `distance_m` minus this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_s: Option<f64>,
    /// Current speed, metres per second, where known (GPS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mps: Option<f64>,
    /// Time of the last completed lap, seconds (lap races).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_lap_s: Option<f64>,
    /// Time of the latest point.
    pub last_seen: Timestamp,
    /// Not started, racing, finished or retired.
    pub status: Status,
    /// Estimated finish time, for course races.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<Timestamp>,
    /// Where the latest accepted GPS fix put the participant (GPS races).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<LatLon>,
}

/// Who leads a race, and how far: the one record that changes when the
/// leader moves (each row's distance gap is `distance_m` minus the row's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Leader {
    /// Participant id.
    pub participant: String,
    /// The leader's distance along the course, metres, where the race knows distance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

/// A participant's place in a race's order, when it changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankChange {
    /// Participant id.
    pub participant: String,
    /// 1 for the leader.
    pub rank: u32,
}

/// A change of one race's view, as written to `pace.standings` (keyed by race).
///
/// `seq` numbers the changes of a race from 1 with no gap; a consumer that holds
/// the view at `seq - 1` gets it at `seq` by setting the `ranks` (by
/// participant; a rank may come before its participant's first row),
/// replacing the `upserts` rows (by participant; an upsert keeps the
/// participant's rank unless the row carries one), dropping the `removes`
/// (row and rank), replacing the `splits` (by participant and split),
/// dropping the `split_removes` and, if there is one, replacing the
/// `leader`.
///
/// Only what changed is in a change: the rows of participants whose own
/// progress changed, and the new rank of each participant that moved or was
/// passed; never the whole race because its leader moved.
///
/// On the topic it is written in a compact JSON form, with short keys and
/// the race said once ([`crate::changelog`]).
#[derive(Clone, Debug, PartialEq)]
pub struct StandingsChange {
    /// Race id.
    pub race: String,
    /// The view's sequence number after this change.
    pub seq: u64,
    /// Ranks that are new or changed, in rank order.
    pub ranks: Vec<RankChange>,
    /// Rows that are new or changed.
    pub upserts: Vec<StandingRow>,
    /// Participants no longer in the standings.
    pub removes: Vec<String>,
    /// Splits that are new or changed.
    pub splits: Vec<Split>,
    /// Splits no longer in the view (a late point moved them).
    pub split_removes: Vec<SplitKey>,
    /// The leader, when it changed.
    pub leader: Option<Leader>,
}

/// Which split of which participant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SplitKey {
    /// Participant id.
    pub participant: String,
    /// Split index, from 1.
    pub split: u32,
}

/// What `GET /api/races` lists for a race.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RaceSummary {
    /// Race id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `course`, `marks` or `timing_lines`.
    pub kind: String,
    /// Participants in the standings (or listed in the definition, if more).
    pub participants: usize,
    /// The gun.
    pub start: Timestamp,
}

/// A participant's passage of a split (lap, leg or timing line).
///
/// Positions rank the participants that passed the split by the time they
/// did: the position at that moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Race id.
    pub race: String,
    /// Participant id.
    pub participant: String,
    /// Split index, from 1.
    pub split: u32,
    /// Crossing time.
    pub time: Timestamp,
    /// Position at that moment.
    pub position: u32,
    /// Position at that moment among the participants of the same gender,
    /// where the participant's listing gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender_position: Option<u32>,
    /// Position at that moment within the participant's category, where
    /// the listing gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_position: Option<u32>,
}

/// A member of a room.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoomMember {
    /// Room id.
    pub room: String,
    /// User id.
    pub user: String,
    /// Whether a connection of the user is open now.
    pub online: bool,
    /// When the user joined.
    pub joined_at: Timestamp,
    /// The seq they have read up to (their read marker; 0: none).
    #[serde(default)]
    pub read_seq: u64,
}

/// A message in a room's log.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoomMessage {
    /// Room id.
    pub room: String,
    /// Per-room sequence number, from 1, gapless.
    pub seq: u64,
    /// Author.
    pub user: String,
    /// Text.
    pub text: String,
    /// The client's id for the message, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// When it was posted.
    pub time: Timestamp,
}

/// A change of one room's view, as written to `pace.rooms` (keyed by room).
///
/// A consumer that holds the room gets the next state by replacing the
/// `members` (by user), dropping the `removes` and appending the `messages`,
/// whose own `seq` numbers continue the room's log with no gap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomChange {
    /// Room id.
    pub room: String,
    /// Members that are new or changed (joined, came online, went offline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<RoomMember>,
    /// Users no longer members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removes: Vec<String>,
    /// New messages, in seq order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<RoomMessage>,
    /// Who may read and join, once the room exists (created, or spoken in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<crate::records::Visibility>,
    /// Who created the room, once it exists (`None` with a `visibility`:
    /// nobody; it was spoken in before any create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// The `client_msg_id` of the create that made the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_id: Option<String>,
    /// Users newly invited.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invited: Vec<String>,
}

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// Submitted, not evaluated yet.
    Pending,
    /// Evaluated to a value.
    Successful,
    /// Failed, with a reason.
    Failed,
}

impl TaskStatus {
    /// Its name on the wire and in the archive (`SUCCESSFUL`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "PENDING",
            TaskStatus::Successful => "SUCCESSFUL",
            TaskStatus::Failed => "FAILED",
        }
    }
}

/// The result of a calc task.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskResult {
    /// Task id.
    pub id: String,
    /// The expression as submitted.
    pub expression: String,
    /// Pending, successful or failed.
    pub status: TaskStatus,
    /// The value, shortest round-tripping decimal, when successful.
    #[serde(default)]
    pub result: Option<String>,
    /// The reason, when failed.
    #[serde(default)]
    pub error: Option<String>,
    /// When it was submitted.
    pub submitted_at: Timestamp,
    /// When it was evaluated.
    #[serde(default)]
    pub completed_at: Option<Timestamp>,
}
