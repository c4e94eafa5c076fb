//! Records flow from a real Apache Kafka broker through the pipeline to the
//! standings view (HTTP and WebSocket), bad records to the dead-letter topic,
//! points beyond their race's lateness horizon to the dead-letter topic too,
//! GPS points to a Parquet archive DuckDB reads, and offsets are committed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use ingest::KafkaConfig;
use ingest::producer::TrackedProducer;
use pace_pipeline::jobs::standings::{Observation, definition, fix, reference};
use pace_pipeline::runtime::{self, PipelineConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use schemas::{GpsPoint, StandingRow};

const SECRET: &str = "end-to-end secret";

const RACE: &str = r#"{"id":"e2e","name":"End to end","start":"2026-05-01T08:00:00Z",
  "kind":{"type":"course","polyline":[{"lat":59.0,"lon":18.0},{"lat":59.1,"lon":18.0}]}}"#;

fn point(p: &str, second: i64, lat: f64) -> GpsPoint {
    GpsPoint {
        race: "e2e".into(),
        participant: p.into(),
        time: schemas::Timestamp(1_777_622_400_000 + second * 1000),
        lat,
        lon: 18.0,
        elevation: None,
        accuracy: None,
    }
}

fn send(producer: &TrackedProducer, topic: &str, key: &str, payload: &[u8]) {
    producer
        .send(topic, Some(key.as_bytes()), payload, &[], 0)
        .unwrap();
}

