//! Webhooks (Identity Management): the endpoints that receive the event feed, added with their
//! signing secret shown once, turned off and on, replayed from a `seq`, their secret rotated;
//! and each endpoint's delivery log.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use muster_core::ids::WebhookId;
use muster_core::model::WebhookEndpoint;
use muster_core::webhooks::WebhookInput;
use muster_core::CoreError;

use super::access::Providers;
use super::html::{render, Shell};
use super::shell::{error_page, internal, redirect, status_of, Console, Id, PathId, Posted};
use crate::state::AppState;

impl PathId for WebhookId {
    const MISSING: &'static str = "There is no such webhook endpoint.";
}

fn state_of(w: &WebhookEndpoint) -> &'static str {
    match (w.enabled, w.failing) {
        (_, true) => "failing",
        (true, _) => "on",
        (false, _) => "off",
    }
}

struct Row {
    id: WebhookId,
    url: String,
    description: String,
    types: String,
    state: &'static str,
    enabled: bool,
    after_seq: i64,
    attempts: i64,
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct WebhooksPage<'a> {
    shell: Shell,
    csrf: &'a str,
    error: Option<&'a str>,
    secret: Option<String>,
    url: &'a str,
    types: &'a str,
    rows: Vec<Row>,
}

/// `GET /console/webhooks`.
pub async fn page(State(state): State<AppState>, console: Console<Providers>) -> Response {
    list_page(&state, &console, None, None, ("", ""), StatusCode::OK).await
}

async fn list_page(
    state: &AppState,
    console: &Console<Providers>,
    error: Option<&str>,
    secret: Option<String>,
    (url, types): (&str, &str),
    status: StatusCode,
) -> Response {
    let all = match state.muster.list_webhooks(console.env()).await {
        Ok(a) => a,
        Err(e) => return internal(&e),
    };
    let rows = all
        .iter()
        .map(|w| Row {
            id: w.id,
            url: w.url.clone(),
            description: w.description.clone(),
            types: if w.event_types.is_empty() {
                "all".into()
            } else {
                w.event_types.join(", ")
            },
            state: state_of(w),
            enabled: w.enabled,
            after_seq: w.after_seq,
            attempts: w.attempts,
        })
        .collect();
    let page = WebhooksPage {
        shell: console.shell("Webhooks", "/console/webhooks"),
        csrf: &console.session.csrf_token,
        error,
        secret,
        url,
        types,
        rows,
    };
    render(status, &page)
}

/// `POST /console/webhooks`: add, turn on or off, replay, rotate the secret, delete.
pub async fn act(State(state): State<AppState>, posted: Posted<Providers>) -> Response {
    let Posted { console, form } = posted;
    let m = &state.muster;
    let (env, actor) = (console.env(), console.actor());
    let url = form.field("url").unwrap_or_default();
    let types = form.field("types").unwrap_or_default();
    let id = form.parsed::<WebhookId>("webhook");
    let missing = || CoreError::NotFound("no such webhook endpoint".into());
    let done: Result<Option<String>, CoreError> = match form.field("action").as_deref() {
        Some("create") => {
            let input = WebhookInput {
                url: Some(url.clone()),
                description: form.field("description"),
                event_types: Some(types.split(',').map(str::to_string).collect()),
                enabled: Some(true),
            };
            m.create_webhook(env, &input, &actor)
                .await
                .map(|w| Some(w.secret))
        }
        Some("toggle") => match id {
            Some(id) => {
                let input = WebhookInput {
                    enabled: Some(form.field("on").as_deref() == Some("1")),
                    ..WebhookInput::default()
                };
                m.update_webhook(env, id, &input, &actor)
                    .await
                    .map(|_| None)
            }
            None => Err(missing()),
        },
        Some("replay") => match (id, form.parsed::<i64>("after")) {
            (Some(id), Some(after)) => m.replay_webhook(env, id, after, &actor).await.map(|_| None),
            (None, _) => Err(missing()),
            (_, None) => Err(CoreError::Invalid("give the seq to replay after".into())),
        },
        Some("rotate") => match id {
            Some(id) => m
                .rotate_webhook_secret(env, id, &actor)
                .await
                .map(|w| Some(w.secret)),
            None => Err(missing()),
        },
        Some("delete") => match id {
            Some(id) => m.delete_webhook(env, id, &actor).await.map(|()| None),
            None => Err(missing()),
        },
        _ => return error_page(StatusCode::BAD_REQUEST, "Unknown action."),
    };
    match done {
        Ok(None) => redirect("/console/webhooks"),
        // A secret is shown on the page itself, once; never through a redirect.
        Ok(Some(secret)) => {
            list_page(
                &state,
                &console,
                None,
                Some(secret),
                ("", ""),
                StatusCode::OK,
            )
            .await
        }
        Err(e @ CoreError::Store(_)) => internal(&e),
        Err(e) => {
            let message = e.to_string();
            let kept = (url.as_str(), types.as_str());
            list_page(&state, &console, Some(&message), None, kept, status_of(&e)).await
        }
    }
}

