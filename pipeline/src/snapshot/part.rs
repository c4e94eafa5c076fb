//! How one snapshot part is laid out, so that a worker of *any* layout can
//! restore what it owns from the parts every worker of another layout
//! wrote ([`Part`]).
//!
//! A part is a section of unkeyed state (what every worker holds alike,
//! such as the race definitions broadcast to all of them, or what is
//! merged from all of them, such as a source's offsets), then entries, each
//! keyed by what owns it (a race, a participant, a room, a task id) and
//! stamped with its *route*: the hash the dataflow exchanges that key by
//! ([`crate::route::hash`]), so that worker `route % workers` owns it
//! whatever the number of workers (timely's `Exchange` sends a record to
//! worker `hash % peers`).
//!
//! ```text
//! part    = section entry*
//! section = len:u64 bincode(section)
//! entry   = route:u64 len:u64 bincode((key, value))
//! ```
//!
//! (integers little-endian). A reader deserializes the entries it owns and
//! skips the others by their length, so a worker of two that restores from
//! one worker's parts decodes only its half.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;
use std::io::{BufRead, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::route::hash;

/// A state a snapshot holds as one part per worker, and that a worker of
/// any layout restores from the parts of every worker of another.
pub trait Part: Default + 'static {
    /// Writes the state: its section (if it has one), then its entries.
    fn write_part(&self, out: &mut Out<'_>) -> bincode::Result<()>;
    /// Adds to `self` what one worker's part holds that this worker owns
    /// (called once per part file read, in worker order).
    fn read_part(&mut self, part: &mut In<'_>) -> bincode::Result<()>;
}

/// Where a [`Part`] writes itself.
pub struct Out<'a> {
    w: &'a mut dyn Write,
    scratch: Vec<u8>,
    section: bool,
}

impl<'a> Out<'a> {
    /// Writes a part into `w`: [`Out::finish`] once it is written.
    pub fn new(w: &'a mut dyn Write) -> Self {
        Self {
            w,
            scratch: Vec::new(),
            section: false,
        }
    }

    /// Writes the section (before any entry; at most once).
    pub fn section<V: Serialize + ?Sized>(&mut self, value: &V) -> bincode::Result<()> {
        debug_assert!(!self.section, "a part has one section, first");
        self.section = true;
        self.framed(None, value)
    }

    /// Writes one entry: `value` under `key`, routed by the hash of `key`
    /// (which must hash as the key the dataflow exchanges it by).
    pub fn entry<K: Serialize + Hash, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> bincode::Result<()> {
        if !self.section {
            self.section(&())?;
        }
        self.framed(Some(hash(key)), &(key, value))
    }

    /// Ends the part (an empty section if none was written).
    pub fn finish(mut self) -> bincode::Result<()> {
        if !self.section {
            self.section(&())?;
        }
        Ok(())
    }

    fn framed<V: Serialize + ?Sized>(
        &mut self,
        route: Option<u64>,
        value: &V,
    ) -> bincode::Result<()> {
        self.scratch.clear();
        bincode::serialize_into(&mut self.scratch, value)?;
        if let Some(route) = route {
            self.w.write_all(&route.to_le_bytes())?;
        }
        self.w
            .write_all(&(self.scratch.len() as u64).to_le_bytes())?;
        self.w.write_all(&self.scratch)?;
        Ok(())
    }
}

/// One part file as a [`Part`] reads it: the entries this worker owns.
pub struct In<'a> {
    r: &'a mut dyn BufRead,
    owns: &'a dyn Fn(u64) -> bool,
    section: bool,
}

impl<'a> In<'a> {
    /// Reads the part in `r` for a worker that owns the routes `owns` takes.
    pub fn new(r: &'a mut dyn BufRead, owns: &'a dyn Fn(u64) -> bool) -> Self {
        Self {
            r,
            owns,
            section: false,
        }
    }

    /// The section (first, at most once).
    pub fn section<V: DeserializeOwned>(&mut self) -> bincode::Result<V> {
        debug_assert!(!self.section, "a part has one section, first");
        self.section = true;
        let len = self.u64()?;
        self.framed(len)
    }

