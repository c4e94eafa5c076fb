//! The race view: per race, the definition, the standings and splits at
//! the latest sequence number, the latest [`HISTORY`] delta frames (so a
//! client that comes back with `since` gets exactly what it missed), and a
//! bounded broadcast ring of [`Change`]s. A frame is encoded once and shared
//! by every subscriber; so is a snapshot, until the view changes again. A
//! participant's own view gets frames of its own, encoded only while
//! someone follows that participant. The race routes are in `race_http.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, RwLock};

use schemas::{Leader, RaceDefinition, RaceSummary, Split, SplitKey, StandingRow, StandingsChange};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::protocol::{
    ErrorCode, Frame, ParticipantFrame, Refused, ServerFrame, ViewDelta, ViewKind, ViewSnapshot,
};
use crate::view::{Change, FRAME_BUFFER, First, Key, LiveView, Snapshot, Subscribed};

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
    version: u64,
    seq: u64,
    rows: BTreeMap<String, StandingRow>,
    splits: BTreeMap<SplitKey, Split>,
    leader: Option<Leader>,
    /// Delta frames after a snapshot point, by seq, contiguous up to `seq`.
    history: VecDeque<(u64, Frame)>,
    history_bytes: usize,
    /// The snapshot of `version`, once someone asked for it.
    snapshot: Mutex<Option<(u64, Frame)>>,
    tx: broadcast::Sender<Change>,
    participants: HashMap<String, broadcast::Sender<Change>>,
    /// The size of `participants` at which unfollowed channels are dropped
    /// on a subscribe (twice what was left the last time).
    prune_at: usize,
}

impl RaceView {
    fn new() -> Self {
        Self {
            definition: None,
            names: HashMap::new(),
            version: 0,
            seq: 0,
            rows: BTreeMap::new(),
            splits: BTreeMap::new(),
            leader: None,
            history: VecDeque::new(),
            history_bytes: 0,
            snapshot: Mutex::new(None),
            tx: broadcast::channel(FRAME_BUFFER).0,
            participants: HashMap::new(),
            prune_at: PARTICIPANTS_PRUNE,
        }
    }

    fn named(&self, mut row: StandingRow) -> StandingRow {
        if let Some(n) = self.names.get(&row.participant) {
            row.name.clone_from(n);
        }
        row
    }

    fn ranked(&self) -> Vec<StandingRow> {
        let mut rows: Vec<StandingRow> =
            self.rows.values().map(|r| self.named(r.clone())).collect();
        rows.sort_by_key(|r| r.rank);
        rows
    }

    /// Splits by split index, then position.
    fn ordered_splits(&self) -> Vec<&Split> {
        let mut splits: Vec<&Split> = self.splits.values().collect();
        splits.sort_by_key(|s| (s.split, s.position));
        splits
    }

    fn snapshot_frame(&self, race: &str) -> Frame {
        let mut cached = self.snapshot.lock().expect("snapshot lock");
        if let Some((v, f)) = cached.as_ref()
            && *v == self.version
        {
            return f.clone();
        }
        let frame = ServerFrame::Snapshot(ViewSnapshot::Race {
            id: race,
            seq: self.seq,
            rows: self.ranked(),
            splits: self.ordered_splits(),
            leader: self.leader.as_ref(),
        })
        .encode();
        *cached = Some((self.version, frame.clone()));
        frame
    }

    /// The frames a client at `since` missed, if all of them are held.
    fn missed_since(&self, race: &str, since: u64) -> Option<Vec<Frame>> {
        let first = self.history.front().map_or(self.seq + 1, |(s, _)| *s);
        if since > self.seq || since + 1 < first {
            return None;
        }
        let mut frames = vec![resumed_frame(race, since, self.seq)];
        frames.extend(
            self.history
                .iter()
                .filter(|(s, _)| *s > since)
                .map(|(_, f)| f.clone()),
        );
        Some(frames)
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
            seq: self.seq,
            row: self.rows.get(participant).map(|r| self.named(r.clone())),
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
        ServerFrame::Snapshot(ViewSnapshot::Participant(self.participant_frame(
            race,
            participant,
            splits,
            vec![],
        )))
        .encode()
    }

