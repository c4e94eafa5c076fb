//! The standings job as the runtime runs it: GPS points, timing crossings
//! and race definitions in; per race and epoch a [`StandingsChange`] out to
//! `pace.standings`, with the race's next sequence number (in pieces of at
//! most [`MAX_CHANGE_ROWS`] rows, so no record outgrows the broker's limit):
//! the ranks and rows that changed and, when it moved, the leader.

use std::collections::{BTreeMap, HashMap};

use differential_dataflow::VecCollection;
use ingest::source::{DeadLetter, Envelope};
use schemas::{
    Entrant, GpsPoint, RaceDefinition, RankChange, Split, SplitKey, StandingRow, StandingsChange,
    Timestamp, TimingCrossing, Topics,
};
use timely::dataflow::operators::vec::Map;

use super::{
    Leader, Obs, Read, Refusal, Spec, SplitRow, Standing, ViewRow, crossing, entry, fix,
    race_standings_durable,
};
use crate::job::Job;
use crate::runtime::{Dataflow, Inputs, Time};

/// Standings and splits of every defined race.
pub struct Standings;

impl Job for Standings {
    const NAME: &'static str = "standings";
    type Row = ViewRow;
    type Change = StandingsChange;
    /// Each race's last sequence number.
    type Encoder = BTreeMap<String, u64>;
    /// The rows come from the rank stage, exchanged by race.
    const KEYED: bool = true;
    /// The rank stage gives each changed row once an epoch: its old
    /// version retracted, its new one inserted, never a row twice.
    const CONSOLIDATED: bool = true;

    fn changelog(topics: &Topics) -> &str {
        &topics.standings
    }

    fn encode(
        updates: Vec<((String, ViewRow), isize)>,
        seqs: &mut BTreeMap<String, u64>,
    ) -> Vec<(String, StandingsChange)> {
        standings_changes(updates, seqs)
            .into_iter()
            .map(|c| (c.race.clone(), c))
            .collect()
    }
}

impl Dataflow for Standings {
    fn dataflow<'s>(inputs: &mut Inputs<'s>) -> VecCollection<'s, Time, (String, ViewRow)> {
        let topics = inputs.topics().clone();
        // Each topic's records become what the track stage reads where
        // they are read (see `Read`).
        let reads = inputs
            .read(&topics.gps, |e: Envelope<GpsPoint>| {
                Read::Observation(fix(e.record).read_at(e.partition, e.offset))
            })
            .concat(inputs.read(&topics.timing, |e: Envelope<TimingCrossing>| {
                Read::Observation(crossing(e.record).read_at(e.partition, e.offset))
            }))
            .concat(inputs.read(&topics.entrants, |e: Envelope<Entrant>| {
                Read::Entrant(entry(&e.record, e.offset))
            }));
        let races = inputs.read(&topics.races, |e: Envelope<RaceDefinition>| {
            (e.record.id.clone(), (e.offset, Spec::new(e.record)))
        });
        let (views, refused) = race_standings_durable(reads, races, inputs.checkpoint("track"));
        inputs.dead_letters(refused.map(move |(r, _)| dead_letter(&topics, &r)));
        views
    }
}

/// The dead letter of a point that came too late: its topic, partition and
/// offset, and the point as its topic's record (re-encoded: the job keeps
/// what it judges, not the bytes; the archive's input datasets hold those).
fn dead_letter(topics: &Topics, r: &Refusal) -> DeadLetter {
    let o = &r.observation;
    let (topic, payload) = match &o.what {
        Obs::Fix { lat_e7, lon_e7 } => (
            &topics.gps,
            serde_json::to_vec(&GpsPoint {
                race: o.race.clone(),
                participant: o.participant.clone(),
                time: Timestamp(o.time_ms),
                lat: *lat_e7 as f64 / 1e7,
                lon: *lon_e7 as f64 / 1e7,
                elevation: None,
                accuracy: None,
            }),
        ),
        Obs::Cross { line } => (
            &topics.timing,
            serde_json::to_vec(&TimingCrossing {
                race: o.race.clone(),
                participant: o.participant.clone(),
                line: line.clone(),
                time: Timestamp(o.time_ms),
            }),
        ),
    };
    let (partition, offset) = o.origin.unwrap_or((-1, -1));
    DeadLetter {
        topic: topic.clone(),
        partition,
        offset,
        key: Some(format!("{}/{}", o.race, o.participant).into_bytes()),
        payload: payload.expect("records serialise"),
        reason: r.reason(),
        kind: r.kind(),
    }
}

