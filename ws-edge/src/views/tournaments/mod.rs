//! The tournament view (LCT draw), rebuilt from `pace.tournaments`, and its
//! routes. Players and organisers act over HTTP; the edge writes their
//! event to `pace.tournament` and answers with what the tournaments job
//! decided (the event's outcome, in Kafka order). Everyone on a
//! tournament's page follows it over WebSocket (`view: "tournament"`):
//! a snapshot, then a delta per change, with the outcomes of the events.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /api/tournaments` | `[{id, name, organiser, player_limit, players, state, version, seq}]` |
//! | `GET /api/tournaments/{id}` | `{view, id, seq, tournament, players, draw}` (the snapshot frame's body) |
//! | `GET /api/tournaments/{id}/qr.svg` | the join link (`/?tournament={id}` on this host) as a QR code |
//! | `POST /api/tournaments` `{"id","name","player_limit"}` | 201 once the job made it this request's; 409 `exists` |
//! | `POST /api/tournaments/{id}/join` `{"display_name"}` | 200; 409 `full`, `already_joined`, `drawn` |
//! | `POST /api/tournaments/{id}/choose` `{"team"}` | 200; 409 `team_taken`, `drawn`; 403 `not_a_player` |
//! | `POST /api/tournaments/{id}/rename` `{"name","version"}` | 200; 409 `stale_version`; 403 `not_organiser` |
//! | `POST /api/tournaments/{id}/close` `{}` | 200 (the draw is made); 403 `not_organiser` |
//!
//! Every action needs a token and takes from the user's event budget (429
//! past it). A body may carry `client_msg_id`: a retry with the same one is
//! not applied twice and gets the first outcome. A refusal is
//! `{"error", "code"}`; an action not decided within [`DECIDE_WAIT`] gets
//! 202 (it is in Kafka and will be; the WebSocket view shows it). An action
//! on a tournament this edge does not know is 404 and is not sent. The
//! routes are in `http.rs`.

pub mod frames;
pub(crate) mod http;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use schemas::Topics;
use schemas::tournament::{
    Draw, Outcome, TournamentChange, TournamentInfo, TournamentPlayer, TournamentState,
};
use serde::Serialize;
use tokio::sync::Notify;
use warp::Filter;

use self::frames::{TournamentDelta, TournamentSnapshot};
use crate::protocol::ViewKind;
use crate::protocol::{ErrorCode, Frame, Refused};
use crate::views::feed::Feed;
use crate::views::live::{
    Changelog, Context, First, Key, LiveView, Routes, Snapshot, Subscribed, ViewModule,
};

/// Outcomes held per tournament, for the requests waiting on them.
pub const OUTCOMES_HELD: usize = 256;
/// How long an action waits for the job's decision before it answers 202.
pub const DECIDE_WAIT: Duration = Duration::from_secs(10);
/// Largest request body, bytes.
pub const MAX_BODY: usize = 4 * 1024;

/// What `GET /api/tournaments` lists for a tournament.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TournamentSummary {
    /// Tournament id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Who created it.
    pub organiser: String,
    /// How many players it takes.
    pub player_limit: u32,
    /// How many have joined.
    pub players: usize,
    /// Open or drawn.
    pub state: TournamentState,
    /// What a rename is based on.
    pub version: u64,
    /// The view's seq.
    pub seq: u64,
}

#[derive(Default)]
struct TournamentView {
    info: Option<TournamentInfo>,
    /// By user.
    players: BTreeMap<String, TournamentPlayer>,
    draw: Option<Draw>,
    /// Version, seq, subscribers and snapshot.
    feed: Feed,
    /// The latest outcomes, oldest first.
    outcomes: VecDeque<Outcome>,
    /// Notified after each change of this tournament (for the requests
    /// waiting on an outcome).
    changed: Arc<tokio::sync::Notify>,
}

impl TournamentView {
    fn players(&self) -> Vec<&TournamentPlayer> {
        let mut players: Vec<&TournamentPlayer> = self.players.values().collect();
        players.sort_by_key(|p| p.place);
        players
    }

    fn body<'a>(&'a self, id: &'a str) -> TournamentSnapshot<'a> {
        TournamentSnapshot::Tournament {
            id,
            seq: self.feed.seq(),
            tournament: self.info.as_ref(),
            players: self.players(),
            draw: self.draw.as_ref(),
        }
    }

    fn snapshot_frame(&self, id: &str) -> Frame {
        self.feed
            .snapshot(|| crate::protocol::snapshot(&self.body(id)))
    }
}

/// The tournaments this edge serves.
#[derive(Default)]
pub struct Tournaments {
    map: RwLock<BTreeMap<String, TournamentView>>,
    /// Notified when a tournament is first seen (a create's outcome is the
    /// first change of its tournament).
    appeared: Arc<tokio::sync::Notify>,
}

