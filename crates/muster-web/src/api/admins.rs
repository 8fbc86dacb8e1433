//! `/api/v1/admins`: the console's administrators, and their email address and report
//! preference (docs/notifications.md). Adding administrators and changing roles stay in the
//! console and the CLI, where the password is typed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use muster_core::ids::AdminId;
use muster_core::model::{AdminAccount, ReportPreference};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ok, parse_id, AdminAuth, ApiErrors, ApiJson, ApiResult};
use crate::state::AppState;

/// An administrator; never their password.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AdminBody {
    id: AdminId,
    username: String,
    /// `customer_cloud_admin`, `identity_management_admin` or `audit_log_viewer`.
    role: String,
    email: Option<String>,
    /// `daily`, `errors` (the report only on days with errors) or `never`.
    report_preference: ReportPreference,
    created_at: String,
    last_sign_in_at: Option<String>,
}

impl From<&AdminAccount> for AdminBody {
    fn from(a: &AdminAccount) -> Self {
        AdminBody {
            id: a.id,
            username: a.username.clone(),
            role: a.role.as_str().into(),
            email: a.email.clone(),
            report_preference: a.report,
            created_at: a.created_at.to_rfc3339(),
            last_sign_in_at: a.last_sign_in_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// Administrators.
#[derive(Serialize, ToSchema)]
pub(super) struct AdminList {
    admins: Vec<AdminBody>,
}

/// The console's administrators, by username.
#[utoipa::path(get, path = "/admins", operation_id = "listAdmins", tag = "admins",
    responses((status = 200, body = AdminList), ApiErrors))]
pub(super) async fn list(State(state): State<AppState>, auth: AdminAuth) -> ApiResult {
    let admins = state.muster.list_admins(auth.env).await?;
    ok(
        StatusCode::OK,
        AdminList {
            admins: admins.iter().map(AdminBody::from).collect(),
        },
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct UpdateAdmin {
    /// Where notices go; `null` or `""` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable)]
    email: Option<Option<String>>,
    report_preference: Option<ReportPreference>,
}

/// A field that is present (even as `null`) is `Some`; an absent one stays `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// Set an administrator's email address and report preference.
#[utoipa::path(patch, path = "/admins/{id}", operation_id = "updateAdmin", tag = "admins",
    request_body = UpdateAdmin,
    params(("id" = uuid::Uuid, Path, description = "The administrator")),
    responses((status = 200, body = AdminBody), ApiErrors))]
pub(super) async fn update(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateAdmin>,
) -> ApiResult {
    let a = state
        .muster
        .set_admin_notifications(
            auth.env,
            parse_id(&id, "administrator")?,
            body.email,
            body.report_preference,
            &auth.actor,
        )
        .await?;
    ok(StatusCode::OK, AdminBody::from(&a))
}
