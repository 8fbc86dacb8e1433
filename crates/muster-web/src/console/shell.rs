//! What every console page shares: the signed-in administrator, checked against the page's
//! section ([`Console`]); a posted form with its CSRF token checked ([`Posted`]); an id from the
//! path ([`Id`]); error pages, redirects, and durations in words.

use std::marker::PhantomData;
use std::str::FromStr;

use super::access::Section;
use super::html::{render, Message, Shell};
use crate::state::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use muster_core::ids::{ProviderId, UserId};
use muster_core::model::{Actor, AdminAccount, AdminSession};
use muster_core::CoreError;

/// The session cookie's name.
pub const COOKIE: &str = "muster_session";

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let heading = status.canonical_reason().unwrap_or("Error");
    render(
        status,
        &Message {
            shell: Shell::bare(heading),
            heading,
            message,
        },
    )
}

/// The page for a failure the administrator cannot fix; the cause goes to the server log.
pub(crate) fn internal(e: &CoreError) -> Response {
    tracing::error!(error = %e, "a console request failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong. The server log has the details.",
    )
}

/// The status a refused change is answered with, when the page is shown again with the reason.
pub(crate) fn status_of(e: &CoreError) -> StatusCode {
    match e {
        CoreError::Conflict(_) => StatusCode::CONFLICT,
        CoreError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    }
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

/// A signed-in administrator whose role opens section `S`. Without a live session the request
/// is sent to the sign-in page; with a role that does not open `S` it gets a 403 page.
pub struct Console<S> {
    /// Who.
    pub admin: AdminAccount,
    /// Their session.
    pub session: AdminSession,
    /// Providers whose deactivations are held (id, name, users turned off), for the banner.
    held: Vec<(muster_core::ids::ProviderId, String, i64)>,
    section: PhantomData<S>,
}

impl<S: Section> FromRequestParts<AppState> for Console<S> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(secret) = cookie_value(parts) else {
            return Err(redirect("/console/login"));
        };
        let (session, admin) = match state.muster.console_session(&secret).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(redirect("/console/login?expired=1")),
            Err(e) => {
                tracing::error!(error = %e, "reading a console session failed");
                return Err(error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong. The server log has the details.",
                ));
            }
        };
        if !S::ROLES.contains(&admin.role) {
            return Err(error_page(
                StatusCode::FORBIDDEN,
                &format!(
                    "Your role ({}) does not give access to this page.",
                    admin.role.title()
                ),
            ));
        }
        // Usually none: one indexed read per page.
        let mut held = Vec::new();
        for g in state
            .muster
            .held_guards(admin.environment_id)
            .await
            .unwrap_or_default()
        {
            if let Ok(p) = state
                .muster
                .get_provider(g.environment_id, g.provider_id)
                .await
            {
                held.push((p.id, p.name, g.held_turned_off));
            }
        }
        Ok(Console {
            admin,
            session,
            held,
            section: PhantomData,
        })
    }
}

impl<S> Console<S> {
    /// The frame of a page of this section; `current` is the navigation link to mark.
    pub(crate) fn shell(&self, title: &str, current: &str) -> Shell {
        let held = self
            .held
            .iter()
            .map(|(id, name, n)| super::html::HeldBanner {
                name: name.clone(),
                turned_off: *n,
                link: super::access::opens::<super::access::Providers>(self.admin.role)
                    .then(|| format!("/console/providers/{id}/guard")),
            })
            .collect();
        Shell::new(title, current, &self.admin, &self.session.csrf_token, held)
    }

    /// The administrator as the sync log names them.
    pub(crate) fn actor(&self) -> Actor {
        Actor::Admin {
            name: format!("console:{}", self.admin.username),
        }
    }

    /// The environment the administrator belongs to.
    pub(crate) fn env(&self) -> muster_core::ids::EnvironmentId {
        self.admin.environment_id
    }
}

/// A form's fields, in the order sent (repeated names such as `role` kept).
pub struct Form(Vec<(String, String)>);

impl Form {
    /// The first value of a field, trimmed; `None` when absent or empty.
    pub fn field(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// Whether a field was sent (a checked checkbox).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// Every value of a repeated field that parses as `T`.
    pub fn all<T: FromStr>(&self, name: &str) -> Vec<T> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .filter_map(|(_, v)| v.trim().parse().ok())
            .collect()
    }

    /// A field parsed as `T`, `None` when absent or not of that form.
    pub fn parsed<T: FromStr>(&self, name: &str) -> Option<T> {
        self.field(name).and_then(|v| v.parse().ok())
    }
}

/// A form posted by an administrator whose role opens section `S`, its CSRF token checked.
pub struct Posted<S> {
    pub console: Console<S>,
    pub form: Form,
}

impl<S: Section> FromRequest<AppState> for Posted<S> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let console = Console::<S>::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, crate::state::MAX_BODY_BYTES)
            .await
            .map_err(|_| error_page(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."))?;
        let pairs = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .map_err(|_| error_page(StatusCode::BAD_REQUEST, "The form could not be read."))?;
        let form = Form(pairs);
        let sent = form.field("csrf").unwrap_or_default();
        if !muster_core::auth::secret::hashes_match(
            sent.as_bytes(),
            console.session.csrf_token.as_bytes(),
        ) {
            return Err(error_page(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this console. Reload the page and try again.",
            ));
        }
        Ok(Posted { console, form })
    }
}

/// An id the console's paths carry, and what its page says when there is no such thing.
pub trait PathId: FromStr + Send {
    /// The 404 page's message.
    const MISSING: &'static str;
}

impl PathId for ProviderId {
    const MISSING: &'static str = "There is no such provider.";
}

impl PathId for UserId {
    const MISSING: &'static str = "There is no such user.";
}

/// The id in the path; one that does not parse gets the 404 page.
pub struct Id<T>(pub T);

impl<T: PathId> FromRequestParts<AppState> for Id<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| error_page(StatusCode::NOT_FOUND, T::MISSING))?;
        raw.parse()
            .map(Id)
            .map_err(|_| error_page(StatusCode::NOT_FOUND, T::MISSING))
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

/// A time as the console shows it, or `never`.
pub(crate) fn when(t: Option<muster_core::Timestamp>) -> String {
    t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into())
}

/// The session cookie for a signed-in administrator.
pub(crate) fn session_cookie(state: &AppState, secret: &str) -> String {
    let secure = if state.muster.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{COOKIE}={secret}; Path=/console; HttpOnly; SameSite=Strict{secure}")
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

    #[test]
    fn forms_keep_repeated_fields_and_drop_empty_ones() {
        let form = Form(vec![
            ("role".into(), "1".into()),
            ("name".into(), "  ".into()),
            ("role".into(), "x".into()),
            ("role".into(), "3".into()),
        ]);
        assert_eq!(form.all::<u32>("role"), vec![1, 3]);
        assert_eq!(form.field("name"), None);
        assert!(form.has("name"));
        assert_eq!(form.parsed::<u32>("role"), Some(1));
    }
}
