//! The race view: per race, the definition, the standings and splits at
//! the latest sequence number, the latest [`HISTORY`] delta frames (so a
//! client that comes back with `since` gets exactly what it missed), and a
//! bounded broadcast ring of [`Change`]s. A frame is encoded once and shared
//! by every subscriber; so is a snapshot, until the view changes again. A
//! participant's own view gets frames of its own, encoded only while
//! someone follows that participant; a window of the ranking (`window.rs`)
//! gets frames of its own, only when a change touches a rank inside it
//! (`windows.rs`). A client that missed more deltas than the edge holds
//! gets them read back from the changelog (`history.rs`). The race routes
//! are in `http.rs`, the tests in `tests.rs`.

pub mod frames;
pub mod history;
pub(crate) mod http;
pub mod query;
pub mod window;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use schemas::{
    Leader, RaceDefinition, RaceSummary, Split, SplitKey, StandingRow, StandingsChange, Topics,
};
use serde::Serialize;
use tokio::sync::broadcast;
use warp::Filter;

use self::frames::{ParticipantFrame, RaceDelta, RaceSnapshot};
use self::query::{Groups, StandingsQuery};
use crate::protocol::{ErrorCode, Frame, Refused, ServerFrame, ViewKind};
use crate::views::feed::Feed;
use crate::views::live::{
    Change, Changelog, Context, First, History, Key, LiveView, Routes, Snapshot, Subscribed,
    ViewModule,
};
use crate::views::race::window::{Order, Windows};
use windows::Moved;

/// Changes buffered per followed participant.
pub const PARTICIPANT_BUFFER: usize = 32;
/// Followed-participant channels a race holds before unfollowed ones go.
const PARTICIPANTS_PRUNE: usize = 1024;
/// Delta frames held per race for clients that resume with `since`…
pub const HISTORY: usize = 1024;
/// …and at most this many bytes of them.
pub const HISTORY_BYTES: usize = 8 << 20;

/// The frame that starts a resumed subscription: the deltas after `since`
/// follow it.
fn resumed_frame(id: &str, since: u64, seq: u64) -> Frame {
    ServerFrame::Resumed {
        view: ViewKind::Race,
        id,
        since,
        seq,
    }
    .encode()
}

struct RaceView {
    definition: Option<RaceDefinition>,
    names: HashMap<String, String>,
    /// Version, seq, subscribers, snapshot and the deltas held for `since`.
    feed: Feed,
    /// Each participant's row, as the changelog last gave it.
    rows: BTreeMap<String, StandingRow>,
    /// The ranking both ways (the changelog sends ranks apart from rows).
    order: Order,
    splits: BTreeMap<SplitKey, Split>,
    leader: Option<Leader>,
    participants: HashMap<String, broadcast::Sender<Change>>,
    /// The size of `participants` at which unfollowed channels are dropped
    /// on a subscribe (twice what was left the last time).
    prune_at: usize,
    /// The windows someone watches.
    windows: Windows,
    /// Where in the standings changelog the race's current run starts
    /// (its change with seq 1), if this edge read it.
    run_start: Option<(i32, i64)>,
}

impl RaceView {
    fn new() -> Self {
        Self {
            definition: None,
            names: HashMap::new(),
            feed: Feed::with_history(HISTORY, HISTORY_BYTES),
            rows: BTreeMap::new(),
            order: Order::default(),
            splits: BTreeMap::new(),
            leader: None,
            participants: HashMap::new(),
            prune_at: PARTICIPANTS_PRUNE,
            windows: Windows::default(),
            run_start: None,
        }
    }

    /// A row as clients see it: with its display name and its rank.
    fn shown(&self, row: &StandingRow) -> StandingRow {
        let mut row = row.clone();
        if let Some(n) = self.names.get(&row.participant) {
            row.name.clone_from(n);
        }
        row.rank = self.order.rank(&row.participant).or(row.rank);
        row
    }

    /// Every row, in rank order (rows whose rank has not come yet last).
    fn ranked(&self) -> Vec<StandingRow> {
        self.in_order().map(|r| self.shown(r)).collect()
    }

    /// Every row as the changelog gave it, in rank order (rows whose rank
    /// has not come yet last).
    fn in_order(&self) -> impl Iterator<Item = &StandingRow> {
        let ranked = self
            .order
            .ranked()
            .into_iter()
            .filter_map(|p| self.rows.get(p));
        let unranked = (self.rows.values()).filter(|r| self.order.rank(&r.participant).is_none());
        ranked.chain(unranked)
    }

