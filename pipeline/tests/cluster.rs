//! Timely's cluster mode: two `pace pipeline` processes × two workers on
//! loopback give the same final views as one process with one worker, on
//! the recorded SailGP day, the F1 season and the IRC channel plus a set of
//! calculation tasks: standings, splits, room membership, message logs with
//! their sequence numbers, and task results, each exactly once.
//!
//! (A start with another worker count than its snapshots were taken with
//! restores them: `rescale.rs`.)
//!
//! (The two runs read two copies of the input, on topics of their own, each
//! cut into its own epochs, so the standings change counter `seq`, one per
//! epoch in which a race changed, is not compared here; message sequence
//! numbers come from the input order and are. `epochs.rs` reads the same
//! topics twice and compares every change, seqs included.)

mod common;

use common::views::{recorded, tasks, uninterrupted};

#[test]
fn two_processes_of_two_workers_give_the_views_of_one_worker() {
    let day = recorded();
    let tasks = tasks();
    let one = uninterrupted(&day, &tasks, 1, 1);
    assert_eq!(one.standings.len(), 4 + 17, "SailGP races and F1 races");
    assert!(one.rooms.contains_key("irc"));
    assert_eq!(one.results.len(), 300, "one result per task id");
    let irc_messages = one.rooms["irc"]["messages"].as_array().unwrap().len();
    assert!(irc_messages > 500, "{irc_messages} IRC messages");
    let cluster = uninterrupted(&day, &tasks, 2, 2);
    for (race, v) in &one.standings {
        assert_eq!(Some(v), cluster.standings.get(race), "race {race}");
    }
    assert_eq!(one.rooms, cluster.rooms);
    assert_eq!(one.results, cluster.results);
    assert_eq!(one, cluster);
}
