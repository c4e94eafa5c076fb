//! The writer thread of one worker's snapshots: it writes the parts the
//! worker serialized, syncs and renames them, and reports each one back, so
//! that the worker pauses only for the serialization (into a buffer), never
//! for the disk.
//!
//! What waits for the thread is bounded by bytes ([`Writer::new`]'s
//! budget): a worker that hands over more waits for the thread to catch up
//! (back-pressure from a slow disk, never a growing queue). The reports are
//! bounded by what was handed over. Dropping the writer lets the thread
//! write what it holds, then joins it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use super::Time;

/// One part to write: `bytes` go to `path` (through a temporary name).
pub(super) struct Job {
    /// The snapshot point.
    pub point: Time,
    /// The part's name.
    pub part: String,
    /// Where it goes; its directory is created if needed.
    pub path: PathBuf,
    /// What it holds.
    pub bytes: Vec<u8>,
}

/// What became of one [`Job`].
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Written {
    /// The snapshot point.
    pub point: Time,
    /// The part's name.
    pub part: String,
    /// Whether it is on disk, whole (a failure was logged).
    pub ok: bool,
}

/// The writer thread of one worker (or, if it could not be started, the
/// worker itself: then [`Writer::submit`] writes before it returns).
pub(super) struct Writer {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
    budget: usize,
}

struct Inner {
    queue: Mutex<Queue>,
    changed: Condvar,
    worker: String,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    written: Vec<Written>,
    /// Bytes handed over and not yet written (queued or being written).
    unwritten: usize,
    closed: bool,
    /// The thread takes no job while set (tests).
    held: bool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves a queue that is still whole.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, q: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        self.changed.wait(q).unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let mut q = self.lock();
        loop {
            let job = if q.held { None } else { q.jobs.pop_front() };
            match job {
                Some(job) => {
                    drop(q);
                    let len = job.bytes.len();
                    let ok = write(&self.worker, &job);
                    q = self.lock();
                    q.unwritten -= len;
                    q.written.push(Written {
                        point: job.point,
                        part: job.part,
                        ok,
                    });
                    self.changed.notify_all();
                }
                None if q.closed && (q.jobs.is_empty() || q.held) => return,
                None => q = self.wait(q),
            }
        }
    }
}

impl Writer {
    /// The writer of `worker`'s parts; a worker waits once more than
    /// `budget` bytes it handed over are unwritten.
    pub fn new(worker: usize, budget: usize) -> Self {
        let inner = Arc::new(Inner {
            queue: Mutex::default(),
            changed: Condvar::new(),
            worker: worker.to_string(),
        });
        let thread = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name(format!("pace-snapshot-w{worker}"))
                .spawn(move || inner.run())
        };
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(worker, error = %e, "no snapshot writer thread: the worker writes its parts itself");
                None
            }
        };
        Self {
            inner,
            thread,
            budget,
        }
    }

    /// Hands `job` to the thread (waiting while the budget is spent) and
    /// returns what was written since the last call.
    pub fn submit(&self, job: Job) -> Vec<Written> {
        if self.thread.is_none() {
            let ok = write(&self.inner.worker, &job);
            let mut written = self.written();
            written.push(Written {
                point: job.point,
                part: job.part,
                ok,
            });
            return written;
        }
        let mut q = self.inner.lock();
        let mut written = std::mem::take(&mut q.written);
        while q.unwritten > 0 && q.unwritten + job.bytes.len() > self.budget {
            q = self.inner.wait(q);
            written.append(&mut q.written);
        }
        q.unwritten += job.bytes.len();
        q.jobs.push_back(job);
        self.inner.changed.notify_all();
        written
    }

    /// What was written since the last call, without waiting.
    pub fn written(&self) -> Vec<Written> {
        std::mem::take(&mut self.inner.lock().written)
    }

    /// Waits until everything handed over is written; what was written
    /// since the last call.
    pub fn drain(&self) -> Vec<Written> {
        let mut q = self.inner.lock();
        let mut written = std::mem::take(&mut q.written);
        while self.thread.is_some() && !q.held && q.unwritten > 0 {
            q = self.inner.wait(q);
            written.append(&mut q.written);
        }
        written
    }

    /// Stops (`true`) or lets (`false`) the thread take jobs: a test's
    /// view of a part that is still being written.
    #[cfg(test)]
    pub fn hold(&self, held: bool) {
        self.inner.lock().held = held;
        self.inner.changed.notify_all();
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("worker", &self.inner.worker)
            .field("threaded", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.inner.lock().closed = true;
        self.inner.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes `job` to a temporary name, syncs it and renames it into place,
/// with its metrics; whether it is there.
fn write(worker: &str, job: &Job) -> bool {
    let t0 = Instant::now();
    let tmp = job.path.with_extension("tmp");
    let result = (|| -> std::io::Result<()> {
        use std::io::Write;
        if let Some(dir) = job.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&job.bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &job.path)
    })();
    let part = job.part.as_str();
    match result {
        Ok(()) => {
            let m = observability::metrics();
            m.snapshot_write
                .with_label_values(&[part])
                .observe(t0.elapsed().as_secs_f64());
            m.snapshot_bytes
                .with_label_values(&[worker, part])
                .set(job.bytes.len() as i64);
            tracing::debug!(
                point = job.point,
                part,
                bytes = job.bytes.len(),
                ms = t0.elapsed().as_millis() as u64,
                "snapshot part written"
            );
            true
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(point = job.point, part, error = %e, "snapshot part not written");
            false
        }
    }
}