/// Turns one epoch's consolidated view updates into one change per race.
///
/// Consolidated, each row comes at most once, so each participant's new
/// standing, new rank and new pass of a split at most once: the rows are
/// gathered as they come and sorted once per race (no map keyed by
/// participant, no copy of an id), in the order a reader applies them:
/// ranks by rank, rows and removals by participant, splits by participant
/// and split.
fn standings_changes(
    flat: Vec<((String, ViewRow), isize)>,
    seqs: &mut BTreeMap<String, u64>,
) -> Vec<StandingsChange> {
    #[derive(Default)]
    struct Change {
        ranks: Vec<RankChange>,
        upserts: Vec<StandingRow>,
        /// Standings retracted: removed, unless also upserted.
        retracted: Vec<String>,
        splits: Vec<Split>,
        /// Passes retracted: removed, unless also upserted.
        splits_retracted: Vec<SplitKey>,
        leader: Option<schemas::Leader>,
    }
    // The rows come grouped by race (as the rank stage made them), so the
    // last race is the one to look at first.
    let mut by_race: Vec<(String, Change)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for ((race, row), diff) in flat {
        let at = match by_race.last() {
            Some((last, _)) if *last == race => by_race.len() - 1,
            _ => *index.entry(race).or_insert_with_key(|race| {
                by_race.push((race.clone(), Change::default()));
                by_race.len() - 1
            }),
        };
        let (race, change) = &mut by_race[at];
        match row {
            ViewRow::Standing(s) if diff > 0 => change.upserts.push(standing_row(race, *s)),
            ViewRow::Standing(s) => change.retracted.push(s.participant),
            // A rank only retracted went with its participant's row.
            ViewRow::Rank(p) if diff > 0 => change.ranks.push(RankChange {
                participant: p.participant,
                rank: p.rank,
            }),
            ViewRow::Rank(_) => {}
            ViewRow::Split(s) if diff > 0 => change.splits.push(split_row(race, &s)),
            ViewRow::Split(s) => change.splits_retracted.push(SplitKey {
                participant: s.participant,
                split: s.split,
            }),
            // A leader that is only retracted went with the race's last row.
            ViewRow::Leader(l) if diff > 0 => change.leader = Some(leader(&l)),
            ViewRow::Leader(_) => {}
        }
    }
    by_race.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let by_race = by_race.into_iter().map(|(race, mut c)| {
        c.upserts
            .sort_unstable_by(|a, b| a.participant.cmp(&b.participant));
        let upserts = &c.upserts;
        c.retracted.retain(|p| {
            upserts
                .binary_search_by(|r| r.participant.as_str().cmp(p))
                .is_err()
        });
        c.retracted.sort_unstable();
        c.retracted.dedup();
        c.splits
            .sort_unstable_by(|a, b| split_key(a).cmp(&split_key(b)));
        let splits = &c.splits;
        c.splits_retracted.retain(|k| {
            splits
                .binary_search_by(|s| split_key(s).cmp(&(k.participant.as_str(), k.split)))
                .is_err()
        });
        c.splits_retracted.sort_unstable();
        c.splits_retracted.dedup();
        c.ranks.sort_unstable_by_key(|r| r.rank);
        (race, c)
    });
    let mut out = Vec::new();
    for (race, c) in by_race {
        let mut ranks = c.ranks;
        let mut upserts = c.upserts;
        let seq = seqs.entry(race.clone()).or_default();
        // A change of a big race goes out in pieces of at most
        // MAX_CHANGE_ROWS ranks, rows, removals and splits together, each
        // with the next sequence number, so that no record outgrows what the
        // broker takes (1 MB by default). Applied in order, the pieces make
        // the whole change; ranks go first, so that no row is ever held
        // without its rank.
        let mut removes = c.retracted;
        let mut splits = c.splits;
        let mut split_removes = c.splits_retracted;
        let mut leader = c.leader;
        loop {
            let mut room = MAX_CHANGE_ROWS;
            let ranks_now = take_front(&mut ranks, &mut room);
            let upserts_now = take_front(&mut upserts, &mut room);
            let removes_now = take_front(&mut removes, &mut room);
            let splits_now = take_front(&mut splits, &mut room);
            let split_removes_now = take_front(&mut split_removes, &mut room);
            *seq += 1;
            out.push(StandingsChange {
                race: race.clone(),
                seq: *seq,
                ranks: ranks_now,
                upserts: upserts_now,
                removes: removes_now,
                splits: splits_now,
                split_removes: split_removes_now,
                leader: leader.take(),
            });
            if ranks.is_empty()
                && upserts.is_empty()
                && removes.is_empty()
                && splits.is_empty()
                && split_removes.is_empty()
            {
                break;
            }
        }
    }
    out
}

