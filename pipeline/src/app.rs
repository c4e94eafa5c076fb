//! The composition root: what each `pace` subcommand starts, and how it stops.
//!
//! `main.rs` parses flags into the setting groups of [`crate::settings`]
//! and calls one function with those it uses; all wiring is here so tests
//! can start the same things in-process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use ingest::embedded::EmbeddedBroker;

use crate::runtime::{self, PipelineConfig};
use crate::settings::{self, Data, Kafka, Listen, Topics};

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("pace-edge")
        .build()
        .context("start tokio")
}

/// Resolves when SIGINT or SIGTERM arrives, or `stop` is set.
async fn shutdown_signal(stop: Arc<AtomicBool>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tick.tick() => if stop.load(Ordering::SeqCst) { break },
        }
    }
    tracing::info!("shutting down");
    stop.store(true, Ordering::SeqCst);
}

/// Starts the archiver on a thread of its own; it stops when `stop` is set,
/// and a failure stops everything.
fn start_archive(
    config: sinks::archive::ArchiveConfig,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<()>> {
    std::thread::Builder::new()
        .name("pace-archive".into())
        .spawn(move || {
            let result = sinks::archive::run(&config, &stop);
            stop.store(true, Ordering::SeqCst);
            result.context("archive")
        })
        .expect("spawn archive thread")
}

fn start_pipeline(
    config: PipelineConfig,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<()>> {
    std::thread::Builder::new()
        .name("pace-pipeline".into())
        .spawn(move || {
            let result = runtime::run(config, stop.clone());
            // Whatever ended the pipeline ends the process.
            stop.store(true, Ordering::SeqCst);
            result.context("pipeline")
        })
        .expect("spawn pipeline thread")
}

/// The built-in workload of `pace run` (without a recorded replay).
#[derive(Clone, Copy, Debug)]
pub struct Demo {
    /// Runners in the generated loop race (0: none, and no chat either).
    pub participants: usize,
    /// Runners in the generated chip-timed road race (0: none).
    pub road_runners: usize,
}

/// `pace run`: broker (embedded unless `--brokers`), demo races, pipeline and edge in one process.
pub fn run_all(
    all: &settings::All,
    demo: Demo,
    replay: Option<(Recorded, f64)>,
) -> anyhow::Result<()> {
    let Demo {
        participants: demo_participants,
        road_runners,
    } = demo;
    // Read a recorded dataset before starting anything: a bad path fails fast.
    let recorded = match &replay {
        Some((r, speed)) => Some((read_recorded(r)?, *speed)),
        None => None,
    };
    let rt = tokio_runtime()?;
    // The embedded broker lives on this thread for the whole run.
    let embedded;
    let kafka = match &all.service.kafka.brokers {
        Some(b) => {
            let kafka = all.service.kafka.on(b);
            all.service.topics.ensure(&rt, &kafka)?;
            kafka
        }
        None => {
            embedded = EmbeddedBroker::start(all.service.topics.partitions)
                .context("start embedded broker")?;
            let kafka = embedded.config();
            tracing::info!(brokers = %kafka.brokers, "embedded broker (in memory; use --brokers for Apache Kafka)");
            kafka
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let demo = match recorded {
        Some((dataset, speed)) => {
            let (kafka, stop) = (kafka.clone(), stop.clone());
            Some(std::thread::spawn(move || {
                ingest::datasets::replay(&kafka, &dataset, speed, &stop, &mut |_, _| {})
                    .map(|sent| tracing::info!(sent, "recorded replay done"))
            }))
        }
        None => (demo_participants > 0)
            .then(|| ingest::generate::run_demo(kafka.clone(), demo_participants, stop.clone())),
    };
    // The built-in chat and road race run beside the loop (not beside a
    // recorded replay).
    let chat_demo = (replay.is_none() && demo_participants > 0)
        .then(|| ingest::generate::run_chat_demo(kafka.clone(), stop.clone()));
    let road_demo = (replay.is_none() && road_runners > 0)
        .then(|| ingest::generate::run_road_demo(kafka.clone(), road_runners, stop.clone()));
    let mut config = all.pipeline.config(kafka.clone(), &all.service.data);
    if all.service.kafka.brokers.is_none() {
        // The embedded broker forgets everything when the process ends, so
        // a snapshot would name offsets of topics that are gone.
        config.snapshot_every = None;
    }
    let pipeline = start_pipeline(config, stop.clone());
    let archive = start_archive(
        all.archive.config(kafka.clone(), &all.service.data),
        stop.clone(),
    );
    let edge = rt.block_on(ws_edge::serve(
        all.edge.config(&all.service.listen, kafka.clone()),
        announce,
        shutdown_signal(stop.clone()),
    ));
    stop.store(true, Ordering::SeqCst);
    let pipeline = pipeline.join().expect("pipeline thread");
    let archive = archive.join().expect("archive thread");
    if let Some(d) = demo {
        d.join().expect("demo thread").context("demo race")?;
    }
    if let Some(c) = chat_demo {
        c.join().expect("chat demo thread").context("demo chat")?;
    }
    if let Some(r) = road_demo {
        r.join()
            .expect("road demo thread")
            .context("demo road race")?;
    }
    edge.context("edge")?;
    archive?;
    pipeline
}

fn announce(addr: SocketAddr) {
    // The one line a user (or a test) needs: where to look.
    #[allow(clippy::print_stdout)]
    {
        println!("pace: serving http://{addr}/");
    }
}

/// `pace token`: a token for `user`, valid for `ttl_s` seconds, signed with `secret`.
pub fn issue_token(secret: &str, user: &str, ttl_s: u64) -> anyhow::Result<String> {
    schemas::validate::id("user", user).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ws_edge::auth::issue(
        secret,
        user,
        ws_edge::auth::now_s(),
        ttl_s,
    ))
}

/// `pace pipeline`: the dataflow (one process of a cluster when `cluster`
/// says so), and the archiver unless `archive` is `None`. In a cluster only
/// process 0 archives, so each record is archived once.
pub fn run_pipeline(
    service: &settings::Service,
    pipeline: &settings::Pipeline,
    archive: Option<&settings::Archive>,
    cluster: Option<runtime::Cluster>,
) -> anyhow::Result<()> {
    let (listen, data) = (&service.listen, &service.data);
    let kafka = service.kafka.required()?;
    let rt = tokio_runtime()?;
    service.topics.ensure(&rt, &kafka)?;
    let stop = Arc::new(AtomicBool::new(false));
    let archive = archive.filter(|_| cluster.as_ref().is_none_or(|c| c.process == 0));
    let mut config = pipeline.config(kafka.clone(), data);
    config.cluster = cluster;
    let pipeline = start_pipeline(config, stop.clone());
    let archive = archive.map(|a| start_archive(a.config(kafka, data), stop.clone()));
    let served = rt.block_on(serve_metrics_until_stopped(listen.listen, stop));
    let pipeline = pipeline.join().expect("pipeline thread");
    if let Some(a) = archive {
        a.join().expect("archive thread")?;
    }
    served?;
    pipeline
}

/// `pace archive run`: the archiver only.
pub fn run_archive(service: &settings::Service, archive: &settings::Archive) -> anyhow::Result<()> {
    let (listen, data) = (&service.listen, &service.data);
    let kafka = service.kafka.required()?;
    let rt = tokio_runtime()?;
    service.topics.ensure(&rt, &kafka)?;
    let stop = Arc::new(AtomicBool::new(false));
    let archive = start_archive(archive.config(kafka, data), stop.clone());
    let served = rt.block_on(serve_metrics_until_stopped(listen.listen, stop));
    archive.join().expect("archive thread")?;
    served
}

/// Serves `/metrics` and `/healthz` on `listen` until a signal sets
/// `stop`; if it cannot, sets `stop` itself, so the process winds down.
async fn serve_metrics_until_stopped(
    listen: SocketAddr,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let served = ws_edge::serve_metrics(listen, announce, shutdown_signal(stop.clone())).await;
    stop.store(true, Ordering::SeqCst);
    served.context("metrics endpoint")
}

/// `pace archive verify`: the archive against the topics; `Ok(false)` if it
/// has gaps or duplicates.
pub fn verify_archive(kafka: &Kafka, data: &Data, json: bool) -> anyhow::Result<bool> {
    let kafka = kafka.required()?;
    let report = sinks::verify::verify(&kafka, &data.data_dir)?;
    #[allow(clippy::print_stdout)]
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(report.ok())
}

/// `pace archive compact`: merges the small files of closed date partitions.
pub fn compact_archive(data: &Data, options: sinks::compact::CompactOptions) -> anyhow::Result<()> {
    let done = sinks::compact::compact(&data.data_dir, &options)?;
    #[allow(clippy::print_stdout)]
    {
        for c in &done {
            println!(
                "{} date={}: {} files -> {} ({} rows merged)",
                c.dataset, c.date, c.files_before, c.files_after, c.rows
            );
        }
        if done.is_empty() {
            println!("nothing to compact before {}", options.before);
        }
    }
    Ok(())
}

/// `pace healthz`: whether the pace process serving on `listen` (on this host: an
/// unspecified address means loopback) answers `GET /healthz` with 200
/// within 2 s. A plain HTTP/1.1 request on a socket: no client, no runtime.
pub fn healthz(listen: &Listen) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut addr = listen.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let timeout = Duration::from_secs(2);
    let mut socket = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("healthz: {addr}"))?;
    socket.set_read_timeout(Some(timeout))?;
    socket.set_write_timeout(Some(timeout))?;
    write!(
        socket,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < head.len() {
        match socket.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let status = String::from_utf8_lossy(&head[..n]);
    let status = status.lines().next().unwrap_or("");
    anyhow::ensure!(
        status.starts_with("HTTP/1.1 200 "),
        "healthz: {addr} answered {status:?}"
    );
    Ok(())
}

/// `pace edge`: the HTTP/WebSocket edge only.
pub fn run_edge(kafka: &Kafka, listen: &Listen, edge: &settings::Edge) -> anyhow::Result<()> {
    let kafka = kafka.required()?;
    let stop = Arc::new(AtomicBool::new(false));
    tokio_runtime()?
        .block_on(ws_edge::serve(
            edge.config(listen, kafka),
            announce,
            shutdown_signal(stop),
        ))
        .context("edge")
}

/// What `pace replay` replays.
#[derive(Clone, Debug)]
pub enum Replay {
    /// A JSON-lines file of one record type, to the topic of that type.
    Jsonl {
        /// The file.
        path: PathBuf,
        /// Which input topic (and record type).
        topic: InputTopic,
    },
    /// A generated demo race of N participants, start to finish.
    Demo {
        /// Participants.
        participants: usize,
        /// Seed.
        seed: u64,
    },
    /// A recorded race day.
    Recorded(Recorded),
}

pub use ingest::datasets::Recorded;

/// Reads `recorded`; the lines it skipped are logged, each with its file
/// and line number, and counted.
pub fn read_recorded(recorded: &Recorded) -> anyhow::Result<ingest::datasets::Dataset> {
    let dataset = recorded
        .read()
        .map_err(|e| anyhow::anyhow!(ingest::error_chain(&e)))?;
    report_skipped(&dataset.skipped);
    Ok(dataset)
}

/// An input topic, naming its record type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputTopic {
    /// GPS points.
    Gps,
    /// Timing crossings.
    Timing,
    /// Race definitions.
    Races,
    /// Chat events.
    Chat,
    /// Calc tasks.
    Calc,
}

/// Logs the lines a reader skipped (the first [`SKIPPED_LOGGED`] one by
/// one) and how many.
fn report_skipped(skipped: &[ingest::datasets::Skipped]) {
    for s in skipped.iter().take(SKIPPED_LOGGED) {
        tracing::warn!(path = %s.path, line = s.line, reason = %s.reason, "skipped a bad line");
    }
    if !skipped.is_empty() {
        tracing::warn!(
            skipped = skipped.len(),
            "bad lines skipped; the rest was read"
        );
    }
}

/// Skipped lines logged one by one; the rest are only counted.
const SKIPPED_LOGGED: usize = 20;

/// `path`'s records, one a line, reporting the lines skipped.
fn jsonl<T: ingest::jsonl::InputRecord>(path: &std::path::Path) -> anyhow::Result<Vec<T>> {
    let (records, skipped) = ingest::jsonl::read::<T>(path)?;
    report_skipped(&skipped);
    Ok(records)
}

/// `pace replay`: produce recorded or generated input at `speed` (0 = as fast as possible).
pub fn run_replay(
    (kafka, topics): (&Kafka, &Topics),
    replay: Replay,
    speed: f64,
) -> anyhow::Result<usize> {
    use ingest::jsonl::replay as produce;
    use schemas::{CalcTask, ChatEvent, GpsPoint, RaceDefinition, TimingCrossing};
    let kafka = kafka.required()?;
    topics.ensure(&tokio_runtime()?, &kafka)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || tokio_runtime().map(|rt| rt.block_on(shutdown_signal(stop))));
    }
    let t = &kafka.topics;
    let sent = match replay {
        Replay::Jsonl { path, topic } => match topic {
            InputTopic::Gps => produce(&kafka, &t.gps, &jsonl::<GpsPoint>(&path)?, speed, &stop)?,
            InputTopic::Timing => produce(
                &kafka,
                &t.timing,
                &jsonl::<TimingCrossing>(&path)?,
                speed,
                &stop,
            )?,
            InputTopic::Races => produce(
                &kafka,
                &t.races,
                &jsonl::<RaceDefinition>(&path)?,
                speed,
                &stop,
            )?,
            InputTopic::Chat => {
                produce(&kafka, &t.chat, &jsonl::<ChatEvent>(&path)?, speed, &stop)?
            }
            InputTopic::Calc => produce(&kafka, &t.calc, &jsonl::<CalcTask>(&path)?, speed, &stop)?,
        },
        Replay::Demo { participants, seed } => {
            let mut race = ingest::generate::DemoRace::new(
                &format!("demo-replay-{seed}"),
                participants,
                seed,
                schemas::Timestamp::now(),
            );
            let mut points = Vec::new();
            while !race.finished() {
                points.extend(race.tick());
            }
            produce(
                &kafka,
                &t.races,
                std::slice::from_ref(&race.definition),
                0.0,
                &stop,
            )? + produce(&kafka, &t.gps, &points, speed, &stop)?
        }
        Replay::Recorded(recorded) => ingest::datasets::replay(
            &kafka,
            &read_recorded(&recorded)?,
            speed,
            &stop,
            &mut |_, _| {},
        )?,
    };
    tracing::info!(sent, "replay done");
    Ok(sent)
}
