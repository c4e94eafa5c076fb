//! [`Inputs`]: what the runtime gives a job to build its dataflow from, and
//! how it wires each job of the registry into one worker's dataflow.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use differential_dataflow::{AsCollection, VecCollection};
use ingest::IngestError;
use ingest::reader::Since;
use ingest::source::{DeadLetter, Envelope, RawRecord, StaticConsumer, decode};
use opentelemetry::trace::SpanKind;
use schemas::{Topics, Validate};
use serde::de::DeserializeOwned;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::{Operator, empty};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, OkErr};
use timely::dataflow::{Scope, Stream};
use timely::scheduling::Activator;

use super::bindings::{self, Bound};
use super::error::WorkerError;
use super::shared::Bindings;
use super::sink::{self, SinkContext};
use super::source::{Readers, SourceContext, kafka_source};
use super::{PipelineConfig, Time};
use crate::job::Job;
use crate::snapshot::{Checkpoint, Offsets, Part, Snapshots};

/// What a job builds its dataflow from: the input topics it reads and the
/// checkpoints of its state. The same for every job; see [`Job`].
pub struct Inputs<'s> {
    scope: Scope<'s, Time>,
    /// The job being wired.
    job: &'static str,
    config: PipelineConfig,
    worker: (usize, usize),
    snaps: Option<Rc<Snapshots>>,
    /// Each topic's source, and the views it feeds.
    sources: BTreeMap<String, (Stream<'s, Time, Vec<RawRecord>>, Readers)>,
    activators: Vec<Activator>,
    dead_letters: Vec<Stream<'s, Time, Vec<DeadLetter>>>,
    outputs: Vec<Stream<'s, Time, Vec<()>>>,
    views: Vec<&'static str>,
    error: Option<WorkerError>,
    source_ctx: SourceContext,
    sink_ctx: SinkContext,
    /// Every topic's epoch bindings, loaded with the first source (once
    /// per process, see [`super::shared::Shared::bindings`]).
    bindings: Option<Arc<Bindings>>,
}

/// What wiring the registry into a worker's dataflow leaves for the worker
/// loop.
pub(super) struct Wired {
    /// The sources, to wake every tick while data is in flight.
    pub(super) activators: Vec<Activator>,
    /// The views (job names), for their latency histograms.
    pub(super) views: Vec<&'static str>,
}

impl<'s> Inputs<'s> {
    pub(super) fn new(
        scope: Scope<'s, Time>,
        config: &PipelineConfig,
        snaps: Option<Rc<Snapshots>>,
        source_ctx: SourceContext,
        sink_ctx: SinkContext,
    ) -> Self {
        let worker = (scope.index(), scope.peers());
        Self {
            scope,
            job: "",
            config: config.clone(),
            worker,
            snaps,
            sources: BTreeMap::new(),
            activators: Vec::new(),
            dead_letters: Vec::new(),
            outputs: Vec::new(),
            views: Vec::new(),
            error: None,
            source_ctx,
            sink_ctx,
            bindings: None,
        }
    }

    /// Every topic's name.
    pub fn topics(&self) -> &Topics {
        &self.config.kafka.topics
    }

