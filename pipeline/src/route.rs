//! Where a keyed record goes: the stable [`hash`] every exchange and every
//! snapshot part routes by, so that worker `hash % workers` owns a key.

/// A stable hash, for routing records to workers.
pub fn hash<H: std::hash::Hash>(h: &H) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(h)
}

#[cfg(test)]
mod tests {
    use super::hash;

    /// A key routes alike as `&str`, `&&str` and `String`: the rank stage
    /// exchanges by the race as a `&str`, and the changelog sink takes its
    /// rows where they are, on the worker that hashes the race `String`
    /// there (`Job::KEYED`).
    #[test]
    fn a_key_routes_alike_borrowed_or_owned() {
        let race = "race-7";
        assert_eq!(hash(&race), hash(&race.to_owned()));
        assert_eq!(hash(&&race), hash(&race.to_owned()));
    }
}
