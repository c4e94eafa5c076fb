//! Snapshots: the jobs' state and the input offsets it reflects, written
//! periodically under `<data-dir>/snapshots/`, and the latest complete one
//! loaded at start.
//!
//! **Points.** A snapshot point is a multiple of the interval in epoch time
//! (epochs are Unix milliseconds). Every stateful operator writes its state
//! *as of a point `S`*: after applying every batch of a time before `S`, and
//! none at or after it. An operator applies its batches in time order once
//! no input can still produce them, so it writes its part just before its
//! first batch at or after `S` (or when its frontier passes `S` with nothing
//! to apply). A Kafka source writes the offsets it had read when it first
//! stamps an epoch at or after `S`: exactly the records of epochs before `S`.
//! No coordination is needed: every operator of every worker finds the same
//! points from the same rule. An operator whose frontier jumps over several
//! points at once (a replay following recorded epochs passes many per
//! step) writes only the latest: its state is the same at each of them, so
//! that file holds for all of them, and a point it skipped gets a hard link
//! to it once every other part is there too ([`Snapshots::finish`]). A
//! source following recorded epochs, whose state differs from point to
//! point, writes each ([`Checkpoint::at_each`]).
//!
//! **Parts and completeness.** Each operator of each worker writes its own
//! file, `<S>/w<worker>-<part>.bin` (bincode, written to a temporary name and
//! renamed, so a file that exists is whole). The operator only hands its
//! state over: serialized into a buffer ([`Checkpoint::at`], for small
//! states) or as a value that shares the operator's data
//! ([`Checkpoint::at_shared`]: e.g. a map of `Arc`s the operator modifies
//! with `Arc::make_mut`, so it copies only what changes during the write).
//! The worker's writer thread ([`writer`]) serializes what it was given as a
//! value, writes, syncs and renames it while the worker goes on. Once the worker's probe has
//! passed `S` (every output of the epochs before `S` is durable) and all of
//! its parts for `S` are on disk, the worker writes `<S>/w<worker>.done` holding
//! the worker count and the parts' [`FORMAT`]. A snapshot is complete when
//! every worker's `.done` exists with one worker count and this format (one
//! written by an older pace, in another format, is not); only the latest
//! two complete ones (and any later, unfinished ones) are kept.
//!
//! **Restore.** At start every worker lists the points it can restore from
//! and the workers agree on the latest one all of them have (in a cluster
//! each process has its own data directory). Each operator then loads its
//! part through its [`Checkpoint`], a typed handle named by its job: a
//! job's state (part `<job>`), what its changelog encoder keeps (part
//! `<job>-changelog`, e.g. the standings sequence numbers), the offsets each
//! source resumes from (part `offsets-<topic>`).
//!
//! **Any layout.** Every part is a [`Part`]: its entries are keyed by what
//! owns them and routed as the dataflow exchanges them, so a point taken
//! with another number of workers is restored too: each worker reads what
//! it owns now of every old worker's part (and every source reads all the
//! offsets, its consumer taking its own partitions). A worker can do so
//! when every old worker's parts are in its data directory: one process,
//! or a cluster whose processes' `snapshots/` were copied together (or
//! share a directory: files are named by global worker index). A point
//! taken with as many workers is read from each worker's own parts. A
//! start that finds no usable point rebuilds from the start of retention.
//!
//! What a restored operator emits at time 0 (the state it loaded, so that
//! the differential operators after it rebuild theirs) reproduces views that
//! were already published before the point, so the sinks drop it; the first
//! changes written after a restart continue the sequence numbers.

mod checkpoint;
mod part;
mod writer;

pub use checkpoint::Checkpoint;
pub use part::{In, Offsets, Out, Part};

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

/// The layout of the parts, bumped whenever one of them changes type, so
/// that a pace never reads a snapshot an older one wrote (it rebuilds from
/// the start of retention instead). 2: each room records how it was created.
/// 3: parts are named by job and topic; the results job keeps task ids.
/// 4: a standings participant keeps its latest times and held points.
/// 5: parts are [`Part`]s, entries routed by key, for any layout.
pub const FORMAT: u32 = 5;