impl Tournaments {
    /// Applies a change from the changelog and broadcasts it. Every change
    /// is applied, in changelog order: its parts only ever replace what
    /// they name, so a change written again (a pipeline restarted from a
    /// snapshot writes the changes since it again, batched by other epochs,
    /// so under seqs it used before) brings the view to the pipeline's
    /// state. A change that does not follow the held seq (that, or a view
    /// rebuilt from 1) goes to subscribers as a fresh snapshot.
    pub fn apply(&self, change: TournamentChange, origin_ms: Option<i64>) {
        let mut map = self.map.write().expect("tournaments lock");
        let new = !map.contains_key(&change.tournament);
        let view = map.entry(change.tournament.clone()).or_default();
        let contiguous = change.seq == view.feed.seq() + 1;
        if change.seq == 1 {
            view.info = None;
            view.players.clear();
            view.draw = None;
        }
        if let Some(info) = &change.info {
            view.info = Some(info.clone());
        }
        for p in &change.players {
            view.players.insert(p.user.clone(), p.clone());
        }
        if let Some(d) = &change.draw {
            view.draw = Some(d.clone());
        }
        for o in &change.outcomes {
            view.outcomes.push_back(o.clone());
            if view.outcomes.len() > OUTCOMES_HELD {
                view.outcomes.pop_front();
            }
        }
        view.feed.advance(change.seq);
        if view.feed.heard() {
            let frame = if contiguous {
                crate::protocol::delta(&TournamentDelta::Tournament {
                    id: &change.tournament,
                    seq: change.seq,
                    tournament: change.info.as_ref(),
                    players: &change.players,
                    draw: change.draw.as_ref(),
                    outcomes: &change.outcomes,
                })
            } else {
                view.snapshot_frame(&change.tournament)
            };
            view.feed.send(frame, contiguous, origin_ms);
        }
        let changed = view.changed.clone();
        drop(map);
        changed.notify_waiters();
        if new {
            self.appeared.notify_waiters();
        }
    }

    /// Whether the tournament exists here.
    pub fn exists(&self, id: &str) -> bool {
        let map = self.map.read().expect("tournaments lock");
        map.get(id).is_some_and(|v| v.info.is_some())
    }

    /// Every tournament, by id.
    pub fn list(&self) -> Vec<TournamentSummary> {
        let map = self.map.read().expect("tournaments lock");
        map.iter()
            .filter_map(|(id, v)| {
                let info = v.info.as_ref()?;
                Some(TournamentSummary {
                    id: id.clone(),
                    name: info.name.clone(),
                    organiser: info.organiser.clone(),
                    player_limit: info.player_limit,
                    players: v.players.len(),
                    state: info.state,
                    version: info.version,
                    seq: v.feed.seq(),
                })
            })
            .collect()
    }

    /// A tournament as JSON (the snapshot frame's body).
    pub fn get(&self, id: &str) -> Option<serde_json::Value> {
        let map = self.map.read().expect("tournaments lock");
        let v = map.get(id).filter(|v| v.info.is_some())?;
        Some(serde_json::to_value(v.body(id)).expect("tournaments serialize"))
    }

    /// The outcome of `user`'s request `client_msg_id` to `id`, once the
    /// job decided it; waits up to `within`, woken only by changes of that
    /// tournament (or by its first one).
    pub async fn outcome(
        &self,
        id: &str,
        user: &str,
        client_msg_id: &str,
        within: Duration,
    ) -> Option<Outcome> {
        crate::input::decision::wait(within, || self.decided(id, user, client_msg_id)).await
    }

    /// The outcome of `user`'s request `client_msg_id` to `id`, or what
    /// announces the next change that could bring it: the tournament's
    /// changes, or its first appearance.
    pub fn decided(
        &self,
        id: &str,
        user: &str,
        client_msg_id: &str,
    ) -> Result<Outcome, Arc<Notify>> {
        match self.look(id, user, client_msg_id) {
            Look::Decided(o) => Ok(o),
            Look::Waiting(notify) => Err(notify),
            Look::Unknown => Err(self.appeared.clone()),
        }
    }

    /// What is known of `user`'s request `client_msg_id` to `id`.
    fn look(&self, id: &str, user: &str, client_msg_id: &str) -> Look {
        let map = self.map.read().expect("tournaments lock");
        let Some(v) = map.get(id) else {
            return Look::Unknown;
        };
        let found = v
            .outcomes
            .iter()
            .rev()
            .find(|o| o.user == user && o.client_msg_id.as_deref() == Some(client_msg_id));
        match found {
            Some(o) => Look::Decided(o.clone()),
            None => Look::Waiting(v.changed.clone()),
        }
    }
}

/// What [`Tournaments::look`] finds.
enum Look {
    /// The job's decision.
    Decided(Outcome),
    /// Not yet; this tournament's changes are notified here.
    Waiting(Arc<tokio::sync::Notify>),
    /// No such tournament here yet.
    Unknown,
}

