//! An ordered index that keeps each entry's rank (1 for the first) as
//! entries come, go and move: what the rank stage keeps per race (by the
//! ranking key) and per split (by passing time).
//!
//! The entries are one sorted vector, an entry's rank its index plus one.
//! Moving one entry costs O(log n + places it moved): it is found by binary
//! search, and the entries it passes shift by one place (a rotation of
//! that stretch); only they change rank, and only they are reported (no
//! key is removed and inserted in tree nodes, no rank is stored to walk and
//! renumber). An entry that comes or goes shifts the ones after it, which
//! is what their ranks do too. A batch
//! that moves a large share of the entries is applied whole in one merge,
//! O(n + m log m), so an epoch never costs more than a sort would.

/// Entries `K` in order; an entry's rank is its place, from 1.
#[derive(Debug)]
pub struct Ladder<K> {
    entries: Vec<K>,
}

impl<K: Ord + Clone> Default for Ladder<K> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

/// A batch at least 1 / RENUMBER_SHARE of the ladder is applied in one merge.
const RENUMBER_SHARE: usize = 8;

/// The rank of the entry at `index`.
fn rank_at(index: usize) -> Option<u32> {
    Some(index as u32 + 1)
}

impl<K: Ord + Clone> Ladder<K> {
    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first entry.
    pub fn first(&self) -> Option<&K> {
        self.entries.first()
    }

    /// The rank of `key`, if present.
    pub fn rank(&self, key: &K) -> Option<u32> {
        self.entries.binary_search(key).ok().and_then(rank_at)
    }

    /// The entries in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter()
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
        if moves.len() * RENUMBER_SHARE >= self.entries.len() {
            self.merge(moves, &mut touched);
            return;
        }
        for (old, new) in moves {
            self.move_one(old, new, &mut touched);
        }
    }

    fn find(&self, old: &K) -> usize {
        self.entries
            .binary_search(old)
            .expect("old keys are present")
    }

    /// Where `new` goes among the entries (absent from them).
    fn place(&self, new: &K) -> usize {
        match self.entries.binary_search(new) {
            Ok(i) | Err(i) => i,
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
                let from = self.find(&old);
                touched(&old, None);
                let to = self.place(&new);
                let at = if to <= from {
                    // Up: those in to..from move down one place.
                    self.entries[to..=from].rotate_right(1);
                    self.entries[to] = new;
                    for i in to + 1..=from {
                        touched(&self.entries[i], rank_at(i));
                    }
                    to
                } else {
                    // Down: those in from+1..to move up one place.
                    self.entries[from..to].rotate_left(1);
                    self.entries[to - 1] = new;
                    for i in from..to - 1 {
                        touched(&self.entries[i], rank_at(i));
                    }
                    to - 1
                };
                touched(&self.entries[at], rank_at(at));
            }
            (Some(old), None) => {
                let from = self.find(&old);
                self.entries.remove(from);
                touched(&old, None);
                for i in from..self.entries.len() {
                    touched(&self.entries[i], rank_at(i));
                }
            }
            (None, Some(new)) => {
                let at = self.place(&new);
                self.entries.insert(at, new);
                for i in at + 1..self.entries.len() {
                    touched(&self.entries[i], rank_at(i));
                }
                touched(&self.entries[at], rank_at(at));
            }
            (None, None) => {}
        }
    }

    /// Applies the moves whole: the entries that stay, merged with the new
    /// keys sorted, each reported if its place changed (a new one always).
    fn merge(
        &mut self,
        moves: Vec<(Option<K>, Option<K>)>,
        touched: &mut impl FnMut(&K, Option<u32>),
    ) {
        let (mut gone, mut news) = (Vec::new(), Vec::new());
        for (old, new) in moves {
            gone.extend(old);
            news.extend(new);
        }
        gone.sort_unstable();
        news.sort_unstable();
        for old in &gone {
            touched(old, None);
        }
        let old = std::mem::take(&mut self.entries);
        let mut merged = Vec::with_capacity(old.len() - gone.len() + news.len());
        // Appends `k`, reported with its rank if it `moved`.
        let mut push = |merged: &mut Vec<K>, k: K, moved: bool| {
            merged.push(k);
            if moved {
                let i = merged.len() - 1;
                touched(&merged[i], rank_at(i));
            }
        };
        let mut gone = gone.into_iter().peekable();
        let mut news = news.into_iter().peekable();
        for (j, k) in old.into_iter().enumerate() {
            if gone.next_if(|g| *g == k).is_some() {
                continue;
            }
            while let Some(n) = news.next_if(|n| *n < k) {
                push(&mut merged, n, true);
            }
            let moved = merged.len() != j;
            push(&mut merged, k, moved);
        }
        assert!(gone.next().is_none(), "old keys are present");
        for n in news {
            push(&mut merged, n, true);
        }
        self.entries = merged;
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
