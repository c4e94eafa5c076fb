//! Faults during a replay of the recorded SailGP day, F1 season, IRC channel
//! and a set of calculation tasks, each compared with an uninterrupted run
//! of the same input:
//!
//! - the real broker (a second one of the test's own, so that no other test
//!   loses its broker) is stopped for 10 s mid-replay and started again;
//! - one of two pipeline processes is killed with SIGKILL mid-replay; the
//!   other one exits by itself (a timely cluster cannot take a process back)
//!   and both are started again, as a supervisor would. They write a
//!   snapshot every 500 ms, so the restart resumes from one: the restarted
//!   processes read fewer records than the topics hold.
//!
//! In both the final standings, splits, room members, message logs with
//! their sequence numbers and task results equal the uninterrupted run's,
//! and the archive holds every input record exactly once.
//!
//! A third test follows a live race through a `pace edge` over WebSocket
//! while the pipeline is killed and restarted: after its first snapshot the
//! spectator gets only deltas, every seq once and in order, through the
//! restart (the restarted pipeline cuts what it reads again into the
//! recorded epochs and writes only the changes the changelog does not
//! hold), and a client that comes back with the seq it had before the kill
//! gets exactly the deltas it missed; the tasks done before the kill do not
//! have their results written again.

#![allow(clippy::print_stdout)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::views::{
    Cluster, assert_same, final_views, paced_replay, recorded, records, tasks, topics,
    uninterrupted, wait_committed, wait_sent,
};
use ingest::KafkaConfig;

/// A broker of the test's own, started by the project's `kafka.sh` on a free
/// pair of ports; stopped and its data deleted when dropped.
struct Broker {
    port: u16,
}

impl Broker {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ingest/kafka/kafka.sh")
    }

    fn kafka_sh(&self, what: &str) -> std::io::Result<std::process::ExitStatus> {
        Command::new("bash")
            .arg(Self::script())
            .arg(what)
            .env("PACE_KAFKA_PORT", self.port.to_string())
            .status()
    }

    fn try_run(&self, what: &str) -> std::process::ExitStatus {
        self.kafka_sh(what).unwrap()
    }

    fn run(&self, what: &str) {
        let status = self.try_run(what);
        assert!(status.success(), "kafka.sh {what}: {status}");
    }

    /// Starts a broker on a port whose next port (the controller's) is free
    /// too. The ports are free when chosen but may be taken before the
    /// broker binds them (another test's client, say): then it tries a new
    /// pair, up to five times.
    fn start() -> Self {
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = loop {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let port = l.local_addr().unwrap().port();
                if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                    break port;
                }
            };
            let broker = Self { port };
            let status = broker.try_run("up");
            if status.success() {
                return broker;
            }
            failures.push(format!("port {port}: {status}"));
            // Dropping it stops what may be left and deletes its data.
        }
        panic!("kafka.sh up failed five times: {failures:?}");
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.kafka_sh("down");
    }
}

/// Race and chat records a pipeline process has read since it started,
/// from its `/metrics`.
fn records_read(url: &str) -> u64 {
    common::views::records_read(url, |topic| !topic.ends_with(".pace.calc"))
}

/// The archive of `data` holds every input record exactly once.
fn assert_archived_once(kafka: &KafkaConfig, data: &std::path::Path) {
    let report = common::settled(kafka, data, Duration::from_secs(240));
    assert!(report.ok(), "{report}");
    println!("{report}");
}

#[test]
fn a_ten_second_broker_outage_mid_replay_changes_no_view_and_archives_nothing_twice() {
    let (day, tasks) = (recorded(), tasks());
    let reference = uninterrupted(&day, &tasks, 1, 2);

    let broker = Broker::start();
    let prefix = common::unique_prefix("outage");
    let kafka = KafkaConfig::new(broker.address()).with_topic_prefix(&prefix);
    topics(&kafka);
    let mut pipeline = Cluster::new(&kafka, &prefix, 1, 2, true);
    pipeline.snapshot_every_ms = 500;
    pipeline.start_all();
    let (replay, sent) = paced_replay(&kafka, &day, &tasks);
    wait_sent(&sent, records(&day) / 3);
    println!(
        "stopping the broker at {} of {} records",
        sent.load(Ordering::Relaxed),
        records(&day)
    );
    let stopping = Instant::now();
    broker.run("stop");
    println!("stopped in {:?}", stopping.elapsed());
    std::thread::sleep(Duration::from_secs(10));
    let starting = Instant::now();
    broker.run("up");
    println!("started again in {:?}", starting.elapsed());
    replay.join().unwrap();
    wait_committed(&kafka, Duration::from_secs(300));
    assert!(
        pipeline.exited(0, Duration::ZERO).is_none(),
        "the pipeline exited during the outage"
    );
    assert_same(&reference, &final_views(&kafka, &day.definitions, false));
    assert_archived_once(&kafka, &pipeline.data_dir(0));
    pipeline.stop();
}

