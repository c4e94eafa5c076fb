//! Operators change the worker count without a rebuild. The recorded SailGP
//! day, the F1 season, the IRC channel and a set of calculation tasks are
//! produced in three slices; after each slice a different layout runs
//! until it has read everything so far and finished a snapshot after it,
//! then stops:
//!
//! 1. one process of two workers (1 × 2), from nothing;
//! 2. two processes of two workers (2 × 2), from the 1 × 2 snapshot, copied
//!    into each process's data directory as an operator would;
//! 3. one process of one worker (1 × 1), from the 2 × 2 snapshot, both
//!    processes' directories brought together.
//!
//! Each restart says in `/metrics` which layout it restored from, reads
//! fewer records than the topics hold, and the final standings, splits,
//! room members, message logs with their sequence numbers, and task
//! results equal those of one uninterrupted run.
//!
//! Then the changes the three layouts wrote, seqs included, are compared
//! record by record with those of one replay of the same topics (2 × 2 at
//! a 5 ms tick, no snapshot), which follows the recorded epochs.

#![allow(clippy::print_stdout)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::changes::{assert_same_changes, changes, ends, replayed};
use common::views::{
    Cluster, assert_same, final_views, fresh_topics, metrics_text, produce, recorded, records,
    records_read, sample, tasks, uninterrupted, wait_committed,
};
use ingest::KafkaConfig;
use ingest::datasets::Dataset;
use schemas::CalcTask;

/// The `k`th of `n` slices of each kind of `day`'s records, and of `tasks`
/// (the race definitions all in the first).
fn slice(day: &Dataset, tasks: &[CalcTask], k: usize, n: usize) -> (Dataset, Vec<CalcTask>) {
    fn part<T: Clone>(v: &[T], k: usize, n: usize) -> Vec<T> {
        v[v.len() * k / n..v.len() * (k + 1) / n].to_vec()
    }
    let definitions = if k == 0 {
        day.definitions.clone()
    } else {
        Vec::new()
    };
    let sliced = Dataset {
        definitions,
        entrants: part(&day.entrants, k, n),
        gps: part(&day.gps, k, n),
        timing: part(&day.timing, k, n),
        chat: part(&day.chat, k, n),
        skipped: Vec::new(),
    };
    (sliced, part(tasks, k, n))
}

/// Scrapes `url` until `found` takes its `/metrics` page, for at most a
/// minute.
fn wait_for<T>(url: &str, what: &str, found: impl Fn(&str) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(t) = found(&metrics_text(url)) {
            return t;
        }
        assert!(Instant::now() < deadline, "no {what} on {url}/metrics");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What one run of a layout did.
struct Run {
    /// Each process's `pace_snapshot_restored_point_seconds` sample:
    /// labels and value.
    restored: Vec<(String, f64)>,
    /// Race and chat records its processes read.
    read: u64,
}

/// Starts every process of `cluster`, waits until the pipeline has
/// committed all of the input and every worker has finished a snapshot
/// after that, and stops it.
fn run(cluster: &mut Cluster, kafka: &KafkaConfig, workers: usize) -> Run {
    cluster.start_all();
    wait_committed(kafka, Duration::from_secs(300));
    let committed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let urls: Vec<String> = cluster.urls.iter().flatten().cloned().collect();
    let restored = urls
        .iter()
        .map(|url| {
            wait_for(url, "restore report", |text| {
                text.lines()
                    .find(|l| l.starts_with("pace_snapshot_restored_point_seconds{"))
                    .map(|l| {
                        let (labels, value) = l.rsplit_once(' ').unwrap();
                        (labels.to_owned(), value.parse::<f64>().unwrap())
                    })
            })
        })
        .collect();
    for (i, url) in urls.iter().enumerate() {
        for w in i * workers..(i + 1) * workers {
            let metric = format!(r#"pace_snapshot_last_point_seconds{{worker="{w}"}}"#);
            wait_for(url, "snapshot after the input", |text| {
                sample(text, &metric).filter(|p| *p > committed)
            });
        }
    }
    let read = urls
        .iter()
        .map(|u| records_read(u, |topic| !topic.ends_with(".pace.calc")))
        .sum();
    cluster.stop();
    Run { restored, read }
}

/// Copies every process's `snapshots/` of `from` into every process's data
/// directory of `to`: what an operator does before starting a cluster of
/// another shape whose processes do not share a directory.
fn bring_snapshots(from: &Cluster, to: &Cluster) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }
    for j in 0..to.children.len() {
        for i in 0..from.children.len() {
            copy(
                &from.data_dir(i).join("snapshots"),
                &to.data_dir(j).join("snapshots"),
            );
        }
    }
}

#[test]
fn snapshots_of_one_by_two_workers_restore_into_two_by_two_then_one_by_one() {
    let (day, tasks) = (recorded(), tasks());
    let reference = uninterrupted(&day, &tasks, 1, 1);
    let (prefix, kafka) = fresh_topics("rescale");
    let before = ends(&kafka);
    let mut produced = 0;
    let mut next_slice = |k: usize| {
        let (d, t) = slice(&day, &tasks, k, 3);
        produce(&kafka, &d, &t, &mut || {});
        produced += records(&d) as u64;
        produced
    };
    let cluster = |processes, workers| {
        let mut c = Cluster::new(&kafka, &prefix, processes, workers, false);
        c.snapshot_every_ms = 500;
        c
    };

    next_slice(0);
    let mut one_by_two = cluster(1, 2);
    let first = run(&mut one_by_two, &kafka, 2);
    assert_eq!(
        first.restored[0].0,
        r#"pace_snapshot_restored_point_seconds{taken_workers="none",workers="2"}"#
    );

    let topics_hold = next_slice(1);
    let mut two_by_two = cluster(2, 2);
    bring_snapshots(&one_by_two, &two_by_two);
    let second = run(&mut two_by_two, &kafka, 2);
    for (labels, point) in &second.restored {
        assert_eq!(
            labels, r#"pace_snapshot_restored_point_seconds{taken_workers="2",workers="4"}"#,
            "both processes restore the 1 × 2 snapshot"
        );
        assert!(*point > 0.0);
    }
    println!("2 × 2 read {} of {topics_hold} records", second.read);
    assert!(
        second.read < topics_hold,
        "2 × 2 read {} records of {topics_hold}: it did not restore",
        second.read
    );

    let topics_hold = next_slice(2);
    let mut one_by_one = cluster(1, 1);
    bring_snapshots(&two_by_two, &one_by_one);
    let third = run(&mut one_by_one, &kafka, 1);
    assert_eq!(
        third.restored[0].0,
        r#"pace_snapshot_restored_point_seconds{taken_workers="4",workers="1"}"#
    );
    println!("1 × 1 read {} of {topics_hold} records", third.read);
    assert!(
        third.read < topics_hold,
        "1 × 1 read {} records of {topics_hold}: it did not restore",
        third.read
    );

    assert_same(&reference, &final_views(&kafka, &day.definitions, false));

    // The three layouts wrote, change by change and seq by seq, what one
    // replay of the same topics writes.
    let three = changes(&kafka, &before, &ends(&kafka));
    let input = (records(&day) + tasks.len()) as u64;
    assert_same_changes(&three, &replayed(&kafka, &prefix, input));
}
