//! The race view's windows (protocol v2, `window.rs`): subscribing to a
//! window of a race, its snapshot, and what each change sends to the
//! windows it touched. A child of `mod.rs`, which applies the changes and
//! calls [`RaceView::send_windows`].

use std::collections::{BTreeSet, HashSet};

use schemas::{Split, SplitKey, StandingsChange};

use super::frames::{RaceDelta, RaceSnapshot};
use super::{RaceView, Races, unknown_race};
use crate::protocol::{Frame, Refused};
use crate::views::live::{Change, First, Snapshot, Subscribed};
use crate::views::race::window::{Span, Window};

impl RaceView {
    /// The splits of `participants`, by split then position.
    fn splits_of<'a>(&'a self, participants: &[String]) -> Vec<&'a Split> {
        let mut splits: Vec<&Split> = participants
            .iter()
            .flat_map(|p| {
                let key = |split| SplitKey {
                    participant: p.clone(),
                    split,
                };
                self.splits.range(key(0)..=key(u32::MAX)).map(|(_, s)| s)
            })
            .collect();
        splits.sort_by_key(|s| (s.split, s.position));
        splits
    }

    /// A window's snapshot: the rows inside it and their splits.
    fn window_snapshot(&self, race: &str, span: Span, members: &[String]) -> Frame {
        crate::protocol::snapshot(&RaceSnapshot::Race {
            id: race,
            seq: self.feed.seq(),
            window: Some(span),
            rows: members
                .iter()
                .filter_map(|p| self.rows.get(p))
                .map(|r| self.shown(r))
                .collect(),
            splits: self.splits_of(members),
            leader: self.leader.as_ref(),
        })
    }

    /// Sends `moved` to every window it touched (or, after a seq jump, a
    /// snapshot to every window), and drops windows nobody watches.
    pub(super) fn send_windows(&mut self, moved: &Moved, stamp: &dyn Fn(Frame) -> Change) {
        let mut windows = std::mem::take(&mut self.windows);
        windows.0.retain(|_, w| w.tx.receiver_count() > 0);
        if windows.0.is_empty() {
            self.order.unindex();
        }
        let race = &moved.change.race;
        for (window, w) in &mut windows.0 {
            let span = self.order.span(window);
            let hit =
                span != w.span || span.holds_any(moved.ranks) || moved.change.leader.is_some();
            if moved.contiguous && !hit {
                continue;
            }
            let members = self.order.inside(span);
            let frame = if moved.contiguous {
                self.window_delta(race, span, &w.members, &members, moved)
            } else {
                self.window_snapshot(race, span, &members)
            };
            let _ = w.tx.send(stamp(frame));
            (w.span, w.members) = (span, members);
        }
        self.windows = windows;
    }

    /// What a window that showed `old` and now shows `new` is sent: the
    /// rows that entered or changed, the participants that left (their
    /// splits go with them), the splits of those inside.
    fn window_delta(
        &self,
        race: &str,
        span: Span,
        old: &[String],
        new: &[String],
        moved: &Moved,
    ) -> Frame {
        let was: HashSet<&str> = old.iter().map(String::as_str).collect();
        let is: HashSet<&str> = new.iter().map(String::as_str).collect();
        let removes: Vec<String> = old
            .iter()
            .filter(|p| !is.contains(p.as_str()))
            .cloned()
            .collect();
        let entered: Vec<String> = new
            .iter()
            .filter(|p| !was.contains(p.as_str()))
            .cloned()
            .collect();
        let upserts = new
            .iter()
            .filter(|p| !was.contains(p.as_str()) || moved.touched.contains(p.as_str()))
            .filter_map(|p| self.rows.get(p))
            .map(|r| self.shown(r))
            .collect();
        let stayed = |p: &str| was.contains(p) && is.contains(p);
        let mut splits: Vec<&Split> = (moved.change.splits.iter())
            .filter(|s| stayed(&s.participant))
            .collect();
        splits.extend(self.splits_of(&entered));
        let split_removes = (moved.change.split_removes.iter())
            .filter(|k| stayed(&k.participant))
            .collect();
        crate::protocol::delta(&RaceDelta::Race {
            id: race,
            seq: self.feed.seq(),
            window: Some(span),
            upserts,
            removes: &removes,
            splits,
            split_removes,
            leader: moved.change.leader.as_ref(),
        })
    }
}

/// One standings change as the windows see it.
pub(super) struct Moved<'a> {
    pub(super) change: &'a StandingsChange,
    /// Everyone it touched.
    pub(super) touched: &'a BTreeSet<&'a str>,
    /// The ranks they held before or after it, sorted.
    pub(super) ranks: &'a [u32],
    /// Whether it follows the held seq (if not, windows get snapshots).
    pub(super) contiguous: bool,
}

impl Races {
    /// Subscribes to a window of a defined race: the rows inside it, then
    /// a frame whenever a change touches a rank inside it or the leader.
    pub fn subscribe_window(&self, race: &str, window: &Window) -> Result<Subscribed, Refused> {
        let mut races = self.races.write().expect("views lock");
        let Some(v) = races.get_mut(race).filter(|v| v.definition.is_some()) else {
            return Err(unknown_race(race));
        };
        v.order.index();
        let order = &v.order;
        let w = v.windows.open(window, || {
            let span = order.span(window);
            (span, order.inside(span))
        })?;
        let changes = w.tx.subscribe();
        let (span, members) = (w.span, w.members.clone());
        Ok(Subscribed {
            first: First::Snapshot(v.window_snapshot(race, span, &members)),
            version: v.feed.version(),
            seq: v.feed.seq(),
            changes: Some(changes),
        })
    }

    /// A fresh snapshot of a window (for a subscriber that fell behind).
    pub fn window_snapshot(&self, race: &str, window: &Window) -> Option<Snapshot> {
        let races = self.races.read().expect("views lock");
        let v = races.get(race)?;
        let span = v.order.span(window);
        let frame = v.window_snapshot(race, span, &v.order.inside(span));
        Some(v.feed.fresh(frame))
    }
}
