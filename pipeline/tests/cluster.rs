//! Timely's cluster mode: two `pace pipeline` processes × two workers on
//! loopback give the same final views as one process with one worker, on
//! the recorded SailGP day, the F1 season and the IRC channel plus a set of
//! calculation tasks: standings, splits, room membership, message logs with
//! their sequence numbers, and task results, each exactly once.
//!
//! (The standings change counter `seq` counts the view's changes, one per
//! epoch in which a race changed, so it depends on how input fell into
//! epochs and is not compared; message sequence numbers come from the input
//! order and are.)

mod common;

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ingest::KafkaConfig;
use ingest::datasets::{Dataset, f1, irc, sailgp};
use ingest::source::{Reader, StaticConsumer};
use schemas::{CalcTask, RaceDefinition, RoomChange, StandingsChange, TaskResult, Timestamp};
use serde_json::Value;

/// The recorded input: SailGP, F1 and IRC, as one day.
fn recorded() -> Dataset {
    let data = common::shared_data();
    let (sail, _) = sailgp::read(&data.join("sailgp-auckland-2025")).unwrap();
    let (f1, _) = f1::read(&data.join("f1-laps-2020")).unwrap();
    let chat = irc::read(
        &data.join("chat-irc/ubuntu_irc_2005-07-06_14.raw.txt"),
        "irc",
    )
    .unwrap();
    let mut day = sail;
    day.definitions.extend(f1.definitions);
    day.timing.extend(f1.timing);
    day.gps.extend(f1.gps);
    day.chat = chat;
    day
}

/// 400 seeded arithmetic tasks over 300 ids (so some ids come twice), some
/// of which fail (division by zero).
fn tasks() -> Vec<CalcTask> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    (0..400)
        .map(|i| {
            let ops = ["+", "-", "*", "/"];
            let expression = format!(
                "({} {} {}) {} {}",
                next(1000),
                ops[next(4) as usize],
                next(100),
                ops[next(4) as usize],
                next(20)
            );
            CalcTask {
                id: format!("task-{}", (i * 7) % 300),
                expression,
                time: Timestamp(1_700_000_000_000 + i as i64),
            }
        })
        .collect()
}

/// Produces the whole input to `kafka`'s topics.
fn produce(kafka: &KafkaConfig, day: &Dataset, tasks: &[CalcTask]) {
    let stop = Arc::new(AtomicBool::new(false));
    ingest::datasets::replay(kafka, day, 0.0, &stop, &mut |_, _| {}).unwrap();
    ingest::jsonl::replay(kafka, &kafka.topics.calc, tasks, 0.0, &stop).unwrap();
}