    /// Every entry this worker owns, given to `add`; the others are skipped.
    pub fn entries<K: DeserializeOwned, V: DeserializeOwned>(
        &mut self,
        mut add: impl FnMut(K, V),
    ) -> bincode::Result<()> {
        if !self.section {
            self.section = true;
            let len = self.u64()?;
            self.skip(len)?;
        }
        while !self.r.fill_buf()?.is_empty() {
            let route = self.u64()?;
            let len = self.u64()?;
            if (self.owns)(route) {
                let (k, v) = self.framed(len)?;
                add(k, v);
            } else {
                self.skip(len)?;
            }
        }
        Ok(())
    }

    fn u64(&mut self) -> bincode::Result<u64> {
        let mut b = [0; 8];
        self.r.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Deserializes the next `len` bytes as one value, all of them.
    fn framed<V: DeserializeOwned>(&mut self, len: u64) -> bincode::Result<V> {
        let mut frame = (&mut self.r).take(len);
        let value = bincode::deserialize_from(&mut frame)?;
        if frame.limit() > 0 {
            return Err(bincode::ErrorKind::Custom(format!(
                "{} bytes left in a frame of {len}",
                frame.limit()
            ))
            .into());
        }
        Ok(value)
    }

    fn skip(&mut self, mut len: u64) -> bincode::Result<()> {
        while len > 0 {
            let have = self.r.fill_buf()?.len() as u64;
            if have == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            let n = have.min(len);
            self.r.consume(n as usize);
            len -= n;
        }
        Ok(())
    }
}

/// A map's entries are routed by their keys (the rooms, tournaments and
/// sequence numbers, keyed as the dataflow exchanges them).
impl<K, V> Part for BTreeMap<K, V>
where
    K: Ord + Hash + Serialize + DeserializeOwned + 'static,
    V: Serialize + DeserializeOwned + 'static,
{
    fn write_part(&self, out: &mut Out<'_>) -> bincode::Result<()> {
        self.iter().try_for_each(|(k, v)| out.entry(k, v))
    }

    fn read_part(&mut self, part: &mut In<'_>) -> bincode::Result<()> {
        part.entries(|k, v| {
            self.insert(k, v);
        })
    }
}

/// A set's members are routed by themselves (the task ids with a result).
impl<K> Part for BTreeSet<K>
where
    K: Ord + Hash + Serialize + DeserializeOwned + 'static,
{
    fn write_part(&self, out: &mut Out<'_>) -> bincode::Result<()> {
        self.iter().try_for_each(|k| out.entry(k, &()))
    }

    fn read_part(&mut self, part: &mut In<'_>) -> bincode::Result<()> {
        part.entries(|k, ()| {
            self.insert(k);
        })
    }
}

/// Nothing to keep (an encoder without state).
impl Part for () {
    fn write_part(&self, _: &mut Out<'_>) -> bincode::Result<()> {
        Ok(())
    }

    fn read_part(&mut self, _: &mut In<'_>) -> bincode::Result<()> {
        Ok(())
    }
}

/// Where a source resumes: the next offset of each partition it read. Not
/// routed: every worker reads every worker's offsets, and its consumer
/// takes those of the partitions it is assigned.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Offsets(pub BTreeMap<i32, i64>);

impl Part for Offsets {
    fn write_part(&self, out: &mut Out<'_>) -> bincode::Result<()> {
        out.section(&self.0)
    }