fn unknown(id: &str) -> Refused {
    Refused(
        ErrorCode::UnknownTournament,
        format!("no tournament {id:?}"),
    )
}

impl LiveView for Tournaments {
    fn subscribe(
        &self,
        key: &Key,
        _user: Option<&str>,
        _since: Option<u64>,
    ) -> Result<Subscribed, Refused> {
        let map = self.map.read().expect("tournaments lock");
        let v = map
            .get(&key.id)
            .filter(|v| v.info.is_some())
            .ok_or_else(|| unknown(&key.id))?;
        Ok(v.feed.subscribe(First::Snapshot(v.snapshot_frame(&key.id))))
    }

    fn resnapshot(&self, key: &Key, _seq: u64) -> Option<Snapshot> {
        let map = self.map.read().expect("tournaments lock");
        let v = map.get(&key.id)?;
        Some(v.feed.fresh(v.snapshot_frame(&key.id)))
    }
}

impl ViewModule for Tournaments {
    fn kinds(&self) -> &'static [ViewKind] {
        &[ViewKind::Tournament]
    }

    fn changelogs(self: Arc<Self>, topics: &Topics) -> Vec<Changelog> {
        vec![Changelog::json(
            &topics.tournaments,
            "tournament change",
            move |c, o| self.apply(c, o),
        )]
    }

    fn routes(self: Arc<Self>, context: &Context) -> Routes {
        http::routes(self, context.callers.clone()).boxed()
    }
}

#[cfg(test)]
mod tests {
    use schemas::Timestamp;
    use schemas::tournament::Refusal;

    use super::*;

    fn info(version: u64) -> TournamentInfo {
        TournamentInfo {
            id: "cup".into(),
            name: "Cup".into(),
            organiser: "ann".into(),
            player_limit: 2,
            version,
            state: TournamentState::Open,
            created_at: Timestamp(1_780_000_000_000),
        }
    }

    fn change(seq: u64, info: Option<TournamentInfo>, outcomes: Vec<Outcome>) -> TournamentChange {
        TournamentChange {
            tournament: "cup".into(),
            seq,
            info,
            players: vec![],
            draw: None,
            outcomes,
        }
    }

    fn outcome(id: &str, refused: Option<Refusal>) -> Outcome {
        Outcome {
            user: "ann".into(),
            client_msg_id: Some(id.into()),
            kind: "rename".into(),
            refused,
        }
    }

    #[tokio::test]
    async fn follows_the_changelog_and_answers_requests_by_their_outcome() {
        let t = Tournaments::default();
        assert!(!t.exists("cup"));
        t.apply(change(1, Some(info(1)), vec![]), None);
        let key = Key {
            view: crate::protocol::ViewKind::Tournament,
            id: "cup".into(),
            participant: None,
            window: None,
        };
        let mut s = t.subscribe(&key, None, None).unwrap();
        let First::Snapshot(f) = &s.first else {
            panic!("a snapshot first")
        };
        assert!(f.starts_with(r#"{"type":"snapshot","view":"tournament","id":"cup","seq":1"#));
        t.apply(change(2, Some(info(2)), vec![outcome("r1", None)]), None);
        let d = s.changes.as_mut().unwrap().try_recv().unwrap();
        assert!(
            d.frame
                .starts_with(r#"{"type":"delta","view":"tournament","id":"cup","seq":2"#)
        );
        assert!(s.changes.as_mut().unwrap().try_recv().is_err());
        // Written again after a pipeline restart, under a seq used before,
        // with more in it: applied, and sent as a snapshot.
        let mut again = change(2, None, vec![]);
        again.players.push(TournamentPlayer {
            user: "bob".into(),
            display_name: "Bob".into(),
            team: Some("Ajax".into()),
            place: 1,
        });
        t.apply(again, None);
        let f = s.changes.as_mut().unwrap().try_recv().unwrap();
        assert!(
            f.frame
                .starts_with(r#"{"type":"snapshot","view":"tournament","id":"cup","seq":2"#)
        );
        assert!(f.frame.contains("Ajax"), "{}", f.frame);
        assert_eq!(t.list()[0].players, 1);
        let o = t
            .outcome("cup", "ann", "r1", Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(o.refused, None);
        assert!(
            t.outcome("cup", "ann", "r2", Duration::from_millis(10))
                .await
                .is_none()
        );
        assert_eq!(t.list()[0].version, 2);
        // A rebuilt view (seq 1 again) goes to subscribers as a snapshot.
        t.apply(change(1, Some(info(1)), vec![]), None);
        let again = s.changes.as_mut().unwrap().try_recv().unwrap();
        assert!(again.frame.starts_with(r#"{"type":"snapshot""#));
    }
}