    /// Splits by split index, then position.
    fn ordered_splits(&self) -> Vec<&Split> {
        let mut splits: Vec<&Split> = self.splits.values().collect();
        splits.sort_by_key(|s| (s.split, s.position));
        splits
    }

    fn snapshot_frame(&self, race: &str) -> Frame {
        self.feed.snapshot(|| {
            crate::protocol::snapshot(&RaceSnapshot::Race {
                id: race,
                seq: self.feed.seq(),
                window: None,
                rows: self.ranked(),
                splits: self.ordered_splits(),
                leader: self.leader.as_ref(),
            })
        })
    }

    /// The frames a client at `since` missed, if all of them are held.
    fn missed_since(&self, race: &str, since: u64) -> Option<Vec<Frame>> {
        let missed = self.feed.missed_since(since)?;
        let mut frames = vec![resumed_frame(race, since, self.feed.seq())];
        frames.extend(missed);
        Some(frames)
    }

    /// Applies `change` to the rows, ranks, splits and leader, and moves
    /// the feed to its seq; whether it followed the seq held before (a
    /// change with seq 1 starts the race's run again, from nothing).
    fn fold(&mut self, change: &StandingsChange) -> bool {
        let contiguous = change.seq == self.feed.seq() + 1;
        if change.seq == 1 {
            self.rows.clear();
            self.order.clear();
            self.splits.clear();
            self.leader = None;
        }
        for r in &change.ranks {
            self.order.set(&r.participant, r.rank);
        }
        for r in &change.upserts {
            if let Some(rank) = r.rank {
                self.order.set(&r.participant, rank);
            }
            self.rows.insert(r.participant.clone(), r.clone());
        }
        for p in &change.removes {
            self.rows.remove(p);
            self.order.remove(p);
        }
        for k in &change.split_removes {
            self.splits.remove(k);
        }
        for s in &change.splits {
            let key = SplitKey {
                participant: s.participant.clone(),
                split: s.split,
            };
            self.splits.insert(key, s.clone());
        }
        if let Some(l) = &change.leader {
            self.leader = Some(l.clone());
        }
        self.feed.advance(change.seq);
        contiguous
    }

    /// What the race's subscribers are sent for `change`, once folded in:
    /// its delta, or, after a jump, a snapshot.
    fn race_frame(&self, change: &StandingsChange, contiguous: bool) -> Frame {
        if contiguous {
            crate::protocol::delta(&RaceDelta::Race {
                id: &change.race,
                seq: self.feed.seq(),
                window: None,
                upserts: moved(self, change),
                removes: &change.removes,
                splits: change.splits.iter().collect(),
                split_removes: change.split_removes.iter().collect(),
                leader: change.leader.as_ref(),
            })
        } else {
            self.snapshot_frame(&change.race)
        }
    }

    fn participant_frame<'a>(
        &'a self,
        race: &'a str,
        participant: &'a str,
        splits: Vec<&'a Split>,
        split_removes: Vec<&'a SplitKey>,
    ) -> ParticipantFrame<'a> {
        ParticipantFrame {
            id: race,
            participant,
            seq: self.feed.seq(),
            row: self.rows.get(participant).map(|r| self.shown(r)),
            splits,
            split_removes,
            leader: self.leader.as_ref(),
        }
    }

    fn participant_snapshot(&self, race: &str, participant: &str) -> Frame {
        let mut splits: Vec<&Split> = self
            .splits
            .values()
            .filter(|s| s.participant == participant)
            .collect();
        splits.sort_by_key(|s| s.split);
        crate::protocol::snapshot(&RaceSnapshot::Participant(self.participant_frame(
            race,
            participant,
            splits,
            vec![],
        )))
    }
}

fn unknown_race(race: &str) -> Refused {
    Refused(ErrorCode::UnknownRace, format!("no race {race:?}"))
}

/// The rows a change moved or changed, as clients see them, in rank order:
/// a client holds whole rows, so a participant that was passed gets its
/// row again with the new rank.
fn moved(view: &RaceView, change: &StandingsChange) -> Vec<StandingRow> {
    let ids: BTreeSet<&str> = change
        .upserts
        .iter()
        .map(|r| r.participant.as_str())
        .chain(change.ranks.iter().map(|r| r.participant.as_str()))
        .collect();
    let mut rows: Vec<StandingRow> = ids
        .into_iter()
        .filter_map(|p| view.rows.get(p))
        .map(|r| view.shown(r))
        .collect();
    in_rank_order(&mut rows);
    rows
}

