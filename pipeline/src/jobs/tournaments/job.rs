//! The tournaments job as the runtime runs it: events from
//! `pace.tournament` in, one [`TournamentChange`] per tournament and epoch
//! out to `pace.tournaments`, with the tournament's next sequence number.

use std::collections::BTreeMap;

use differential_dataflow::VecCollection;
use ingest::source::Envelope;
use schemas::tournament::{TournamentChange, TournamentEvent};
use schemas::{Packed, Topics};

use super::{TournamentRow, tournaments_durable};
use crate::job::Job;
use crate::runtime::{Dataflow, Inputs, Time};

/// Every tournament: its players, choices, draw and the outcome of each event.
pub struct Tournaments;

impl Job for Tournaments {
    const NAME: &'static str = "tournaments";
    type Row = TournamentRow;
    type Change = TournamentChange;
    /// Each tournament's last sequence number.
    type Encoder = BTreeMap<String, u64>;

    fn changelog(topics: &Topics) -> &str {
        &topics.tournaments
    }

    /// One change per tournament: what is new (its info, players that
    /// joined or chose, the draw) and every outcome. Rows are only ever
    /// replaced, never removed, so retractions carry nothing.
    fn encode(
        updates: Vec<((String, TournamentRow), isize)>,
        seqs: &mut BTreeMap<String, u64>,
    ) -> Vec<(String, TournamentChange)> {
        let mut by_id: BTreeMap<String, TournamentChange> = BTreeMap::new();
        for ((id, row), diff) in updates.into_iter().filter(|(_, d)| *d > 0) {
            let change = by_id.entry(id.clone()).or_insert_with(|| TournamentChange {
                tournament: id,
                seq: 0,
                info: None,
                players: Vec::new(),
                draw: None,
                outcomes: Vec::new(),
            });
            match row {
                TournamentRow::Info(Packed(i)) => change.info = Some(i),
                TournamentRow::Player(Packed(p)) => change.players.push(p),
                TournamentRow::Draw(Packed(d)) => change.draw = Some(d),
                TournamentRow::Outcome(Packed(o)) => {
                    change
                        .outcomes
                        .extend(std::iter::repeat_n(o, diff as usize));
                }
            }
        }
        by_id
            .into_iter()
            .map(|(id, mut change)| {
                let seq = seqs.entry(id.clone()).or_default();
                *seq += 1;
                change.seq = *seq;
                change.players.sort_by_key(|p| p.place);
                (id, change)
            })
            .collect()
    }
}

impl Dataflow for Tournaments {
    fn dataflow<'s>(inputs: &mut Inputs<'s>) -> VecCollection<'s, Time, (String, TournamentRow)> {
        let topic = inputs.topics().tournament.clone();
        let events = inputs.read(&topic, |e: Envelope<TournamentEvent>| {
            (e.record.tournament.clone(), (e.offset, Packed(e.record)))
        });
        tournaments_durable(events, inputs.checkpoint("state"))
    }
}
