//! `/api/v1/providers/{id}/mapping`: a provider's organization mapping and role mapping, and
//! the preview and re-apply of both (the administrator guide, Steps 6 and 7).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Router;
use muster_core::ids::{GroupId, GroupMappingId, OrgId, ProviderId, RoleId};
use muster_core::mapping::config::OrgMappingInput;
use muster_core::mapping::preview::PREVIEW_LIMIT;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{ok, parse_id, AdminAuth, ApiError, ApiJson, ApiResult};
use crate::state::AppState;

/// The most changes one preview response lists.
const MAX_PREVIEW_LIMIT: usize = 100_000;

/// The mapping routes, relative to `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/providers/{id}/mapping", get(get_mapping))
        .route("/providers/{id}/mapping/org", put(set_org_mapping))
        .route("/providers/{id}/mapping/groups", post(add_group_mapping))
        .route(
            "/providers/{id}/mapping/groups/{mapping_id}",
            put(update_group_mapping).delete(delete_group_mapping),
        )
        .route(
            "/providers/{id}/mapping/group-order",
            put(reorder_group_mappings),
        )
        .route(
            "/providers/{id}/mapping/roles/{group_id}",
            put(set_role_mapping).delete(delete_role_mapping),
        )
        .route("/providers/{id}/mapping/preview", get(preview))
        .route("/providers/{id}/mapping/apply", post(apply))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "An internal error occurred. The server log has the details.",
        )
    })
}

fn provider_id(id: &str) -> Result<ProviderId, ApiError> {
    parse_id(id, "provider")
}

/// `GET /api/v1/providers/{id}/mapping`: the method, group and role mappings, their status
/// messages, and the groups that have no role mapping yet.
async fn get_mapping(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let view = state
        .muster
        .mapping_view(auth.env, provider_id(&id)?)
        .await?;
    ok(StatusCode::OK, to_json(&view)?)
}

/// `PUT /api/v1/providers/{id}/mapping/org`: chooses the organization mapping method.
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
    ok(StatusCode::OK, to_json(&view)?)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GroupMappingBody {
    group_ids: Vec<GroupId>,
    org_id: OrgId,
}

/// `POST /api/v1/providers/{id}/mapping/groups`: maps one or more groups to an organization,
/// at the lowest priority.
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
    ok(StatusCode::CREATED, to_json(&view)?)
}

/// `PUT /api/v1/providers/{id}/mapping/groups/{mappingId}`: changes an entry's groups and
/// organization.
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
    ok(StatusCode::OK, to_json(&view)?)
}

/// `DELETE /api/v1/providers/{id}/mapping/groups/{mappingId}`.
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
    ok(StatusCode::OK, to_json(&view)?)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OrderBody {
    order: Vec<GroupMappingId>,
}

/// `PUT /api/v1/providers/{id}/mapping/group-order`: every entry id, highest priority first.
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
    ok(StatusCode::OK, to_json(&view)?)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RoleMappingBody {
    role_ids: Vec<RoleId>,
}

/// `PUT /api/v1/providers/{id}/mapping/roles/{groupId}`: the group's roles (at least one).
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
    ok(StatusCode::OK, to_json(&view)?)
}

/// `DELETE /api/v1/providers/{id}/mapping/roles/{groupId}`: members lose the roles at once.
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
    ok(StatusCode::OK, to_json(&view)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/providers/{id}/mapping/preview?limit=`: every user the current mappings would
/// move or give other roles, with totals and a digest to apply exactly this.
async fn preview(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    Query(q): Query<PreviewQuery>,
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
    ok(StatusCode::OK, to_json(&p)?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    digest: Option<String>,
}

/// `POST /api/v1/providers/{id}/mapping/apply`: performs the preview (refused with 409 if
/// `digest` is given and the preview changed since).
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
    ok(StatusCode::OK, json!({"applied": to_json(&done)?}))
}
