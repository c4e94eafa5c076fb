//! The sinks: one generic operator ([`kafka_sink`]) that produces each
//! complete epoch's records to Kafka and holds the epoch open until the
//! broker has them all, and its two uses: a job's changelog
//! ([`changelog`]) and the dead letters ([`dead_letters`]).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use differential_dataflow::VecCollection;
use ingest::error_chain;
use ingest::producer::TrackedProducer;
use ingest::source::DeadLetter;
use schemas::Topics;
use sinks::SinkError;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::operator::Operator;

use super::error::WorkerError;
use super::shared::Shared;
use super::{Time, hash};
use crate::job::Job;
use crate::snapshot::Checkpoint;

/// What every sink of a worker shares.
#[derive(Clone)]
pub(super) struct SinkContext {
    pub(super) producer: Rc<TrackedProducer>,
    pub(super) shared: Arc<Shared>,
    pub(super) tick: Duration,
    pub(super) topics: Topics,
}

/// What a [`kafka_sink`] does with the records of a complete epoch.
trait Produce<D> {
    /// Every epoch before `upto` is sent (called before an epoch's records
    /// are sent, and whenever the frontier moves): the moment to write what
    /// the sink keeps as of a snapshot point.
    fn sent_before(&mut self, _upto: Time) {}
    /// Whether what comes at time 0 (a restored operator's state) is sent
    /// too, rather than dropped.
    fn sends_restored(&self) -> bool {
        false
    }
    /// Produces one epoch's `items` under the epoch's `ticket`.
    fn send(
        &mut self,
        producer: &TrackedProducer,
        items: Vec<D>,
        ticket: usize,
    ) -> Result<(), SinkError>;
}

/// The changelog of job `J`: each epoch's updates of its rows, exchanged by
/// key, consolidated and encoded by [`Job::encode`], produced to
/// [`Job::changelog`] keyed by view key with the epoch's origin. What the
/// encoder keeps is written at every snapshot point through `encoder`.
pub(super) fn changelog<'s, J: Job>(
    rows: VecCollection<'s, Time, (String, J::Row)>,
    mut encoder: Checkpoint<J::Encoder>,
    ctx: &SinkContext,
) -> Stream<'s, Time, Vec<()>> {
    let sink = Changelog::<J> {
        topic: J::changelog(&ctx.topics).to_owned(),
        shared: ctx.shared.clone(),
        state: encoder.take_restored().unwrap_or_default(),
        encoder,
    };
    kafka_sink(
        rows.inner,
        Exchange::new(|u: &((String, J::Row), Time, isize)| hash(&(u.0).0)),
        &format!("Changelog({})", J::NAME),
        |u| Some(u.1),
        ctx,
        sink,
    )
}

struct Changelog<J: Job> {
    topic: String,
    shared: Arc<Shared>,
    state: J::Encoder,
    encoder: Checkpoint<J::Encoder>,
}

impl<J: Job> Produce<((String, J::Row), Time, isize)> for Changelog<J> {
    fn sent_before(&mut self, upto: Time) {
        let state = &self.state;
        self.encoder.at(upto, || state);
    }

    fn sends_restored(&self) -> bool {
        J::REPUBLISH_RESTORED
    }

    fn send(
        &mut self,
        producer: &TrackedProducer,
        updates: Vec<((String, J::Row), Time, isize)>,
        ticket: usize,
    ) -> Result<(), SinkError> {
        let origin = self.shared.origin(J::NAME, ticket as Time);
        let flat = consolidate_rows(updates.into_iter().map(|(d, _, r)| (d, r)).collect());
        J::encode(flat, &mut self.state)
            .iter()
            .try_for_each(|(key, change)| {
                sinks::kafka::send_view_change(
                    producer,
                    &self.topic,
                    J::NAME,
                    key,
                    change,
                    origin,
                    ticket,
                )
            })
    }
}

/// `updates` consolidated as differential's `consolidate` does (sorted, equal
/// rows' diffs summed, zeros dropped), but sorting their indices rather than
/// the rows: a view row is a few hundred bytes, and moving them through a
/// sort was a measured 13% of the pipeline in a latency run.
fn consolidate_rows<D: Ord>(updates: Vec<(D, isize)>) -> Vec<(D, isize)> {
    let mut order: Vec<usize> = (0..updates.len()).collect();
    order.sort_unstable_by(|&a, &b| updates[a].0.cmp(&updates[b].0));
    let mut slots: Vec<Option<(D, isize)>> = updates.into_iter().map(Some).collect();
    let mut out: Vec<(D, isize)> = Vec::with_capacity(slots.len());
    for i in order {
        let (d, r) = slots[i].take().expect("every index once");
        match out.last_mut() {
            Some((last, sum)) if *last == d => *sum += r,
            _ => out.push((d, r)),
        }
    }
    out.retain(|(_, r)| *r != 0);
    out
}

