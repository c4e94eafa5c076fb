//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod changes;
pub mod courses;
pub mod outsider;
pub mod tournaments;
pub mod views;

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

/// Starts the `pace` binary with `args`, waits for the line saying where it
/// serves; the child and that base URL (no trailing slash). Its log goes to
/// the test's stderr when `PACE_TEST_DEBUG` is set, else nowhere.
pub fn spawn_pace(args: &[&std::ffi::OsStr]) -> (std::process::Child, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pace"));
    cmd.args(args)
        .stderr(if std::env::var_os("PACE_TEST_DEBUG").is_some() {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        });
    spawn_serving(cmd)
}

/// Starts `cmd` (a pace, however wrapped; its stderr as it sets it) and
/// waits for the line saying where it serves; the child and that base URL.
pub fn spawn_serving(mut cmd: std::process::Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = cmd
        .env_remove("PACE_BROKERS")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    // Timely's cluster set-up talks on stdout too ("awaiting connections
    // (at 0/1)"), before or after pace's line: skip what is not it.
    let mut seen = Vec::new();
    let base = loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "pace exited before serving; it printed {seen:?}");
        if let Some(base) = line.trim().strip_prefix("pace: serving ") {
            break base.trim_end_matches('/').to_owned();
        }
        seen.push(line);
    };
    // Keep reading what else it prints, so that no write of it fails on a
    // closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, base)
}

/// A `pace edge` process on `kafka`'s topics, checking tokens with `secret`
/// if given; the child and its base URL.
pub fn pace_edge(
    kafka: &ingest::KafkaConfig,
    secret: Option<&str>,
) -> (std::process::Child, String) {
    pace_edge_with(kafka, secret, &[])
}

/// [`pace_edge`] with `extra` flags.
pub fn pace_edge_with(
    kafka: &ingest::KafkaConfig,
    secret: Option<&str>,
    extra: &[&str],
) -> (std::process::Child, String) {
    let prefix = kafka.topics.gps.strip_suffix("pace.gps").unwrap();
    let mut args = vec![
        "edge",
        "--brokers",
        &kafka.brokers,
        "--topic-prefix",
        prefix,
        "--listen",
        "127.0.0.1:0",
    ];
    if let Some(secret) = secret {
        args.extend(["--token-secret", secret]);
    }
    args.extend(extra);
    let args: Vec<&std::ffi::OsStr> = args.into_iter().map(std::ffi::OsStr::new).collect();
    spawn_pace(&args)
}

