//! The list of archived topics, each with the [`Kind`] that turns its
//! records into rows: a new archived topic is one line here.

use std::path::Path;

use schemas::tournament::{TournamentChange, TournamentEvent};
use schemas::{CalcTask, ChatEvent, GpsPoint, RaceDefinition, TaskResult, TimingCrossing, Topics};

#[cfg(doc)]
use super::kinds::Kind;
use super::kinds::{One, Rooms, Standings};
use super::topic::{Topic, open_topic};
use crate::SinkError;
use crate::parquet::DeadLetterRow;

/// Every archived topic, with the state of the archive at `archive` (or
/// none, for counting).
pub(crate) fn topics(t: &Topics, archive: Option<&Path>) -> Result<Vec<Box<dyn Topic>>, SinkError> {
    Ok(vec![
        open_topic::<One<GpsPoint>>(&t.gps, archive)?,
        open_topic::<One<TimingCrossing>>(&t.timing, archive)?,
        open_topic::<One<RaceDefinition>>(&t.races, archive)?,
        open_topic::<One<ChatEvent>>(&t.chat, archive)?,
        open_topic::<One<CalcTask>>(&t.calc, archive)?,
        open_topic::<One<DeadLetterRow>>(&t.dlq, archive)?,
        open_topic::<Standings>(&t.standings, archive)?,
        open_topic::<Rooms>(&t.rooms, archive)?,
        open_topic::<One<TaskResult>>(&t.results, archive)?,
        open_topic::<One<TournamentEvent>>(&t.tournament, archive)?,
        open_topic::<One<TournamentChange>>(&t.tournaments, archive)?,
    ])
}
