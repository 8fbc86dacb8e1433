//! Roles: the role catalog (the administrator guide's roles, and the ones an administrator
//! adds): add a role, delete one nothing uses.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use muster_core::ids::RoleId;
use muster_core::model::Role;
use muster_core::CoreError;

use super::access::Directory;
use super::html::{render, Shell};
use super::shell::{error_page, internal, redirect, status_of, Console, Posted};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "console/roles.html")]
struct RolesPage<'a> {
    shell: Shell,
    csrf: &'a str,
    error: Option<&'a str>,
    name: &'a str,
    description: &'a str,
    roles: Vec<Role>,
}

/// `GET /console/roles`.
pub async fn page(State(state): State<AppState>, console: Console<Directory>) -> Response {
    roles_page(&state, &console, None, ("", ""), StatusCode::OK).await
}

async fn roles_page(
    state: &AppState,
    console: &Console<Directory>,
    error: Option<&str>,
    (name, description): (&str, &str),
    status: StatusCode,
) -> Response {
    let roles = match state.muster.list_roles(console.env()).await {
        Ok(r) => r,
        Err(e) => return internal(&e),
    };
    let page = RolesPage {
        shell: console.shell("Roles", "/console/roles"),
        csrf: &console.session.csrf_token,
        error,
        name,
        description,
        roles,
    };
    render(status, &page)
}

/// `POST /console/roles`: add or delete a role.
pub async fn act(State(state): State<AppState>, posted: Posted<Directory>) -> Response {
    let Posted { console, form } = posted;
    let (env, actor) = (console.env(), console.actor());
    let name = form.field("name").unwrap_or_default();
    let description = form.field("description").unwrap_or_default();
    let done = match form.field("action").as_deref() {
        Some("create") => state
            .muster
            .create_role(env, &name, &description, &actor)
            .await
            .map(drop),
        Some("rename") => match form.parsed::<RoleId>("role") {
            Some(id) => state
                .muster
                .rename_role(
                    env,
                    id,
                    &form.field("new_name").unwrap_or_default(),
                    Some(&form.field("new_description").unwrap_or_default()),
                    &actor,
                )
                .await
                .map(drop),
            None => Err(CoreError::NotFound("no such role".into())),
        },
        Some("delete") => match form.parsed::<RoleId>("role") {
            Some(id) => state.muster.delete_role(env, id, &actor).await.map(drop),
            None => Err(CoreError::NotFound("no such role".into())),
        },
        _ => return error_page(StatusCode::BAD_REQUEST, "Unknown action."),
    };
    match done {
        Ok(()) => redirect("/console/roles"),
        Err(e @ CoreError::Store(_)) => internal(&e),
        Err(e) => {
            let message = e.to_string();
            let kept = (name.as_str(), description.as_str());
            roles_page(&state, &console, Some(&message), kept, status_of(&e)).await
        }
    }
}
