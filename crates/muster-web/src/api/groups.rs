//! `/api/v1/groups`: the SCIM groups providers push, read-only (providers own them), for
//! administrators and for applications with `directory:read`.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use muster_core::ids::{GroupId, ProviderId, UserId};
use muster_core::model::GroupRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{
    decode_cursor, encode_cursor, ok, parse_id, AdminAuth, ApiError, ApiErrors, ApiQuery, ApiResult,
};
use crate::state::AppState;

/// A group.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct GroupBody {
    id: GroupId,
    display_name: String,
    external_id: Option<String>,
    /// The provider that pushes it.
    provider_id: ProviderId,
    provider_name: Option<String>,
    created_at: String,
    updated_at: String,
}

impl GroupBody {
    fn new(g: &GroupRecord, providers: &HashMap<ProviderId, String>) -> Self {
        GroupBody {
            id: g.id,
            display_name: g.display_name.clone(),
            external_id: g.external_id.clone(),
            provider_id: g.provider_id,
            provider_name: providers.get(&g.provider_id).cloned(),
            created_at: g.created_at.to_rfc3339(),
            updated_at: g.updated_at.to_rfc3339(),
        }
    }
}

/// A page of groups.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct GroupList {
    groups: Vec<GroupBody>,
    /// Pass back as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
    /// The event feed's head when this page was read (docs/events.md, "Starting").
    as_of: i64,
}

/// A member of a group.
#[derive(Serialize, ToSchema)]
pub(super) struct Member {
    id: UserId,
    /// Its display name, or its userName.
    display: String,
}

/// A group with its members.
#[derive(Serialize, ToSchema)]
pub(super) struct GroupDetail {
    #[serde(flatten)]
    group: GroupBody,
    members: Vec<Member>,
}

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
    ok(
        StatusCode::OK,
        GroupDetail {
            group: GroupBody::new(&g, &providers),
            members: members
                .into_iter()
                .map(|m| Member {
                    id: m.user_id,
                    display: m.display,
                })
                .collect(),
        },
    )
}