struct DeliveryRow {
    at: String,
    kind: &'static str,
    seqs: String,
    status: String,
    latency: i64,
    answer: String,
}

#[derive(Template)]
#[template(path = "console/webhook.html")]
struct WebhookPage<'a> {
    shell: Shell,
    csrf: &'a str,
    id: WebhookId,
    error: Option<&'a str>,
    notice: Option<&'a str>,
    url: String,
    state: &'static str,
    after_seq: i64,
    next_attempt: String,
    rows: Vec<DeliveryRow>,
}

/// `GET /console/webhooks/{id}`: an endpoint and its delivery log.
pub async fn details(
    State(state): State<AppState>,
    console: Console<Providers>,
    Id(id): Id<WebhookId>,
) -> Response {
    details_page(&state, &console, id, None, None, StatusCode::OK).await
}

/// `POST /console/webhooks/{id}`: send a test event, or one event again.
pub async fn details_act(
    State(state): State<AppState>,
    Id(id): Id<WebhookId>,
    posted: Posted<Providers>,
) -> Response {
    let Posted { console, form } = posted;
    let m = &state.muster;
    let (env, actor) = (console.env(), console.actor());
    let done = match form.field("action").as_deref() {
        Some("test") => m
            .send_test_webhook(env, id, &actor)
            .await
            .map(|_| "A test event is queued: its attempt shows below within seconds (reload)."),
        Some("redeliver") => match form.parsed::<i64>("seq") {
            Some(seq) => m
                .redeliver_webhook_event(env, id, seq, &actor)
                .await
                .map(|_| "The event is queued: its attempt shows below within seconds (reload)."),
            None => Err(CoreError::Invalid(
                "give the seq of the event to send again".into(),
            )),
        },
        _ => return error_page(StatusCode::BAD_REQUEST, "Unknown action."),
    };
    match done {
        Ok(notice) => details_page(&state, &console, id, None, Some(notice), StatusCode::OK).await,
        Err(e @ CoreError::Store(_)) => internal(&e),
        Err(e) => {
            let message = e.to_string();
            details_page(&state, &console, id, Some(&message), None, status_of(&e)).await
        }
    }
}

async fn details_page(
    state: &AppState,
    console: &Console<Providers>,
    id: WebhookId,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let env = console.env();
    let w = match state.muster.get_webhook(env, id).await {
        Ok(w) => w,
        Err(CoreError::NotFound(_)) => {
            return error_page(StatusCode::NOT_FOUND, "There is no such webhook endpoint.")
        }
        Err(e) => return internal(&e),
    };
    let log = match state.muster.webhook_deliveries(env, id, 100).await {
        Ok(l) => l,
        Err(e) => return internal(&e),
    };
    let page = WebhookPage {
        shell: console.shell("Webhook", "/console/webhooks"),
        csrf: &console.session.csrf_token,
        id,
        error,
        notice,
        state: state_of(&w),
        after_seq: w.after_seq,
        next_attempt: w.next_attempt_at.to_rfc3339(),
        url: w.url,
        rows: log
            .into_iter()
            .map(|d| DeliveryRow {
                at: d.attempted_at.to_rfc3339(),
                kind: d.kind.as_str(),
                seqs: if d.first_seq == d.last_seq {
                    d.first_seq.to_string()
                } else {
                    format!("{}–{}", d.first_seq, d.last_seq)
                },
                status: d
                    .status_code
                    .map(|s| s.to_string())
                    .or(d.error)
                    .unwrap_or_default(),
                latency: d.latency_ms,
                answer: d.response,
            })
            .collect(),
    };
    render(status, &page)
}