/// The order of a change's splits: by participant, then split.
fn split_key(s: &Split) -> (&str, u32) {
    (s.participant.as_str(), s.split)
}

/// Most ranks, standings rows, removals and splits in one changelog record
/// (a row is about 300 bytes, a split or a rank less).
const MAX_CHANGE_ROWS: usize = 1000;

/// Takes up to `room` items off the front of `items`, leaving the rest in
/// order; `room` shrinks by as many.
fn take_front<T>(items: &mut Vec<T>, room: &mut usize) -> Vec<T> {
    let n = items.len().min(*room);
    *room -= n;
    let rest = items.split_off(n);
    std::mem::replace(items, rest)
}

/// The row of standing `s` (taken: its id moves into the row).
fn standing_row(race: &str, s: Standing) -> StandingRow {
    let seconds = |ms: i64| ms as f64 / 1000.0;
    StandingRow {
        race: race.to_owned(),
        rank: None,
        name: match s.listing.as_deref() {
            Some(l) if !l.name.is_empty() => l.name.clone(),
            _ => s.participant.clone(),
        },
        participant: s.participant,
        gender: s.listing.as_ref().and_then(|l| l.gender.clone()),
        category: s.listing.as_ref().and_then(|l| l.category.clone()),
        distance_m: s.progress_mm as f64 / 1000.0,
        laps: s.laps,
        leg: s.leg,
        gap_s: s.gap_ms.map(seconds),
        speed_mps: s.speed_mmps.map(|v| v as f64 / 1000.0),
        last_lap_s: s.last_lap_ms.map(seconds),
        last_seen: Timestamp(s.last_seen_ms),
        status: s.status,
        eta: s.eta_ms.map(Timestamp),
        position: s.position_e7.map(|(lat, lon)| schemas::LatLon {
            lat: lat as f64 / 1e7,
            lon: lon as f64 / 1e7,
        }),
    }
}

fn leader(l: &Leader) -> schemas::Leader {
    schemas::Leader {
        participant: l.participant.clone(),
        distance_m: l.progress_mm.map(|mm| mm as f64 / 1000.0),
    }
}

