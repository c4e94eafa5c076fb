//! Whole-input runs of `pace pipeline` processes and the final views they
//! leave in the changelogs, for the cluster and fault tests: the recorded
//! input, a cluster of processes that can be killed and restarted, waiting
//! until every input record is committed, and folding the changelogs with
//! the edge's own view code.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ingest::KafkaConfig;
use ingest::datasets::{Dataset, f1, irc, sailgp};
use ingest::reader::Reader;
use ingest::source::StaticConsumer;
use schemas::{CalcTask, RaceDefinition, RoomChange, StandingsChange, TaskResult, Timestamp};
use serde_json::Value;

/// The recorded input: SailGP, F1 and IRC, as one day.
pub fn recorded() -> Dataset {
    let data = super::shared_data();
    let (sail, _) = sailgp::read(&data.join("sailgp-auckland-2025")).unwrap();
    let (f1, _) = f1::read(&data.join("f1-laps-2020")).unwrap();
    let chat = irc::read(
        &data.join("chat-irc/ubuntu_irc_2005-07-06_14.raw.txt"),
        "irc",
    )
    .unwrap()
    .chat;
    let mut day = sail;
    day.definitions.extend(f1.definitions);
    day.timing.extend(f1.timing);
    day.gps.extend(f1.gps);
    day.chat = chat;
    day
}

