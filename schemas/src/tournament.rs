//! The tournament draw (LCT): what players and organisers do (topic
//! `pace.tournament`, [`TournamentEvent`], keyed by tournament) and what the
//! `tournaments` view says (topic `pace.tournaments`, [`TournamentChange`]).
//! Both are archived, one row a record: their column lists are at the end
//! of this file ([`crate::dataset!`]).
//!
//! An organiser creates a tournament with a name and a player limit; players
//! join with a display name and choose a team, each team at most once per
//! tournament; a rename carries the version it was based on and a stale one
//! is refused. Once every place is taken and every player has chosen (or the
//! organiser closes it), the chosen teams are dealt to the players at random
//! from a seed that is a digest of the tournament's own accepted events
//! ([`draw_seed`]), so a replay deals the same draw and anyone can check it.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::validate::{self as v, Validate, ValidationError};

/// Longest tournament name, display name or team name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Most players a tournament takes.
pub const MAX_PLAYERS: u32 = 64;

/// One thing a user does to a tournament.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TournamentEvent {
    /// Tournament id (the characters of a room id).
    pub tournament: String,
    /// Who does it (the token's subject).
    pub user: String,
    /// What they do.
    pub action: TournamentAction,
    /// The client's own id for the request: its outcome carries it, and a
    /// retry with the same id gets the same outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// When it happened.
    pub time: Timestamp,
}

/// What a user does to a tournament.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TournamentAction {
    /// Creates the tournament; the user is its organiser.
    Create {
        /// Its name.
        name: String,
        /// How many players it takes (2 to [`MAX_PLAYERS`]).
        player_limit: u32,
    },
    /// Takes a place.
    Join {
        /// The name the others see.
        display_name: String,
    },
    /// Chooses a team (a player may change it until the draw).
    Choose {
        /// The team.
        team: String,
    },
    /// Renames the tournament (organiser only).
    Rename {
        /// The new name.
        name: String,
        /// The version the rename was based on: refused unless current.
        version: u64,
    },
    /// Draws now among the players who chose (organiser only).
    Close {},
}

impl TournamentAction {
    /// Its `kind` on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Join { .. } => "join",
            Self::Choose { .. } => "choose",
            Self::Rename { .. } => "rename",
            Self::Close {} => "close",
        }
    }
}

fn name(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    v::text(field, value, MAX_NAME_BYTES)?;
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(field, "contains a control character"));
    }
    Ok(())
}

impl Validate for TournamentEvent {
    fn validate(&self) -> Result<(), ValidationError> {
        v::room_id("tournament", &self.tournament)?;
        v::id("user", &self.user)?;
        v::time("time", self.time)?;
        if let Some(id) = &self.client_msg_id {
            v::id("client_msg_id", id)?;
        }
        match &self.action {
            TournamentAction::Create {
                name: n,
                player_limit,
            } => {
                name("action.name", n)?;
                if !(2..=MAX_PLAYERS).contains(player_limit) {
                    return Err(ValidationError::new(
                        "action.player_limit",
                        format_args!("{player_limit} is outside 2..={MAX_PLAYERS}"),
                    ));
                }
                Ok(())
            }
            TournamentAction::Join { display_name } => name("action.display_name", display_name),
            TournamentAction::Choose { team } => name("action.team", team),
            TournamentAction::Rename { name: n, .. } => name("action.name", n),
            TournamentAction::Close {} => Ok(()),
        }
    }
}

/// Where a tournament is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TournamentState {
    /// Taking players and choices.
    Open,
    /// Drawn: the assignments are final.
    Drawn,
}

/// A tournament as a whole.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TournamentInfo {
    /// Tournament id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Who created it.
    pub organiser: String,
    /// How many players it takes.
    pub player_limit: u32,
    /// 1 at creation, one more with each rename: what a rename is based on.
    pub version: u64,
    /// Open or drawn.
    pub state: TournamentState,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A player of a tournament.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TournamentPlayer {
    /// The player's user id.
    pub user: String,
    /// The name the others see.
    pub display_name: String,
    /// The team they chose, once they have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// 1 for the first to join, and so on.
    pub place: u32,
}

/// The draw: which player gets which team.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Draw {
    /// The seed the teams were shuffled with, 16 hex digits ([`draw_seed`]).
    pub seed: String,
    /// Each drawn player and the team they got, in the order they joined.
    pub assignments: Vec<Assignment>,
}

/// One line of a draw.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Assignment {
    /// The player's user id.
    pub user: String,
    /// The team the draw gave them.
    pub team: String,
}

/// Why an action was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// There is no such tournament.
    UnknownTournament,
    /// A tournament of that id exists.
    Exists,
    /// Every place is taken.
    Full,
    /// The user is a player already.
    AlreadyJoined,
    /// Only players choose.
    NotAPlayer,
    /// Another player chose that team.
    TeamTaken,
    /// The rename was based on an older version.
    StaleVersion,
    /// Only the organiser renames or closes.
    NotOrganiser,
    /// The tournament is drawn.
    Drawn,
}

impl Refusal {
    /// What a person reads.
    pub fn message(self) -> &'static str {
        match self {
            Self::UnknownTournament => "there is no such tournament",
            Self::Exists => "a tournament of that id exists",
            Self::Full => "every place in the tournament is taken",
            Self::AlreadyJoined => "you are a player already",
            Self::NotAPlayer => "join the tournament first",
            Self::TeamTaken => "another player chose that team",
            Self::StaleVersion => "the tournament changed since; reload and try again",
            Self::NotOrganiser => "only the organiser may do that",
            Self::Drawn => "the tournament is drawn",
        }
    }
}

