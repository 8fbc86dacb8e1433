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

//!
//! Each page is an askama template in `templates/console/` (escaping on); a handler parses its
//! request through the extractors of [`shell`], calls the core, and renders.

mod access;
mod admins;
mod apps;
mod groups;
mod guard;
mod html;
mod notifications;
pub mod oidc;
mod orgs;
mod providers;
mod roles;
mod shell;
mod synclog;
mod users;
mod webhooks;

use self::access::{Everyone, Providers};
use self::html::{render, Shell};
use self::shell::{error_page, redirect, Console, Posted};

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::state::AppState;

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

/// The console's routes.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/console", get(overview))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/oidc/start", get(oidc::start))
        .route("/console/oidc/callback", get(oidc::callback))
        .route("/console/assets/console.css", get(css))
        .route(
            "/console/providers",
            get(providers::list).post(providers::create),
        )
        .route(
            "/console/providers/{id}",
            get(providers::details).post(providers::act),
        )
        .route("/console/assets/console.js", get(js))
        .route("/console/users", get(users::list))
        .route("/console/users/{id}", get(users::show).post(users::act))
        .route("/console/orgs", get(orgs::page).post(orgs::act))
        .route("/console/apps", get(apps::page).post(apps::act))
        .route("/console/roles", get(roles::page).post(roles::act))
        .route("/console/admins", get(admins::page).post(admins::act))
        .route("/console/webhooks", get(webhooks::page).post(webhooks::act))
        .route(
            "/console/providers/{id}/guard",
            get(guard::page).post(guard::act),
        )
        .route(
            "/console/notifications",
            get(notifications::page).post(notifications::act),
        )
        .route(
            "/console/webhooks/{id}",
            get(webhooks::details).post(webhooks::details_act),
        )
        .route("/console/users/new", post(users::create))
        .route("/console/groups/{id}", get(groups::show))
        .route("/console/sync-log", get(synclog::page))
        .route("/console/sync-log/export.csv", get(synclog::export))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state,
            security_headers,
        ))
}

/// What no route answers (the whole application's fallback). A browser opening Muster's address
/// is sent to the console, and a console address typed with a trailing slash to the page without
/// it; anything else is the console's 404 page.
async fn not_found(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if method == Method::GET || method == Method::HEAD {
        if path == "/" {
            return redirect("/console");
        }
        if path.starts_with("/console/") && path.ends_with('/') {
            // Still under `/console` once trimmed, so never an address elsewhere.
            let mut to = path.trim_end_matches('/').to_string();
            if let Some(q) = uri.query() {
                to.push('?');
                to.push_str(q);
            }
            let mut resp = StatusCode::PERMANENT_REDIRECT.into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            return resp;
        }
    }
    error_page(StatusCode::NOT_FOUND, "There is no such page.")
}

