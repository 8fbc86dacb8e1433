//! What every console page shares: the signed-in administrator (session, role check, CSRF
//! token), error pages, redirects, and durations in words.

use super::html::{esc, Page};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use muster_core::model::{AdminAccount, AdminRole, AdminSession};

/// The session cookie's name.
pub const COOKIE: &str = "muster_session";

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let page = Page::bare(status.canonical_reason().unwrap_or("Error"))
        .body(format!(
            "<main><div class=\"card\"><h1>{}</h1><p>{}</p><p><a href=\"/console\">Back to the console</a></p></div></main>",
            esc(status.canonical_reason().unwrap_or("Error")),
            esc(message)
        ));
    (status, page.render()).into_response()
}

/// The page for a failure the administrator cannot fix; the cause goes to the server log.
pub(crate) fn internal(e: &muster_core::CoreError) -> Response {
    tracing::error!(error = %e, "a console request failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong. The server log has the details.",
    )
}

pub(crate) fn redirect(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

pub(crate) fn cookie_value(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// A signed-in administrator; requests without a live session are sent to the sign-in page.
pub struct Console {
    /// Who.
    pub admin: AdminAccount,
    /// Their session.
    pub session: AdminSession,
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(secret) = cookie_value(parts) else {
            return Err(redirect("/console/login"));
        };
        match state.muster.console_session(&secret).await {
            Ok(Some((session, admin))) => Ok(Console { admin, session }),
            Ok(None) => Err(redirect("/console/login?expired=1")),
            Err(e) => {
                tracing::error!(error = %e, "reading a console session failed");
                Err(error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong. The server log has the details.",
                ))
            }
        }
    }
}

impl Console {
    /// The refusal page when the administrator's role does not allow `roles`' pages.
    pub(crate) fn deny(&self, roles: &[AdminRole]) -> Option<Response> {
        if roles.contains(&self.admin.role) {
            None
        } else {
            Some(error_page(
                StatusCode::FORBIDDEN,
                &format!(
                    "Your role ({}) does not give access to this page.",
                    self.admin.role.title()
                ),
            ))
        }
    }

    pub(crate) fn page(&self, title: &str, current: &str) -> Page {
        Page::new(title, current, &self.admin, &self.session.csrf_token)
    }

    /// Checks the CSRF token a form sent.
    pub(crate) fn bad_csrf(&self, sent: &str) -> Option<Response> {
        if muster_core::auth::secret::hashes_match(
            sent.as_bytes(),
            self.session.csrf_token.as_bytes(),
        ) {
            None
        } else {
            Some(error_page(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this console. Reload the page and try again.",
            ))
        }
    }
}

/// A delay in words: "at once", "15 minutes", "2 hours", "7 days".
pub(crate) fn duration_words(secs: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match secs {
        0 => "at once".into(),
        s if s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}
