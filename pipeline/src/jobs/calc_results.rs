//! `calc_results`: one result per task id, from `pace.calc`.
//!
//! Tasks are exchanged by id, so evaluation spreads over every worker; the
//! first submission of an id (its submissions share a partition, so offsets
//! order them) is the task, and a later one changes nothing.

/// A submitted task in the dataflow: task id, and the task where Kafka holds it.
pub type Submission = (String, Envelope<schemas::CalcTask>);

use ingest::source::Envelope;

/// The result of the first submission of a task id (by offset: an id's
/// submissions share a partition). Completion is the submission's time:
/// evaluation is a pure function of it, so the view does not depend on when
/// a worker got to it.
pub fn result_of(task: &schemas::CalcTask) -> schemas::TaskResult {
    let (status, result, error) = match super::calc::evaluate(&task.expression) {
        Ok(v) => (
            schemas::TaskStatus::Successful,
            Some(super::calc::format_number(v)),
            None,
        ),
        Err(e) => (schemas::TaskStatus::Failed, None, Some(e.to_string())),
    };
    schemas::TaskResult {
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
    tasks: differential_dataflow::VecCollection<'s, T, Submission>,
) -> differential_dataflow::VecCollection<'s, T, (String, Envelope<schemas::TaskResult>)>
where
    T: timely::progress::Timestamp + differential_dataflow::lattice::Lattice + Ord,
{
    tasks.reduce_named("CalcResults", |_id, submissions, out| {
        // Sorted by (partition, offset): the first submission counts.
        if let Some((first, _)) = submissions.first() {
            out.push((
                Envelope {
                    partition: first.partition,
                    offset: first.offset,
                    timestamp_ms: first.timestamp_ms,
                    record: result_of(&first.record),
                },
                1,
            ));
        }
    })
}
