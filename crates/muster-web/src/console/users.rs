//! Users: search and filters (organization, status, provider) in pages the database serves,
//! a user's page (organization, roles and where they come from, status, pending deactivation,
//! owner, "changed outside provisioning", the user's sync log entries) and the administrator's
//! actions on a user.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use muster_core::ids::{OrgId, ProviderId, UserId};
use muster_core::model::{OrgStatus, RoleSource, UserStatus};
use muster_core::store::{Cursor, LogQuery, UserQuery};
use muster_core::users::directory::UserAction;
use muster_core::{CoreError, Timestamp};
use serde::Deserialize;

use super::access::Directory;
use super::html::{render, Opt, Shell};
use super::shell::{error_page, internal, redirect, status_of, Console, Id, Posted};
use super::synclog::LogRow;
use crate::state::AppState;

const PAGE: u64 = 50;

#[derive(Deserialize, Default)]
pub struct UsersQuery {
    q: Option<String>,
    org: Option<String>,
    status: Option<String>,
    provider: Option<String>,
    after: Option<String>,
}

fn encode(c: &Cursor) -> String {
    format!("{}_{}", c.created_at.micros(), c.id.simple())
}

fn decode(s: &str) -> Option<Cursor> {
    let (t, id) = s.split_once('_')?;
    Some(Cursor {
        created_at: Timestamp(t.parse().ok()?),
        id: id.parse().ok()?,
    })
}

struct UserRow {
    id: UserId,
    user_name: String,
    name: String,
    /// The user's address when it is not its userName (Entra ID's userName is the UPN).
    email: Option<String>,
    org: String,
    status: &'static str,
    owner: String,
}

/// What the "Add local user" form was sent with, shown again with the reason it was refused.
#[derive(Default)]
struct NewUser {
    user_name: String,
    display_name: String,
    email: String,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage<'a> {
    shell: Shell,
    csrf: &'a str,
    error: Option<String>,
    new: NewUser,
    new_orgs: Vec<Opt>,
    text: &'a str,
    orgs: Vec<Opt>,
    statuses: Vec<Opt>,
    providers: Vec<Opt>,
    rows: Vec<UserRow>,
    next: Option<String>,
}

/// `GET /console/users`.
pub async fn list(
    State(state): State<AppState>,
    console: Console<Directory>,
    Query(q): Query<UsersQuery>,
) -> Response {
    users_page(
        &state,
        &console,
        &q,
        None,
        NewUser::default(),
        StatusCode::OK,
    )
    .await
}

/// `POST /console/users/new`: adds a local user, then opens its page.
pub async fn create(State(state): State<AppState>, posted: Posted<Directory>) -> Response {
    let Posted { console, form } = posted;
    let new = NewUser {
        user_name: form.field("userName").unwrap_or_default(),
        display_name: form.field("displayName").unwrap_or_default(),
        email: form.field("email").unwrap_or_default(),
    };
    let optional = |v: &str| (!v.is_empty()).then(|| v.to_string());
    let created = state
        .muster
        .create_local_user(
            console.env(),
            &new.user_name,
            optional(&new.display_name).as_deref(),
            optional(&new.email).as_deref(),
            form.parsed::<OrgId>("org"),
            &console.actor(),
        )
        .await;
    match created {
        Ok(d) => redirect(&format!("/console/users/{}", d.user.id)),
        Err(e @ CoreError::Store(_)) => internal(&e),
        Err(e) => {
            let q = UsersQuery::default();
            users_page(
                &state,
                &console,
                &q,
                Some(e.to_string()),
                new,
                status_of(&e),
            )
            .await
        }
    }
}