/// Pipeline processes, killed when dropped (a failing test leaves none
/// behind), and the directory of their hosts file and data.
struct Processes {
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `processes` `pace pipeline` processes of `workers` workers each.
fn start(kafka: &KafkaConfig, prefix: &str, processes: usize, workers: usize) -> Processes {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    // Free ports, all held until every one is chosen, so none comes twice.
    let listeners: Vec<std::net::TcpListener> = (0..processes)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    drop(listeners);
    std::fs::write(
        &hosts,
        ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let children = (0..processes)
        .map(|i| {
            let args: Vec<String> = [
                "pipeline",
                "--brokers",
                &kafka.brokers,
                "--topic-prefix",
                prefix,
                "--workers",
                &workers.to_string(),
                "--data-dir",
                &dir.path().join(format!("p{i}")).display().to_string(),
                "--no-archive",
                "--listen",
                "127.0.0.1:0",
                "--tick-ms",
                "20",
                "--processes",
                &processes.to_string(),
                "--process",
                &i.to_string(),
                "--hosts",
                &hosts.display().to_string(),
            ]
            .map(String::from)
            .to_vec();
            let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
            common::spawn_pace(&args).0
        })
        .collect();
    Processes {
        children,
        _dir: dir,
    }
}

/// Waits until the pipeline has committed every input record (so every
/// view change it caused is durable).
fn wait_committed(kafka: &KafkaConfig, timeout: Duration) {
    // A reader in the pipeline's group, for its committed offsets.
    let group = Reader::new(kafka, "pace-pipeline", &[]).unwrap();
    let t = &kafka.topics;
    let deadline = Instant::now() + timeout;
    for topic in [&t.gps, &t.timing, &t.races, &t.chat, &t.calc] {
        let partitions: Vec<i32> = (0..group.partitions(topic).unwrap()).collect();
        loop {
            let committed = group.committed(topic, &partitions).unwrap();
            let behind: i64 = partitions
                .iter()
                .map(|p| {
                    let (_, high) = group.watermarks(topic, *p).unwrap();
                    high - committed.get(p).copied().unwrap_or(0).max(0)
                })
                .sum();
            if behind == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{topic}: {behind} records not committed after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Every record of `topic` up to its end now.
fn read_all<T: serde::de::DeserializeOwned>(kafka: &KafkaConfig, topic: &str) -> Vec<T> {
    let reader = Reader::new(kafka, "pace-cluster-test", &[]).unwrap();
    let mut left: i64 = (0..reader.partitions(topic).unwrap())
        .map(|p| {
            let (low, high) = reader.watermarks(topic, p).unwrap();
            high - low
        })
        .sum();
    let mut c = StaticConsumer::new(kafka, "pace-cluster-test", topic, 0, 1).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while left > 0 {
        assert!(Instant::now() < deadline, "{topic}: {left} records unread");
        for r in c.poll(4096) {
            left -= 1;
            out.push(serde_json::from_slice(&r.payload).unwrap());
        }
    }
    out
}

/// The final views, as JSON for comparing.
#[derive(Debug, PartialEq)]
struct Final {
    standings: BTreeMap<String, Value>,
    rooms: BTreeMap<String, Value>,
    results: BTreeMap<String, Value>,
}

fn final_views(kafka: &KafkaConfig, defs: &[RaceDefinition]) -> Final {
    let views = ws_edge::views::Views::default();
    for d in defs {
        views.apply_race(d.clone());
    }
    for c in read_all::<StandingsChange>(kafka, &kafka.topics.standings) {
        views.apply_standings(c);
    }
    let standings = defs
        .iter()
        .map(|d| {
            let rows = views.standings(&d.id).map(|(_, rows)| rows);
            let splits = views.splits(&d.id).map(|(_, s)| s);
            (
                d.id.clone(),
                serde_json::json!({"rows": rows, "splits": splits}),
            )
        })
        .collect();
    let rooms_view = ws_edge::rooms::Rooms::default();
    for c in read_all::<RoomChange>(kafka, &kafka.topics.rooms) {
        rooms_view.apply(c);
    }
    let rooms = rooms_view
        .list()
        .into_iter()
        .map(|r| {
            let room = r.id;
            let mut members = rooms_view.members(&room).unwrap();
            members.sort_by(|a, b| a.user.cmp(&b.user));
            let mut messages = Vec::new();
            let mut since = 0;
            loop {
                let page = rooms_view.messages(&room, since, 500).unwrap().unwrap();
                let Some(last) = page.last() else { break };
                since = last.seq;
                messages.extend(page);
            }
            let v = serde_json::json!({"members": members, "messages": messages});
            (room, v)
        })
        .collect();
    let mut results = BTreeMap::new();
    for r in read_all::<TaskResult>(kafka, &kafka.topics.results) {
        let before = results.insert(r.id.clone(), serde_json::to_value(&r).unwrap());
        assert!(before.is_none(), "task {} has two results", r.id);
    }
    Final {
        standings,
        rooms,
        results,
    }
}

/// Runs the input through `processes` × `workers`; the final views.
fn run(day: &Dataset, tasks: &[CalcTask], processes: usize, workers: usize) -> Final {
    let prefix = common::unique_prefix(&format!("cluster-{processes}x{workers}"));
    let kafka = KafkaConfig::new(common::brokers()).with_topic_prefix(&prefix);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(ingest::admin::ensure_topics(&kafka, 4))
        .unwrap();
    produce(&kafka, day, tasks);
    let mut pipeline = start(&kafka, &prefix, processes, workers);
    wait_committed(&kafka, Duration::from_secs(300));
    let views = final_views(&kafka, &day.definitions);
    for c in &mut pipeline.children {
        // SIGTERM to every process: a cluster stops together.
        let _ = std::process::Command::new("kill")
            .arg(c.id().to_string())
            .status();
    }
    for c in &mut pipeline.children {
        let status = c.wait().unwrap();
        assert!(status.success(), "pace pipeline exited with {status}");
    }
    views
}

#[test]
fn two_processes_of_two_workers_give_the_views_of_one_worker() {
    let day = recorded();
    let tasks = tasks();
    let one = run(&day, &tasks, 1, 1);
    assert_eq!(one.standings.len(), 4 + 17, "SailGP races and F1 races");
    assert!(one.rooms.contains_key("irc"));
    assert_eq!(one.results.len(), 300, "one result per task id");
    let irc_messages = one.rooms["irc"]["messages"].as_array().unwrap().len();
    assert!(irc_messages > 500, "{irc_messages} IRC messages");
    let cluster = run(&day, &tasks, 2, 2);
    for (race, v) in &one.standings {
        assert_eq!(Some(v), cluster.standings.get(race), "race {race}");
    }
    assert_eq!(one.rooms, cluster.rooms);
    assert_eq!(one.results, cluster.results);
    assert_eq!(one, cluster);
}
