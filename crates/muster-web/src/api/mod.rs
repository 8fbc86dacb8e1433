//! The administration REST API under `/api/v1`: JSON in and out, authenticated by administrator
//! API tokens (`Authorization: Bearer msa_...`), described by an OpenAPI document at
//! `/api/v1/openapi.json`.

pub mod extract;

use self::extract::{api_not_found, ok, parse_id, AdminAuth, ApiError, ApiJson, ApiResult};
mod mapping;
pub mod openapi;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use muster_core::ids::{EnvironmentId, OrgId, ProviderId, RoleId, TokenId, UserId};
use muster_core::model::{
    OrgStatus, Outcome, Provider, ProviderToken, Role, UserRecord, UserStatus,
};
use muster_core::orgs::OrgView;
use muster_core::store::{Cursor, LogQuery, UserQuery};
use muster_core::synclog::query::{csv_header, csv_line, entry_json, LogCursor};
use muster_core::users::directory::{HeldRole, UserAction, UserDetail};
use muster_core::Timestamp;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::AppState;

/// Every route of the API, as `(method, path)`: the OpenAPI document must describe exactly these
/// (a test holds it to that).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/orgs"),
    ("post", "/api/v1/orgs"),
    ("get", "/api/v1/orgs/tree"),
    ("get", "/api/v1/orgs/{id}"),
    ("patch", "/api/v1/orgs/{id}"),
    ("put", "/api/v1/orgs/{id}/default-roles"),
    ("get", "/api/v1/roles"),
    ("post", "/api/v1/roles"),
    ("delete", "/api/v1/roles/{id}"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("get", "/api/v1/users/{id}"),
    ("patch", "/api/v1/users/{id}"),
    ("get", "/api/v1/providers"),
    ("post", "/api/v1/providers"),
    ("get", "/api/v1/providers/{id}"),
    ("patch", "/api/v1/providers/{id}"),
    ("get", "/api/v1/providers/{id}/tokens"),
    ("post", "/api/v1/providers/{id}/tokens"),
    ("delete", "/api/v1/providers/{id}/tokens/{tokenId}"),
    ("get", "/api/v1/providers/{id}/mapping"),
    ("put", "/api/v1/providers/{id}/mapping/org"),
    ("post", "/api/v1/providers/{id}/mapping/groups"),
    ("put", "/api/v1/providers/{id}/mapping/groups/{mappingId}"),
    (
        "delete",
        "/api/v1/providers/{id}/mapping/groups/{mappingId}",
    ),
    ("put", "/api/v1/providers/{id}/mapping/group-order"),
    ("put", "/api/v1/providers/{id}/mapping/roles/{groupId}"),
    ("delete", "/api/v1/providers/{id}/mapping/roles/{groupId}"),
    ("get", "/api/v1/providers/{id}/mapping/preview"),
    ("post", "/api/v1/providers/{id}/mapping/apply"),
    ("get", "/api/v1/sync-log"),
    ("get", "/api/v1/sync-log/export.csv"),
];

/// The API routes.
pub fn router() -> Router<AppState> {
    let api = Router::new()
        .route("/openapi.json", get(get_openapi))
        .route("/orgs", get(list_orgs).post(create_org))
        .route("/orgs/tree", get(get_org_tree))
        .route("/orgs/{id}", get(get_org).patch(update_org))
        .route("/orgs/{id}/default-roles", put(set_default_roles))
        .route("/roles", get(list_roles).post(create_role))
        .route("/roles/{id}", delete(delete_role))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", get(get_user).patch(update_user))
        .route("/providers", get(list_providers).post(create_provider))
        .route("/providers/{id}", get(get_provider).patch(update_provider))
        .route(
            "/providers/{id}/tokens",
            get(list_tokens).post(create_token),
        )
        .route("/providers/{id}/tokens/{token_id}", delete(revoke_token))
        .merge(mapping::routes())
        .route("/sync-log", get(list_sync_log))
        .route("/sync-log/export.csv", get(export_sync_log))
        .fallback(api_not_found)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::state::MAX_BODY_BYTES,
        ));
    Router::new().nest("/api/v1", api)
}