async fn users_page(
    state: &AppState,
    console: &Console<Directory>,
    q: &UsersQuery,
    error: Option<String>,
    new: NewUser,
    status: StatusCode,
) -> Response {
    let m = &state.muster;
    let env = console.env();
    let text = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let query = UserQuery {
        org: q.org.as_deref().and_then(|o| o.parse::<OrgId>().ok()),
        status: q.status.as_deref().and_then(UserStatus::parse),
        provider: match q.provider.as_deref() {
            Some("local") => Some(None),
            Some(p) => p.parse().ok().map(Some),
            None => None,
        },
        text: text.map(str::to_string),
        ..UserQuery::default()
    };
    let after = q.after.as_deref().and_then(decode);
    let loaded = (
        m.query_users(env, &query, after, PAGE).await,
        m.list_orgs(env, None).await,
        m.list_providers(env).await,
    );
    let ((users, next), orgs, providers) = match loaded {
        (Ok(u), Ok(o), Ok(p)) => (u, o, p),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return internal(&e),
    };
    let org_names: HashMap<OrgId, &str> = orgs
        .iter()
        .map(|o| (o.org.id, o.org.name.as_str()))
        .collect();
    let provider_names: HashMap<ProviderId, &str> =
        providers.iter().map(|p| (p.id, p.name.as_str())).collect();
    let rows = users
        .iter()
        .map(|u| UserRow {
            id: u.id,
            user_name: u.user_name.clone(),
            name: u.full_name().unwrap_or_default(),
            email: u
                .primary_email()
                .filter(|e| !e.eq_ignore_ascii_case(&u.user_name))
                .map(str::to_string),
            org: org_names.get(&u.org_id).copied().unwrap_or("").to_string(),
            status: u.status.as_str(),
            owner: match u.provider_id {
                Some(p) => provider_names.get(&p).copied().unwrap_or("").to_string(),
                None => "local".into(),
            },
        })
        .collect();
    let next = next.map(|c| {
        let mut params: Vec<(&str, &str)> = [
            ("q", &q.q),
            ("org", &q.org),
            ("status", &q.status),
            ("provider", &q.provider),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (k, v)))
        .collect();
        let cursor = encode(&c);
        params.push(("after", &cursor));
        format!(
            "/console/users?{}",
            serde_urlencoded::to_string(&params).unwrap_or_default()
        )
    });
    let chosen_org = q.org.as_deref();
    let chosen_provider = q.provider.as_deref();
    let new_orgs = orgs
        .iter()
        .filter(|o| o.org.status == OrgStatus::Active)
        .map(|o| Opt::new(o.org.id.to_string(), &o.path.join(" › "), None))
        .collect();
    let page = UsersPage {
        shell: console.shell("Users", "/console/users"),
        csrf: &console.session.csrf_token,
        error,
        new,
        new_orgs,
        text: text.unwrap_or(""),
        orgs: orgs
            .iter()
            .map(|o| Opt::new(o.org.id.to_string(), &o.path.join(" › "), chosen_org))
            .collect(),
        statuses: ["active", "blocked", "deactivated"]
            .into_iter()
            .map(|s| Opt::new(s.to_string(), s, q.status.as_deref()))
            .collect(),
        providers: std::iter::once(Opt::new("local".into(), "Local users", chosen_provider))
            .chain(
                providers
                    .iter()
                    .map(|p| Opt::new(p.id.to_string(), &p.name, chosen_provider)),
            )
            .collect(),
        rows,
        next,
    };
    render(status, &page)
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage<'a> {
    shell: Shell,
    csrf: &'a str,
    action: String,
    error: Option<&'a str>,
    user_name: &'a str,
    name: String,
    email: Option<&'a str>,
    external_id: Option<&'a str>,
    status: &'static str,
    pending: Option<String>,
    org: &'a str,
    roles_held: String,
    /// The SCIM groups the provider made it a member of, by name, with their pages.
    groups: Vec<(String, &'a str)>,
    owner: String,
    created: String,
    updated: String,
    /// A provisioned user's SCIM attributes as the provider sent them, indented.
    scim: Option<String>,
    /// What the provider's mappings want for a provisioned user, in words.
    mapping: Option<Vec<String>>,
    legal_hold: bool,
    changed_outside: bool,
    buttons: Vec<(&'static str, &'static str)>,
    /// For a local user: its display name and email, to edit.
    local: Option<(String, String)>,
    orgs: Vec<Opt>,
    roles: Vec<Opt>,
    log: Vec<LogRow>,
}

/// `GET /console/users/{id}`.
pub async fn show(
    State(state): State<AppState>,
    console: Console<Directory>,
    Id(uid): Id<UserId>,
) -> Response {
    user_page(&state, &console, uid, None, StatusCode::OK).await
}

/// What an administrator may do to a user in this status.
fn buttons(status: UserStatus, legal_hold: bool) -> Vec<(&'static str, &'static str)> {
    let mut out = match status {
        UserStatus::Active => vec![("block", "Block"), ("deactivate", "Deactivate")],
        UserStatus::Blocked => vec![("unblock", "Unblock"), ("deactivate", "Deactivate")],
        UserStatus::Deactivated => vec![("reactivate", "Reactivate")],
    };
    out.push(if legal_hold {
        ("hold_off", "Release legal hold")
    } else {
        ("hold_on", "Place on legal hold")
    });
    out
}

