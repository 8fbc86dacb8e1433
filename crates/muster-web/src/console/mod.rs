//! The administration console under `/console`: server-rendered pages, every asset in the
//! binary, no script.
//!
//! Sign-in is by username and password (argon2id); the session lives in an `HttpOnly`,
//! `SameSite=Strict` cookie (`Secure` when Muster is served over HTTPS) and ends after 30 minutes
//! without a request. Every state-changing request is a POST carrying the session's CSRF token.
//! Every response carries a strict Content-Security-Policy, `X-Frame-Options: DENY`,
//! `X-Content-Type-Options: nosniff` and `Cache-Control: no-store`. What an administrator may
//! open follows their role: Customer Cloud Admin everything, Identity Management Administrator
//! providers and mappings, Audit Log Viewer the sync log, read-only.

mod access;
mod shell;

use self::access::{DIRECTORY, EVERYONE, PROVIDERS};
use self::shell::{duration_words, error_page, redirect, Console, COOKIE};
mod html;
mod providers;
mod synclog;
mod users;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::state::AppState;
use html::{esc, Page};

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

/// The console's routes.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/console", get(dashboard))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/assets/console.css", get(css))
        .route("/console/providers", get(providers).post(providers::create))
        .route(
            "/console/providers/{id}",
            get(providers::details).post(providers::act),
        )
        .route("/console/assets/console.js", get(js))
        .route("/console/users", get(users::list))
        .route("/console/users/{id}", get(users::show).post(users::act))
        .route("/console/orgs", get(orgs).post(org_action))
        .route("/console/sync-log", get(synclog::page))
        .route("/console/sync-log/export.csv", get(synclog::export))
        .fallback(|| async { error_page(StatusCode::NOT_FOUND, "There is no such page.") })
        .layer(axum::middleware::from_fn_with_state(
            state,
            security_headers,
        ))
}

/// Adds the console's security headers to every response under `/console`.
async fn security_headers(State(_state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn js() -> Response {
    let mut resp = JS.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}

async fn css() -> Response {
    let mut resp = CSS.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    expired: Option<String>,
}

fn login_form(error: Option<&str>, username: &str) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "<main class=\"signin\"><div class=\"card\"><h1>Sign in to Muster</h1>{error}\
         <form class=\"stack\" method=\"post\" action=\"/console/login\">\
         <label>Username <input name=\"username\" autocomplete=\"username\" required value=\"{}\" autofocus></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Sign in</button></form></div></main>",
        esc(username)
    )
}