fn role_json(r: &Role) -> Value {
    json!({"id": r.id.to_string(), "name": r.name, "description": r.description, "builtin": r.builtin})
}

fn org_json(v: &OrgView) -> Value {
    json!({
        "id": v.org.id.to_string(),
        "name": v.org.name,
        "parentId": v.org.parent_id.map(|p| p.to_string()),
        "path": v.path,
        "status": v.org.status.as_str(),
        "defaultRoles": v.effective_default_roles.iter().map(role_json).collect::<Vec<_>>(),
        "defaultRolesInherited": v.default_roles_from != Some(v.org.id),
        "defaultRolesFrom": v.default_roles_from.map(|o| o.to_string()),
        "createdAt": v.org.created_at.to_rfc3339(),
        "updatedAt": v.org.updated_at.to_rfc3339(),
    })
}

fn tree_json(t: &muster_core::orgs::OrgTree) -> Value {
    json!({"id": t.org.id.to_string(), "name": t.org.name, "status": t.org.status.as_str(),
           "children": t.children.iter().map(tree_json).collect::<Vec<_>>()})
}

fn user_summary(u: &UserRecord, providers: &HashMap<ProviderId, String>) -> Value {
    json!({
        "id": u.id.to_string(),
        "userName": u.user_name,
        "displayName": u.display_name,
        "status": u.status.as_str(),
        "orgId": u.org_id.to_string(),
        "owner": match u.provider_id {
            Some(p) => json!({"kind": "provider", "providerId": p.to_string(), "providerName": providers.get(&p)}),
            None => json!({"kind": "local"}),
        },
        "legalHold": u.legal_hold,
        "changedOutsideProvisioning": u.changed_outside,
        "pendingDeactivationAt": u.deactivate_at.map(|t| t.to_rfc3339()),
        "removedByProvider": u.removed_at.is_some(),
        "createdAt": u.created_at.to_rfc3339(),
        "updatedAt": u.updated_at.to_rfc3339(),
    })
}

fn user_json(d: &UserDetail, providers: &HashMap<ProviderId, String>) -> Value {
    let mut v = user_summary(&d.user, providers);
    v["org"] = json!({"id": d.org.id.to_string(), "name": d.org.name});
    v["roles"] = json!(d.roles.iter().map(|h: &HeldRole| json!({"id": h.role.id.to_string(), "name": h.role.name, "source": h.source.as_str()})).collect::<Vec<_>>());
    v["scim"] = Value::Object(d.user.resource.clone());
    v
}

/// A provider as the API shows it, with its errors in the last 24 hours (docs/sync-log.md,
/// "Provider status").
async fn provider_json(state: &AppState, p: &Provider) -> Result<Value, ApiError> {
    let errors = state
        .muster
        .provider_errors_last_day(p.environment_id, p.id)
        .await?;
    Ok(json!({
        "id": p.id.to_string(), "name": p.name, "scimBaseUrl": state.muster.scim_base_url(p.id),
        "deactivationDelaySeconds": p.deactivation_delay_secs,
        "createdAt": p.created_at.to_rfc3339(), "lastSyncAt": p.last_sync_at.map(|t| t.to_rfc3339()),
        "errorsLast24h": errors,
    }))
}

fn token_json(t: &ProviderToken, now: Timestamp) -> Value {
    json!({
        "id": t.id.to_string(), "label": t.label, "prefix": t.prefix, "createdAt": t.created_at.to_rfc3339(),
        "expiresAt": t.expires_at.map(|x| x.to_rfc3339()), "revokedAt": t.revoked_at.map(|x| x.to_rfc3339()),
        "lastUsedAt": t.last_used_at.map(|x| x.to_rfc3339()), "live": t.is_live(now),
    })
}

/// `GET /api/v1/openapi.json`: the API's OpenAPI 3.1 document.
async fn get_openapi(State(state): State<AppState>) -> Json<Value> {
    Json(openapi::document(&state.muster.settings.public_url))
}

#[derive(Deserialize)]
struct OrgFilter {
    status: Option<String>,
}

fn parse_org_status(s: &str) -> Result<OrgStatus, ApiError> {
    OrgStatus::parse(s).ok_or_else(|| {
        ApiError::bad_request(format!(
            "status must be 'active' or 'deactivated', not '{s}'"
        ))
    })
}

