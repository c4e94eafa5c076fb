//! The standings changelog's compact JSON: how a [`StandingsChange`] is
//! written to `pace.standings` and read back.
//!
//! A point writes about one standing row and two or three ranks, so the
//! row is what a change weighs. The record says each thing once, with
//! short keys:
//!
//! - the change: `r` race, `s` seq, `q` ranks, in runs of consecutive
//!   ranks (`[first rank, participant, participant, …]`: a pass changes
//!   neighbours' ranks, so most come in runs), `u` upserts, `d` removes, `p` splits, `x` split removes
//!   (`[participant, split]`), `l` leader (`{i, m?}`);
//! - a row: `i` participant, `n` name (absent when it is the id), `g`
//!   gender, `c` category, `m` distance (metres), `a` laps, `e` leg, `gp`
//!   gap (s), `v` speed (m/s), `ll` last lap (s), `t` last seen and `f` eta
//!   (ms from the change's base `b`, not RFC 3339; `t` absent is 0: at the
//!   base), `st` status (`n` not started, `f` finished, `x` retired, `d`
//!   did not start; absent for racing, what nearly every row is), `y`
//!   position (`[lat, lon]` in 1e-7 degrees from the change's `bp`), or
//!   `o` position (`[lat, lon]`, degrees: one that is not on the 1e-7
//!   grid, as pace's never are), `rk` rank (rows in the changelog carry
//!   none);
//! - a split: `i`, `n` split, `t` time (ms from `b`), `o` position, `gp`
//!   and `cp` positions in gender and category;
//! - `b`, the change's base time (Unix ms): the earliest time of its rows
//!   and splits. Their times are written as ms from it (a few digits, not
//!   thirteen: a row's times are a tenth of its bytes otherwise). A change
//!   without `b` (written before it was) has them as Unix ms.
//! - `bp`, the change's base position (`[lat, lon]`, 1e-7 degrees): its
//!   first row's. The rows of one race are a few kilometres apart, so
//!   their positions from it take five or six digits each, not ten.
//!
//! The race is not repeated in each row and split: a reader gets it from
//! the change. A record in the long form that pace wrote before (field
//! names as in [`StandingsChange`]) is read too, so a changelog written by
//! an older pace is read on, as is `k`, the ranks as `[participant, rank]`
//! pairs that pace wrote before the runs.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::records::LatLon;
use crate::time::Timestamp;
use crate::views::{Leader, RankChange, Split, SplitKey, StandingRow, StandingsChange, Status};

/// The short code of a status.
fn status_code(s: Status) -> &'static str {
    match s {
        Status::NotStarted => "n",
        Status::Racing => "r",
        Status::Finished => "f",
        Status::Retired => "x",
        Status::DidNotStart => "d",
    }
}

/// The status of a short code.
fn status_of(code: &str) -> Option<Status> {
    Some(match code {
        "n" => Status::NotStarted,
        "r" => Status::Racing,
        "f" => Status::Finished,
        "x" => Status::Retired,
        "d" => Status::DidNotStart,
        _ => return None,
    })
}

fn none<T>(x: &Option<T>) -> bool {
    x.is_none()
}

/// A row's status is written only when it is not racing.
fn racing(code: &&str) -> bool {
    *code == status_code(Status::Racing)
}

fn zero(t: &i64) -> bool {
    *t == 0
}

#[derive(Serialize)]
struct RowOut<'a> {
    i: &'a str,
    #[serde(skip_serializing_if = "none")]
    n: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    g: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    c: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    rk: Option<u32>,
    m: f64,
    #[serde(skip_serializing_if = "none")]
    a: Option<u32>,
    #[serde(skip_serializing_if = "none")]
    e: Option<u32>,
    #[serde(skip_serializing_if = "none")]
    gp: Option<f64>,
    #[serde(skip_serializing_if = "none")]
    v: Option<f64>,
    #[serde(skip_serializing_if = "none")]
    ll: Option<f64>,
    #[serde(skip_serializing_if = "zero")]
    t: i64,
    #[serde(skip_serializing_if = "racing")]
    st: &'static str,
    #[serde(skip_serializing_if = "none")]
    f: Option<i64>,
    #[serde(skip_serializing_if = "none")]
    o: Option<(f64, f64)>,
    #[serde(skip_serializing_if = "none")]
    y: Option<(i64, i64)>,
}

