//! Observability with the real tools: `promtool` checks pace's `/metrics`,
//! the alert rules and their unit tests, and Debian's `prometheus` scrapes
//! a running pace (pipeline, archiver, edge on the real broker) and answers
//! queries about what the test sent through it.

#![allow(clippy::print_stdout)] // what the test saw is worth seeing
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use ingest::producer::TrackedProducer;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const RACE: &str = r#"{"id":"obs","name":"Observed","start":"2026-05-01T08:00:00Z",
  "kind":{"type":"course","polyline":[{"lat":59.0,"lon":18.0},{"lat":59.1,"lon":18.0}]}}"#;

fn observability_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../observability/prometheus")
}

/// Runs `promtool` with `args` (and `stdin`), failing the test on a non-zero exit.
fn promtool(args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(observability_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; `make tools` installs it)");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// A Prometheus server, killed on drop.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of the single series `query` gives now, if there is one.
async fn query_one(http: &reqwest::Client, prom: &str, query: &str) -> Option<f64> {
    let body: Value = http
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let result = body["data"]["result"].as_array()?;
    match result.as_slice() {
        [one] => one["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_pace_and_the_rules_hold() {
    // The rules and their unit tests, and the shipped configuration.
    let out = promtool(&["check", "rules", "rules.yml"], None);
    assert!(out.contains("SUCCESS: 11 rules found"), "{out}");
    promtool(&["test", "rules", "rules.test.yml"], None);
    promtool(&["check", "config", "prometheus.yml"], None);

    let stack = Stack::start("observability", "observability secret").await;
    let (base, kafka) = (stack.base.clone(), stack.kafka.clone());
    let http = reqwest::Client::new();
    let producer = TrackedProducer::new(&kafka).unwrap();
    producer
        .send(&kafka.topics.races, Some(b"obs"), RACE.as_bytes(), &[], 0)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    eventually("the race at the edge", Duration::from_secs(30), || {
        let (http, url) = (http.clone(), format!("{base}/api/races"));
        async move {
            let races: Vec<Value> = get_json(&http, &url).await?;
            races.iter().any(|r| r["id"] == "obs").then_some(())
        }
    })
    .await;

    // A spectator follows the race while points arrive.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws{}/ws/races/obs", &base[4..]))
        .await
        .unwrap();
    let snapshot = next_frame(&mut ws).await;
    assert_eq!(snapshot["type"], "snapshot");
    let (runners, seconds) = (3, 20);
    for s in 0..seconds {
        for r in 0..runners {
            let p = json!({"race": "obs", "participant": format!("r{r}"),
                "time": 1_777_622_400_000i64 + s * 1000,
                "lat": 59.0 + s as f64 * 0.0001 * (1.0 + r as f64 / 10.0), "lon": 18.0});
            producer
                .send(
                    &kafka.topics.gps,
                    Some(b"obs"),
                    p.to_string().as_bytes(),
                    &[],
                    0,
                )
                .unwrap();
        }
        // In bursts a while apart, so that they make several view changes.
        if s % 5 == 4 {
            producer.flush(Duration::from_secs(10)).unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    for bad in [&b"not json"[..], br#"{"race":"obs","participant":"r0"}"#] {
        producer
            .send(&kafka.topics.gps, Some(b"obs"), bad, &[], 0)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let gps_records = runners * seconds + 2;
    for (expression, id) in [("6 * 7", "good"), ("1 / 0", "bad")] {
        let r = http
            .post(format!("{base}/api/tasks"))
            .json(&json!({"id": id, "expression": expression}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
    // Deltas reach the spectator (each is a measured end-to-end latency).
    let mut deltas = 0;
    while deltas < 3 {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame within 30 s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            let frame: Value = serde_json::from_str(&t).unwrap();
            deltas += usize::from(frame["type"] == "delta");
        }
    }

    // A real Prometheus scrapes it every second and evaluates the rules.
    let dir = tempfile::tempdir().unwrap();
    let target = base.strip_prefix("http://").unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: pace\n    static_configs:\n      - targets: [\"{target}\"]\n",
        observability_dir().join("rules.yml").display()
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let _prometheus = Prometheus(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian's package; `make tools` installs it)"),
    );
    let prom = format!("http://127.0.0.1:{port}");
    let gps = &kafka.topics.gps;
    let want = |query: String, check: fn(f64, f64) -> bool, expected: f64| {
        let (http, prom) = (http.clone(), prom.clone());
        async move {
            let got = eventually(&query, Duration::from_secs(60), || {
                let (http, prom, query) = (http.clone(), prom.clone(), query.clone());
                async move {
                    query_one(&http, &prom, &query)
                        .await
                        .filter(|v| check(*v, expected))
                }
            })
            .await;
            println!("{query} = {got}");
        }
    };
    let equal = |a: f64, b: f64| a == b;
    let at_least = |a: f64, b: f64| a >= b;
    want(r#"up{job="pace"}"#.into(), equal, 1.0).await;
    want(
        format!(r#"pace_ingest_records_total{{topic="{gps}"}}"#),
        equal,
        gps_records as f64,
    )
    .await;
    want(
        format!(r#"sum(pace_ingest_invalid_records_total{{topic="{gps}"}})"#),
        equal,
        2.0,
    )
    .await;
    want(
        format!(r#"count(pace_ingest_consumer_lag_records{{topic="{gps}"}})"#),
        equal,
        4.0,
    )
    .await;
    want(
        format!(r#"sum(pace_ingest_consumer_lag_records{{topic="{gps}"}})"#),
        equal,
        0.0,
    )
    .await;
    want(
        r#"pace_view_latency_seconds_count{view="standings"}"#.into(),
        at_least,
        (gps_records + 1) as f64,
    )
    .await;
    want(
        r#"pace_edge_frame_latency_seconds_count{view="race"}"#.into(),
        at_least,
        3.0,
    )
    .await;
    // The measured latencies are real durations, not zeros or garbage.
    want(
        r#"histogram_quantile(0.5, sum by (le) (pace_edge_frame_latency_seconds_bucket{view="race"}))"#
            .into(),
        |v, _| v > 0.0 && v < 30.0,
        0.0,
    )
    .await;
    want(
        r#"pace_tasks_total{status="SUCCESSFUL"}"#.into(),
        equal,
        1.0,
    )
    .await;
    want(r#"pace_tasks_total{status="FAILED"}"#.into(), equal, 1.0).await;
    want(
        r#"process_resident_memory_bytes{job="pace"}"#.into(),
        at_least,
        1e6,
    )
    .await;

    // Prometheus loaded every rule and evaluates it without error.
    let rules = eventually("rules evaluated", Duration::from_secs(30), || {
        let (http, url) = (http.clone(), format!("{prom}/api/v1/rules"));
        async move {
            let body: Value = get_json(&http, &url).await?;
            let rules: Vec<Value> = body["data"]["groups"]
                .as_array()?
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            rules
                .iter()
                .all(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z")
                .then_some(rules)
        }
    })
    .await;
    assert_eq!(rules.len(), 11);
    // `promtool check metrics` lints pace's exposition, now that every
    // kind of metric has series.
    let text = get_text(&http, &format!("{base}/metrics")).await;
    promtool(&["check", "metrics"], Some(&text));
    for family in [
        "pace_ingest_consumer_lag_records",
        "pace_view_latency_seconds_bucket",
        "pace_edge_frame_latency_seconds_bucket",
        "pace_pipeline_frontier_lag_seconds",
        "pace_pipeline_epoch_records_bucket",
        // Where the workers' time went, by the jobs' named stages.
        "pace_pipeline_operator_seconds_total{operator=\"Rank\"}",
        "pace_pipeline_operator_seconds_total{operator=\"Track\"}",
        "pace_tasks_total",
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(family), "/metrics lacks {family}");
    }

    ws.send(Message::Close(None)).await.ok();
    stack.stop().await;
}
