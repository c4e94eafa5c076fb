//! What every live view keeps per id to serve it ([`Feed`]): its version on
//! this edge and its seq, the channel its changes are broadcast on, the
//! snapshot of the current version (encoded once, when first asked for),
//! and, for a view that lets clients resume with `since`, the latest
//! deltas. A view module keeps its own state beside a feed and says what
//! changed; the feed decides what its subscribers are sent.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::protocol::Frame;
use crate::views::live::{Change, FRAME_BUFFER, First, Snapshot, Subscribed};

/// The live side of one view of one id.
pub struct Feed {
    version: u64,
    seq: u64,
    tx: broadcast::Sender<Change>,
    /// The snapshot of `version`, once someone asked for it.
    snapshot: Mutex<Option<(u64, Frame)>>,
    /// Delta frames after a snapshot point, by seq, contiguous up to `seq`.
    history: VecDeque<(u64, Frame)>,
    history_bytes: usize,
    /// Most deltas, and bytes of them, held (0: none).
    held: (usize, usize),
}

impl Default for Feed {
    fn default() -> Self {
        Self::with_history(0, 0)
    }
}

impl Feed {
    /// A feed that holds up to `frames` deltas of at most `bytes` in all,
    /// for clients that resume with `since`.
    pub fn with_history(frames: usize, bytes: usize) -> Self {
        Self {
            version: 0,
            seq: 0,
            tx: broadcast::channel(FRAME_BUFFER).0,
            snapshot: Mutex::new(None),
            history: VecDeque::new(),
            history_bytes: 0,
            held: (frames, bytes),
        }
    }

    /// This edge's version of the view: one more at each change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The view's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The view changed and is now at `seq`: whether that follows the seq
    /// held before. After a jump the held deltas are forgotten (a `since`
    /// from before it cannot be served from them).
    pub fn advance(&mut self, seq: u64) -> bool {
        let contiguous = seq == self.seq + 1;
        self.seq = seq;
        self.version += 1;
        if !contiguous {
            self.history.clear();
            self.history_bytes = 0;
        }
        contiguous
    }

    /// Whether anyone follows the view (a change nobody hears need not be
    /// encoded, unless it is held).
    pub fn heard(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// `frame` as the change to the current version.
    pub fn stamp(&self, frame: Frame, origin_ms: Option<i64>) -> Change {
        Change {
            version: self.version,
            seq: self.seq,
            frame,
            origin_ms,
        }
    }

    /// Sends `frame`, the change to the current version, to every
    /// subscriber; a `delta` is also held for clients that resume.
    pub fn send(&mut self, frame: Frame, delta: bool, origin_ms: Option<i64>) {
        if delta && self.held.0 > 0 {
            self.history_bytes += frame.len();
            self.history.push_back((self.seq, frame.clone()));
            while self.history.len() > self.held.0 || self.history_bytes > self.held.1 {
                match self.history.pop_front() {
                    Some((_, f)) => self.history_bytes -= f.len(),
                    None => break,
                }
            }
        }
        // No subscribers is not an error.
        let _ = self.tx.send(self.stamp(frame, origin_ms));
    }

    /// The snapshot of the current version, encoded by `encode` at most
    /// once per version.
    pub fn snapshot(&self, encode: impl FnOnce() -> Frame) -> Frame {
        let mut cached = self.snapshot.lock().expect("snapshot lock");
        if let Some((v, f)) = cached.as_ref()
            && *v == self.version
        {
            return f.clone();
        }
        let frame = encode();
        *cached = Some((self.version, frame.clone()));
        frame
    }

    /// `frame` as a snapshot of the current version.
    pub fn fresh(&self, frame: Frame) -> Snapshot {
        (self.version, self.seq, frame)
    }

    /// The seq of the oldest delta held (one past the view's seq when none
    /// is).
    pub fn first_held(&self) -> u64 {
        self.history.front().map_or(self.seq + 1, |(s, _)| *s)
    }

    /// The deltas a client at `since` missed, if all of them are held.
    pub fn missed_since(&self, since: u64) -> Option<impl Iterator<Item = Frame> + '_> {
        let first = self.first_held();
        if since > self.seq || since + 1 < first {
            return None;
        }
        Some(
            (self.history.iter())
                .filter(move |(s, _)| *s > since)
                .map(|(_, f)| f.clone()),
        )
    }

    /// A subscription that starts with `first` at the current version, and
    /// every change after it.
    pub fn subscribe(&self, first: First) -> Subscribed {
        Subscribed {
            first,
            version: self.version,
            seq: self.seq,
            changes: Some(self.tx.subscribe()),
        }
    }
}
