//! What the tournament view sends: a tournament's snapshot and deltas.

use schemas::tournament::{Draw, Outcome, TournamentInfo, TournamentPlayer};
use serde::Serialize;

/// A tournament as a whole.
#[derive(Debug, Serialize)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum TournamentSnapshot<'a> {
    /// A tournament: its info, players and draw.
    Tournament {
        /// Tournament id.
        id: &'a str,
        /// The tournament view's seq.
        seq: u64,
        /// The tournament (`None` until created).
        tournament: Option<&'a TournamentInfo>,
        /// Every player, in the order they joined.
        players: Vec<&'a TournamentPlayer>,
        /// The draw, once made.
        draw: Option<&'a Draw>,
    },
}

/// One change of a tournament, and the outcome of each event.
#[derive(Debug, Serialize)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum TournamentDelta<'a> {
    /// What changed in a tournament, and the outcome of each event.
    Tournament {
        /// Tournament id.
        id: &'a str,
        /// The tournament view's seq after the change.
        seq: u64,
        /// The tournament, when it changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        tournament: Option<&'a TournamentInfo>,
        /// Players that joined or chose.
        players: &'a [TournamentPlayer],
        /// The draw, when made.
        #[serde(skip_serializing_if = "Option::is_none")]
        draw: Option<&'a Draw>,
        /// What became of each event, accepted or refused.
        outcomes: &'a [Outcome],
    },
}