    fn remember(&mut self, seq: u64, frame: Frame) {
        self.history_bytes += frame.len();
        self.history.push_back((seq, frame));
        while self.history.len() > HISTORY || self.history_bytes > HISTORY_BYTES {
            match self.history.pop_front() {
                Some((_, f)) => self.history_bytes -= f.len(),
                None => break,
            }
        }
    }

    fn forget(&mut self) {
        self.history.clear();
        self.history_bytes = 0;
    }
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

    /// [`Views::apply_standings`] of a change whose oldest input record was
    /// produced at `origin_ms`.
    pub fn apply_standings_from(&self, change: StandingsChange, origin_ms: Option<i64>) {
        let mut races = self.races.write().expect("views lock");
        let view = races
            .entry(change.race.clone())
            .or_insert_with(RaceView::new);
        let contiguous = change.seq == view.seq + 1;
        if change.seq == 1 {
            view.rows.clear();
            view.splits.clear();
            view.leader = None;
        }
        if !contiguous {
            tracing::warn!(race = %change.race, held = view.seq, got = change.seq, "standings sequence jumped; resending snapshot");
        }
        for p in &change.removes {
            view.rows.remove(p);
        }
        for r in &change.upserts {
            view.rows.insert(r.participant.clone(), r.clone());
        }
        for k in &change.split_removes {
            view.splits.remove(k);
        }
        for s in &change.splits {
            let key = SplitKey {
                participant: s.participant.clone(),
                split: s.split,
            };
            view.splits.insert(key, s.clone());
        }
        if let Some(l) = &change.leader {
            view.leader = Some(l.clone());
        }
        view.seq = change.seq;
        view.version += 1;
        let (version, seq) = (view.version, view.seq);
        let frame = if contiguous {
            let frame = ServerFrame::Delta(ViewDelta::Race {
                id: &change.race,
                seq,
                upserts: change
                    .upserts
                    .iter()
                    .map(|r| view.named(r.clone()))
                    .collect(),
                removes: &change.removes,
                splits: &change.splits,
                split_removes: &change.split_removes,
                leader: change.leader.as_ref(),
            })
            .encode();
            view.remember(seq, frame.clone());
            frame
        } else {
            view.forget();
            view.snapshot_frame(&change.race)
        };
        // No subscribers is not an error.
        let _ = view.tx.send(Change {
            version,
            seq,
            frame,
            origin_ms,
        });
        if view.participants.is_empty() {
            return;
        }
        view.participants.retain(|_, tx| tx.receiver_count() > 0);
        let touched: BTreeSet<&str> = if contiguous {
            change
                .upserts
                .iter()
                .map(|r| r.participant.as_str())
                .chain(change.removes.iter().map(String::as_str))
                .chain(change.splits.iter().map(|s| s.participant.as_str()))
                .chain(change.split_removes.iter().map(|k| k.participant.as_str()))
                .collect()
        } else {
            view.participants.keys().map(String::as_str).collect()
        };
        for p in touched {
            let Some(tx) = view.participants.get(p) else {
                continue;
            };
            let frame = if contiguous {
                let splits = change.splits.iter().filter(|s| s.participant == p);
                let removes = change.split_removes.iter().filter(|k| k.participant == p);
                ServerFrame::Delta(ViewDelta::Participant(view.participant_frame(
                    &change.race,
                    p,
                    splits.collect(),
                    removes.collect(),
                )))
                .encode()
            } else {
                view.participant_snapshot(&change.race, p)
            };
            let _ = tx.send(Change {
                version,
                seq,
                frame,
                origin_ms,
            });
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
        let races = self.races.read().expect("views lock");
        let v = races.get(race).filter(|v| v.definition.is_some())?;
        let lead = v.leader.as_ref().and_then(|l| l.distance_m);
        let rows = v
            .ranked()
            .into_iter()
            .map(|row| RankedRow {
                gap_m: lead.map(|d| ((d - row.distance_m) * 1000.0).round() / 1000.0),
                row,
            })
            .collect();
        Some((v.seq, rows))
    }

    /// The splits of a defined race (by split, then position), with the view's sequence number.
    pub fn splits(&self, race: &str) -> Option<(u64, Vec<Split>)> {
        let races = self.races.read().expect("views lock");
        let v = races.get(race).filter(|v| v.definition.is_some())?;
        Some((v.seq, v.ordered_splits().into_iter().cloned().collect()))
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
        Some(Subscribed {
            first,
            version: v.version,
            seq: v.seq,
            changes: Some(v.tx.subscribe()),
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
            version: v.version,
            seq: v.seq,
            changes: Some(changes),
        })
    }

    /// A fresh snapshot of a race (for a subscriber that fell behind).
    pub fn race_snapshot(&self, race: &str) -> Option<Snapshot> {
        let races = self.races.read().expect("views lock");
        let v = races.get(race)?;
        Some((v.version, v.seq, v.snapshot_frame(race)))
    }

    /// A fresh snapshot of one participant.
    pub fn participant_snapshot(&self, race: &str, participant: &str) -> Option<Snapshot> {
        let races = self.races.read().expect("views lock");
        let v = races.get(race)?;
        Some((v.version, v.seq, v.participant_snapshot(race, participant)))
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
        match &key.participant {
            None => self.subscribe_race(&key.id, since),
            Some(p) => self.subscribe_participant(&key.id, p),
        }
        .ok_or_else(|| Refused(ErrorCode::UnknownRace, format!("no race {:?}", key.id)))
    }

    fn resnapshot(&self, key: &Key, _seq: u64) -> Option<Snapshot> {
        match &key.participant {
            None => self.race_snapshot(&key.id),
            Some(p) => self.participant_snapshot(&key.id, p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::{Participant, RaceKind, Status, Timestamp};

    fn def() -> RaceDefinition {
        RaceDefinition {
            id: "r".into(),
            name: "R".into(),
            start: Timestamp(1_780_000_000_000),
            kind: RaceKind::TimingLines {
                lines: vec![schemas::TimingLine {
                    id: "l".into(),
                    name: String::new(),
                    ends: None,
                }],
            },
            laps: 1,
            cutoff: None,
            participants: vec![Participant {
                id: "a".into(),
                name: "Ann".into(),
            }],
            rules: Default::default(),
        }
    }

    fn row(p: &str, rank: u32, d: f64) -> StandingRow {
        StandingRow {
            race: "r".into(),
            rank,
            participant: p.into(),
            name: p.into(),
            distance_m: d,
            laps: None,
            leg: None,
            gap_s: None,
            speed_mps: None,
            last_lap_s: None,
            last_seen: Timestamp(1_780_000_000_000),
            status: Status::Racing,
            eta: None,
            position: None,
        }
    }

    fn change(seq: u64, upserts: Vec<StandingRow>, removes: Vec<&str>) -> StandingsChange {
        StandingsChange {
            race: "r".into(),
            seq,
            upserts,
            removes: removes.into_iter().map(String::from).collect(),
            splits: vec![],
            split_removes: vec![],
            leader: None,
        }
    }

    fn first(s: &Subscribed) -> Vec<Frame> {
        match &s.first {
            First::Snapshot(f) => vec![f.clone()],
            First::Resumed(frames) => frames.clone(),
        }
    }

    fn kinds(frames: &[Frame]) -> Vec<(String, u64)> {
        frames
            .iter()
            .map(|f| {
                let v: serde_json::Value = serde_json::from_str(f).unwrap();
                (
                    v["type"].as_str().unwrap().to_owned(),
                    v["seq"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    fn kind(frame: &Frame) -> (String, u64) {
        kinds(std::slice::from_ref(frame)).remove(0)
    }

    #[test]
    fn snapshot_then_deltas_in_sequence() {
        let v = Races::default();
        assert!(v.subscribe_race("r", None).is_none(), "undefined race");
        v.apply_race(def());
        let mut s = v.subscribe_race("r", None).unwrap();
        assert!(
            first(&s)[0].starts_with(r#"{"type":"snapshot","view":"race","id":"r","seq":0"#),
            "{}",
            first(&s)[0]
        );
        v.apply_standings(change(1, vec![row("a", 1, 5.0), row("b", 2, 3.0)], vec![]));
        v.apply_standings(change(2, vec![row("b", 1, 9.0), row("a", 2, 5.0)], vec![]));
        let d1 = s.changes.as_mut().unwrap().try_recv().unwrap();
        assert!(
            d1.frame
                .starts_with(r#"{"type":"delta","view":"race","id":"r","seq":1"#),
            "{}",
            d1.frame
        );
        assert!(
            d1.frame.contains(r#""name":"Ann""#),
            "names come from the definition"
        );
        assert_eq!(
            kind(&s.changes.as_mut().unwrap().try_recv().unwrap().frame),
            ("delta".into(), 2)
        );
        let (seq, rows) = v.standings("r").unwrap();
        assert_eq!(seq, 2);
        assert_eq!(
            rows.iter()
                .map(|r| r.row.participant.as_str())
                .collect::<Vec<_>>(),
            ["b", "a"]
        );
        v.apply_standings(change(3, vec![], vec!["a"]));
        assert_eq!(v.standings("r").unwrap().1.len(), 1);
        assert_eq!(v.races()[0].participants, 1);
    }

    #[test]
    fn the_leader_gives_the_distance_gaps_and_travels_in_the_frames() {
        let v = Races::default();
        v.apply_race(def());
        let mut s = v.subscribe_race("r", None).unwrap();
        let mut c = change(1, vec![row("a", 1, 10.0), row("b", 2, 7.5)], vec![]);
        c.leader = Some(Leader {
            participant: "a".into(),
            distance_m: Some(10.0),
        });
        v.apply_standings(c);
        // The leader steps on: one record, no row of b's.
        let mut c = change(2, vec![row("a", 1, 12.25)], vec![]);
        c.leader = Some(Leader {
            participant: "a".into(),
            distance_m: Some(12.25),
        });
        v.apply_standings(c);
        let gaps: Vec<(String, Option<f64>)> = v
            .standings("r")
            .unwrap()
            .1
            .into_iter()
            .map(|r| (r.row.participant, r.gap_m))
            .collect();
        assert_eq!(
            gaps,
            [("a".to_owned(), Some(0.0)), ("b".to_owned(), Some(4.75))]
        );
        let frame = |f: &Frame| serde_json::from_str::<serde_json::Value>(f).unwrap();
        let changes = s.changes.as_mut().unwrap();
        let d1 = frame(&changes.try_recv().unwrap().frame);
        let d2 = frame(&changes.try_recv().unwrap().frame);
        assert_eq!(d1["leader"]["distance_m"], 10.0);
        assert_eq!(d2["leader"]["distance_m"], 12.25);
        assert_eq!(d2["upserts"].as_array().unwrap().len(), 1);
        let snap = frame(&v.race_snapshot("r").unwrap().2);
        assert_eq!(snap["leader"]["participant"], "a");
        let p = frame(&first(&v.subscribe_participant("r", "b").unwrap())[0]);
        assert_eq!(p["leader"]["distance_m"], 12.25);
    }

    #[test]
    fn a_client_resumes_with_exactly_what_it_missed_or_a_snapshot() {
        let v = Races::default();
        v.apply_race(def());
        for seq in 1..=5 {
            v.apply_standings(change(seq, vec![row("a", 1, seq as f64)], vec![]));
        }
        let resume = |since| kinds(&first(&v.subscribe_race("r", Some(since)).unwrap()));
        let d = |s: u64| ("delta".to_owned(), s);
        assert_eq!(resume(2), [("resumed".into(), 5), d(3), d(4), d(5)]);
        assert_eq!(resume(5), [("resumed".to_owned(), 5)]);
        assert_eq!(resume(0)[1..], [d(1), d(2), d(3), d(4), d(5)]);
        // From the future (a pipeline that restarted): a snapshot.
        assert_eq!(resume(9), [("snapshot".to_owned(), 5)]);
        // Past the history: a snapshot.
        for seq in 6..=(HISTORY as u64 + 10) {
            v.apply_standings(change(seq, vec![row("a", 1, seq as f64)], vec![]));
        }
        let last = HISTORY as u64 + 10;
        assert_eq!(resume(3), [("snapshot".to_owned(), last)]);
        assert_eq!(resume(10).len(), HISTORY + 1);
        // A jump starts the history again.
        v.apply_standings(change(1, vec![row("a", 1, 1.0)], vec![]));
        assert_eq!(resume(last), [("snapshot".to_owned(), 1)]);
        assert_eq!(resume(1), [("resumed".to_owned(), 1)]);
    }

    #[test]
    fn a_participant_view_gets_only_changes_that_touch_them() {
        let v = Races::default();
        v.apply_race(def());
        v.apply_standings(change(1, vec![row("a", 1, 5.0), row("b", 2, 3.0)], vec![]));
        let mut s = v.subscribe_participant("r", "a").unwrap();
        let snap: serde_json::Value = serde_json::from_str(&first(&s)[0]).unwrap();
        assert_eq!(
            (
                &snap["type"],
                &snap["participant"],
                &snap["row"]["name"],
                &snap["seq"]
            ),
            (&"snapshot".into(), &"a".into(), &"Ann".into(), &1.into())
        );
        v.apply_standings(change(2, vec![row("b", 2, 4.0)], vec![]));
        assert!(
            s.changes.as_mut().unwrap().try_recv().is_err(),
            "b's change is not a's"
        );
        v.apply_standings(change(3, vec![], vec!["a"]));
        let f: serde_json::Value =
            serde_json::from_str(&s.changes.as_mut().unwrap().try_recv().unwrap().frame).unwrap();
        assert_eq!(
            (&f["type"], &f["seq"], &f["row"]),
            (&"delta".into(), &3.into(), &serde_json::Value::Null)
        );
        drop(s);
        v.apply_standings(change(4, vec![row("a", 1, 9.0)], vec![]));
        assert!(
            v.races.read().unwrap()["r"].participants.is_empty(),
            "unfollowed channels go"
        );
    }

    #[test]
    fn channels_of_unfollowed_participants_do_not_pile_up() {
        let v = Races::default();
        v.apply_race(def());
        for i in 0..5_000 {
            drop(v.subscribe_participant("r", &format!("p{i}")).unwrap());
        }
        let held = v.races.read().unwrap()["r"].participants.len();
        assert!(held <= PARTICIPANTS_PRUNE, "{held} channels held");
    }

    #[test]
    fn a_restarted_pipeline_resets_and_resends_a_snapshot() {
        let v = Races::default();
        v.apply_race(def());
        v.apply_standings(change(1, vec![row("a", 1, 5.0), row("b", 2, 3.0)], vec![]));
        let mut s = v.subscribe_race("r", None).unwrap();
        v.apply_standings(change(1, vec![row("a", 1, 1.0)], vec![]));
        let f = s.changes.as_mut().unwrap().try_recv().unwrap();
        assert!(
            f.frame
                .starts_with(r#"{"type":"snapshot","view":"race","id":"r","seq":1"#),
            "{}",
            f.frame
        );
        assert!(f.version > s.version);
        assert_eq!(v.standings("r").unwrap().1.len(), 1);
    }
}