/// Dataflow time, Unix milliseconds.
pub type Time = u64;

/// Complete snapshots kept.
const KEEP: usize = 2;

/// Bytes of serialized parts a worker may have waiting for its writer
/// thread before it waits too.
const WRITER_BUDGET: usize = 512 << 20;

/// One worker's view of the snapshot directory.
#[derive(Debug)]
pub struct Snapshots {
    dir: PathBuf,
    interval: Time,
    worker: usize,
    peers: usize,
    /// The workers of this process (they share the directory).
    local: std::ops::Range<usize>,
    /// The point restored from, if any, and the worker count it was
    /// taken with.
    restored: Option<(Time, usize)>,
    /// Per part, the points it is on disk for, each with the point the
    /// part was written at before (see [`Snapshots::finish`]); those up to
    /// the latest finished point are forgotten.
    written: RefCell<HashMap<String, BTreeMap<Time, Time>>>,
    /// Parts at the writer thread: the point each was written at before.
    before: RefCell<HashMap<(Time, String), Time>>,
    /// The latest point finished (or restored).
    finished: Cell<Time>,
    /// Parts handed to the writer thread and not yet written, per point.
    in_flight: RefCell<BTreeMap<Time, usize>>,
    /// The thread that writes the parts.
    writer: writer::Writer,
    /// Each part's latest size: the next buffer's capacity.
    sizes: RefCell<HashMap<String, usize>>,
    /// The longest a part has held this worker, seconds.
    longest_pause: Cell<f64>,
    /// Every part this worker writes (one per [`Checkpoint`]): a point is
    /// finished once all of them are written.
    parts: RefCell<BTreeSet<String>>,
}

/// Why a snapshot part could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SnapshotError {
    /// The part's file.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

impl Snapshots {
    /// Snapshots under `data_dir/snapshots`, every `interval_ms`, for
    /// `worker` of `peers`; `local` are the workers of this process.
    pub fn new(
        data_dir: &Path,
        interval_ms: Time,
        worker: usize,
        peers: usize,
        local: std::ops::Range<usize>,
    ) -> Self {
        Self {
            dir: data_dir.join("snapshots"),
            interval: interval_ms.max(1),
            worker,
            peers,
            local,
            restored: None,
            written: RefCell::new(HashMap::new()),
            before: RefCell::new(HashMap::new()),
            finished: Cell::new(0),
            in_flight: RefCell::new(BTreeMap::new()),
            writer: writer::Writer::new(worker, WRITER_BUDGET),
            sizes: RefCell::new(HashMap::new()),
            longest_pause: Cell::new(0.0),
            parts: RefCell::new(BTreeSet::new()),
        }
    }

    /// The handle through which one operator writes `part` at every point
    /// and gets what the restored point holds of it. Every part a worker
    /// takes a checkpoint for must be written before a point is finished.
    pub fn checkpoint<S: Part>(
        self: &Rc<Self>,
        part: String,
    ) -> Result<Checkpoint<S>, SnapshotError> {
        let restored = self.read(&part)?;
        self.parts.borrow_mut().insert(part.clone());
        Ok(Checkpoint {
            snaps: Some(self.clone()),
            part,
            // The restored point and those before it are written already
            // (perhaps by another layout, whose parts must stay as they are).
            last: self.restored.map_or(0, |(point, _)| point),
            restored,
        })
    }

    fn point_dir(&self, s: Time) -> PathBuf {
        self.dir.join(format!("{s:016}"))
    }

    fn part_path(&self, s: Time, part: &str) -> PathBuf {
        self.point_dir(s)
            .join(format!("w{}-{part}.bin", self.worker))
    }

