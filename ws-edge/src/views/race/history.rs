//! A race's deltas older than the edge holds ([`super::HISTORY`] of them),
//! read back from the standings changelog, as far as its retention goes.
//!
//! A delta shows whole rows (a runner passed gets its row again with the
//! new rank), and the changelog carries only what changed, so an old delta
//! cannot be read on its own: the edge folds the race's changes again from
//! the start of its current run (the change with seq 1, whose place it
//! noted while following the changelog) into a scratch view, and encodes
//! the deltas after the client's `since` exactly as they were sent live.
//! The read stops at the seq the edge still holds deltas from.
//!
//! It is bounded: at most [`SCAN_MAX`] records and [`READ_FOR`] of reading,
//! and the deltas at most the bytes the caller allows (a client that missed
//! more than that is better off with a snapshot, and gets one). A run that
//! jumped in between (a restarted pipeline), or a start beyond retention,
//! gives no deltas either.

use std::collections::HashMap;
use std::time::Duration;

use ingest::KafkaConfig;
use ingest::reader::Scanned;
use schemas::StandingsChange;

use super::RaceView;
use crate::protocol::Frame;

/// Most records one read goes through.
pub const SCAN_MAX: usize = 1_000_000;
/// Longest one read takes (the connection waiting for it reads nothing
/// meanwhile, and must answer the edge's next ping).
pub const READ_FOR: Duration = Duration::from_secs(10);

/// What a client missed that the edge no longer holds.
pub struct Gap {
    /// The race.
    pub race: String,
    /// Where its run starts in the changelog: (partition, offset).
    pub start: (i32, i64),
    /// Its participants' display names.
    pub names: HashMap<String, String>,
    /// The client's seq.
    pub since: u64,
    /// The seq from which the edge holds the deltas: the read gives those
    /// after `since` up to this one.
    pub until: u64,
    /// Most bytes of deltas worth sending.
    pub max_bytes: usize,
}

/// The delta frames of `gap.race` after `gap.since`, up to `gap.until`, in
/// order, from the changelog `topic`; `Ok(None)` when they cannot be given
/// (the run jumped between, the start is beyond retention, or they come to
/// more than `gap.max_bytes`). Blocking: run it off the runtime's threads.
pub fn read(kafka: &KafkaConfig, topic: &str, gap: &Gap) -> Result<Option<Vec<Frame>>, String> {
    let group = format!("pace-edge-race-history-{}", std::process::id());
    let mut scratch = RaceView::new();
    scratch.names.clone_from(&gap.names);
    let mut frames = Vec::new();
    let mut bytes = 0usize;
    // Whether the deltas came whole (`Some(false)`: they cannot be given).
    let mut whole = None;
    let place = (topic, gap.start.0, gap.start.1);
    let scanned = ingest::reader::scan(kafka, &group, place, (SCAN_MAX, READ_FOR), |raw| {
        let Ok(change) = serde_json::from_slice::<StandingsChange>(&raw.payload) else {
            return false;
        };
        if change.race != gap.race {
            return false;
        }
        if scratch.feed.seq() == 0 && change.seq != 1 {
            whole = Some(false); // not the run's start: it is beyond retention
            return true;
        }
        let contiguous = scratch.fold(&change);
        if change.seq <= gap.since {
            return false;
        }
        if !contiguous {
            whole = Some(false); // the run jumped: no deltas across it
            return true;
        }
        let frame = scratch.race_frame(&change, true);
        bytes += frame.len();
        if bytes > gap.max_bytes {
            whole = Some(false);
            return true;
        }
        frames.push(frame);
        let done = change.seq >= gap.until;
        if done {
            whole = Some(true);
        }
        done
    })?;
    // Past the most records, or the changelog ended before `until` (the
    // edge holds what was read): no deltas.
    Ok((scanned == Scanned::Done && whole == Some(true)).then_some(frames))
}
