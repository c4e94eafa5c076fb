//! Traces: the log and the spans of a pace process, and the W3C trace
//! context that carries a trace across processes in Kafka record headers.
//!
//! [`init`] installs the process's subscriber: the log on stderr (the
//! `--log` filter) and, with an OTLP endpoint (`--otlp-endpoint`), the
//! spans of pace's own crates exported over OTLP/HTTP (protobuf, batched
//! on a thread of the exporter's). Without one, spans cost what a
//! disabled `tracing` span costs.
//!
//! A span that continues a trace from elsewhere ([`child`]) takes its
//! parent from a [`TraceParent`] (an HTTP `traceparent` header, a Kafka
//! record's header); [`TraceParent::of`] gives the one to send on.
//!
//! The pipeline's spans are made differently ([`Step`]): their ids are
//! derived from the trace context the input record carried and its place
//! in Kafka, not drawn at random, so the records the pipeline writes (and
//! the `traceparent` headers on them) are the same whenever the same
//! input is read again, as invariant 1 asks; a replay exports the same
//! spans again.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The header (HTTP and Kafka) a trace context travels in.
pub const HEADER: &str = "traceparent";

/// A W3C trace context (`traceparent`, version 00): the trace, the span
/// that is the parent of what comes next, and whether it is sampled.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TraceParent {
    /// The trace id.
    pub trace: [u8; 16],
    /// The parent span's id.
    pub span: [u8; 8],
    /// Sampled (bit 0).
    pub flags: u8,
}

impl TraceParent {
    /// `00-<32 hex>-<16 hex>-<2 hex>`; `None` for anything else, or an
    /// all-zero id (invalid by the spec).
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() {
            return None;
        }
        let mut out = Self {
            trace: [0; 16],
            span: [0; 8],
            flags: 0,
        };
        hex(trace, &mut out.trace)?;
        hex(span, &mut out.span)?;
        let mut f = [0u8; 1];
        hex(flags, &mut f)?;
        out.flags = f[0];
        (out.trace != [0; 16] && out.span != [0; 8]).then_some(out)
    }

    /// The context of `span` (as the parent of what it sends on), if it
    /// is being recorded by an exporter.
    pub fn of(span: &tracing::Span) -> Option<Self> {
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| Self {
            trace: sc.trace_id().to_bytes(),
            span: sc.span_id().to_bytes(),
            flags: sc.trace_flags().to_u8(),
        })
    }

    /// The trace id, in hex.
    pub fn trace_id(&self) -> String {
        self.trace.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn context(&self) -> opentelemetry::Context {
        let sc = SpanContext::new(
            TraceId::from_bytes(self.trace),
            SpanId::from_bytes(self.span),
            TraceFlags::new(self.flags),
            true,
            TraceState::default(),
        );
        opentelemetry::Context::new().with_remote_span_context(sc)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        for b in self.trace {
            write!(f, "{b:02x}")?;
        }
        f.write_str("-")?;
        for b in self.span {
            write!(f, "{b:02x}")?;
        }
        write!(f, "-{:02x}", self.flags)
    }
}

/// Lower-case hex of exactly `out.len()` bytes.
fn hex(s: &str, out: &mut [u8]) -> Option<()> {
    if s.len() != out.len() * 2 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(())
}

/// Makes `span` a child of `parent` (a trace continued from elsewhere);
/// with no parent it stays where it is (a child of the current span, or
/// a new trace).
pub fn child(span: tracing::Span, parent: Option<&TraceParent>) -> tracing::Span {
    if let Some(p) = parent {
        let _ = span.set_parent(p.context());
    }
    span
}

/// Whether this process exports spans ([`init`] with an endpoint).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// A step of the pipeline on one traced input record: its span's id is
/// derived from the record's trace context, its place in Kafka and the
/// step's name, so every step's id can be computed again where it is
/// needed (a child's parent) without being carried.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// The trace context the input record carried.
    pub parent: TraceParent,
    /// The record's partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
}

impl Step {
    /// The id of this record's step `name`.
    pub fn id(&self, name: &str) -> [u8; 8] {
        // FNV-1a over the parent span, the place and the name: stable
        // across processes and versions.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let (partition, offset) = (self.partition.to_le_bytes(), self.offset.to_le_bytes());
        let bytes = (self.parent.span.iter())
            .chain(&partition)
            .chain(&offset)
            .chain(name.as_bytes());
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        if h == 0 {
            h = 1;
        }
        h.to_be_bytes()
    }