    /// The latest point at or before `upto` that is after `last`, if any;
    /// `last` becomes it.
    pub fn due(&self, last: &mut Time, upto: Time) -> Option<Time> {
        let s = upto - upto % self.interval;
        (s > *last).then(|| {
            *last = s;
            s
        })
    }

    /// Writes this worker's `part` for point `s` with `write`: serialized
    /// here, into a buffer, and handed to the writer thread, which writes it
    /// atomically (the worker pauses only for the serialization). A failure
    /// is logged and leaves the point incomplete (the next one will do); it
    /// never stops the pipeline. `before` is the point the part was last
    /// written at: the state written holds for every point after it up to
    /// `s` (see [`Snapshots::finish`]).
    pub fn write(
        &self,
        (before, s): (Time, Time),
        part: &str,
        write: impl FnOnce(&mut dyn Write) -> bincode::Result<()>,
    ) {
        let t0 = Instant::now();
        let hint = self.size(part);
        // A little more than last time, so that the buffer rarely grows.
        let mut bytes = Vec::with_capacity(hint + hint / 8);
        if let Err(e) = write(&mut bytes) {
            tracing::warn!(point = s, part, error = %e, "snapshot part not serialized");
            return;
        }
        let size = bytes.len();
        self.submit(t0, (before, s), part, writer::Body::Bytes(bytes), size);
    }

    /// Hands `value` to the writer thread, which serializes and writes it as
    /// this worker's `part` for point `s`: the worker pauses only to make
    /// `value` (see [`Checkpoint::at_shared`]).
    pub fn write_shared<V: Part + Send>(
        &self,
        t0: Instant,
        points: (Time, Time),
        part: &str,
        value: V,
    ) {
        let serialize: writer::Serialize = Box::new(move |bytes| part::write(&value, bytes));
        self.submit(
            t0,
            points,
            part,
            writer::Body::Value(serialize),
            self.size(part),
        );
    }

    /// The latest size of `part` written, bytes (0 before the first).
    fn size(&self, part: &str) -> usize {
        self.sizes.borrow().get(part).copied().unwrap_or(0)
    }

    /// Hands a part to the writer thread; how long the worker paused since
    /// `t0` goes to the metrics.
    fn submit(
        &self,
        t0: Instant,
        (before, s): (Time, Time),
        part: &str,
        body: writer::Body,
        size: usize,
    ) {
        *self.in_flight.borrow_mut().entry(s).or_default() += 1;
        self.before
            .borrow_mut()
            .insert((s, part.to_owned()), before);
        let written = self.writer.submit(writer::Job {
            point: s,
            part: part.to_owned(),
            path: self.part_path(s, part),
            body,
            size,
        });
        self.record(written);
        let paused = t0.elapsed().as_secs_f64();
        let m = observability::metrics();
        m.snapshot_pause.with_label_values(&[part]).observe(paused);
        if paused > self.longest_pause.get() {
            self.longest_pause.set(paused);
            m.snapshot_pause_max
                .with_label_values(&[&self.worker.to_string()])
                .set(paused);
        }
    }

    /// Takes note of parts the writer thread has written (or failed to).
    fn record(&self, written: Vec<writer::Written>) {
        let mut in_flight = self.in_flight.borrow_mut();
        let mut done = self.written.borrow_mut();
        let mut befores = self.before.borrow_mut();
        for w in written {
            let before = befores.remove(&(w.point, w.part.clone()));
            if let Some(n) = in_flight.get_mut(&w.point) {
                *n -= 1;
                if *n == 0 {
                    in_flight.remove(&w.point);
                }
            }
            if w.ok {
                self.sizes.borrow_mut().insert(w.part.clone(), w.bytes);
                let before = before.unwrap_or(w.point.saturating_sub(self.interval));
                done.entry(w.part).or_default().insert(w.point, before);
            }
        }
    }

    /// Waits until the writer thread has written every part handed to it
    /// (at shutdown, before the last [`Snapshots::finish`]).
    pub fn drain(&self) {
        self.record(self.writer.drain());
    }

