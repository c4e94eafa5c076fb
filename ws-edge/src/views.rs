//! The edge's cache of the views, and the frames it sends.
//!
//! Per race: the definition, the standings at the latest sequence number, and
//! a bounded broadcast channel of encoded frames. A frame is encoded once and
//! shared by every subscriber. A subscriber that falls more than
//! [`FRAME_BUFFER`] frames behind is not sent the backlog: it gets a fresh
//! snapshot instead (see `server.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use schemas::{RaceDefinition, RaceSummary, Split, SplitKey, StandingRow, StandingsChange};
use serde::Serialize;
use tokio::sync::broadcast;

/// Frames buffered per race for slow subscribers.
pub const FRAME_BUFFER: usize = 256;

/// An encoded frame, shared by all subscribers.
pub type Frame = Arc<str>;

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Out<'a> {
    Snapshot {
        race: &'a str,
        seq: u64,
        rows: Vec<StandingRow>,
        splits: Vec<&'a Split>,
    },
    Delta {
        race: &'a str,
        seq: u64,
        upserts: Vec<StandingRow>,
        removes: &'a [String],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        splits: &'a [Split],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        split_removes: &'a [SplitKey],
    },
}

/// An error frame: `{"type":"error","code":…,"message":…}`.
pub fn error_frame(code: &str, message: &str) -> String {
    serde_json::json!({"type": "error", "code": code, "message": message}).to_string()
}

struct RaceView {
    definition: Option<RaceDefinition>,
    names: HashMap<String, String>,
    seq: u64,
    rows: BTreeMap<String, StandingRow>,
    splits: BTreeMap<SplitKey, Split>,
    tx: broadcast::Sender<Frame>,
}

impl RaceView {
    fn new() -> Self {
        Self {
            definition: None,
            names: HashMap::new(),
            seq: 0,
            rows: BTreeMap::new(),
            splits: BTreeMap::new(),
            tx: broadcast::channel(FRAME_BUFFER).0,
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
        let out = Out::Snapshot {
            race,
            seq: self.seq,
            rows: self.ranked(),
            splits: self.ordered_splits(),
        };
        serde_json::to_string(&out)
            .expect("frames serialize")
            .into()
    }
}

/// The views this edge serves.
#[derive(Default)]
pub struct Views {
    races: RwLock<BTreeMap<String, RaceView>>,
    /// The rooms.
    pub rooms: crate::rooms::Rooms,
    /// The calc results.
    pub tasks: crate::tasks::Tasks,
}

impl Views {
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
    /// as a fresh snapshot instead of a delta.
    pub fn apply_standings(&self, change: StandingsChange) {
        let mut races = self.races.write().expect("views lock");
        let view = races
            .entry(change.race.clone())
            .or_insert_with(RaceView::new);
        let contiguous = change.seq == view.seq + 1;
        if change.seq == 1 {
            view.rows.clear();
            view.splits.clear();
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
        view.seq = change.seq;
        let frame: Frame = if contiguous {
            let out = Out::Delta {
                race: &change.race,
                seq: change.seq,
                upserts: change.upserts.into_iter().map(|r| view.named(r)).collect(),
                removes: &change.removes,
                splits: &change.splits,
                split_removes: &change.split_removes,
            };
            serde_json::to_string(&out)
                .expect("frames serialize")
                .into()
        } else {
            view.snapshot_frame(&change.race)
        };
        // No subscribers is not an error.
        let _ = view.tx.send(frame);
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

    /// The standings of a defined race, in rank order, with their sequence number.
    pub fn standings(&self, race: &str) -> Option<(u64, Vec<StandingRow>)> {
        let races = self.races.read().expect("views lock");
        let v = races.get(race).filter(|v| v.definition.is_some())?;
        Some((v.seq, v.ranked()))
    }

    /// The splits of a defined race (by split, then position), with the view's sequence number.
    pub fn splits(&self, race: &str) -> Option<(u64, Vec<Split>)> {
        let races = self.races.read().expect("views lock");
        let v = races.get(race).filter(|v| v.definition.is_some())?;
        Some((v.seq, v.ordered_splits().into_iter().cloned().collect()))
    }

    /// A snapshot frame of a defined race and a subscription to the frames
    /// after it, taken together so nothing falls between them.
    pub fn subscribe(&self, race: &str) -> Option<(Frame, broadcast::Receiver<Frame>)> {
        let races = self.races.read().expect("views lock");
        let v = races.get(race).filter(|v| v.definition.is_some())?;
        Some((v.snapshot_frame(race), v.tx.subscribe()))
    }

    /// A fresh snapshot frame (for a subscriber that fell behind).
    pub fn snapshot(&self, race: &str) -> Option<Frame> {
        let races = self.races.read().expect("views lock");
        Some(races.get(race)?.snapshot_frame(race))
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
            gap_m: Some(0.0),
            gap_s: None,
            speed_mps: None,
            last_lap_s: None,
            last_seen: Timestamp(1_780_000_000_000),
            status: Status::Racing,
            eta: None,
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
        }
    }

    #[test]
    fn snapshot_then_deltas_in_sequence() {
        let v = Views::default();
        assert!(v.subscribe("r").is_none(), "undefined race");
        v.apply_race(def());
        let (snap, mut rx) = v.subscribe("r").unwrap();
        assert!(snap.contains(r#""type":"snapshot""#) && snap.contains(r#""seq":0"#));
        v.apply_standings(change(1, vec![row("a", 1, 5.0), row("b", 2, 3.0)], vec![]));
        v.apply_standings(change(2, vec![row("b", 1, 9.0), row("a", 2, 5.0)], vec![]));
        let d1 = rx.try_recv().unwrap();
        assert!(
            d1.starts_with(r#"{"type":"delta","race":"r","seq":1"#),
            "{d1}"
        );
        assert!(
            d1.contains(r#""name":"Ann""#),
            "names come from the definition"
        );
        assert!(rx.try_recv().unwrap().contains(r#""seq":2"#));
        let (seq, rows) = v.standings("r").unwrap();
        assert_eq!(seq, 2);
        assert_eq!(
            rows.iter()
                .map(|r| r.participant.as_str())
                .collect::<Vec<_>>(),
            ["b", "a"]
        );
        v.apply_standings(change(3, vec![], vec!["a"]));
        assert_eq!(v.standings("r").unwrap().1.len(), 1);
        assert_eq!(v.races()[0].participants, 1);
    }

    #[test]
    fn a_restarted_pipeline_resets_and_resends_a_snapshot() {
        let v = Views::default();
        v.apply_race(def());
        v.apply_standings(change(1, vec![row("a", 1, 5.0), row("b", 2, 3.0)], vec![]));
        let (_, mut rx) = v.subscribe("r").unwrap();
        v.apply_standings(change(1, vec![row("a", 1, 1.0)], vec![]));
        let f = rx.try_recv().unwrap();
        assert!(
            f.starts_with(r#"{"type":"snapshot","race":"r","seq":1"#),
            "{f}"
        );
        assert_eq!(v.standings("r").unwrap().1.len(), 1);
    }
}
