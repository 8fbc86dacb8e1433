//! `/api/v1/events`: the event feed for applications (docs/events.md): every change in commit
//! order, read after a cursor, optionally waiting for the next one.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use muster_core::events::feed::{EventPage, EventQuery, FeedError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ok, AdminAuth, ApiError, ApiErrors, ApiQuery, ApiResult};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct FeedParams {
    /// Events after this `seq` (the previous page's `nextAfter`, or a list's `asOf`); from the
    /// oldest kept event when left out.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Events per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    /// Comma-separated types or families, such as `user.created,group.`; every type when left
    /// out.
    types: Option<String>,
    /// Seconds to wait for an event when there is none yet, up to 30 (default 0).
    #[param(minimum = 0, maximum = 30)]
    wait: Option<u64>,
}

/// Events after a cursor, in commit order.
///
/// A reader that has seen `seq` N never later finds an event with a smaller `seq`: follow the
/// feed by passing `nextAfter` back as `after`. 410 when events after `after` are no longer
/// kept: read the directory again and follow from its `asOf`.
#[utoipa::path(get, path = "/events", operation_id = "listEvents", tag = "events",
    params(FeedParams),
    responses((status = 200, body = EventPage),
              (status = 410, description = "Events after `after` are no longer kept", body = super::body::ErrorBody),
              ApiErrors))]
pub(super) async fn list(
    State(state): State<AppState>,
    auth: AdminAuth,
    ApiQuery(p): ApiQuery<FeedParams>,
) -> ApiResult {
    let q = EventQuery {
        after: p.after,
        limit: p.limit.unwrap_or(100),
        types: p
            .types
            .as_deref()
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        wait: Duration::from_secs(p.wait.unwrap_or(0)),
    };
    let read = match state.stopping.clone() {
        Some(mut stop) if !q.wait.is_zero() => {
            tokio::select! {
                page = state.muster.read_events(auth.env, &q) => page,
                // The server is stopping: the wait ends now, as if its time were up, so a
                // restart is not held up by applications' long polls.
                _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
                    let now = EventQuery { wait: Duration::ZERO, ..q.clone() };
                    state.muster.read_events(auth.env, &now).await
                }
            }
        }
        _ => state.muster.read_events(auth.env, &q).await,
    };
    match read {
        Ok(page) => ok(StatusCode::OK, page),
        Err(e) => Err(match *e {
            gone @ FeedError::Gone { .. } => {
                ApiError::new(StatusCode::GONE, "gone", gone.to_string())
            }
            FeedError::Core(c) => c.into(),
        }),
    }
}

/// The feed's head.
#[derive(Serialize, ToSchema)]
pub(super) struct Head {
    /// The newest `seq`: an application that starts now follows the feed after it.
    seq: i64,
}

/// The newest `seq`.
#[utoipa::path(get, path = "/events/head", operation_id = "getEventHead", tag = "events",
    responses((status = 200, body = Head), ApiErrors))]
pub(super) async fn head(State(state): State<AppState>, _auth: AdminAuth) -> ApiResult {
    let seq = state.muster.event_head().await?;
    ok(StatusCode::OK, Head { seq })
}
