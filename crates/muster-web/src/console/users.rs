//! Users: search and filters (organization, status, provider) in pages the database serves,
//! a user's page (organization, roles and where they come from, status, pending deactivation,
//! owner, "changed outside provisioning", the user's sync log entries) and the administrator's
//! actions on a user.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use muster_core::ids::{OrgId, UserId};
use muster_core::model::{Actor, UserStatus};
use muster_core::store::{Cursor, LogQuery, UserQuery};
use muster_core::users::directory::UserAction;
use muster_core::{CoreError, Timestamp};
use serde::Deserialize;

use super::access::DIRECTORY;
use super::html::esc;
use super::shell::{error_page, internal, redirect, Console};
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

/// `GET /console/users`.
pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(q): Query<UsersQuery>,
) -> Response {
    if let Some(r) = console.deny(DIRECTORY) {
        return r;
    }
    let m = &state.muster;
    let env = console.admin.environment_id;
    let text = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let org = q.org.as_deref().and_then(|o| o.parse::<OrgId>().ok());
    let status = q.status.as_deref().and_then(UserStatus::parse);
    let provider = match q.provider.as_deref() {
        Some("local") => Some(None),
        Some(p) => p.parse().ok().map(Some),
        None => None,
    };
    let query = UserQuery {
        org,
        status,
        provider,
        text: text.map(str::to_string),
    };
    let after = q.after.as_deref().and_then(decode);
    let (users, next) = match m.query_users(env, &query, after, PAGE).await {
        Ok(r) => r,
        Err(e) => return internal(&e),
    };
    let (orgs, providers) = match (m.list_orgs(env, None).await, m.list_providers(env).await) {
        (Ok(o), Ok(p)) => (o, p),
        (Err(e), _) | (_, Err(e)) => return internal(&e),
    };
    let org_names: HashMap<OrgId, String> = orgs
        .iter()
        .map(|o| (o.org.id, o.org.name.clone()))
        .collect();
    let provider_names: HashMap<_, _> = providers.iter().map(|p| (p.id, p.name.clone())).collect();
    let sel = |a: bool| if a { " selected" } else { "" };
    let mut body = String::from("<h1>Users</h1><form class=\"inline\" method=\"get\" action=\"/console/users\" role=\"search\">");
    body.push_str(&format!(
        "<label>Search <input name=\"q\" type=\"search\" value=\"{}\" placeholder=\"userName or name\"></label>",
        esc(text.unwrap_or(""))
    ));
    body.push_str("<label>Organization <select name=\"org\"><option value=\"\">All</option>");
    for o in &orgs {
        body.push_str(&format!(
            "<option value=\"{}\"{}>{}</option>",
            o.org.id,
            sel(org == Some(o.org.id)),
            esc(&o.path.join(" › "))
        ));
    }
    body.push_str(
        "</select></label><label>Status <select name=\"status\"><option value=\"\">All</option>",
    );
    for s in ["active", "blocked", "deactivated"] {
        body.push_str(&format!(
            "<option value=\"{s}\"{}>{s}</option>",
            sel(status.map(|x| x.as_str()) == Some(s))
        ));
    }
    body.push_str("</select></label><label>Provider <select name=\"provider\"><option value=\"\">All</option>");
    body.push_str(&format!(
        "<option value=\"local\"{}>Local users</option>",
        sel(q.provider.as_deref() == Some("local"))
    ));
    for p in &providers {
        body.push_str(&format!(
            "<option value=\"{}\"{}>{}</option>",
            p.id,
            sel(provider == Some(Some(p.id))),
            esc(&p.name)
        ));
    }
    body.push_str("</select></label><button type=\"submit\">Search</button></form>");
    if users.is_empty() {
        body.push_str("<p class=\"muted\">No user matches.</p>");
    } else {
        body.push_str("<table><thead><tr><th scope=\"col\">User</th><th scope=\"col\">Organization</th><th scope=\"col\">Status</th><th scope=\"col\">Owner</th></tr></thead><tbody>");
        for u in &users {
            body.push_str(&format!(
                "<tr><td><a href=\"/console/users/{}\">{}</a><div class=\"muted\">{}</div></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                u.id,
                esc(&u.user_name),
                esc(u.display_name.as_deref().unwrap_or("")),
                esc(org_names.get(&u.org_id).map(String::as_str).unwrap_or("")),
                esc(u.status.as_str()),
                esc(&u
                    .provider_id
                    .map(|p| provider_names.get(&p).cloned().unwrap_or_default())
                    .unwrap_or_else(|| "local".into()))
            ));
        }
        body.push_str("</tbody></table>");
    }
    if let Some(c) = next {
        let mut params: Vec<(String, String)> = Vec::new();
        for (k, v) in [
            ("q", &q.q),
            ("org", &q.org),
            ("status", &q.status),
            ("provider", &q.provider),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                params.push((k.into(), v.into()));
            }
        }
        params.push(("after".into(), encode(&c)));
        let qs = serde_urlencoded::to_string(&params).unwrap_or_default();
        body.push_str(&format!(
            "<p><a href=\"/console/users?{}\">Next page</a></p>",
            esc(&qs)
        ));
    }
    console
        .page("Users", "/console/users")
        .body(body)
        .render()
        .into_response()
}