#[test]
fn a_pipeline_process_killed_mid_replay_and_restarted_changes_no_view() {
    let (day, tasks) = (recorded(), tasks());
    let reference = uninterrupted(&day, &tasks, 1, 2);

    let (prefix, kafka) = common::views::fresh_topics("killed");
    let mut pipeline = Cluster::new(&kafka, &prefix, 2, 1, true);
    pipeline.snapshot_every_ms = 500;
    pipeline.start_all();
    let (replay, sent) = paced_replay(&kafka, &day, &tasks);
    wait_sent(&sent, records(&day) / 3);
    pipeline.kill(1);
    println!(
        "process 1 killed at {} of {} records",
        sent.load(Ordering::Relaxed),
        records(&day)
    );
    // The survivor cannot go on without its peer; it exits, and a supervisor
    // (here the test) starts both again.
    let status = pipeline.exited(0, Duration::from_secs(60));
    let status = status.expect("process 0 exits when its peer dies");
    assert!(!status.success(), "process 0 exits with an error: {status}");
    pipeline.start_all();
    replay.join().unwrap();
    wait_committed(&kafka, Duration::from_secs(300));
    // The restarted processes resumed from a snapshot's offsets: together
    // they read fewer race and chat records than the topics hold.
    let read: u64 = pipeline
        .urls
        .iter()
        .flatten()
        .map(|u| records_read(u))
        .sum();
    println!(
        "after the restart: {read} race and chat records read of {}",
        records(&day)
    );
    assert!(
        read < records(&day) as u64,
        "{read} records read after the restart: no snapshot was restored"
    );
    assert_same(&reference, &final_views(&kafka, &day.definitions, false));
    assert_archived_once(&kafka, &pipeline.data_dir(0));
    pipeline.stop();
}

