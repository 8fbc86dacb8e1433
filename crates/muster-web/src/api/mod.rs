//! The administration REST API under `/api/v1`: JSON in and out, authenticated by administrator
//! API tokens (`Authorization: Bearer msa_...`), described by an OpenAPI 3.1 document at
//! `/api/v1/openapi.json`.
//!
//! Each handler carries its `#[utoipa::path]` description and is registered with
//! `utoipa_axum::routes!`, which adds the route and its description together: a route cannot be
//! served without being documented, and the request and response schemas are derived from the
//! types the handlers read and write ([`body`]).

mod admins;
mod apps;
pub mod body;
mod events;
pub mod extract;
mod groups;
mod mapping;
mod orgs;
mod providers;
mod synclog;
mod users;
mod webhooks;

use axum::extract::State;
use axum::Json;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::body::{ErrorBody, ErrorDetail};
use self::extract::{api_method_not_allowed, api_not_found};
use crate::state::AppState;

pub(crate) use self::synclog::csv_export;

/// The document's fixed parts; the paths come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Muster administration API",
        version = "1",
        description = "Organizations, roles, users and provisioning providers. Authenticate with an administrator API token (`muster admin token create`) as `Authorization: Bearer msa_...`."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "orgs", description = "The organization tree and default roles"),
        (name = "roles", description = "The role catalog"),
        (name = "users", description = "Users and administrators' actions on them"),
        (name = "groups", description = "The SCIM groups providers push (read-only)"),
        (name = "providers", description = "Provisioning providers and their tokens"),
        (name = "mapping", description = "Organization mapping and role mapping"),
        (name = "sync-log", description = "Every change, newest first"),
        (name = "events", description = "The event feed for applications: every change in commit order"),
        (name = "apps", description = "Application credentials: read-only tokens with scopes"),
        (name = "webhooks", description = "Endpoints that receive the event feed, signed (Standard Webhooks)"),
        (name = "admins", description = "Console administrators' email addresses and report preferences"),
        (name = "meta", description = "This document")
    )
)]
struct ApiDoc;

/// The `bearer` security scheme every endpoint but the document itself requires.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every endpoint, relative to `/api/v1`, with its description.
fn endpoints() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_openapi))
        .routes(routes!(orgs::list, orgs::create))
        .routes(routes!(orgs::tree))
        .routes(routes!(orgs::get, orgs::update))
        .routes(routes!(orgs::set_default_roles))
        .routes(routes!(orgs::list_roles, orgs::create_role))
        .routes(routes!(orgs::delete_role, orgs::rename_role))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get, users::update))
        .routes(routes!(groups::list))
        .routes(routes!(groups::get))
        .routes(routes!(providers::list, providers::create))
        .routes(routes!(providers::get, providers::update))
        .routes(routes!(providers::list_tokens, providers::create_token))
        .routes(routes!(providers::revoke_token))
        .routes(routes!(providers::get_guard, providers::update_guard))
        .routes(routes!(providers::release_guard))
        .routes(routes!(providers::restore_guard))
        .merge(mapping::routes())
        .routes(routes!(synclog::list))
        .routes(routes!(synclog::export))
        .routes(routes!(events::list))
        .routes(routes!(events::head))
        .routes(routes!(apps::list, apps::create))
        .routes(routes!(apps::rotate))
        .routes(routes!(apps::revoke))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::rotate))
        .routes(routes!(admins::list))
        .routes(routes!(admins::update))
        .routes(routes!(webhooks::replay))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(webhooks::test))
        .routes(routes!(webhooks::deliveries))
}

/// The API routes.
pub fn router() -> Router<AppState> {
    let (api, _) = endpoints().split_for_parts();
    let api = api
        .fallback(api_not_found)
        .method_not_allowed_fallback(api_method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::state::MAX_BODY_BYTES,
        ));
    // `/api/v1/` is not a route of the nested router (its fallback does not see it).
    Router::new()
        .nest("/api/v1", api)
        .route("/api/v1/", axum::routing::any(api_not_found))
}

/// The OpenAPI document, with `server_url` as its server.
pub fn document(server_url: &str) -> Document {
    let (_, mut doc) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", endpoints())
        .split_for_parts();
    doc.servers = Some(vec![Server::new(server_url)]);
    doc
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    get, operation_id = "getOpenApi",
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
async fn get_openapi(State(state): State<AppState>) -> Json<Document> {
    Json(document(&state.muster.settings.public_url))
}
