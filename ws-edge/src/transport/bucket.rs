//! Budgets: token buckets, one per connection or one per key (a token's
//! subject, a client address) shared by every connection of this edge.
//!
//! A [`Bucket`] holds up to `burst` tokens and refills at `per_second`;
//! whatever a client sends takes one. A [`Keyed`] limiter holds a bucket per
//! key in a map of bounded size: a bucket that has refilled to full says
//! nothing a fresh one would not, so it is the first to go when the map is
//! full, and the oldest goes when none is full. Memory is bounded by
//! [`Keyed::capacity`] whatever the keys are.
//!
//! A keyed budget may be shared with other edges: each notes what it gave
//! out ([`Keyed::usage`]) and tells the others, who take the same from
//! their own buckets ([`Keyed::charge`]; see `gossip.rs`).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

/// A rate: `burst` at once, `per_second` sustained.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Tokens a full bucket holds.
    pub burst: f64,
    /// Tokens added per second.
    pub per_second: f64,
}

impl Rate {
    /// `burst` at once, `per_second` sustained.
    pub const fn new(burst: f64, per_second: f64) -> Self {
        Self { burst, per_second }
    }
}

/// A token bucket.
#[derive(Clone, Debug)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
    rate: Rate,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: Rate) -> Self {
        Self {
            tokens: rate.burst,
            at: Instant::now(),
            rate,
        }
    }

    fn refill(&mut self, now: Instant) {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate.per_second;
        self.tokens = (self.tokens + refill).min(self.rate.burst);
        self.at = now;
    }

    /// Takes one token, if there is one.
    pub fn take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes `n` tokens given out elsewhere, going below zero if need be
    /// (at most a whole burst below, so a subject is never locked out for
    /// longer than a burst takes to refill).
    fn charge_at(&mut self, now: Instant, n: f64) {
        self.refill(now);
        self.tokens = (self.tokens - n).max(-self.rate.burst);
    }

    /// Whether it has refilled to full by `now`.
    fn full_at(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.rate.burst
    }
}

/// Token buckets by key, at most `capacity` of them.
pub struct Keyed<K> {
    rate: Rate,
    capacity: usize,
    inner: Mutex<Inner<K>>,
}

struct Inner<K> {
    buckets: HashMap<K, Bucket>,
    /// Keys in the order their buckets were made (each key once).
    order: VecDeque<K>,
    /// Tokens given out per key since [`Keyed::usage`] last looked.
    used: HashMap<K, u32>,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    /// Buckets of `rate`, at most `capacity` keys at once.
    pub fn new(rate: Rate, capacity: usize) -> Self {
        Self {
            rate,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                buckets: HashMap::new(),
                order: VecDeque::new(),
                used: HashMap::new(),
            }),
        }
    }

    /// The most keys held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("limiter lock").buckets.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes one token from `key`'s bucket, if there is one.
    pub fn take(&self, key: &K) -> bool {
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("limiter lock");
        let took = inner.bucket(key, now, self).take_at(now);
        if took && (inner.used.len() < self.capacity || inner.used.contains_key(key)) {
            *inner.used.entry(key.clone()).or_default() += 1;
        }
        took
    }

    /// Takes `n` tokens that another edge gave out for `key`.
    pub fn charge(&self, key: &K, n: u32) {
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("limiter lock");
        inner.bucket(key, now, self).charge_at(now, f64::from(n));
    }

    /// The tokens given out here since the last call, for each key that
    /// took at least `min` (the others are forgotten).
    pub fn usage(&self, min: u32) -> Vec<(K, u32)> {
        let mut inner = self.inner.lock().expect("limiter lock");
        inner.used.drain().filter(|(_, n)| *n >= min).collect()
    }

    /// The rate each key's bucket has.
    pub fn rate(&self) -> Rate {
        self.rate
    }
}

impl<K: Hash + Eq + Clone> Inner<K> {
    /// `key`'s bucket, made (full) if it has none.
    fn bucket(&mut self, key: &K, now: Instant, keyed: &Keyed<K>) -> &mut Bucket {
        if !self.buckets.contains_key(key) {
            if self.buckets.len() >= keyed.capacity {
                self.make_room(now, keyed.capacity);
            }
            self.buckets.insert(key.clone(), Bucket::new(keyed.rate));
            self.order.push_back(key.clone());
        }
        self.buckets.get_mut(key).expect("just made")
    }

    /// Drops the buckets that are full again, then the oldest until an
    /// eighth of the room is free, so that a sweep comes at most once every
    /// `capacity / 8` new keys.
    fn make_room(&mut self, now: Instant, capacity: usize) {
        let Inner { buckets, order, .. } = self;
        order.retain(|k| {
            let full = buckets.get_mut(k).is_none_or(|b| b.full_at(now));
            if full {
                buckets.remove(k);
            }
            !full
        });
        let target = capacity - capacity.div_ceil(8);
        while buckets.len() > target {
            let Some(old) = order.pop_front() else { break };
            buckets.remove(&old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let mut b = Bucket::new(Rate::new(10.0, 5.0));
        assert_eq!((0..20).filter(|_| b.take()).count(), 10);
        std::thread::sleep(Duration::from_millis(450));
        assert_eq!((0..20).filter(|_| b.take()).count(), 2);
    }

    #[test]
    fn one_bucket_per_key_and_the_map_stays_bounded() {
        let k = Keyed::new(Rate::new(3.0, 0.0), 100);
        assert_eq!((0..10).filter(|_| k.take(&"ann")).count(), 3);
        assert_eq!((0..10).filter(|_| k.take(&"bob")).count(), 3);
        // A million other keys never hold more than the capacity.
        let k = Keyed::new(Rate::new(1.0, 0.0), 100);
        for i in 0..1_000_000u64 {
            assert!(k.take(&i), "a new key starts full");
            assert!(k.len() <= 100);
        }
    }

    #[test]
    fn usage_is_told_and_charged_elsewhere() {
        let here = Keyed::new(Rate::new(10.0, 0.0), 100);
        let there = Keyed::new(Rate::new(10.0, 0.0), 100);
        for _ in 0..6 {
            assert!(here.take(&"dev"));
        }
        assert!(here.take(&"quiet"));
        let told = here.usage(2);
        assert_eq!(told, [("dev", 6)], "below the minimum is not told");
        assert!(here.usage(1).is_empty(), "told once");
        for (k, n) in told {
            there.charge(&k, n);
        }
        assert_eq!((0..10).filter(|_| there.take(&"dev")).count(), 4);
        // Charged below zero, a bucket refills from there.
        let deep = Keyed::new(Rate::new(2.0, 1000.0), 10);
        deep.charge(&"x", 100);
        assert!(!deep.take(&"x"));
        std::thread::sleep(Duration::from_millis(10));
        assert!(deep.take(&"x"), "at most a burst below zero");
    }

    #[test]
    fn refilled_buckets_are_dropped_first() {
        let k = Keyed::new(Rate::new(2.0, 1000.0), 2);
        assert!(k.take(&1));
        assert!(k.take(&2));
        std::thread::sleep(Duration::from_millis(10));
        assert!(k.take(&3));
        assert_eq!(k.len(), 1, "both full again, both dropped");
    }
}
