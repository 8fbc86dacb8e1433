//! `/api/v1/webhooks`: endpoints that receive the event feed, signed the Standard Webhooks way,
//! and their delivery log (docs/webhooks.md).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use muster_core::ids::WebhookId;
use muster_core::model::{DeliveryKind, WebhookDelivery, WebhookEndpoint};
use muster_core::webhooks::WebhookInput;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ok, parse_id, AdminAuth, ApiErrors, ApiJson, ApiQuery, ApiResult};
use crate::state::AppState;

/// A webhook endpoint; never its secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct WebhookBody {
    id: WebhookId,
    url: String,
    description: String,
    /// Types and families it receives; every type when empty.
    event_types: Vec<String>,
    enabled: bool,
    /// Deliveries failed past the retry schedule; off until re-enabled.
    failing: bool,
    /// The last event delivered.
    after_seq: i64,
    /// Failed attempts in a row.
    attempts: i64,
    next_attempt_at: String,
    created_at: String,
}

impl From<&WebhookEndpoint> for WebhookBody {
    fn from(w: &WebhookEndpoint) -> Self {
        WebhookBody {
            id: w.id,
            url: w.url.clone(),
            description: w.description.clone(),
            event_types: w.event_types.clone(),
            enabled: w.enabled,
            failing: w.failing,
            after_seq: w.after_seq,
            attempts: w.attempts,
            next_attempt_at: w.next_attempt_at.to_rfc3339(),
            created_at: w.created_at.to_rfc3339(),
        }
    }
}

/// An endpoint with its signing secret: in the answers that create or rotate it only.
#[derive(Serialize, ToSchema)]
pub(super) struct WebhookWithSecret {
    #[serde(flatten)]
    webhook: WebhookBody,
    /// The signing secret (`whsec_…`): shown this once.
    secret: String,
}

/// Endpoints.
#[derive(Serialize, ToSchema)]
pub(super) struct WebhookList {
    webhooks: Vec<WebhookBody>,
}

/// One delivery attempt.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeliveryBody {
    id: i64,
    attempted_at: String,
    first_seq: i64,
    last_seq: i64,
    status_code: Option<i64>,
    latency_ms: i64,
    /// The first KiB of the answer.
    response: String,
    error: Option<String>,
    /// `feed` (the endpoint's next batch), `redeliver` (one event again) or `test`.
    kind: DeliveryKind,
}

impl From<&WebhookDelivery> for DeliveryBody {
    fn from(d: &WebhookDelivery) -> Self {
        DeliveryBody {
            id: d.id,
            attempted_at: d.attempted_at.to_rfc3339(),
            first_seq: d.first_seq,
            last_seq: d.last_seq,
            status_code: d.status_code,
            latency_ms: d.latency_ms,
            response: d.response.clone(),
            error: d.error.clone(),
            kind: d.kind,
        }
    }
}

/// Delivery attempts, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct DeliveryList {
    deliveries: Vec<DeliveryBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct WebhookFields {
    /// Where deliveries are POSTed (http or https).
    url: Option<String>,
    description: Option<String>,
    /// Types (`user.created`) and families (`group.`); every type when empty or left out.
    event_types: Option<Vec<String>>,
    /// Off stops deliveries; on resumes them from the first event not yet received.
    enabled: Option<bool>,
}

impl WebhookFields {
    fn input(self) -> WebhookInput {
        WebhookInput {
            url: self.url,
            description: self.description,
            event_types: self.event_types,
            enabled: self.enabled,
        }
    }
}

fn webhook_id(id: &str) -> Result<WebhookId, super::extract::ApiError> {
    parse_id(id, "webhook endpoint")
}

/// List webhook endpoints.
#[utoipa::path(get, path = "/webhooks", operation_id = "listWebhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList), ApiErrors))]
pub(super) async fn list(State(state): State<AppState>, auth: AdminAuth) -> ApiResult {
    let all = state.muster.list_webhooks(auth.env).await?;
    ok(
        StatusCode::OK,
        WebhookList {
            webhooks: all.iter().map(WebhookBody::from).collect(),
        },
    )
}

/// Add a webhook endpoint; it receives the events that commit from now on. Its signing secret
/// is shown once.
#[utoipa::path(post, path = "/webhooks", operation_id = "createWebhook", tag = "webhooks",
    request_body = WebhookFields,
    responses((status = 201, body = WebhookWithSecret), ApiErrors))]
pub(super) async fn create(
    State(state): State<AppState>,
    auth: AdminAuth,
    ApiJson(body): ApiJson<WebhookFields>,
) -> ApiResult {
    let made = state
        .muster
        .create_webhook(auth.env, &body.input(), &auth.actor)
        .await?;
    let out = WebhookWithSecret {
        webhook: WebhookBody::from(&made.endpoint),
        secret: made.secret,
    };
    ok(StatusCode::CREATED, out)
}

/// One webhook endpoint.
#[utoipa::path(get, path = "/webhooks/{id}", operation_id = "getWebhook", tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "The endpoint")),
    responses((status = 200, body = WebhookBody), ApiErrors))]