    /// The context to send on after step `name` (its span as the parent).
    pub fn after(&self, name: &str) -> TraceParent {
        TraceParent {
            span: self.id(name),
            ..self.parent
        }
    }

    /// [`Step::record`] of a Kafka step, the record's consume or produce
    /// on `topic`, as it happens.
    pub fn kafka(&self, name: &'static str, kind: opentelemetry::trace::SpanKind, topic: &str) {
        let topic = opentelemetry::KeyValue::new("messaging.destination.name", topic.to_owned());
        self.record(name, None, kind, SystemTime::now(), vec![topic]);
    }

    /// Exports step `name`'s span (a child of step `parent`, or of the
    /// record's own context), from `start` to now, with `attributes`.
    /// Nothing when this process does not export.
    pub fn record(
        &self,
        name: &'static str,
        parent: Option<&str>,
        kind: opentelemetry::trace::SpanKind,
        start: SystemTime,
        attributes: Vec<opentelemetry::KeyValue>,
    ) {
        if !EXPORTING.load(Ordering::Relaxed) {
            return;
        }
        use opentelemetry::trace::{Span as _, Tracer as _};
        let tracer = opentelemetry::global::tracer("pace");
        let from = match parent {
            Some(p) => self.after(p),
            None => self.parent,
        };
        NEXT_SPAN.with(|next| next.set(Some(self.id(name))));
        let mut span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&tracer, &from.context());
        span.end();
    }
}

thread_local! {
    /// The id [`Ids`] gives the next span made on this thread, once.
    static NEXT_SPAN: std::cell::Cell<Option<[u8; 8]>> = const { std::cell::Cell::new(None) };
}

/// Span ids: random, but for a [`Step`]'s span, whose id is derived.
#[derive(Debug)]
struct Ids(opentelemetry_sdk::trace::RandomIdGenerator);

impl opentelemetry_sdk::trace::IdGenerator for Ids {
    fn new_trace_id(&self) -> TraceId {
        self.0.new_trace_id()
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_SPAN
            .with(std::cell::Cell::take)
            .map_or_else(|| self.0.new_span_id(), SpanId::from_bytes)
    }
}

/// Flushes the exporter when dropped (keep it for the process's life).
#[must_use = "dropping it stops the export"]
pub struct Guard(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the process's log (stderr, filtered by `log`, e.g. `info`)
/// and, with `otlp` (an OTLP/HTTP endpoint such as
/// `http://collector:4318`), the export of pace's spans as `service`.
pub fn init(log: &str, otlp: Option<&str>, service: &str) -> Result<Guard, String> {
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr)
        // Colours for a terminal only, not for a log file or a collector.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(tracing_subscriber::EnvFilter::new(log));
    let provider = otlp
        .map(|endpoint| {
            let endpoint = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| format!("--otlp-endpoint: {e}"))?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_owned())
                .build();
            Ok::<_, String>(
                opentelemetry_sdk::trace::SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_id_generator(Ids(Default::default()))
                    .with_resource(resource)
                    .build(),
            )
        })
        .transpose()?;
    if let Some(p) = &provider {
        opentelemetry::global::set_tracer_provider(p.clone());
        EXPORTING.store(true, Ordering::Relaxed);
    }
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("pace"))
            // pace's own spans only: not its log events, not its
            // libraries' spans.
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.is_span() && m.target().starts_with("pace")
            }))
    });
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(Guard(provider))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steps_ids_depend_on_its_record_and_name_alone() {
        let parent =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let step = Step {
            parent,
            partition: 3,
            offset: 41,
        };
        assert_eq!(step.id("consume"), step.id("consume"));
        assert_ne!(step.id("consume"), step.id("evaluate"));
        let other = Step { offset: 42, ..step };
        assert_ne!(step.id("consume"), other.id("consume"));
        let after = step.after("evaluate");
        assert_eq!(after.trace, parent.trace);
        assert_eq!(after.span, step.id("evaluate"));
    }

    #[test]
    fn a_traceparent_reads_and_writes_as_the_w3c_says() {
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceParent::parse(s).unwrap();
        assert_eq!(t.to_string(), s);
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.flags, 1);
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }
}
