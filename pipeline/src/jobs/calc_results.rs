//! `calc_results`: one result per task id, from `pace.calc`.
//!
//! Tasks are exchanged by id, so evaluation spreads over every worker; the
//! first submission of an id (its submissions share a partition, so offsets
//! order them) is the task, and a later one changes nothing. The job keeps
//! the ids it has a result for (what a snapshot holds), not the tasks.

use std::collections::BTreeSet;

use differential_dataflow::VecCollection;
use differential_dataflow::lattice::Lattice;
use ingest::source::Envelope;
use observability::traces::Step;
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use schemas::{CalcTask, TaskResult, Topics};
use timely::order::TotalOrder;
use timely::progress::Timestamp;

use super::fold::fold_in_order;
use crate::job::Job;
use crate::runtime::{Dataflow, Inputs, Time};
use crate::snapshot::Checkpoint;

/// A submitted task in the dataflow: task id, and the task where Kafka holds it.
pub type Submission = (String, Envelope<CalcTask>);

/// The ids a worker has a result for, as a snapshot holds them.
pub type ResultsState = BTreeSet<String>;

/// The result of the first submission of a task id (by offset: an id's
/// submissions share a partition). Completion is the submission's time:
/// evaluation is a pure function of it, so the view does not depend on when
/// a worker got to it.
pub fn result_of(task: &CalcTask) -> TaskResult {
    let (status, result, error) = match super::calc::evaluate(&task.expression) {
        Ok(v) => (
            schemas::TaskStatus::Successful,
            Some(super::calc::format_number(v)),
            None,
        ),
        Err(e) => (schemas::TaskStatus::Failed, None, Some(e.to_string())),
    };
    TaskResult {
        id: task.id.clone(),
        expression: task.expression.clone(),
        status,
        result,
        error,
        submitted_at: task.time,
        completed_at: Some(task.time),
    }
}

/// `calc_results`: one result per task id, evaluated on the worker the id
/// hashes to, with its task's place in Kafka. Submitting an id again
/// changes nothing.
pub fn calc_results<'s, T>(
    tasks: VecCollection<'s, T, Submission>,
) -> VecCollection<'s, T, (String, Envelope<TaskResult>)>
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
{
    calc_results_durable(tasks, Checkpoint::none())
}

/// [`calc_results`] that writes the ids it has results for at snapshot
/// points through `checkpoint` and starts from what it restored: a restored
/// id's result is in the changelog already, and a resubmission of it gives
/// nothing.
pub fn calc_results_durable<'s, T>(
    tasks: VecCollection<'s, T, Submission>,
    checkpoint: Checkpoint<ResultsState>,
) -> VecCollection<'s, T, (String, Envelope<TaskResult>)>
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
{
    fold_in_order(
        tasks,
        "CalcResults",
        checkpoint,
        |done: &mut ResultsState, batch, out| {
            // Sorted by id, then by (partition, offset): the first of an id counts.
            for (id, task) in batch {
                if done.insert(id.clone()) {
                    let start = std::time::SystemTime::now();
                    let record = result_of(&task.record);
                    // A traced task: its evaluation is a span, and the
                    // result carries on from it.
                    let trace = task.trace.map(|parent| {
                        let step = Step {
                            parent,
                            partition: task.partition,
                            offset: task.offset,
                        };
                        step.record(
                            "calc.evaluate",
                            Some("kafka.consume"),
                            SpanKind::Internal,
                            start,
                            vec![
                                KeyValue::new("pace.task.id", id.clone()),
                                KeyValue::new("pace.task.status", record.status.as_str()),
                            ],
                        );
                        step.after("calc.evaluate")
                    });
                    let result = Envelope {
                        partition: task.partition,
                        offset: task.offset,
                        timestamp_ms: task.timestamp_ms,
                        trace,
                        record,
                    };
                    out.push(((id, result), 1));
                }
            }
        },
    )
}

/// Task results, from `pace.calc` to `pace.results`.
pub struct Results;

impl Job for Results {
    const NAME: &'static str = "results";
    type Row = Envelope<TaskResult>;
    type Change = TaskResult;
    type Encoder = ();
    const TRACED: bool = true;

    fn changelog(topics: &Topics) -> &str {
        &topics.results
    }

    /// A traced task's result carries on from its evaluation.
    fn trace(row: &Envelope<TaskResult>) -> Option<observability::traces::TraceParent> {
        row.trace
    }

    /// A result only appears: each new one is a record, keyed by task id.
    fn encode(
        updates: Vec<((String, Envelope<TaskResult>), isize)>,
        _: &mut (),
    ) -> Vec<(String, TaskResult)> {
        let tasks = &observability::metrics().tasks;
        updates
            .into_iter()
            .filter(|(_, diff)| *diff > 0)
            .map(|((id, r), _)| {
                tasks.with_label_values(&[r.record.status.as_str()]).inc();
                (id, r.record)
            })
            .collect()
    }
}

impl Dataflow for Results {
    fn dataflow<'s>(
        inputs: &mut Inputs<'s>,
    ) -> VecCollection<'s, Time, (String, Envelope<TaskResult>)> {
        let topic = inputs.topics().calc.clone();
        let tasks = inputs.read(&topic, |e: Envelope<CalcTask>| (e.record.id.clone(), e));
        calc_results_durable(tasks, inputs.checkpoint("ids"))
    }
}