pub(super) async fn get(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let w = state.muster.get_webhook(auth.env, webhook_id(&id)?).await?;
    ok(StatusCode::OK, WebhookBody::from(&w))
}

/// Change an endpoint's URL, description or types; turn it off or on.
#[utoipa::path(patch, path = "/webhooks/{id}", operation_id = "updateWebhook", tag = "webhooks",
    request_body = WebhookFields,
    params(("id" = uuid::Uuid, Path, description = "The endpoint")),
    responses((status = 200, body = WebhookBody), ApiErrors))]
pub(super) async fn update(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WebhookFields>,
) -> ApiResult {
    let w = state
        .muster
        .update_webhook(auth.env, webhook_id(&id)?, &body.input(), &auth.actor)
        .await?;
    ok(StatusCode::OK, WebhookBody::from(&w))
}

/// Delete an endpoint and its delivery log.
#[utoipa::path(delete, path = "/webhooks/{id}", operation_id = "deleteWebhook", tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "The endpoint")),
    responses((status = 204, description = "Deleted"), ApiErrors))]
pub(super) async fn delete(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    state
        .muster
        .delete_webhook(auth.env, webhook_id(&id)?, &auth.actor)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Give an endpoint a new signing secret, shown once.
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", operation_id = "rotateWebhookSecret",
    tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "The endpoint")),
    responses((status = 200, body = WebhookWithSecret), ApiErrors))]
pub(super) async fn rotate(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let made = state
        .muster
        .rotate_webhook_secret(auth.env, webhook_id(&id)?, &auth.actor)
        .await?;
    let out = WebhookWithSecret {
        webhook: WebhookBody::from(&made.endpoint),
        secret: made.secret,
    };
    ok(StatusCode::OK, out)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct DeliveryParams {
    /// Attempts to list, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
}

/// An endpoint's delivery attempts, newest first: when, which events, the status, the latency
/// and the start of the answer.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", operation_id = "listWebhookDeliveries",
    tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "The endpoint"), DeliveryParams),
    responses((status = 200, body = DeliveryList), ApiErrors))]
pub(super) async fn deliveries(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<DeliveryParams>,
) -> ApiResult {
    let list = state
        .muster
        .webhook_deliveries(auth.env, webhook_id(&id)?, p.limit.unwrap_or(100))
        .await?;
    ok(
        StatusCode::OK,
        DeliveryList {
            deliveries: list.iter().map(DeliveryBody::from).collect(),
        },
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Replay {
    /// Deliver again every event after this `seq` (still kept, not beyond the newest).
    after: i64,
}

/// Replay: deliver again, in order, every event after a `seq`.
#[utoipa::path(post, path = "/webhooks/{id}/replay", operation_id = "replayWebhook",
    tag = "webhooks", request_body = Replay,
    params(("id" = uuid::Uuid, Path, description = "The endpoint")),
    responses((status = 200, body = WebhookBody), ApiErrors))]
pub(super) async fn replay(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Replay>,
) -> ApiResult {
    let w = state
        .muster
        .replay_webhook(auth.env, webhook_id(&id)?, body.after, &auth.actor)
        .await?;
    ok(StatusCode::OK, WebhookBody::from(&w))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Redeliver {
    /// The event to send again (still kept).
    seq: i64,
}

/// A delivery queued outside the endpoint's order.
#[derive(Serialize, ToSchema)]
pub(super) struct Queued {
    /// The queued request; its attempt shows in the delivery log with this kind.
    queued: i64,
    /// `redeliver` or `test`.
    kind: DeliveryKind,
}

/// Send one kept event to the endpoint again, ahead of its next batch, under the event's own
/// `webhook-id`; the attempt shows in the delivery log.
#[utoipa::path(post, path = "/webhooks/{id}/redeliver", operation_id = "redeliverWebhookEvent",
    tag = "webhooks", request_body = Redeliver,
    params(("id" = uuid::Uuid, Path, description = "The endpoint")),
    responses((status = 202, body = Queued), ApiErrors))]
pub(super) async fn redeliver(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Redeliver>,
) -> ApiResult {
    let queued = state
        .muster
        .redeliver_webhook_event(auth.env, webhook_id(&id)?, body.seq, &auth.actor)
        .await?;
    ok(
        StatusCode::ACCEPTED,
        Queued {
            queued,
            kind: DeliveryKind::Redeliver,
        },
    )
}

/// Send a test event (`webhook.test`, `seq` 0) to the endpoint, even while it is turned off;
/// the attempt shows in the delivery log.
#[utoipa::path(post, path = "/webhooks/{id}/test", operation_id = "sendWebhookTest",
    tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "The endpoint")),
    responses((status = 202, body = Queued), ApiErrors))]
pub(super) async fn test(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult {
    let queued = state
        .muster
        .send_test_webhook(auth.env, webhook_id(&id)?, &auth.actor)
        .await?;
    ok(
        StatusCode::ACCEPTED,
        Queued {
            queued,
            kind: DeliveryKind::Test,
        },
    )
}
