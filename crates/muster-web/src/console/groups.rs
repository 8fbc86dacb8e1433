//! A SCIM group as its provider pushed it: its members, and where the provider's mappings put
//! them (the organization its group mapping entry names, the roles its role mapping gives).
//! What an administrator opens when a placement surprises.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use muster_core::ids::{GroupId, ProviderId, UserId};
use muster_core::CoreError;

use super::access::{opens, Directory, Providers};
use super::html::{render, Shell};
use super::shell::{error_page, internal, Console, Id, PathId};
use crate::state::AppState;

impl PathId for GroupId {
    const MISSING: &'static str = "There is no such group.";
}

/// Members listed on the page; the API (`GET /api/v1/groups/{id}`) has them all.
const LISTED: usize = 500;

struct MemberRow {
    id: UserId,
    display: String,
}

#[derive(Template)]
#[template(path = "console/group.html")]
struct GroupPage {
    shell: Shell,
    name: String,
    provider_id: ProviderId,
    provider: String,
    external_id: Option<String>,
    created: String,
    updated: String,
    /// Where the organization mapping puts its members, in words.
    placement: String,
    /// The roles its role mapping gives, by name; empty when it has none.
    roles: Vec<String>,
    total: usize,
    members: Vec<MemberRow>,
    /// Whether the reader may open users' pages.
    link_users: bool,
}

/// `GET /console/groups/{id}`.
pub async fn show(
    State(state): State<AppState>,
    console: Console<Providers>,
    Id(id): Id<GroupId>,
) -> Response {
    let m = &state.muster;
    let env = console.env();
    let (group, members) = match m.group_with_members(env, id).await {
        Ok(found) => found,
        Err(CoreError::NotFound(_)) => return error_page(StatusCode::NOT_FOUND, GroupId::MISSING),
        Err(e) => return internal(&e),
    };
    let (provider, mapping) = match (
        m.get_provider(env, group.provider_id).await,
        m.mapping_view(env, group.provider_id).await,
    ) {
        (Ok(p), Ok(v)) => (p, v),
        (Err(e), _) | (_, Err(e)) => return internal(&e),
    };
    let placement = mapping.placement_of(id);
    let total = members.len();
    let mut members: Vec<MemberRow> = members
        .into_iter()
        .map(|m| MemberRow {
            id: m.user_id,
            display: m.display,
        })
        .collect();
    members.truncate(LISTED);
    let page = GroupPage {
        shell: console.shell(&group.display_name, "/console/providers"),
        name: group.display_name,
        provider_id: provider.id,
        provider: provider.name,
        external_id: group.external_id,
        created: group.created_at.to_rfc3339(),
        updated: group.updated_at.to_rfc3339(),
        placement: placement.org,
        roles: placement.roles,
        total,
        members,
        link_users: opens::<Directory>(console.admin.role),
    };
    render(StatusCode::OK, &page)
}