/// `GET /console/users/{id}`.
pub async fn show(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = console.deny(DIRECTORY) {
        return r;
    }
    let Ok(uid) = id.parse::<UserId>() else {
        return error_page(StatusCode::NOT_FOUND, "There is no such user.");
    };
    user_page(&state, &console, uid, None, StatusCode::OK).await
}

async fn user_page(
    state: &AppState,
    console: &Console,
    uid: UserId,
    error: Option<&str>,
    code: StatusCode,
) -> Response {
    let m = &state.muster;
    let env = console.admin.environment_id;
    let d = match m.user_detail(env, uid).await {
        Ok(d) => d,
        Err(CoreError::NotFound(_)) => {
            return error_page(StatusCode::NOT_FOUND, "There is no such user.")
        }
        Err(e) => return internal(&e),
    };
    let u = &d.user;
    let owner = match u.provider_id {
        Some(p) => m
            .get_provider(env, p)
            .await
            .map(|p| format!("provisioned by {}", p.name))
            .unwrap_or_else(|_| "provisioned".into()),
        None => "local (made by an administrator)".into(),
    };
    let log = LogQuery {
        subject: Some(uid.to_string()),
        ..LogQuery::default()
    };
    let entries = match m.query_sync_log(env, &log, None, 50).await {
        Ok((e, _)) => e,
        Err(e) => return internal(&e),
    };
    let orgs = match m.list_orgs(env, None).await {
        Ok(o) => o,
        Err(e) => return internal(&e),
    };
    let roles = match m.list_roles(env).await {
        Ok(r) => r,
        Err(e) => return internal(&e),
    };
    let csrf = esc(&console.session.csrf_token);
    let action = format!("/console/users/{uid}");
    let mut body = format!("<h1>{}</h1>", esc(&u.user_name));
    if let Some(e) = error {
        body.push_str(&format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)));
    }
    let pending = u
        .deactivate_at
        .map(|t| {
            format!(
                "<tr><th scope=\"row\">Pending deactivation</th><td>due {}</td></tr>",
                esc(&t.to_rfc3339())
            )
        })
        .unwrap_or_default();
    body.push_str(&format!(
        "<div class=\"card\"><table><tbody>\
         <tr><th scope=\"row\">Name</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Status</th><td>{}</td></tr>{pending}\
         <tr><th scope=\"row\">Organization</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Roles</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Owner</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Legal hold</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Changed outside provisioning</th><td>{}</td></tr>\
         </tbody></table></div>",
        esc(u.display_name.as_deref().unwrap_or("")),
        esc(u.status.as_str()),
        esc(&d.org.name),
        esc(&d
            .roles
            .iter()
            .map(|h| format!(
                "{} ({})",
                h.role.name,
                match h.source.as_str() {
                    "org" => "organization default",
                    "mapping" => "role mapping",
                    _ => "set by an administrator",
                }
            ))
            .collect::<Vec<_>>()
            .join(", ")),
        esc(&owner),
        if u.legal_hold { "on" } else { "off" },
        if u.changed_outside {
            "yes: the provider's next update will override organization and roles"
        } else {
            "no"
        }
    ));
    // Actions.
    let button = |act: &str, label: &str| {
        format!(
            "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"action\" value=\"{act}\"><button class=\"secondary\" type=\"submit\">{label}</button></form>"
        )
    };
    body.push_str("<div class=\"card\"><h2>Actions</h2><div class=\"inline\">");
    match u.status {
        UserStatus::Active => {
            body.push_str(&button("block", "Block"));
            body.push_str(&button("deactivate", "Deactivate"));
        }
        UserStatus::Blocked => {
            body.push_str(&button("unblock", "Unblock"));
            body.push_str(&button("deactivate", "Deactivate"));
        }
        UserStatus::Deactivated => body.push_str(&button("reactivate", "Reactivate")),
    }
    body.push_str(&button(
        if u.legal_hold { "hold_off" } else { "hold_on" },
        if u.legal_hold {
            "Release legal hold"
        } else {
            "Place on legal hold"
        },
    ));
    body.push_str("</div>");
    let org_options: String = orgs
        .iter()
        .filter(|o| o.org.status.as_str() == "active")
        .map(|o| {
            format!(
                "<option value=\"{}\"{}>{}</option>",
                o.org.id,
                if o.org.id == u.org_id {
                    " selected"
                } else {
                    ""
                },
                esc(&o.path.join(" › "))
            )
        })
        .collect();
    body.push_str(&format!(
        "<form class=\"inline\" method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"action\" value=\"move\">\
         <label>Organization <select name=\"org\">{org_options}</select></label><button type=\"submit\">Move</button></form>"
    ));
    let held: Vec<_> = d
        .roles
        .iter()
        .filter(|h| h.source.as_str() != "org")
        .map(|h| h.role.id)
        .collect();
    let role_boxes: String = roles
        .iter()
        .map(|r| {
            format!(
                "<label class=\"check\"><input type=\"checkbox\" name=\"role\" value=\"{}\"{}> {}</label>",
                r.id,
                if held.contains(&r.id) { " checked" } else { "" },
                esc(&r.name)
            )
        })
        .collect();
    body.push_str(&format!(
        "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"action\" value=\"roles\">\
         <fieldset><legend>Roles (none checked: the organization's defaults)</legend>{role_boxes}</fieldset><button type=\"submit\">Set roles</button></form></div>"
    ));
    // The user's sync log.
    body.push_str("<div class=\"card\"><h2>Sync log</h2><table><thead><tr><th scope=\"col\">Time</th><th scope=\"col\">Action</th><th scope=\"col\">Result</th><th scope=\"col\">Details</th></tr></thead><tbody>");
    for (_, e) in &entries {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&e.at.to_rfc3339()),
            esc(e.action.as_str()),
            esc(e.outcome.as_str()),
            esc(&e.details.to_string())
        ));
    }
    body.push_str("</tbody></table></div>");
    (
        code,
        console
            .page(&u.user_name, "/console/users")
            .body(body)
            .render(),
    )
        .into_response()
}

