//! `/api/v1/orgs` and `/api/v1/roles`: the organization tree (the administrator guide, Step 1),
//! default roles, and the role catalog.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use muster_core::ids::{OrgId, RoleId};
use muster_core::model::OrgStatus;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::body::{OrgBody, OrgList, OrgTreeBody, RoleBody, RoleList};
use super::extract::{ok, parse_id, AdminAuth, ApiError, ApiErrors, ApiJson, ApiQuery, ApiResult};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct OrgFilter {
    /// `active` or `deactivated`.
    status: Option<String>,
}

fn parse_org_status(s: &str) -> Result<OrgStatus, ApiError> {
    OrgStatus::parse(s).ok_or_else(|| {
        ApiError::bad_request(format!(
            "status must be 'active' or 'deactivated', not '{s}'"
        ))
    })
}

/// List organizations.
#[utoipa::path(get, operation_id = "listOrgs", path = "/orgs", tag = "orgs", params(OrgFilter),
    responses((status = 200, body = OrgList), ApiErrors))]
pub(super) async fn list(
    State(state): State<AppState>,
    auth: AdminAuth,
    ApiQuery(q): ApiQuery<OrgFilter>,
) -> ApiResult {
    let status = q.status.as_deref().map(parse_org_status).transpose()?;
    let orgs = state.muster.list_orgs(auth.env, status).await?;
    ok(
        StatusCode::OK,
        OrgList {
            orgs: orgs.iter().map(OrgBody::from).collect(),
        },
    )
}

/// The organization tree.
#[utoipa::path(get, operation_id = "getOrgTree", path = "/orgs/tree", tag = "orgs",
    responses((status = 200, body = OrgTreeBody), ApiErrors))]
pub(super) async fn tree(State(state): State<AppState>, auth: AdminAuth) -> ApiResult {
    let tree = state.muster.org_tree(auth.env).await?;
    ok(StatusCode::OK, OrgTreeBody::from(&tree))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CreateOrg {
    /// 3 to 220 characters, unique among its siblings (case-insensitively).
    name: String,
    /// The parent; the default organization when left out.
    parent_id: Option<String>,
}

/// Add an organization (under the default organization unless `parentId`).
#[utoipa::path(post, operation_id = "createOrg", path = "/orgs", tag = "orgs", request_body = CreateOrg,
    responses((status = 201, body = OrgBody), ApiErrors))]
pub(super) async fn create(
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
    ok(StatusCode::CREATED, OrgBody::from(&view))
}

/// One organization.
#[utoipa::path(get, operation_id = "getOrg", path = "/orgs/{id}", tag = "orgs",
    params(("id" = uuid::Uuid, Path, description = "The organization")),
    responses((status = 200, body = OrgBody), ApiErrors))]
pub(super) async fn get(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let view = state
        .muster
        .get_org(auth.env, parse_id(&id, "organization")?)
        .await?;
    ok(StatusCode::OK, OrgBody::from(&view))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct UpdateOrg {
    name: Option<String>,
    /// Move under this organization.
    parent_id: Option<String>,
    /// `active` or `deactivated` (deactivating takes its descendants along).
    status: Option<String>,
}

/// Rename, move, deactivate (with its descendants) or reactivate.
#[utoipa::path(patch, operation_id = "updateOrg", path = "/orgs/{id}", tag = "orgs", request_body = UpdateOrg,
    params(("id" = uuid::Uuid, Path, description = "The organization")),
    responses((status = 200, body = OrgBody), ApiErrors))]
pub(super) async fn update(
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
        let active = parse_org_status(status)? == OrgStatus::Active;
        m.set_org_active(auth.env, id, active, &auth.actor).await?;
    }
    ok(
        StatusCode::OK,
        OrgBody::from(&m.get_org(auth.env, id).await?),
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DefaultRoles {
    /// The organization's own default roles; `null` to inherit its parent's.
    role_ids: Option<Vec<String>>,
}

/// Set the default roles, or inherit them (`roleIds: null`).
#[utoipa::path(put, operation_id = "setOrgDefaultRoles", path = "/orgs/{id}/default-roles", tag = "orgs", request_body = DefaultRoles,
    params(("id" = uuid::Uuid, Path, description = "The organization")),
    responses((status = 200, body = OrgBody), ApiErrors))]
pub(super) async fn set_default_roles(
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
    ok(StatusCode::OK, OrgBody::from(&view))
}

/// The role catalog.
#[utoipa::path(get, operation_id = "listRoles", path = "/roles", tag = "roles",
    responses((status = 200, body = RoleList), ApiErrors))]
pub(super) async fn list_roles(State(state): State<AppState>, auth: AdminAuth) -> ApiResult {
    let roles = state.muster.list_roles(auth.env).await?;
    ok(
        StatusCode::OK,
        RoleList {
            roles: roles.iter().map(RoleBody::from).collect(),
        },
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CreateRole {
    name: String,
    #[serde(default)]
    description: String,
}

/// Add a role.
#[utoipa::path(post, operation_id = "createRole", path = "/roles", tag = "roles", request_body = CreateRole,
    responses((status = 201, body = RoleBody), ApiErrors))]
pub(super) async fn create_role(
    State(state): State<AppState>,
    auth: AdminAuth,
    ApiJson(body): ApiJson<CreateRole>,
) -> ApiResult {
    let role = state
        .muster
        .create_role(auth.env, &body.name, &body.description, &auth.actor)
        .await?;
    ok(StatusCode::CREATED, RoleBody::from(&role))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RenameRole {
    name: String,
    description: Option<String>,
}

/// Rename a role (not a standard one), or change its description.
#[utoipa::path(patch, operation_id = "renameRole", path = "/roles/{id}", tag = "roles", request_body = RenameRole,
    params(("id" = uuid::Uuid, Path, description = "The role")),
    responses((status = 200, body = RoleBody), ApiErrors))]
pub(super) async fn rename_role(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RenameRole>,
) -> ApiResult {
    let role = state
        .muster
        .rename_role(
            auth.env,
            parse_id(&id, "role")?,
            &body.name,
            body.description.as_deref(),
            &auth.actor,
        )
        .await?;
    ok(StatusCode::OK, RoleBody::from(&role))
}

/// Delete a role nothing uses.
#[utoipa::path(delete, operation_id = "deleteRole", path = "/roles/{id}", tag = "roles",
    params(("id" = uuid::Uuid, Path, description = "The role")),
    responses((status = 204, description = "Deleted"), ApiErrors))]
pub(super) async fn delete_role(
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
