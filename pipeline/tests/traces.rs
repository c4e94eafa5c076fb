//! Traces across the whole stack, on a real Apache Kafka broker: a task
//! posted with a `traceparent` header is one trace from the edge's HTTP
//! request, through its produce to `pace.calc` (the context in the
//! record's header), the pipeline's consume, the evaluation and its
//! produce to `pace.results`, to the edge applying the result and pushing
//! its frame; every span reaches an OTLP/HTTP receiver as a descendant of
//! the one before (in the pipeline, its child).
//!
//! The receiver is `otlp/receiver.py`: a plain HTTP server that decodes
//! OTLP with the OpenTelemetry project's protobuf definitions
//! (opentelemetry-proto), not the OpenTelemetry Collector (a Go program
//! this test would have to build first).

mod common;

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Killed, next_frame, spawn_pace, ws_url};
use serde_json::{Value, json};

/// The spans the receiver has written so far.
fn spans(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Starts the receiver writing to `out`; the child and its endpoint.
fn receiver(out: &Path) -> (Killed, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp/receiver.py");
    let mut child = std::process::Command::new(common::python())
        .arg(script)
        .arg(out)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("the receiver printed {line:?}"));
    (Killed(child), format!("http://127.0.0.1:{port}"))
}

#[test]
fn a_tasks_trace_runs_from_its_request_to_its_result_frame() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("spans.jsonl");
    let (_receiver, endpoint) = receiver(&out);
    let (prefix, kafka) = common::views::fresh_topics("traces");
    let data = dir.path().join("data");
    let pipeline = [
        "pipeline",
        "--brokers",
        &kafka.brokers,
        "--topic-prefix",
        &prefix,
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--no-archive",
        "--tick-ms",
        "20",
        "--otlp-endpoint",
        &endpoint,
    ];
    let args: Vec<&std::ffi::OsStr> = pipeline.iter().map(std::ffi::OsStr::new).collect();
    let (pipeline, _) = spawn_pace(&args);
    let _pipeline = Killed(pipeline);
    let (edge, base) = common::pace_edge_with(&kafka, None, &["--otlp-endpoint", &endpoint]);
    let _edge = Killed(edge);

    // The client's own trace: a span of its that the edge's request is a
    // child of.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&base, "/ws/tasks/traced"))
            .await
            .unwrap();
        assert_eq!(next_frame(&mut ws).await["type"], "snapshot");
        let posted = reqwest::Client::new()
            .post(format!("{base}/api/tasks"))
            .header("traceparent", format!("00-{trace}-{client_span}-01"))
            .json(&json!({"id": "traced", "expression": "6 * 7"}))
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 202);
        let frame = next_frame(&mut ws).await;
        assert_eq!(frame["result"]["result"], "42", "{frame}");
    });

    // Every step.
    let steps: [(&str, &str); 6] = [
        ("pace-edge", "POST /api/tasks"),
        ("pace-edge", "produce "),
        ("pace-pipeline", "kafka.consume"),
        ("pace-pipeline", "calc.evaluate"),
        ("pace-pipeline", "kafka.produce"),
        ("pace-edge", "apply task result"),
    ];
    let deadline = Instant::now() + Duration::from_secs(90);
    let found = loop {
        let of_trace: Vec<Value> = (spans(&out).into_iter())
            .filter(|s| s["trace"] == trace)
            .collect();
        let found: Vec<Option<Value>> = steps
            .iter()
            .map(|(service, name)| {
                of_trace
                    .iter()
                    .find(|s| {
                        s["service"] == *service && s["name"].as_str().unwrap().starts_with(name)
                    })
                    .cloned()
            })
            .collect();
        if found.iter().all(Option::is_some) {
            break found.into_iter().flatten().collect::<Vec<_>>();
        }
        assert!(
            Instant::now() < deadline,
            "missing spans: {:?}; the trace's spans: {of_trace:#?}",
            steps
                .iter()
                .zip(&found)
                .filter(|(_, f)| f.is_none())
                .map(|(s, _)| s)
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(found[0]["parent"], client_span, "{:#?}", found[0]);
    assert!(
        found[1]["name"]
            .as_str()
            .unwrap()
            .ends_with(&kafka.topics.calc),
        "{:#?}",
        found[1]
    );
    // From the edge's produce to the pipeline's, each is the child of the
    // one before.
    for i in 2..5 {
        assert_eq!(
            found[i]["parent"],
            found[i - 1]["span"],
            "{} is not the child of {}",
            found[i]["name"],
            found[i - 1]["name"]
        );
    }
    // Each step descends from the one before (through the edge's own
    // spans between: the router's `request`, say).
    let all: Vec<Value> = spans(&out);
    let parent_of = |span: &Value| all.iter().find(|s| s["span"] == span["parent"]);
    for pair in found.windows(2) {
        let mut up = Some(&pair[1]);
        while let Some(s) = up
            && s["span"] != pair[0]["span"]
        {
            up = parent_of(s);
        }
        assert!(
            up.is_some(),
            "{} does not descend from {}; every span received: {all:#?}",
            pair[1]["name"],
            pair[0]["name"]
        );
    }
}
