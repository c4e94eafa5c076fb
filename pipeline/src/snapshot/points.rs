//! Which snapshot points a worker can restore from: the point
//! directories on disk, which are complete (every worker's `.done`, of one
//! worker count and this [`FORMAT`]), pruning the old ones, and the
//! workers' agreement on the latest point all of them have.

use std::cell::RefCell;
use std::rc::Rc;

use super::{FORMAT, KEEP, Snapshots, Time};

impl Snapshots {
    /// What a worker's `.done` file holds: the worker count and the
    /// [`FORMAT`] the parts were written in.
    pub(super) fn done_mark(&self) -> String {
        mark(self.peers)
    }

    /// Every point directory on disk, complete or not, oldest first.
    fn points(&self) -> Vec<Time> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut points: Vec<Time> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        points.sort_unstable();
        points
    }

    /// What worker `w`'s `.done` file of point `s` says, if it exists.
    fn done_of(&self, s: Time, w: usize) -> Option<String> {
        let done = std::fs::read_to_string(self.point_dir(s).join(format!("w{w}.done"))).ok()?;
        Some(done.trim().to_owned())
    }

    /// The points this process can restore from, oldest first.
    pub fn complete(&self) -> Vec<Time> {
        let mut points = self.points();
        points.retain(|&s| self.taken_with(s).is_some());
        points
    }

    /// The worker count point `s` was taken with, if this process can
    /// restore from it: every local worker finished it with the current
    /// worker count (each reads its own parts), or every worker of another
    /// count finished it in this format and their parts are all here (each
    /// reads what it owns of all of them).
    fn taken_with(&self, s: Time) -> Option<usize> {
        let current = self.done_mark();
        if self
            .local
            .clone()
            .all(|w| self.done_of(s, w).as_ref() == Some(&current))
        {
            return Some(self.peers);
        }
        let first = self.done_of(s, 0)?;
        let (taken, format) = first.split_once(" v")?;
        let taken: usize = taken.parse().ok()?;
        (format == FORMAT.to_string()
            && taken != self.peers
            && (1..taken).all(|w| self.done_of(s, w).as_ref() == Some(&first)))
        .then_some(taken)
    }

    /// The latest point this process's first worker finished, whatever the
    /// worker count or format, with the mark of its `.done` file (`"2 v4"`:
    /// 2 workers, format 4).
    pub fn latest_any(&self) -> Option<(Time, String)> {
        let first = self.local.start;
        let points = self.points();
        points
            .into_iter()
            .rev()
            .find_map(|s| Some((s, self.done_of(s, first)?)))
    }

    /// Whether a `.done` mark is of this worker count and format.
    pub fn is_current(&self, mark: &str) -> bool {
        mark.trim() == self.done_mark()
    }

    /// Removes every point before the oldest of the last [`KEEP`] complete ones.
    pub(super) fn prune(&self) {
        let complete = self.complete();
        let Some(&oldest_kept) = complete.iter().rev().nth(KEEP - 1) else {
            return;
        };
        for s in self.points().into_iter().filter(|&s| s < oldest_kept) {
            let _ = std::fs::remove_dir_all(self.point_dir(s));
        }
    }

    /// Restores from `point` (agreed by every worker), or from nothing.
    pub fn restore_from(&mut self, point: Option<Time>) {
        self.restored = point.and_then(|s| Some((s, self.taken_with(s)?)));
        self.finished.set(self.restored.map_or(0, |(s, _)| s));
    }
}

/// What a worker's `.done` file holds with `peers` workers.
fn mark(peers: usize) -> String {
    format!("{peers} v{FORMAT}")
}

/// The latest point in every one of `lists`.
pub fn latest_common(lists: &[Vec<Time>]) -> Option<Time> {
    let (first, rest) = lists.split_first()?;
    first
        .iter()
        .rev()
        .find(|s| rest.iter().all(|l| l.contains(s)))
        .copied()
}

/// Every worker's complete points, exchanged: each worker gets all lists.
pub fn agree(worker: &mut timely::worker::Worker, mine: Vec<Time>) -> Option<Time> {
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::InputHandle;
    use timely::dataflow::operators::vec::Broadcast;
    use timely::dataflow::operators::{Inspect, Probe};
    let peers = worker.peers();
    let got: Rc<RefCell<Vec<Vec<Time>>>> = Rc::default();
    let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Vec<Time>>>>::new();
    let probe = worker.dataflow::<u64, _, _>(|scope| {
        let got = got.clone();
        let (probe, _) = input
            .to_stream(scope)
            .broadcast()
            .inspect(move |list: &Vec<Time>| got.borrow_mut().push(list.clone()))
            .probe();
        probe
    });
    input.send(mine);
    input.advance_to(1);
    drop(input);
    while probe.less_than(&1) {
        worker.step();
    }
    let lists = got.borrow();
    debug_assert_eq!(lists.len(), peers);
    latest_common(&lists)
}