/// `GET /api/v1/orgs`: every organization, optionally by status.
async fn list_orgs(
    State(state): State<AppState>,
    auth: AdminAuth,
    q: axum::extract::Query<OrgFilter>,
) -> ApiResult {
    let status = q.status.as_deref().map(parse_org_status).transpose()?;
    let orgs = state.muster.list_orgs(auth.env, status).await?;
    ok(
        StatusCode::OK,
        json!({"orgs": orgs.iter().map(org_json).collect::<Vec<_>>()}),
    )
}

/// `GET /api/v1/orgs/tree`: the organization tree.
async fn get_org_tree(State(state): State<AppState>, auth: AdminAuth) -> ApiResult {
    let tree = state.muster.org_tree(auth.env).await?;
    ok(StatusCode::OK, tree_json(&tree))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateOrg {
    name: String,
    parent_id: Option<String>,
}

/// `POST /api/v1/orgs`: adds an organization (under the default organization unless `parentId`).
async fn create_org(
    State(state): State<AppState>,
    auth: AdminAuth,
    ApiJson(body): ApiJson<CreateOrg>,
) -> ApiResult {
    let parent = body
        .parent_id
        .as_deref()
        .map(|p| parse_id::<OrgId>(p, "organization"))
        .transpose()?;
    let org = state
        .muster
        .create_org(auth.env, &body.name, parent, &auth.actor)
        .await?;
    let view = state.muster.get_org(auth.env, org.id).await?;
    ok(StatusCode::CREATED, org_json(&view))
}

/// `GET /api/v1/orgs/{id}`.
async fn get_org(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let view = state
        .muster
        .get_org(auth.env, parse_id(&id, "organization")?)
        .await?;
    ok(StatusCode::OK, org_json(&view))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateOrg {
    name: Option<String>,
    parent_id: Option<String>,
    status: Option<String>,
}

/// `PATCH /api/v1/orgs/{id}`: rename, move, deactivate or reactivate.
async fn update_org(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateOrg>,
) -> ApiResult {
    let id: OrgId = parse_id(&id, "organization")?;
    if body.name.is_none() && body.parent_id.is_none() && body.status.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give name, parentId or status",
        ));
    }
    let m = &state.muster;
    if let Some(name) = &body.name {
        m.rename_org(auth.env, id, name, &auth.actor).await?;
    }
    if let Some(parent) = &body.parent_id {
        m.move_org(auth.env, id, parse_id(parent, "organization")?, &auth.actor)
            .await?;
    }
    if let Some(status) = &body.status {
        m.set_org_active(
            auth.env,
            id,
            parse_org_status(status)? == OrgStatus::Active,
            &auth.actor,
        )
        .await?;
    }
    ok(StatusCode::OK, org_json(&m.get_org(auth.env, id).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DefaultRoles {
    role_ids: Option<Vec<String>>,
}

/// `PUT /api/v1/orgs/{id}/default-roles`: the organization's own default roles, or `null` to
/// inherit its parent's.
async fn set_default_roles(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DefaultRoles>,
) -> ApiResult {
    let id: OrgId = parse_id(&id, "organization")?;
    let roles = body
        .role_ids
        .map(|ids| {
            ids.iter()
                .map(|r| parse_id::<RoleId>(r, "role"))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let view = state
        .muster
        .set_org_default_roles(auth.env, id, roles, &auth.actor)
        .await?;
    ok(StatusCode::OK, org_json(&view))
}

/// `GET /api/v1/roles`: the role catalog.
async fn list_roles(State(state): State<AppState>, auth: AdminAuth) -> ApiResult {
    let roles = state.muster.list_roles(auth.env).await?;
    ok(
        StatusCode::OK,
        json!({"roles": roles.iter().map(role_json).collect::<Vec<_>>()}),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateRole {
    name: String,
    #[serde(default)]
    description: String,
}

/// `POST /api/v1/roles`: adds a role.
async fn create_role(
    State(state): State<AppState>,
    auth: AdminAuth,
    ApiJson(body): ApiJson<CreateRole>,
) -> ApiResult {
    let role = state
        .muster
        .create_role(auth.env, &body.name, &body.description, &auth.actor)
        .await?;
    ok(StatusCode::CREATED, role_json(&role))
}

/// `DELETE /api/v1/roles/{id}`: deletes a role nothing uses.
async fn delete_role(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    state
        .muster
        .delete_role(auth.env, parse_id(&id, "role")?, &auth.actor)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct UserFilter {
    org: Option<String>,
    status: Option<String>,
    provider: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

fn encode_cursor(c: &Cursor) -> String {
    format!("{}_{}", c.created_at.micros(), c.id.simple())
}

fn decode_cursor(text: &str) -> Result<Cursor, ApiError> {
    let bad =
        || ApiError::bad_request("invalid cursor: pass back the nextCursor of the previous page");
    let (t, id) = text.split_once('_').ok_or_else(bad)?;
    Ok(Cursor {
        created_at: Timestamp(t.parse().map_err(|_| bad())?),
        id: id.parse().map_err(|_| bad())?,
    })
}

/// `GET /api/v1/users`: users, filtered by organization, status, provider (`local` for local
/// users) and text, in pages linked by `nextCursor`.
async fn list_users(
    State(state): State<AppState>,
    auth: AdminAuth,
    q: axum::extract::Query<UserFilter>,
) -> ApiResult {
    let query = UserQuery {
        org: q
            .org
            .as_deref()
            .map(|o| parse_id::<OrgId>(o, "organization"))
            .transpose()?,
        status: q
            .status
            .as_deref()
            .map(|s| {
                UserStatus::parse(s).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "status must be active, blocked or deactivated, not '{s}'"
                    ))
                })
            })
            .transpose()?,
        provider: match q.provider.as_deref() {
            None => None,
            Some("local") => Some(None),
            Some(p) => Some(Some(parse_id::<ProviderId>(p, "provider")?)),
        },
        text: q.q.clone(),
    };
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let (users, next) = state
        .muster
        .query_users(auth.env, &query, after, q.limit.unwrap_or(100))
        .await?;
    let providers = state.muster.provider_names(auth.env).await?;
    ok(
        StatusCode::OK,
        json!({"users": users.iter().map(|u| user_summary(u, &providers)).collect::<Vec<_>>(), "nextCursor": next.as_ref().map(encode_cursor)}),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateUser {
    user_name: String,
    display_name: Option<String>,
    email: Option<String>,
    org_id: Option<String>,
}

/// `POST /api/v1/users`: adds a local user.
async fn create_user(
    State(state): State<AppState>,
    auth: AdminAuth,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult {
    let org = body
        .org_id
        .as_deref()
        .map(|o| parse_id::<OrgId>(o, "organization"))
        .transpose()?;
    let d = state
        .muster
        .create_local_user(
            auth.env,
            &body.user_name,
            body.display_name.as_deref(),
            body.email.as_deref(),
            org,
            &auth.actor,
        )
        .await?;
    let providers = state.muster.provider_names(auth.env).await?;
    ok(StatusCode::CREATED, user_json(&d, &providers))
}

/// `GET /api/v1/users/{id}`: a user with organization, effective roles and where they come from.
async fn get_user(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let d = state
        .muster
        .user_detail(auth.env, parse_id::<UserId>(&id, "user")?)
        .await?;
    let providers = state.muster.provider_names(auth.env).await?;
    ok(StatusCode::OK, user_json(&d, &providers))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateUser {
    status: Option<String>,
    org_id: Option<String>,
    role_ids: Option<Vec<String>>,
    legal_hold: Option<bool>,
}

/// `PATCH /api/v1/users/{id}`: block, unblock, deactivate (at once) or reactivate through
/// `status`; move through `orgId`; set roles (`[]`: the organization's defaults); legal hold.
async fn update_user(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> ApiResult {
    let id: UserId = parse_id(&id, "user")?;
    let m = &state.muster;
    let mut actions = Vec::new();
    if let Some(hold) = body.legal_hold {
        actions.push(UserAction::LegalHold(hold));
    }
    if let Some(status) = &body.status {
        let current = m.user_detail(auth.env, id).await?.user.status;
        let wanted = UserStatus::parse(status).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status must be active, blocked or deactivated, not '{status}'"
            ))
        })?;
        match (current, wanted) {
            (a, b) if a == b => {}
            (UserStatus::Active, UserStatus::Blocked) => actions.push(UserAction::Block),
            (UserStatus::Blocked, UserStatus::Active) => actions.push(UserAction::Unblock),
            (_, UserStatus::Deactivated) => actions.push(UserAction::Deactivate),
            (UserStatus::Deactivated, UserStatus::Active) => actions.push(UserAction::Reactivate),
            (from, to) => {
                return Err(ApiError::bad_request(format!(
                    "a {} user cannot become {} directly",
                    from.as_str(),
                    to.as_str()
                )))
            }
        }
    }
    if let Some(org) = &body.org_id {
        actions.push(UserAction::Move(parse_id(org, "organization")?));
    }
    if let Some(roles) = &body.role_ids {
        actions.push(UserAction::SetRoles(
            roles
                .iter()
                .map(|r| parse_id::<RoleId>(r, "role"))
                .collect::<Result<_, _>>()?,
        ));
    }
    if actions.is_empty() && body.status.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give status, orgId, roleIds or legalHold",
        ));
    }
    for a in actions {
        m.act_on_user(auth.env, id, a, &auth.actor).await?;
    }
    let providers = m.provider_names(auth.env).await?;
    ok(
        StatusCode::OK,
        user_json(&m.user_detail(auth.env, id).await?, &providers),
    )
}

/// `GET /api/v1/providers`.
async fn list_providers(State(state): State<AppState>, auth: AdminAuth) -> ApiResult {
    let providers = state.muster.list_providers(auth.env).await?;
    let mut out = Vec::with_capacity(providers.len());
    for p in &providers {
        out.push(provider_json(&state, p).await?);
    }
    ok(StatusCode::OK, json!({ "providers": out }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateProvider {
    name: String,
}

/// `POST /api/v1/providers`: adds a provider; the response carries its first token's secret,
/// the only time it is shown.
async fn create_provider(
    State(state): State<AppState>,
    auth: AdminAuth,
    ApiJson(body): ApiJson<CreateProvider>,
) -> ApiResult {
    let c = state
        .muster
        .create_provider(auth.env, &body.name, &auth.actor)
        .await?;
    let mut v = provider_json(&state, &c.provider).await?;
    v["token"] =
        json!({"id": c.token.id.to_string(), "prefix": c.token.prefix, "secret": c.secret});
    ok(StatusCode::CREATED, v)
}

/// `GET /api/v1/providers/{id}`.
async fn get_provider(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let p = state
        .muster
        .get_provider(auth.env, parse_id(&id, "provider")?)
        .await?;
    ok(StatusCode::OK, provider_json(&state, &p).await?)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateProvider {
    name: Option<String>,
    deactivation_delay_seconds: Option<i64>,
}

/// `PATCH /api/v1/providers/{id}`: display name and deactivation delay.
async fn update_provider(
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
    ok(StatusCode::OK, provider_json(&state, &p).await?)
}

/// `GET /api/v1/providers/{id}/tokens`: tokens by prefix; never their secrets.
async fn list_tokens(
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
        json!({"tokens": tokens.iter().map(|t| token_json(t, now)).collect::<Vec<_>>()}),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateToken {
    #[serde(default)]
    label: String,
    expires_at: Option<String>,
}

/// `POST /api/v1/providers/{id}/tokens`: a new token, its secret shown once.
async fn create_token(
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
    let mut v = token_json(&c.token, state.muster.now());
    v["secret"] = json!(c.secret);
    ok(StatusCode::CREATED, v)
}

/// `DELETE /api/v1/providers/{id}/tokens/{tokenId}`: revokes a token at once.
async fn revoke_token(
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

#[derive(Deserialize)]
struct LogFilter {
    since: Option<String>,
    until: Option<String>,
    provider: Option<String>,
    user: Option<String>,
    group: Option<String>,
    action: Option<String>,
    result: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

fn log_query(f: &LogFilter) -> Result<LogQuery, ApiError> {
    let time = |name: &str, v: &Option<String>| -> Result<Option<Timestamp>, ApiError> {
        v.as_deref()
            .map(|t| {
                Timestamp::parse_rfc3339(t).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{name} must be an RFC 3339 time such as 2027-01-01T00:00:00Z"
                    ))
                })
            })
            .transpose()
    };
    let subject = match (&f.user, &f.group) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give user or group, not both")),
        (Some(u), None) => Some(parse_id::<UserId>(u, "user")?.to_string()),
        (None, Some(g)) => Some(parse_id::<muster_core::ids::GroupId>(g, "group")?.to_string()),
        (None, None) => None,
    };
    Ok(LogQuery {
        since: time("since", &f.since)?,
        until: time("until", &f.until)?,
        provider: f
            .provider
            .as_deref()
            .map(|p| parse_id::<ProviderId>(p, "provider"))
            .transpose()?,
        subject,
        action: f.action.clone().filter(|a| !a.is_empty()),
        outcome: match f.result.as_deref() {
            None => None,
            Some("success") => Some(Outcome::Success),
            Some("error") => Some(Outcome::Error),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "result must be success or error, not '{other}'"
                )))
            }
        },
    })
}