async fn user_page(
    state: &AppState,
    console: &Console<Directory>,
    uid: UserId,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let m = &state.muster;
    let env = console.env();
    let d = match m.user_detail(env, uid).await {
        Ok(d) => d,
        Err(CoreError::NotFound(_)) => {
            return error_page(StatusCode::NOT_FOUND, "There is no such user.")
        }
        Err(e) => return internal(&e),
    };
    let u = &d.user;
    let log = LogQuery {
        subject: Some(uid.to_string()),
        ..LogQuery::default()
    };
    let loaded = (
        m.query_sync_log(env, &log, None, 50).await,
        m.list_orgs(env, None).await,
        m.list_roles(env).await,
        m.provider_names(env).await,
    );
    let ((entries, _), orgs, roles, providers) = match loaded {
        (Ok(l), Ok(o), Ok(r), Ok(p)) => (l, o, r, p),
        (Err(e), ..) | (_, Err(e), ..) | (.., Err(e), _) | (.., Err(e)) => return internal(&e),
    };
    let mapping = match m.explain_mapping(env, u, &d.groups).await {
        Ok(e) => e.map(|e| e.lines()),
        Err(e) => return internal(&e),
    };
    let owner = match u.provider_id {
        Some(p) => match providers.get(&p) {
            Some(name) => format!("provisioned by {name}"),
            None => "provisioned".into(),
        },
        None => "local (made by an administrator)".into(),
    };
    let roles_held = d
        .roles
        .iter()
        .map(|h| {
            let source = match h.source {
                RoleSource::Org => "organization default",
                RoleSource::Mapping => "role mapping",
                RoleSource::Admin => "set by an administrator",
            };
            format!("{} ({source})", h.role.name)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let chosen = d
        .roles
        .iter()
        .filter(|h| h.source != RoleSource::Org)
        .map(|h| h.role.id)
        .collect::<Vec<_>>();
    let org_id = u.org_id.to_string();
    let page = UserPage {
        shell: console.shell(&u.user_name, "/console/users"),
        csrf: &console.session.csrf_token,
        action: format!("/console/users/{uid}"),
        error,
        user_name: &u.user_name,
        name: u.full_name().unwrap_or_default(),
        email: u.primary_email(),
        external_id: u.external_id.as_deref(),
        status: u.status.as_str(),
        pending: u.deactivate_at.map(|t| t.to_rfc3339()),
        org: &d.org.name,
        roles_held,
        groups: d
            .groups
            .iter()
            .map(|g| {
                (
                    format!("/console/groups/{}", g.group_id),
                    g.display.as_str(),
                )
            })
            .collect(),
        owner,
        created: u.created_at.to_rfc3339(),
        updated: u.updated_at.to_rfc3339(),
        scim: u
            .provider_id
            .and_then(|_| serde_json::to_string_pretty(&*u.resource).ok()),
        mapping,
        legal_hold: u.legal_hold,
        changed_outside: u.changed_outside,
        buttons: buttons(u.status, u.legal_hold),
        local: u.provider_id.is_none().then(|| {
            (
                u.display_name.clone().unwrap_or_default(),
                u.primary_email().unwrap_or_default().to_string(),
            )
        }),
        orgs: orgs
            .iter()
            .filter(|o| o.org.status == OrgStatus::Active)
            .map(|o| Opt::new(o.org.id.to_string(), &o.path.join(" › "), Some(&org_id)))
            .collect(),
        roles: roles
            .iter()
            .map(|r| Opt {
                value: r.id.to_string(),
                label: r.name.clone(),
                selected: chosen.contains(&r.id),
            })
            .collect(),
        log: entries
            .iter()
            .map(|(_, e)| LogRow::new(e, &providers))
            .collect(),
    };
    render(status, &page)
}

/// `POST /console/users/{id}`: an administrator's action on a user.
pub async fn act(
    State(state): State<AppState>,
    Id(uid): Id<UserId>,
    posted: Posted<Directory>,
) -> Response {
    let Posted { console, form } = posted;
    let action = match form.field("action").as_deref() {
        Some("block") => UserAction::Block,
        Some("unblock") => UserAction::Unblock,
        Some("deactivate") => UserAction::Deactivate,
        Some("reactivate") => UserAction::Reactivate,
        Some("hold_on") => UserAction::LegalHold(true),
        Some("hold_off") => UserAction::LegalHold(false),
        Some("move") => match form.parsed("org") {
            Some(o) => UserAction::Move(o),
            None => return error_page(StatusCode::BAD_REQUEST, "Choose an organization."),
        },
        Some("roles") => UserAction::SetRoles(form.all("role")),
        Some("edit") => {
            let done = state
                .muster
                .update_local_user(
                    console.env(),
                    uid,
                    &form.field("displayName").unwrap_or_default(),
                    &form.field("email").unwrap_or_default(),
                    &console.actor(),
                )
                .await;
            return match done {
                Ok(_) => redirect(&format!("/console/users/{uid}")),
                Err(e @ CoreError::Store(_)) => internal(&e),
                Err(e) => {
                    user_page(&state, &console, uid, Some(&e.to_string()), status_of(&e)).await
                }
            };
        }
        _ => return error_page(StatusCode::BAD_REQUEST, "Unknown action."),
    };
    match state
        .muster
        .act_on_user(console.env(), uid, action, &console.actor())
        .await
    {
        Ok(_) => redirect(&format!("/console/users/{uid}")),
        Err(e @ CoreError::Store(_)) => internal(&e),
        Err(e) => user_page(&state, &console, uid, Some(&e.to_string()), status_of(&e)).await,
    }
}
