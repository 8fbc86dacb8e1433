//! `/api/v1/apps`: application credentials, read-only API tokens with scopes for the
//! applications Muster serves (docs/api.md, "Application credentials").

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use muster_core::auth::apps::parse_scopes;
use muster_core::ids::AdminTokenId;
use muster_core::model::{AdminToken, Scope};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ok, parse_id, AdminAuth, ApiErrors, ApiJson, ApiResult};
use crate::state::AppState;

/// An application credential; never its secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AppBody {
    id: AdminTokenId,
    name: String,
    scopes: Vec<Scope>,
    /// The secret's first characters, to tell credentials apart.
    prefix: String,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

impl From<&AdminToken> for AppBody {
    fn from(t: &AdminToken) -> Self {
        AppBody {
            id: t.id,
            name: t.label.clone(),
            scopes: t.scopes.clone().unwrap_or_default(),
            prefix: t.prefix.clone(),
            created_at: t.created_at.to_rfc3339(),
            last_used_at: t.last_used_at.map(|x| x.to_rfc3339()),
            revoked_at: t.revoked_at.map(|x| x.to_rfc3339()),
        }
    }
}

/// Application credentials.
#[derive(Serialize, ToSchema)]
pub(super) struct AppList {
    apps: Vec<AppBody>,
}

/// A credential just made or rotated, with its secret.
#[derive(Serialize, ToSchema)]
pub(super) struct AppCreated {
    #[serde(flatten)]
    app: AppBody,
    /// The bearer token (`mapp_…`): shown this once, stored only as a hash.
    secret: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CreateApp {
    /// For people: which application uses it.
    name: String,
    /// Comma-separated: `directory:read` (users, groups, organizations, roles), `events:read`.
    scopes: String,
}

/// List application credentials.
#[utoipa::path(get, path = "/apps", operation_id = "listApps", tag = "apps",
    responses((status = 200, body = AppList), ApiErrors))]
pub(super) async fn list(State(state): State<AppState>, auth: AdminAuth) -> ApiResult {
    let apps = state.muster.list_apps(auth.env).await?;
    ok(
        StatusCode::OK,
        AppList {
            apps: apps.iter().map(AppBody::from).collect(),
        },
    )
}

/// Add an application credential; its secret is shown once.
#[utoipa::path(post, path = "/apps", operation_id = "createApp", tag = "apps",
    request_body = CreateApp,
    responses((status = 201, body = AppCreated), ApiErrors))]
pub(super) async fn create(
    State(state): State<AppState>,
    auth: AdminAuth,
    ApiJson(body): ApiJson<CreateApp>,
) -> ApiResult {
    let scopes = parse_scopes(&body.scopes)?;
    let c = state
        .muster
        .create_app(auth.env, &body.name, &scopes, &auth.actor)
        .await?;
    let created = AppCreated {
        app: AppBody::from(&c.token),
        secret: c.secret,
    };
    ok(StatusCode::CREATED, created)
}

/// Give a credential a new secret (shown once); the old one stops working at once.
#[utoipa::path(post, path = "/apps/{id}/rotate", operation_id = "rotateApp", tag = "apps",
    params(("id" = uuid::Uuid, Path, description = "The application credential")),
    responses((status = 200, body = AppCreated), ApiErrors))]
pub(super) async fn rotate(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id, "application credential")?;
    let c = state.muster.rotate_app(auth.env, id, &auth.actor).await?;
    let rotated = AppCreated {
        app: AppBody::from(&c.token),
        secret: c.secret,
    };
    ok(StatusCode::OK, rotated)
}

/// Revoke a credential at once.
#[utoipa::path(delete, path = "/apps/{id}", operation_id = "revokeApp", tag = "apps",
    params(("id" = uuid::Uuid, Path, description = "The application credential")),
    responses((status = 204, description = "Revoked"), ApiErrors))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id, "application credential")?;
    state.muster.revoke_app(auth.env, id, &auth.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