/// `POST /console/users/{id}`: an administrator's action on a user.
pub async fn act(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = console.deny(DIRECTORY) {
        return r;
    }
    let Ok(uid) = id.parse::<UserId>() else {
        return error_page(StatusCode::NOT_FOUND, "There is no such user.");
    };
    // Repeated `role` fields: read as pairs.
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return error_page(StatusCode::BAD_REQUEST, "The form could not be read.");
    };
    let field = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(r) = console.bad_csrf(&field("csrf").unwrap_or_default()) {
        return r;
    }
    let action = match field("action").as_deref() {
        Some("block") => UserAction::Block,
        Some("unblock") => UserAction::Unblock,
        Some("deactivate") => UserAction::Deactivate,
        Some("reactivate") => UserAction::Reactivate,
        Some("hold_on") => UserAction::LegalHold(true),
        Some("hold_off") => UserAction::LegalHold(false),
        Some("move") => match field("org").and_then(|o| o.parse().ok()) {
            Some(o) => UserAction::Move(o),
            None => return error_page(StatusCode::BAD_REQUEST, "Choose an organization."),
        },
        Some("roles") => UserAction::SetRoles(
            pairs
                .iter()
                .filter(|(k, _)| k == "role")
                .filter_map(|(_, v)| v.parse().ok())
                .collect(),
        ),
        _ => return error_page(StatusCode::BAD_REQUEST, "Unknown action."),
    };
    let actor = Actor::Admin {
        name: format!("console:{}", console.admin.username),
    };
    match state
        .muster
        .act_on_user(console.admin.environment_id, uid, action, &actor)
        .await
    {
        Ok(_) => redirect(&format!("/console/users/{uid}")),
        Err(CoreError::Store(e)) => internal(&CoreError::Store(e)),
        Err(e) => {
            let code = match e {
                CoreError::NotFound(_) => StatusCode::NOT_FOUND,
                CoreError::Conflict(_) => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            };
            user_page(&state, &console, uid, Some(&e.to_string()), code).await
        }
    }
}