/// A child process killed when dropped, so a failing test leaves none behind.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The WebSocket URL of `path` on the edge at `base` (`http://…`).
pub fn ws_url(base: &str, path: &str) -> String {
    format!("ws{}{path}", &base[4..])
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

/// GETs `url` as JSON; `None` on any failure (for [`eventually`]).
pub async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Option<T> {
    http.get(url).send().await.ok()?.json().await.ok()
}

/// GETs `url` as text; fails the test on any failure.
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
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

/// The archiver of `kafka` into `data_dir`, writing files every 300 ms, on a
/// thread until `stop` is set.
pub fn start_archive(
    kafka: &ingest::KafkaConfig,
    data_dir: &std::path::Path,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Result<(), sinks::SinkError>> {
    let mut config = sinks::archive::ArchiveConfig::new(kafka.clone(), data_dir.to_path_buf());
    config.max_age = Duration::from_millis(300);
    let stop = stop.clone();
    std::thread::spawn(move || sinks::archive::run(&config, &stop))
}

/// The pipeline, the archiver and an edge on the real broker, under a topic
/// prefix of their own.
pub struct Stack {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Brokers and the prefixed topics.
    pub kafka: ingest::KafkaConfig,
    /// The consumer group the pipeline commits as.
    pub group: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pipeline: std::thread::JoinHandle<Result<(), pace_pipeline::runtime::PipelineError>>,
    archive: std::thread::JoinHandle<Result<(), sinks::SinkError>>,
    edge_stop: Option<tokio::sync::oneshot::Sender<()>>,
    edge: Option<tokio::task::JoinHandle<Result<(), ws_edge::EdgeError>>>,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// Starts both, the edge checking tokens with `secret`.
    pub async fn start(test: &str, secret: &str) -> Stack {
        let prefix = unique_prefix(test);
        let kafka = ingest::KafkaConfig::new(brokers()).with_topic_prefix(&prefix);
        ingest::admin::ensure_topics(&kafka, 4).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut config =
            pace_pipeline::runtime::PipelineConfig::new(kafka.clone(), 2, dir.path().to_path_buf());
        let group = format!("{prefix}pipeline");
        config.group = group.clone();
        config.tick = Duration::from_millis(20);
        // Every stack counts its operators' time (the observability test reads it).
        config.operator_seconds = true;
        let pipeline = {
            let stop = stop.clone();
            std::thread::spawn(move || pace_pipeline::runtime::run(config, stop))
        };
        let archive = start_archive(&kafka, dir.path(), &stop);
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let (edge_stop, edge_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let edge = tokio::spawn(ws_edge::serve(
            ws_edge::EdgeConfig {
                token_secret: Some(secret.into()),
                ..ws_edge::EdgeConfig::new("127.0.0.1:0".parse().unwrap(), kafka.clone())
            },
            move |a| addr_tx.send(a).unwrap(),
            async move {
                let _ = edge_stop_rx.await;
            },
        ));
        let base = format!("http://{}", addr_rx.await.unwrap());
        Stack {
            base,
            kafka,
            group,
            stop,
            pipeline,
            archive,
            edge_stop: Some(edge_stop),
            edge: Some(edge),
            _dir: dir,
        }
    }

    /// The data directory (the archive is under `archive/`).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Stops the edge cleanly; the pipeline and the archiver go on.
    #[allow(dead_code)] // not every test binary stops the edge alone
    pub async fn stop_edge(&mut self) {
        if let (Some(stop), Some(edge)) = (self.edge_stop.take(), self.edge.take()) {
            let _ = stop.send(());
            edge.await.unwrap().unwrap();
        }
    }

    /// Stops everything cleanly.
    pub async fn stop(mut self) {
        self.stop_edge().await;
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.pipeline.join().unwrap().unwrap();
        self.archive.join().unwrap().unwrap();
    }

    /// Every record of `topic`, from the start, as JSON.
    pub fn read_topic(&self, topic: &str) -> Vec<Value> {
        read_raw(&self.kafka, topic)
            .iter()
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
            .collect()
    }
}

/// Every record of `topic`, from the start, as Kafka holds it (until 2 s
/// pass with nothing new).
pub fn read_raw(kafka: &ingest::KafkaConfig, topic: &str) -> Vec<ingest::source::RawRecord> {
    let mut c =
        ingest::source::StaticConsumer::new(kafka, "pace-test-reader", topic, 0, 1).unwrap();
    let mut out = Vec::new();
    let mut idle = 0;
    while idle < 20 {
        let batch = c.poll(1024);
        if batch.is_empty() {
            idle += 1;
            std::thread::sleep(Duration::from_millis(100));
        } else {
            idle = 0;
        }
        out.extend(batch);
    }
    out
}

/// A dataflow of one input collection, as the `run_rounds` functions build it.
pub type Build<I, O> = for<'a> fn(
    differential_dataflow::VecCollection<'a, u64, I>,
) -> differential_dataflow::VecCollection<'a, u64, O>;

/// Runs the dataflow `build` makes of one input over `rounds` of input
/// (round `r` at time `r`), with `workers` timely workers each feeding a
/// share; every output update, consolidated and sorted.
pub fn run_rounds<I, O>(
    rounds: Vec<Vec<I>>,
    workers: usize,
    build: Build<I, O>,
) -> Vec<(O, u64, isize)>
where
    I: differential_dataflow::ExchangeData + std::hash::Hash + Sync,
    O: differential_dataflow::ExchangeData + std::hash::Hash,
{
    run_rounds_by(rounds, workers, |i, _| i as u64, build)
}

/// [`run_rounds`], where the `i`th input of a round is read by worker
/// `reader(i, &input) % workers`: what a Kafka partition is to the runtime
/// (the inputs one reader gives keep their order).
pub fn run_rounds_by<I, O>(
    rounds: Vec<Vec<I>>,
    workers: usize,
    reader: fn(usize, &I) -> u64,
    build: Build<I, O>,
) -> Vec<(O, u64, isize)>
where
    I: differential_dataflow::ExchangeData + std::hash::Hash + Sync,
    O: differential_dataflow::ExchangeData + std::hash::Hash,
{
    normalise(run_rounds_raw(rounds, workers, reader, build))
}

/// [`run_rounds_by`], with every output update as the dataflow gave it:
/// not consolidated, in no particular order.
pub fn run_rounds_raw<I, O>(
    rounds: Vec<Vec<I>>,
    workers: usize,
    reader: fn(usize, &I) -> u64,
    build: Build<I, O>,
) -> Vec<(O, u64, isize)>
where
    I: differential_dataflow::ExchangeData + std::hash::Hash + Sync,
    O: differential_dataflow::ExchangeData + std::hash::Hash,
{
    use differential_dataflow::input::Input;
    use timely::dataflow::operators::Capture;
    use timely::dataflow::operators::capture::Extract;
    let (send, recv) = std::sync::mpsc::channel();
    let send = std::sync::Arc::new(std::sync::Mutex::new(send));
    // Several workers exchange data in serialized form, as between the
    // processes of a cluster, so what cannot cross a process fails here.
    let config = timely::Config {
        communication: if workers > 1 {
            timely::CommunicationConfig::ProcessBinary(workers)
        } else {
            timely::CommunicationConfig::Thread
        },
        worker: timely::WorkerConfig::default(),
    };
    timely::execute(config, move |worker| {
        let send = send.lock().unwrap().clone();
        let mut input = worker.dataflow::<u64, _, _>(|scope| {
            let (handle, collection) = scope.new_collection::<I, isize>();
            build(collection).inner.capture_into(send);
            handle
        });
        let (index, peers) = (worker.index(), worker.peers());
        for (round, list) in rounds.iter().enumerate() {
            for (i, x) in list.iter().enumerate() {
                if reader(i, x) % peers as u64 == index as u64 {
                    input.insert(x.clone());
                }
            }
            input.advance_to(round as u64 + 1);
        }
    })
    .unwrap();
    recv.extract().into_iter().flat_map(|(_, u)| u).collect()
}

/// A row of a race's view, as the standings tests compare them.
pub type RaceRow = (String, pace_pipeline::jobs::standings::ViewRow);

/// `updates` consolidated and sorted: what two runs are compared by.
pub fn normalise<D: Ord + Clone>(mut updates: Vec<(D, u64, isize)>) -> Vec<(D, u64, isize)> {
    differential_dataflow::consolidation::consolidate_updates(&mut updates);
    updates.sort();
    updates
}

/// One record of a standings test's input, as the job reads three topics.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Fed {
    /// A GPS fix or a crossing.
    Observation(pace_pipeline::jobs::standings::Observation),
    /// An entrant record.
    Entrant(pace_pipeline::jobs::standings::Entry),
    /// A race definition.
    Definition(pace_pipeline::jobs::standings::Definition),
}

impl Fed {
    /// What the track stage reads, if it is an observation or an entrant.
    pub fn read(self) -> Option<pace_pipeline::jobs::standings::Read> {
        use pace_pipeline::jobs::standings::Read;
        match self {
            Fed::Observation(o) => Some(Read::Observation(o)),
            Fed::Entrant(e) => Some(Read::Entrant(e)),
            Fed::Definition(_) => None,
        }
    }
    /// The definition, if it is one.
    pub fn definition(self) -> Option<pace_pipeline::jobs::standings::Definition> {
        match self {
            Fed::Definition(d) => Some(d),
            _ => None,
        }
    }
}

/// The reader of a standings input: a participant's observations and
/// entrant records all by one worker, in order, as Kafka keys them
/// (`race/participant`) into one partition; definitions by index.
pub fn standings_reader(i: usize, x: &Fed) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match x {
        Fed::Observation(o) => (&o.race, &o.participant).hash(&mut h),
        Fed::Entrant((key, _)) => (&key.0, &key.1).hash(&mut h),
        Fed::Definition(_) => return i as u64,
    }
    h.finish()
}