/// `p` in 1e-7 degrees, if that is exactly what it is (as every position
/// pace computes is: `schemas::LatLon` from the dataflow's fixed point).
fn e7(p: &LatLon) -> Option<(i64, i64)> {
    let exact = |deg: f64| {
        let e = (deg * 1e7).round();
        (e.abs() < 1e15 && e / 1e7 == deg).then_some(e as i64)
    };
    Some((exact(p.lat)?, exact(p.lon)?))
}

impl<'a> RowOut<'a> {
    /// Row `r` of a change with base time `base` and base position `bp`.
    fn of(r: &'a StandingRow, base: i64, bp: Option<(i64, i64)>) -> Self {
        let fixed = r.position.as_ref().and_then(e7).zip(bp);
        Self {
            i: &r.participant,
            n: (r.name != r.participant).then_some(r.name.as_str()),
            g: r.gender.as_deref(),
            c: r.category.as_deref(),
            rk: r.rank,
            m: r.distance_m,
            a: r.laps,
            e: r.leg,
            gp: r.gap_s,
            v: r.speed_mps,
            ll: r.last_lap_s,
            t: r.last_seen.0.wrapping_sub(base),
            st: status_code(r.status),
            f: r.eta.map(|t| t.0.wrapping_sub(base)),
            o: r.position
                .filter(|_| fixed.is_none())
                .map(|p| (p.lat, p.lon)),
            y: fixed.map(|((lat, lon), (blat, blon))| (lat - blat, lon - blon)),
        }
    }
}

#[derive(Deserialize)]
struct RowIn {
    i: String,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    g: Option<String>,
    #[serde(default)]
    c: Option<String>,
    #[serde(default)]
    rk: Option<u32>,
    m: f64,
    #[serde(default)]
    a: Option<u32>,
    #[serde(default)]
    e: Option<u32>,
    #[serde(default)]
    gp: Option<f64>,
    #[serde(default)]
    v: Option<f64>,
    #[serde(default)]
    ll: Option<f64>,
    #[serde(default)]
    t: i64,
    #[serde(default)]
    st: Option<String>,
    #[serde(default)]
    f: Option<i64>,
    #[serde(default)]
    o: Option<(f64, f64)>,
    #[serde(default)]
    y: Option<(i64, i64)>,
}

impl RowIn {
    /// The row, in a change of `race` with base time `base` and base
    /// position `bp`.
    fn row(self, race: &str, base: i64, bp: Option<(i64, i64)>) -> Result<StandingRow, String> {
        let position = match (self.o, self.y) {
            (Some((lat, lon)), _) => Some(LatLon { lat, lon }),
            (None, Some((lat, lon))) => {
                let (blat, blon) = bp.ok_or("a row's position from a change without bp")?;
                let deg = |base: i64, d: i64| {
                    base.checked_add(d)
                        .map(|e| e as f64 / 1e7)
                        .ok_or("a position past the largest")
                };
                Some(LatLon {
                    lat: deg(blat, lat)?,
                    lon: deg(blon, lon)?,
                })
            }
            (None, None) => None,
        };
        let status = match &self.st {
            None => Status::Racing,
            Some(st) => status_of(st).ok_or_else(|| format!("unknown status {st:?}"))?,
        };
        Ok(StandingRow {
            race: race.to_owned(),
            rank: self.rk,
            name: self.n.unwrap_or_else(|| self.i.clone()),
            participant: self.i,
            gender: self.g,
            category: self.c,
            distance_m: self.m,
            laps: self.a,
            leg: self.e,
            gap_s: self.gp,
            speed_mps: self.v,
            last_lap_s: self.ll,
            last_seen: Timestamp(self.t.wrapping_add(base)),
            status,
            eta: self.f.map(|f| Timestamp(f.wrapping_add(base))),
            position,
        })
    }
}

#[derive(Serialize)]
struct SplitOut<'a> {
    i: &'a str,
    n: u32,
    t: i64,
    o: u32,
    #[serde(skip_serializing_if = "none")]
    gp: Option<u32>,
    #[serde(skip_serializing_if = "none")]
    cp: Option<u32>,
}

