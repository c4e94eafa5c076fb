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

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::views::{
    Cluster, fresh_topics, paced_replay, recorded, records, records_read, tasks, wait_committed,
    wait_sent,
};
use ingest::KafkaConfig;
use ingest::source::{Reader, Start};

/// Per changelog topic and partition, the next offset to be written.
type Ends = BTreeMap<(String, i32), i64>;

fn changelogs(kafka: &KafkaConfig) -> Vec<String> {
    let t = &kafka.topics;
    vec![
        t.standings.clone(),
        t.rooms.clone(),
        t.results.clone(),
        t.tournaments.clone(),
    ]
}

/// Where every changelog ends now.
fn ends(kafka: &KafkaConfig) -> Ends {
    let reader = Reader::new(kafka, "pace-epochs-test", &[]).unwrap();
    let mut out = Ends::new();
    for topic in changelogs(kafka) {
        for p in 0..reader.partitions(&topic).unwrap() {
            // A partition just made may not have its leader everywhere yet.
            let deadline = Instant::now() + Duration::from_secs(30);
            let high = loop {
                match reader.watermarks(&topic, p) {
                    Ok((_, high)) => break high,
                    Err(e) => assert!(Instant::now() < deadline, "{topic}/{p}: {e:?}"),
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            out.insert((topic.clone(), p), high);
        }
    }
    out
}

/// What one run wrote: per changelog topic and key, its records' payloads
/// in the order written.
type Changes = BTreeMap<(String, String), Vec<String>>;

/// The changelog records written from `from` to `to`.
fn changes(kafka: &KafkaConfig, from: &Ends, to: &Ends) -> Changes {
    let starts: Vec<(String, i32, Start)> = from
        .iter()
        .filter(|(k, o)| to[*k] > **o)
        .map(|((t, p), o)| (t.clone(), *p, Start::At(*o)))
        .collect();
    let mut left: i64 = from.iter().map(|(k, o)| to[k] - o).sum();
    let mut out = Changes::new();
    if left == 0 {
        return out;
    }
    let mut reader = Reader::new(kafka, "pace-epochs-test", &starts).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while left > 0 {
        assert!(Instant::now() < deadline, "{left} changelog records unread");
        for (i, r) in reader.poll(4096, Duration::from_millis(200)) {
            let topic = reader.topics()[i].clone();
            if r.offset >= to[&(topic.clone(), r.partition)] {
                continue;
            }
            left -= 1;
            let key = String::from_utf8(r.key.unwrap_or_default()).unwrap();
            out.entry((topic, key))
                .or_default()
                .push(String::from_utf8(r.payload).unwrap());
        }
    }
    out
}

fn count(c: &Changes) -> usize {
    c.values().map(Vec::len).sum()
}

/// Reads the whole input again with a cluster of 2 × 2 workers at a 5 ms
/// tick and no snapshot, until it has read all `input` records, then stops
/// it; the changes it wrote.
fn replayed(kafka: &KafkaConfig, prefix: &str, input: u64) -> Changes {
    let from = ends(kafka);
    let mut again = Cluster::new(kafka, prefix, 2, 2, false);
    again.tick_ms = 5;
    again.start_all();
    let urls: Vec<String> = again.urls.iter().flatten().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let read: u64 = urls.iter().map(|u| records_read(u, |_| true)).sum();
        if read >= input {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replay read {read} of {input} records"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Everything it read is written before it exits.
    again.stop();
    changes(kafka, &from, &ends(kafka))
}

/// `two` holds exactly the changes of `one`, key by key in the same order.
fn assert_same_changes(one: &Changes, two: &Changes) {
    for ((topic, key), a) in one {
        let b = two
            .get(&(topic.clone(), key.clone()))
            .cloned()
            .unwrap_or_default();
        if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
            panic!(
                "{topic} key {key}: change {i} of {} differs in the replay ({} changes):\nrun:    {:?}\nreplay: {:?}",
                a.len(),
                b.len(),
                a.get(i),
                b.get(i)
            );
        }
    }
    assert_eq!(count(two), count(one), "the replay wrote other keys too");
}

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

    let input = (records(&day) + tasks.len()) as u64;
    assert_same_changes(&one, &replayed(&kafka, &prefix, input));
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
                serde_json::from_str::<serde_json::Value>(c).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        let want: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, want, "race {key}: each seq once, in order");
    }
    let input = (records(&day) + tasks.len()) as u64;
    assert_same_changes(&one, &replayed(&kafka, &prefix, input));
}