fn split_row(race: &str, s: &SplitRow) -> Split {
    Split {
        race: race.to_owned(),
        participant: s.participant.clone(),
        split: s.split,
        time: Timestamp(s.time_ms),
        position: s.position,
        gender_position: s.gender_position,
        category_position: s.category_position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::standings::Place;

    fn standing(i: u32) -> Standing {
        Standing {
            participant: format!("p{i:05}"),
            status: schemas::Status::Racing,
            progress_mm: 1_000_000 - i64::from(i),
            gap_ms: None,
            laps: None,
            leg: None,
            speed_mmps: None,
            last_lap_ms: None,
            last_seen_ms: 1_777_622_400_000,
            eta_ms: None,
            position_e7: None,
            listing: None,
        }
    }

    fn place(i: u32) -> ViewRow {
        ViewRow::Rank(Place {
            participant: format!("p{i:05}"),
            rank: i + 1,
        })
    }

    #[test]
    fn a_big_race_change_goes_out_in_pieces_with_consecutive_seqs() {
        // 1,005 rows and 1,005 ranks, a removal and 1,500 splits: 3,511
        // items, so 4 pieces.
        let runners = MAX_CHANGE_ROWS as u32 + 5;
        let split = |i: u32| SplitRow {
            participant: format!("p{i:05}"),
            split: 1,
            time_ms: i64::from(i),
            position: i + 1,
            gender_position: None,
            category_position: None,
        };
        let big = |row| (("big".to_owned(), row), 1);
        let updates: Vec<((String, ViewRow), isize)> = (0..runners)
            .rev()
            .flat_map(|i| [big(ViewRow::Standing(Box::new(standing(i)))), big(place(i))])
            .chain((0..1500).map(|i| big(ViewRow::Split(split(i)))))
            .chain([
                (
                    (
                        "big".to_owned(),
                        ViewRow::Standing(Box::new(standing(runners + 1))),
                    ),
                    -1,
                ),
                (("big".to_owned(), place(runners + 1)), -1),
            ])
            .collect();
        let mut seqs = BTreeMap::from([("big".to_owned(), 7)]);
        let changes = standings_changes(updates, &mut seqs);
        assert_eq!(
            changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
            [8, 9, 10, 11]
        );
        assert_eq!(seqs["big"], 11);
        for c in &changes {
            let items = c.ranks.len()
                + c.upserts.len()
                + c.removes.len()
                + c.splits.len()
                + c.split_removes.len();
            assert!(items <= MAX_CHANGE_ROWS, "{items} items in one record");
            assert!(serde_json::to_vec(c).unwrap().len() < 1_000_000);
            assert!(c.upserts.iter().all(|r| r.rank.is_none()));
        }
        // Every rank once, in rank order, each before its participant's row.
        let ranks: Vec<(u64, u32)> = changes
            .iter()
            .flat_map(|c| c.ranks.iter().map(|r| (c.seq, r.rank)))
            .collect();
        assert_eq!(
            ranks.iter().map(|r| r.1).collect::<Vec<_>>(),
            (1..=runners).collect::<Vec<_>>()
        );
        let mut rows: Vec<(u64, u32)> = changes
            .iter()
            .flat_map(|c| {
                c.upserts
                    .iter()
                    .map(|r| (c.seq, r.participant[1..].parse::<u32>().unwrap() + 1))
            })
            .collect();
        rows.sort_by_key(|r| r.1);
        assert_eq!(rows.len(), runners as usize);
        assert!(ranks.iter().zip(&rows).all(|(r, row)| r.0 <= row.0));
        let removes: Vec<&String> = changes.iter().flat_map(|c| &c.removes).collect();
        assert_eq!(removes, [&format!("p{:05}", runners + 1)]);
        let splits: Vec<i64> = changes
            .iter()
            .flat_map(|c| c.splits.iter().map(|s| s.time.0))
            .collect();
        assert_eq!(splits, (0..1500).collect::<Vec<_>>());
        // A change that fits stays one record.
        let small = vec![(
            ("s".to_owned(), ViewRow::Standing(Box::new(standing(0)))),
            1,
        )];
        assert_eq!(standings_changes(small, &mut seqs).len(), 1);
    }

    #[test]
    fn a_pass_costs_two_ranks_and_one_row() {
        // p1 passes p0: p1's row changes, both ranks change, p0's row does not.
        let ahead = Standing {
            progress_mm: 2_000_000,
            ..standing(1)
        };
        let updates = vec![
            (
                ("r".to_owned(), ViewRow::Standing(Box::new(standing(1)))),
                -1,
            ),
            (("r".to_owned(), ViewRow::Standing(Box::new(ahead))), 1),
            (("r".to_owned(), place(0)), -1),
            (("r".to_owned(), place(1)), -1),
            (
                (
                    "r".to_owned(),
                    ViewRow::Rank(Place {
                        participant: "p00000".into(),
                        rank: 2,
                    }),
                ),
                1,
            ),
            (
                (
                    "r".to_owned(),
                    ViewRow::Rank(Place {
                        participant: "p00001".into(),
                        rank: 1,
                    }),
                ),
                1,
            ),
        ];
        let changes = standings_changes(updates, &mut BTreeMap::new());
        assert_eq!(changes.len(), 1);
        let c = &changes[0];
        assert_eq!(
            c.ranks,
            [
                RankChange {
                    participant: "p00001".into(),
                    rank: 1
                },
                RankChange {
                    participant: "p00000".into(),
                    rank: 2
                },
            ]
        );
        assert_eq!(c.upserts.len(), 1);
        assert_eq!(c.upserts[0].distance_m, 2000.0);
        assert!(c.removes.is_empty());
    }
}
