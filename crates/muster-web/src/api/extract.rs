//! What every API handler shares: the administrator token extractor (with its failed-attempt
//! limit), the JSON body extractor, errors as JSON, and id parsing.

use super::body::{ErrorBody, ErrorDetail};
use crate::bearer::Refusal;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::Method;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use muster_core::ids::EnvironmentId;
use muster_core::model::{Actor, Scope};
use muster_core::CoreError;
use serde::de::DeserializeOwned;

/// An API error: a status and `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "not_found", m),
            CoreError::Invalid(m) => Self::bad_request(m),
            CoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            CoreError::Unauthorized(m) => Self::new(StatusCode::UNAUTHORIZED, "unauthorized", m),
            CoreError::Stale(m) => Self::new(StatusCode::PRECONDITION_FAILED, "stale", m),
            CoreError::Busy(m) => Self::new(StatusCode::CONFLICT, "busy", m),
            CoreError::Scim(s) => Self::new(
                StatusCode::from_u16(s.status).unwrap_or(StatusCode::BAD_REQUEST),
                "invalid",
                s.detail,
            ),
            CoreError::Store(cause) => {
                tracing::error!(error = %cause, "storage failed while answering an API request");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "An internal error occurred. The server log has the details.",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"Muster API\""),
            );
        }
        resp
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

pub(crate) async fn api_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API endpoint")
}

/// A method the endpoint does not take: 405 as the API's JSON error, with `Allow`.
pub(crate) async fn api_method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this endpoint does not take {method}; the Allow header lists what it takes"),
    )
}

/// Whether an application credential with `scopes` may make this request: reads only, of the
/// directory (`directory:read`) or of the event feed (`events:read`). `path` is relative to
/// `/api/v1` (or starts with it).
pub(crate) fn app_may(method: &Method, path: &str, scopes: &[Scope]) -> bool {
    if method != Method::GET {
        return false;
    }
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "users" | "groups" | "orgs" | "roles" => scopes.contains(&Scope::DirectoryRead),
        "events" => scopes.contains(&Scope::EventsRead),
        _ => false,
    }
}

/// The administrator a request comes from, by API token.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    /// The environment the token belongs to.
    pub env: EnvironmentId,
    /// Who, for the sync log.
    pub actor: Actor,
}

/// The API's 429: why, and `Retry-After`.
fn too_many(wait: std::time::Duration, what: &str) -> ApiError {
    let secs = crate::limits::retry_after_secs(wait);
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "{what}: retry after {}",
            muster_core::words::count(secs, "second", "seconds")
        ),
    );
    e.retry_after = Some(secs);
    e
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let checked = crate::bearer::authenticate(
            parts,
            state,
            crate::limits::AuthTarget::Api,
            crate::bearer::Schemes::Bearer,
            |token| async move { state.muster.authenticate_admin(&token).await },
        )
        .await;
        let t = match checked {
            Ok(t) => t,
            Err(Refusal::Throttled(wait)) => {
                return Err(too_many(
                    wait,
                    "too many failed authentications from this address",
                ))
            }
            Err(Refusal::Missing) => {
                return Err(unauthorized(
                    "send an administrator API token as 'Authorization: Bearer <token>'",
                ))
            }
            Err(Refusal::NotBearer | Refusal::MalformedBasic) => {
                return Err(unauthorized(
                    "the Authorization header must use the Bearer scheme",
                ))
            }
            Err(Refusal::Refused(m)) => return Err(unauthorized(&m)),
            Err(Refusal::Failed(e)) => return Err(e.into()),
        };
        if let Some(scopes) = &t.scopes {
            if !app_may(&parts.method, parts.uri.path(), scopes) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "an application credential can only read: users, groups, organizations and roles with directory:read, events with events:read",
                ));
            }
        }
        if let Err(wait) = state.limits.api_request(t.id) {
            return Err(too_many(
                wait,
                "this credential is over its request rate limit",
            ));
        }
        let who = if t.scopes.is_some() {
            "app"
        } else {
            "api-token"
        };
        Ok(AdminAuth {
            env: t.environment_id,
            actor: Actor::Admin {
                name: format!(
                    "{who}:{}",
                    t.label.clone().chars().take(40).collect::<String>()
                ),
            },
        })
    }
}

/// Query parameters; ones that do not parse are a JSON 400, never a plain-text one.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        // Through serde_path_to_error, so that the error names the parameter: serde_urlencoded's
        // own says only what was wrong ("invalid digit found in string").
        let params = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(params)
            .map(ApiQuery)
            .map_err(|e| {
                let name = e.path().to_string();
                let why = e.into_inner();
                ApiError::bad_request(match name.as_str() {
                    "" | "." => format!("invalid query parameters: {why}"),
                    _ => format!("invalid query parameter '{name}': {why}"),
                })
            })
    }
}

/// A JSON body; malformed JSON is a JSON 400, never a plain-text one.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "the request body is too large",
                )
            } else {
                ApiError::bad_request("the request body could not be read")
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// A list cursor as the API shows it: opaque to clients.
pub(crate) fn encode_cursor(c: &muster_core::store::Cursor) -> String {
    format!("{}_{}", c.created_at.micros(), c.id.simple())
}

/// A cursor a client passed back.
pub(crate) fn decode_cursor(text: &str) -> Result<muster_core::store::Cursor, ApiError> {
    let bad =
        || ApiError::bad_request("invalid cursor: pass back the nextCursor of the previous page");
    let (t, id) = text.split_once('_').ok_or_else(bad)?;
    Ok(muster_core::store::Cursor {
        created_at: muster_core::Timestamp(t.parse().map_err(|_| bad())?),
        id: id.parse().map_err(|_| bad())?,
    })
}

pub(crate) fn parse_id<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, ApiError> {
    text.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} with id '{text}'"),
        )
    })
}

pub(crate) fn ok<T: serde::Serialize>(status: StatusCode, body: T) -> ApiResult {
    Ok((status, Json(body)).into_response())
}

/// The errors every endpoint may answer with, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only described, never built: ApiError is what handlers return
pub(crate) enum ApiErrors {
    /// The request is invalid: a bad value, a body that is not the expected JSON.
    #[response(status = 400)]
    Invalid(ErrorBody),
    /// No administrator API token, or one that is wrong, revoked or expired.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Nothing with that id.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The change conflicts with what exists (a duplicate name, a role in use).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// An application credential asked for something it may not do.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// This credential is over its request rate, or this address failed authentication too
    /// often; see `Retry-After`.
    #[response(status = 429)]
    RateLimited(ErrorBody),
}
