//! What SCIM handlers extract from a request: the authenticated provider, the JSON body, the
//! query parameters and the conditional headers.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use muster_core::ids::{EnvironmentId, ProviderId};
use muster_core::ProviderCtx;
use muster_scim::list::ListParams;
use muster_scim::version::Tags;
use muster_scim::{Projection, ResourceTypeDef, ScimError};
use serde_json::Value;

use crate::bearer::Refusal;
use crate::error::ScimErrorResponse;
use crate::limits;
use crate::state::AppState;

/// A SCIM request whose URL names no provider: a base URL entered without the provider's id is
/// the usual cause, so the answer says what a base URL looks like and where to find it.
pub(crate) fn no_provider() -> ScimErrorResponse {
    ScimErrorResponse(ScimError::not_found(
        "no provisioning provider at this URL: a SCIM base URL ends in its provider's id \
         (/scim/v2/<provider id>); the console's Identity Management page and \
         `muster provider list` show each provider's",
    ))
}

/// The provider a SCIM request is for, authenticated by its bearer token.
#[derive(Debug, Clone)]
pub struct ProviderAuth(pub ProviderCtx);

fn unauthorized(detail: &str) -> ScimErrorResponse {
    ScimErrorResponse(ScimError::new(401, None, detail))
}

impl FromRequestParts<AppState> for ProviderAuth {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The raw parameters: no map built and no text copied to find one of them.
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ScimErrorResponse(ScimError::not_found("no such SCIM endpoint")).into_response()
            })?;
        let provider: ProviderId = params
            .iter()
            .find(|(name, _)| *name == "provider")
            .and_then(|(_, p)| p.parse().ok())
            .ok_or_else(|| no_provider().into_response())?;
        let target = limits::AuthTarget::Provider(provider);
        let checked = crate::bearer::authenticate(
            parts,
            state,
            target,
            crate::bearer::Schemes::BearerOrBasic,
            |token| async move { state.muster.authenticate_provider(provider, &token).await },
        )
        .await;
        let ctx = match checked {
            Ok(ctx) => ctx,
            Err(Refusal::Throttled(wait)) => {
                return Err(limits::too_many_scim(
                    wait,
                    "too many failed authentications from this address",
                ))
            }
            Err(Refusal::Missing) => return Err(unauthorized(
                "authentication required: send the provider's token as 'Authorization: Bearer <token>'",
            )
            .into_response()),
            Err(Refusal::NotBearer) => {
                return Err(unauthorized(
                    "the Authorization header must use the Bearer scheme, or Basic with the \
                     provider's token as the password",
                )
                .into_response())
            }
            Err(Refusal::MalformedBasic) => {
                return Err(unauthorized(
                    "the Basic credentials must be base64 of 'user:token' (the user name is not \
                     checked; the password is the provider's token)",
                )
                .into_response())
            }
            Err(Refusal::Refused(m)) => return Err(unauthorized(&m).into_response()),
            Err(Refusal::Failed(e)) => return Err(ScimErrorResponse::from(e).into_response()),
        };
        if let Err(wait) = state.limits.provider_request(provider) {
            return Err(limits::too_many_scim(
                wait,
                "this provider is over its request rate limit",
            ));
        }
        if let Some(slot) = parts.extensions.get::<CtxSlot>() {
            slot.set(ctx.env(), provider);
        }
        Ok(ProviderAuth(ctx))
    }
}

/// Where the authenticated provider is left for the middleware, which runs after the handler:
/// its id labels the request's metrics and its log lines, and a refused request is logged in
/// its sync log.
#[derive(Debug, Clone, Default)]
pub struct CtxSlot(std::sync::Arc<std::sync::OnceLock<(EnvironmentId, ProviderId)>>);

impl CtxSlot {
    /// Notes the provider the request authenticated as (once).
    pub fn set(&self, env: EnvironmentId, provider: ProviderId) {
        let _ = self.0.set((env, provider));
    }

    /// The provider the request authenticated as, if it did.
    pub fn provider(&self) -> Option<(EnvironmentId, ProviderId)> {
        self.0.get().copied()
    }
}

/// A JSON request body: `application/scim+json` or `application/json` (RFC 7644 §3.8), read
/// into a value. Malformed JSON is 400 `invalidSyntax`; an oversized body is 413.
#[derive(Debug)]
pub struct ScimBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for ScimBody {
    type Rejection = ScimErrorResponse;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Clients are expected to send application/scim+json or application/json (RFC 7644
        // §3.8); a body that parses as JSON is accepted whatever the header says, and the header
        // is named in the error when it does not.
        let declared = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ScimErrorResponse(ScimError::new(
                    413,
                    None,
                    format!(
                        "the request body is larger than {} bytes",
                        crate::state::MAX_BODY_BYTES
                    ),
                ))
            } else {
                ScimErrorResponse(ScimError::invalid_syntax(
                    "the request body could not be read",
                ))
            }
        })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            let hint = match declared.as_deref() {
                Some(ct) if !(ct == "application/json" || ct.ends_with("+json")) => {
                    format!(" (it was sent as {ct}; send application/scim+json)")
                }
                _ => String::new(),
            };
            ScimErrorResponse(ScimError::invalid_syntax(format!(
                "the request body is not valid JSON: {e}{hint}"
            )))
        })?;
        Ok(ScimBody(value))
    }
}

/// The query string as pairs, names kept as sent.
#[derive(Debug, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ScimErrorResponse;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|_| {
            ScimErrorResponse(ScimError::invalid_syntax("the query string is malformed"))
        })?;
        Ok(QueryPairs(pairs))
    }
}

impl QueryPairs {
    /// The value of a parameter, its name matched case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The list parameters (RFC 7644 §3.4.2).
    pub fn list_params(&self) -> Result<ListParams, ScimError> {
        ListParams::from_pairs(self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The `attributes` / `excludedAttributes` projection (RFC 7644 §3.4.2.5).
    pub fn projection(&self, rt: &'static ResourceTypeDef) -> Projection {
        Projection::parse(rt, self.get("attributes"), self.get("excludedAttributes"))
    }
}

/// `If-Match` and `If-None-Match` (RFC 7644 §3.14).
#[derive(Debug, Default)]
pub struct Conditions {
    /// `If-Match`.
    pub if_match: Option<Tags>,
    /// `If-None-Match`.
    pub if_none_match: Option<Tags>,
}

impl Conditions {
    /// Reads the headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let get = |h| {
            headers
                .get(h)
                .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
                .map(Tags::parse)
        };
        Self {
            if_match: get(header::IF_MATCH),
            if_none_match: get(header::IF_NONE_MATCH),
        }
    }
}

/// Read straight from the request's headers, rather than through a copy of them all.
impl<S: Send + Sync> FromRequestParts<S> for Conditions {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}
