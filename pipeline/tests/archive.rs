//! The Parquet archive over real Apache Kafka:
//! - `pace pipeline` (pipeline + archiver) killed with SIGKILL at random
//!   moments during a replay, and restarted: every record of every topic is in
//!   the archive exactly once (DuckDB, and `pace archive verify`), and every
//!   file's metadata has statistics and UTC timestamps (pyarrow);
//! - live equals batch: SQL over the archive gives the final live standings of
//!   the replayed F1 season, both from the archived view changes and from the
//!   raw timing crossings; the "Query the archive" examples of `sinks/ARCHIVE.md` run;
//!   `pace archive compact` beside the running archiver keeps every record
//!   exactly once.
#![allow(clippy::print_stdout)] // the figures are the point

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::*;
use ingest::KafkaConfig;
use ingest::producer::TrackedProducer;
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn pace(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pace"));
    c.args(args).env_remove("PACE_BROKERS");
    c
}

/// `pace <args>` on `kafka`'s broker and topics, with its data in `data`.
fn pace_on(args: &[&str], kafka: &KafkaConfig, prefix: &str, data: &Path) -> Command {
    let mut c = pace(args);
    c.args(["--brokers", &kafka.brokers, "--topic-prefix", prefix])
        .arg("--data-dir")
        .arg(data);
    c
}

/// `pace pipeline` on `kafka`, archiving every second into `data`; its log
/// appended to `data.log`.
fn start_pipeline(kafka: &KafkaConfig, prefix: &str, data: &Path) -> Killed {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.with_extension("log"))
        .unwrap();
    pace_on(
        &[
            "pipeline",
            "--workers",
            "2",
            "--archive-roll-ms",
            "1000",
            "--listen",
            "127.0.0.1:0",
        ],
        kafka,
        prefix,
        data,
    )
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()
    .map(Killed)
    .unwrap()
}