#[derive(Deserialize)]
struct SplitIn {
    i: String,
    n: u32,
    t: i64,
    o: u32,
    #[serde(default)]
    gp: Option<u32>,
    #[serde(default)]
    cp: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct LeaderWire {
    i: String,
    #[serde(default, skip_serializing_if = "none")]
    m: Option<f64>,
}

/// `ranks` in runs of consecutive ranks, in order.
fn runs(ranks: &[RankChange]) -> impl Iterator<Item = &[RankChange]> {
    ranks.chunk_by(|a, b| a.rank.checked_add(1) == Some(b.rank))
}

/// A run of consecutive ranks as written: `[first rank, participant, …]`.
struct RunOut<'a>(&'a [RankChange]);

impl Serialize for RunOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len() + 1))?;
        seq.serialize_element(&self.0[0].rank)?;
        for r in self.0 {
            seq.serialize_element(&r.participant)?;
        }
        seq.end()
    }
}

/// A run of consecutive ranks as read: the first rank, and the participants.
struct RunIn(u32, Vec<String>);

impl<'de> Deserialize<'de> for RunIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RunIn;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a run of ranks: [first rank, participant, …]")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RunIn, A::Error> {
                let first: u32 = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                let mut ids = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(id) = seq.next_element::<String>()? {
                    ids.push(id);
                }
                Ok(RunIn(first, ids))
            }
        }
        d.deserialize_seq(Visit)
    }
}

/// A sequence written from an iterator, without collecting it.
struct Each<I>(std::cell::Cell<Option<I>>);

impl<I: Iterator<Item = T>, T: Serialize> Serialize for Each<I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.take().expect("serialized once"))
    }
}

fn each<I: Iterator<Item = T>, T: Serialize>(it: I) -> Each<I> {
    Each(std::cell::Cell::new(Some(it)))
}

impl Serialize for StandingsChange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("r", &self.race)?;
        m.serialize_entry("s", &self.seq)?;
        let times = self.upserts.iter().map(|r| r.last_seen.0);
        let base = times.chain(self.splits.iter().map(|p| p.time.0)).min();
        if let Some(b) = base {
            m.serialize_entry("b", &b)?;
        }
        let base = base.unwrap_or(0);
        if !self.ranks.is_empty() {
            m.serialize_entry("q", &each(runs(&self.ranks).map(RunOut)))?;
        }
        let bp = (self.upserts.iter()).find_map(|r| r.position.as_ref().and_then(e7));
        if let Some(bp) = bp {
            m.serialize_entry("bp", &bp)?;
        }
        if !self.upserts.is_empty() {
            let rows = self.upserts.iter().map(|r| RowOut::of(r, base, bp));
            m.serialize_entry("u", &each(rows))?;
        }
        if !self.removes.is_empty() {
            m.serialize_entry("d", &self.removes)?;
        }
        if !self.splits.is_empty() {
            let splits = self.splits.iter().map(|p| SplitOut {
                i: &p.participant,
                n: p.split,
                t: p.time.0.wrapping_sub(base),
                o: p.position,
                gp: p.gender_position,
                cp: p.category_position,
            });
            m.serialize_entry("p", &each(splits))?;
        }
        if !self.split_removes.is_empty() {
            let keys = (self.split_removes.iter()).map(|k| (k.participant.as_str(), k.split));
            m.serialize_entry("x", &each(keys))?;
        }
        if let Some(l) = &self.leader {
            let leader = LeaderWire {
                i: l.participant.clone(),
                m: l.distance_m,
            };
            m.serialize_entry("l", &leader)?;
        }
        m.end()
    }
}

/// A change as read: the compact form's keys and the long form's, each
/// optional, so that either is read in one pass (no buffering to try one
/// form, then the other).
#[derive(Deserialize)]
struct ChangeIn {
    #[serde(default)]
    r: Option<String>,
    #[serde(default)]
    s: Option<u64>,
    /// The base time (absent: times are Unix ms).
    #[serde(default)]
    b: i64,
    /// The base position (absent: positions are in degrees).
    #[serde(default)]
    bp: Option<(i64, i64)>,
    #[serde(default)]
    k: Vec<(String, u32)>,
    #[serde(default)]
    q: Vec<RunIn>,
    #[serde(default)]
    u: Vec<RowIn>,
    #[serde(default)]
    d: Vec<String>,
    #[serde(default)]
    p: Vec<SplitIn>,
    #[serde(default)]
    x: Vec<(String, u32)>,
    #[serde(default)]
    l: Option<LeaderWire>,
    // The long form, as pace wrote it before the compact one.
    #[serde(default)]
    race: Option<String>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    ranks: Vec<RankChange>,
    #[serde(default)]
    upserts: Vec<StandingRow>,
    #[serde(default)]
    removes: Vec<String>,
    #[serde(default)]
    splits: Vec<Split>,
    #[serde(default)]
    split_removes: Vec<SplitKey>,
    #[serde(default)]
    leader: Option<Leader>,
}