/// Sorts rows by rank; a row whose rank has not come yet goes last.
fn in_rank_order(rows: &mut [StandingRow]) {
    rows.sort_by(|a, b| {
        let key = |r: &StandingRow| r.rank.unwrap_or(u32::MAX);
        key(a)
            .cmp(&key(b))
            .then_with(|| a.participant.cmp(&b.participant))
    });
}

/// A standings row as `GET /api/races/{id}/standings` serves it: the row
/// and its distance behind the leader (the changelog and the frames carry
/// the leader instead, so that a leader's step is not a change of every row).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RankedRow {
    /// The row.
    #[serde(flatten)]
    pub row: StandingRow,
    /// Metres behind the leader (0 for the leader), where the race knows distance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_m: Option<f64>,
    /// Its place within the gender and category asked for, if any were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<u32>,
}

/// The races this edge serves.
#[derive(Default)]
pub struct Races {
    races: RwLock<BTreeMap<String, RaceView>>,
}

impl Races {
    /// Records a race definition (a later one replaces an earlier one).
    pub fn apply_race(&self, def: RaceDefinition) {
        let mut races = self.races.write().expect("views lock");
        let view = races.entry(def.id.clone()).or_insert_with(RaceView::new);
        view.names = def
            .participants
            .iter()
            .filter(|p| !p.name.is_empty())
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect();
        view.definition = Some(def);
    }

    /// Applies a standings change and broadcasts it. A change that does not
    /// follow the held sequence number (the pipeline was restarted and rebuilds
    /// from seq 1, or changes were missed) is applied and sent to subscribers
    /// as a fresh snapshot instead of a delta, and the history of deltas
    /// starts again after it.
    pub fn apply_standings(&self, change: StandingsChange) {
        self.apply_standings_from(change, None);
    }

    /// `Races::apply_standings` of a change whose oldest input record was
    /// produced at `origin_ms`.
    pub fn apply_standings_from(&self, change: StandingsChange, origin_ms: Option<i64>) {
        self.apply_standings_at(change, origin_ms, None);
    }

    /// `Races::apply_standings_from` of a change read at `place`
    /// (partition, offset) of the standings changelog: where a race's run
    /// starts (seq 1) is noted, to read its older deltas back from there.
    pub fn apply_standings_at(
        &self,
        change: StandingsChange,
        origin_ms: Option<i64>,
        place: Option<(i32, i64)>,
    ) {
        let mut races = self.races.write().expect("views lock");
        let view = races
            .entry(change.race.clone())
            .or_insert_with(RaceView::new);
        if change.seq == 1 {
            view.run_start = place;
        }
        // Everyone the change touches, and the ranks they held before and
        // after: only windows and followed participants need them.
        let touched: BTreeSet<&str> = if view.windows.0.is_empty() && view.participants.is_empty() {
            BTreeSet::new()
        } else {
            (change.upserts.iter().map(|r| r.participant.as_str()))
                .chain(change.ranks.iter().map(|r| r.participant.as_str()))
                .chain(change.removes.iter().map(String::as_str))
                .chain(change.splits.iter().map(|s| s.participant.as_str()))
                .chain(change.split_removes.iter().map(|k| k.participant.as_str()))
                .collect()
        };
        let mut ranks: Vec<u32> = if view.windows.0.is_empty() {
            Vec::new()
        } else {
            touched.iter().filter_map(|p| view.order.rank(p)).collect()
        };
        let held = view.feed.seq();
        let contiguous = view.fold(&change);
        if !contiguous {
            tracing::warn!(race = %change.race, held, got = change.seq, "standings sequence jumped; resending snapshot");
        }
        let (version, seq) = (view.feed.version(), view.feed.seq());
        let stamp = |frame| Change {
            version,
            seq,
            frame,
            origin_ms,
        };
        let frame = view.race_frame(&change, contiguous);
        view.feed.send(frame, contiguous, origin_ms);
        if !view.windows.0.is_empty() {
            ranks.extend(touched.iter().filter_map(|p| view.order.rank(p)));
            ranks.sort_unstable();
            ranks.dedup();
            let moved = Moved {
                change: &change,
                touched: &touched,
                ranks: &ranks,
                contiguous,
            };
            view.send_windows(&moved, &stamp);
        }
        if view.participants.is_empty() {
            return;
        }
        view.participants.retain(|_, tx| tx.receiver_count() > 0);
        let followed: Vec<&str> = if contiguous {
            touched.iter().copied().collect()
        } else {
            view.participants.keys().map(String::as_str).collect()
        };
        for p in followed {
            let Some(tx) = view.participants.get(p) else {
                continue;
            };
            let frame = if contiguous {
                let splits = change.splits.iter().filter(|s| s.participant == p);
                let removes = change.split_removes.iter().filter(|k| k.participant == p);
                crate::protocol::delta(&RaceDelta::Participant(view.participant_frame(
                    &change.race,
                    p,
                    splits.collect(),
                    removes.collect(),
                )))
            } else {
                view.participant_snapshot(&change.race, p)
            };
            let _ = tx.send(stamp(frame));
        }
    }