/// `pace archive verify` against the archive in `data`: (passed, report).
fn verify_cli(kafka: &KafkaConfig, prefix: &str, data: &Path) -> (bool, String) {
    let out = pace_on(&["archive", "verify"], kafka, prefix, data)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Every Parquet file under `archive` has statistics in every column chunk
/// (min and max wherever there is a value, as DuckDB reads them; pyarrow sees
/// the statistics set), zstd, and every timestamp column is UTC milliseconds;
/// the number of files checked.
///
/// pyarrow 26 ignores the min/max of float columns: parquet-rs marks them
/// with the IEEE 754 total column order, which Arrow C++ does not read yet.
fn check_metadata(archive: &Path) -> usize {
    let out = run_python(&format!(
        r#"
import glob, duckdb, pyarrow.parquet as pq, pyarrow as pa
pattern = "{}/*/date=*/*.parquet"
files = glob.glob(pattern)
bad = duckdb.sql(f"""
select file_name, path_in_schema from parquet_metadata('{{pattern}}')
where not (stats_null_count = num_values or (stats_min_value is not null and stats_max_value is not null))
   or compression != 'ZSTD'
""").fetchall()
assert not bad, bad[:5]
for f in files:
    md = pq.ParquetFile(f).metadata
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        for c in range(rg.num_columns):
            col = rg.column(c)
            assert col.is_stats_set and col.statistics.null_count is not None, (f, col.path_in_schema)
            if col.physical_type != "DOUBLE" and col.statistics.null_count < rg.num_rows:
                assert col.statistics.has_min_max, (f, col.path_in_schema)
    for field in pq.read_schema(f):
        if pa.types.is_timestamp(field.type):
            assert field.type.tz == "UTC" and field.type.unit == "ms", (f, field)
    lt = [str(c.logical_type) for c in pq.ParquetFile(f).schema if "Timestamp" in str(c.logical_type)]
    assert lt and all("isAdjustedToUTC=true" in t for t in lt), (f, lt)
print(len(files))
"#,
        archive.display()
    ));
    out.trim().parse().unwrap()
}

#[test]
fn killed_at_random_moments_the_archive_holds_every_record_exactly_once() {
    let prefix = unique_prefix("archive-kill");
    let kafka = KafkaConfig::new(brokers()).with_topic_prefix(&prefix);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(ingest::admin::ensure_topics(&kafka, 4))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // The replay: a generated race of 100 runners at 25x (2,500 points a
    // second), the built-in chat, a calculation task every tick, seeded
    // tournament events, and a bad record now and then, for about 25 s.
    let stop = Arc::new(AtomicBool::new(false));
    let producer_kafka = kafka.clone();
    let replay = std::thread::spawn(move || {
        let p = TrackedProducer::new(&producer_kafka).unwrap();
        let t = &producer_kafka.topics;
        let now = schemas::Timestamp::now();
        let mut race = ingest::generate::DemoRace::new("kill", 100, 7, now);
        let mut chat = ingest::generate::DemoChat::new(7);
        let tournament = common::tournaments::random_events(5, 1000);
        ingest::jsonl::send_record(&p, &t.races, &race.definition).unwrap();
        let mut sent: BTreeMap<&str, (u64, u64)> = BTreeMap::new(); // topic -> (valid, bad)
        sent.entry("races").or_default().0 += 1;
        for tick in 0..1000u64 {
            for point in race.tick() {
                ingest::jsonl::send_record(&p, &t.gps, &point).unwrap();
                sent.entry("gps").or_default().0 += 1;
            }
            for event in chat.tick(schemas::Timestamp(now.0 + tick as i64 * 1000)) {
                ingest::jsonl::send_record(&p, &t.chat, &event).unwrap();
                sent.entry("chat").or_default().0 += 1;
            }
            let task = schemas::CalcTask {
                id: format!("t{tick}"),
                expression: if tick % 7 == 0 {
                    format!("{tick} / 0")
                } else {
                    format!("{tick} * 2 + 1")
                },
                time: schemas::Timestamp(now.0 + tick as i64),
            };
            ingest::jsonl::send_record(&p, &t.calc, &task).unwrap();
            sent.entry("tasks").or_default().0 += 1;
            let (id, (_, event)) = &tournament[tick as usize];
            let payload = serde_json::to_vec(&event.0).unwrap();
            p.send(&t.tournament, Some(id.as_bytes()), &payload, &[], 0)
                .unwrap();
            sent.entry("tournament_events").or_default().0 += 1;
            if tick % 40 == 0 {
                p.send(&t.gps, Some(b"kill"), b"{not json", &[], 0).unwrap();
                p.send(&t.chat, Some(b"lobby"), br#"{"room":"lobby"}"#, &[], 0)
                    .unwrap();
                sent.entry("gps").or_default().1 += 1;
                sent.entry("chat").or_default().1 += 1;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        p.flush(Duration::from_secs(30)).unwrap();
        sent
    });

    // Kill -9 at random moments, four times, restarting at once each time.
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut child = start_pipeline(&kafka, &prefix, &data);
    for kill in 0..4 {
        let after = Duration::from_millis(rng.random_range(1500..6000));
        std::thread::sleep(after);
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        println!("kill -9 #{} after {after:?}", kill + 1);
        child = start_pipeline(&kafka, &prefix, &data);
    }
    let sent = replay.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    // The broker holds every record the producer had acknowledged; if not,
    // what follows would blame the archive for a loss before it. Its answer
    // is read until it holds them (a ListOffsets answer can trail a produce
    // acknowledgement on a loaded broker), for at most 30 s; a shortfall
    // then names the partitions and the task ids the broker lacks.
    let reader = ingest::reader::Reader::new(&kafka, "pace-archive-test", &[]).unwrap();
    for (ds, topic) in [
        ("gps", &kafka.topics.gps),
        ("chat", &kafka.topics.chat),
        ("tasks", &kafka.topics.calc),
        ("races", &kafka.topics.races),
        ("tournament_events", &kafka.topics.tournament),
    ] {
        let (valid, bad) = sent[ds];
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let marks: Vec<(i64, i64)> = (0..reader.partitions(topic).unwrap())
                .map(|p| reader.watermarks(topic, p).unwrap())
                .collect();
            let held: i64 = marks.iter().map(|(low, high)| high - low).sum();
            if held as u64 == valid + bad {
                break;
            }
            if std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            let missing: Vec<String> = if ds == "tasks" {
                let keys: std::collections::BTreeSet<Vec<u8>> = read_raw(&kafka, topic)
                    .into_iter()
                    .filter_map(|r| r.key)
                    .collect();
                (0..valid)
                    .map(|t| format!("t{t}"))
                    .filter(|k| !keys.contains(k.as_bytes()))
                    .collect()
            } else {
                Vec::new()
            };
            panic!(
                "{topic}: the broker holds {held} records of the {} acknowledged; \
                 (low, high) by partition {marks:?}; task ids missing: {missing:?}",
                valid + bad
            );
        }
    }
    let report = settled(&kafka, &data, Duration::from_secs(180));
    assert!(report.ok(), "{report}");
    // A clean stop, then the command line's verdict.
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(child.0.wait().unwrap().success());
    let (passed, text) = verify_cli(&kafka, &prefix, &data);
    println!("{text}");
    assert!(passed, "{text}");
    assert!(text.contains("exactly once"), "{text}");

    // DuckDB: each input record once, by (partition, offset), and as many as were sent.
    let archive = data.join("archive");
    let out = run_python(&format!(
        r#"
import duckdb
con = duckdb.connect()
def q(sql):
    return con.execute(sql).fetchone()
for ds in ["gps", "chat", "tasks", "races", "tournament_events"]:
    n, distinct = q(f"select count(*), count(distinct (kafka_partition, kafka_offset)) from read_parquet('{a}/{{ds}}/*/*.parquet', hive_partitioning = true)")
    print(ds, n, distinct)
# Dead letters: every bad record, each dead letter once.
n, distinct, sources = q("select count(*), count(distinct (kafka_partition, kafka_offset)), count(distinct (source_topic, source_partition, source_offset)) from read_parquet('{a}/dead_letters/*/*.parquet')")
print("dead_letters", n, distinct, sources)
# View changes: a key at most once per changelog record.
for ds, key in [("standings", "participant"), ("ranks", "participant"), ("splits", "participant, split"), ("leaders", "race"), ("room_members", "user"), ("room_messages", "room, seq"), ("results", "id"), ("tournament_changes", "tournament")]:
    dup = q(f"select count(*) from (select kafka_partition, kafka_offset, {{key}}, count(*) c from read_parquet('{a}/{{ds}}/*/*.parquet') group by all having c > 1)")[0]
    rows = q(f"select count(*) from read_parquet('{a}/{{ds}}/*/*.parquet')")[0]
    print(ds, rows, dup)
"#,
        a = archive.display()
    ));
    println!("{out}");
    let lines: BTreeMap<&str, Vec<u64>> = out
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next().unwrap();
            (name, it.map(|n| n.parse().unwrap()).collect())
        })
        .collect();
    for (ds, (valid, _)) in &sent {
        assert_eq!(
            lines[ds],
            vec![*valid, *valid],
            "{ds}: rows, distinct offsets"
        );
    }
    let bad: u64 = sent.values().map(|(_, bad)| bad).sum();
    let dl = &lines["dead_letters"];
    assert_eq!(dl[0], dl[1], "each dead letter once");
    assert_eq!(dl[2], bad, "every bad record is dead-lettered");
    for ds in [
        "standings",
        "ranks",
        "splits",
        "leaders",
        "room_members",
        "room_messages",
        "results",
        "tournament_changes",
    ] {
        assert!(lines[ds][0] > 0, "{ds} has rows");
        assert_eq!(lines[ds][1], 0, "{ds}: no key twice in one change");
    }
    let files = check_metadata(&archive);
    println!("{files} files: statistics, zstd and UTC timestamps in each");
    assert!(files > 10);
}

/// [`settled`] for the stack's archive, checked: no gap, no duplicate. It
/// first waits until the pipeline has committed every input record, so its
/// view changes are in the topics the archive must hold.
async fn settle(stack: &Stack) -> sinks::verify::Report {
    let (kafka, data) = (stack.kafka.clone(), stack.data_dir().to_path_buf());
    let group = stack.group.clone();
    let report = tokio::task::spawn_blocking(move || {
        views::wait_committed_by(&kafka, &group, Duration::from_secs(240));
        settled(&kafka, &data, Duration::from_secs(240))
    })
    .await
    .unwrap();
    assert!(report.ok(), "{report}");
    report
}

/// The final live standings of every race, by rank.
async fn live_standings(base: &str, races: &[String]) -> BTreeMap<String, Vec<Value>> {
    let http = reqwest::Client::new();
    let mut out = BTreeMap::new();
    for race in races {
        let rows: Vec<Value> = get_json(&http, &format!("{base}/api/races/{race}/standings"))
            .await
            .unwrap();
        out.insert(race.clone(), rows);
    }
    out
}

/// The "Query the archive" Python examples of `sinks/ARCHIVE.md`.
fn readme_examples() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../sinks/ARCHIVE.md"))
            .unwrap();
    let section = readme
        .split("\n## Query the archive")
        .nth(1)
        .expect("sinks/ARCHIVE.md has a \"Query the archive\" section");
    let section = section.split("\n## ").next().unwrap();
    section
        .split("```python\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_equals_batch_and_the_readme_queries_run() {
    let stack = Stack::start("archive-batch", "secret").await;
    let data: PathBuf = stack.data_dir().to_path_buf();
    let archive = data.join("archive");
    let (f1, _) = ingest::datasets::f1::read(&shared_data().join("f1-laps-2020")).unwrap();
    let irc = ingest::datasets::irc::read(
        &shared_data().join("chat-irc/ubuntu_irc_2005-07-06_14.raw.txt"),
        "irc",
    )
    .unwrap()
    .chat;
    let races: Vec<String> = f1.definitions.iter().map(|d| d.id.clone()).collect();
    let mut dataset = f1;
    dataset.chat = irc;
    let kafka = stack.kafka.clone();
    tokio::task::spawn_blocking(move || {
        let stop = Arc::new(AtomicBool::new(false));
        ingest::datasets::replay(&kafka, &dataset, 0.0, &stop, &mut |_, _| {}).unwrap();
        let p = TrackedProducer::new(&kafka).unwrap();
        for (id, e) in [
            ("a", "6 * 7"),
            ("b", "1 / 0"),
            ("c", "2 ^ 100000"),
            ("d", "(1 + 2"),
        ] {
            let task = schemas::CalcTask {
                id: id.into(),
                expression: e.into(),
                time: schemas::Timestamp::now(),
            };
            ingest::jsonl::send_record(&p, &kafka.topics.calc, &task).unwrap();
        }
        p.flush(Duration::from_secs(30)).unwrap();
    })
    .await
    .unwrap();
    settle(&stack).await;
    let live = live_standings(&stack.base, &races).await;

    // Batch 1: the latest archived row of each participant, by Kafka order.
    let out = run_python(&format!(
        r#"
import duckdb, json
rows = duckdb.sql("""
with rows as (
  select race, participant, distance_m, laps, status, epoch_ms(last_seen) as last_seen
  from read_parquet('{a}/standings/*/*.parquet')
  qualify row_number() over (partition by race, participant order by kafka_offset desc) = 1
      and change = 'upsert'
), ranks as (
  select race, participant, rank from read_parquet('{a}/ranks/*/*.parquet')
  qualify row_number() over (partition by race, participant order by kafka_offset desc) = 1
), leaders as (
  select race, distance_m as lead_m from read_parquet('{a}/leaders/*/*.parquet')
  qualify row_number() over (partition by race order by kafka_offset desc) = 1
)
select race, participant, rank, distance_m, laps, status, last_seen,
       round(lead_m - distance_m, 3) as gap_m
from rows join ranks using (race, participant) left join leaders using (race)
order by race, rank
""").fetchall()
print(json.dumps(rows))
"#,
        a = archive.display()
    ));
    let batch: Vec<Value> = serde_json::from_str(out.trim()).unwrap();
    let mut by_race: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in batch {
        by_race
            .entry(r[0].as_str().unwrap().to_owned())
            .or_default()
            .push(r);
    }
    let mut compared = 0;
    for (race, rows) in &live {
        let want: Vec<Value> = rows
            .iter()
            .map(|s| {
                serde_json::json!([
                    race,
                    s["participant"],
                    s["rank"],
                    s["distance_m"],
                    s["laps"],
                    s["status"],
                    chrono::DateTime::parse_from_rfc3339(s["last_seen"].as_str().unwrap())
                        .unwrap()
                        .timestamp_millis(),
                    s["gap_m"]
                ])
            })
            .collect();
        assert_eq!(by_race.get(race), Some(&want), "{race}: batch != live");
        compared += want.len();
    }
    println!(
        "live equals batch (view changes): {compared} rows of {} races",
        live.len()
    );

    // Batch 2: from the raw timing crossings, the classified finishers: most
    // crossings, then the earliest last one, among those in after the flag.
    let out = run_python(&format!(
        r#"
import duckdb, json
rows = duckdb.sql("""
with races as (
  select id, cutoff from read_parquet('{a}/races/*/*.parquet')
  qualify row_number() over (partition by id order by kafka_offset desc) = 1
), crossings as (
  select race, participant, count(*) as n, max(time) as last
  from read_parquet('{a}/timing/*/*.parquet') group by all
)
select race, participant from crossings join races on races.id = crossings.race
where last >= cutoff
order by race, n desc, last, participant
""").fetchall()
print(json.dumps(rows))
"#,
        a = archive.display()
    ));
    let finishers: Vec<(String, String)> = serde_json::from_str(out.trim()).unwrap();
    let live_finishers: Vec<(String, String)> = live
        .iter()
        .flat_map(|(race, rows)| {
            rows.iter()
                .filter(|s| s["status"] == "finished")
                .map(|s| (race.clone(), s["participant"].as_str().unwrap().to_owned()))
        })
        .collect();
    assert_eq!(finishers, live_finishers, "finishing orders: batch != live");
    println!(
        "live equals batch (raw crossings): {} finishers in order",
        finishers.len()
    );

    // The examples of sinks/ARCHIVE.md run against this archive.
    let examples = readme_examples();
    assert!(examples.len() >= 4, "{} examples", examples.len());
    for code in &examples {
        let out = Command::new(python())
            .arg("-c")
            .arg(code)
            .env("PACE_ARCHIVE", &archive)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "sinks/ARCHIVE.md example failed:\n{code}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.lines().count() >= 2, "no output from:\n{code}");
        println!("{stdout}");
    }

    // Compaction beside the running archiver: fewer files, the same records.
    // The IRC log once more: new records of the same days, in files of their own.
    let kafka = stack.kafka.clone();
    tokio::task::spawn_blocking(move || {
        let irc = ingest::datasets::irc::read(
            &shared_data().join("chat-irc/ubuntu_irc_2005-07-06_14.raw.txt"),
            "irc",
        )
        .unwrap()
        .chat;
        let again = ingest::datasets::Dataset {
            chat: irc,
            ..Default::default()
        };
        let stop = Arc::new(AtomicBool::new(false));
        ingest::datasets::replay(&kafka, &again, 0.0, &stop, &mut |_, _| {}).unwrap();
    })
    .await
    .unwrap();
    let report = settle(&stack).await;
    let before_files = check_metadata(&archive);
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let out = pace(&[
        "archive",
        "compact",
        "--data-dir",
        data.to_str().unwrap(),
        "--before",
        &tomorrow,
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));
    let after_files = check_metadata(&archive);
    println!("compaction: {before_files} files -> {after_files}");
    assert!(after_files < before_files);
    let (kafka, d) = (stack.kafka.clone(), data.clone());
    let again = tokio::task::spawn_blocking(move || sinks::verify::verify(&kafka, &d).unwrap())
        .await
        .unwrap();
    assert!(again.ok(), "{again}");
    let rows = |r: &sinks::verify::Report| r.checked.iter().map(|c| c.archived).sum::<u64>();
    assert_eq!(rows(&again), rows(&report));
    stack.stop().await;
}