/// The dead letters of every source, to `pace.dlq`.
pub(super) fn dead_letters<'s>(
    letters: Stream<'s, Time, Vec<DeadLetter>>,
    ctx: &SinkContext,
) -> Stream<'s, Time, Vec<()>> {
    let sink = DeadLetters(ctx.topics.clone());
    kafka_sink(letters, Pipeline, "DeadLetters", |_| None, ctx, sink)
}

struct DeadLetters(Topics);

impl Produce<DeadLetter> for DeadLetters {
    fn send(
        &mut self,
        producer: &TrackedProducer,
        letters: Vec<DeadLetter>,
        ticket: usize,
    ) -> Result<(), SinkError> {
        letters
            .iter()
            .try_for_each(|l| sinks::kafka::send_dead_letter(producer, &self.0, l, ticket))
    }
}

/// A sink that produces each epoch's records to Kafka once the epoch is
/// complete (`sink` gets them and the epoch's ticket), and holds the epoch
/// open until the broker has acknowledged all of them. A send that fails
/// stops the pipeline. `time_of` gives a record's epoch where it differs
/// from its capability's.
fn kafka_sink<'s, D, P>(
    stream: Stream<'s, Time, Vec<D>>,
    pact: P,
    name: &str,
    time_of: fn(&D) -> Option<Time>,
    ctx: &SinkContext,
    mut sink: impl Produce<D> + 'static,
) -> Stream<'s, Time, Vec<()>>
where
    D: Clone + 'static,
    P: ParallelizationContract<Time, Vec<D>>,
{
    let scope = stream.scope();
    let (producer, shared, tick) = (ctx.producer.clone(), ctx.shared.clone(), ctx.tick);
    stream.unary_frontier(pact, name, |_cap, info| {
        let activator = scope.activator_for(info.address.clone());
        let sync = Mutex::new(scope.worker().sync_activator_for(info.address.to_vec()));
        producer.on_settled(move || {
            let _ = sync.lock().expect("activator lock").activate();
        });
        // A capability per epoch with records, held until the broker has them all.
        let mut held: BTreeMap<Time, Capability<Time>> = BTreeMap::new();
        let mut pending: BTreeMap<Time, Vec<D>> = BTreeMap::new();
        move |(input, frontier),
              _output: &mut timely::dataflow::operators::generic::OutputBuilderSession<
            '_,
            Time,
            timely::container::CapacityContainerBuilder<Vec<()>>,
        >| {
            input.for_each(|cap, data| {
                let Some(&cap_time) = cap.least() else { return };
                for d in data.drain(..) {
                    let t = time_of(&d).unwrap_or(cap_time);
                    held.entry(t).or_insert_with(|| cap.delayed(&t, 0));
                    pending.entry(t).or_default().push(d);
                }
            });
            // Epochs complete in order: an epoch is sent once no more of it
            // can arrive, and released once it is durable. What comes at
            // time 0 is state a restored operator re-emits: it was written
            // before the snapshot, so it is not written again, unless the
            // sink republishes it (`Job::REPUBLISH_RESTORED`).
            while let Some((&t, _)) = held.first_key_value() {
                if frontier.frontier().less_equal(&t) {
                    break;
                }
                let ticket = t as usize;
                if let Some(items) = pending.remove(&t) {
                    sink.sent_before(t);
                    // Once a delivery failed (an epoch binding, say), the
                    // pipeline stops and sends nothing more: what it has not
                    // made durable is done again after the restart.
                    if (t > 0 || sink.sends_restored())
                        && producer.failure().is_none()
                        && let Err(e) = sink.send(&producer, items, ticket)
                    {
                        shared.fail(WorkerError::Delivery(error_chain(&e)));
                    }
                }
                if producer.pending(ticket) != 0 {
                    break;
                }
                held.remove(&t);
            }
            // Every epoch before this is sent.
            let sent = frontier.frontier().first().copied();
            if let Some(upto) = sent.map(|f| pending.keys().next().map_or(f, |&p| p.min(f))) {
                sink.sent_before(upto);
            }
            if !held.is_empty() {
                activator.activate_after(tick);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::consolidate_rows;

    #[test]
    fn consolidating_by_index_equals_differentials_consolidate() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let n = rng.random_range(0..60);
            let updates: Vec<((String, u8), isize)> = (0..n)
                .map(|_| {
                    let row = (
                        format!("r{}", rng.random_range(0..5)),
                        rng.random_range(0..4),
                    );
                    (row, rng.random_range(-2..3i64) as isize)
                })
                .collect();
            let mut want = updates.clone();
            differential_dataflow::consolidation::consolidate(&mut want);
            assert_eq!(consolidate_rows(updates), want);
        }
    }
}
