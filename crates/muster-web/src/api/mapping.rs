//! `/api/v1/providers/{id}/mapping`: a provider's organization mapping and role mapping, and
//! the preview and re-apply of both (the administrator guide, Steps 6 and 7).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use muster_core::ids::{GroupId, GroupMappingId, OrgId, ProviderId, RoleId};
use muster_core::mapping::config::OrgMappingInput;
use muster_core::mapping::preview::{Preview, PREVIEW_LIMIT};
use muster_core::mapping::view::MappingView;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::AppliedBody;
use super::extract::{ok, parse_id, AdminAuth, ApiError, ApiErrors, ApiJson, ApiQuery, ApiResult};
use crate::state::AppState;

/// The most changes one preview response lists.
const MAX_PREVIEW_LIMIT: usize = 100_000;

/// The mapping routes, relative to `/api/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_mapping))
        .routes(routes!(set_org_mapping))
        .routes(routes!(add_group_mapping))
        .routes(routes!(update_group_mapping, delete_group_mapping))
        .routes(routes!(reorder_group_mappings))
        .routes(routes!(set_role_mapping, delete_role_mapping))
        .routes(routes!(preview))
        .routes(routes!(apply))
}

fn provider_id(id: &str) -> Result<ProviderId, ApiError> {
    parse_id(id, "provider")
}

/// A provider's organization mapping and role mapping, with their status messages and the
/// groups that have no role mapping yet.
#[utoipa::path(get, operation_id = "getMapping", path = "/providers/{id}/mapping", tag = "mapping", params(("id" = uuid::Uuid, Path, description = "The provider")), responses((status = 200, body = MappingView), ApiErrors))]
async fn get_mapping(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let view = state
        .muster
        .mapping_view(auth.env, provider_id(&id)?)
        .await?;
    ok(StatusCode::OK, view)
}