/// 400 seeded arithmetic tasks over 300 ids (so some ids come twice), some
/// of which fail (division by zero).
pub fn tasks() -> Vec<CalcTask> {
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

/// Creates `kafka`'s topics, 4 partitions each.
pub fn topics(kafka: &KafkaConfig) {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(ingest::admin::ensure_topics(kafka, 4))
        .unwrap();
}

/// Produces the whole input to `kafka`'s topics as fast as the broker takes
/// it, calling `sent` after each record of the day.
pub fn produce(kafka: &KafkaConfig, day: &Dataset, tasks: &[CalcTask], sent: &mut dyn FnMut()) {
    let stop = Arc::new(AtomicBool::new(false));
    ingest::datasets::replay(kafka, day, 0.0, &stop, &mut |_, _| sent()).unwrap();
    ingest::jsonl::replay(kafka, &kafka.topics.calc, tasks, 0.0, &stop).unwrap();
}

/// `pace pipeline` processes of one cluster on loopback, each of which can be
/// killed and started again with the same hosts file and data directory.
/// Every process left is killed when this is dropped, so a failing test
/// leaves none behind.
pub struct Cluster {
    kafka: KafkaConfig,
    prefix: String,
    /// `--workers` of the processes started from now on.
    pub workers: usize,
    archive: bool,
    dir: tempfile::TempDir,
    /// The processes, `None` where one is not running.
    pub children: Vec<Option<Child>>,
    /// Where each process serves `/metrics`, once started.
    pub urls: Vec<Option<String>>,
    /// `--snapshot-every-ms` of the processes started from now on (0: none).
    pub snapshot_every_ms: u64,
    /// `--tick-ms` of the processes started from now on.
    pub tick_ms: u64,
}

impl Cluster {
    /// A cluster of `processes` × `workers` reading `kafka`'s topics, none
    /// started yet. With `archive`, process 0 archives into its data directory.
    pub fn new(
        kafka: &KafkaConfig,
        prefix: &str,
        processes: usize,
        workers: usize,
        archive: bool,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Free ports, all held until every one is chosen, so none comes twice.
        let listeners: Vec<std::net::TcpListener> = (0..processes)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let hosts: String = listeners
            .iter()
            .map(|l| format!("127.0.0.1:{}\n", l.local_addr().unwrap().port()))
            .collect();
        drop(listeners);
        std::fs::write(dir.path().join("hosts"), hosts).unwrap();
        Self {
            kafka: kafka.clone(),
            prefix: prefix.to_owned(),
            workers,
            archive,
            dir,
            children: (0..processes).map(|_| None).collect(),
            urls: vec![None; processes],
            snapshot_every_ms: 0,
            tick_ms: 20,
        }
    }

    /// Process `i`'s data directory (process 0's holds the archive).
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("p{i}"))
    }

    /// Starts process `i`.
    pub fn start(&mut self, i: usize) {
        assert!(self.children[i].is_none(), "process {i} runs already");
        let mut args: Vec<String> = [
            "pipeline",
            "--brokers",
            &self.kafka.brokers,
            "--topic-prefix",
            &self.prefix,
            "--workers",
            &self.workers.to_string(),
            "--data-dir",
            &self.data_dir(i).display().to_string(),
            "--listen",
            "127.0.0.1:0",
            "--tick-ms",
            &self.tick_ms.to_string(),
            "--processes",
            &self.children.len().to_string(),
            "--process",
            &i.to_string(),
            "--hosts",
            &self.dir.path().join("hosts").display().to_string(),
            "--snapshot-every-ms",
            &self.snapshot_every_ms.to_string(),
        ]
        .map(String::from)
        .to_vec();
        if self.archive {
            args.extend(["--archive-roll-ms", "1000"].map(String::from));
        } else {
            args.push("--no-archive".into());
        }
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let (child, url) = super::spawn_pace(&args);
        self.children[i] = Some(child);
        self.urls[i] = Some(url);
    }

    /// Starts every process that is not running.
    pub fn start_all(&mut self) {
        for i in 0..self.children.len() {
            if self.children[i].is_none() {
                self.start(i);
            }
        }
    }

    /// Kills process `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        let mut c = self.children[i].take().expect("process runs");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// Waits up to `timeout` for process `i` to exit by itself; its status.
    pub fn exited(&mut self, i: usize, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.children[i].as_mut().expect("process runs");
            if let Some(status) = c.try_wait().unwrap() {
                self.children[i] = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM to every process (a cluster stops together); each must exit
    /// successfully.
    pub fn stop(&mut self) {
        for c in self.children.iter().flatten() {
            let _ = std::process::Command::new("kill")
                .arg(c.id().to_string())
                .status();
        }
        for c in &mut self.children {
            if let Some(mut c) = c.take() {
                let status = c.wait().unwrap();
                assert!(status.success(), "pace pipeline exited with {status}");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until the pipeline (consumer group `pace-pipeline`, its default)
/// has committed every input record (so every view change it caused is
/// durable).
pub fn wait_committed(kafka: &KafkaConfig, timeout: Duration) {
    wait_committed_by(kafka, "pace-pipeline", timeout);
}

/// [`wait_committed`] for a pipeline committing as `group`.
pub fn wait_committed_by(kafka: &KafkaConfig, group: &str, timeout: Duration) {
    // A reader in the pipeline's group, for its committed offsets.
    let group = Reader::new(kafka, group, &[]).unwrap();
    let t = &kafka.topics;
    let deadline = Instant::now() + timeout;
    for topic in [&t.gps, &t.timing, &t.races, &t.chat, &t.calc, &t.tournament] {
        let partitions: Vec<i32> = (0..group.partitions(topic).unwrap()).collect();
        loop {
            // The group coordinator may still be moving in (a fresh or
            // restarted broker): ask again.
            let committed = match group.committed(topic, &partitions) {
                Ok(c) => c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "{topic}: {e:?}");
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
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
pub fn read_all<T: serde::de::DeserializeOwned>(kafka: &KafkaConfig, topic: &str) -> Vec<T> {
    let reader = Reader::new(kafka, "pace-views-test", &[]).unwrap();
    let mut left: i64 = (0..reader.partitions(topic).unwrap())
        .map(|p| {
            let (low, high) = reader.watermarks(topic, p).unwrap();
            high - low
        })
        .sum();
    let mut c = StaticConsumer::new(kafka, "pace-views-test", topic, 0, 1).unwrap();
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
pub struct Final {
    /// Standings rows and splits by race.
    pub standings: BTreeMap<String, Value>,
    /// Members and the whole message log (with sequence numbers) by room.
    pub rooms: BTreeMap<String, Value>,
    /// The result of each task id.
    pub results: BTreeMap<String, Value>,
}

/// The views the changelogs of `kafka` fold to, as the edge folds them
/// (a later result of a task id replaces an earlier one). With `once`, a
/// task id with two results fails the test: a pipeline that ran without a
/// restart writes each result once.
pub fn final_views(kafka: &KafkaConfig, defs: &[RaceDefinition], once: bool) -> Final {
    let views = ws_edge::views::race::Races::default();
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
    let rooms_view = ws_edge::views::rooms::Rooms::default();
    for c in read_all::<RoomChange>(kafka, &kafka.topics.rooms) {
        rooms_view.apply(c);
    }
    // The recorded rooms are public: what anyone sees is all there is.
    let rooms = rooms_view
        .list(None)
        .into_iter()
        .map(|r| {
            let room = r.id;
            let mut members = rooms_view.members(&room, None).unwrap();
            members.sort_by(|a, b| a.user.cmp(&b.user));
            let mut messages = Vec::new();
            let mut since = 0;
            loop {
                let page = rooms_view
                    .messages(&room, None, since, 500)
                    .unwrap()
                    .unwrap();
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
        assert!(!once || before.is_none(), "task {} has two results", r.id);
    }
    Final {
        standings,
        rooms,
        results,
    }
}

/// A fresh set of topics on the test broker; the prefix and their config.
pub fn fresh_topics(name: &str) -> (String, KafkaConfig) {
    let prefix = super::unique_prefix(name);
    let kafka = KafkaConfig::new(super::brokers()).with_topic_prefix(&prefix);
    topics(&kafka);
    (prefix, kafka)
}

/// Runs the whole input through `processes` × `workers` without a fault;
/// the final views.
pub fn uninterrupted(day: &Dataset, tasks: &[CalcTask], processes: usize, workers: usize) -> Final {
    let (prefix, kafka) = fresh_topics(&format!("views-{processes}x{workers}"));
    produce(&kafka, day, tasks, &mut || {});
    let mut cluster = Cluster::new(&kafka, &prefix, processes, workers, false);
    cluster.start_all();
    wait_committed(&kafka, Duration::from_secs(300));
    let views = final_views(&kafka, &day.definitions, true);
    cluster.stop();
    views
}

/// The records of the topics `which` takes that a pipeline process has read
/// since it started, from `pace_ingest_records_total` on its `/metrics`.
pub fn records_read(url: &str, which: impl Fn(&str) -> bool) -> u64 {
    metrics_text(url)
        .lines()
        .filter_map(|l| l.strip_prefix("pace_ingest_records_total{"))
        .filter(|l| {
            l.split("topic=\"")
                .nth(1)
                .and_then(|t| t.split('"').next())
                .is_some_and(&which)
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

/// A pipeline process's `/metrics` page.
pub fn metrics_text(url: &str) -> String {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::get(format!("{url}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
}

/// The value of the sample written exactly `sample` (name and labels, as
/// `/metrics` writes them) on a `/metrics` page, if it is there.
pub fn sample(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Produces the whole input in a thread, about one record every 0.2 ms so
/// that it lasts long enough for a fault to fall in its middle; returns the
/// thread and the count of day records sent so far.
pub fn paced_replay(
    kafka: &KafkaConfig,
    day: &Dataset,
    tasks: &[CalcTask],
) -> (std::thread::JoinHandle<()>, Arc<AtomicUsize>) {
    let sent = Arc::new(AtomicUsize::new(0));
    let (kafka, day, tasks, count) = (kafka.clone(), day.clone(), tasks.to_vec(), sent.clone());
    let thread = std::thread::spawn(move || {
        produce(&kafka, &day, &tasks, &mut || {
            if count.fetch_add(1, Ordering::Relaxed) % 10 == 9 {
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    });
    (thread, sent)
}

/// Waits until `sent` reaches `n` records.
pub fn wait_sent(sent: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while sent.load(Ordering::Relaxed) < n {
        assert!(
            Instant::now() < deadline,
            "the replay did not reach {n} records"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The race and chat records of `day`.
pub fn records(day: &Dataset) -> usize {
    day.definitions.len() + day.gps.len() + day.timing.len() + day.chat.len()
}

/// The views after a fault (or a restart) equal the uninterrupted ones, part by part (so a
/// failure names the race or room).
pub fn assert_same(reference: &Final, after: &Final) {
    for (race, v) in &reference.standings {
        assert_eq!(Some(v), after.standings.get(race), "race {race}");
    }
    for (room, v) in &reference.rooms {
        assert_eq!(Some(v), after.rooms.get(room), "room {room}");
    }
    assert_eq!(reference.results, after.results, "task results");
    assert_eq!(reference, after);
}
