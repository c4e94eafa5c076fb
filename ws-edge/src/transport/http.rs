//! What every HTTP route of a view shares: JSON errors, who a request is,
//! and the per-user budget a request that writes to Kafka takes from.
//! View modules build their routes from these; none of it knows a view.

use std::sync::Arc;

use warp::Reply;
use warp::http::StatusCode;

use crate::input::{EdgeInput, SendError};
use crate::transport::gossip::Budgets;

/// A JSON error: `{"error": message}` with `status`.
pub fn json_error(status: StatusCode, message: String) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "error": message })),
        status,
    )
    .into_response()
}

/// `body` as JSON with `status`.
pub fn json_with(status: StatusCode, body: &impl serde::Serialize) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// A refusal of a request: its status and what a person reads.
#[derive(Debug)]
pub struct HttpError(pub StatusCode, pub String);

impl HttpError {
    /// As the JSON error it is answered with.
    pub fn reply(self) -> warp::reply::Response {
        json_error(self.0, self.1)
    }
}

/// A request over a budget (answered 429).
#[derive(Debug)]
pub struct Limited(pub &'static str);

impl warp::reject::Reject for Limited {}

/// 400 for a record that breaks a rule, 503 when the broker did not take it.
pub fn send_error(e: &SendError) -> warp::reply::Response {
    match e {
        SendError::Invalid(m) => json_error(StatusCode::BAD_REQUEST, m.clone()),
        SendError::Unavailable(m) => json_error(StatusCode::SERVICE_UNAVAILABLE, m.clone()),
    }
}

/// Who a request is and what it may write: the way into Kafka and the
/// budgets per token subject.
#[derive(Clone)]
pub struct Callers {
    /// Tokens and the input topics.
    pub input: Arc<EdgeInput>,
    /// Posts, points and refusals per user, over all edges.
    pub budgets: Arc<Budgets>,
}

impl Callers {
    /// The user `auth` (an `Authorization` header) names, if any; a bad
    /// token is answered 401.
    pub fn who(&self, auth: Option<&str>) -> Result<Option<String>, HttpError> {
        match auth {
            None => Ok(None),
            Some(h) => self.user(Some(h)).map(Some),
        }
    }

    /// The user `auth` names; none or a bad token is answered 401.
    pub fn user(&self, auth: Option<&str>) -> Result<String, HttpError> {
        self.input
            .user(auth)
            .map_err(|e| HttpError(StatusCode::UNAUTHORIZED, e.to_string()))
    }

    /// Takes one of `user`'s events (posts, creates, invites, tournament
    /// actions); past the budget, 429.
    pub fn spend(&self, user: &str) -> Result<(), HttpError> {
        if self.budgets.posts.take(&user.to_owned()) {
            return Ok(());
        }
        observability::metrics()
            .edge_rate_limited
            .with_label_values(&["post"])
            .inc();
        Err(HttpError(
            StatusCode::TOO_MANY_REQUESTS,
            "too many posts, creates, invites or tournament actions; slow down".to_owned(),
        ))
    }
}