/// `race_standings` over one input of observations, entrants and definitions.
pub fn standings_views(
    input: differential_dataflow::VecCollection<'_, u64, Fed>,
) -> differential_dataflow::VecCollection<'_, u64, RaceRow> {
    let reads = input.clone().flat_map(Fed::read);
    let definitions = input.flat_map(Fed::definition);
    pace_pipeline::jobs::standings::race_standings(reads, definitions)
}

/// Waits until the archive holds everything the topics hold (nothing
/// pending, no gap or duplicate) twice in a row with the same counts.
pub fn settled(
    kafka: &ingest::KafkaConfig,
    data: &std::path::Path,
    timeout: Duration,
) -> sinks::verify::Report {
    let deadline = Instant::now() + timeout;
    let mut last: Option<Vec<u64>> = None;
    loop {
        let report = sinks::verify::verify(kafka, data).unwrap();
        let counts: Vec<u64> = report.checked.iter().map(|c| c.expected).collect();
        let done = report.checked.iter().all(|c| c.pending == 0);
        if done && last.as_ref() == Some(&counts) {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "the archive did not catch up:\n{report}"
        );
        last = done.then_some(counts);
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Validates `frames` (as JSON lines in a file) against a `$defs` entry of the protocol schema.
pub fn validate_frames(frames: &[Value], def: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.jsonl");
    let lines: Vec<String> = frames.iter().map(Value::to_string).collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ws-edge/protocol.schema.json"
    );
    let out = run_python(&format!(
        r##"
import json, jsonschema
schema = json.load(open({schema:?}))
schema.pop("oneOf")  # the root is client | server; check one definition
validator = jsonschema.Draft202012Validator({{**schema, "$ref": "#/$defs/{def}"}})
n = 0
for line in open({path:?}):
    frame = json.loads(line)
    errors = sorted(validator.iter_errors(frame), key=str)
    assert not errors, f"{{frame}}: {{errors[0].message}}"
    n += 1
print(n)
"##,
        path = path.display().to_string()
    ));
    assert_eq!(out.trim(), frames.len().to_string());
}
