//! Organizations (the administrator guide, Step 1): the active or deactivated ones as a tree,
//! and forms to add one (at the top or under another), rename, move, set default roles,
//! deactivate and reactivate.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use muster_core::ids::{OrgId, RoleId};
use muster_core::model::{OrgStatus, Role};
use muster_core::orgs::OrgView;
use muster_core::CoreError;
use serde::Deserialize;

use super::access::Directory;
use super::html::{render, Shell};
use super::shell::{internal, redirect, status_of, Console, Posted};
use crate::state::AppState;

#[derive(Deserialize, Default)]
pub struct OrgsQuery {
    status: Option<String>,
}

#[derive(Template)]
#[template(path = "console/orgs.html")]
struct OrgsPage<'a> {
    shell: Shell,
    csrf: &'a str,
    active_shown: bool,
    /// Where a new or moved organization can go.
    active: Vec<&'a OrgView>,
    /// The organizations listed.
    rows: Vec<&'a OrgView>,
    roles: &'a [Role],
    create_error: Option<&'a str>,
    row_error: Option<&'a str>,
}

impl OrgsPage<'_> {
    fn depth(&self, o: &OrgView) -> usize {
        o.path.len().saturating_sub(1).min(8)
    }

    fn default_roles(&self, o: &OrgView) -> String {
        o.effective_default_roles
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn holds(&self, o: &OrgView, r: &Role) -> bool {
        o.effective_default_roles.iter().any(|h| h.id == r.id)
    }

    /// Whether the organization takes its parent's defaults (the root has none to take).
    fn inherits(&self, o: &OrgView) -> bool {
        o.default_roles_from != Some(o.org.id) && o.org.parent_id.is_some()
    }
}

/// `GET /console/orgs`.
pub async fn page(
    State(state): State<AppState>,
    console: Console<Directory>,
    Query(q): Query<OrgsQuery>,
) -> Response {
    let active = q.status.as_deref() != Some("deactivated");
    orgs_page(&state, &console, active, None, StatusCode::OK).await
}

/// Which form a refusal belongs to: the "Add organization" card, or a row of the table.
enum Failed<'a> {
    Create(&'a str),
    Row(&'a str),
}

async fn orgs_page(
    state: &AppState,
    console: &Console<Directory>,
    active_shown: bool,
    error: Option<Failed<'_>>,
    status: StatusCode,
) -> Response {
    let env = console.env();
    let (all, roles) = match (
        state.muster.list_orgs(env, None).await,
        state.muster.list_roles(env).await,
    ) {
        (Ok(o), Ok(r)) => (o, r),
        (Err(e), _) | (_, Err(e)) => return internal(&e),
    };
    let shown = if active_shown {
        OrgStatus::Active
    } else {
        OrgStatus::Deactivated
    };
    let page = OrgsPage {
        shell: console.shell("Organizations", "/console/orgs"),
        csrf: &console.session.csrf_token,
        active_shown,
        active: all
            .iter()
            .filter(|o| o.org.status == OrgStatus::Active)
            .collect(),
        rows: all.iter().filter(|o| o.org.status == shown).collect(),
        roles: &roles,
        create_error: match error {
            Some(Failed::Create(m)) => Some(m),
            _ => None,
        },
        row_error: match error {
            Some(Failed::Row(m)) => Some(m),
            _ => None,
        },
    };
    render(status, &page)
}

/// `POST /console/orgs`: one of the page's forms.
pub async fn act(State(state): State<AppState>, posted: Posted<Directory>) -> Response {
    let Posted { console, form } = posted;
    let m = &state.muster;
    let env = console.env();
    let actor = console.actor();
    let action = form.field("action").unwrap_or_default();
    let name = form.field("name").unwrap_or_default();
    let org = form.parsed::<OrgId>("org");
    let parent = form.parsed::<OrgId>("parent");
    let missing = || CoreError::Invalid("no such organization".into());
    let result = match (action.as_str(), org) {
        ("create", _) => m.create_org(env, &name, parent, &actor).await.map(drop),
        ("child", Some(id)) => m.create_org(env, &name, Some(id), &actor).await.map(drop),
        ("rename", Some(id)) => m.rename_org(env, id, &name, &actor).await.map(drop),
        ("move", Some(id)) => match parent {
            Some(p) => m.move_org(env, id, p, &actor).await.map(drop),
            None => Err(CoreError::Invalid(
                "choose an organization to move it under".into(),
            )),
        },
        ("roles", Some(id)) => {
            let chosen = (!form.has("inherit")).then(|| form.all::<RoleId>("role"));
            m.set_org_default_roles(env, id, chosen, &actor)
                .await
                .map(drop)
        }
        ("deactivate" | "reactivate", Some(id)) => m
            .set_org_active(env, id, action == "reactivate", &actor)
            .await
            .map(drop),
        ("child" | "rename" | "move" | "roles" | "deactivate" | "reactivate", None) => {
            Err(missing())
        }
        _ => {
            return super::shell::error_page(StatusCode::BAD_REQUEST, "Unknown action.");
        }
    };
    let active_shown = action != "reactivate";
    match result {
        Ok(()) if active_shown => redirect("/console/orgs"),
        Ok(()) => redirect("/console/orgs?status=deactivated"),
        Err(e @ CoreError::Store(_)) => internal(&e),
        Err(e) => {
            let message = e.to_string();
            let failed = if action == "create" {
                Failed::Create(&message)
            } else {
                Failed::Row(&message)
            };
            orgs_page(&state, &console, active_shown, Some(failed), status_of(&e)).await
        }
    }
}