    /// Summaries of every defined race.
    pub fn races(&self) -> Vec<RaceSummary> {
        let races = self.races.read().expect("views lock");
        races
            .values()
            .filter_map(|v| {
                let d = v.definition.as_ref()?;
                Some(RaceSummary {
                    id: d.id.clone(),
                    name: d.name.clone(),
                    kind: d.kind.name().to_owned(),
                    participants: v.rows.len().max(d.participants.len()),
                    start: d.start,
                })
            })
            .collect()
    }

    /// A race's definition.
    pub fn definition(&self, race: &str) -> Option<RaceDefinition> {
        self.races
            .read()
            .expect("views lock")
            .get(race)?
            .definition
            .clone()
    }

    /// The standings of a defined race, in rank order, each with its
    /// distance behind the leader, with their sequence number.
    pub fn standings(&self, race: &str) -> Option<(u64, Vec<RankedRow>)> {
        let (seq, rows, _) = self.standings_where(race, &StandingsQuery::default())?;
        Some((seq, rows))
    }

    /// [`Self::standings`] narrowed by `query`, each row with its place in
    /// the group asked for; and how many rows the query keeps in all.
    pub fn standings_where(
        &self,
        race: &str,
        query: &StandingsQuery,
    ) -> Option<(u64, Vec<RankedRow>, u32)> {
        let races = self.races.read().expect("views lock");
        let v = races.get(race).filter(|v| v.definition.is_some())?;
        let lead = v.leader.as_ref().and_then(|l| l.distance_m);
        let (kept, total) = query.apply(v.in_order(), |r| v.shown(r));
        let rows = (kept.into_iter())
            .map(|(row, place)| RankedRow {
                gap_m: lead.map(|d| ((d - row.distance_m) * 1000.0).round() / 1000.0),
                row,
                place,
            })
            .collect();
        Some((v.feed.seq(), rows, total))
    }

    /// The genders and categories of a defined race's rows.
    pub fn groups(&self, race: &str) -> Option<Groups> {
        let races = self.races.read().expect("views lock");
        let v = races.get(race).filter(|v| v.definition.is_some())?;
        Some(Groups::of(v.rows.values()))
    }

    /// The splits of a defined race (by split, then position), with the view's sequence number.
    pub fn splits(&self, race: &str) -> Option<(u64, Vec<Split>)> {
        let races = self.races.read().expect("views lock");
        let v = races.get(race).filter(|v| v.definition.is_some())?;
        Some((
            v.feed.seq(),
            v.ordered_splits().into_iter().cloned().collect(),
        ))
    }

    /// Subscribes to a defined race: a snapshot, or, if the client gives
    /// `since` and every delta after it is still held, a `resumed` frame and
    /// exactly those deltas; and the changes after them, taken together so
    /// nothing falls between.
    pub fn subscribe_race(&self, race: &str, since: Option<u64>) -> Option<Subscribed> {
        let races = self.races.read().expect("views lock");
        let v = races.get(race).filter(|v| v.definition.is_some())?;
        let first = since
            .and_then(|s| v.missed_since(race, s))
            .map_or_else(|| First::Snapshot(v.snapshot_frame(race)), First::Resumed);
        Some(v.feed.subscribe(first))
    }

    /// What a client of the whole race at `since` missed beyond the deltas
    /// this edge holds, if it can be read back from the changelog.
    pub fn gap(&self, race: &str, since: u64) -> Option<history::Gap> {
        let races = self.races.read().expect("views lock");
        let v = races.get(race).filter(|v| v.definition.is_some())?;
        let first = v.feed.first_held();
        if since + 1 >= first || since >= v.feed.seq() {
            return None; // held, or nothing missed
        }
        Some(history::Gap {
            race: race.to_owned(),
            start: v.run_start?,
            names: v.names.clone(),
            since,
            until: first - 1,
            max_bytes: HISTORY_BYTES,
        })
    }