fn send_points(producer: &TrackedProducer, kafka: &KafkaConfig, points: &[GpsPoint]) {
    for p in points {
        let key = format!("{}/{}", p.race, p.participant);
        send(
            producer,
            &kafka.topics.gps,
            &key,
            &serde_json::to_vec(p).unwrap(),
        );
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn expected(points: &[GpsPoint]) -> Vec<(String, f64)> {
    let observations: Vec<Observation> = points.iter().cloned().map(fix).collect();
    let race: schemas::RaceDefinition = serde_json::from_str(RACE).unwrap();
    let views = reference(&observations, &[], &[definition(&race, 0)]);
    views.standings["e2e"]
        .iter()
        .map(|s| (s.participant.clone(), s.progress_mm as f64 / 1000.0))
        .collect()
}

async fn standings(http: &reqwest::Client, base: &str) -> Option<Vec<StandingRow>> {
    let r = http
        .get(format!("{base}/api/races/e2e/standings"))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_flow_to_views_dead_letters_and_archive() {
    let prefix = unique_prefix("e2e");
    let kafka = KafkaConfig::new(brokers()).with_topic_prefix(&prefix);
    ingest::admin::ensure_topics(&kafka, 4).await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut config = PipelineConfig::new(kafka.clone(), 2, dir.path().to_path_buf());
    config.group = format!("{prefix}pipeline");
    config.tick = Duration::from_millis(20);
    let group = config.group.clone();
    let pipeline = {
        let stop = stop.clone();
        std::thread::spawn(move || runtime::run(config, stop))
    };
    let archive_stop = Arc::new(AtomicBool::new(false));
    let archive = common::start_archive(&kafka, dir.path(), &archive_stop);

    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (edge_stop_tx, edge_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let edge = tokio::spawn(ws_edge::serve(
        ws_edge::EdgeConfig {
            token_secret: Some(SECRET.into()),
            ..ws_edge::EdgeConfig::new("127.0.0.1:0".parse().unwrap(), kafka.clone())
        },
        move |a| addr_tx.send(a).unwrap(),
        async move {
            let _ = edge_stop_rx.await;
        },
    ));
    let base = format!("http://{}", addr_rx.await.unwrap());
    let http = reqwest::Client::new();

    // A race and three runners.
    let producer = TrackedProducer::new(&kafka).unwrap();
    send(&producer, &kafka.topics.races, "e2e", RACE.as_bytes());
    let mut points = vec![
        point("a", 0, 59.000),
        point("a", 10, 59.001),
        point("b", 0, 59.000),
        point("b", 10, 59.002),
        point("c", 0, 59.000),
        point("c", 10, 59.0005),
    ];
    send_points(&producer, &kafka, &points);
    let want = expected(&points);
    let rows = eventually("first standings", Duration::from_secs(60), || async {
        standings(&http, &base).await.filter(|rows| rows.len() == 3)
    })
    .await;
    let got: Vec<(String, f64)> = rows
        .iter()
        .map(|r| (r.participant.clone(), r.distance_m))
        .collect();
    assert_eq!(got, want);
    assert_eq!(rows[0].participant, "b");
    assert_eq!(
        rows.iter().map(|r| r.rank).collect::<Vec<_>>(),
        [Some(1), Some(2), Some(3)]
    );

    // A spectator: a snapshot first.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws{}/ws/races/e2e", &base[4..]))
        .await
        .unwrap();
    let snapshot = next_frame(&mut ws).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["rows"].as_array().unwrap().len(), 3);
    let seq = snapshot["seq"].as_u64().unwrap();
    assert!(seq >= 1);

    // Bad records, then good ones: the bad go to the dead-letter topic, the
    // pipeline keeps going, and `a` takes the lead.
    let garbage = b"{\"race\":\"e2e\",".to_vec();
    let off_course = serde_json::to_vec(&point("a", 20, 59.0)).unwrap();
    let off_course = String::from_utf8(off_course)
        .unwrap()
        .replace("\"lat\":59.0", "\"lat\":91.5");
    let mut huge = b"{\"race\":\"e2e\",\"participant\":\"".to_vec();
    huge.resize(100_000, b'x');
    send(&producer, &kafka.topics.gps, "e2e/a", &garbage);
    send(&producer, &kafka.topics.gps, "e2e/c", &huge);
    send(&producer, &kafka.topics.gps, "e2e/a", off_course.as_bytes());
    let late = [point("a", 20, 59.004), point("a", 15, 59.0025)];
    send_points(&producer, &kafka, &late);
    points.extend(late);
    // `c` moves on to 300 s; its point at 100 s is then 200 s behind, beyond
    // the default 120 s horizon: refused, dead-lettered, not judged (but
    // still a valid GPS record, so archived).
    let onward = point("c", 300, 59.0008);
    send_points(&producer, &kafka, std::slice::from_ref(&onward));
    points.push(onward);
    let too_late = point("c", 100, 59.0006);
    send_points(&producer, &kafka, std::slice::from_ref(&too_late));

    let delta = next_frame(&mut ws).await;
    assert_eq!(delta["type"], "delta", "{delta}");
    assert_eq!(delta["seq"].as_u64().unwrap(), seq + 1);
    let want = expected(&points);
    let rows = eventually(
        "standings with the late points",
        Duration::from_secs(30),
        || async {
            standings(&http, &base).await.filter(|rows| {
                rows.iter()
                    .map(|r| (r.participant.clone(), r.distance_m))
                    .collect::<Vec<_>>()
                    == want
            })
        },
    )
    .await;
    assert_eq!(rows[0].participant, "a");

    // The dead letters: original bytes, reason and origin in headers.
    let dlq: BaseConsumer = kafka.consumer(&format!("{prefix}reader")).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition_offset(&kafka.topics.dlq, p, Offset::Beginning)
            .unwrap();
    }
    dlq.assign(&tpl).unwrap();
    let mut letters = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while letters.len() < 4 && std::time::Instant::now() < deadline {
        if let Some(m) = dlq.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let headers: std::collections::BTreeMap<String, String> = m
                .headers()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        String::from_utf8(h.value.unwrap().to_vec()).unwrap(),
                    )
                })
                .collect();
            letters.push((m.payload().unwrap().to_vec(), headers));
        }
    }
    assert_eq!(letters.len(), 4, "four dead letters");
    let letter = |start: &str| {
        letters
            .iter()
            .find(|(_, h)| h["pace-dlq-reason"].starts_with(start))
            .unwrap_or_else(|| panic!("no dead letter with reason {start:?}: {letters:?}"))
    };
    let (payload, headers) = letter("malformed JSON");
    assert_eq!(payload, &garbage);
    assert_eq!(headers["pace-source-topic"], kafka.topics.gps);
    assert!(headers["pace-source-offset"].parse::<i64>().is_ok());
    assert!(!headers.contains_key("pace-truncated-from"));
    let (payload, _) = letter("invalid lat: 91.5 is outside -90..=90");
    assert_eq!(payload, off_course.as_bytes());
    let (payload, headers) = letter("payload of 100000 bytes is over the 65536 byte limit");
    assert_eq!(payload.len(), 65536, "cut to fit the broker");
    assert_eq!(payload[..], huge[..65536]);
    assert_eq!(headers["pace-truncated-from"], "100000");
    let (payload, headers) = letter("too_late: 200.000 s behind the participant's latest GPS fix");
    assert!(
        headers["pace-dlq-reason"].ends_with("race e2e allows 120.000 s"),
        "{headers:?}"
    );
    let refused: GpsPoint = serde_json::from_slice(payload).unwrap();
    assert_eq!(refused, too_late);
    assert_eq!(headers["pace-source-topic"], kafka.topics.gps);
    assert!(headers["pace-source-offset"].parse::<i64>().unwrap() >= 0);

    let metrics = get_text(&http, &format!("{base}/metrics")).await;
    assert!(metrics.contains(&format!(
        "pace_ingest_invalid_records_total{{reason=\"json\",topic=\"{}\"}} 1",
        kafka.topics.gps
    )));
    assert!(
        metrics.contains("pace_standings_points_total{outcome=\"too_late\"} 1"),
        "{metrics}"
    );

    // Stop: the pipeline drains and commits its offsets; the archiver, once
    // verify finds every GPS record archived, writes what it holds.
    stop.store(true, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || pipeline.join().unwrap())
        .await
        .unwrap()
        .unwrap();
    let (verify_kafka, data_dir) = (kafka.clone(), dir.path().to_path_buf());
    let report = eventually("the GPS archive", Duration::from_secs(60), || {
        let (kafka, data_dir) = (verify_kafka.clone(), data_dir.clone());
        async move {
            tokio::task::spawn_blocking(move || sinks::verify::verify(&kafka, &data_dir))
                .await
                .unwrap()
                .ok()
                .filter(|r| {
                    r.checked
                        .iter()
                        .filter(|c| c.dataset == "gps")
                        .all(|c| c.pending == 0)
                })
        }
    })
    .await;
    assert!(report.ok(), "{report}");
    archive_stop.store(true, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || archive.join().unwrap())
        .await
        .unwrap()
        .unwrap();
    edge_stop_tx.send(()).unwrap();
    edge.await.unwrap().unwrap();

    let total_gps = points.len() as i64 + 4;
    let reader: BaseConsumer = kafka.consumer(&group).create().unwrap();
    let mut want_tpl = TopicPartitionList::new();
    for p in 0..4 {
        want_tpl.add_partition(&kafka.topics.gps, p);
    }
    let committed = reader
        .committed_offsets(want_tpl, Duration::from_secs(10))
        .unwrap();
    let committed_sum: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum();
    assert_eq!(
        committed_sum, total_gps,
        "every GPS record's offset is committed"
    );

    // DuckDB reads the archive: every valid point exactly once, UTC timestamps.
    let glob = format!("{}/archive/gps/*/*.parquet", dir.path().display());
    let out = run_python(&format!(
        r#"
import duckdb
con = duckdb.connect()
rows = con.execute("select count(*), count(distinct (kafka_partition, kafka_offset)), min(date)::varchar, any_value(typeof(time)) from read_parquet('{glob}', hive_partitioning = true)").fetchone()
print(rows[0], rows[1], rows[2], rows[3])
"#
    ));
    assert_eq!(
        out.trim(),
        format!(
            "{n} {n} 2026-05-01 TIMESTAMP WITH TIME ZONE",
            n = points.len() + 1
        )
    );
}