impl ChangeIn {
    fn change(self) -> Result<StandingsChange, String> {
        let race = (self.r.or(self.race)).ok_or("a change without its race")?;
        let seq = (self.s.or(self.seq)).ok_or("a change without its seq")?;
        let mut upserts = self.upserts;
        for r in self.u {
            upserts.push(r.row(&race, self.b, self.bp)?);
        }
        let mut splits = self.splits;
        splits.extend(self.p.into_iter().map(|p| Split {
            race: race.clone(),
            participant: p.i,
            split: p.n,
            time: Timestamp(p.t.wrapping_add(self.b)),
            position: p.o,
            gender_position: p.gp,
            category_position: p.cp,
        }));
        let mut ranks = self.ranks;
        ranks.extend(
            (self.k.into_iter()).map(|(participant, rank)| RankChange { participant, rank }),
        );
        for RunIn(first, ids) in self.q {
            for (n, participant) in ids.into_iter().enumerate() {
                let rank = u32::try_from(n)
                    .ok()
                    .and_then(|n| first.checked_add(n))
                    .ok_or("a run of ranks past the largest rank")?;
                ranks.push(RankChange { participant, rank });
            }
        }
        let mut removes = self.removes;
        removes.extend(self.d);
        let mut split_removes = self.split_removes;
        split_removes.extend(
            (self.x.into_iter()).map(|(participant, split)| SplitKey { participant, split }),
        );
        let leader = self.leader.or(self.l.map(|l| Leader {
            participant: l.i,
            distance_m: l.m,
        }));
        Ok(StandingsChange {
            race,
            seq,
            ranks,
            upserts,
            removes,
            splits,
            split_removes,
            leader,
        })
    }
}

