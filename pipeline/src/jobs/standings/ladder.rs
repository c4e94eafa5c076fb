//! An ordered index that keeps each entry's rank (1 for the first) as
//! entries come, go and move: what the rank stage keeps per race (by the
//! ranking key) and per split (by passing time).
//!
//! Moving one entry costs O(log n + places it moved): only the entries it
//! passes change rank, and only those are reported. A batch that moves a
//! large share of the entries is applied whole and renumbered in one walk,
//! O(n), so an epoch never costs more than a sort would.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};

/// Entries `K` in order, each with its rank.
#[derive(Debug)]
pub struct Ladder<K> {
    ranks: BTreeMap<K, u32>,
}

impl<K: Ord + Clone> Default for Ladder<K> {
    fn default() -> Self {
        Self {
            ranks: BTreeMap::new(),
        }
    }
}

/// A batch at least 1 / RENUMBER_SHARE of the ladder is renumbered in one walk.
const RENUMBER_SHARE: usize = 8;

impl<K: Ord + Clone> Ladder<K> {
    /// How many entries.
    pub fn len(&self) -> usize {
        self.ranks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ranks.is_empty()
    }

    /// The first entry.
    pub fn first(&self) -> Option<&K> {
        self.ranks.keys().next()
    }

    /// The rank of `key`, if present.
    pub fn rank(&self, key: &K) -> Option<u32> {
        self.ranks.get(key).copied()
    }