/// A pipeline of `workers` at a `tick_ms` tick on topics of its own; its
/// topics, its group, its stop flag and thread, and its data directory.
async fn pipeline(
    test: &str,
    workers: usize,
    tick_ms: u64,
) -> (
    KafkaConfig,
    String,
    Arc<AtomicBool>,
    std::thread::JoinHandle<Result<(), runtime::PipelineError>>,
    tempfile::TempDir,
) {
    let prefix = unique_prefix(test);
    let kafka = KafkaConfig::new(brokers()).with_topic_prefix(&prefix);
    ingest::admin::ensure_topics(&kafka, 4).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut config = PipelineConfig::new(kafka.clone(), workers, dir.path().to_path_buf());
    config.group = format!("{prefix}pipeline");
    config.tick = Duration::from_millis(tick_ms);
    let group = config.group.clone();
    let thread = {
        let stop = stop.clone();
        std::thread::spawn(move || runtime::run(config, stop))
    };
    (kafka, group, stop, thread, dir)
}

/// Sends the race and a first point, and waits until the pipeline read it.
async fn first_point_read(kafka: &KafkaConfig) -> TrackedProducer {
    let read = observability::metrics()
        .ingest_records
        .with_label_values(&[&kafka.topics.gps]);
    let producer = TrackedProducer::new(kafka).unwrap();
    send(&producer, &kafka.topics.races, "e2e", RACE.as_bytes());
    send_points(&producer, kafka, &[point("a", 0, 59.0)]);
    eventually("the first point read", Duration::from_secs(60), || async {
        (read.get() >= 1).then_some(())
    })
    .await;
    producer
}

