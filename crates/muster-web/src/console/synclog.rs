//! The Sync Log page: filters (time range, provider, user, action, result), pages by cursor,
//! each entry's details (the changed fields before and after), and a CSV export of what the
//! filters select.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use muster_core::model::Outcome;
use muster_core::store::LogQuery;
use muster_core::synclog::query::LogCursor;
use muster_core::Timestamp;
use serde::Deserialize;

use super::access::SYNC_LOG;
use super::html::esc;
use super::shell::{error_page, Console};
use crate::state::AppState;

const PAGE: u64 = 100;

/// The filters, as the form sends them.
#[derive(Deserialize, Default, Clone)]
pub struct LogForm {
    since: Option<String>,
    until: Option<String>,
    provider: Option<String>,
    user: Option<String>,
    action: Option<String>,
    result: Option<String>,
    before: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A date (`2027-01-31`, the start of that day in UTC) or an RFC 3339 time.
fn time(v: Option<&str>, what: &str) -> Result<Option<Timestamp>, String> {
    let Some(v) = v else { return Ok(None) };
    let full = if v.len() == 10 {
        format!("{v}T00:00:00Z")
    } else {
        v.to_string()
    };
    Timestamp::parse_rfc3339(&full)
        .map(Some)
        .ok_or_else(|| format!("{what} must be a date such as 2027-01-31"))
}

fn query(f: &LogForm) -> Result<LogQuery, String> {
    Ok(LogQuery {
        since: time(nonempty(&f.since), "From")?,
        until: time(nonempty(&f.until), "To")?,
        provider: match nonempty(&f.provider) {
            Some(p) => Some(p.parse().map_err(|_| "no such provider".to_string())?),
            None => None,
        },
        subject: nonempty(&f.user).map(str::to_string),
        action: nonempty(&f.action).map(str::to_string),
        outcome: match nonempty(&f.result) {
            None => None,
            Some("success") => Some(Outcome::Success),
            Some("error") => Some(Outcome::Error),
            Some(_) => return Err("Result must be success or error".into()),
        },
    })
}

fn params(f: &LogForm) -> Vec<(&'static str, String)> {
    [
        ("since", &f.since),
        ("until", &f.until),
        ("provider", &f.provider),
        ("user", &f.user),
        ("action", &f.action),
        ("result", &f.result),
    ]
    .into_iter()
    .filter_map(|(k, v)| nonempty(v).map(|v| (k, v.to_string())))
    .collect()
}

/// `GET /console/sync-log`.
pub async fn page(
    State(state): State<AppState>,
    console: Console,
    Query(f): Query<LogForm>,
) -> Response {
    if let Some(r) = console.deny(SYNC_LOG) {
        return r;
    }
    let env = console.admin.environment_id;
    let m = &state.muster;
    let providers = match m.list_providers(env).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "listing providers failed");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.");
        }
    };
    let (q, error) = match query(&f) {
        Ok(q) => (Some(q), None),
        Err(e) => (None, Some(e)),
    };
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let sel = |a: bool| if a { " selected" } else { "" };
    let mut body = String::from("<h1>Sync Log</h1>");
    body.push_str(&format!(
        "<form class=\"inline\" method=\"get\" action=\"/console/sync-log\">\
         <label>From <input name=\"since\" type=\"date\" value=\"{}\"></label>\
         <label>To (exclusive) <input name=\"until\" type=\"date\" value=\"{}\"></label>\
         <label>Provider <select name=\"provider\"><option value=\"\">All</option>{}</select></label>\
         <label>User or group id <input name=\"user\" value=\"{}\"></label>\
         <label>Action <input name=\"action\" value=\"{}\" placeholder=\"user.created or user.\"></label>\
         <label>Result <select name=\"result\"><option value=\"\">All</option><option value=\"success\"{}>success</option><option value=\"error\"{}>error</option></select></label>\
         <button type=\"submit\">Filter</button></form>",
        v(&f.since),
        v(&f.until),
        providers
            .iter()
            .map(|p| format!(
                "<option value=\"{}\"{}>{}</option>",
                p.id,
                sel(nonempty(&f.provider) == Some(p.id.to_string().as_str())),
                esc(&p.name)
            ))
            .collect::<String>(),
        v(&f.user),
        v(&f.action),
        sel(nonempty(&f.result) == Some("success")),
        sel(nonempty(&f.result) == Some("error")),
    ));
    let Some(q) = q else {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            esc(&error.unwrap_or_default())
        ));
        return (
            StatusCode::BAD_REQUEST,
            console
                .page("Sync Log", "/console/sync-log")
                .body(body)
                .render(),
        )
            .into_response();
    };
    let qs = serde_urlencoded::to_string(params(&f)).unwrap_or_default();
    body.push_str(&format!(
        "<p><a href=\"/console/sync-log/export.csv?{}\">Export these entries as CSV</a></p>",
        esc(&qs)
    ));
    let before = nonempty(&f.before).and_then(LogCursor::decode);
    let (entries, next) = match m.query_sync_log(env, &q, before, PAGE).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "reading the sync log failed");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.");
        }
    };
    let names: std::collections::HashMap<_, _> =
        providers.iter().map(|p| (p.id, p.name.clone())).collect();
    body.push_str("<table><thead><tr><th scope=\"col\">Time</th><th scope=\"col\">Provider</th><th scope=\"col\">Actor</th><th scope=\"col\">Action</th><th scope=\"col\">Subject</th><th scope=\"col\">Result</th><th scope=\"col\">Details</th></tr></thead><tbody>");
    for (_, e) in &entries {
        let actor = match &e.actor {
            muster_core::model::Actor::Provider { id } => {
                names.get(id).cloned().unwrap_or_default()
            }
            muster_core::model::Actor::Admin { name } => name.clone(),
            muster_core::model::Actor::System => "Muster".into(),
        };
        let details = serde_json::to_string_pretty(&e.details).unwrap_or_default();
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td><details><summary>Details</summary><pre>{}</pre></details></td></tr>",
            esc(&e.at.to_rfc3339()),
            esc(&e.provider_id.and_then(|p| names.get(&p).cloned()).unwrap_or_default()),
            esc(&actor),
            esc(e.action.as_str()),
            esc(e.subject_name.as_deref().unwrap_or("")),
            esc(e.outcome.as_str()),
            e.message.as_deref().map(|m| format!(": {}", esc(m))).unwrap_or_default(),
            esc(&details)
        ));
    }
    body.push_str("</tbody></table>");
    if entries.is_empty() {
        body.push_str("<p class=\"muted\">No entry matches.</p>");
    }
    if let Some(n) = next {
        let mut p = params(&f);
        p.push(("before", n.encode()));
        body.push_str(&format!(
            "<p><a href=\"/console/sync-log?{}\">Older entries</a></p>",
            esc(&serde_urlencoded::to_string(p).unwrap_or_default())
        ));
    }
    console
        .page("Sync Log", "/console/sync-log")
        .body(body)
        .render()
        .into_response()
}

/// `GET /console/sync-log/export.csv`: the filtered entries as CSV, streamed.
pub async fn export(
    State(state): State<AppState>,
    console: Console,
    Query(f): Query<LogForm>,
) -> Response {
    if let Some(r) = console.deny(SYNC_LOG) {
        return r;
    }
    let q = match query(&f) {
        Ok(q) => q,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let env = console.admin.environment_id;
    match state.muster.provider_names(env).await {
        Ok(names) => crate::api::csv_export(&state, env, q, names),
        Err(e) => {
            tracing::error!(error = %e, "exporting the sync log failed");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.")
        }
    }
}