#[test]
fn a_spectator_connected_through_a_restart_gets_only_the_deltas_that_follow() {
    let (prefix, kafka) = common::views::fresh_topics("continuity");
    let mut pipeline = Cluster::new(&kafka, &prefix, 1, 1, false);
    pipeline.snapshot_every_ms = 300;
    pipeline.start_all();
    let (edge, base) = common::pace_edge(&kafka, None);
    let edge = common::Killed(edge);

    // A generated race of 50 runners, a second of race every 50 ms.
    let producing = {
        let kafka = kafka.clone();
        std::thread::spawn(move || {
            let p = ingest::producer::TrackedProducer::new(&kafka).unwrap();
            let mut race =
                ingest::generate::DemoRace::new("live", 50, 7, schemas::Timestamp::now());
            ingest::jsonl::send_record(&p, &kafka.topics.races, &race.definition).unwrap();
            for i in 0..50 {
                let task = schemas::CalcTask {
                    id: format!("t{i}"),
                    expression: format!("{i} * 3"),
                    time: schemas::Timestamp::now(),
                };
                ingest::jsonl::send_record(&p, &kafka.topics.calc, &task).unwrap();
            }
            for _ in 0..300 {
                for point in race.tick() {
                    ingest::jsonl::send_record(&p, &kafka.topics.gps, &point).unwrap();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            p.flush(Duration::from_secs(30)).unwrap();
        })
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let frames: Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Arc::default();
    let mut ws = rt.block_on(async {
        let http = reqwest::Client::new();
        let url = format!("{base}/api/races/live");
        common::eventually("the race at the edge", Duration::from_secs(30), || async {
            let race: serde_json::Value = common::get_json(&http, &url).await?;
            (race["id"] == "live").then_some(())
        })
        .await;
        let url = common::ws_url(&base, "/ws/races/live");
        tokio_tungstenite::connect_async(url).await.unwrap().0
    });
    let collector = {
        let frames = frames.clone();
        rt.spawn(async move {
            use futures_util::StreamExt;
            while let Some(Ok(msg)) = ws.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
                    frames
                        .lock()
                        .unwrap()
                        .push(serde_json::from_str(&text).unwrap());
                }
            }
        })
    };
    std::thread::sleep(Duration::from_secs(5));
    let at_kill = frames.lock().unwrap().len();
    pipeline.kill(0);
    pipeline.start(0);
    producing.join().unwrap();
    wait_committed(&kafka, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));
    collector.abort();
    let frames = frames.lock().unwrap().clone();
    // A client that kept the seq it had before the kill comes back with it
    // after the restart: it gets exactly the deltas it missed, the very
    // frames the connected spectator got.
    let seq_of = |f: &serde_json::Value| {
        (f["type"] == "snapshot" || f["type"] == "delta").then(|| f["seq"].as_u64().unwrap())
    };
    let kept = frames[..at_kill].iter().rev().find_map(seq_of).unwrap();
    let last = frames.iter().rev().find_map(seq_of).unwrap();
    let resumed: Vec<serde_json::Value> = rt.block_on(async {
        use futures_util::StreamExt;
        let url = common::ws_url(&base, &format!("/ws/races/live?since={kept}"));
        let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let done = |got: &[serde_json::Value]| {
            got.first().is_some_and(|f| f["type"] != "resumed")
                || got
                    .last()
                    .is_some_and(|f| f["type"] == "delta" && f["seq"].as_u64() == Some(last))
        };
        while !done(&got) {
            let msg = tokio::time::timeout_at(deadline, ws.next())
                .await
                .unwrap_or_else(|_| panic!("resuming at {kept}: {got:?}"))
                .unwrap()
                .unwrap();
            if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
                got.push(serde_json::from_str(&text).unwrap());
            }
        }
        got
    });
    drop(edge);
    pipeline.stop();
    assert_eq!(resumed[0]["type"], "resumed", "{:?}", resumed[0]);
    assert_eq!(resumed[0]["since"], kept);
    let missed: Vec<&serde_json::Value> = frames
        .iter()
        .filter(|f| f["type"] == "delta" && f["seq"].as_u64().unwrap() > kept)
        .collect();
    assert_eq!(
        resumed[1..].iter().collect::<Vec<_>>(),
        missed,
        "since={kept}: exactly the deltas missed"
    );
    println!(
        "since={kept} resumed with {} deltas, to seq {last}",
        missed.len()
    );

    let seqs: Vec<(String, u64)> = frames
        .iter()
        .filter(|f| f["type"] == "snapshot" || f["type"] == "delta")
        .map(|f| {
            (
                f["type"].as_str().unwrap().to_owned(),
                f["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    println!("{} frames, {at_kill} before the kill: {seqs:?}", seqs.len());
    assert_eq!(
        seqs[0].0, "snapshot",
        "a subscription starts with a snapshot"
    );
    assert!(
        seqs.len() > at_kill + 10,
        "frames went on after the restart"
    );
    for (i, w) in seqs.windows(2).enumerate() {
        let ((_, before), (kind, seq)) = (&w[0], &w[1]);
        if kind == "delta" {
            assert_eq!(
                *seq,
                before + 1,
                "frame {}: deltas follow each other",
                i + 1
            );
        }
    }
    let snapshots: Vec<u64> = seqs[1..]
        .iter()
        .filter(|(kind, _)| kind == "snapshot")
        .map(|(_, seq)| *seq)
        .collect();
    // The restarted pipeline cut what it read again into the recorded
    // epochs, made the same changes with the same seqs, and wrote only
    // those the changelog did not hold: the edge had nothing to resend.
    assert!(
        snapshots.is_empty(),
        "no snapshot after the restart, only deltas: {snapshots:?}"
    );
    let deltas: Vec<u64> = seqs[1..].iter().map(|(_, seq)| *seq).collect();
    assert_eq!(
        deltas,
        (seqs[0].1 + 1..seqs[0].1 + 1 + deltas.len() as u64).collect::<Vec<_>>(),
        "every seq once, in order"
    );
    // The tasks, done long before the kill, are in the snapshot: their
    // results are not written again.
    let results = common::views::read_all::<schemas::TaskResult>(&kafka, &kafka.topics.results);
    assert_eq!(results.len(), 50, "each task's result once");
}
