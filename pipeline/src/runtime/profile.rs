//! Where a worker's time goes, operator by operator: timely's schedule
//! events (an operator starts, an operator stops) summed per operator name
//! into `pace_pipeline_operator_seconds_total{operator}`. The jobs name
//! their stages (`Track`, `Rank`, a sink), so the counter says what an
//! epoch costs in each, and with the points counted, what a point costs.
//!
//! A scope (the dataflow, a region) is scheduled around the operators in
//! it: only operators that hold no others are counted, so no second is
//! counted twice. The events come in batches from timely's logger; a batch
//! costs a map update per event.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use timely::logging::{StartStop, TimelyEvent, TimelyEventBuilder};

/// Counts `worker`'s time per operator from now on.
pub(super) fn register(worker: &mut timely::worker::Worker) {
    let Some(mut registry) = worker.log_register() else {
        return;
    };
    let mut ops = Operators::default();
    registry.insert::<TimelyEventBuilder, _>("timely", move |_, batch| {
        if let Some(events) = batch {
            for (at, event) in events.drain(..) {
                ops.event(at, event);
            }
        }
        ops.flush();
    });
}

/// What the logger has seen of the operators.
#[derive(Default)]
struct Operators {
    /// Each operator's name, by its worker-unique id.
    names: HashMap<usize, String>,
    /// Each operator's id, by its address (the path of scopes to it).
    ids: HashMap<Vec<usize>, usize>,
    /// The operators that are scopes of others.
    scopes: HashSet<usize>,
    /// When each running operator started.
    started: HashMap<usize, Duration>,
    /// Time spent since the last flush, by operator.
    spent: HashMap<usize, Duration>,
}

impl Operators {
    fn event(&mut self, at: Duration, event: TimelyEvent) {
        match event {
            TimelyEvent::Operates(o) => {
                // A scope's own event may come before or after its
                // operators'.
                if let Some((_, parent)) = o.addr.split_last()
                    && let Some(&scope) = self.ids.get(parent)
                {
                    self.scopes.insert(scope);
                }
                if (self.ids.keys()).any(|a| a.len() > o.addr.len() && a.starts_with(&o.addr)) {
                    self.scopes.insert(o.id);
                }
                self.ids.insert(o.addr, o.id);
                self.names.insert(o.id, o.name);
            }
            TimelyEvent::Schedule(s) => match s.start_stop {
                StartStop::Start => {
                    self.started.insert(s.id, at);
                }
                StartStop::Stop => {
                    if let Some(from) = self.started.remove(&s.id) {
                        *self.spent.entry(s.id).or_default() += at.saturating_sub(from);
                    }
                }
            },
            _ => {}
        }
    }

    /// Adds the time spent since the last flush to the counter.
    fn flush(&mut self) {
        let seconds = &observability::metrics().pipeline_operator_seconds;
        for (id, spent) in self.spent.drain() {
            if self.scopes.contains(&id) {
                continue;
            }
            let name = self.names.get(&id).map_or("unnamed", String::as_str);
            seconds
                .with_label_values(&[name])
                .inc_by(spent.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timely::logging::{OperatesEvent, ScheduleEvent};

    fn operates(id: usize, addr: &[usize], name: &str) -> TimelyEvent {
        TimelyEvent::Operates(OperatesEvent {
            id,
            addr: addr.to_vec(),
            name: name.to_owned(),
        })
    }

    fn schedule(id: usize, start_stop: StartStop) -> TimelyEvent {
        TimelyEvent::Schedule(ScheduleEvent { id, start_stop })
    }

    /// A scope's time is its operators': only they are counted, whichever
    /// of the scope's and their events came first.
    #[test]
    fn operators_are_counted_and_scopes_are_not() {
        let mut ops = Operators::default();
        let ms = Duration::from_millis;
        ops.event(ms(0), operates(1, &[0, 1], "ProfiledRank"));
        ops.event(ms(0), operates(0, &[0], "Dataflow"));
        ops.event(ms(0), operates(2, &[0, 2], "ProfiledTrack"));
        for (at, e) in [
            (0, schedule(0, StartStop::Start)),
            (1, schedule(1, StartStop::Start)),
            (4, schedule(1, StartStop::Stop)),
            (4, schedule(2, StartStop::Start)),
            (10, schedule(2, StartStop::Stop)),
            (11, schedule(0, StartStop::Stop)),
        ] {
            ops.event(ms(at), e);
        }
        assert!(ops.scopes.contains(&0));
        assert_eq!(ops.spent.get(&1), Some(&ms(3)));
        assert_eq!(ops.spent.get(&2), Some(&ms(6)));
        ops.flush();
        let seconds = &observability::metrics().pipeline_operator_seconds;
        let got = |name: &str| seconds.with_label_values(&[name]).get();
        assert!((got("ProfiledRank") - 0.003).abs() < 1e-9);
        assert!((got("ProfiledTrack") - 0.006).abs() < 1e-9);
        assert_eq!(got("Dataflow"), 0.0);
    }
}
