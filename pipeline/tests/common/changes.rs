//! The changelogs a run wrote, read back record by record, and a replay of
//! the same topics to compare them with (`epochs.rs`, `rescale.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ingest::KafkaConfig;
use ingest::reader::{Reader, Start};

use super::views::{Cluster, metrics_text, records_read, sample};

/// Per changelog topic and partition, the next offset to be written.
pub type Ends = BTreeMap<(String, i32), i64>;

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
pub fn ends(kafka: &KafkaConfig) -> Ends {
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
pub type Changes = BTreeMap<(String, String), Vec<String>>;

/// The changelog records written from `from` to `to`.
pub fn changes(kafka: &KafkaConfig, from: &Ends, to: &Ends) -> Changes {
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

pub fn count(c: &Changes) -> usize {
    c.values().map(Vec::len).sum()
}

/// Reads the whole input again with a cluster of 2 × 2 workers at a 5 ms
/// tick and no snapshot, until it has read all `input` records, then stops
/// it; the changes it wrote.
pub fn replayed(kafka: &KafkaConfig, prefix: &str, input: u64) -> Changes {
    replay(kafka, prefix, input, 0).changes
}

/// What [`replay`] saw.
pub struct Replay {
    /// The changes it wrote.
    pub changes: Changes,
    /// Per worker, the snapshot points it finished.
    pub points: Vec<u64>,
    /// How long it ran, start to the last metrics read.
    pub alive: Duration,
}

/// [`replayed`], writing snapshots every `snapshot_every_ms` (0: none).
pub fn replay(kafka: &KafkaConfig, prefix: &str, input: u64, snapshot_every_ms: u64) -> Replay {
    let from = ends(kafka);
    let mut again = Cluster::new(kafka, prefix, 2, 2, false);
    again.tick_ms = 5;
    again.snapshot_every_ms = snapshot_every_ms;
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
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
    // Every recorded epoch it followed is passed once each worker's
    // frontier is in its own lifetime.
    let frontier = |w: usize| {
        let text = metrics_text(&urls[w / again.workers]);
        sample(
            &text,
            &format!(r#"pace_pipeline_frontier_seconds{{worker="{w}"}}"#),
        )
        .unwrap_or(0.0)
    };
    while (0..again.workers * urls.len()).any(|w| frontier(w) < started_unix) {
        assert!(
            Instant::now() < deadline,
            "the replay's frontier did not pass the recorded epochs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let points = (0..again.workers * urls.len())
        .map(|w| {
            let text = metrics_text(&urls[w / again.workers]);
            sample(
                &text,
                &format!(r#"pace_snapshot_points_total{{worker="{w}"}}"#),
            )
            .unwrap_or(0.0) as u64
        })
        .collect();
    let alive = started.elapsed();
    // Everything it read is written before it exits.
    again.stop();
    Replay {
        changes: changes(kafka, &from, &ends(kafka)),
        points,
        alive,
    }
}

/// `two` holds exactly the changes of `one`, key by key in the same order.
pub fn assert_same_changes(one: &Changes, two: &Changes) {
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
