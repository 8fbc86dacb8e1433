//! `/api/v1/groups`: the SCIM groups providers push, read-only (providers own them), for
//! administrators and for applications with `directory:read`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use muster_core::ids::{GroupId, ProviderId};
use serde::Deserialize;
use utoipa::IntoParams;

use super::body::{GroupBody, GroupDetail, GroupList};

use super::extract::{
    decode_cursor, encode_cursor, ok, parse_id, AdminAuth, ApiError, ApiErrors, ApiQuery, ApiResult,
};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupFilter {
    /// Only this provider's groups.
    provider: Option<String>,
    /// The `nextCursor` of the previous page.
    cursor: Option<String>,
    /// Groups per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
}

/// List groups, in pages linked by `nextCursor`.
#[utoipa::path(get, path = "/groups", operation_id = "listGroups", tag = "groups",
    params(GroupFilter),
    responses((status = 200, body = GroupList), ApiErrors))]
pub(super) async fn list(
    State(state): State<AppState>,
    auth: AdminAuth,
    ApiQuery(q): ApiQuery<GroupFilter>,
) -> ApiResult {
    let provider = q
        .provider
        .as_deref()
        .map(|p| parse_id::<ProviderId>(p, "provider"))
        .transpose()?;
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    if q.limit.is_some_and(|l| l == 0 || l > 1000) {
        return Err(ApiError::bad_request("limit must be 1 to 1000"));
    }
    // Read before the page, so that no change the page misses is before it.
    let as_of = state.muster.event_head().await?;
    let (groups, next) = state
        .muster
        .query_groups(auth.env, provider, after, q.limit.unwrap_or(100))
        .await?;
    let providers = state.muster.provider_names(auth.env).await?;
    ok(
        StatusCode::OK,
        GroupList {
            groups: groups
                .iter()
                .map(|g| GroupBody::new(g, &providers))
                .collect(),
            next_cursor: next.as_ref().map(encode_cursor),
            as_of,
        },
    )
}

/// One group with its members.
#[utoipa::path(get, path = "/groups/{id}", operation_id = "getGroup", tag = "groups",
    params(("id" = uuid::Uuid, Path, description = "The group")),
    responses((status = 200, body = GroupDetail), ApiErrors))]
pub(super) async fn get(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let id: GroupId = parse_id(&id, "group")?;
    let (g, members) = state.muster.group_with_members(auth.env, id).await?;
    let providers = state.muster.provider_names(auth.env).await?;
    ok(StatusCode::OK, GroupDetail::new(&g, members, &providers))
}
