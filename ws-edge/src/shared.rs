//! What every connection of an edge shares: the views, the way into Kafka,
//! the limits, the shutdown signal and the budgets kept per user.

use std::sync::Arc;

use tokio::sync::watch;

use crate::input::EdgeInput;
use crate::transport::gossip::Budgets;
use crate::transport::limits::EdgeLimits;
use crate::views::Views;

/// What every connection shares.
pub(crate) struct Shared {
    pub views: Arc<Views>,
    pub chat: Arc<EdgeInput>,
    pub limits: EdgeLimits,
    pub shutdown: watch::Receiver<bool>,
    /// Posts, points and refusals per token subject, over all connections
    /// (and all edges, when they tell each other).
    pub budgets: Arc<Budgets>,
}

impl Shared {
    pub fn new(
        views: Arc<Views>,
        chat: Arc<EdgeInput>,
        limits: EdgeLimits,
        shutdown: watch::Receiver<bool>,
        budgets: Arc<Budgets>,
    ) -> Self {
        Self {
            views,
            chat,
            limits,
            shutdown,
            budgets,
        }
    }

    /// Who a request is and what it may write, for the HTTP routes.
    pub fn callers(&self) -> crate::transport::http::Callers {
        crate::transport::http::Callers {
            input: self.chat.clone(),
            budgets: self.budgets.clone(),
        }
    }
}

/// Resolves once the edge is shutting down.
pub(crate) async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
