//! `/api/v1/sync-log`: every change, filtered by time range (`since` inclusive, `until`
//! exclusive), provider, user or group, action (`user.` for a family) and result; as JSON pages
//! or a streamed CSV export.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use muster_core::ids::{EnvironmentId, GroupId, ProviderId, UserId};
use muster_core::model::Outcome;
use muster_core::store::LogQuery;
use muster_core::synclog::query::{csv_header, csv_line, LogCursor, LogEntryView};
use muster_core::Timestamp;
use serde::Deserialize;
use utoipa::IntoParams;

use super::body::LogPage;
use super::extract::{ok, parse_id, AdminAuth, ApiError, ApiErrors, ApiQuery, ApiResult};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct LogFilter {
    /// From this time on (RFC 3339, inclusive).
    since: Option<String>,
    /// Before this time (RFC 3339, exclusive).
    until: Option<String>,
    /// Of this provider.
    provider: Option<String>,
    /// About this user.
    user: Option<String>,
    /// About this group.
    group: Option<String>,
    /// An action such as `user.created`, or a family such as `user.`.
    action: Option<String>,
    /// `success` or `error`.
    result: Option<String>,
    /// The `nextCursor` of the previous page (not used by the CSV export).
    cursor: Option<String>,
    /// Entries per page, 1 to 1000 (default 100; not used by the CSV export).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
}

fn log_query(f: &LogFilter) -> Result<LogQuery, ApiError> {
    let time = |name: &str, v: &Option<String>| -> Result<Option<Timestamp>, ApiError> {
        v.as_deref()
            .map(|t| {
                Timestamp::parse_rfc3339(t).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{name} must be an RFC 3339 time such as 2027-01-01T00:00:00Z"
                    ))
                })
            })
            .transpose()
    };
    let subject = match (&f.user, &f.group) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give user or group, not both")),
        (Some(u), None) => Some(parse_id::<UserId>(u, "user")?.to_string()),
        (None, Some(g)) => Some(parse_id::<GroupId>(g, "group")?.to_string()),
        (None, None) => None,
    };
    let q = LogQuery {
        since: time("since", &f.since)?,
        until: time("until", &f.until)?,
        provider: f
            .provider
            .as_deref()
            .map(|p| parse_id::<ProviderId>(p, "provider"))
            .transpose()?,
        subject,
        action: f.action.clone().filter(|a| !a.is_empty()),
        outcome: match f.result.as_deref() {
            None => None,
            Some("success") => Some(Outcome::Success),
            Some("error") => Some(Outcome::Error),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "result must be success or error, not '{other}'"
                )))
            }
        },
    };
    match q.range_problem() {
        Some(p) => Err(ApiError::bad_request(p)),
        None => Ok(q),
    }
}

/// Sync log entries, newest first, in pages linked by `nextCursor`.
#[utoipa::path(get, operation_id = "listSyncLog", path = "/sync-log", tag = "sync-log", params(LogFilter),
    responses((status = 200, body = LogPage), ApiErrors))]
pub(super) async fn list(
    State(state): State<AppState>,
    auth: AdminAuth,
    ApiQuery(f): ApiQuery<LogFilter>,
) -> ApiResult {
    let q = log_query(&f)?;
    let before = f
        .cursor
        .as_deref()
        .map(|c| {
            LogCursor::decode(c).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid cursor: pass back the nextCursor of the previous page",
                )
            })
        })
        .transpose()?;
    let (rows, next) = state
        .muster
        .query_sync_log(auth.env, &q, before, f.limit.unwrap_or(100))
        .await?;
    let providers = state.muster.provider_names(auth.env).await?;
    ok(
        StatusCode::OK,
        LogPage {
            entries: rows
                .iter()
                .map(|(id, e)| LogEntryView::new(*id, e, &providers))
                .collect(),
            next_cursor: next.map(|c| c.encode()),
        },
    )
}

/// Sync log entries as CSV (the same filters), streamed.
///
/// Columns: id, time, provider_id, provider, actor_kind, actor, action, subject_kind,
/// subject_id, subject_name, result, message, details. Read and written in batches, so memory
/// does not grow with the number of rows.
#[utoipa::path(get, operation_id = "exportSyncLog", path = "/sync-log/export.csv", tag = "sync-log", params(LogFilter),
    responses((status = 200, description = "The entries as CSV", content_type = "text/csv", body = String), ApiErrors))]
pub(super) async fn export(
    State(state): State<AppState>,
    auth: AdminAuth,
    ApiQuery(f): ApiQuery<LogFilter>,
) -> ApiResult {
    let q = log_query(&f)?;
    let providers = state.muster.provider_names(auth.env).await?;
    Ok(csv_export(&state, auth.env, q, providers))
}

/// A streamed CSV export of the sync log entries `q` selects: read and written a thousand at a
/// time, so memory does not grow with the export.
pub(crate) fn csv_export(
    state: &AppState,
    env: EnvironmentId,
    q: LogQuery,
    providers: HashMap<ProviderId, String>,
) -> Response {
    struct Cursor {
        before: Option<LogCursor>,
        header: bool,
        done: bool,
    }
    let muster = state.muster.clone();
    let stream = futures_util::stream::unfold(
        Cursor {
            before: None,
            header: true,
            done: false,
        },
        move |mut c| {
            let (muster, q, providers) = (muster.clone(), q.clone(), providers.clone());
            async move {
                if c.done {
                    return None;
                }
                let mut chunk = String::new();
                if c.header {
                    chunk.push_str(&csv_header());
                    c.header = false;
                }
                match muster.query_sync_log(env, &q, c.before, 1000).await {
                    Ok((rows, next)) => {
                        for (id, e) in &rows {
                            chunk.push_str(&csv_line(*id, e, &providers));
                        }
                        c.before = next;
                        c.done = next.is_none();
                        Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), c))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "sync log export failed");
                        c.done = true;
                        Some((
                            Err(std::io::Error::other(
                                "the export failed; see the server log",
                            )),
                            c,
                        ))
                    }
                }
            }
        },
    );
    let name = format!(
        "muster-sync-log-{}.csv",
        state.muster.now().to_rfc3339().replace(':', "")
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}
