//! A chip-timed runner's fold: reads of the mats (net or gun time, waves,
//! missed mats, cutoffs), and GPS fixes along the route between them.

use super::{Fold, KindState, MISSED, START_CLEAR_M};
use crate::jobs::standings::geo::{Mats, Race, Xy};

impl Fold {
    /// A GPS fix of a chip-timed runner, on a race with a route: matched
    /// along it, it moves where the runner is known to be (never back, and
    /// never to the finish: a mat is authoritative at its point, and only
    /// mats make splits or rank). A fix clear of the start after their
    /// wave's start has them racing, read by the start mat or not.
    pub(super) fn fix_between_mats(&mut self, race: &Race, mats: &Mats, t: i64, p: Xy) {
        let (
            Some(course),
            KindState::Mats {
                wave_start,
                live_m,
                live_time,
                ..
            },
        ) = (&mats.course, &mut self.kind)
        else {
            return; // no route: the mats alone say where the runner is
        };
        let (lo, hi) = course.window(*live_m / mats.scale, t - *live_time, race.max_speed_mps);
        let Some((s, _off)) = course.match_point(p, lo, hi) else {
            return;
        };
        *live_time = (*live_time).max(t);
        let finish = mats.distance_m[mats.distance_m.len() - 1];
        *live_m = (*live_m).max((s * mats.scale).min(finish));
        if *live_m >= START_CLEAR_M && t >= *wave_start {
            self.started.get_or_insert(*wave_start);
        }
    }

    /// A read of mat `i` at `t`. The start mat's first read is the
    /// participant's own start; a later mat's read counts if it is further
    /// than the furthest read so far and within the mat's cutoff, and the
    /// mats passed on the way without a read are [`MISSED`]. A split's time
    /// is the gun plus the runner's time there (net or gun, by the race's
    /// clock), so that the order of a split's times is its order of places.
    pub(super) fn mat(
        &mut self,
        race: &Race,
        mats: &Mats,
        i: usize,
        t: i64,
        splits: &mut Vec<i64>,
    ) {
        if t < race.start_ms || self.finished.is_some() {
            return;
        }
        let KindState::Mats {
            own_start,
            wave_start,
            live_m,
            live_time,
        } = &mut self.kind
        else {
            return;
        };
        if i == 0 {
            if own_start.is_none() && self.splits == 0 {
                *own_start = Some(t);
                self.started = Some(t);
            }
            return;
        }
        if i <= self.splits {
            return; // a mat read again, or one passed already
        }
        let from = if mats.net {
            own_start.unwrap_or(*wave_start)
        } else {
            *wave_start
        };
        let elapsed = t - from;
        if elapsed < 0 || mats.cutoff_ms[i].is_some_and(|c| elapsed > c) {
            self.rejected += 1;
            return;
        }
        self.started.get_or_insert(from);
        splits.truncate(self.splits);
        splits.resize(i - 1, MISSED);
        splits.push(race.start_ms + elapsed);
        self.splits = splits.len();
        // The runner is at the mat now: GPS fixes are matched on from here.
        *live_m = live_m.max(mats.distance_m[i]);
        *live_time = (*live_time).max(t);
        if i == mats.ids.len() - 1 {
            self.finished = Some(race.start_ms + elapsed);
        }
    }
}