/// `GET /api/v1/sync-log`: entries newest first, filtered by time range (`since` inclusive,
/// `until` exclusive), provider, user or group, action (`user.` for a family) and result, in pages
/// linked by `nextCursor`.
async fn list_sync_log(
    State(state): State<AppState>,
    auth: AdminAuth,
    f: axum::extract::Query<LogFilter>,
) -> ApiResult {
    let q = log_query(&f)?;
    let before = f
        .cursor
        .as_deref()
        .map(|c| {
            LogCursor::decode(c).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid cursor: pass back the nextCursor of the previous page",
                )
            })
        })
        .transpose()?;
    let (rows, next) = state
        .muster
        .query_sync_log(auth.env, &q, before, f.limit.unwrap_or(100))
        .await?;
    let providers = state.muster.provider_names(auth.env).await?;
    ok(
        StatusCode::OK,
        json!({"entries": rows.iter().map(|(id, e)| entry_json(*id, e, &providers)).collect::<Vec<_>>(), "nextCursor": next.map(|c| c.encode())}),
    )
}

/// `GET /api/v1/sync-log/export.csv`: the matching entries as CSV, streamed in batches so that
/// memory does not grow with the number of rows.
async fn export_sync_log(
    State(state): State<AppState>,
    auth: AdminAuth,
    f: axum::extract::Query<LogFilter>,
) -> ApiResult {
    let q = log_query(&f)?;
    let providers = state.muster.provider_names(auth.env).await?;
    Ok(csv_export(&state, auth.env, q, providers))
}

