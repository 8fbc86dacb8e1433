//! A provider's mass-deactivation guard (docs/notifications.md): whether it holds the
//! provider's deactivations, the users whose deactivation is pending, Release and Restore, and
//! the thresholds.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use muster_core::ids::ProviderId;
use muster_core::notify::guard::GuardInput;
use muster_core::CoreError;

use super::access::Providers;
use super::html::{render, Shell};
use super::shell::{error_page, internal, redirect, status_of, Console, Id, Posted};
use crate::state::AppState;

/// Users listed on the page.
const LISTED: u64 = 500;

struct Pending {
    id: String,
    user_name: String,
    due: String,
}

#[derive(Template)]
#[template(path = "console/guard.html")]
struct GuardPage<'a> {
    shell: Shell,
    csrf: &'a str,
    id: ProviderId,
    name: String,
    error: Option<&'a str>,
    notice: Option<&'a str>,
    enabled: bool,
    percent: i64,
    min_users: i64,
    window_minutes: i64,
    held_since: Option<String>,
    held_turned_off: i64,
    pending: Vec<Pending>,
}

/// What an action did, carried through the redirect after it (so the page, and its banner,
/// are read after the change).
#[derive(serde::Deserialize, Default)]
pub struct Done {
    done: Option<String>,
    restored: Option<u64>,
}

/// `GET /console/providers/{id}/guard`.
pub async fn page(
    State(state): State<AppState>,
    console: Console<Providers>,
    Id(id): Id<ProviderId>,
    Query(q): Query<Done>,
) -> Response {
    let notice = match q.done.as_deref() {
        Some("release") => Some("Released: the held deactivations proceed on their schedule (those already due within seconds).".to_string()),
        Some("restore") => Some(format!(
            "Restored {} users: unblocked, their deactivations cancelled. The hold has ended.",
            q.restored.unwrap_or(0)
        )),
        Some("settings") => Some("Saved.".to_string()),
        _ => None,
    };
    guard_page(
        &state,
        &console,
        id,
        None,
        notice.as_deref(),
        StatusCode::OK,
    )
    .await
}

/// `POST /console/providers/{id}/guard`: release, restore, or change the thresholds.
pub async fn act(
    State(state): State<AppState>,
    Id(id): Id<ProviderId>,
    posted: Posted<Providers>,
) -> Response {
    let Posted { console, form } = posted;
    let m = &state.muster;
    let (env, actor) = (console.env(), console.actor());
    let done: Result<String, CoreError> = match form.field("action").as_deref() {
        Some("release") => m
            .release_guard(env, id, &actor)
            .await
            .map(|_| "done=release".to_string()),
        Some("restore") => m
            .restore_held_users(env, id, &actor)
            .await
            .map(|n| format!("done=restore&restored={n}")),
        Some("settings") => {
            let num = |name: &str| -> Result<Option<i64>, CoreError> {
                match form.field(name) {
                    None => Ok(None),
                    Some(v) => v
                        .parse()
                        .map(Some)
                        .map_err(|_| CoreError::Invalid(format!("'{v}' is not a whole number"))),
                }
            };
            let input = (|| {
                Ok(GuardInput {
                    enabled: Some(form.field("enabled").as_deref() == Some("on")),
                    percent: num("percent")?,
                    min_users: num("min_users")?,
                    window_secs: num("window_minutes")?.map(|m| m.saturating_mul(60)),
                })
            })();
            match input {
                Ok(input) => m
                    .set_provider_guard(env, id, &input, &actor)
                    .await
                    .map(|_| "done=settings".to_string()),
                Err(e) => Err(e),
            }
        }
        _ => return error_page(StatusCode::BAD_REQUEST, "Unknown action."),
    };
    match done {
        Ok(query) => redirect(&format!("/console/providers/{id}/guard?{query}")),
        Err(e @ CoreError::Store(_)) => internal(&e),
        Err(e) => {
            let message = e.to_string();
            guard_page(&state, &console, id, Some(&message), None, status_of(&e)).await
        }
    }
}

async fn guard_page(
    state: &AppState,
    console: &Console<Providers>,
    id: ProviderId,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let m = &state.muster;
    let env = console.env();
    let p = match m.get_provider(env, id).await {
        Ok(p) => p,
        Err(CoreError::NotFound(_)) => {
            return error_page(StatusCode::NOT_FOUND, "There is no such provider.")
        }
        Err(e) => return internal(&e),
    };
    let (g, pending) = match (
        m.provider_guard(env, id).await,
        m.pending_deactivations(env, id, LISTED).await,
    ) {
        (Ok(g), Ok(p)) => (g, p),
        (Err(e), _) | (_, Err(e)) => return internal(&e),
    };
    let page = GuardPage {
        shell: console.shell("Mass-deactivation guard", "/console/providers"),
        csrf: &console.session.csrf_token,
        id,
        name: p.name,
        error,
        notice,
        enabled: g.enabled,
        percent: g.percent,
        min_users: g.min_users,
        window_minutes: g.window_secs / 60,
        held_since: g.held_since.map(|t| t.to_rfc3339()),
        held_turned_off: g.held_turned_off,
        pending: pending
            .into_iter()
            .map(|u| Pending {
                id: u.id.to_string(),
                user_name: u.user_name,
                due: u.deactivate_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            })
            .collect(),
    };
    render(status, &page)
}
