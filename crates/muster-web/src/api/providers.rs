//! `/api/v1/providers`: provisioning providers (the administrator guide, Steps 2 to 5), their
//! deactivation delay, and their tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use muster_core::ids::{ProviderId, TokenId};
use muster_core::model::Provider;
use muster_core::Timestamp;
use serde::{Deserialize, Serialize};
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
    let health = state.muster.provider_health(p.environment_id, p).await?;
    Ok(ProviderBody::new(
        p,
        state.muster.scim_base_url(p.id),
        errors,
        health,
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

/// A provider's mass-deactivation guard.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct GuardBody {
    enabled: bool,
    /// Trips above this share of the provider's active users (percent) ...
    percent: i64,
    /// ... and above this many users ...
    min_users: i64,
    /// ... turned off within this many minutes.
    window_minutes: i64,
    /// Since when the provider's deactivations are held; absent when not.
    held_since: Option<String>,
    /// Users the provider had turned off within the window when the guard tripped.
    held_turned_off: i64,
    /// Users whose deactivation is pending (held while `heldSince` is set): the first 1,000.
    pending: Vec<PendingUser>,
}

/// A user whose deactivation is pending.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PendingUser {
    id: String,
    user_name: String,
    deactivate_at: Option<String>,
}

async fn guard_body(
    state: &AppState,
    env: muster_core::ids::EnvironmentId,
    id: ProviderId,
) -> Result<GuardBody, ApiError> {
    let g = state.muster.provider_guard(env, id).await?;
    let pending = state.muster.pending_deactivations(env, id, 1000).await?;
    Ok(GuardBody {
        enabled: g.enabled,
        percent: g.percent,
        min_users: g.min_users,
        window_minutes: g.window_secs / 60,
        held_since: g.held_since.map(|t| t.to_rfc3339()),
        held_turned_off: g.held_turned_off,
        pending: pending
            .into_iter()
            .map(|u| PendingUser {
                id: u.id.to_string(),
                user_name: u.user_name,
                deactivate_at: u.deactivate_at.map(|t| t.to_rfc3339()),
            })
            .collect(),
    })
}

/// The provider's mass-deactivation guard, and the users whose deactivation is pending.
#[utoipa::path(get, operation_id = "getProviderGuard", path = "/providers/{id}/guard", tag = "providers",
    params(("id" = uuid::Uuid, Path, description = "The provider")),
    responses((status = 200, body = GuardBody), ApiErrors))]
pub(super) async fn get_guard(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id, "provider")?;
    ok(StatusCode::OK, guard_body(&state, auth.env, id).await?)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct UpdateGuard {
    enabled: Option<bool>,
    /// 1 to 100.
    percent: Option<i64>,
    /// 0 or more.
    min_users: Option<i64>,
    /// 1 to 10,080 (a week).
    window_minutes: Option<i64>,
}

/// Change the guard's thresholds, or turn it off or on.
#[utoipa::path(patch, operation_id = "updateProviderGuard", path = "/providers/{id}/guard", tag = "providers",
    request_body = UpdateGuard,
    params(("id" = uuid::Uuid, Path, description = "The provider")),
    responses((status = 200, body = GuardBody), ApiErrors))]
pub(super) async fn update_guard(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateGuard>,
) -> ApiResult {
    let id = parse_id(&id, "provider")?;
    let input = muster_core::notify::guard::GuardInput {
        enabled: body.enabled,
        percent: body.percent,
        min_users: body.min_users,
        window_secs: body.window_minutes.map(|m| m.saturating_mul(60)),
    };
    state
        .muster
        .set_provider_guard(auth.env, id, &input, &auth.actor)
        .await?;
    ok(StatusCode::OK, guard_body(&state, auth.env, id).await?)
}

/// Release the hold: the held deactivations proceed on their schedule (at once when due).
#[utoipa::path(post, operation_id = "releaseProviderHold", path = "/providers/{id}/guard/release", tag = "providers",
    params(("id" = uuid::Uuid, Path, description = "The provider")),
    responses((status = 200, body = GuardBody), ApiErrors))]
pub(super) async fn release_guard(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id, "provider")?;
    state
        .muster
        .release_guard(auth.env, id, &auth.actor)
        .await?;
    ok(StatusCode::OK, guard_body(&state, auth.env, id).await?)
}

/// Restore the held users: each is unblocked and its deactivation cancelled; the hold ends.
#[utoipa::path(post, operation_id = "restoreProviderUsers", path = "/providers/{id}/guard/restore", tag = "providers",
    params(("id" = uuid::Uuid, Path, description = "The provider")),
    responses((status = 200, body = GuardBody), ApiErrors))]
pub(super) async fn restore_guard(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id, "provider")?;
    state
        .muster
        .restore_held_users(auth.env, id, &auth.actor)
        .await?;
    ok(StatusCode::OK, guard_body(&state, auth.env, id).await?)
}
