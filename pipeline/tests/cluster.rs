//! Timely's cluster mode: two `pace pipeline` processes × two workers on
//! loopback give the same final views as one process with one worker, on
//! the recorded SailGP day, the F1 season and the IRC channel plus a set of
//! calculation tasks: standings, splits, room membership, message logs with
//! their sequence numbers, and task results, each exactly once.
//!
//! A start with another worker count than its snapshots were taken with
//! says so, in its log and in `/metrics`, and rebuilds; the next start with
//! the same count restores.
//!
//! (The standings change counter `seq` counts the view's changes, one per
//! epoch in which a race changed, so it depends on how input fell into
//! epochs and is not compared; message sequence numbers come from the input
//! order and are.)

mod common;

use std::time::{Duration, Instant};

use common::views::{
    Cluster, fresh_topics, metrics_text, produce, recorded, sample, tasks, uninterrupted,
    wait_committed,
};

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

/// Runs one process until it has finished a snapshot after all of the
/// input; what it says it restored at start, and the snapshot point.
fn run_once(cluster: &mut Cluster, kafka: &ingest::KafkaConfig) -> (String, f64, f64) {
    cluster.start_all();
    let url = cluster.urls[0].clone().unwrap();
    wait_committed(kafka, Duration::from_secs(300));
    let restored = wait_for(&url, "restore report", |text| {
        text.lines()
            .find(|l| l.starts_with("pace_snapshot_restored_point_seconds{"))
            .map(|l| {
                let (labels, value) = l.rsplit_once(' ').unwrap();
                (labels.to_owned(), value.parse::<f64>().unwrap())
            })
    });
    // A point finished after the input was committed.
    let committed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let point = wait_for(&url, "snapshot after the input", |text| {
        sample(text, r#"pace_snapshot_last_point_seconds{worker="0"}"#).filter(|p| *p > committed)
    });
    cluster.stop();
    (restored.0, restored.1, point)
}

#[test]
fn a_start_with_another_worker_count_shows_that_it_rebuilds_then_the_next_restores() {
    let (prefix, kafka) = fresh_topics("layout");
    produce(&kafka, &recorded(), &tasks(), &mut || {});
    let mut cluster = Cluster::new(&kafka, &prefix, 1, 1, false);
    cluster.snapshot_every_ms = 500;
    let (labels, value, one) = run_once(&mut cluster, &kafka);
    assert_eq!(
        (labels.as_str(), value),
        (
            r#"pace_snapshot_restored_point_seconds{taken_workers="none",workers="1"}"#,
            0.0
        )
    );
    cluster.workers = 2;
    let (labels, value, two) = run_once(&mut cluster, &kafka);
    assert_eq!(
        (labels.as_str(), value),
        (
            r#"pace_snapshot_restored_point_seconds{taken_workers="1",workers="2"}"#,
            0.0
        ),
        "a 1-worker snapshot is not restored into 2 workers, and the page says so"
    );
    assert!(two > one);
    let (labels, value, _) = run_once(&mut cluster, &kafka);
    assert_eq!(
        labels,
        r#"pace_snapshot_restored_point_seconds{taken_workers="2",workers="2"}"#
    );
    assert!(
        value >= two,
        "restored from the latest point the previous start finished ({value} < {two})"
    );
}