    /// The entries in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.ranks.keys()
    }

    /// Applies `moves` (an entry's old key, if it had one, and its new key,
    /// if it stays); calls `touched` with every key, present after the
    /// batch or not, whose rank may have changed, and the rank it has from
    /// then on (`None`: removed). A key may be reported more than once; its
    /// last report is its rank after the batch, so a caller needs no lookup.
    /// Old keys must be present and new keys absent (after the batch's
    /// removals).
    pub fn apply(
        &mut self,
        moves: Vec<(Option<K>, Option<K>)>,
        mut touched: impl FnMut(&K, Option<u32>),
    ) {
        let moves: Vec<_> = moves.into_iter().filter(|(o, n)| o != n).collect();
        if moves.is_empty() {
            return;
        }
        if moves.len() * RENUMBER_SHARE >= self.ranks.len() {
            self.renumber(moves, &mut touched);
            return;
        }
        for (old, new) in moves {
            self.move_one(old, new, &mut touched);
        }
    }

    fn move_one(
        &mut self,
        old: Option<K>,
        new: Option<K>,
        touched: &mut impl FnMut(&K, Option<u32>),
    ) {
        match (old, new) {
            (Some(old), Some(new)) => {
                let rank = self.ranks.remove(&old).expect("old keys are present");
                touched(&old, None);
                let mut passed = 0;
                let rank = if new < old {
                    for (k, r) in self.ranks.range_mut((Excluded(&new), Excluded(&old))) {
                        *r += 1;
                        passed += 1;
                        touched(k, Some(*r));
                    }
                    rank - passed
                } else {
                    for (k, r) in self.ranks.range_mut((Excluded(&old), Excluded(&new))) {
                        *r -= 1;
                        passed += 1;
                        touched(k, Some(*r));
                    }
                    rank + passed
                };
                touched(&new, Some(rank));
                self.ranks.insert(new, rank);
            }
            (Some(old), None) => {
                self.ranks.remove(&old).expect("old keys are present");
                touched(&old, None);
                for (k, r) in self.ranks.range_mut((Excluded(&old), Unbounded)) {
                    *r -= 1;
                    touched(k, Some(*r));
                }
            }
            (None, Some(new)) => {
                let rank = self
                    .ranks
                    .range(..&new)
                    .next_back()
                    .map_or(1, |(_, r)| r + 1);
                for (k, r) in self.ranks.range_mut((Excluded(&new), Unbounded)) {
                    *r += 1;
                    touched(k, Some(*r));
                }
                touched(&new, Some(rank));
                self.ranks.insert(new, rank);
            }
            (None, None) => {}
        }
    }

    /// Applies the moves whole, then numbers every entry in one walk.
    fn renumber(
        &mut self,
        moves: Vec<(Option<K>, Option<K>)>,
        touched: &mut impl FnMut(&K, Option<u32>),
    ) {
        let mut news = Vec::new();
        for (old, new) in moves {
            if let Some(old) = old {
                self.ranks.remove(&old).expect("old keys are present");
                touched(&old, None);
            }
            news.extend(new);
        }
        for new in news {
            // 0: no rank yet, so it is reported below.
            self.ranks.insert(new, 0);
        }
        for (i, (k, r)) in self.ranks.iter_mut().enumerate() {
            let rank = i as u32 + 1;
            if *r != rank {
                *r = rank;
                touched(k, Some(rank));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Random batches of moves over a growing and shrinking set of entries:
    /// after each batch every rank is its place in order, and every entry
    /// whose rank changed was reported.
    #[test]
    fn ranks_are_places_and_every_change_is_reported() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut ladder: Ladder<(u32, u32)> = Ladder::default();
        // participant -> current key (score, participant)
        let mut current: BTreeMap<u32, (u32, u32)> = BTreeMap::new();
        for round in 0..400 {
            let before: BTreeMap<(u32, u32), u32> = ladder
                .keys()
                .map(|k| (*k, ladder.rank(k).unwrap()))
                .collect();
            // Small batches mostly (moved one by one), now and then a big one (renumbered).
            let size = if round % 10 == 0 {
                60
            } else {
                rng.random_range(1..4)
            };
            let mut moves = Vec::new();
            let mut moved = BTreeSet::new();
            for _ in 0..size {
                let p = rng.random_range(0..200u32);
                if !moved.insert(p) {
                    continue;
                }
                let old = current.get(&p).copied();
                let new = (rng.random_range(0..8) != 0).then(|| (rng.random_range(0..50u32), p));
                match new {
                    Some(k) => current.insert(p, k),
                    None => current.remove(&p),
                };
                moves.push((old, new));
            }
            let mut touched = BTreeSet::new();
            // Each key's last report: its rank after the batch.
            let mut reported = BTreeMap::new();
            ladder.apply(moves, |k, rank| {
                touched.insert(*k);
                reported.insert(*k, rank);
            });
            for (k, rank) in &reported {
                assert_eq!(*rank, ladder.rank(k), "round {round}: {k:?} misreported");
            }
            let order: BTreeSet<(u32, u32)> = current.values().copied().collect();
            assert_eq!(ladder.len(), order.len());
            for (i, k) in order.iter().enumerate() {
                let rank = i as u32 + 1;
                assert_eq!(ladder.rank(k), Some(rank), "round {round}");
                if before.get(k) != Some(&rank) {
                    assert!(touched.contains(k), "round {round}: {k:?} unreported");
                }
            }
            for k in before.keys() {
                if !order.contains(k) {
                    assert!(touched.contains(k), "round {round}: removal unreported");
                }
            }
        }
    }

    #[test]
    fn one_move_reports_only_the_places_it_passed() {
        let mut ladder: Ladder<u32> = Ladder::default();
        ladder.apply((0..100).map(|i| (None, Some(i * 10))).collect(), |_, _| {});
        let mut touched = Vec::new();
        // 500 (rank 51) moves to 255: it passes 260..=490, 24 entries.
        ladder.apply(vec![(Some(500), Some(255))], |k, rank| {
            touched.push((*k, rank))
        });
        assert_eq!(touched.len(), 24 + 2);
        assert_eq!(touched[0], (500, None));
        assert_eq!(touched[1], (260, Some(28)));
        assert_eq!(touched[25], (255, Some(27)));
        assert_eq!(ladder.rank(&255), Some(27));
        assert_eq!(ladder.rank(&260), Some(28));
        assert_eq!(ladder.rank(&510), Some(52));
    }
}
