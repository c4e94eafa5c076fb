//! What a job is: the seam between a dataflow job and the runtime.
//!
//! A job declares its name, its view's row and change types, what its
//! changelog encoder keeps, and its changelog topic ([`Job`]), and builds
//! its dataflow from the inputs the runtime gives it
//! ([`crate::runtime::Dataflow`], beside the inputs, so that this
//! description of a view depends on nothing of the runtime's, and the
//! runtime's changelog sink on nothing but it). The runtime wires the rest from
//! the registry (`jobs/mod.rs`): one Kafka source per input topic
//! (shared by the jobs reading it), decoding and dead letters, the
//! changelog sink, snapshots of the job's state, the encoder's state and
//! the sources' offsets, and the view metrics, all labelled by the job's
//! name. Adding a job is a module with a `Job` and a `Dataflow` impl and
//! one line in the registry.

use std::hash::Hash;

use differential_dataflow::ExchangeData;
use serde::Serialize;

use crate::snapshot::Part;

/// A dataflow job and the view it keeps.
pub trait Job: 'static {
    /// The job's name: the `view` label of its metrics and changelog
    /// records, and the name of its snapshot parts.
    const NAME: &'static str;
    /// A row of the view, under its key (the race, room or task id).
    type Row: ExchangeData + Hash;
    /// One changelog record.
    type Change: Serialize;
    /// What [`Job::encode`] keeps from one epoch to the next (sequence
    /// numbers, say); written at every snapshot point and restored.
    type Encoder: Part;

    /// Whether the job's rows come out of an operator exchanged by
    /// [`crate::route::hash`] of their key, as the changelog sink would
    /// exchange them: each row is then on the worker the sink wants it on,
    /// and the sink takes it where it is (no exchange: no copy of each row
    /// into a channel, no hash of its key). A job that claims this wrongly
    /// numbers one key's changes on two workers, which its reference at
    /// several workers catches.
    const KEYED: bool = false;

    /// Whether each epoch's rows come consolidated already: no row twice,
    /// and none both inserted and retracted. The sink then takes them as
    /// they come, with no consolidation (a sort of the epoch's rows by
    /// key and row). A job that claims this wrongly writes changes that
    /// change nothing, or rows twice.
    const CONSOLIDATED: bool = false;

    /// Whether any of its rows carries a trace context ([`Job::trace`]);
    /// only then does the sink look.
    const TRACED: bool = false;

    /// The topic the view's changes go to.
    fn changelog(topics: &schemas::Topics) -> &str;

    /// The trace context a row's changelog record carries on (a traced
    /// input's last step in the pipeline, see
    /// [`observability::traces::Step`]).
    fn trace(_row: &Self::Row) -> Option<observability::traces::TraceParent> {
        None
    }

    /// One epoch's consolidated updates of the view, as changelog records
    /// under their keys.
    fn encode(
        updates: Vec<((String, Self::Row), isize)>,
        encoder: &mut Self::Encoder,
    ) -> Vec<(String, Self::Change)>;
}
