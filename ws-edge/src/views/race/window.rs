//! Viewports on a race (protocol v2): what a window of a race's ranking is
//! (`top N`, ranks `from..=to`, or participant `p ± k`), the race's order
//! (rank → participant) the edge keeps to answer it, and the state of each
//! window someone watches: the span and participants it showed last. The
//! race view (`mod.rs`) sends a change to a window only when it touched a
//! rank inside it or the leader moved, as one frame shared by all of the
//! window's subscribers, so a spectator of a 100,000-runner race receives
//! the rows of its window and not the race.

use std::collections::{BTreeSet, HashMap};

use tokio::sync::broadcast;

use crate::protocol::refusal::{ErrorCode, Refused};
pub use crate::protocol::viewport::{
    DEFAULT_AROUND, MAX_AROUND, MAX_WINDOW_ROWS, Span, Window, WindowSpec,
};
use crate::views::live::Change;

/// Distinct windows one race serves at once: each costs a little on every
/// change that touches it, so clients share common ones (the top 20).
pub const MAX_WINDOWS: usize = 1024;

/// A race's ranking both ways: each participant's rank, and the
/// participants in rank order. The changelog sends rank moves one
/// participant at a time, so two participants may claim one rank for a
/// while (within a change, or while an edge applies a restarted
/// pipeline's changes over what it held): both are kept, in participant
/// order, and nobody is lost; a consistent changelog leaves ranks `1..=n`
/// held once each. The ordered index is kept only while a window of the
/// race is watched ([`Order::index`]): a race nobody watches through a
/// window pays one map update per rank move, as before windows.
#[derive(Default)]
pub struct Order {
    ranks: HashMap<String, u32>,
    by_rank: Option<BTreeSet<(u32, String)>>,
}

impl Order {
    /// A participant's rank.
    pub fn rank(&self, participant: &str) -> Option<u32> {
        self.ranks.get(participant).copied()
    }

    /// Gives `participant` `rank`.
    pub fn set(&mut self, participant: &str, rank: u32) {
        match self.ranks.get_mut(participant) {
            Some(r) if *r == rank => {}
            Some(r) => {
                let old = std::mem::replace(r, rank);
                if let Some(index) = &mut self.by_rank {
                    let name = (index.take(&(old, participant.to_owned())))
                        .map_or_else(|| participant.to_owned(), |(_, name)| name);
                    index.insert((rank, name));
                }
            }
            None => {
                self.ranks.insert(participant.to_owned(), rank);
                if let Some(index) = &mut self.by_rank {
                    index.insert((rank, participant.to_owned()));
                }
            }
        }
    }

    /// Takes `participant` out of the ranking.
    pub fn remove(&mut self, participant: &str) {
        if let Some(old) = self.ranks.remove(participant)
            && let Some(index) = &mut self.by_rank
        {
            index.remove(&(old, participant.to_owned()));
        }
    }

    /// Empties it.
    pub fn clear(&mut self) {
        self.ranks.clear();
        if let Some(index) = &mut self.by_rank {
            index.clear();
        }
    }

    /// Keeps the ordered index from now on (built once, O(n log n)).
    pub fn index(&mut self) {
        if self.by_rank.is_none() {
            let ranks = self.ranks.iter().map(|(p, r)| (*r, p.clone()));
            self.by_rank = Some(ranks.collect());
        }
    }

    /// Stops keeping it (no window is watched any more).
    pub fn unindex(&mut self) {
        self.by_rank = None;
    }

    /// Participants in rank order (sorted now, when no index is kept).
    pub fn ranked(&self) -> Vec<&String> {
        match &self.by_rank {
            Some(index) => index.iter().map(|(_, p)| p).collect(),
            None => {
                let mut all: Vec<(u32, &String)> =
                    self.ranks.iter().map(|(p, r)| (*r, p)).collect();
                all.sort_unstable();
                all.into_iter().map(|(_, p)| p).collect()
            }
        }
    }

    /// Where `window` is now.
    pub fn span(&self, window: &Window) -> Span {
        let total = u32::try_from(self.ranks.len()).unwrap_or(u32::MAX);
        let (from, to) = match window {
            Window::Ranks { from, to } => (*from, (*to).min(total)),
            Window::Around { participant, k } => match self.rank(participant) {
                Some(r) => (r.saturating_sub(*k).max(1), r.saturating_add(*k).min(total)),
                None => (1, 0),
            },
        };
        Span { from, to, total }
    }

    /// The participants inside `span`, in rank order (O(n log n) when no
    /// index is kept).
    pub fn inside(&self, span: Span) -> Vec<String> {
        if span.to < span.from {
            return Vec::new();
        }
        let Some(index) = &self.by_rank else {
            let mut inside: Vec<(u32, &String)> = (self.ranks.iter())
                .filter(|(_, r)| (span.from..=span.to).contains(*r))
                .map(|(p, r)| (*r, p))
                .collect();
            inside.sort_unstable();
            return inside.into_iter().map(|(_, p)| p.clone()).collect();
        };
        index
            .range((span.from, String::new())..)
            .take_while(|(rank, _)| *rank <= span.to)
            .map(|(_, p)| p.clone())
            .collect()
    }
}

