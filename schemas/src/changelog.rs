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
mod tests;
