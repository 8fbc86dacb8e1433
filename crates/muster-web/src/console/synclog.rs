//! The Sync Log page: filters (time range, provider, user, action, result), pages by cursor,
//! each entry's details in words (the changed fields before and after), and a CSV export of
//! what the filters select.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use muster_core::ids::ProviderId;
use muster_core::model::{Actor, Outcome, SyncLogEntry};
use muster_core::store::LogQuery;
use muster_core::synclog::query::LogCursor;
use muster_core::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use super::access::SyncLog;
use super::html::{render, Opt, Shell};
use super::shell::{error_page, internal, Console};
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
    let q = LogQuery {
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
    };
    match q.range_problem() {
        Some(p) => Err(format!("From and To: {p}")),
        None => Ok(q),
    }
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

/// A value in words: strings without quotes, `none` for null, anything else as compact JSON.
fn words(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".into(),
        other => other.to_string(),
    }
}

/// An entry's details as lines a person reads: each changed attribute as `before → after`, and
/// every other field as its value.
pub(super) fn detail_lines(details: &Value) -> Vec<(String, String)> {
    let Value::Object(fields) = details else {
        return match details {
            Value::Null => Vec::new(),
            other => vec![("details".into(), words(other))],
        };
    };
    let mut out = Vec::new();
    for (key, value) in fields {
        let changes = value
            .as_array()
            .filter(|items| key == "changes" && items.iter().all(|c| c.get("attribute").is_some()));
        match changes {
            Some(items) => {
                for c in items {
                    let attr = c.get("attribute").map(words).unwrap_or_default();
                    let before = c.get("before").map(words).unwrap_or_else(|| "none".into());
                    let after = c.get("after").map(words).unwrap_or_else(|| "none".into());
                    out.push((attr, format!("{before} → {after}")));
                }
            }
            None => out.push((key.clone(), words(value))),
        }
    }
    out
}

/// An entry as the console lists it.
pub(super) struct LogRow {
    pub at: String,
    pub provider: String,
    pub actor: String,
    pub action: &'static str,
    pub subject: String,
    pub outcome: &'static str,
    pub message: Option<String>,
    pub details: Vec<(String, String)>,
}

impl LogRow {
    pub(super) fn new(e: &SyncLogEntry, providers: &HashMap<ProviderId, String>) -> LogRow {
        let provider_name = |id: &ProviderId| providers.get(id).cloned().unwrap_or_default();
        LogRow {
            at: e.at.to_rfc3339(),
            provider: e
                .provider_id
                .as_ref()
                .map(provider_name)
                .unwrap_or_default(),
            actor: match &e.actor {
                Actor::Provider { id } => provider_name(id),
                Actor::Admin { name } => name.clone(),
                Actor::System => "Muster".into(),
            },
            action: e.action.as_str(),
            subject: e.subject_name.clone().unwrap_or_default(),
            outcome: e.outcome.as_str(),
            message: e.message.clone(),
            details: detail_lines(&e.details),
        }
    }
}

#[derive(Template)]
#[template(path = "console/synclog.html")]
struct LogPage<'a> {
    shell: Shell,
    since: &'a str,
    until: &'a str,
    user: &'a str,
    action: &'a str,
    providers: Vec<Opt>,
    results: Vec<Opt>,
    error: Option<String>,
    /// The filters as a query string, for the CSV export.
    query: String,
    rows: Vec<LogRow>,
    older: Option<String>,
}

/// `GET /console/sync-log`.
pub async fn page(
    State(state): State<AppState>,
    console: Console<SyncLog>,
    Query(f): Query<LogForm>,
) -> Response {
    let env = console.env();
    let m = &state.muster;
    let providers = match m.list_providers(env).await {
        Ok(p) => p,
        Err(e) => return internal(&e),
    };
    let chosen = nonempty(&f.provider);
    let provider_options = providers
        .iter()
        .map(|p| Opt::new(p.id.to_string(), &p.name, chosen))
        .collect();
    let result = nonempty(&f.result);
    let results = ["success", "error"]
        .into_iter()
        .map(|r| Opt::new(r.to_string(), r, result))
        .collect();
    let names: HashMap<ProviderId, String> =
        providers.into_iter().map(|p| (p.id, p.name)).collect();
    let mut page = LogPage {
        shell: console.shell("Sync Log", "/console/sync-log"),
        since: f.since.as_deref().unwrap_or(""),
        until: f.until.as_deref().unwrap_or(""),
        user: f.user.as_deref().unwrap_or(""),
        action: f.action.as_deref().unwrap_or(""),
        providers: provider_options,
        results,
        error: None,
        query: serde_urlencoded::to_string(params(&f)).unwrap_or_default(),
        rows: Vec::new(),
        older: None,
    };
    let q = match query(&f) {
        Ok(q) => q,
        Err(e) => {
            page.error = Some(e);
            return render(StatusCode::BAD_REQUEST, &page);
        }
    };
    let before = nonempty(&f.before).and_then(LogCursor::decode);
    let (entries, next) = match m.query_sync_log(env, &q, before, PAGE).await {
        Ok(r) => r,
        Err(e) => return internal(&e),
    };
    page.rows = entries
        .iter()
        .map(|(_, e)| LogRow::new(e, &names))
        .collect();
    page.older = next.map(|n| {
        let mut p = params(&f);
        p.push(("before", n.encode()));
        format!(
            "/console/sync-log?{}",
            serde_urlencoded::to_string(p).unwrap_or_default()
        )
    });
    render(StatusCode::OK, &page)
}

/// `GET /console/sync-log/export.csv`: the filtered entries as CSV, streamed.
pub async fn export(
    State(state): State<AppState>,
    console: Console<SyncLog>,
    Query(f): Query<LogForm>,
) -> Response {
    let q = match query(&f) {
        Ok(q) => q,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let env = console.env();
    match state.muster.provider_names(env).await {
        Ok(names) => crate::api::csv_export(&state, env, q, names),
        Err(e) => internal(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn details_read_as_words() {
        let lines = detail_lines(&json!({
            "changes": [
                {"attribute": "title", "before": "Dev", "after": "Lead"},
                {"attribute": "nickName", "before": null, "after": "Bo"},
                {"attribute": "emails", "before": [], "after": [{"value": "a@example.com"}]}
            ],
            "reason": "SCIM group 'Ops' (priority 1)",
            "moved": 2
        }));
        assert_eq!(
            lines,
            vec![
                ("title".to_string(), "Dev → Lead".to_string()),
                ("nickName".into(), "none → Bo".into()),
                (
                    "emails".into(),
                    "[] → [{\"value\":\"a@example.com\"}]".into()
                ),
                ("reason".into(), "SCIM group 'Ops' (priority 1)".into()),
                ("moved".into(), "2".into()),
            ]
        );
        assert!(detail_lines(&Value::Null).is_empty());
        assert_eq!(
            detail_lines(&json!("x")),
            vec![("details".into(), "x".into())]
        );
    }
}