impl<'de> Deserialize<'de> for StandingsChange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ChangeIn::deserialize(d)?
            .change()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(participant: &str, name: &str) -> StandingRow {
        StandingRow {
            race: "race-3".into(),
            rank: None,
            participant: participant.into(),
            name: name.into(),
            gender: Some("F".into()),
            category: None,
            distance_m: 12_345.678,
            laps: None,
            leg: None,
            gap_s: Some(1.5),
            speed_mps: Some(3.25),
            last_lap_s: None,
            last_seen: Timestamp(1_765_000_000_123),
            status: Status::Racing,
            eta: Some(Timestamp(1_765_000_999_000)),
            position: Some(LatLon {
                lat: 51.123_456_7,
                lon: -0.123_456_7,
            }),
        }
    }

    fn change() -> StandingsChange {
        let mut bare = row("r-3-000124", "r-3-000124");
        (bare.gender, bare.eta, bare.position, bare.gap_s) = (None, None, None, None);
        bare.status = Status::DidNotStart;
        bare.rank = Some(4);
        StandingsChange {
            race: "race-3".into(),
            seq: 42,
            ranks: vec![
                RankChange {
                    participant: "r-3-000123".into(),
                    rank: 7,
                },
                RankChange {
                    participant: "r-3-000099".into(),
                    rank: 8,
                },
            ],
            upserts: vec![row("r-3-000123", "Ann Lee"), bare],
            removes: vec!["r-3-000001".into()],
            splits: vec![Split {
                race: "race-3".into(),
                participant: "r-3-000123".into(),
                split: 2,
                time: Timestamp(1_765_000_000_500),
                position: 3,
                gender_position: Some(1),
                category_position: None,
            }],
            split_removes: vec![SplitKey {
                participant: "r-3-000002".into(),
                split: 1,
            }],
            leader: Some(Leader {
                participant: "r-3-000050".into(),
                distance_m: Some(20_000.5),
            }),
        }
    }

    /// Asserts that `c`, written, reads back as `c`.
    fn reads_back(c: &StandingsChange) {
        let json = serde_json::to_vec(c).unwrap();
        assert_eq!(
            &serde_json::from_slice::<StandingsChange>(&json).unwrap(),
            c
        );
    }

    /// `c` with no ranks, rows, removals, splits or leader.
    fn bare(c: StandingsChange) -> StandingsChange {
        StandingsChange {
            ranks: vec![],
            upserts: vec![],
            removes: vec![],
            splits: vec![],
            split_removes: vec![],
            leader: None,
            ..c
        }
    }

    #[test]
    fn a_change_reads_back_as_it_was_written() {
        reads_back(&change());
        let empty = bare(change());
        let json = serde_json::to_string(&empty).unwrap();
        assert_eq!(json, r#"{"r":"race-3","s":42}"#);
        reads_back(&empty);
    }

    #[test]
    fn a_racing_row_at_the_base_writes_neither_status_nor_time() {
        let mut c = bare(change());
        let mut racing = row("p", "p");
        racing.eta = None;
        racing.last_seen = Timestamp(1_765_000_000_000);
        let finished = StandingRow {
            status: Status::Finished,
            last_seen: Timestamp(1_765_000_000_250),
            ..racing.clone()
        };
        c.upserts = vec![racing, finished];
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            json.contains(r#""u":[{"i":"p","g":"F","m":12345.678,"gp":1.5,"v":3.25,"y":"#),
            "{json}"
        );
        assert!(json.contains(r#""t":250,"st":"f""#), "{json}");
        reads_back(&c);
        // Written before: the status and the time of every row.
        let before = br#"{"r":"r","s":1,"b":1765000000000,"u":[{"i":"p","m":5.0,"t":0,"st":"r"}]}"#;
        let read: StandingsChange = serde_json::from_slice(before).unwrap();
        assert_eq!(read.upserts[0].status, Status::Racing);
        assert_eq!(read.upserts[0].last_seen, Timestamp(1_765_000_000_000));
    }

    #[test]
    fn positions_are_written_from_the_changes_first_and_read_back_exactly() {
        let mut c = bare(change());
        let at = |lat_e7: i64, lon_e7: i64| {
            let mut r = row("p", "p");
            r.position = Some(LatLon {
                lat: lat_e7 as f64 / 1e7,
                lon: lon_e7 as f64 / 1e7,
            });
            r
        };
        // Around the world, near the poles and the antimeridian, and close by.
        let mut e7s = vec![(593_296_489, 180_780_133), (593_296_490, 180_780_100)];
        e7s.extend([(-899_999_999, -1_799_999_999), (899_999_999, 1_799_999_999)]);
        e7s.extend((0..200).map(|i: i64| (i * 4_500_017 - 450_000_000, i * 9_000_029)));
        c.upserts = e7s.iter().map(|&(lat, lon)| at(lat, lon)).collect();
        // One that is not on the grid is written in degrees.
        let mut off = row("q", "q");
        off.position = Some(LatLon {
            lat: 51.123_456_789_1,
            lon: 0.1,
        });
        c.upserts.push(off);
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#""bp":[593296489,180780133]"#), "{json}");
        assert!(json.contains(r#""y":[0,0]"#), "{json}");
        assert!(json.contains(r#""y":[1,-33]"#), "{json}");
        assert!(json.contains(r#""o":[51.1234567891,0.1]"#), "{json}");
        reads_back(&c);
        // A position from a base that is not there is an error.
        let bad = br#"{"r":"r","s":1,"u":[{"i":"p","m":1.0,"y":[1,2]}]}"#;
        assert!(serde_json::from_slice::<StandingsChange>(bad).is_err());
    }

    /// What one point writes, about: its row and two places.
    #[test]
    fn a_row_and_its_places_take_under_half_the_long_forms_bytes() {
        let full = change();
        let c = StandingsChange {
            ranks: full.ranks.clone(),
            upserts: vec![full.upserts[0].clone()],
            ..bare(full)
        };
        let compact = serde_json::to_vec(&c).unwrap().len();
        let long = long_form(&c).len();
        assert!(compact * 2 < long, "compact {compact} B, long {long} B");
    }

    /// The long form, as pace wrote it before: field names, RFC 3339 times.
    fn long_form(c: &StandingsChange) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "race": c.race, "seq": c.seq, "ranks": c.ranks, "upserts": c.upserts,
            "removes": c.removes, "splits": c.splits, "split_removes": c.split_removes,
            "leader": c.leader,
        }))
        .unwrap()
    }

    #[test]
    fn ranks_go_in_runs_of_consecutive_ranks_and_pairs_are_read_too() {
        let ranks = |list: &[(&str, u32)]| -> Vec<RankChange> {
            (list.iter())
                .map(|&(p, rank)| RankChange {
                    participant: p.into(),
                    rank,
                })
                .collect()
        };
        let c = StandingsChange {
            ranks: ranks(&[("a", 3), ("b", 4), ("c", 5), ("d", 9), ("e", u32::MAX)]),
            ..bare(change())
        };
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            json.contains(r#""q":[[3,"a","b","c"],[9,"d"],[4294967295,"e"]]"#),
            "{json}"
        );
        reads_back(&c);
        // Pairs, as pace wrote ranks before the runs.
        let pairs = r#"{"r":"r","s":1,"k":[["a",3],["d",9]]}"#;
        let read = serde_json::from_str::<StandingsChange>(pairs).unwrap();
        assert_eq!(read.ranks, ranks(&[("a", 3), ("d", 9)]));
        // A run past the largest rank, or without its first rank, is an error.
        for bad in [
            r#"{"r":"r","s":1,"q":[[4294967295,"a","b"]]}"#,
            r#"{"r":"r","s":1,"q":[[]]}"#,
            r#"{"r":"r","s":1,"q":[["a"]]}"#,
        ] {
            assert!(
                serde_json::from_str::<StandingsChange>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn times_are_written_from_the_changes_base_and_read_without_one() {
        let c = change();
        let json: serde_json::Value = serde_json::to_value(&c).unwrap();
        // The earliest of the rows' and the split's times.
        let base = (c.upserts.iter().map(|r| r.last_seen.0))
            .chain(c.splits.iter().map(|p| p.time.0))
            .min()
            .unwrap();
        assert_eq!(json["b"], base);
        for (row, wire) in c.upserts.iter().zip(json["u"].as_array().unwrap()) {
            // Absent: 0, at the base.
            let t = wire.get("t").map_or(Some(0), serde_json::Value::as_i64);
            assert_eq!(t, Some(row.last_seen.0 - base));
            assert!(t.unwrap() < 1_000_000, "{wire}");
            if let Some(eta) = row.eta {
                assert_eq!(wire["f"], eta.0 - base);
            }
        }
        assert_eq!(json["p"][0]["t"], c.splits[0].time.0 - base);
        // A change written before the base was: its times are Unix ms.
        let before = br#"{"r":"r","s":1,"u":[{"i":"p","m":5.0,"t":1765000000000,"st":"r","f":1765000600000}],"p":[{"i":"p","n":1,"t":1765000000500,"o":1}]}"#;
        let read = serde_json::from_slice::<StandingsChange>(before).unwrap();
        assert_eq!(read.upserts[0].last_seen, Timestamp(1_765_000_000_000));
        assert_eq!(read.upserts[0].eta, Some(Timestamp(1_765_000_600_000)));
        assert_eq!(read.splits[0].time, Timestamp(1_765_000_000_500));
        // Times far apart (or absurd) still read back exactly.
        let mut far = c.clone();
        far.upserts[0].last_seen = Timestamp(i64::MIN);
        far.upserts[1].eta = Some(Timestamp(i64::MAX));
        reads_back(&far);
    }

    #[test]
    fn a_change_in_the_long_form_is_read_too() {
        let c = change();
        let long = long_form(&c);
        assert_eq!(serde_json::from_slice::<StandingsChange>(&long).unwrap(), c);
        let old = br#"{"race":"r","seq":1,"upserts":[{"race":"r","participant":"p","name":"P","distance_m":5.0,"last_seen":"2025-01-19T02:10:00Z","status":"racing"}],"removes":[]}"#;
        let read = serde_json::from_slice::<StandingsChange>(old).unwrap();
        assert_eq!(read.upserts[0].name, "P");
    }

    #[test]
    fn a_bad_status_or_a_change_without_race_or_seq_is_an_error_not_a_panic() {
        let bad = br#"{"r":"r","s":1,"u":[{"i":"p","m":1.0,"t":5,"st":"?"}]}"#;
        assert!(serde_json::from_slice::<StandingsChange>(bad).is_err());
        for bad in [
            &br#"{"s":1}"#[..],
            br#"{"r":"x"}"#,
            br#"{"race":"x","upserts":[]}"#,
        ] {
            let e = serde_json::from_slice::<StandingsChange>(bad).unwrap_err();
            assert!(e.to_string().contains("without its"), "{e}");
        }
    }
}
