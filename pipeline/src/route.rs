//! Where a keyed record goes: the stable [`hash`] every exchange and every
//! snapshot part routes by, so that worker `hash % workers` owns a key.

/// A stable hash, for routing records to workers.
pub fn hash<H: std::hash::Hash>(h: &H) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(h)
}
