//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

/// `../shared/data` beside the repository, or `$PACE_SHARED_DATA`.
pub fn shared_data() -> std::path::PathBuf {
    std::env::var_os("PACE_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
        })
}

/// The real Apache Kafka broker the tests run against, from `PACE_TEST_BROKERS`
/// (set by `make test`, which starts the broker with `make kafka-up`).
pub fn brokers() -> String {
    std::env::var("PACE_TEST_BROKERS").expect(
        "PACE_TEST_BROKERS is not set: run `make test`, or `make kafka-up` and \
         export PACE_TEST_BROKERS=127.0.0.1:19092",
    )
}

/// A topic prefix no other test run uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test-{test}-{}-{nanos}.", std::process::id())
}

/// The Python with DuckDB and pyarrow (`PACE_TEST_PYTHON`, set by `make test`).
pub fn python() -> String {
    std::env::var("PACE_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs a Python snippet, returning its stdout; fails the test on error.
pub fn run_python(code: &str) -> String {
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(code)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Polls `f` until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A WebSocket client connection.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next frame as JSON; fails the test after 30 s.
pub async fn next_frame(ws: &mut Ws) -> Value {
    let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
        .await
        .expect("a frame within 30 s")
        .unwrap()
        .unwrap();
    serde_json::from_str(msg.to_text().unwrap()).unwrap()
}
