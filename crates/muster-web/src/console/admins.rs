//! Administrators: who may sign in to the console and with which role; the sessions signed in
//! now, any of which a Customer Cloud Admin can end. Changing an administrator's role or
//! removing them ends their sessions at once.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use muster_core::ids::{AdminId, SessionId};
use muster_core::model::AdminRole;
use muster_core::CoreError;

use super::access::Directory;
use super::html::{render, Opt, Shell};
use super::shell::{error_page, internal, redirect, status_of, when, Console, Posted};
use crate::state::AppState;

const ROLES: [AdminRole; 3] = [
    AdminRole::CustomerCloudAdmin,
    AdminRole::IdentityManagementAdmin,
    AdminRole::AuditLogViewer,
];

fn role_options(chosen: AdminRole) -> Vec<Opt> {
    ROLES
        .iter()
        .map(|r| Opt::new(r.as_str().to_string(), r.title(), Some(chosen.as_str())))
        .collect()
}

struct AdminRow {
    id: AdminId,
    username: String,
    roles: Vec<Opt>,
    last_sign_in: String,
}

struct SessionRow {
    id: SessionId,
    username: String,
    role: &'static str,
    started: String,
    last_seen: String,
    mine: bool,
}

#[derive(Template)]
#[template(path = "console/admins.html")]
struct AdminsPage<'a> {
    shell: Shell,
    csrf: &'a str,
    error: Option<&'a str>,
    username: &'a str,
    new_roles: Vec<Opt>,
    admins: Vec<AdminRow>,
    sessions: Vec<SessionRow>,
}

/// `GET /console/admins`.
pub async fn page(State(state): State<AppState>, console: Console<Directory>) -> Response {
    admins_page(&state, &console, None, "", StatusCode::OK).await
}

async fn admins_page(
    state: &AppState,
    console: &Console<Directory>,
    error: Option<&str>,
    username: &str,
    status: StatusCode,
) -> Response {
    let env = console.env();
    let (admins, sessions) = match (
        state.muster.list_admins(env).await,
        state.muster.live_sessions(env).await,
    ) {
        (Ok(a), Ok(s)) => (a, s),
        (Err(e), _) | (_, Err(e)) => return internal(&e),
    };
    let page = AdminsPage {
        shell: console.shell("Administrators", "/console/admins"),
        csrf: &console.session.csrf_token,
        error,
        username,
        new_roles: role_options(AdminRole::IdentityManagementAdmin),
        admins: admins
            .into_iter()
            .map(|a| AdminRow {
                id: a.id,
                roles: role_options(a.role),
                last_sign_in: when(a.last_sign_in_at),
                username: a.username,
            })
            .collect(),
        sessions: sessions
            .into_iter()
            .map(|(s, a)| SessionRow {
                id: s.id,
                mine: s.id == console.session.id,
                role: a.role.title(),
                started: s.created_at.to_rfc3339(),
                last_seen: s.last_seen_at.to_rfc3339(),
                username: a.username,
            })
            .collect(),
    };
    render(status, &page)
}

/// `POST /console/admins`: add, change a role, remove, end a session.
pub async fn act(State(state): State<AppState>, posted: Posted<Directory>) -> Response {
    let Posted { console, form } = posted;
    let m = &state.muster;
    let (env, actor) = (console.env(), console.actor());
    let username = form.field("username").unwrap_or_default();
    let role = form.field("role").and_then(|r| AdminRole::parse(&r));
    let admin = form.parsed::<AdminId>("admin");
    let done: Result<(), CoreError> = match form.field("action").as_deref() {
        Some("create") => {
            let password = form.field("password").unwrap_or_default();
            if form.field("password2").unwrap_or_default() != password {
                Err(CoreError::Invalid("the two passwords differ".into()))
            } else {
                match role {
                    Some(r) => m
                        .create_admin(env, &username, &password, r, &actor)
                        .await
                        .map(drop),
                    None => Err(CoreError::Invalid("choose a role".into())),
                }
            }
        }
        Some("role") => match (admin, role) {
            (Some(id), Some(r)) => m.set_admin_role(env, id, r, &actor).await.map(drop),
            _ => Err(CoreError::Invalid(
                "choose an administrator and a role".into(),
            )),
        },
        Some("remove") => match admin {
            Some(id) => m.remove_admin(env, id, &actor).await,
            None => Err(CoreError::NotFound("no such administrator".into())),
        },
        Some("end") => match form.parsed::<SessionId>("session") {
            Some(id) => m.end_session(env, id, &actor).await,
            None => Err(CoreError::NotFound("no such session".into())),
        },
        _ => return error_page(StatusCode::BAD_REQUEST, "Unknown action."),
    };
    match done {
        Ok(()) => redirect("/console/admins"),
        Err(e @ CoreError::Store(_)) => internal(&e),
        Err(e) => {
            let message = e.to_string();
            let kept = if form.field("action").as_deref() == Some("create") {
                username.as_str()
            } else {
                ""
            };
            admins_page(&state, &console, Some(&message), kept, status_of(&e)).await
        }
    }
}
