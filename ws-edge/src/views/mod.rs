//! The views this edge serves: the edge's one registry of live views
//! (and of the accounts, which nobody watches but every edge keeps)
//! ([`Views::default`]). A view is a module implementing [`ViewModule`]:
//! its cache and frames, the subscriptions it answers, the changelogs it is
//! rebuilt from and its routes, keeping beside its own state one
//! [`feed::Feed`] per id (version, seq, subscribers, snapshot, held deltas).
//! A new view is its module and one line in
//! [`Views::default`]; the changelog follower (`follow.rs`), the routes
//! (`server.rs`) and the connections (`socket.rs`) loop over the registry.

pub mod accounts;
pub mod feed;
pub mod live;
pub mod race;
pub mod rooms;
pub mod tasks;
pub mod tournaments;

use std::any::Any;
use std::sync::Arc;

use schemas::Topics;

use crate::protocol::ViewKind;
use crate::views::live::{Changelog, Context, LiveView, Routes, ViewModule};

/// One registered view, as the registry loops over it and as its own type.
struct Registered {
    view: Arc<dyn ViewModule>,
    any: Arc<dyn Any + Send + Sync>,
}

fn register<T: ViewModule + Default>() -> Registered {
    let view = Arc::new(T::default());
    Registered {
        view: view.clone(),
        any: view,
    }
}

/// The views this edge serves, each rebuilt from its changelogs.
pub struct Views {
    views: Vec<Registered>,
}

impl Default for Views {
    /// Every live view, each empty: the registry.
    fn default() -> Self {
        Self {
            views: vec![
                register::<race::Races>(),
                register::<rooms::Rooms>(),
                register::<tasks::Tasks>(),
                register::<tournaments::Tournaments>(),
                register::<accounts::Accounts>(),
            ],
        }
    }
}

impl Views {
    /// The view of type `T`.
    ///
    /// # Panics
    /// If `T` is not registered (a bug: the registry is fixed).
    pub fn get<T: ViewModule>(&self) -> Arc<T> {
        self.views
            .iter()
            .find_map(|r| r.any.clone().downcast::<T>().ok())
            .expect("every view is registered")
    }

    /// The view that answers subscriptions of `kind`.
    pub fn live(&self, kind: ViewKind) -> Option<Arc<dyn LiveView>> {
        self.views
            .iter()
            .find(|r| r.view.kinds().contains(&kind))
            .map(|r| r.view.clone() as Arc<dyn LiveView>)
    }

    /// Every view's changelogs, in `topics`.
    pub fn changelogs(&self, topics: &Topics) -> Vec<Changelog> {
        (self.views.iter())
            .flat_map(|r| r.view.clone().changelogs(topics))
            .collect()
    }

    /// Every view's routes.
    pub fn routes(&self, context: &Context) -> Vec<Routes> {
        (self.views.iter())
            .map(|r| r.view.clone().routes(context))
            .collect()
    }
}