    /// The dataflow scope, for a job's own operators and sources.
    pub fn scope(&self) -> Scope<'s, Time> {
        self.scope
    }

    /// The records of `topic`, decoded and validated as `T`, each turned
    /// into the job's own record by `f`, as a collection stamped with the
    /// epoch they were read in. A record that does not decode goes to the
    /// dead letters (once, however many jobs read the topic; a topic is
    /// read as one record type).
    // The dead letter is unboxed once, to be sent: a value, not a result held.
    #[allow(clippy::result_large_err)]
    pub fn read<T, D>(
        &mut self,
        topic: &str,
        f: impl Fn(Envelope<T>) -> D + 'static,
    ) -> VecCollection<'s, Time, D>
    where
        T: DeserializeOwned + Validate + 'static,
        D: Clone + 'static,
    {
        let first = !self.sources.contains_key(topic);
        if first {
            let source = self.source(topic);
            self.sources.insert(topic.to_owned(), source);
        }
        let (raw, readers) = &self.sources[topic];
        if !readers.borrow().contains(&self.job) {
            readers.borrow_mut().push(self.job);
        }
        let name = topic.to_owned();
        let invalid = observability::metrics().ingest_invalid.clone();
        let (ok, err) = raw
            .clone()
            .map(move |r| {
                let decoded = decode::<T>(&name, r);
                if first && let Err(dl) = &decoded {
                    invalid.with_label_values(&[name.as_str(), dl.kind]).inc();
                    tracing::debug!(topic = %name, partition = dl.partition, offset = dl.offset, reason = %dl.reason, "dead letter");
                }
                // A traced record: its reading is a span (once, however
                // many jobs read it), the parent of the job's steps.
                if first
                    && let Ok(e) = &decoded
                    && let Some(parent) = e.trace
                {
                    let step = observability::traces::Step {
                        parent,
                        partition: e.partition,
                        offset: e.offset,
                    };
                    step.kafka("kafka.consume", SpanKind::Consumer, &name);
                }
                decoded
            })
            .ok_err(|r| r.map_err(|letter| *letter));
        if first {
            self.dead_letters.push(err);
        }
        stamp(ok.map(f)).as_collection()
    }

    /// Sends `letters`, refused inside the job's dataflow, to the dead
    /// letters with those of the sources.
    pub fn dead_letters(&mut self, letters: Stream<'s, Time, Vec<DeadLetter>>) {
        self.dead_letters.push(letters);
    }

    /// The checkpoint of the job's state `stage` (its snapshot part is
    /// `<job>-<stage>`): what the restored snapshot holds of it, and where
    /// the job writes it at every point.
    pub fn checkpoint<S: Part>(&mut self, stage: &str) -> Checkpoint<S> {
        self.part(format!("{}-{stage}", self.job))
    }

    fn part<S: Part>(&mut self, part: String) -> Checkpoint<S> {
        let Some(snaps) = &self.snaps else {
            return Checkpoint::none();
        };
        snaps.checkpoint(part).unwrap_or_else(|source| {
            self.error.get_or_insert(WorkerError::Snapshot {
                dir: self.config.data_dir.join("snapshots"),
                source,
            });
            Checkpoint::none()
        })
    }

    /// The source of `topic`, resuming from the restored offsets; an empty
    /// stream (and the worker fails) if the consumer cannot be made.
    fn source(&mut self, topic: &str) -> (Stream<'s, Time, Vec<RawRecord>>, Readers) {
        let readers = Readers::default();
        let mut offsets: Checkpoint<Offsets> = self.part(format!("offsets-{topic}"));
        let from = offsets.take_restored().unwrap_or_default().0;
        let (index, peers) = self.worker;
        let c = &self.config;
        let made = StaticConsumer::resuming(&c.kafka, &c.group, topic, index, peers, &from)
            .and_then(|consumer| {
                let bound = self.bound(&consumer, &from)?;
                Ok((consumer, bound))
            });
        match made {
            Ok((consumer, bound)) => {
                let (stream, activator) = kafka_source(
                    self.scope,
                    consumer,
                    readers.clone(),
                    offsets,
                    bound,
                    &self.source_ctx,
                );
                self.activators.push(activator);
                (stream, readers)
            }
            Err(e) => {
                self.error.get_or_insert(WorkerError::kafka(&e));
                (empty(self.scope), readers)
            }
        }
    }

    /// The recorded epochs `consumer` follows on its partitions, from `from`
    /// (a partition it does not name: from the start of retention).
    fn bound(
        &mut self,
        consumer: &StaticConsumer,
        from: &BTreeMap<i32, i64>,
    ) -> Result<Bound, IngestError> {
        if !self.config.epoch_bindings {
            self.bindings = Some(Arc::default());
        } else if self.bindings.is_none() {
            // From a snapshot point on, only the epochs after it matter: their
            // bindings were produced after they began, so after the point
            // (which every worker of the process restored alike).
            let since = self.snaps.as_ref().and_then(|s| s.restored());
            let since = since.map_or(Since::Beginning, |(point, _)| Since::Time(point as i64));
            let c = &self.config;
            let load = || bindings::load(&c.kafka, &c.kafka.topics.bindings, since);
            self.bindings = Some(self.source_ctx.shared.bindings(load)?);
        }
        let mut starts = BTreeMap::new();
        for (&p, &(low, high)) in consumer.opened() {
            starts.insert(p, (from.get(&p).copied().unwrap_or(low), high));
        }
        let all = self.bindings.as_ref().expect("loaded");
        let topic = consumer.topic();
        let (bound, stale) = Bound::new(all.get(topic).map_or(&[], Vec::as_slice), &starts);
        let bound = bound.within(bindings::span(all));
        if !stale.is_empty() {
            tracing::warn!(
                topic,
                partitions = ?stale,
                "epoch bindings reach past the end of these partitions (the topic was made again?): not followed"
            );
        }
        if let (true, Some(next), Some(last)) = (bound.replaying(), bound.next(), bound.last()) {
            tracing::info!(
                topic,
                from = next,
                to = last,
                "following the recorded epochs"
            );
        }
        Ok(bound)
    }

    /// The dead letter sink, and every sink into the probe; what the worker
    /// loop needs, or the first failure of the wiring.
    pub(super) fn finish(
        mut self,
        probe: &timely::dataflow::ProbeHandle<Time>,
    ) -> Result<Wired, WorkerError> {
        use timely::dataflow::operators::Probe;
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let letters = self
            .dead_letters
            .drain(..)
            .reduce(|a, b| a.concat(b))
            .unwrap_or_else(|| empty(self.scope));
        let mut all = sink::dead_letters(letters, &self.sink_ctx);
        for o in self.outputs.drain(..) {
            all = all.concat(o);
        }
        all.probe_with(probe);
        Ok(Wired {
            activators: self.activators,
            views: self.views,
        })
    }
}

