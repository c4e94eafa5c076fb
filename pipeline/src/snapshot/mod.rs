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
//! ([`points`](self::points))
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
mod points;
mod writer;

pub use checkpoint::Checkpoint;
pub use part::{In, Offsets, Out, Part};
pub use points::{agree, latest_common};

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
/// 6: a standings participant keeps its entrant record, and its progress
/// the listing and (chip-timed races) its next cutoff. 7: a chip-timed
/// runner's fold keeps where GPS fixes along the route put them. 8: a room
/// keeps its members' read markers. 9: a room counts connections per
/// edge and keeps the edges' leases.
pub const FORMAT: u32 = 9;

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
        // What is written for a finished point or before holds for none
        // after it (forgotten once a point finishes, not at every step).
        if !finished.is_empty() {
            let last = self.finished.get();
            for w in written.values_mut() {
                w.retain(|&s, _| s > last);
            }
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

#[cfg(test)]
mod tests;
