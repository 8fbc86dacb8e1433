//! Service provider configuration, resource types and schemas (RFC 7644 §4, RFC 7643 §5-§7).

use axum::extract::Path;
use axum::response::Response;
use muster_scim::list::list_response;
use muster_scim::schema::{ALL_SCHEMAS, GROUP_RESOURCE, USER_RESOURCE};
use muster_scim::ScimError;
use serde_json::{json, Value};

use super::extract::ProviderAuth;
use super::response::scim_json;
use crate::error::ScimErrorResponse;
use crate::state::MAX_BODY_BYTES;

/// The most operations one Bulk request may carry.
pub const BULK_MAX_OPERATIONS: usize = 1000;

/// What this server supports, exactly (RFC 7643 §5).
pub fn service_provider_config(base_url: &str, max_results: u64) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/muster-scim/muster/blob/main/docs/scim.md",
        "patch": {"supported": super::response::PATCH_SUPPORTED},
        "bulk": {"supported": true, "maxOperations": BULK_MAX_OPERATIONS, "maxPayloadSize": MAX_BODY_BYTES},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a provider token created in Muster, sent as 'Authorization: Bearer <token>'.",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true
        }, {
            "type": "httpbasic",
            "name": "HTTP Basic",
            "description": "The same provider token as the password of HTTP Basic authentication, for clients that offer only Basic; the user name is not checked.",
            "specUri": "https://www.rfc-editor.org/info/rfc7617",
            "primary": false
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base_url}/ServiceProviderConfig"),
        }
    })
}

/// `GET /ServiceProviderConfig` (RFC 7644 §4).
pub async fn get_service_provider_config(
    ProviderAuth(ctx): ProviderAuth,
    state: axum::extract::State<crate::state::AppState>,
) -> Response {
    scim_json(
        200,
        &service_provider_config(&ctx.base_url, state.muster.settings.max_page_size),
    )
}

/// `GET /ResourceTypes` (RFC 7644 §4).
pub async fn list_resource_types(ProviderAuth(ctx): ProviderAuth) -> Response {
    let all = vec![
        USER_RESOURCE.to_json(&ctx.base_url),
        GROUP_RESOURCE.to_json(&ctx.base_url),
    ];
    scim_json(200, &list_response(2, 1, all))
}

/// `GET /ResourceTypes/{name}` (RFC 7644 §4).
pub async fn get_resource_type(
    ProviderAuth(ctx): ProviderAuth,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, ScimErrorResponse> {
    [&USER_RESOURCE, &GROUP_RESOURCE]
        .into_iter()
        .find(|rt| rt.name.eq_ignore_ascii_case(&name))
        .map(|rt| scim_json(200, &rt.to_json(&ctx.base_url)))
        .ok_or_else(|| ScimError::not_found(format!("no resource type named '{name}'")).into())
}

/// `GET /Schemas` (RFC 7644 §4).
pub async fn list_schemas(ProviderAuth(ctx): ProviderAuth) -> Response {
    let all: Vec<Value> = ALL_SCHEMAS
        .iter()
        .map(|s| s.to_json(&ctx.base_url))
        .collect();
    scim_json(200, &list_response(all.len() as u64, 1, all))
}

/// `GET /Schemas/{id}` (RFC 7644 §4).
pub async fn get_schema(
    ProviderAuth(ctx): ProviderAuth,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ScimErrorResponse> {
    ALL_SCHEMAS
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(&id))
        .map(|s| scim_json(200, &s.to_json(&ctx.base_url)))
        .ok_or_else(|| ScimError::not_found(format!("no schema with id '{id}'")).into())
}
