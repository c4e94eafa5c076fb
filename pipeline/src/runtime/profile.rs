//! Where a worker's time goes, operator by operator: timely's schedule
//! events (an operator starts, an operator stops) summed per operator name
//! into `pace_pipeline_operator_seconds_total{operator}`. The jobs name
//! their stages (`Track`, `Rank`, a sink), so the counter says what an
//! epoch costs in each, and with the points counted, what a point costs.
//!
//! Each operator is counted for its own time: a scope (the dataflow, a
//! region) is scheduled around the operators in it, and counts only what
//! it spends itself (progress tracking, scheduling), so no second is
//! counted twice and the sum is the workers' time in the dataflow. The
//! events come in batches from timely's logger; a batch costs a map update
//! per event.
//!
//! The time is wall time between an operator's start and stop: where the
//! process gets less than a core per worker, it includes the time a worker
//! thread waited for one, so the sum can exceed the process's CPU time
//! (`make bench`'s latency runs share 2 cores with the broker, the edge
//! and the clients). The shares between operators are what it is for.

use std::collections::HashMap;
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

/// An operator running now: its id, when it started, and the time the
/// operators it scheduled meanwhile took.
struct Running {
    id: usize,
    from: Duration,
    inner: Duration,
}

/// What the logger has seen of the operators.
#[derive(Default)]
struct Operators {
    /// Each operator's name, by its worker-unique id.
    names: HashMap<usize, String>,
    /// The operators running now, innermost last.
    running: Vec<Running>,
    /// Each operator's own time since the last flush.
    spent: HashMap<usize, Duration>,
}

impl Operators {
    fn event(&mut self, at: Duration, event: TimelyEvent) {
        match event {
            TimelyEvent::Operates(o) => {
                self.names.insert(o.id, o.name);
            }
            TimelyEvent::Schedule(s) => match s.start_stop {
                StartStop::Start => self.running.push(Running {
                    id: s.id,
                    from: at,
                    inner: Duration::ZERO,
                }),
                StartStop::Stop => {
                    let Some(pos) = self.running.iter().rposition(|r| r.id == s.id) else {
                        return;
                    };
                    let run = self.running.remove(pos);
                    let took = at.saturating_sub(run.from);
                    *self.spent.entry(run.id).or_default() += took.saturating_sub(run.inner);
                    if let Some(outer) = self.running.last_mut() {
                        outer.inner += took;
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

    /// A scope counts only its own time, its operators theirs, whichever
    /// of their events came first.
    #[test]
    fn each_operator_counts_its_own_time() {
        let mut ops = Operators::default();
        let ms = Duration::from_millis;
        ops.event(ms(0), operates(1, &[0, 1], "ProfiledRank"));
        ops.event(ms(0), operates(0, &[0], "ProfiledDataflow"));
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
        assert_eq!(ops.spent.get(&1), Some(&ms(3)));
        assert_eq!(ops.spent.get(&2), Some(&ms(6)));
        assert_eq!(
            ops.spent.get(&0),
            Some(&ms(2)),
            "11 ms less its operators' 9"
        );
        ops.flush();
        let seconds = &observability::metrics().pipeline_operator_seconds;
        let got = |name: &str| seconds.with_label_values(&[name]).get();
        assert!((got("ProfiledRank") - 0.003).abs() < 1e-9);
        assert!((got("ProfiledTrack") - 0.006).abs() < 1e-9);
        assert!((got("ProfiledDataflow") - 0.002).abs() < 1e-9);
    }
}
