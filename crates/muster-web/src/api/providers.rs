//! `/api/v1/providers`: provisioning providers (the administrator guide, Steps 2 to 5), their
//! deactivation delay, and their tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use muster_core::ids::{ProviderId, TokenId};
use muster_core::model::Provider;
use muster_core::Timestamp;
use serde::Deserialize;
use utoipa::ToSchema;

use super::body::{
    FirstToken, ProviderBody, ProviderCreated, ProviderList, TokenBody, TokenCreated, TokenList,
};
use super::extract::{ok, parse_id, AdminAuth, ApiError, ApiErrors, ApiJson, ApiResult};
use crate::state::AppState;

/// A provider as the API shows it, with its errors in the last 24 hours.
async fn provider_body(state: &AppState, p: &Provider) -> Result<ProviderBody, ApiError> {
    let errors = state
        .muster
        .provider_errors_last_day(p.environment_id, p.id)
        .await?;
    Ok(ProviderBody::new(
        p,
        state.muster.scim_base_url(p.id),
        errors,
    ))
}

/// List provisioning providers.
#[utoipa::path(get, operation_id = "listProviders", path = "/providers", tag = "providers",
    responses((status = 200, body = ProviderList), ApiErrors))]
pub(super) async fn list(State(state): State<AppState>, auth: AdminAuth) -> ApiResult {
    let providers = state.muster.list_providers(auth.env).await?;
    let mut out = Vec::with_capacity(providers.len());
    for p in &providers {
        out.push(provider_body(&state, p).await?);
    }
    ok(StatusCode::OK, ProviderList { providers: out })
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CreateProvider {
    /// The display name, such as `Okta`.
    name: String,
}

/// Add a provider; the response has its first token's secret, shown once.
#[utoipa::path(post, operation_id = "createProvider", path = "/providers", tag = "providers", request_body = CreateProvider,
    responses((status = 201, body = ProviderCreated), ApiErrors))]
pub(super) async fn create(
    State(state): State<AppState>,
    auth: AdminAuth,
    ApiJson(body): ApiJson<CreateProvider>,
) -> ApiResult {
    let c = state
        .muster
        .create_provider(auth.env, &body.name, &auth.actor)
        .await?;
    let created = ProviderCreated {
        provider: provider_body(&state, &c.provider).await?,
        token: FirstToken {
            id: c.token.id,
            prefix: c.token.prefix,
            secret: c.secret,
        },
    };
    ok(StatusCode::CREATED, created)
}

/// One provider.
#[utoipa::path(get, operation_id = "getProvider", path = "/providers/{id}", tag = "providers",
    params(("id" = uuid::Uuid, Path, description = "The provider")),
    responses((status = 200, body = ProviderBody), ApiErrors))]
pub(super) async fn get(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let p = state
        .muster
        .get_provider(auth.env, parse_id(&id, "provider")?)
        .await?;
    ok(StatusCode::OK, provider_body(&state, &p).await?)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct UpdateProvider {
    name: Option<String>,
    /// 0 (deactivate at once) to 7,776,000 (90 days).
    #[schema(minimum = 0, maximum = 7_776_000)]
    deactivation_delay_seconds: Option<i64>,
}

/// Rename, or set the deactivation delay.
#[utoipa::path(patch, operation_id = "updateProvider", path = "/providers/{id}", tag = "providers", request_body = UpdateProvider,
    params(("id" = uuid::Uuid, Path, description = "The provider")),
    responses((status = 200, body = ProviderBody), ApiErrors))]
pub(super) async fn update(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateProvider>,
) -> ApiResult {
    if body.name.is_none() && body.deactivation_delay_seconds.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give name or deactivationDelaySeconds",
        ));
    }
    let p = state
        .muster
        .update_provider(
            auth.env,
            parse_id(&id, "provider")?,
            body.name.as_deref(),
            body.deactivation_delay_seconds,
            &auth.actor,
        )
        .await?;
    ok(StatusCode::OK, provider_body(&state, &p).await?)
}

/// A provider's tokens (prefixes only; never their secrets).
#[utoipa::path(get, operation_id = "listTokens", path = "/providers/{id}/tokens", tag = "providers",
    params(("id" = uuid::Uuid, Path, description = "The provider")),
    responses((status = 200, body = TokenList), ApiErrors))]
pub(super) async fn list_tokens(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let tokens = state
        .muster
        .list_tokens(auth.env, parse_id(&id, "provider")?)
        .await?;
    let now = state.muster.now();
    ok(
        StatusCode::OK,
        TokenList {
            tokens: tokens.iter().map(|t| TokenBody::new(t, now)).collect(),
        },
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CreateToken {
    #[serde(default)]
    label: String,
    /// When the token stops working (RFC 3339); never when left out.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// Add a token; its secret is shown once.
#[utoipa::path(post, operation_id = "createToken", path = "/providers/{id}/tokens", tag = "providers",
    request_body = CreateToken,
    params(("id" = uuid::Uuid, Path, description = "The provider")),
    responses((status = 201, body = TokenCreated), ApiErrors))]
pub(super) async fn create_token(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult {
    let expires = body
        .expires_at
        .as_deref()
        .map(|e| {
            Timestamp::parse_rfc3339(e).ok_or_else(|| {
                ApiError::bad_request(
                    "expiresAt must be an RFC 3339 time such as 2027-01-01T00:00:00Z",
                )
            })
        })
        .transpose()?;
    let c = state
        .muster
        .create_token(
            auth.env,
            parse_id(&id, "provider")?,
            &body.label,
            expires,
            &auth.actor,
        )
        .await?;
    let created = TokenCreated {
        token: TokenBody::new(&c.token, state.muster.now()),
        secret: c.secret,
    };
    ok(StatusCode::CREATED, created)
}

/// Revoke a token at once.
#[utoipa::path(delete, operation_id = "revokeToken", path = "/providers/{id}/tokens/{tokenId}", tag = "providers",
    params(("id" = uuid::Uuid, Path, description = "The provider"),
           ("tokenId" = uuid::Uuid, Path, description = "The token")),
    responses((status = 204, description = "Revoked"), ApiErrors))]
pub(super) async fn revoke_token(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path((provider, token_id)): Path<(String, String)>,
) -> ApiResult {
    let pid: ProviderId = parse_id(&provider, "provider")?;
    let tid: TokenId = parse_id(&token_id, "token")?;
    let tokens = state.muster.list_tokens(auth.env, pid).await?;
    if !tokens.iter().any(|t| t.id == tid) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("provider {pid} has no token {tid}"),
        ));
    }
    state
        .muster
        .revoke_token(auth.env, tid, &auth.actor)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
