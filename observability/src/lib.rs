//! # pace-observability
//!
//! The metric registry of a pace process and its text rendering for
//! `GET /metrics`. Every metric pace exports is defined here, once, with its
//! help text, so the names follow one scheme:
//! `pace_<component>_<noun>_<unit>[_total]`. Labels are bounded sets (topic,
//! reason kind, view); never a race, room or user id.
//!
//! `prometheus/` holds the scrape configuration for a local pace.

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// All metrics of a pace process.
pub struct Metrics {
    registry: Registry,
    /// Records read from Kafka, by topic.
    pub ingest_records: IntCounterVec,
    /// Payload bytes read from Kafka, by topic.
    pub ingest_bytes: IntCounterVec,
    /// Records refused by decode or validation, by topic and reason kind.
    pub ingest_invalid: IntCounterVec,
    /// Records written to the dead-letter topic.
    pub dlq_records: IntCounterVec,
    /// View changes produced to a changelog topic, by view.
    pub view_changes: IntCounterVec,
    /// Time from a record's Kafka timestamp to the view change it caused, by view.
    pub view_latency: HistogramVec,
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
    /// WebSocket frames sent by the edge, by type (snapshot, delta, …).
    pub edge_frames: IntCounterVec,
    /// Live subscriptions at the edge, by view (race, participant, room, task).
    pub edge_subscriptions: IntGaugeVec,
    /// Snapshots sent to subscribers that fell behind, by view.
    pub edge_lag_snapshots: IntCounterVec,
    /// Connections refused or dropped by the edge, by reason (`limit`,
    /// `origin`, `write_timeout`).
    pub edge_refused: IntCounterVec,
    /// GPS points sent through `WS /ws/track`, by outcome (`accepted`, `refused`).
    pub edge_track_points: IntCounterVec,
    /// Latest frontier of the dataflow, Unix milliseconds, by worker.
    pub pipeline_frontier: IntGaugeVec,
    /// Observations the standings job treated specially, by outcome: `late`
    /// (older than the participant's latest), `correction` (a late one that
    /// retracted a split), `rejected` (impossible jump or false read),
    /// `too_late` (older than what is still held).
    pub standings_points: IntCounterVec,
    /// Chat events the rooms job treated specially, by outcome
    /// (`out_of_order`: a room's event after one with a greater offset).
    pub rooms_events: IntCounterVec,
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new_custom(None, None).expect("static registry config");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
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
        let archive_buffered = register(
            &registry,
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
        let view_latency = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "pace_view_latency_seconds",
                    "Time from a record's Kafka timestamp to the view change it caused.",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 16).expect("valid buckets")),
                &["view"],
            )
            .expect("valid metric"),
        );
        let edge_clients = register(
            &registry,
            IntGauge::new("pace_edge_clients", "Open WebSocket connections.").expect("valid"),
        );
        let edge_subscriptions = register(
            &registry,
            IntGaugeVec::new(
                Opts::new("pace_edge_subscriptions", "Live subscriptions at the edge."),
                &["view"],
            )
            .expect("valid metric"),
        );
        let pipeline_frontier = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "pace_pipeline_frontier_milliseconds",
                    "Dataflow frontier (Unix milliseconds) seen by each worker.",
                ),
                &["worker"],
            )
            .expect("valid metric"),
        );
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric");
        Self {
            registry,
            ingest_records,
            ingest_bytes,
            ingest_invalid,
            dlq_records,
            view_changes,
            view_latency,
            archive_rows,
            archive_files,
            archive_bytes,
            archive_buffered,
            edge_clients,
            edge_frames,
            edge_subscriptions,
            edge_lag_snapshots,
            edge_refused,
            edge_track_points,
            pipeline_frontier,
            standings_points,
            rooms_events,
        }
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

/// Registers `metric` and hands it back. Definitions are static, so a clash
/// is a bug the tests catch.
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
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
}
