//! Same offsets, same epochs (DESIGN.md, invariant 1; issue 43). The
//! recorded SailGP day, the F1 season, the IRC channel and a batch of
//! tasks are produced, paced, while a pipeline reads them; it cuts epochs
//! by the wall clock and records their bindings. Then a cluster of two
//! processes of two workers at a 5 ms tick, with no snapshot, reads the
//! same topics again, following the bindings. Both write every view's
//! changelog, and the two runs' changes are equal record for record: per
//! view and key, the same changes with the same sequence numbers in the
//! same order.
//!
//! - One worker at a 50 ms tick, then the replay.
//! - Two workers at a 20 ms tick, SIGKILLed half-way and restarted from
//!   their snapshot: they read again what came after it, into the same
//!   epochs, and write only what the changelog did not hold, so each race's
//!   seqs come once and in order; then the replay.
//!
//! Without the bindings the replay cuts its input into other epochs, and a
//! race's `seq`, which counts the epochs that changed it, differs at once.

#![allow(clippy::print_stdout)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::changes::{assert_same_changes, changes, count, ends, replay, replayed};
use common::views::{
    Cluster, fresh_topics, paced_replay, read_all, recorded, records, tasks, wait_committed,
    wait_sent,
};

#[test]
fn a_second_run_with_another_tick_and_layout_writes_the_same_changes_with_the_same_seqs() {
    let (day, tasks) = (recorded(), tasks());
    let (prefix, kafka) = fresh_topics("epochs");
    let before = ends(&kafka);
    // The first run reads the input as it is produced: many epochs.
    let mut first = Cluster::new(&kafka, &prefix, 1, 1, false);
    first.tick_ms = 50;
    first.start_all();
    let (producing, _) = paced_replay(&kafka, &day, &tasks);
    producing.join().unwrap();
    wait_committed(&kafka, Duration::from_secs(300));
    first.stop();
    let one = changes(&kafka, &before, &ends(&kafka));
    let n = count(&one);
    println!("the first run wrote {n} changes over {} keys", one.len());
    assert!(n > 300, "the first run wrote only {n} changes");

    // The replay writes snapshots as it goes: every point in the recorded
    // span is finished on every worker, although some of its sources (those
    // of topics nothing was produced to, those whose partitions a worker
    // does not own) have no epoch to follow there.
    let epochs: Vec<u64> = read_all::<schemas::EpochBinding>(&kafka, &kafka.topics.bindings)
        .iter()
        .map(|b| b.epoch)
        .collect();
    let (first, last) = (*epochs.iter().min().unwrap(), *epochs.iter().max().unwrap());
    let every = ((last - first) / 20).max(100);
    let in_span = last / every - first / every;
    let input = (records(&day) + tasks.len()) as u64;
    let again = replay(&kafka, &prefix, input, every);
    // Points at or after its start are the live ones: at most one per
    // `every` of its life, and one more.
    let live = again.alive.as_millis() as u64 / every + 1;
    println!(
        "recorded epochs over {} ms: {in_span} snapshot points every {every} ms; the replay lived {:?} and finished {:?}",
        last - first,
        again.alive,
        again.points
    );
    for (w, &n) in again.points.iter().enumerate() {
        assert!(
            n > live && n >= in_span,
            "worker {w} finished {n} snapshot points in a life of {:?} ({live} live ones at most): not the {in_span} of the recorded span",
            again.alive
        );
    }
    assert_same_changes(&one, &again.changes);
}

#[test]
fn a_run_killed_half_way_writes_each_change_once_the_same_as_a_replay() {
    let (day, tasks) = (recorded(), tasks());
    let (prefix, kafka) = fresh_topics("epochs-killed");
    let before = ends(&kafka);
    let mut first = Cluster::new(&kafka, &prefix, 1, 2, false);
    first.snapshot_every_ms = 300;
    first.start_all();
    let (producing, sent) = paced_replay(&kafka, &day, &tasks);
    wait_sent(&sent, records(&day) / 2);
    first.kill(0);
    println!(
        "killed at {} of {} records",
        sent.load(Ordering::Relaxed),
        records(&day)
    );
    first.start(0);
    producing.join().unwrap();
    wait_committed(&kafka, Duration::from_secs(300));
    first.stop();
    let one = changes(&kafka, &before, &ends(&kafka));
    println!("the killed and restarted run wrote {} changes", count(&one));
    // A race's changes carry every seq once, in order.
    for ((topic, key), list) in &one {
        if *topic != kafka.topics.standings {
            continue;
        }
        let seqs: Vec<u64> = list
            .iter()
            .map(|c| {
                serde_json::from_str::<schemas::StandingsChange>(c)
                    .unwrap()
                    .seq
            })
            .collect();
        let want: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, want, "race {key}: each seq once, in order");
    }
    let input = (records(&day) + tasks.len()) as u64;
    assert_same_changes(&one, &replayed(&kafka, &prefix, input));
}
