//! Every Kafka topic pace reads or writes, in one place.
//!
//! Production uses the default names (`pace.gps`, …). Tests give each run a
//! prefix so that runs sharing one broker never see each other's records.

/// Declares [`Topics`]: one field per topic, named `pace.<field>` behind the
/// prefix, and with `=> Type` the record type of an archived topic (an
/// [`Archived`](crate::archive::Archived)). A new topic is one line here;
/// this table is also the list the archiver loops over.
macro_rules! topics {
    ($($(#[$doc:meta])* $field:ident $(=> $archived:ty)?,)*) => {
        /// The names of all pace topics, optionally behind a common prefix.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Topics {
            $($(#[$doc])* pub $field: String,)*
        }

        impl Topics {
            /// Topic names with `prefix` in front of each default name (`""` gives the defaults).
            pub fn with_prefix(prefix: &str) -> Self {
                Self {
                    $($field: format!("{prefix}pace.{}", stringify!($field)),)*
                }
            }

            /// Every topic.
            pub fn all(&self) -> Vec<&str> {
                vec![$(self.$field.as_str(),)*]
            }

            /// Visits every archived topic with its record type, in this
            /// table's order.
            pub fn archived(&self, each: &mut impl crate::archive::EachTopic) {
                $($(each.topic::<$archived>(&self.$field);)?)*
            }
        }
    };
}

topics! {
    /// GPS points from participants ([`crate::GpsPoint`]), keyed by race.
    gps => crate::GpsPoint,
    /// Timing-mat crossings ([`crate::TimingCrossing`]), keyed by race.
    timing => crate::TimingCrossing,
    /// Race definitions ([`crate::RaceDefinition`]), keyed by race id; the last one wins.
    races => crate::RaceDefinition,
    /// Entrants of races ([`crate::Entrant`]: name, wave, gender,
    /// category), keyed by `race/participant`; the last one wins.
    entrants => crate::Entrant,
    /// Chat events ([`crate::ChatEvent`]), keyed by room.
    chat => crate::ChatEvent,
    /// Calculation tasks ([`crate::CalcTask`]), keyed by task id.
    calc => crate::CalcTask,
    /// Dead letters: records that failed to decode or validate, with the reason in headers.
    dlq => crate::dead_letter::DeadLetterRow,
    /// Changelog of the standings view ([`crate::StandingsChange`]), keyed by race.
    standings => crate::StandingsChange,
    /// Changelog of the rooms view ([`crate::RoomChange`]), keyed by room.
    rooms => crate::RoomChange,
    /// Changelog of the task results view ([`crate::TaskResult`]), keyed by task id.
    results => crate::TaskResult,
    /// Tournament events ([`crate::tournament::TournamentEvent`]), keyed by tournament.
    tournament => crate::tournament::TournamentEvent,
    /// Changelog of the tournaments view
    /// ([`crate::tournament::TournamentChange`]), keyed by tournament.
    tournaments => crate::tournament::TournamentChange,
    /// What users ask of their accounts
    /// ([`crate::accounts::AccountEvent`]: register, sessions), keyed by
    /// user. Not archived: it holds password hashes.
    accounts,
    /// Every user's account ([`crate::accounts::AccountChange`]), keyed by
    /// user; compacted, so the latest record of a user is all there is.
    /// Not archived.
    users,
    /// What edges tell each other ([`crate::EdgeUsage`]: how much of each
    /// token subject's budgets they gave out), keyed by edge; kept an hour.
    edges,
    /// Epoch bindings ([`crate::EpochBinding`]: the input offsets each
    /// dataflow epoch covered), keyed by input topic; a restart or a replay
    /// cuts the bound offsets into the same epochs.
    bindings,
}

impl Default for Topics {
    fn default() -> Self {
        Self::with_prefix("")
    }
}

pub use crate::dead_letter::{
    DLQ_MAX_PAYLOAD_BYTES, DLQ_OFFSET_HEADER, DLQ_PARTITION_HEADER, DLQ_REASON_HEADER,
    DLQ_SOURCE_HEADER, DLQ_TOPIC_HEADER, DLQ_TRUNCATED_HEADER,
};
/// Kafka header of a view change: the Kafka timestamp (Unix ms, decimal) of
/// the oldest input record of the batch that caused it. The edge measures
/// end-to-end latency (record produced → frame written) from it.
pub const ORIGIN_HEADER: &str = "pace-origin-ms";
/// Kafka header of a view change: the epoch (dataflow time, decimal) whose
/// input made it. The same input offsets give the same epochs (see
/// [`crate::EpochBinding`]), so a restarted pipeline knows which of its
/// changes the changelog already holds.
pub const EPOCH_HEADER: &str = "pace-epoch";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_and_prefix() {
        let t = Topics::default();
        assert_eq!(t.gps, "pace.gps");
        assert_eq!(t.dlq, "pace.dlq");
        let p = Topics::with_prefix("t1.");
        assert_eq!(p.standings, "t1.pace.standings");
        assert_eq!(p.all().len(), 16);
    }
}
