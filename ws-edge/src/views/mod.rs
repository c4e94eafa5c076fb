//! The views this edge serves, and which [`LiveView`] serves each
//! [`ViewKind`]: the edge's one registry of live views. A new view is a
//! module implementing [`LiveView`] (its cache, frames and routes), a field
//! here, an arm of [`Views::live`], its changelog in `follow.rs` and its
//! routes in `server.rs`.

pub mod live;
pub mod race;
pub mod rooms;
pub mod tasks;
pub mod tournaments;

use std::sync::Arc;

use crate::protocol::ViewKind;
use crate::views::live::LiveView;
use crate::views::race::Races;
use crate::views::rooms::Rooms;
use crate::views::tasks::Tasks;
use crate::views::tournaments::Tournaments;

/// The views this edge serves, each rebuilt from its changelog.
#[derive(Default)]
pub struct Views {
    /// Standings and splits.
    pub races: Arc<Races>,
    /// Members and messages.
    pub rooms: Arc<Rooms>,
    /// Calc results.
    pub tasks: Arc<Tasks>,
    /// Tournament draws.
    pub tournaments: Arc<Tournaments>,
}

impl Views {
    /// The view that serves subscriptions of `kind`.
    pub fn live(&self, kind: ViewKind) -> Arc<dyn LiveView> {
        match kind {
            ViewKind::Race | ViewKind::Participant => self.races.clone(),
            ViewKind::Room => self.rooms.clone(),
            ViewKind::Task => self.tasks.clone(),
            ViewKind::Tournament => self.tournaments.clone(),
        }
    }
}
