//! `tournaments`: the tournament draw (LCT), from `pace.tournament` events.
//!
//! A tournament's events are keyed by tournament, so one partition holds
//! them and their offsets order them. The job folds each tournament's events
//! in that order ([`Tournament::apply`]): every event is accepted or refused
//! with a reason ([`Refusal`]), and its [`Outcome`] is a row of the view
//! (once: it is never retracted), so the edge can answer the request that
//! sent it. The first create of an id wins; a join takes the next place
//! until the limit; a choice takes a team nobody else holds (a player may
//! change theirs until the draw); a rename must be based on the current
//! version. The draw happens at the event that fills the last place's
//! choice, or at the organiser's close: the teams chosen, in join order,
//! are dealt by [`schemas::tournament::deal`] from the digest of the
//! accepted events ([`schemas::tournament::draw_seed`]), so the draw
//! depends only on the tournament's own records. A retry (the same user and
//! `client_msg_id` as one of the last [`RECENT_REQUESTS`]) is not applied
//! again and gets the first outcome again.
//!
//! Batches are applied once the frontier has passed their time, in order,
//! so the view depends only on the events and their order: the same after a
//! replay and for any worker count. The state (players, teams, seed) is
//! what a snapshot keeps.

mod job;

use std::collections::{BTreeMap, VecDeque};

use differential_dataflow::VecCollection;
use differential_dataflow::lattice::Lattice;
use schemas::Packed;
use schemas::tournament::{
    Assignment, Draw, FNV_OFFSET, Outcome, Refusal, TournamentAction, TournamentEvent,
    TournamentInfo, TournamentPlayer, TournamentState, deal, draw_seed, fnv1a,
};
use timely::order::TotalOrder;
use timely::progress::Timestamp;

pub use job::Tournaments;

use super::fold::{changed_rows, fold_in_order, in_order_by_key};
use crate::snapshot::Checkpoint;

/// A tournament event in the dataflow: tournament, and (order, event); the
/// order is its Kafka offset.
pub type TournamentInput = (String, (i64, Packed<TournamentEvent>));

/// Requests remembered per tournament, to recognise a retry.
pub const RECENT_REQUESTS: usize = 1024;

/// A row of a tournament's view.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum TournamentRow {
    /// The tournament as a whole.
    Info(Packed<TournamentInfo>),
    /// A player.
    Player(Packed<TournamentPlayer>),
    /// The draw, once made.
    Draw(Packed<Draw>),
    /// What became of an event (appears once, never retracted).
    Outcome(Packed<Outcome>),
}

/// One tournament's state.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Tournament {
    info: Option<Packed<TournamentInfo>>,
    players: BTreeMap<String, Packed<TournamentPlayer>>,
    /// Team → the player holding it.
    teams: BTreeMap<String, String>,
    draw: Option<Packed<Draw>>,
    seed: u64,
    /// The latest requests with a client id, and their outcomes.
    recent: VecDeque<((String, String), Packed<Outcome>)>,
}

impl Tournament {
    /// Applies the tournament's next event; its outcome.
    pub fn apply(&mut self, id: &str, e: &TournamentEvent) -> Outcome {
        let key = e.client_msg_id.clone().map(|c| (e.user.clone(), c));
        if let Some(k) = &key
            && let Some((_, earlier)) = self.recent.iter().find(|(r, _)| r == k)
        {
            return earlier.0.clone();
        }
        let refused = self.decide(id, e).err();
        if refused.is_none() {
            self.seed = draw_seed(self.seed, e);
            self.draw_if_due(false);
            if matches!(e.action, TournamentAction::Close {}) {
                self.draw_if_due(true);
            }
        }
        let outcome = Outcome {
            user: e.user.clone(),
            client_msg_id: e.client_msg_id.clone(),
            kind: e.action.kind().to_owned(),
            refused,
        };
        if let Some(k) = key {
            self.recent.push_back((k, Packed(outcome.clone())));
            if self.recent.len() > RECENT_REQUESTS {
                self.recent.pop_front();
            }
        }
        outcome
    }