    /// Subscribes to one participant of a defined race: a snapshot of their
    /// row and splits, then a frame whenever a change touches them.
    pub fn subscribe_participant(&self, race: &str, participant: &str) -> Option<Subscribed> {
        let mut races = self.races.write().expect("views lock");
        let v = races.get_mut(race).filter(|v| v.definition.is_some())?;
        let frame = v.participant_snapshot(race, participant);
        // Names come from clients: channels nobody follows go as the map
        // grows, also on a race that no longer changes.
        if v.participants.len() >= v.prune_at {
            v.participants.retain(|_, tx| tx.receiver_count() > 0);
            v.prune_at = (2 * v.participants.len()).max(PARTICIPANTS_PRUNE);
        }
        let changes = v
            .participants
            .entry(participant.to_owned())
            .or_insert_with(|| broadcast::channel(PARTICIPANT_BUFFER).0)
            .subscribe();
        Some(Subscribed {
            first: First::Snapshot(frame),
            version: v.feed.version(),
            seq: v.feed.seq(),
            changes: Some(changes),
        })
    }

    /// A fresh snapshot of a race (for a subscriber that fell behind).
    pub fn race_snapshot(&self, race: &str) -> Option<Snapshot> {
        let races = self.races.read().expect("views lock");
        let v = races.get(race)?;
        Some(v.feed.fresh(v.snapshot_frame(race)))
    }

    /// A fresh snapshot of one participant.
    pub fn participant_snapshot(&self, race: &str, participant: &str) -> Option<Snapshot> {
        let races = self.races.read().expect("views lock");
        let v = races.get(race)?;
        Some(v.feed.fresh(v.participant_snapshot(race, participant)))
    }
}

impl LiveView for Races {
    /// A race, or one participant of it (with `key.participant`).
    fn subscribe(
        &self,
        key: &Key,
        _user: Option<&str>,
        since: Option<u64>,
    ) -> Result<Subscribed, Refused> {
        match (&key.participant, &key.window) {
            (_, Some(w)) => return self.subscribe_window(&key.id, w),
            (None, None) => self.subscribe_race(&key.id, since),
            (Some(p), None) => self.subscribe_participant(&key.id, p),
        }
        .ok_or_else(|| unknown_race(&key.id))
    }

    /// The whole race's deltas older than the edge holds, from the
    /// standings changelog (`history.rs`).
    fn history(&self, key: &Key, since: u64, kafka: &ingest::KafkaConfig) -> Option<History> {
        if key.participant.is_some() || key.window.is_some() {
            return None;
        }
        let gap = self.gap(&key.id, since)?;
        let kafka = kafka.clone();
        Some(Box::new(move || {
            let until = gap.until;
            match history::read(&kafka, &kafka.topics.standings, &gap) {
                Ok(frames) => frames.map(|f| (f, until)),
                Err(e) => {
                    tracing::warn!(race = %gap.race, error = %e, "race history not read; a snapshot instead");
                    None
                }
            }
        }))
    }

    fn resnapshot(&self, key: &Key, _seq: u64) -> Option<Snapshot> {
        match (&key.participant, &key.window) {
            (_, Some(w)) => self.window_snapshot(&key.id, w),
            (None, None) => self.race_snapshot(&key.id),
            (Some(p), None) => self.participant_snapshot(&key.id, p),
        }
    }
}

impl ViewModule for Races {
    fn kinds(&self) -> &'static [ViewKind] {
        &[ViewKind::Race, ViewKind::Participant]
    }

    fn changelogs(self: Arc<Self>, topics: &Topics) -> Vec<Changelog> {
        let races = self.clone();
        vec![
            Changelog::raw(&topics.races, move |raw| {
                match schemas::decode::<RaceDefinition>(&raw.payload) {
                    Ok(def) => races.apply_race(def),
                    // The pipeline dead-letters these; the edge just skips them.
                    Err(e) => {
                        tracing::debug!(offset = raw.offset, error = %e, "skipping bad race definition");
                    }
                }
            }),
            Changelog::json_at(&topics.standings, "standings change", move |c, o, at| {
                self.apply_standings_at(c, o, Some(at));
            }),
        ]
    }

    fn routes(self: Arc<Self>, _: &Context) -> Routes {
        http::routes(self).boxed()
    }
}

mod windows;

#[cfg(test)]
mod tests;