/// Adds the console's security headers to every response under `/console`.
async fn security_headers(State(_state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
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

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    shell: Shell,
    error: Option<&'a str>,
    username: &'a str,
    /// The identity provider's name, when sign-in with it is configured.
    sso: Option<&'a str>,
    /// Password sign-in is only for break-glass accounts.
    break_glass_only: bool,
}

fn login_form(
    state: &AppState,
    status: StatusCode,
    error: Option<&str>,
    username: &str,
) -> Response {
    render(
        status,
        &LoginPage {
            shell: Shell::bare("Sign in"),
            error,
            username,
            sso: state.oidc.as_deref().map(crate::oidc::Oidc::label),
            break_glass_only: state.muster.settings.console.break_glass.is_some(),
        },
    )
}

async fn login_page(
    State(state): State<AppState>,
    q: axum::extract::Query<LoginQuery>,
) -> Response {
    let note = q
        .expired
        .as_ref()
        .map(|_| "Your session has ended. Sign in again.");
    login_form(&state, StatusCode::OK, note, "")
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let who = (
        crate::client_ip::of(&parts, &state.trusted_proxies),
        crate::limits::AuthTarget::Console,
    );
    let bytes = match axum::body::to_bytes(body, 16 * 1024).await {
        Ok(b) => b,
        Err(_) => return error_page(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."),
    };
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&bytes) else {
        return login_form(
            &state,
            StatusCode::BAD_REQUEST,
            Some("Enter a username and a password."),
            "",
        );
    };
    let refuse = |status: StatusCode, message: &str| {
        login_form(&state, status, Some(message), &form.username)
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
            let cookie = shell::session_cookie(&state, &signed.secret);
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

async fn logout(State(state): State<AppState>, posted: Posted<Everyone>) -> Response {
    let console = &posted.console;
    if let Err(e) = state
        .muster
        .sign_out(console.session.id, &console.admin)
        .await
    {
        tracing::error!(error = %e, "signing out failed");
    }
    // Signed in through the identity provider: end that session too, when it says how. A page
    // that moves on by itself, not a redirect: the console's CSP lets forms go only to Muster.
    let to = match (&state.oidc, &console.admin.oidc_subject) {
        (Some(oidc), Some(_)) => oidc
            .end_session_url()
            .await
            .map(|url| (url, oidc.label().to_string())),
        _ => None,
    };
    let mut resp = match to {
        Some((to, provider)) => render(
            StatusCode::OK,
            &SignedOut {
                shell: Shell::bare("Signed out"),
                to,
                provider,
            },
        ),
        None => redirect("/console/login"),
    };
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "muster_session=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    resp
}

#[derive(Template)]
#[template(path = "console/signed_out.html")]
struct SignedOut {
    shell: Shell,
    to: String,
    provider: String,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage<'a> {
    shell: Shell,
    username: &'a str,
    role: &'a str,
    /// Each provider's last 24 hours, for the roles that open Identity Management.
    providers: Option<Vec<ProviderDayRow>>,
}

/// One provider's last 24 hours on the overview, from the daily report's figures
/// ([`muster_core::notify::report::SyncReport`]).
struct ProviderDayRow {
    id: String,
    name: String,
    last_request: String,
    created: u64,
    updated: u64,
    turned_off: u64,
    errors: u64,
    top_error: String,
    pending: u64,
    /// `holding` (the guard holds its deactivations), `silent`, or `ok`.
    state: &'static str,
}

impl ProviderDayRow {
    fn new(d: muster_core::notify::report::ProviderDay) -> Self {
        let count = |actions: &[&str]| -> u64 {
            actions
                .iter()
                .map(|a| d.counts.get(*a).copied().unwrap_or(0))
                .sum()
        };
        ProviderDayRow {
            id: d.id.to_string(),
            name: d.name,
            last_request: d.last_request_at.unwrap_or_else(|| "never".into()),
            created: count(&["user.created", "user.restored"]),
            updated: count(&["user.updated"]),
            turned_off: count(&["user.blocked", "user.deactivated", "user.removed"]),
            errors: d.errors,
            top_error: d
                .top_errors
                .into_iter()
                .next()
                .map(|(m, n)| format!("{m} ({n})"))
                .unwrap_or_default(),
            pending: d.pending_total,
            state: if d.held {
                "holding"
            } else if d.silent {
                "silent"
            } else {
                "ok"
            },
        }
    }
}

async fn overview(State(state): State<AppState>, console: Console<Everyone>) -> Response {
    let providers = if access::opens::<Providers>(console.admin.role) {
        let now = state.muster.now();
        match state
            .muster
            .sync_report(console.env(), now.plus_secs(-86_400), now.plus_secs(1))
            .await
        {
            Ok(report) => Some(
                report
                    .providers
                    .into_iter()
                    .map(ProviderDayRow::new)
                    .collect(),
            ),
            Err(e) => return shell::internal(&e),
        }
    } else {
        None
    };
    render(
        StatusCode::OK,
        &OverviewPage {
            shell: console.shell("Overview", "/console"),
            username: &console.admin.username,
            role: console.admin.role.title(),
            providers,
        },
    )
}