/// One window somebody watches: its subscribers' channel and what it
/// showed them last.
pub struct Watched {
    /// Its frames.
    pub tx: broadcast::Sender<Change>,
    /// Its span as of the last frame.
    pub span: Span,
    /// Who was inside, in rank order.
    pub members: Vec<String>,
}

/// The windows of one race that someone watches.
#[derive(Default)]
pub struct Windows(pub HashMap<Window, Watched>);

impl Windows {
    /// The window's state, opened at `span` with `members` if nobody
    /// watched it; refused when the race already serves [`MAX_WINDOWS`].
    pub fn open(
        &mut self,
        window: &Window,
        opened: impl FnOnce() -> (Span, Vec<String>),
    ) -> Result<&Watched, Refused> {
        if !self.0.contains_key(window) {
            if self.0.len() >= MAX_WINDOWS {
                self.0.retain(|_, w| w.tx.receiver_count() > 0);
            }
            if self.0.len() >= MAX_WINDOWS {
                return Err(Refused(
                    ErrorCode::TooManySubscriptions,
                    format!(
                        "this race serves {MAX_WINDOWS} distinct windows already; pick a common one (e.g. {{\"top\":20}})"
                    ),
                ));
            }
            let (span, members) = opened();
            let tx = broadcast::channel(crate::views::live::FRAME_BUFFER).0;
            self.0.insert(window.clone(), Watched { tx, span, members });
        }
        Ok(&self.0[window])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<Window, Refused> {
        serde_json::from_str::<WindowSpec>(json).unwrap().window()
    }

    #[test]
    fn windows_are_top_ranges_or_around_and_bounded() {
        assert_eq!(
            spec(r#"{"top":20}"#).unwrap(),
            Window::Ranks { from: 1, to: 20 }
        );
        assert_eq!(
            spec(r#"{"from":5,"to":9}"#).unwrap(),
            Window::Ranks { from: 5, to: 9 }
        );
        assert_eq!(
            spec(r#"{"around":"p"}"#).unwrap(),
            Window::Around {
                participant: "p".into(),
                k: DEFAULT_AROUND
            }
        );
        for (json, code) in [
            (r#"{"top":20,"from":1}"#, ErrorCode::BadFrame),
            (r#"{"from":1}"#, ErrorCode::BadFrame),
            (r#"{}"#, ErrorCode::BadFrame),
            (r#"{"top":0}"#, ErrorCode::Invalid),
            (r#"{"from":9,"to":5}"#, ErrorCode::Invalid),
            (r#"{"top":501}"#, ErrorCode::Invalid),
            (r#"{"around":"p","k":250}"#, ErrorCode::Invalid),
        ] {
            assert_eq!(spec(json).unwrap_err().0, code, "{json}");
        }
        assert_eq!(
            spec(r#"{"top":500}"#).unwrap(),
            Window::Ranks { from: 1, to: 500 }
        );
        assert!(serde_json::from_str::<WindowSpec>(r#"{"size":3}"#).is_err());
    }

    #[test]
    fn the_order_follows_rank_moves_in_any_order_within_a_change() {
        let mut o = Order::default();
        o.index();
        for (p, r) in [("a", 1), ("b", 2), ("c", 3)] {
            o.set(p, r);
        }
        // c passes both: its move comes before or after theirs.
        o.set("a", 2);
        o.set("c", 1);
        o.set("b", 3);
        assert_eq!(o.ranked(), ["c", "a", "b"]);
        o.set("b", 1);
        o.set("c", 2);
        o.set("a", 3);
        assert_eq!(o.ranked(), ["b", "c", "a"]);
        // b retires, the others move up (their moves before the removal).
        o.set("c", 1);
        o.set("a", 2);
        o.remove("b");
        assert_eq!(o.ranked(), ["c", "a"]);
        // A claim on a held rank that moves on leaves its holder in place
        // (an edge applying a restarted pipeline's changes over its own).
        o.set("d", 3);
        o.set("x", 3);
        o.set("x", 4);
        o.set("d", 3);
        assert_eq!(o.ranked(), ["c", "a", "d", "x"]);
        let mut plain = Order::default();
        for (p, r) in [("c", 1), ("a", 2), ("d", 3), ("x", 4)] {
            plain.set(p, r);
        }
        assert_eq!(plain.ranked(), o.ranked(), "the index and a sort agree");
        let span = Span {
            from: 2,
            to: 3,
            total: 4,
        };
        assert_eq!(plain.inside(span), o.inside(span));
        assert_eq!(o.inside(span), ["a", "d"]);
        o.remove("x");
        o.remove("d");
        assert_eq!(
            o.span(&Window::Ranks { from: 1, to: 20 }),
            Span {
                from: 1,
                to: 2,
                total: 2
            }
        );
        assert_eq!(
            o.span(&Window::Around {
                participant: "a".into(),
                k: 5
            }),
            Span {
                from: 1,
                to: 2,
                total: 2
            }
        );
        let nobody = o.span(&Window::Around {
            participant: "x".into(),
            k: 5,
        });
        assert!(o.inside(nobody).is_empty());
        assert!(
            Span {
                from: 3,
                to: 5,
                total: 9
            }
            .holds_any(&[1, 5, 8])
        );
        assert!(
            !Span {
                from: 3,
                to: 4,
                total: 9
            }
            .holds_any(&[1, 2, 5, 8])
        );
    }
}
