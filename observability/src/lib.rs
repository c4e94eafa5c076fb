//! # pace-observability
//!
//! The metric registry of a pace process and its text rendering for
//! `GET /metrics`. Every metric pace exports is defined here, once, with its
//! help text, so the names follow one scheme:
//! `pace_<component>_<noun>_<unit>[_total]`. Labels are bounded sets (topic,
//! reason kind, view); never a race, room or user id.
//!
//! Beside the code:
//! - `prometheus/`: the scrape configuration for a local pace, the alert
//!   rules (`rules.yml`) and their unit tests (`rules.test.yml`);
//! - `grafana/`: the dashboard (`dashboards/pace.json`, a panel for every
//!   metric) and the provisioning that loads it with its data source;
//! - `compose.yml`: Prometheus on :9090 and Grafana on :3001 against a pace
//!   on this host.
//!
//! The tests here check that the dashboard and the rules name only metrics
//! that exist, and that the dashboard shows every one of them.
//!
//! [`traces`]: the log, the spans exported over OTLP, and the trace
//! context carried in HTTP and Kafka headers.

use std::sync::OnceLock;

pub mod traces;

use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// All metrics of a pace process.
pub struct Metrics {
    registry: Registry,
    /// Every metric family's name, also those with no series yet.
    families: Vec<String>,
    /// Records read from Kafka, by topic.
    pub ingest_records: IntCounterVec,
    /// Payload bytes read from Kafka, by topic.
    pub ingest_bytes: IntCounterVec,
    /// Records refused by decode or validation, by topic and reason kind.
    pub ingest_invalid: IntCounterVec,
    /// Records not yet read, by topic and partition: the broker's high
    /// watermark minus the consumer's position (every retained record before
    /// the first read).
    pub ingest_lag: IntGaugeVec,
    /// Records written to the dead-letter topic.
    pub dlq_records: IntCounterVec,
    /// View changes produced to a changelog topic, by view.
    pub view_changes: IntCounterVec,
    /// Time from a record's Kafka timestamp to the view change it caused, by view.
    pub view_latency: HistogramVec,
    /// Time from an input record's Kafka timestamp to a frame carrying the
    /// view change it caused being written to a client's socket, by view.
    pub edge_frame_latency: HistogramVec,
    /// Task results produced, by status (`SUCCESSFUL`, `FAILED`).
    pub tasks: IntCounterVec,
    /// Rows written to the Parquet archive, by dataset.
    pub archive_rows: IntCounterVec,
    /// Parquet files written, by dataset.
    pub archive_files: IntCounterVec,
    /// Bytes of Parquet files written, by dataset.
    pub archive_bytes: IntCounterVec,
    /// Payload bytes the archiver has read and not yet written to a file, by topic.
    pub archive_buffered: IntGaugeVec,
    /// Open WebSocket connections at the edge.
    pub edge_clients: IntGauge,
    /// Open client connections at the edge, HTTP and WebSocket.
    pub edge_connections: IntGauge,
    /// Client input refused for being over its budget, by input (`request`,
    /// `frame`, `post`, `point`, `refused_point`, `task`).
    pub edge_rate_limited: IntCounterVec,
    /// WebSocket frames sent by the edge, by type (snapshot, delta, …).
    pub edge_frames: IntCounterVec,
    /// Live subscriptions at the edge, by view (race, participant, room, task).
    pub edge_subscriptions: IntGaugeVec,
    /// Snapshots sent to subscribers that fell behind, by view.
    pub edge_lag_snapshots: IntCounterVec,
    /// Connections refused or dropped by the edge, by reason: `limit` (every
    /// place taken), `address` (its address holds its share), `descriptors`
    /// (accept failed for want of them), `evicted` (idle, closed to make
    /// room), `header_timeout`, `request_timeout`, `idle`, `origin`,
    /// `write_timeout`, `frames` (over its frame budget), `keepalive` (no
    /// pong), `refusals` (kept sending refused input).
    pub edge_refused: IntCounterVec,
    /// GPS points sent through `WS /ws/track`, by outcome (`accepted`, `refused`).
    pub edge_track_points: IntCounterVec,
    /// Latest frontier of the dataflow, Unix seconds, by worker.
    pub pipeline_frontier: GaugeVec,
    /// How far the dataflow's completed time is behind the wall clock while
    /// data is in flight (0 when idle), seconds, by worker.
    pub pipeline_frontier_lag: GaugeVec,
    /// Records a source stamped with one epoch, by topic: about a tick's
    /// worth while the dataflow keeps up, more while it catches up (an epoch
    /// stays open until the older one is durable).
    pub pipeline_epoch_records: HistogramVec,
    /// Epochs a source closed, with records or without, by topic: while
    /// data flows, a source closes one only when some source read records
    /// into it, so an idle topic's count follows the busy ones'.
    pub pipeline_epochs: IntCounterVec,
    /// Seconds the workers spent in each dataflow operator, by its name
    /// (timely's schedule events), each its own time only: a scope counts
    /// what it spends itself, not its operators' time.
    pub pipeline_operator_seconds: CounterVec,
    /// Epoch bindings a source produced (one per epoch in which it read
    /// records), by topic.
    pub bindings_written: IntCounterVec,
    /// Records a source read into an epoch an earlier run recorded (a
    /// restart or a replay following the bindings), by topic.
    pub bindings_followed: IntCounterVec,
    /// Changes a restored job made again that its changelog already held,
    /// and so did not write again, by view.
    pub changelog_skipped: IntCounterVec,
    /// How long one snapshot part held its worker (serialising it into a
    /// buffer for the writer thread: the worker does nothing else
    /// meanwhile), seconds, by part.
    pub snapshot_pause: HistogramVec,
    /// The longest one snapshot part has held a worker since the start,
    /// seconds, by worker.
    pub snapshot_pause_max: GaugeVec,
    /// How long the writer thread took to write, sync and rename one
    /// snapshot part (the worker goes on meanwhile), seconds, by part.
    pub snapshot_write: HistogramVec,
    /// Bytes of the latest snapshot part written, by worker and part.
    pub snapshot_bytes: IntGaugeVec,
    /// The latest snapshot point a worker finished (every part written and
    /// its outputs durable), Unix seconds, by worker.
    pub snapshot_last_point: GaugeVec,
    /// Snapshot points a worker finished since the start.
    pub snapshot_points: IntCounterVec,
    /// What this start restored: the snapshot point, Unix seconds (0 for
    /// none: the views are rebuilt from the start of retention), by the
    /// worker count the latest snapshot on disk was taken with (`none`
    /// without one) and this start's.
    pub snapshot_restored: GaugeVec,
    /// Observations the standings job treated specially, by outcome: `late`
    /// (older than the participant's latest), `correction` (a late one that
    /// retracted a split), `rejected` (impossible jump or false read),
    /// `too_late` (older than what is still held), `unknown_race` (of a
    /// race not defined, past what a worker holds for such races).
    pub standings_points: IntCounterVec,
    /// Chat events the rooms job treated specially, by outcome
    /// (`out_of_order`: a room's event after one with a greater offset).
    pub rooms_events: IntCounterVec,
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new_custom(None, None).expect("static registry config");
        let reg = Reg {
            registry: &registry,
            families: std::cell::RefCell::new(Vec::new()),
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            reg.add(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        let ingest_records = counter(
            "pace_ingest_records_total",
            "Records read from Kafka.",
            &["topic"],
        );
        let ingest_bytes = counter(
            "pace_ingest_bytes_total",
            "Payload bytes read from Kafka.",
            &["topic"],
        );
        let ingest_invalid = counter(
            "pace_ingest_invalid_records_total",
            "Records refused by decoding or validation.",
            &["topic", "reason"],
        );
        let ingest_lag = reg.add(
            IntGaugeVec::new(
                Opts::new(
                    "pace_ingest_consumer_lag_records",
                    "Records on the broker not yet read: high watermark minus position.",
                ),
                &["topic", "partition"],
            )
            .expect("valid metric"),
        );
        let tasks = counter(
            "pace_tasks_total",
            "Task results produced, by status.",
            &["status"],
        );
        let dlq_records = counter(
            "pace_dlq_records_total",
            "Records written to the dead-letter topic.",
            &["topic"],
        );
        let view_changes = counter(
            "pace_view_changes_total",
            "View changes produced to changelog topics.",
            &["view"],
        );
        let archive_rows = counter(
            "pace_archive_rows_total",
            "Rows written to the Parquet archive.",
            &["dataset"],
        );
        let archive_files = counter(
            "pace_archive_files_total",
            "Parquet files written to the archive.",
            &["dataset"],
        );
        let archive_bytes = counter(
            "pace_archive_bytes_total",
            "Bytes of Parquet files written to the archive.",
            &["dataset"],
        );
        let archive_buffered = reg.add(
            IntGaugeVec::new(
                Opts::new(
                    "pace_archive_buffered_bytes",
                    "Payload bytes the archiver has read and not yet written to a file.",
                ),
                &["topic"],
            )
            .expect("valid metric"),
        );
        let edge_frames = counter(
            "pace_edge_frames_sent_total",
            "WebSocket frames sent to clients.",
            &["type"],
        );
        let edge_lag_snapshots = counter(
            "pace_edge_lag_snapshots_total",
            "Snapshots sent to subscribers that fell behind, instead of the backlog.",
            &["view"],
        );
        let edge_refused = counter(
            "pace_edge_refused_connections_total",
            "Connections refused or dropped by the edge.",
            &["reason"],
        );
        let edge_rate_limited = counter(
            "pace_edge_rate_limited_total",
            "Client input refused for being over its budget.",
            &["input"],
        );
        let edge_track_points = counter(
            "pace_edge_track_points_total",
            "GPS points sent through WS /ws/track.",
            &["outcome"],
        );
        let standings_points = counter(
            "pace_standings_points_total",
            "Observations the standings job treated specially, by outcome.",
            &["outcome"],
        );
        let rooms_events = counter(
            "pace_rooms_events_total",
            "Chat events the rooms job treated specially, by outcome.",
            &["outcome"],
        );
        // Latencies by view: 1 ms to about 33 s in powers of two.
        let latency = |name: &str, help: &str| {
            reg.add(
                HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(
                        prometheus::exponential_buckets(0.001, 2.0, 16).expect("valid buckets"),
                    ),
                    &["view"],
                )
                .expect("valid metric"),
            )
        };
        let view_latency = latency(
            "pace_view_latency_seconds",
            "Time from a record's Kafka timestamp to the view change it caused.",
        );
        let edge_frame_latency = latency(
            "pace_edge_frame_latency_seconds",
            "Time from an input record's Kafka timestamp to a frame with the view change it caused written to a client.",
        );
        let pipeline_frontier_lag = reg.add(GaugeVec::new(
                Opts::new(
                    "pace_pipeline_frontier_lag_seconds",
                    "How far the dataflow's completed time is behind the wall clock while data is in flight.",
                ),
                &["worker"],
            )
            .expect("valid metric"),
        );
        let pipeline_epoch_records = reg.add(
            HistogramVec::new(
                HistogramOpts::new(
                    "pace_pipeline_epoch_records",
                    "Records a Kafka source stamped with one epoch.",
                )
                .buckets(prometheus::exponential_buckets(1.0, 4.0, 10).expect("valid buckets")),
                &["topic"],
            )
            .expect("valid metric"),
        );
        let pipeline_operator_seconds = reg.add(
            CounterVec::new(
                Opts::new(
                    "pace_pipeline_operator_seconds_total",
                    "Seconds the workers spent in each dataflow operator, by its name (wall time between its start and stop, so on a machine short of cores it includes time the thread waited for one).",
                ),
                &["operator"],
            )
            .expect("valid metric"),
        );
        let pipeline_epochs = counter(
            "pace_pipeline_epochs_total",
            "Epochs a Kafka source closed (with records or without).",
            &["topic"],
        );
        let bindings_written = counter(
            "pace_bindings_written_total",
            "Epoch bindings produced: one per source and epoch in which it read records.",
            &["topic"],
        );
        let bindings_followed = counter(
            "pace_bindings_followed_records_total",
            "Records read into an epoch an earlier run recorded.",
            &["topic"],
        );
        let changelog_skipped = counter(
            "pace_changelog_skipped_total",
            "Changes a restored job made again that its changelog already held.",
            &["view"],
        );
        let snapshot_pause = reg.add(
            HistogramVec::new(
                HistogramOpts::new(
                    "pace_snapshot_pause_seconds",
                    "Time handing one snapshot part to the writer thread held its worker (serialising or sharing it).",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16).expect("valid buckets")),
                &["part"],
            )
            .expect("valid metric"),
        );
        let snapshot_pause_max = reg.add(
            GaugeVec::new(
                Opts::new(
                    "pace_snapshot_pause_max_seconds",
                    "The longest one snapshot part has held a worker since the start.",
                ),
                &["worker"],
            )
            .expect("valid metric"),
        );
        let snapshot_write = reg.add(
            HistogramVec::new(
                HistogramOpts::new(
                    "pace_snapshot_write_seconds",
                    "Time the writer thread took to serialize (a part handed over as a shared value), write, sync and rename one snapshot part.",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 16).expect("valid buckets")),
                &["part"],
            )
            .expect("valid metric"),
        );
        let snapshot_bytes = reg.add(
            IntGaugeVec::new(
                Opts::new(
                    "pace_snapshot_bytes",
                    "Bytes of the latest snapshot part written.",
                ),
                &["worker", "part"],
            )
            .expect("valid metric"),
        );
        let snapshot_last_point = reg.add(
            GaugeVec::new(
                Opts::new(
                    "pace_snapshot_last_point_seconds",
                    "The latest snapshot point a worker finished, Unix seconds.",
                ),
                &["worker"],
            )
            .expect("valid metric"),
        );
        let snapshot_points = reg.add(
            IntCounterVec::new(
                Opts::new(
                    "pace_snapshot_points_total",
                    "Snapshot points a worker finished (every part written, every change before it durable) since the start.",
                ),
                &["worker"],
            )
            .expect("valid metric"),
        );
        let snapshot_restored = reg.add(
            GaugeVec::new(
                Opts::new(
                    "pace_snapshot_restored_point_seconds",
                    "The snapshot point this start restored, Unix seconds (0: none, rebuilt from retention), by the worker count the latest snapshot on disk was taken with and this start's.",
                ),
                &["taken_workers", "workers"],
            )
            .expect("valid metric"),
        );
        let edge_clients = reg
            .add(IntGauge::new("pace_edge_clients", "Open WebSocket connections.").expect("valid"));
        let edge_connections = reg.add(
            IntGauge::new(
                "pace_edge_connections",
                "Open client connections, HTTP and WebSocket.",
            )
            .expect("valid"),
        );
        let edge_subscriptions = reg.add(
            IntGaugeVec::new(
                Opts::new("pace_edge_subscriptions", "Live subscriptions at the edge."),
                &["view"],
            )
            .expect("valid metric"),
        );
        let pipeline_frontier = reg.add(
            GaugeVec::new(
                Opts::new(
                    "pace_pipeline_frontier_seconds",
                    "Dataflow frontier (Unix seconds) seen by each worker.",
                ),
                &["worker"],
            )
            .expect("valid metric"),
        );
        #[cfg(target_os = "linux")]
        reg.collect(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        let families = reg.families.into_inner();
        Self {
            registry,
            families,
            ingest_records,
            ingest_bytes,
            ingest_invalid,
            ingest_lag,
            dlq_records,
            view_changes,
            view_latency,
            edge_frame_latency,
            tasks,
            archive_rows,
            archive_files,
            archive_bytes,
            archive_buffered,
            edge_clients,
            edge_connections,
            edge_rate_limited,
            edge_frames,
            edge_subscriptions,
            edge_lag_snapshots,
            edge_refused,
            edge_track_points,
            pipeline_frontier,
            pipeline_frontier_lag,
            pipeline_epoch_records,
            pipeline_epochs,
            pipeline_operator_seconds,
            bindings_written,
            bindings_followed,
            changelog_skipped,
            snapshot_pause,
            snapshot_pause_max,
            snapshot_write,
            snapshot_bytes,
            snapshot_last_point,
            snapshot_points,
            snapshot_restored,
            standings_points,
            rooms_events,
        }
    }

    /// The name of every metric family, in definition order (also those
    /// that have no series yet, so render nothing).
    pub fn families(&self) -> &[String] {
        &self.families
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding to a Vec cannot fail");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }
}

