//! Applications: the credentials the applications Muster serves read the directory and the
//! event feed with (docs/api.md, "Application credentials"): add one (its token shown once),
//! rotate, revoke, and see when each was last used; and the administrator API tokens scripts
//! use (docs/api.md, "Authentication"): create (shown once, optionally expiring) and revoke.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use muster_core::auth::admin_tokens::CreatedAdminToken;
use muster_core::ids::AdminTokenId;
use muster_core::model::Scope;
use muster_core::CoreError;

use super::access::Directory;
use super::html::{render, Shell};
use super::shell::{internal, redirect, status_of, when, Console, Posted};
use crate::state::AppState;

struct AppRow {
    id: AdminTokenId,
    name: String,
    scopes: String,
    prefix: String,
    created: String,
    last_used: String,
    state: &'static str,
    live: bool,
}

/// A token just made or rotated.
struct Secret {
    title: &'static str,
    secret: String,
}

/// An administrator API token.
struct TokenRow {
    id: AdminTokenId,
    label: String,
    prefix: String,
    created: String,
    expires: String,
    last_used: String,
    live: bool,
}

#[derive(Template)]
#[template(path = "console/apps.html")]
struct AppsPage<'a> {
    shell: Shell,
    csrf: &'a str,
    error: Option<&'a str>,
    name: &'a str,
    secret: Option<Secret>,
    rows: Vec<AppRow>,
    tokens: Vec<TokenRow>,
}

/// `GET /console/apps`.
pub async fn page(State(state): State<AppState>, console: Console<Directory>) -> Response {
    apps_page(&state, &console, None, "", None, StatusCode::OK).await
}

async fn apps_page(
    state: &AppState,
    console: &Console<Directory>,
    error: Option<&str>,
    name: &str,
    secret: Option<Secret>,
    status: StatusCode,
) -> Response {
    let (apps, tokens) = match (
        state.muster.list_apps(console.env()).await,
        state.muster.list_admin_tokens(console.env()).await,
    ) {
        (Ok(a), Ok(t)) => (a, t),
        (Err(e), _) | (_, Err(e)) => return internal(&e),
    };
    let now = state.muster.now();
    let tokens = tokens
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            created: t.created_at.to_rfc3339(),
            expires: t
                .expires_at
                .map(|e| e.to_rfc3339())
                .unwrap_or_else(|| "never".into()),
            last_used: when(t.last_used_at),
            live: t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > now),
            label: t.label,
            prefix: t.prefix,
        })
        .collect();
    let rows = apps
        .into_iter()
        .map(|t| AppRow {
            id: t.id,
            scopes: t
                .scopes
                .iter()
                .flatten()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            created: t.created_at.to_rfc3339(),
            last_used: when(t.last_used_at),
            state: if t.revoked_at.is_some() {
                "revoked"
            } else {
                "live"
            },
            live: t.revoked_at.is_none(),
            name: t.label,
            prefix: t.prefix,
        })
        .collect();
    let page = AppsPage {
        shell: console.shell("Applications", "/console/apps"),
        csrf: &console.session.csrf_token,
        error,
        name,
        secret,
        rows,
        tokens,
    };
    render(status, &page)
}

/// `POST /console/apps`: add, rotate or revoke.
pub async fn act(State(state): State<AppState>, posted: Posted<Directory>) -> Response {
    let Posted { console, form } = posted;
    let m = &state.muster;
    let (env, actor) = (console.env(), console.actor());
    let name = form.field("name").unwrap_or_default();
    let app = form.parsed::<AdminTokenId>("app");
    let done: Result<Option<(&'static str, CreatedAdminToken)>, CoreError> =
        match form.field("action").as_deref() {
            Some("create") => {
                let scopes: Vec<Scope> = form
                    .all::<String>("scope")
                    .iter()
                    .filter_map(|s| Scope::parse(s))
                    .collect();
                m.create_app(env, &name, &scopes, &actor)
                    .await
                    .map(|c| Some(("New application credential", c)))
            }
            Some("rotate") => match app {
                Some(id) => m
                    .rotate_app(env, id, &actor)
                    .await
                    .map(|c| Some(("New token", c))),
                None => Err(CoreError::NotFound("no such application".into())),
            },
            Some("revoke") => match app {
                Some(id) => m.revoke_app(env, id, &actor).await.map(|()| None),
                None => Err(CoreError::NotFound("no such application".into())),
            },
            Some("token_create") => {
                let days = match form.field("expires_days") {
                    None => Ok(None),
                    Some(d) => match d.parse::<i64>() {
                        Ok(n) if (1..=3650).contains(&n) => Ok(Some(n)),
                        _ => Err(CoreError::Invalid(
                            "an expiry is 1 to 3,650 days, or none".into(),
                        )),
                    },
                };
                match days {
                    Ok(days) => {
                        let expires = days.map(|d| m.now().plus_secs(d * 86_400));
                        let label = form.field("label").unwrap_or_default();
                        m.create_admin_token(env, &label, expires, &actor)
                            .await
                            .map(|c| Some(("New API token", c)))
                    }
                    Err(e) => Err(e),
                }
            }
            Some("token_revoke") => match form.parsed::<AdminTokenId>("token") {
                Some(id) => m.revoke_admin_token(env, id, &actor).await.map(|()| None),
                None => Err(CoreError::NotFound("no such API token".into())),
            },
            _ => {
                return super::shell::error_page(StatusCode::BAD_REQUEST, "Unknown action.");
            }
        };
    match done {
        Ok(None) => redirect("/console/apps"),
        // A token is shown on the page itself, once; never through a redirect.
        Ok(Some((title, c))) => {
            let secret = Secret {
                title,
                secret: c.secret,
            };
            apps_page(&state, &console, None, "", Some(secret), StatusCode::OK).await
        }
        Err(e @ CoreError::Store(_)) => internal(&e),
        Err(e) => {
            let message = e.to_string();
            apps_page(&state, &console, Some(&message), &name, None, status_of(&e)).await
        }
    }
}
