//! What the race view sends: a race's snapshot and deltas (of the whole
//! ranking or of a window), and a followed participant's frames.

use schemas::{Leader, Split, SplitKey, StandingRow};
use serde::Serialize;

use crate::protocol::viewport::Span;

/// A race as a whole, or one participant of it.
#[derive(Debug, Serialize)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum RaceSnapshot<'a> {
    /// A race's standings, by rank, and splits, by split then position.
    Race {
        /// Race id.
        id: &'a str,
        /// The race view's seq.
        seq: u64,
        /// The window's span, for a window subscription.
        #[serde(skip_serializing_if = "Option::is_none")]
        window: Option<Span>,
        /// Every row (of the window).
        rows: Vec<StandingRow>,
        /// Every split.
        splits: Vec<&'a Split>,
        /// Who leads: a row's distance gap is the leader's `distance_m` minus the row's.
        #[serde(skip_serializing_if = "Option::is_none")]
        leader: Option<&'a Leader>,
    },
    /// One participant's row and splits.
    Participant(ParticipantFrame<'a>),
}

/// One change of a race, or of one participant of it.
#[derive(Debug, Serialize)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum RaceDelta<'a> {
    /// Rows upserted and removed, splits set and removed.
    Race {
        /// Race id.
        id: &'a str,
        /// The race view's seq after the change.
        seq: u64,
        /// The window's span after the change, for a window subscription.
        #[serde(skip_serializing_if = "Option::is_none")]
        window: Option<Span>,
        /// Rows that changed (or entered the window).
        upserts: Vec<StandingRow>,
        /// Participants whose rows went (or left the window).
        removes: &'a [String],
        /// Splits set.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        splits: Vec<&'a Split>,
        /// Splits removed.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        split_removes: Vec<&'a SplitKey>,
        /// The leader, when it changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        leader: Option<&'a Leader>,
    },
    /// A change that touched one followed participant.
    Participant(ParticipantFrame<'a>),
}

/// One participant's frame: their row (absent once removed) and splits.
#[derive(Debug, Serialize)]
pub struct ParticipantFrame<'a> {
    /// Race id.
    pub id: &'a str,
    /// The participant.
    pub participant: &'a str,
    /// The race view's seq.
    pub seq: u64,
    /// Their row, if they have one.
    pub row: Option<StandingRow>,
    /// Their splits (all of them in a snapshot, the changed ones in a delta).
    pub splits: Vec<&'a Split>,
    /// Their splits removed.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub split_removes: Vec<&'a SplitKey>,
    /// The race's leader as of this frame (their distance gap is its
    /// `distance_m` minus theirs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<&'a Leader>,
}
