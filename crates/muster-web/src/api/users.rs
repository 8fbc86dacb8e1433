//! `/api/v1/users`: users by organization, status, provider and text, local users, and the
//! administrator's actions on a user (block, unblock, deactivate, reactivate, move, roles,
//! legal hold).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use muster_core::ids::{OrgId, ProviderId, RoleId, UserId};
use muster_core::model::UserStatus;
use muster_core::store::UserQuery;
use muster_core::users::directory::UserAction;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::body::{UserBody, UserList, UserSummary};
use super::extract::{
    decode_cursor, encode_cursor, ok, parse_id, AdminAuth, ApiError, ApiErrors, ApiJson, ApiQuery,
    ApiResult,
};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct UserFilter {
    /// Only this organization's users.
    org: Option<String>,
    /// `active`, `blocked` or `deactivated`.
    status: Option<String>,
    /// Only this provider's users; `local` for local users.
    provider: Option<String>,
    /// Text in the userName or the display name; or a whole email address or externalId.
    q: Option<String>,
    /// The user with exactly this userName (without case).
    #[serde(rename = "userName")]
    #[param(rename = "userName")]
    user_name: Option<String>,
    /// Users with this email address (without case).
    email: Option<String>,
    /// Users their provider gave this `externalId` (compared exactly): the identity
    /// provider's own id for the person, as its attribute mappings send it.
    #[serde(rename = "externalId")]
    #[param(rename = "externalId")]
    external_id: Option<String>,
    /// The `nextCursor` of the previous page.
    cursor: Option<String>,
    /// Users per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
}

fn parse_status(s: &str) -> Result<UserStatus, ApiError> {
    UserStatus::parse(s).ok_or_else(|| {
        ApiError::bad_request(format!(
            "status must be active, blocked or deactivated, not '{s}'"
        ))
    })
}

/// List users, in pages linked by `nextCursor`.
#[utoipa::path(get, operation_id = "listUsers", path = "/users", tag = "users", params(UserFilter),
    responses((status = 200, body = UserList), ApiErrors))]
pub(super) async fn list(
    State(state): State<AppState>,
    auth: AdminAuth,
    ApiQuery(q): ApiQuery<UserFilter>,
) -> ApiResult {
    // An exact filter left empty finds no one; refused, so that an application whose variable
    // was empty hears of it rather than reading an empty page as "no such person".
    for (name, value) in [
        ("userName", &q.user_name),
        ("email", &q.email),
        ("externalId", &q.external_id),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(ApiError::bad_request(format!(
                "'{name}' is empty: give a value, or leave it out to list every user"
            )));
        }
    }
    let query = UserQuery {
        org: q
            .org
            .as_deref()
            .map(|o| parse_id::<OrgId>(o, "organization"))
            .transpose()?,
        status: q.status.as_deref().map(parse_status).transpose()?,
        provider: match q.provider.as_deref() {
            None => None,
            Some("local") => Some(None),
            Some(p) => Some(Some(parse_id::<ProviderId>(p, "provider")?)),
        },
        text: q.q.clone(),
        user_name: q.user_name.clone(),
        external_id: q.external_id.clone(),
        email: q.email.clone(),
    };
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    // Read before the page, so that no change the page misses is before it.
    let as_of = state.muster.event_head().await?;
    let (users, next) = state
        .muster
        .query_users(auth.env, &query, after, q.limit.unwrap_or(100))
        .await?;
    let providers = state.muster.provider_names(auth.env).await?;
    ok(
        StatusCode::OK,
        UserList {
            users: users
                .iter()
                .map(|u| UserSummary::new(u, &providers))
                .collect(),
            next_cursor: next.as_ref().map(encode_cursor),
            as_of,
        },
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CreateUser {
    user_name: String,
    display_name: Option<String>,
    email: Option<String>,
    /// The default organization when left out.
    org_id: Option<String>,
}

/// Add a local user.
#[utoipa::path(post, operation_id = "createUser", path = "/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = UserBody), ApiErrors))]
pub(super) async fn create(
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
    ok(StatusCode::CREATED, UserBody::new(&d, &providers))
}

/// One user, with organization, effective roles and where they come from.
#[utoipa::path(get, operation_id = "getUser", path = "/users/{id}", tag = "users",
    params(("id" = uuid::Uuid, Path, description = "The user")),
    responses((status = 200, body = UserBody), ApiErrors))]
pub(super) async fn get(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let d = state
        .muster
        .user_detail(auth.env, parse_id::<UserId>(&id, "user")?)
        .await?;
    let providers = state.muster.provider_names(auth.env).await?;
    let mapping = state
        .muster
        .explain_mapping(auth.env, &d.user, &d.groups)
        .await?;
    ok(
        StatusCode::OK,
        UserBody::new(&d, &providers).with_mapping(mapping),
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct UpdateUser {
    /// `active`, `blocked` or `deactivated`: block, unblock, deactivate (at once) or reactivate.
    status: Option<String>,
    /// Move to this organization.
    org_id: Option<String>,
    /// The user's roles; `[]` for the organization's defaults.
    role_ids: Option<Vec<String>>,
    legal_hold: Option<bool>,
}

/// Block, unblock, deactivate, reactivate, move, set roles, legal hold.
#[utoipa::path(patch, operation_id = "updateUser", path = "/users/{id}", tag = "users", request_body = UpdateUser,
    params(("id" = uuid::Uuid, Path, description = "The user")),
    responses((status = 200, body = UserBody), ApiErrors))]
pub(super) async fn update(
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
        match (current, parse_status(status)?) {
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
    let d = m.user_detail(auth.env, id).await?;
    let mapping = m.explain_mapping(auth.env, &d.user, &d.groups).await?;
    ok(
        StatusCode::OK,
        UserBody::new(&d, &providers).with_mapping(mapping),
    )
}