/// Choose the organization mapping method (moves nobody by itself).
#[utoipa::path(put, operation_id = "setOrgMapping", path = "/providers/{id}/mapping/org", tag = "mapping", request_body = OrgMappingInput, params(("id" = uuid::Uuid, Path, description = "The provider")), responses((status = 200, body = MappingView), ApiErrors))]
async fn set_org_mapping(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<OrgMappingInput>,
) -> ApiResult {
    let view = state
        .muster
        .set_org_mapping(auth.env, provider_id(&id)?, &body, &auth.actor)
        .await?;
    ok(StatusCode::OK, view)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GroupMappingBody {
    group_ids: Vec<GroupId>,
    org_id: OrgId,
}

/// Map one or more SCIM groups to an organization, at the lowest priority.
#[utoipa::path(post, operation_id = "addGroupMapping", path = "/providers/{id}/mapping/groups", tag = "mapping", request_body = GroupMappingBody, params(("id" = uuid::Uuid, Path, description = "The provider")), responses((status = 201, body = MappingView), ApiErrors))]
async fn add_group_mapping(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GroupMappingBody>,
) -> ApiResult {
    let view = state
        .muster
        .add_group_mapping(
            auth.env,
            provider_id(&id)?,
            &body.group_ids,
            body.org_id,
            &auth.actor,
        )
        .await?;
    ok(StatusCode::CREATED, view)
}

/// Change an entry's groups and organization.
#[utoipa::path(put, operation_id = "updateGroupMapping", path = "/providers/{id}/mapping/groups/{mappingId}", tag = "mapping", request_body = GroupMappingBody, params(("id" = uuid::Uuid, Path, description = "The provider"), ("mappingId" = uuid::Uuid, Path, description = "The organization mapping entry")), responses((status = 200, body = MappingView), ApiErrors))]
async fn update_group_mapping(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path((id, mapping_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<GroupMappingBody>,
) -> ApiResult {
    let mid: GroupMappingId = parse_id(&mapping_id, "organization mapping entry")?;
    let view = state
        .muster
        .update_group_mapping(
            auth.env,
            provider_id(&id)?,
            mid,
            &body.group_ids,
            body.org_id,
            &auth.actor,
        )
        .await?;
    ok(StatusCode::OK, view)
}

/// Delete an organization mapping entry; the rest are renumbered.
#[utoipa::path(delete, operation_id = "deleteGroupMapping", path = "/providers/{id}/mapping/groups/{mappingId}", tag = "mapping", params(("id" = uuid::Uuid, Path, description = "The provider"), ("mappingId" = uuid::Uuid, Path, description = "The organization mapping entry")), responses((status = 200, body = MappingView), ApiErrors))]
async fn delete_group_mapping(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path((id, mapping_id)): Path<(String, String)>,
) -> ApiResult {
    let mid: GroupMappingId = parse_id(&mapping_id, "organization mapping entry")?;
    let view = state
        .muster
        .delete_group_mapping(auth.env, provider_id(&id)?, mid, &auth.actor)
        .await?;
    ok(StatusCode::OK, view)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OrderBody {
    order: Vec<GroupMappingId>,
}

/// Set the entries' priority order: every entry id, highest priority first.
#[utoipa::path(put, operation_id = "reorderGroupMappings", path = "/providers/{id}/mapping/group-order", tag = "mapping", request_body = OrderBody, params(("id" = uuid::Uuid, Path, description = "The provider")), responses((status = 200, body = MappingView), ApiErrors))]
async fn reorder_group_mappings(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<OrderBody>,
) -> ApiResult {
    let view = state
        .muster
        .reorder_group_mappings(auth.env, provider_id(&id)?, &body.order, &auth.actor)
        .await?;
    ok(StatusCode::OK, view)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RoleMappingBody {
    role_ids: Vec<RoleId>,
}

/// Set a group's role mapping (at least one role); roles it no longer gives are taken from
/// its members at once.
#[utoipa::path(put, operation_id = "setRoleMapping", path = "/providers/{id}/mapping/roles/{groupId}", tag = "mapping", request_body = RoleMappingBody, params(("id" = uuid::Uuid, Path, description = "The provider"), ("groupId" = uuid::Uuid, Path, description = "The SCIM group")), responses((status = 200, body = MappingView), ApiErrors))]
async fn set_role_mapping(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path((id, group_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleMappingBody>,
) -> ApiResult {
    if body.role_ids.is_empty() {
        return Err(ApiError::bad_request(
            "choose at least one role (roleIds); DELETE removes a role mapping",
        ));
    }
    let gid: GroupId = parse_id(&group_id, "SCIM group")?;
    let view = state
        .muster
        .set_role_mapping(
            auth.env,
            provider_id(&id)?,
            gid,
            &body.role_ids,
            &auth.actor,
        )
        .await?;
    ok(StatusCode::OK, view)
}

/// Remove a group's role mapping; its members lose the roles at once.
#[utoipa::path(delete, operation_id = "deleteRoleMapping", path = "/providers/{id}/mapping/roles/{groupId}", tag = "mapping", params(("id" = uuid::Uuid, Path, description = "The provider"), ("groupId" = uuid::Uuid, Path, description = "The SCIM group")), responses((status = 200, body = MappingView), ApiErrors))]
async fn delete_role_mapping(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path((id, group_id)): Path<(String, String)>,
) -> ApiResult {
    let gid: GroupId = parse_id(&group_id, "SCIM group")?;
    let view = state
        .muster
        .set_role_mapping(auth.env, provider_id(&id)?, gid, &[], &auth.actor)
        .await?;
    ok(StatusCode::OK, view)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PreviewQuery {
    /// The most changes listed, up to 100,000 (the totals count every change).
    #[param(maximum = 100_000)]
    limit: Option<usize>,
}

/// Every user the current mappings would move or give other roles, with totals and a digest
/// to apply exactly this.
#[utoipa::path(get, operation_id = "previewMapping", path = "/providers/{id}/mapping/preview", tag = "mapping", params(("id" = uuid::Uuid, Path, description = "The provider"), PreviewQuery), responses((status = 200, body = Preview), ApiErrors))]
async fn preview(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> ApiResult {
    let limit = q.limit.unwrap_or(PREVIEW_LIMIT);
    if limit > MAX_PREVIEW_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit is at most {MAX_PREVIEW_LIMIT}"
        )));
    }
    let p = state
        .muster
        .preview_mappings(auth.env, provider_id(&id)?, limit)
        .await?;
    ok(StatusCode::OK, p)
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    /// The preview's digest: apply only if the changes are still exactly those.
    digest: Option<String>,
}

/// Re-apply the mappings: perform the preview (refused with 409 if `digest` is given and the
/// preview changed since). An empty body applies without that check.
#[utoipa::path(post, operation_id = "applyMapping", path = "/providers/{id}/mapping/apply", tag = "mapping", request_body(content = ApplyBody, description = "Optional"), params(("id" = uuid::Uuid, Path, description = "The provider")), responses((status = 200, body = AppliedBody), ApiErrors))]
async fn apply(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    let body: ApplyBody = if body.iter().all(u8::is_ascii_whitespace) {
        ApplyBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let done = state
        .muster
        .apply_mappings(
            auth.env,
            provider_id(&id)?,
            body.digest.as_deref(),
            &auth.actor,
        )
        .await?;
    ok(StatusCode::OK, AppliedBody { applied: done })
}