    fn read_part(&mut self, part: &mut In<'_>) -> bincode::Result<()> {
        let theirs: BTreeMap<i32, i64> = part.section()?;
        self.0.extend(theirs);
        Ok(())
    }
}

/// Writes `state` as one part into `w`.
pub fn write<S: Part>(state: &S, w: &mut dyn Write) -> bincode::Result<()> {
    let mut out = Out::new(w);
    state.write_part(&mut out)?;
    out.finish()
}

/// Adds what the part in `r` holds for the worker that owns `owns`'s routes to `state`.
pub fn read<S: Part>(
    state: &mut S,
    r: &mut dyn BufRead,
    owns: &dyn Fn(u64) -> bool,
) -> bincode::Result<()> {
    state.read_part(&mut In::new(r, owns))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `workers` workers each hold of `all`, written as their parts.
    fn written<S: Part>(split: impl Fn(usize) -> S, workers: usize) -> Vec<Vec<u8>> {
        (0..workers)
            .map(|w| {
                let mut bytes = Vec::new();
                write(&split(w), &mut bytes).unwrap();
                bytes
            })
            .collect()
    }

    /// What worker `w` of `workers` restores from `parts`.
    fn restored<S: Part>(parts: &[Vec<u8>], w: usize, workers: usize) -> S {
        let mut state = S::default();
        let owns = move |route: u64| route % workers as u64 == w as u64;
        for p in parts {
            read(&mut state, &mut p.as_slice(), &owns).unwrap();
        }
        state
    }

    #[test]
    fn a_map_spread_over_some_workers_is_restored_into_any_number_of_them() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(24);
        let all: BTreeMap<String, Vec<u32>> = (0..500)
            .map(|i| (format!("room-{i}"), (0..rng.random_range(0..20)).collect()))
            .collect();
        let owned_by = |workers: usize, w: usize| -> BTreeMap<String, Vec<u32>> {
            all.iter()
                .filter(|(k, _)| hash(*k) % workers as u64 == w as u64)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        for from in [1, 2, 3] {
            let parts = written(|w| owned_by(from, w), from);
            for to in [1, 2, 3, 4] {
                let mut union = BTreeMap::new();
                for w in 0..to {
                    let got: BTreeMap<String, Vec<u32>> = restored(&parts, w, to);
                    assert_eq!(got, owned_by(to, w), "{from} → {to} workers, worker {w}");
                    union.extend(got);
                }
                assert_eq!(union, all, "{from} → {to} workers: nothing lost");
            }
        }
    }

    #[test]
    fn offsets_are_merged_from_every_worker_and_sets_split_by_member() {
        let parts = written(|w| Offsets([(w as i32, 10 * w as i64 + 5)].into()), 3);
        let got: Offsets = restored(&parts, 0, 2);
        assert_eq!(got, Offsets([(0, 5), (1, 15), (2, 25)].into()));
        let ids: BTreeSet<String> = (0..100).map(|i| format!("task-{i}")).collect();
        let parts = written(|_| ids.clone(), 1);
        let halves: Vec<BTreeSet<String>> = (0..2).map(|w| restored(&parts, w, 2)).collect();
        assert!(halves.iter().all(|h| !h.is_empty() && h.len() < ids.len()));
        assert_eq!(halves[0].len() + halves[1].len(), ids.len());
        let empty = written(|_| (), 2);
        let () = restored(&empty, 0, 1);
    }

    #[test]
    fn a_cut_or_padded_part_is_an_error_not_a_wrong_state() {
        let map: BTreeMap<String, u64> = [("a".into(), 1), ("b".into(), 2)].into();
        let part = written(|_| map.clone(), 1).remove(0);
        let cut = &part[..part.len() - 3];
        let mut state = BTreeMap::<String, u64>::new();
        assert!(read(&mut state, &mut &cut[..], &|_| true).is_err());
        // A section longer than its value (an empty map and two bytes).
        let mut padded = Vec::new();
        padded.extend_from_slice(&10u64.to_le_bytes());
        padded.extend_from_slice(&[0; 10]);
        let mut o = Offsets::default();
        assert!(read(&mut o, &mut padded.as_slice(), &|_| true).is_err());
    }

    #[test]
    fn a_route_is_the_hash_the_track_stage_exchanges_by() {
        // The track stage exchanges by the borrowed pair, its state keys
        // by the owned one: they must hash alike.
        let owned = ("race".to_owned(), "runner".to_owned());
        assert_eq!(hash(&owned), hash(&("race", "runner")));
    }
}