/// What became of one event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Outcome {
    /// Whose event.
    pub user: String,
    /// The event's `client_msg_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// The action's kind (`create`, `join`, …).
    pub kind: String,
    /// `None`: accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
}

/// One change of a tournament's view (topic `pace.tournaments`, keyed by
/// tournament): applied in `seq` order, the changes give the view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TournamentChange {
    /// Tournament id.
    pub tournament: String,
    /// 1, 2, …: the tournament's changes in order, with no gap.
    pub seq: u64,
    /// The tournament, when it changed (created, renamed, drawn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<TournamentInfo>,
    /// Players that joined or chose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub players: Vec<TournamentPlayer>,
    /// The draw, once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draw: Option<Draw>,
    /// What became of the events of this change, accepted or refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<Outcome>,
}

/// FNV-1a, 64 bits: the digest the draw's seed is. Written out here (not a
/// library hasher) so that the seed is the same for every build and anyone
/// can recompute it.
pub fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// FNV-1a's offset basis: the digest of nothing.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// The draw seed after `event` was accepted, from the seed before: FNV-1a
/// over `kind|user|payload\n`, where the payload is the action's JSON. The
/// seed of a tournament starts as the digest of its id.
pub fn draw_seed(before: u64, event: &TournamentEvent) -> u64 {
    let action = serde_json::to_string(&event.action).expect("actions serialize");
    let line = format!("{}|{}|{}\n", event.action.kind(), event.user, action);
    fnv1a(before, line.as_bytes())
}

/// Deals `teams` to as many players: a Fisher–Yates shuffle driven by
/// SplitMix64 from `seed`. Entry `i` is the team of the `i`-th player.
pub fn deal(seed: u64, mut teams: Vec<String>) -> Vec<String> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..teams.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        teams.swap(i, j);
    }
    teams
}

// A tournament event ([`TournamentEvent`]): the action's fields as its JSON.
crate::dataset!(TournamentEvent, "tournament_events", |e| [
    id("tournament", &e.tournament),
    id("user", &e.user),
    id("kind", e.action.kind()),
    text("action", crate::archive::json(&e.action)),
    text_or("client_msg_id", e.client_msg_id.as_deref()),
    time("time", e.time.0),
]);

// A change of a tournament ([`TournamentChange`]): what it carries as JSON
// (`info` when it changed, `players` those who joined or chose, `draw` once
// made, `outcomes` of its events).
crate::dataset!(TournamentChange, "tournament_changes", |c| [
    id("tournament", &c.tournament),
    uint64("seq", c.seq),
    text_or("info", c.info.as_ref().map(crate::archive::json)),
    text("players", crate::archive::json(&c.players)),
    text_or("draw", c.draw.as_ref().map(crate::archive::json)),
    text("outcomes", crate::archive::json(&c.outcomes)),
]);

crate::one_row!(TournamentEvent, crate::decode, |e| Some(e.time.0));
crate::one_row!(TournamentChange, serde_json::from_slice, |_c| None);

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: TournamentAction) -> TournamentEvent {
        TournamentEvent {
            tournament: "cup".into(),
            user: "ann".into(),
            action,
            client_msg_id: None,
            time: Timestamp(1_780_000_000_000),
        }
    }

    #[test]
    fn events_validate_and_name_what_is_wrong() {
        let ok = event(TournamentAction::Create {
            name: "Friday cup".into(),
            player_limit: 8,
        });
        ok.validate().unwrap();
        let json = serde_json::to_string(&ok).unwrap();
        assert!(
            json.contains(r#""action":{"kind":"create","name":"Friday cup","player_limit":8}"#),
            "{json}"
        );
        let back: TournamentEvent = crate::decode(json.as_bytes()).unwrap();
        assert_eq!(back, ok);
        let limit = event(TournamentAction::Create {
            name: "x".into(),
            player_limit: 1,
        });
        assert_eq!(
            limit.validate().unwrap_err().to_string(),
            "action.player_limit: 1 is outside 2..=64"
        );
        let blank = event(TournamentAction::Choose { team: " ".into() });
        assert!(
            blank
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("action.team")
        );
        let mut bad_id = event(TournamentAction::Close {});
        bad_id.tournament = "a b".into();
        assert!(bad_id.validate().is_err());
        assert!(crate::decode::<TournamentEvent>(br#"{"tournament":"cup","user":"ann","action":{"kind":"close","x":1},"time":"2026-01-01T00:00:00Z"}"#).is_err());
    }

    #[test]
    fn the_seed_and_the_deal_are_fixed_functions() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), FNV_OFFSET);
        // The FNV-1a test vector for "a".
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        let teams: Vec<String> = (0..8).map(|i| format!("team{i}")).collect();
        let dealt = deal(42, teams.clone());
        assert_eq!(
            deal(42, teams.clone()),
            dealt,
            "the same seed deals the same"
        );
        let mut sorted = dealt.clone();
        sorted.sort();
        assert_eq!(sorted, teams, "a permutation");
        assert_ne!(deal(43, teams.clone()), dealt);
        // Pinned (computed independently, in Python): a change of the
        // algorithm would change every published draw.
        assert_eq!(
            deal(42, teams),
            [
                "team3", "team1", "team6", "team2", "team4", "team0", "team7", "team5"
            ]
        );
    }
}