/// Epochs follow the data, not the clock (issue 47): while points arrive
/// every 150 ms, a pipeline at a 10 ms tick closes an epoch only when some
/// source read something into it. A topic nothing is sent to (chat) closes
/// as many epochs as the points' source closed with points in them, on
/// each worker, not one a tick (about 450 on two workers in those 2.25 s),
/// and every point is still read into an epoch that completes (its offset
/// is committed after the changelogs have it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_in_which_nothing_was_read_closes_no_epoch() {
    let workers = 2;
    let (kafka, group, stop, pipeline, _dir) = pipeline("epochs-follow-data", workers, 10).await;
    let m = observability::metrics();
    let closed = m.pipeline_epochs.with_label_values(&[&kafka.topics.chat]);
    let with_points = m
        .pipeline_epoch_records
        .with_label_values(&[&kafka.topics.gps]);
    let read = m.ingest_records.with_label_values(&[&kafka.topics.gps]);
    let producer = first_point_read(&kafka).await;
    let (closed0, with_points0) = (closed.get(), with_points.get_sample_count());
    let n = 15;
    for i in 1..=n {
        tokio::time::sleep(Duration::from_millis(150)).await;
        send_points(&producer, &kafka, &[point("a", i, 59.0 + i as f64 * 1e-4)]);
    }
    eventually("every point read", Duration::from_secs(60), || async {
        (read.get() > n as u64).then_some(())
    })
    .await;
    let (closed1, with_points1) = (closed.get(), with_points.get_sample_count());
    let (idle, busy) = (closed1 - closed0, with_points1 - with_points0);
    assert!(busy >= 1, "no epoch with points closed");
    // Each epoch with points, whichever worker read them, closes once on
    // each worker's chat source; a few more where the pipeline went idle
    // (nothing in flight for a second) on a machine that stalled.
    let bound = workers as u64 * (busy + 3);
    assert!(
        idle <= bound,
        "the chat sources closed {idle} epochs while the points' sources closed {busy} with points (at most {bound})"
    );
    common::views::wait_committed_by(&kafka, &group, Duration::from_secs(60));
    stop.store(true, Ordering::SeqCst);
    pipeline.join().unwrap().unwrap();
}

/// A burst of points after a quiet spell goes into one epoch, the tick's,
/// not partly into the epoch left open since the last burst and partly
/// into the next (which doubled the frames of a race whose runners all
/// report once a second: `pace-bench fanout`). Ten bursts of 400 points,
/// 400 ms apart, at a 50 ms tick, one worker: about ten epochs with points
/// (a burst that straddles a tick may take two).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_after_a_quiet_spell_is_one_epoch() {
    let (kafka, group, stop, pipeline, _dir) = pipeline("epochs-bursts", 1, 50).await;
    let m = observability::metrics();
    let with_points = m
        .pipeline_epoch_records
        .with_label_values(&[&kafka.topics.gps]);
    let read = m.ingest_records.with_label_values(&[&kafka.topics.gps]);
    let producer = first_point_read(&kafka).await;
    let with_points0 = with_points.get_sample_count();
    let (bursts, size) = (10u64, 400);
    for b in 1..=bursts {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let burst: Vec<GpsPoint> = (0..size)
            .map(|i| point(&format!("r{i}"), b as i64, 59.0 + b as f64 * 1e-4))
            .collect();
        send_points(&producer, &kafka, &burst);
    }
    eventually("every point read", Duration::from_secs(60), || async {
        (read.get() > bursts * size).then_some(())
    })
    .await;
    let epochs = with_points.get_sample_count() - with_points0;
    assert!(
        epochs <= bursts * 3 / 2,
        "{bursts} bursts went into {epochs} epochs"
    );
    common::views::wait_committed_by(&kafka, &group, Duration::from_secs(60));
    stop.store(true, Ordering::SeqCst);
    pipeline.join().unwrap().unwrap();
}
