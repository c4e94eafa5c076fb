//! Same offsets, same epochs (DESIGN.md, invariant 1; issue 43): the
//! recorded SailGP day, the F1 season, the IRC channel and a batch of
//! tasks are read twice from the same topics, first by one worker at a
//! 50 ms tick while they are produced, which cuts epochs by the wall clock
//! and records their bindings, then by a cluster of two processes of two workers at a 5 ms
//! tick with no snapshot, which follows them. Both write every view's
//! changelog, and the two runs' changes are equal record for record: per
//! view and key, the same changes with the same sequence numbers in the
//! same order.
//!
//! Without the bindings the second run cuts its input into other epochs
//! (ten times as many), and a race's `seq`, which counts the epochs that
//! changed it, differs at once.

#![allow(clippy::print_stdout)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::views::{
    Cluster, fresh_topics, produce, recorded, records_read, tasks, wait_committed,
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

#[test]
fn a_second_run_with_another_tick_and_layout_writes_the_same_changes_with_the_same_seqs() {
    let (day, tasks) = (recorded(), tasks());
    let (prefix, kafka) = fresh_topics("epochs");
    let before = ends(&kafka);
    // The first run reads the input as it is produced: many epochs.
    let mut first = Cluster::new(&kafka, &prefix, 1, 1, false);
    first.tick_ms = 50;
    first.start_all();
    // Paced, so that the first run's epochs each take a part of it.
    let mut sent = 0u64;
    produce(&kafka, &day, &tasks, &mut || {
        sent += 1;
        if sent.is_multiple_of(100) {
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    println!(
        "produced {sent} race and chat records and {} tasks",
        tasks.len()
    );
    wait_committed(&kafka, Duration::from_secs(300));
    first.stop();
    let after_first = ends(&kafka);
    let one = changes(&kafka, &before, &after_first);
    let n = count(&one);
    println!("the first run wrote {n} changes over {} keys", one.len());
    assert!(n > 300, "the first run wrote only {n} changes");

    // The second run reads the same topics from the start, with no
    // snapshot: once it has read every record it is stopped, and it
    // writes everything it read before it exits.
    let input = sent + tasks.len() as u64;
    let mut second = Cluster::new(&kafka, &prefix, 2, 2, false);
    second.tick_ms = 5;
    second.start_all();
    let urls: Vec<String> = second.urls.iter().flatten().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let read: u64 = urls.iter().map(|u| records_read(u, |_| true)).sum();
        if read >= input {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second run read {read} of {input} records"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    second.stop();
    let two = changes(&kafka, &after_first, &ends(&kafka));
    for ((topic, key), a) in &one {
        let b = two
            .get(&(topic.clone(), key.clone()))
            .cloned()
            .unwrap_or_default();
        if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
            panic!(
                "{topic} key {key}: change {i} of {} differs in the second run ({} changes):\nfirst:  {:?}\nsecond: {:?}",
                a.len(),
                b.len(),
                a.get(i),
                b.get(i)
            );
        }
    }
    assert_eq!(count(&two), n, "the second run wrote other keys too");
}
