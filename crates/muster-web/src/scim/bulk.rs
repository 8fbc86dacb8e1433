//! `POST /Bulk` (RFC 7644 §3.7): each operation runs as its own request would, in an order that
//! resolves `bulkId` references, until `failOnErrors` errors have occurred.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use muster_core::{CoreError, ProviderCtx};
use muster_scim::bulk::{self, BulkMethod, Step, BULK_RESPONSE_SCHEMA};
use muster_scim::version::{etag, Tags};
use muster_scim::{patch, ScimError};
use serde_json::{json, Value};

use super::discovery::BULK_MAX_OPERATIONS;
use super::extract::{ProviderAuth, ScimBody};
use super::response::scim_json;
use crate::error::ScimErrorResponse;
use crate::state::AppState;

/// What one operation did.
struct Done {
    status: u16,
    id: Option<String>,
    location: String,
    version: Option<String>,
}

/// `POST /Bulk` (RFC 7644 §3.7).
pub async fn post_bulk(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimErrorResponse> {
    let req = bulk::parse(&body, BULK_MAX_OPERATIONS)?;
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut results: Vec<Option<Value>> = vec![None; req.ops.len()];
    let mut errors = 0usize;
    for step in bulk::plan(&req.ops) {
        if req.fail_on_errors.is_some_and(|limit| errors >= limit) {
            break;
        }
        let (i, outcome) = match step {
            Step::Run(i) => {
                let op = &req.ops[i];
                let path = bulk::substitute_path(&op.path, &ids);
                let data = op.data.as_ref().map(|d| bulk::substitute_value(d, &ids));
                (i, run_one(&state, &ctx, op.method, &path, data.as_ref(), op.version.as_deref().map(Tags::parse).as_ref()).await)
            }
            Step::Unknown(i, reference) => (
                i,
                Err(ScimError::invalid_value(format!("no operation in this request has the bulkId '{reference}'"))),
            ),
            Step::Circular(i) => (
                i,
                Err(ScimError::new(409, None, "the operation's bulkId references form a circle, or depend on an operation that failed")),
            ),
        };
        let op = &req.ops[i];
        results[i] = Some(match outcome {
            Ok(done) => {
                if let (Some(b), Some(id)) = (&op.bulk_id, &done.id) {
                    ids.insert(b.clone(), id.clone());
                }
                bulk::response_entry(
                    op,
                    done.status,
                    Some(&done.location),
                    done.version.as_deref(),
                    None,
                )
            }
            Err(e) => {
                errors += 1;
                let location = (op.method != BulkMethod::Post)
                    .then(|| format!("{}{}", ctx.base_url, bulk::substitute_path(&op.path, &ids)));
                bulk::response_entry(op, e.status, location.as_deref(), None, Some(&e))
            }
        });
    }
    let operations: Vec<Value> = results.into_iter().flatten().collect();
    Ok(scim_json(
        200,
        &json!({"schemas": [BULK_RESPONSE_SCHEMA], "Operations": operations}),
    ))
}

fn scim(e: CoreError) -> ScimError {
    if let CoreError::Store(cause) = &e {
        tracing::error!(error = %cause, "storage failed in a bulk operation");
    }
    crate::error::scim_error(e)
}

async fn run_one(
    state: &AppState,
    ctx: &ProviderCtx,
    method: BulkMethod,
    path: &str,
    data: Option<&Value>,
    version: Option<&Tags>,
) -> Result<Done, ScimError> {
    let m = &state.muster;
    let trimmed = path.trim_start_matches('/');
    let (kind, id) = match trimmed.split_once('/') {
        Some((k, id)) => (k, Some(id)),
        None => (trimmed, None),
    };
    let null = Value::Null;
    let body = data.unwrap_or(&null);
    let location = |kind: &str, id: &str| format!("{}/{kind}/{id}", ctx.base_url);
    match (kind, id, method) {
        ("Users", None, BulkMethod::Post) => {
            let c = m.create_user(ctx, body).await.map_err(scim)?;
            let id = c.view.user.id.to_string();
            Ok(Done {
                status: 201,
                location: location("Users", &id),
                version: Some(etag(c.view.user.version)),
                id: Some(id),
            })
        }
        ("Groups", None, BulkMethod::Post) => {
            let g = m.create_group(ctx, body).await.map_err(scim)?;
            let id = g.group.id.to_string();
            Ok(Done {
                status: 201,
                location: location("Groups", &id),
                version: Some(etag(g.group.version)),
                id: Some(id),
            })
        }
        ("Users", Some(id), BulkMethod::Put) => {
            let v = m.replace_user(ctx, id, body, version).await.map_err(scim)?;
            Ok(Done {
                status: 200,
                location: location("Users", id),
                version: Some(etag(v.user.version)),
                id: None,
            })
        }
        ("Groups", Some(id), BulkMethod::Put) => {
            let v = m
                .replace_group(ctx, id, body, version)
                .await
                .map_err(scim)?;
            Ok(Done {
                status: 200,
                location: location("Groups", id),
                version: Some(etag(v.group.version)),
                id: None,
            })
        }
        ("Users", Some(id), BulkMethod::Patch) => {
            let ops = patch::parse(body)?;
            let v = m.patch_user(ctx, id, &ops, version).await.map_err(scim)?;
            Ok(Done {
                status: 200,
                location: location("Users", id),
                version: Some(etag(v.user.version)),
                id: None,
            })
        }
        ("Groups", Some(id), BulkMethod::Patch) => {
            let ops = patch::parse(body)?;
            let v = m
                .patch_group(ctx, id, &ops, version, None)
                .await
                .map_err(scim)?;
            Ok(Done {
                status: 200,
                location: location("Groups", id),
                version: Some(etag(v.group.version)),
                id: None,
            })
        }
        ("Users", Some(id), BulkMethod::Delete) => {
            m.delete_user(ctx, id, version).await.map_err(scim)?;
            Ok(Done {
                status: 204,
                location: location("Users", id),
                version: None,
                id: None,
            })
        }
        ("Groups", Some(id), BulkMethod::Delete) => {
            m.delete_group(ctx, id, version).await.map_err(scim)?;
            Ok(Done {
                status: 204,
                location: location("Groups", id),
                version: None,
                id: None,
            })
        }
        ("Users" | "Groups", _, _) => Err(ScimError::invalid_path(format!(
            "{} is not allowed on '{path}'",
            method.as_str()
        ))),
        _ => Err(ScimError::not_found(format!(
            "no resource type at '{path}'"
        ))),
    }
}