/// A streamed CSV export of the sync log entries `q` selects: read and written a thousand at a
/// time, so memory does not grow with the export.
pub(crate) fn csv_export(
    state: &AppState,
    env: EnvironmentId,
    q: LogQuery,
    providers: HashMap<ProviderId, String>,
) -> Response {
    struct Cursor {
        before: Option<LogCursor>,
        header: bool,
        done: bool,
    }
    let muster = state.muster.clone();
    let stream = futures_util::stream::unfold(
        Cursor {
            before: None,
            header: true,
            done: false,
        },
        move |mut c| {
            let (muster, q, providers) = (muster.clone(), q.clone(), providers.clone());
            async move {
                if c.done {
                    return None;
                }
                let mut chunk = String::new();
                if c.header {
                    chunk.push_str(&csv_header());
                    c.header = false;
                }
                match muster.query_sync_log(env, &q, c.before, 1000).await {
                    Ok((rows, next)) => {
                        for (id, e) in &rows {
                            chunk.push_str(&csv_line(*id, e, &providers));
                        }
                        c.before = next;
                        c.done = next.is_none();
                        Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), c))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "sync log export failed");
                        c.done = true;
                        Some((
                            Err(std::io::Error::other(
                                "the export failed; see the server log",
                            )),
                            c,
                        ))
                    }
                }
            }
        },
    );
    let name = format!(
        "muster-sync-log-{}.csv",
        state.muster.now().to_rfc3339().replace(':', "")
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}