    /// Serializes `value` as this worker's `part` for point `s`, holding for
    /// every point after `before` (see [`Snapshots::write`]).
    pub fn write_value<V: Part>(&self, points: (Time, Time), part: &str, value: &V) {
        self.write(points, part, |w| part::write(value, w));
    }

    /// What this worker owns of `part` at the restored point, if there is
    /// one: its own part if the point was taken with as many workers,
    /// else what it owns now of every worker's part (see [`Part`]).
    pub fn read<V: Part>(&self, part: &str) -> Result<Option<V>, SnapshotError> {
        let Some((s, taken)) = self.restored else {
            return Ok(None);
        };
        let (worker, peers) = (self.worker as u64, self.peers as u64);
        let owns = move |route: u64| route % peers == worker;
        let from = if taken == self.peers {
            self.worker..self.worker + 1
        } else {
            0..taken
        };
        let mut state = V::default();
        for w in from {
            let path = self.point_dir(s).join(format!("w{w}-{part}.bin"));
            let fail = |reason: String| SnapshotError {
                path: path.clone(),
                reason,
            };
            let file = std::fs::File::open(&path).map_err(|e| fail(e.to_string()))?;
            let mut r = std::io::BufReader::with_capacity(1 << 20, file);
            part::read(&mut state, &mut r, &owns).map_err(|e| fail(e.to_string()))?;
        }
        Ok(Some(state))
    }

    /// The point restored from, if any, and the worker count it was taken
    /// with.
    pub fn restored(&self) -> Option<(Time, usize)> {
        self.restored
    }

    /// Marks every point before `done` (the probe's frontier) for which
    /// every checkpoint's part is on disk as finished for this worker, and
    /// removes old snapshots; the points finished. A point with a part the
    /// writer thread has not yet written waits for a later call.
    ///
    /// A part need not be written at the point itself: one written at `b`
    /// after being written at `a` holds for every point in `(a, b]` (the
    /// operator applied no batch of a time in between: it would have written
    /// at that time's point; see [`Checkpoint::at`]). An operator that the
    /// dataflow's frontier carries over several points at once (a replay
    /// following recorded epochs) writes only the last, and the point gets
    /// a hard link to that file.
    pub fn finish(&self, done: Time) -> Vec<Time> {
        self.record(self.writer.written());
        let mut finished = Vec::new();
        let mut written = self.written.borrow_mut();
        let parts = self.parts.borrow();
        // A point waits while the writer thread holds one of its parts (and
        // every later one waits for it).
        let upto = match self.in_flight.borrow().first_key_value() {
            Some((&s, _)) if s <= done => s.saturating_sub(1),
            _ => done,
        };
        let after = self.finished.get();
        let candidates: BTreeSet<Time> = written
            .values()
            .flat_map(|w| w.range(after + 1..).take_while(|&(&s, _)| s <= upto))
            .map(|(&s, _)| s)
            .collect();
        for s in candidates {
            // Per part, the file that holds for `s`: the first written at or
            // after it, if written after the point before it.
            let from: Option<Vec<(&String, Time)>> = parts
                .iter()
                .map(|p| {
                    let (&b, &a) = written.get(p)?.range(s..).next()?;
                    (a < s).then_some((p, b))
                })
                .collect();
            // (Else a part not written since may still come to hold for it.)
            let Some(from) = from else { continue };
            let linked = from
                .iter()
                .filter(|&&(_, b)| b != s)
                .try_for_each(|&(p, b)| link(&self.part_path(b, p), &self.part_path(s, p)));
            let path = self.point_dir(s).join(format!("w{}.done", self.worker));
            match linked.and_then(|()| std::fs::write(&path, self.done_mark())) {
                Ok(()) => {
                    finished.push(s);
                    self.finished.set(s);
                }
                Err(e) => tracing::warn!(point = s, error = %e, "snapshot not finished"),
            }
        }
        // What is written for a finished point or before holds for none after it.
        let last = self.finished.get();
        for w in written.values_mut() {
            *w = w.split_off(&(last + 1));
        }
        drop((written, parts));
        if let Some(&last) = finished.last() {
            let (m, w) = (observability::metrics(), self.worker.to_string());
            m.snapshot_last_point
                .with_label_values(&[&w])
                .set(last as f64 / 1000.0);
            m.snapshot_points
                .with_label_values(&[&w])
                .inc_by(finished.len() as u64);
            self.prune();
        }
        finished
    }

