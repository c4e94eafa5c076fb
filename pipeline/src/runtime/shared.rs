//! What every worker of a process shares: the stop flag, the first error,
//! whether data is in flight, the origin timestamps of the epochs not yet
//! durable, and the epoch bindings (read from Kafka once per process).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ingest::IngestError;
use schemas::EpochBinding;

use super::error::WorkerError;
use super::{Time, now_ms};

/// State shared by all workers of the process.
pub(super) struct Shared {
    pub(super) stop: Arc<AtomicBool>,
    /// Until when (Unix ms) data is in flight somewhere: idle sources keep
    /// advancing their epoch until then so that data can complete.
    busy_until_ms: AtomicI64,
    /// One past the latest epoch any source of the process read records
    /// into: every source must move past it for that epoch to close, and
    /// no source needs to move past it otherwise (an epoch with nothing
    /// in it is not cut, see [`Shared::wanted_past`]).
    wanted: AtomicU64,
    error: Mutex<Option<WorkerError>>,
    /// Worker threads, to wake when data starts to flow.
    threads: Mutex<Vec<std::thread::Thread>>,
    /// The oldest Kafka timestamp read per view (job name) and epoch, until
    /// the epoch is durable: the origin a view change of that epoch carries.
    origins: Mutex<BTreeMap<(&'static str, Time), i64>>,
    /// Sources advance their epoch every tick, idle or not: in a cluster a
    /// process cannot see that another one has data in flight, which its
    /// idle sources would otherwise hold back.
    always_tick: bool,
    /// Every topic's epoch bindings, once the first worker has read them.
    bindings: Mutex<Option<Arc<Bindings>>>,
}

/// Epoch bindings by the input topic they bind.
pub(super) type Bindings = BTreeMap<String, Vec<EpochBinding>>;

impl Shared {
    pub(super) fn new(stop: Arc<AtomicBool>, always_tick: bool) -> Self {
        Self {
            stop,
            busy_until_ms: AtomicI64::new(0),
            wanted: AtomicU64::new(0),
            error: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            origins: Mutex::new(BTreeMap::new()),
            always_tick,
            bindings: Mutex::new(None),
        }
    }

    /// The epoch bindings, read with `load` by the first worker that asks
    /// (the others wait for it, and share what it read).
    pub(super) fn bindings(
        &self,
        load: impl FnOnce() -> Result<Bindings, IngestError>,
    ) -> Result<Arc<Bindings>, IngestError> {
        let mut held = self.bindings.lock().expect("bindings lock");
        if let Some(b) = &*held {
            return Ok(b.clone());
        }
        let b = Arc::new(load()?);
        *held = Some(b.clone());
        Ok(b)
    }

    /// Registers the calling worker thread, to be woken when data flows.
    pub(super) fn join(&self) {
        self.threads
            .lock()
            .expect("threads lock")
            .push(std::thread::current());
    }

    /// Notes that data entered the dataflow; wakes every worker if it was idle,
    /// so that their sources advance too.
    pub(super) fn data_in_flight(&self) {
        let now = now_ms();
        if self.busy_until_ms.fetch_max(now + 1000, Ordering::SeqCst) < now {
            for t in self.threads.lock().expect("threads lock").iter() {
                t.unpark();
            }
        }
    }

    /// Notes that a source read records into epoch `t`: every source has
    /// to move past it.
    pub(super) fn read_into(&self, t: Time) {
        self.wanted.fetch_max(t + 1, Ordering::SeqCst);
    }

    /// Whether a source at epoch `t` has to move on, and to at least
    /// which epoch: another source read records into `t` or later, which
    /// cannot be done until every source has moved past it. Always in a
    /// cluster, where a process cannot see what the others read (then to
    /// the tick's epoch: 0 here).
    pub(super) fn wanted_past(&self, t: Time) -> Option<Time> {
        let wanted = self.wanted.load(Ordering::SeqCst);
        if wanted > t {
            Some(wanted)
        } else {
            self.always_tick.then_some(0)
        }
    }

    /// Notes that `view` read a record produced at `ms` in epoch `t`.
    pub(super) fn note_origin(&self, view: &'static str, t: Time, ms: i64) {
        let mut origins = self.origins.lock().expect("origins lock");
        let o = origins.entry((view, t)).or_insert(ms);
        *o = (*o).min(ms);
    }

    /// The origin of `view`'s changes in epoch `t`.
    pub(super) fn origin(&self, view: &'static str, t: Time) -> Option<i64> {
        self.origins
            .lock()
            .expect("origins lock")
            .get(&(view, t))
            .copied()
    }

    /// Forgets origins of epochs before `frontier`: their changes are sent.
    pub(super) fn forget_origins(&self, frontier: Time) {
        let mut origins = self.origins.lock().expect("origins lock");
        origins.retain(|(_, t), _| *t >= frontier);
    }

    pub(super) fn busy(&self) -> bool {
        self.always_tick || self.busy_until_ms.load(Ordering::SeqCst) > now_ms()
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Stops every worker; the first failure is what [`super::run`] returns.
    pub(super) fn fail(&self, error: WorkerError) {
        tracing::error!(error = %error, "pipeline stopping");
        self.error.lock().expect("error lock").get_or_insert(error);
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The first failure, if any.
    pub(super) fn take_error(&self) -> Option<WorkerError> {
        self.error.lock().expect("error lock").take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workers_of_a_process_read_the_bindings_once() {
        let shared = Arc::new(Shared::new(Arc::default(), false));
        let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (shared, loads) = (shared.clone(), loads.clone());
                std::thread::spawn(move || {
                    shared
                        .bindings(|| {
                            loads.fetch_add(1, Ordering::SeqCst);
                            Ok(Bindings::from([("t".to_owned(), Vec::new())]))
                        })
                        .unwrap()
                })
            })
            .collect();
        for w in workers {
            assert_eq!(w.join().unwrap().len(), 1);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failed_read_is_tried_again_by_the_next_worker() {
        let shared = Shared::new(Arc::default(), false);
        let failed = shared.bindings(|| Err(IngestError::NoSuchTopic("pace.bindings".into())));
        assert!(failed.is_err());
        let read = shared.bindings(|| Ok(Bindings::new())).unwrap();
        assert!(read.is_empty());
    }
}