/// How a [`Job`] builds its dataflow.
pub trait Dataflow: Job {
    /// The job's dataflow: its view as `(key, row)` updates, from the
    /// topics and checkpoints it takes from `inputs`.
    fn dataflow<'s>(inputs: &mut Inputs<'s>) -> VecCollection<'s, Time, (String, Self::Row)>;
}

/// Wires one job into a worker's dataflow (an entry of the registry).
pub type Wire = fn(&mut Inputs<'_>);

/// Wires job `J` into the dataflow `inputs` builds: its dataflow, its
/// changelog sink and its checkpoints (what the registry lists).
pub fn wire<J: Dataflow>(inputs: &mut Inputs<'_>) {
    inputs.job = J::NAME;
    let rows = J::dataflow(inputs);
    let encoder = inputs.checkpoint::<J::Encoder>("changelog");
    let sink = sink::changelog::<J>(rows, encoder, &inputs.sink_ctx);
    inputs.outputs.push(sink);
    inputs.views.push(J::NAME);
}

/// Attaches each record's epoch, making a stream of differential updates.
fn stamp<'s, D: Clone + 'static>(
    stream: Stream<'s, Time, Vec<D>>,
) -> Stream<'s, Time, Vec<(D, Time, isize)>> {
    stream.unary(Pipeline, "Stamp", |_, _| {
        move |input, output| {
            input.for_each(|cap, data| {
                if let Some(cap) = cap.retain_least(output.output_index()) {
                    let t = *cap.time();
                    output
                        .session(&cap)
                        .give_iterator(data.drain(..).map(|d| (d, t, 1)));
                }
            });
        }
    })
}