    /// What a worker's `.done` file holds: the worker count and the
    /// [`FORMAT`] the parts were written in.
    fn done_mark(&self) -> String {
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
    fn prune(&self) {
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

/// Makes `to` the file `from` is (a hard link; a copy where links fail),
/// replacing what `to` was.
fn link(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(to);
    std::fs::hard_link(from, to).or_else(|_| std::fs::copy(from, to).map(|_| ()))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A test's part: one value, in the section.
    #[derive(Debug, Default, PartialEq)]
    struct Whole<T>(T);

    impl<T> Part for Whole<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Default + 'static,
    {
        fn write_part(&self, out: &mut Out<'_>) -> bincode::Result<()> {
            out.section(&self.0)
        }

        fn read_part(&mut self, part: &mut In<'_>) -> bincode::Result<()> {
            self.0 = part.section()?;
            Ok(())
        }
    }

    #[test]
    fn points_fall_on_multiples_of_the_interval_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
        let mut last = 0;
        assert_eq!(s.due(&mut last, 999), None);
        assert_eq!(s.due(&mut last, 1000), Some(1000));
        assert_eq!(s.due(&mut last, 1999), None);
        assert_eq!(
            s.due(&mut last, 5500),
            Some(5000),
            "a jump takes the latest"
        );
        assert_eq!(s.due(&mut last, 5999), None);
    }

    #[test]
    fn writing_and_finishing_a_point_shows_in_the_metrics() {
        let dir = tempfile::tempdir().unwrap();
        // A worker index no other test uses: the registry is global.
        let s = Snapshots::new(dir.path(), 1000, 7, 8, 7..8);
        s.parts.borrow_mut().insert("metered".into());
        s.write_value((2000, 3000), "metered", &Whole(vec![1u8; 100]));
        s.drain();
        assert_eq!(s.finish(4000), vec![3000]);
        let m = observability::metrics();
        assert_eq!(m.snapshot_last_point.with_label_values(&["7"]).get(), 3.0);
        assert!(m.snapshot_bytes.with_label_values(&["7", "metered"]).get() >= 100);
        assert!(
            m.snapshot_write
                .with_label_values(&["metered"])
                .get_sample_count()
                >= 1
        );
    }

    #[test]
    fn the_worker_hands_a_part_over_and_its_point_waits_for_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
        s.parts.borrow_mut().extend(["a".into(), "b".into()]);
        s.write_value((0, 1000), "a", &Whole(1u32));
        s.write_value((0, 1000), "b", &Whole(2u32));
        s.drain();
        s.writer.hold(true);
        // The worker returns at once: the part is not on disk yet, and
        // neither its point nor any later one finishes.
        s.write_value((1000, 2000), "a", &Whole(String::from("held")));
        s.write_value((1000, 2000), "b", &Whole(String::from("not held")));
        s.write_value((2000, 3000), "a", &Whole(3u32));
        s.write_value((2000, 3000), "b", &Whole(3u32));
        assert!(!s.part_path(2000, "a").exists());
        assert_eq!(s.finish(Time::MAX), vec![1000]);
        assert_eq!(s.finish(Time::MAX), Vec::<Time>::new());
        s.writer.hold(false);
        s.drain();
        assert_eq!(s.finish(2500), vec![2000], "the probe has not passed 3000");
        assert_eq!(s.finish(Time::MAX), vec![3000]);
        let mut r = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
        r.restore_from(Some(2000));
        assert_eq!(
            r.read::<Whole<String>>("a").unwrap(),
            Some(Whole("held".into()))
        );
    }

    #[test]
    fn a_part_written_once_over_several_points_holds_for_each_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
        s.parts
            .borrow_mut()
            .extend(["a".into(), "b".into(), "c".into()]);
        for p in [1000, 2000, 3000, 4000] {
            s.write_value((p - 1000, p), "a", &Whole(p));
        }
        // The frontier carried b's operator from before 1000 past 3000.
        s.write_value((0, 3000), "b", &Whole(3000u64));
        // c wrote at 1000, then nothing until 4000: it holds for 2000 and
        // 3000 only once it is written.
        s.write_value((0, 1000), "c", &Whole(1000u64));
        s.drain();
        assert_eq!(s.finish(3500), vec![1000]);
        s.write_value((1000, 4000), "c", &Whole(4000u64));
        s.drain();
        assert_eq!(s.finish(3500), vec![2000, 3000], "b and c hold for them");
        assert_eq!(
            s.finish(4500),
            Vec::<Time>::new(),
            "b holds for 3000 at most"
        );
        assert_eq!(s.finish(10), Vec::<Time>::new(), "a frontier behind");
        let mut r = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
        r.restore_from(Some(2000));
        assert_eq!(r.read::<Whole<u64>>("a").unwrap(), Some(Whole(2000)));
        assert_eq!(r.read::<Whole<u64>>("b").unwrap(), Some(Whole(3000)));
        assert_eq!(r.read::<Whole<u64>>("c").unwrap(), Some(Whole(4000)));
    }