    /// Applies `e` if the rules allow it.
    fn decide(&mut self, id: &str, e: &TournamentEvent) -> Result<(), Refusal> {
        if let TournamentAction::Create { name, player_limit } = &e.action {
            if self.info.is_some() {
                return Err(Refusal::Exists);
            }
            self.seed = fnv1a(FNV_OFFSET, id.as_bytes());
            self.info = Some(Packed(TournamentInfo {
                id: id.to_owned(),
                name: name.clone(),
                organiser: e.user.clone(),
                player_limit: *player_limit,
                version: 1,
                state: TournamentState::Open,
                created_at: e.time,
            }));
            return Ok(());
        }
        let Some(Packed(info)) = &mut self.info else {
            return Err(Refusal::UnknownTournament);
        };
        let organiser = info.organiser == e.user;
        let open = info.state == TournamentState::Open;
        match &e.action {
            TournamentAction::Create { .. } => unreachable!("handled above"),
            TournamentAction::Rename { name, version } => {
                if !organiser {
                    return Err(Refusal::NotOrganiser);
                }
                if *version != info.version {
                    return Err(Refusal::StaleVersion);
                }
                info.name.clone_from(name);
                info.version += 1;
                Ok(())
            }
            TournamentAction::Close {} if !organiser => Err(Refusal::NotOrganiser),
            _ if !open => Err(Refusal::Drawn),
            TournamentAction::Close {} => Ok(()),
            TournamentAction::Join { display_name } => {
                if self.players.contains_key(&e.user) {
                    return Err(Refusal::AlreadyJoined);
                }
                if self.players.len() >= info.player_limit as usize {
                    return Err(Refusal::Full);
                }
                let place = self.players.len() as u32 + 1;
                self.players.insert(
                    e.user.clone(),
                    Packed(TournamentPlayer {
                        user: e.user.clone(),
                        display_name: display_name.clone(),
                        team: None,
                        place,
                    }),
                );
                Ok(())
            }
            TournamentAction::Choose { team } => {
                let Some(Packed(player)) = self.players.get_mut(&e.user) else {
                    return Err(Refusal::NotAPlayer);
                };
                match self.teams.get(team) {
                    Some(holder) if *holder != e.user => return Err(Refusal::TeamTaken),
                    Some(_) => return Ok(()),
                    None => {}
                }
                if let Some(old) = player.team.replace(team.clone()) {
                    self.teams.remove(&old);
                }
                self.teams.insert(team.clone(), e.user.clone());
                Ok(())
            }
        }
    }

    /// Draws once every place is taken and every player has chosen, or at
    /// once when `closing`.
    fn draw_if_due(&mut self, closing: bool) {
        let Some(Packed(info)) = &mut self.info else {
            return;
        };
        if info.state != TournamentState::Open {
            return;
        }
        let full = self.players.len() == info.player_limit as usize;
        let chosen = self.players.values().all(|p| p.team.is_some());
        if !(closing || full && chosen) {
            return;
        }
        let mut drawn: Vec<&TournamentPlayer> = self
            .players
            .values()
            .map(|p| &p.0)
            .filter(|p| p.team.is_some())
            .collect();
        drawn.sort_by_key(|p| p.place);
        let teams = drawn.iter().filter_map(|p| p.team.clone()).collect();
        let assignments = drawn
            .iter()
            .zip(deal(self.seed, teams))
            .map(|(p, team)| Assignment {
                user: p.user.clone(),
                team,
            })
            .collect();
        info.state = TournamentState::Drawn;
        self.draw = Some(Packed(Draw {
            seed: format!("{:016x}", self.seed),
            assignments,
        }));
    }

    /// The tournament's rows other than outcomes.
    pub fn rows(&self) -> Vec<TournamentRow> {
        self.info
            .iter()
            .cloned()
            .map(TournamentRow::Info)
            .chain(self.players.values().cloned().map(TournamentRow::Player))
            .chain(self.draw.iter().cloned().map(TournamentRow::Draw))
            .collect()
    }
}

/// The tournaments' state on one worker, as a snapshot holds it: each
/// tournament and the order of its last event.
pub type TournamentsState = BTreeMap<String, (Tournament, i64)>;

/// Every tournament's view, as `(tournament, row)`.
pub fn tournaments<'s, T>(
    events: VecCollection<'s, T, TournamentInput>,
) -> VecCollection<'s, T, (String, TournamentRow)>
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
{
    tournaments_durable(events, Checkpoint::none())
}

/// [`tournaments`] that writes its state at snapshot points through
/// `checkpoint` and starts from what it restored; a restored tournament
/// emits nothing until its next event (its rows are in the changelog).
pub fn tournaments_durable<'s, T>(
    events: VecCollection<'s, T, TournamentInput>,
    checkpoint: Checkpoint<TournamentsState>,
) -> VecCollection<'s, T, (String, TournamentRow)>
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
{
    fold_in_order(
        events,
        "Tournaments",
        checkpoint,
        |all: &mut TournamentsState, batch, out| {
            let mut touched: BTreeMap<String, Vec<TournamentRow>> = BTreeMap::new();
            for (id, (order, event)) in batch {
                let (state, last) = all.entry(id.clone()).or_default();
                *last = order;
                touched.entry(id.clone()).or_insert_with(|| state.rows());
                let outcome = state.apply(&id, &event);
                out.push(((id, TournamentRow::Outcome(Packed(outcome))), 1));
            }
            for (id, before) in touched {
                changed_rows(&id, &before, &all[&id].0.rows(), out);
            }
        },
    )
}

/// The views, the plain way: each tournament's events sorted by order and
/// applied one by one; its rows and every outcome.
pub fn reference(events: &[TournamentInput]) -> BTreeMap<String, Vec<TournamentRow>> {
    in_order_by_key(events)
        .into_iter()
        .map(|(id, list)| {
            let mut state = Tournament::default();
            let mut rows: Vec<TournamentRow> = list
                .into_iter()
                .map(|(_, e)| TournamentRow::Outcome(Packed(state.apply(id, e))))
                .collect();
            rows.extend(state.rows());
            rows.sort();
            (id.to_owned(), rows)
        })
        .collect()
}