async fn login_page(q: axum::extract::Query<LoginQuery>) -> Response {
    let note = q
        .expired
        .as_ref()
        .map(|_| "Your session has ended. Sign in again.");
    Page::bare("Sign in")
        .body(login_form(note, ""))
        .render()
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let who = (crate::bearer::peer_ip(&parts), "console".to_string());
    let bytes = match axum::body::to_bytes(body, 16 * 1024).await {
        Ok(b) => b,
        Err(_) => return error_page(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."),
    };
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&bytes) else {
        let page =
            Page::bare("Sign in").body(login_form(Some("Enter a username and a password."), ""));
        return (StatusCode::BAD_REQUEST, page.render()).into_response();
    };
    let refuse = |status: StatusCode, message: &str| {
        let page = Page::bare("Sign in").body(login_form(Some(message), &form.username));
        (status, page.render()).into_response()
    };
    if let Err(wait) = state.limits.may_authenticate(&who) {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many failed sign-ins from this address: try again in {} seconds.",
                crate::limits::retry_after_secs(wait)
            ),
        );
    }
    let env = match state.muster.find_environment(&state.environment).await {
        Ok(Some(env)) => env.id,
        Ok(None) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "The console is not ready: its environment does not exist yet.",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "a console sign-in could not read its environment");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database does not answer.",
            );
        }
    };
    match state
        .muster
        .sign_in(env, &form.username, &form.password)
        .await
    {
        Ok(Ok(signed)) => {
            let secure = if state.muster.settings.public_url.starts_with("https://") {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict{secure}",
                signed.secret
            );
            let mut resp = redirect("/console");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Ok(Err(refused)) => {
            state.limits.failed_authentication(&who);
            let status = if refused.retry_after.is_some() {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            };
            refuse(status, &refused.message)
        }
        Err(e) => {
            tracing::error!(error = %e, "a console sign-in failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong. The server log has the details.",
            )
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(state): State<AppState>, console: Console, body: Bytes) -> Response {
    let form: CsrfForm = serde_urlencoded::from_bytes(&body).unwrap_or(CsrfForm {
        csrf: String::new(),
    });
    if let Some(r) = console.bad_csrf(&form.csrf) {
        return r;
    }
    if let Err(e) = state.muster.sign_out(console.session.id).await {
        tracing::error!(error = %e, "signing out failed");
    }
    let mut resp = redirect("/console/login");
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "muster_session=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    resp
}

async fn dashboard(State(state): State<AppState>, console: Console) -> Response {
    if let Some(r) = console.deny(EVERYONE) {
        return r;
    }
    let env = console.admin.environment_id;
    let mut body = format!(
        "<h1>Overview</h1><p>Signed in as <strong>{}</strong> ({}).</p>",
        esc(&console.admin.username),
        esc(console.admin.role.title())
    );
    if PROVIDERS.contains(&console.admin.role) {
        match state.muster.list_providers(env).await {
            Ok(ps) => {
                body.push_str("<div class=\"grid\">");
                body.push_str(&format!(
                    "<div class=\"card\"><div class=\"muted\">Provisioning providers</div><div class=\"stat\">{}</div><a href=\"/console/providers\">Identity Management</a></div>",
                    ps.len()
                ));
                body.push_str("</div>");
            }
            Err(e) => tracing::error!(error = %e, "listing providers failed"),
        }
    }
    console
        .page("Overview", "/console")
        .body(body)
        .render()
        .into_response()
}

async fn providers(State(state): State<AppState>, console: Console) -> Response {
    if let Some(r) = console.deny(PROVIDERS) {
        return r;
    }
    let ps = match state
        .muster
        .list_providers(console.admin.environment_id)
        .await
    {
        Ok(ps) => ps,
        Err(e) => {
            tracing::error!(error = %e, "listing providers failed");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.");
        }
    };
    let mut body = String::from("<h1>Identity Management</h1><h2>Provisioning</h2>");
    body.push_str(&providers::add_form(&console.session.csrf_token, None, ""));
    if ps.is_empty() {
        body.push_str("<p class=\"muted\">No provisioning provider yet.</p>");
    } else {
        body.push_str("<table><thead><tr><th scope=\"col\">Provider</th><th scope=\"col\">SCIM base URL</th><th scope=\"col\">Deactivation delay</th><th scope=\"col\">Last sync</th></tr></thead><tbody>");
        for p in &ps {
            body.push_str(&format!(
                "<tr><td><a href=\"/console/providers/{}\">{}</a></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                p.id,
                esc(&p.name),
                esc(&state.muster.scim_base_url(p.id)),
                esc(&duration_words(p.deactivation_delay_secs)),
                p.last_sync_at
                    .map(|t| esc(&t.to_rfc3339()))
                    .unwrap_or_else(|| "never".into())
            ));
        }
        body.push_str("</tbody></table>");
    }
    console
        .page("Identity Management", "/console/providers")
        .body(body)
        .render()
        .into_response()
}

#[derive(Deserialize, Default)]
struct OrgsQuery {
    status: Option<String>,
}

/// Organizations (the administrator guide, Step 1): the active or deactivated ones as a tree,
/// and forms to add one (at the top or under another), rename, move, deactivate and reactivate.
async fn orgs(
    State(state): State<AppState>,
    console: Console,
    q: axum::extract::Query<OrgsQuery>,
) -> Response {
    if let Some(r) = console.deny(DIRECTORY) {
        return r;
    }
    orgs_page(&state, &console, q.status.as_deref(), None, StatusCode::OK).await
}

async fn orgs_page(
    state: &AppState,
    console: &Console,
    status: Option<&str>,
    error: Option<(&str, &str)>,
    code: StatusCode,
) -> Response {
    use muster_core::model::OrgStatus;
    let show = if status == Some("deactivated") {
        OrgStatus::Deactivated
    } else {
        OrgStatus::Active
    };
    let all = match state
        .muster
        .list_orgs(console.admin.environment_id, None)
        .await
    {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "listing organizations failed");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.");
        }
    };
    let roles = match state.muster.list_roles(console.admin.environment_id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "listing roles failed");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.");
        }
    };
    let csrf = esc(&console.session.csrf_token);
    let active: Vec<_> = all
        .iter()
        .filter(|o| o.org.status == OrgStatus::Active)
        .collect();
    let options = |selected: Option<muster_core::ids::OrgId>| -> String {
        active
            .iter()
            .map(|o| {
                let sel = if Some(o.org.id) == selected {
                    " selected"
                } else {
                    ""
                };
                format!(
                    "<option value=\"{}\"{sel}>{}</option>",
                    o.org.id,
                    esc(&o.path.join(" › "))
                )
            })
            .collect()
    };
    let alert = |form: &str| -> String {
        match error {
            Some((f, message)) if f == form => {
                format!("<p class=\"error\" role=\"alert\">{}</p>", esc(message))
            }
            _ => String::new(),
        }
    };
    let (active_cur, deact_cur) = if show == OrgStatus::Active {
        (" aria-current=\"page\"", "")
    } else {
        ("", " aria-current=\"page\"")
    };
    let mut body = format!(
        "<h1>Organizations</h1><p><a href=\"/console/orgs\"{active_cur}>Active</a> · \
         <a href=\"/console/orgs?status=deactivated\"{deact_cur}>Deactivated</a></p>"
    );
    if show == OrgStatus::Active {
        body.push_str(&format!(
            "<div class=\"card\"><h2>Add organization</h2>{}\
             <form class=\"stack\" method=\"post\" action=\"/console/orgs\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"action\" value=\"create\">\
             <label>Name <input name=\"name\" required minlength=\"3\" maxlength=\"220\"></label>\
             <label>Parent organization <select name=\"parent\">{}</select></label>\
             <button type=\"submit\">Add organization</button></form></div>",
            alert("create"),
            options(None)
        ));
    }
    body.push_str(&alert("row"));
    body.push_str("<table><thead><tr><th scope=\"col\">Organization</th><th scope=\"col\">Default roles</th><th scope=\"col\">Actions</th></tr></thead><tbody>");
    for o in all.iter().filter(|o| o.org.status == show) {
        let depth = o.path.len().saturating_sub(1);
        let id = o.org.id;
        let hidden = |action: &str| {
            format!(
                "<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"action\" value=\"{action}\"><input type=\"hidden\" name=\"org\" value=\"{id}\">"
            )
        };
        let mut actions = String::new();
        if show == OrgStatus::Active {
            actions.push_str(&format!(
                "<form method=\"post\" action=\"/console/orgs\">{}<label>Rename <input name=\"name\" value=\"{}\" required minlength=\"3\" maxlength=\"220\"></label> <button class=\"secondary\" type=\"submit\">Rename</button></form>",
                hidden("rename"),
                esc(&o.org.name)
            ));
            actions.push_str(&format!(
                "<form method=\"post\" action=\"/console/orgs\">{}<label>Add child organization <input name=\"name\" required minlength=\"3\" maxlength=\"220\"></label> <button class=\"secondary\" type=\"submit\">Add child</button></form>",
                hidden("child")
            ));
            let own = o.default_roles_from == Some(o.org.id);
            let held: Vec<_> = o.effective_default_roles.iter().map(|r| r.id).collect();
            let boxes: String = roles
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
            actions.push_str(&format!(
                "<details><summary>Default roles of {}</summary><form method=\"post\" action=\"/console/orgs\">{}<fieldset><legend>Default roles</legend>{boxes}</fieldset>\
                 <label class=\"check\"><input type=\"checkbox\" name=\"inherit\" value=\"1\"{}> Inherit the parent's default roles</label> \
                 <button class=\"secondary\" type=\"submit\">Save default roles</button></form></details>",
                esc(&o.org.name),
                hidden("roles"),
                if own || o.org.parent_id.is_none() { "" } else { " checked" }
            ));
            if o.org.parent_id.is_some() {
                actions.push_str(&format!(
                    "<form method=\"post\" action=\"/console/orgs\">{}<label>Move under <select name=\"parent\">{}</select></label> <button class=\"secondary\" type=\"submit\">Move</button></form>",
                    hidden("move"),
                    options(o.org.parent_id)
                ));
                actions.push_str(&format!(
                    "<form method=\"post\" action=\"/console/orgs\">{}<button class=\"secondary\" type=\"submit\">Deactivate {}</button></form>",
                    hidden("deactivate"),
                    esc(&o.org.name)
                ));
            }
        } else {
            actions.push_str(&format!(
                "<form method=\"post\" action=\"/console/orgs\">{}<button class=\"secondary\" type=\"submit\">Reactivate {}</button></form>",
                hidden("reactivate"),
                esc(&o.org.name)
            ));
        }
        body.push_str(&format!(
            "<tr><td class=\"depth{}\">{}</td><td>{}</td><td class=\"actions\">{actions}</td></tr>",
            depth.min(8),
            esc(&o.org.name),
            esc(&o
                .effective_default_roles
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", "))
        ));
    }
    body.push_str("</tbody></table>");
    (
        code,
        console
            .page("Organizations", "/console/orgs")
            .body(body)
            .render(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct OrgForm {
    #[serde(default)]
    csrf: String,
    action: String,
    org: Option<String>,
    name: Option<String>,
    parent: Option<String>,
}

async fn org_action(State(state): State<AppState>, console: Console, body: Bytes) -> Response {
    if let Some(r) = console.deny(DIRECTORY) {
        return r;
    }
    let Ok(form) = serde_urlencoded::from_bytes::<OrgForm>(&body) else {
        return error_page(StatusCode::BAD_REQUEST, "The form could not be read.");
    };
    if let Some(r) = console.bad_csrf(&form.csrf) {
        return r;
    }
    let m = &state.muster;
    let env = console.admin.environment_id;
    let actor = muster_core::model::Actor::Admin {
        name: format!("console:{}", console.admin.username),
    };
    let org_id = |v: &Option<String>| -> Option<muster_core::ids::OrgId> {
        v.as_deref().and_then(|s| s.parse().ok())
    };
    let name = form.name.clone().unwrap_or_default();
    let (which, result) = match form.action.as_str() {
        "create" => (
            "create",
            m.create_org(env, &name, org_id(&form.parent), &actor)
                .await
                .map(|_| ()),
        ),
        "child" => match org_id(&form.org) {
            Some(parent) => (
                "row",
                m.create_org(env, &name, Some(parent), &actor)
                    .await
                    .map(|_| ()),
            ),
            None => (
                "row",
                Err(muster_core::CoreError::Invalid(
                    "no such organization".into(),
                )),
            ),
        },
        "rename" => match org_id(&form.org) {
            Some(id) => (
                "row",
                m.rename_org(env, id, &name, &actor).await.map(|_| ()),
            ),
            None => (
                "row",
                Err(muster_core::CoreError::Invalid(
                    "no such organization".into(),
                )),
            ),
        },
        "move" => match (org_id(&form.org), org_id(&form.parent)) {
            (Some(id), Some(parent)) => {
                ("row", m.move_org(env, id, parent, &actor).await.map(|_| ()))
            }
            _ => (
                "row",
                Err(muster_core::CoreError::Invalid(
                    "choose an organization to move it under".into(),
                )),
            ),
        },
        "roles" => match org_id(&form.org) {
            Some(id) => {
                let pairs: Vec<(String, String)> =
                    serde_urlencoded::from_bytes(&body).unwrap_or_default();
                let inherit = pairs.iter().any(|(k, _)| k == "inherit");
                let chosen: Vec<muster_core::ids::RoleId> = pairs
                    .iter()
                    .filter(|(k, _)| k == "role")
                    .filter_map(|(_, v)| v.parse().ok())
                    .collect();
                (
                    "row",
                    m.set_org_default_roles(env, id, (!inherit).then_some(chosen), &actor)
                        .await
                        .map(|_| ()),
                )
            }
            None => (
                "row",
                Err(muster_core::CoreError::Invalid(
                    "no such organization".into(),
                )),
            ),
        },
        "deactivate" | "reactivate" => match org_id(&form.org) {
            Some(id) => (
                "row",
                m.set_org_active(env, id, form.action == "reactivate", &actor)
                    .await
                    .map(|_| ()),
            ),
            None => (
                "row",
                Err(muster_core::CoreError::Invalid(
                    "no such organization".into(),
                )),
            ),
        },
        _ => return error_page(StatusCode::BAD_REQUEST, "Unknown action."),
    };
    match result {
        Ok(()) => redirect(if form.action == "reactivate" {
            "/console/orgs?status=deactivated"
        } else {
            "/console/orgs"
        }),
        Err(muster_core::CoreError::Store(e)) => {
            tracing::error!(error = %e, "an organization change failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong. The server log has the details.",
            )
        }
        Err(e) => {
            let status = if form.action == "reactivate" {
                Some("deactivated")
            } else {
                None
            };
            let code = match e {
                muster_core::CoreError::Conflict(_) => StatusCode::CONFLICT,
                muster_core::CoreError::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            orgs_page(
                &state,
                &console,
                status,
                Some((which, &e.to_string())),
                code,
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_read_as_words() {
        assert_eq!(duration_words(0), "at once");
        assert_eq!(duration_words(900), "15 minutes");
        assert_eq!(duration_words(3600), "1 hour");
        assert_eq!(duration_words(7 * 86_400), "7 days");
        assert_eq!(duration_words(90), "90 seconds");
    }
}