    #[test]
    fn a_shared_state_is_written_as_it_was_handed_over() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
        s.parts.borrow_mut().insert("shared".into());
        let mut state: Vec<Arc<String>> = vec![Arc::new("one".into()), Arc::new("two".into())];
        s.writer.hold(true);
        s.write_shared(Instant::now(), (0, 1000), "shared", Whole(state.clone()));
        // The worker goes on while the thread has not serialized it: what
        // it changes is copied, not seen by the snapshot.
        Arc::make_mut(&mut state[0]).push_str(" changed");
        state.push(Arc::new("three".into()));
        assert!(!s.part_path(1000, "shared").exists());
        s.writer.hold(false);
        s.drain();
        assert_eq!(s.finish(Time::MAX), vec![1000]);
        assert_eq!(
            Arc::strong_count(&state[1]),
            1,
            "the thread let go of what it shared"
        );
        let mut r = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
        r.restore_from(Some(1000));
        let read: Whole<Vec<String>> = r.read("shared").unwrap().unwrap();
        assert_eq!(read.0, ["one", "two"]);
        assert_eq!(*state[0], "one changed");
    }

    #[test]
    fn a_point_is_complete_when_every_local_worker_finished_it() {
        let dir = tempfile::tempdir().unwrap();
        let w0 = Snapshots::new(dir.path(), 1000, 0, 2, 0..2);
        let w1 = Snapshots::new(dir.path(), 1000, 1, 2, 0..2);
        for s in [1000, 2000, 3000, 4000] {
            w0.write_value((s - 1000, s), "a", &Whole((s, String::from("zero"))));
            w1.write_value((s - 1000, s), "a", &Whole((s, String::from("one"))));
            if s != 4000 {
                w1.write_value((s - 1000, s), "b", &Whole(s));
            }
        }
        w0.parts.borrow_mut().insert("a".into());
        w1.parts.borrow_mut().extend(["a".into(), "b".into()]);
        w0.drain();
        w1.drain();
        // Not durable yet: nothing finishes.
        assert!(w0.finish(999).is_empty());
        assert_eq!(w0.finish(4000), vec![1000, 2000, 3000, 4000]);
        assert_eq!(
            w0.complete(),
            Vec::<Time>::new(),
            "worker 1 has not finished"
        );
        assert_eq!(w1.finish(4000), vec![1000, 2000, 3000]);
        assert_eq!(w1.complete(), vec![2000, 3000], "older ones are pruned");
        // Another worker count sees those every worker finished.
        let other = Snapshots::new(dir.path(), 1000, 0, 3, 0..3);
        assert_eq!(other.complete(), vec![2000, 3000]);
        // Nor does a pace of another format.
        let point = w1.point_dir(3000);
        let mark = std::fs::read_to_string(point.join("w0.done")).unwrap();
        std::fs::write(point.join("w0.done"), "2").unwrap();
        assert_eq!(
            w1.complete(),
            vec![2000],
            "an older pace's point is not complete"
        );
        std::fs::write(point.join("w0.done"), mark).unwrap();
        let mut r = Snapshots::new(dir.path(), 1000, 1, 2, 0..2);
        r.restore_from(Some(3000));
        assert_eq!(
            r.read::<Whole<(Time, String)>>("a").unwrap(),
            Some(Whole((3000, "one".into())))
        );
        assert!(r.read::<Whole<Time>>("missing").is_err());
        assert!(!dir.path().join("snapshots").read_dir().unwrap().any(|e| {
            e.unwrap()
                .path()
                .read_dir()
                .unwrap()
                .any(|f| f.unwrap().path().extension().is_some_and(|x| x == "tmp"))
        }));
    }

    #[test]
    fn a_point_taken_with_two_workers_is_restored_into_three_or_one() {
        let dir = tempfile::tempdir().unwrap();
        let all: BTreeMap<String, u64> = (0..100).map(|i| (format!("race-{i}"), i)).collect();
        let owned = |w: u64, peers: u64| -> BTreeMap<String, u64> {
            let mut m = all.clone();
            m.retain(|k, _| crate::route::hash(k) % peers == w);
            m
        };
        for w in 0..2 {
            let s = Snapshots::new(dir.path(), 1000, w, 2, w..w + 1);
            s.parts.borrow_mut().insert("seqs".into());
            s.write_value((0, 1000), "seqs", &owned(w as u64, 2));
            s.drain();
            assert_eq!(s.finish(2000), vec![1000]);
        }
        // A process of worker 2 of 3 holds both parts: it restores.
        let mut three = Snapshots::new(dir.path(), 1000, 2, 3, 2..3);
        assert_eq!(three.complete(), vec![1000]);
        three.restore_from(Some(1000));
        assert_eq!(three.restored(), Some((1000, 2)));
        let got: BTreeMap<String, u64> = three.read("seqs").unwrap().unwrap();
        assert_eq!(got, owned(2, 3));
        let mut one = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
        one.restore_from(Some(1000));
        assert_eq!(
            one.read::<BTreeMap<String, u64>>("seqs").unwrap(),
            Some(all)
        );
        // Without worker 1's parts (its process's directory was not
        // brought here) the point is not complete for another layout.
        std::fs::remove_file(one.point_dir(1000).join("w1.done")).unwrap();
        assert!(one.complete().is_empty());
        let same = Snapshots::new(dir.path(), 1000, 0, 2, 0..1);
        assert_eq!(same.complete(), vec![1000], "worker 0's own parts are");
    }

    #[test]
    fn workers_agree_on_the_latest_point_they_all_have() {
        assert_eq!(
            latest_common(&[vec![1, 2, 3], vec![2, 3], vec![1, 2]]),
            Some(2)
        );
        assert_eq!(latest_common(&[vec![1], vec![]]), None);
        let got = timely::execute(timely::Config::process(3), |worker| {
            let mine = match worker.index() {
                0 => vec![10, 20, 30],
                1 => vec![20, 30],
                _ => vec![10, 20],
            };
            agree(worker, mine)
        })
        .unwrap()
        .join();
        for r in got {
            assert_eq!(r.unwrap(), Some(20));
        }
    }
}