/// A registry being filled, and the names of the families in it.
struct Reg<'a> {
    registry: &'a Registry,
    families: std::cell::RefCell<Vec<String>>,
}

impl Reg<'_> {
    /// Registers `metric`, notes its family names and hands it back.
    /// Definitions are static, so a clash is a bug the tests catch.
    fn add<M: prometheus::core::Collector + Clone + 'static>(&self, metric: M) -> M {
        self.collect(Box::new(metric.clone()));
        metric
    }

    /// Registers a collector the registry owns alone.
    fn collect(&self, collector: Box<dyn prometheus::core::Collector>) {
        self.families
            .borrow_mut()
            .extend(collector.desc().iter().map(|d| d.fq_name.clone()));
        self.registry.register(collector).expect("unique metric");
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_named_metrics() {
        let m = metrics();
        m.ingest_records.with_label_values(&["pace.gps"]).inc();
        m.ingest_invalid
            .with_label_values(&["pace.gps", "json"])
            .inc();
        let text = m.render();
        assert!(text.contains("pace_ingest_records_total{topic=\"pace.gps\"} 1"));
        assert!(
            text.contains(
                "pace_ingest_invalid_records_total{reason=\"json\",topic=\"pace.gps\"} 1"
            )
        );
        assert!(text.contains("# HELP pace_edge_clients"));
    }

    /// Metric names in `text`: every `pace_…` or `process_…` word.
    fn names_in(text: &str) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        let bytes = text.as_bytes();
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut i = 0;
        while i < bytes.len() {
            let starts = (i == 0 || !word(bytes[i - 1]))
                && (bytes[i..].starts_with(b"pace_") || bytes[i..].starts_with(b"process_"));
            if starts {
                let end = (i..bytes.len())
                    .find(|&j| !word(bytes[j]))
                    .unwrap_or(bytes.len());
                out.insert(text[i..end].to_owned());
                i = end;
            } else {
                i += 1;
            }
        }
        out
    }

    /// The family a series name belongs to (a histogram's `_bucket`,
    /// `_count` and `_sum` are its family's).
    /// The names in `used` that are no metric family's.
    fn unknown<'a>(
        used: &'a std::collections::BTreeSet<String>,
        families: &[String],
    ) -> Vec<&'a String> {
        used.iter()
            .filter(|n| family(n, families).is_none())
            .collect()
    }

    fn family<'a>(name: &'a str, families: &[String]) -> Option<&'a str> {
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| families.iter().any(|f| f == b))
            .unwrap_or(name);
        families.iter().any(|f| f == base).then_some(base)
    }

    fn dashboard_exprs() -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/grafana/dashboards/pace.json");
        let dash: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut exprs = String::new();
        for panel in dash["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().into_iter().flatten() {
                exprs.push_str(t["expr"].as_str().unwrap());
                exprs.push('\n');
            }
        }
        exprs
    }

    #[test]
    fn dashboard_shows_every_metric_and_only_real_ones() {
        let families = metrics().families();
        assert!(families.len() > 25, "{families:?}");
        assert!(
            families
                .iter()
                .any(|f| f == "process_resident_memory_bytes")
        );
        let used = names_in(&dashboard_exprs());
        let unknown = unknown(&used, families);
        assert!(
            unknown.is_empty(),
            "the dashboard names unknown metrics: {unknown:?}"
        );
        let shown: std::collections::BTreeSet<&str> =
            used.iter().filter_map(|n| family(n, families)).collect();
        let missing: Vec<_> = families
            .iter()
            .filter(|f| !shown.contains(f.as_str()))
            .collect();
        assert!(missing.is_empty(), "no dashboard panel shows {missing:?}");
    }

    #[test]
    fn alert_rules_name_only_real_metrics() {
        let families = metrics().families();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/prometheus/rules.yml");
        let rules = std::fs::read_to_string(path).unwrap();
        let used = names_in(&rules);
        assert!(used.len() >= 8, "{used:?}");
        let unknown = unknown(&used, families);
        assert!(
            unknown.is_empty(),
            "the rules name unknown metrics: {unknown:?}"
        );
    }
}
