//! The SCIM 2.0 endpoints (RFC 7644 §3) at each provider's base URL, `/scim/v2/{provider}`.
//!
//! Handlers are thin: they extract, call the domain, and shape the response (status, headers,
//! projection). Every response is `application/scim+json`.

pub mod response;

use self::response::{scim_bytes, scim_json};
pub mod bulk;
pub mod discovery;
pub mod extract;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use muster_core::groups::GroupView;
use muster_core::users::UserView;
use muster_core::ProviderCtx;
use muster_scim::filter::{AttrPath, Filter};
use muster_scim::list::{list_response, write_list_response, ListParams};
use muster_scim::patch;
use muster_scim::query::{restrict, Restricted};
use muster_scim::schema::{ResourceTypeDef, GROUP_RESOURCE, USER_RESOURCE};
use muster_scim::version::etag;
use muster_scim::{Projection, ScimError};
use serde_json::{json, Map, Value};

use crate::error::ScimErrorResponse;
use crate::state::AppState;
use extract::{Conditions, ProviderAuth, QueryPairs, ScimBody};

/// A group PATCH without `attributes`/`excludedAttributes` answers 200 with the whole group when
/// it has at most this many members, and 204 No Content (RFC 7644 §3.5.2 allows either) when it
/// has more, so that a one-member change never serialises a huge member list.
pub const PATCH_MEMBERS_INLINE: u64 = 1000;

type ScimResult = Result<Response, ScimErrorResponse>;

/// The SCIM routes, each with its whole path. Not a nested router: nesting stripped the prefix
/// from every request's URI, parsed the rest again and matched a route twice, about 5,700 of a
/// GET's instructions (callgrind, docs/benchmarks.md).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/scim/v2/{provider}/Users",
            get(list_users).post(create_user),
        )
        .route("/scim/v2/{provider}/Users/.search", post(search_users))
        .route(
            "/scim/v2/{provider}/Users/{id}",
            get(get_user)
                .put(replace_user)
                .delete(delete_user)
                .patch(patch_user),
        )
        .route(
            "/scim/v2/{provider}/Groups",
            get(list_groups).post(create_group),
        )
        .route("/scim/v2/{provider}/Groups/.search", post(search_groups))
        .route(
            "/scim/v2/{provider}/Groups/{id}",
            get(get_group)
                .put(replace_group)
                .delete(delete_group)
                .patch(patch_group),
        )
        .route("/scim/v2/{provider}/.search", post(search_all))
        .route("/scim/v2/{provider}/Bulk", post(bulk::post_bulk))
        .route(
            "/scim/v2/{provider}/ServiceProviderConfig",
            get(discovery::get_service_provider_config),
        )
        .route(
            "/scim/v2/{provider}/ResourceTypes",
            get(discovery::list_resource_types),
        )
        .route(
            "/scim/v2/{provider}/ResourceTypes/{name}",
            get(discovery::get_resource_type),
        )
        .route("/scim/v2/{provider}/Schemas", get(discovery::list_schemas))
        .route(
            "/scim/v2/{provider}/Schemas/{id}",
            get(discovery::get_schema),
        )
        // RFC 7644 §3.11: Muster has no /Me (its clients are provisioning clients, not users).
        .route("/scim/v2/{provider}/Me", any(me_not_implemented))
        .route("/scim/v2/{provider}/Me/{*rest}", any(me_not_implemented))
        // A query at the root (RFC 7644 §3.4.2.1), as `POST /.search` there.
        .route("/scim/v2/{provider}", get(query_all))
        // `/scim/v2` itself: a base URL without its provider.
        .route("/scim/v2", any(no_provider_here))
        .route("/scim/v2/", any(no_provider_here))
        // Everything else under a base URL is a SCIM 404.
        .route("/scim/v2/{provider}/", any(scim_not_found))
        .route("/scim/v2/{provider}/{*rest}", any(scim_not_found))
        .method_not_allowed_fallback(scim_method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::state::MAX_BODY_BYTES,
        ))
}

/// Records a SCIM request Muster refused (4xx) or failed (5xx) in the sync log of the provider
/// it was for: method, path, status, `scimType` and reason, never credentials. Called by the
/// middleware ([`crate::request_log::track`]) for each refused request to a SCIM route, with the
/// provider the request authenticated as, if it got that far.
pub async fn log_rejection(
    state: &AppState,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    slot: &extract::CtxSlot,
    err: &ScimError,
) {
    let path = uri.path();
    let target = match slot.provider() {
        Some(t) => Some(t),
        None => {
            // Not authenticated: attribute the refusal to the provider the URL names, if any.
            let id = path
                .split('/')
                .nth(3)
                .and_then(|p| p.parse::<muster_core::ids::ProviderId>().ok());
            match id {
                Some(id) => match state.muster.provider_location(id).await {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not find the provider a refused request was for");
                        None
                    }
                },
                None => None,
            }
        }
    };
    if let Some((env, provider)) = target {
        let rejection = muster_core::synclog::rejections::Rejection {
            method: method.as_str(),
            path,
            status: err.status,
            scim_type: err.scim_type.map(|t| t.as_str()),
            detail: &err.detail,
        };
        if let Err(e) = state
            .muster
            .record_rejection(env, provider, &rejection)
            .await
        {
            tracing::warn!(error = %e, "could not record a rejected request in the sync log");
        }
    }
}

fn single(
    status: u16,
    resource: Map<String, Value>,
    version: i64,
    location: Option<&str>,
) -> Response {
    let mut buf = Vec::with_capacity(2048);
    // Writing a JSON map into memory cannot fail.
    let _ = serde_json::to_writer(&mut buf, &resource);
    single_json(status, buf, version, location)
}

/// A single resource's response, its JSON already written: the status, `ETag` and `Location`.
fn single_json(status: u16, json: Vec<u8>, version: i64, location: Option<&str>) -> Response {
    let mut resp = scim_bytes(status, json);
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if let Some(loc) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp
}

async fn no_provider_here() -> ScimErrorResponse {
    extract::no_provider()
}

async fn scim_not_found() -> ScimErrorResponse {
    ScimError::not_found("no such SCIM endpoint").into()
}

/// `/Me` (RFC 7644 §3.11): a service provider without it answers 501 Not Implemented. Muster's
/// clients authenticate as a provisioning provider, which is not a user of the directory.
async fn me_not_implemented() -> ScimErrorResponse {
    ScimError::new(
        501,
        None,
        "Muster does not implement /Me: a provider's token authenticates the provider, not a user; use /Users",
    )
    .into()
}

/// A method the endpoint does not take: 405 as a SCIM error (RFC 7644 §3.12), with `Allow`.
async fn scim_method_not_allowed(method: axum::http::Method) -> ScimErrorResponse {
    ScimError::new(
        405,
        None,
        format!("this endpoint does not take {method}; the Allow header lists what it takes"),
    )
    .into()
}

fn user_out(
    state: &AppState,
    ctx: &ProviderCtx,
    v: UserView,
    projection: &Projection,
) -> Map<String, Value> {
    let mut r = state.muster.render_user(ctx, v);
    projection.apply(&USER_RESOURCE, &mut r);
    r
}

/// Writes a user's resource as JSON: with the default projection, straight from its stored
/// text (the common case: a read that only sends it back); otherwise rendered and projected.
fn write_user(
    state: &AppState,
    ctx: &ProviderCtx,
    v: UserView,
    projection: &Projection,
    out: &mut Vec<u8>,
) {
    if projection.is_default() && state.muster.write_user_json(ctx, &v, out) {
        return;
    }
    // Writing a JSON map into memory cannot fail.
    let _ = serde_json::to_writer(out, &user_out(state, ctx, v, projection));
}

/// A single user's response: its JSON, `ETag` and `Location`.
fn single_user(
    state: &AppState,
    ctx: &ProviderCtx,
    status: u16,
    v: UserView,
    location: Option<&str>,
    projection: &Projection,
) -> Response {
    let version = v.user.version;
    let mut buf = Vec::with_capacity(2048);
    write_user(state, ctx, v, projection, &mut buf);
    single_json(status, buf, version, location)
}

fn group_out(
    state: &AppState,
    ctx: &ProviderCtx,
    v: &GroupView,
    projection: &Projection,
) -> Map<String, Value> {
    let mut r = state.muster.render_group(ctx, v);
    projection.apply(&GROUP_RESOURCE, &mut r);
    r
}

fn wants(projection: &Projection, rt: &'static muster_scim::ResourceTypeDef, attr: &str) -> bool {
    rt.schema.attr(attr).is_some_and(|a| projection.wants(a))
}

/// `POST /Users` (RFC 7644 §3.3).
async fn create_user(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    q: QueryPairs,
    ScimBody(body): ScimBody,
) -> ScimResult {
    let created = state.muster.create_user(&ctx, &body).await?;
    let p = q.projection(&USER_RESOURCE);
    let location = format!("{}/Users/{}", ctx.base_url, created.view.user.id);
    Ok(single_user(
        &state,
        &ctx,
        201,
        created.view,
        Some(&location),
        &p,
    ))
}

/// `GET /Users/{id}` (RFC 7644 §3.4.1).
async fn get_user(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    Path((_, id)): Path<(String, String)>,
    q: QueryPairs,
    conditions: Conditions,
) -> ScimResult {
    let p = q.projection(&USER_RESOURCE);
    let v = state
        .muster
        .get_user(&ctx, &id, wants(&p, &USER_RESOURCE, "groups"))
        .await?;
    if not_modified(&conditions, v.user.version) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    Ok(single_user(&state, &ctx, 200, v, None, &p))
}

/// `If-None-Match` on GET (RFC 7644 §3.14): 304 when the client has the current version.
fn not_modified(conditions: &Conditions, version: i64) -> bool {
    conditions
        .if_none_match
        .as_ref()
        .is_some_and(|tags| tags.admits(version))
}

/// `PUT /Users/{id}` (RFC 7644 §3.5.1).
async fn replace_user(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    Path((_, id)): Path<(String, String)>,
    q: QueryPairs,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> ScimResult {
    let cond = Conditions::from_headers(&headers);
    let v = state
        .muster
        .replace_user(&ctx, &id, &body, cond.if_match.as_ref())
        .await?;
    let p = q.projection(&USER_RESOURCE);
    Ok(single_user(&state, &ctx, 200, v, None, &p))
}

/// `DELETE /Users/{id}` (RFC 7644 §3.6).
async fn delete_user(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ScimResult {
    let cond = Conditions::from_headers(&headers);
    state
        .muster
        .delete_user(&ctx, &id, cond.if_match.as_ref())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn users_page(state: &AppState, ctx: &ProviderCtx, params: ListParams) -> ScimResult {
    let p = Projection::parse(
        &USER_RESOURCE,
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    );
    let result = state
        .muster
        .list_users(ctx, &params, wants(&p, &USER_RESOURCE, "groups"))
        .await?;
    let mut buf = Vec::with_capacity(2048 * result.items.len().clamp(1, 100));
    write_list_response(
        &mut buf,
        result.total,
        result.start_index,
        result.items,
        |out, v| write_user(state, ctx, v, &p, out),
    );
    Ok(scim_bytes(200, buf))
}

/// `GET /Users` (RFC 7644 §3.4.2).
async fn list_users(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    q: QueryPairs,
) -> ScimResult {
    users_page(&state, &ctx, q.list_params()?).await
}

/// `POST /Users/.search` (RFC 7644 §3.4.3).
async fn search_users(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    ScimBody(body): ScimBody,
) -> ScimResult {
    users_page(&state, &ctx, ListParams::from_search_body(&body)?).await
}

/// `POST /Groups` (RFC 7644 §3.3).
async fn create_group(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    q: QueryPairs,
    ScimBody(body): ScimBody,
) -> ScimResult {
    let v = state.muster.create_group(&ctx, &body).await?;
    let p = q.projection(&GROUP_RESOURCE);
    let location = format!("{}/Groups/{}", ctx.base_url, v.group.id);
    Ok(single(
        201,
        group_out(&state, &ctx, &v, &p),
        v.group.version,
        Some(&location),
    ))
}

/// `GET /Groups/{id}` (RFC 7644 §3.4.1); members are read only when they will be returned.
async fn get_group(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    Path((_, id)): Path<(String, String)>,
    q: QueryPairs,
    conditions: Conditions,
) -> ScimResult {
    let p = q.projection(&GROUP_RESOURCE);
    let want_members = wants(&p, &GROUP_RESOURCE, "members");
    let inline_up_to = want_members.then_some(STREAM_MEMBERS_ABOVE);
    let v = state.muster.get_group(&ctx, &id, inline_up_to).await?;
    if not_modified(&conditions, v.group.version) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    if want_members && v.members.is_none() {
        return Ok(stream_group(state, ctx, v, p));
    }
    Ok(single(
        200,
        group_out(&state, &ctx, &v, &p),
        v.group.version,
        None,
    ))
}

/// Members above this many are streamed rather than built in memory.
pub const STREAM_MEMBERS_ABOVE: u64 = 1000;
/// Members read and written per round of a streamed group.
const STREAM_PAGE: u64 = 2000;

/// A large group as a streamed body: the group's other attributes, then its members read a page
/// at a time from the database and written as they come, so that memory stays flat whatever the
/// group's size. The projection applies to each page exactly as to a whole group.
fn stream_group(state: AppState, ctx: ProviderCtx, v: GroupView, p: Projection) -> Response {
    use futures_util::StreamExt;
    let version = v.group.version;
    let gid = v.group.id;
    let head = Value::Object(group_out(&state, &ctx, &v, &p)).to_string();
    // `head` is a JSON object with at least `schemas` and `id`: reopen it to append `members`.
    let prefix = format!("{},\"members\":[", head.strip_suffix('}').unwrap_or(&head));
    struct Cursor {
        after: Option<muster_core::ids::UserId>,
        first: bool,
        done: bool,
    }
    let pages = futures_util::stream::unfold(
        Cursor {
            after: None,
            first: true,
            done: false,
        },
        move |mut cur| {
            let (state, ctx, p) = (state.clone(), ctx.clone(), p.clone());
            async move {
                if cur.done {
                    return None;
                }
                let page = match state
                    .muster
                    .member_page(&ctx, gid, cur.after, STREAM_PAGE)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        // The status is sent: end the body early; the client sees invalid JSON.
                        tracing::error!(error = %e, "streaming a group's members failed");
                        return Some((Err(std::io::Error::other("member page")), cur));
                    }
                };
                cur.done = (page.len() as u64) < STREAM_PAGE;
                cur.after = page.last().copied();
                let mut wrapper = Map::new();
                wrapper.insert("schemas".into(), json!([GROUP_RESOURCE.schema.id]));
                wrapper.insert(
                    "members".into(),
                    Value::Array(
                        page.iter()
                            .map(|m| state.muster.member_json(&ctx, *m))
                            .collect(),
                    ),
                );
                p.apply(&GROUP_RESOURCE, &mut wrapper);
                let mut out = String::with_capacity(page.len() * 160 + 2);
                if let Some(Value::Array(items)) = wrapper.get("members") {
                    for item in items {
                        if !cur.first {
                            out.push(',');
                        }
                        cur.first = false;
                        out.push_str(&item.to_string());
                    }
                }
                if cur.done {
                    out.push_str("]}");
                }
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(out)), cur))
            }
        },
    );
    let body =
        futures_util::stream::once(
            async move { Ok::<_, std::io::Error>(bytes::Bytes::from(prefix)) },
        )
        .chain(pages);
    let mut resp = Response::new(axum::body::Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::error::SCIM_CONTENT_TYPE),
    );
    if let Ok(tag) = HeaderValue::from_str(&etag(version)) {
        resp.headers_mut().insert(header::ETAG, tag);
    }
    resp
}

/// `PUT /Groups/{id}` (RFC 7644 §3.5.1).
async fn replace_group(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    Path((_, id)): Path<(String, String)>,
    q: QueryPairs,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> ScimResult {
    let cond = Conditions::from_headers(&headers);
    let v = state
        .muster
        .replace_group(&ctx, &id, &body, cond.if_match.as_ref())
        .await?;
    let p = q.projection(&GROUP_RESOURCE);
    Ok(single(
        200,
        group_out(&state, &ctx, &v, &p),
        v.group.version,
        None,
    ))
}

/// `DELETE /Groups/{id}` (RFC 7644 §3.6).
async fn delete_group(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ScimResult {
    let cond = Conditions::from_headers(&headers);
    state
        .muster
        .delete_group(&ctx, &id, cond.if_match.as_ref())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn groups_page(state: &AppState, ctx: &ProviderCtx, params: ListParams) -> ScimResult {
    let p = Projection::parse(
        &GROUP_RESOURCE,
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    );
    let result = state
        .muster
        .list_groups(ctx, &params, wants(&p, &GROUP_RESOURCE, "members"))
        .await?;
    let resources = result
        .items
        .iter()
        .map(|v| Value::Object(group_out(state, ctx, v, &p)))
        .collect();
    Ok(scim_json(
        200,
        &list_response(result.total, result.start_index, resources),
    ))
}

/// `GET /Groups` (RFC 7644 §3.4.2).
async fn list_groups(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    q: QueryPairs,
) -> ScimResult {
    groups_page(&state, &ctx, q.list_params()?).await
}

/// `POST /Groups/.search` (RFC 7644 §3.4.3).
async fn search_groups(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    ScimBody(body): ScimBody,
) -> ScimResult {
    groups_page(&state, &ctx, ListParams::from_search_body(&body)?).await
}

/// `PATCH /Users/{id}` (RFC 7644 §3.5.2): 200 with the user.
async fn patch_user(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    Path((_, id)): Path<(String, String)>,
    q: QueryPairs,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> ScimResult {
    let ops = patch::parse(&body)?;
    let cond = Conditions::from_headers(&headers);
    let v = state
        .muster
        .patch_user(&ctx, &id, &ops, cond.if_match.as_ref())
        .await?;
    let p = q.projection(&USER_RESOURCE);
    Ok(single_user(&state, &ctx, 200, v, None, &p))
}

/// `PATCH /Groups/{id}` (RFC 7644 §3.5.2): 200 with the group, subject to `attributes` and
/// `excludedAttributes`; 204 when neither is given and the group is larger than
/// [`PATCH_MEMBERS_INLINE`].
async fn patch_group(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    Path((_, id)): Path<(String, String)>,
    q: QueryPairs,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> ScimResult {
    let ops = patch::parse(&body)?;
    let cond = Conditions::from_headers(&headers);
    let p = q.projection(&GROUP_RESOURCE);
    let want_members = wants(&p, &GROUP_RESOURCE, "members");
    let asked = q.get("attributes").is_some() || q.get("excludedAttributes").is_some();
    let up_to = match (want_members, asked) {
        (false, _) => None,
        (true, true) => Some(u64::MAX),
        (true, false) => Some(PATCH_MEMBERS_INLINE),
    };
    let v = state
        .muster
        .patch_group(&ctx, &id, &ops, cond.if_match.as_ref(), up_to)
        .await?;
    if want_members && v.members.is_none() {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        if let Ok(tag) = HeaderValue::from_str(&etag(v.group.version)) {
            resp.headers_mut().insert(header::ETAG, tag);
        }
        return Ok(resp);
    }
    Ok(single(
        200,
        group_out(&state, &ctx, &v, &p),
        v.group.version,
        None,
    ))
}

/// `POST /.search` at the provider's root (RFC 7644 §3.4.3): users, then groups.
async fn search_all(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    ScimBody(body): ScimBody,
) -> ScimResult {
    root_page(&state, &ctx, ListParams::from_search_body(&body)?).await
}

/// `GET` on the provider's base URL (RFC 7644 §3.4.2.1, a query at the server root): users,
/// then groups, as `POST /.search` there.
async fn query_all(
    State(state): State<AppState>,
    ProviderAuth(ctx): ProviderAuth,
    q: QueryPairs,
) -> ScimResult {
    root_page(&state, &ctx, q.list_params()?).await
}

/// The listing parameters for one resource type of a query across types, or `None` when its
/// filter can match none of that type. Another type's attributes have no value here (RFC 7644
/// §3.4.2.1, [`restrict`]); a `sortBy` the type does not have leaves it in its stored order.
fn params_for(
    params: &ListParams,
    filter: Option<&Filter>,
    rt: &'static ResourceTypeDef,
) -> Option<ListParams> {
    let filter = match filter.map(|f| restrict(f, rt)) {
        None | Some(Restricted::Always) => None,
        Some(Restricted::Never) => return None,
        Some(Restricted::Only(f)) => Some(f.to_string()),
    };
    let sort_by = params.sort_by.clone().filter(|s| {
        AttrPath::parse(s).map_or(true, |p| {
            rt.resolve(p.urn.as_deref(), &p.name, p.sub.as_deref())
                .is_some()
        })
    });
    Some(ListParams {
        filter,
        sort_by,
        ..params.clone()
    })
}

/// A page across resource types: users occupy positions `1..=users`, groups follow. The filter
/// applies to each type with the other type's attributes read as absent (RFC 7644 §3.4.2.1), so
/// `userName eq "x" or displayName eq "y"` finds the user and the group, and `userName eq "x"`
/// alone finds no group.
async fn root_page(state: &AppState, ctx: &ProviderCtx, params: ListParams) -> ScimResult {
    let size = params.page_size(state.muster.settings.max_page_size);
    let start = params.start_index;
    let filter = match params.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        None => None,
        Some(text) => Some(
            Filter::parse(text)
                .map_err(|e| ScimError::invalid_filter(format!("invalid filter: {e}")))?,
        ),
    };
    // An attribute no resource type has is a mistake to point out, not an absent value.
    if let Some(f) = &filter {
        let mut unknown = None;
        f.visit_paths(&mut |parent, path| {
            let known = |rt: &ResourceTypeDef| {
                rt.resolve(path.urn.as_deref(), &path.name, path.sub.as_deref())
                    .is_some()
            };
            if parent.is_none() && !known(&USER_RESOURCE) && !known(&GROUP_RESOURCE) {
                unknown.get_or_insert_with(|| path.to_string());
            }
        });
        if let Some(path) = unknown {
            return Err(ScimError::invalid_filter(format!(
                "the attribute '{path}' is not defined for User or Group resources"
            ))
            .into());
        }
    }
    let mut total = 0u64;
    let mut resources = Vec::new();
    // Users occupy positions 1..=users_total, groups follow.
    let up = Projection::parse(
        &USER_RESOURCE,
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    );
    if let Some(p) = params_for(&params, filter.as_ref(), &USER_RESOURCE) {
        let p = ListParams {
            count: Some(size),
            ..p
        };
        let r = state
            .muster
            .list_users(ctx, &p, wants(&up, &USER_RESOURCE, "groups"))
            .await?;
        resources.extend(
            r.items
                .into_iter()
                .map(|v| Value::Object(user_out(state, ctx, v, &up))),
        );
        total += r.total;
    }
    let gp = Projection::parse(
        &GROUP_RESOURCE,
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    );
    if let Some(p) = params_for(&params, filter.as_ref(), &GROUP_RESOURCE) {
        let p = ListParams {
            start_index: start.saturating_sub(total).max(1),
            count: Some(size.saturating_sub(resources.len() as u64)),
            ..p
        };
        let r = state
            .muster
            .list_groups(ctx, &p, wants(&gp, &GROUP_RESOURCE, "members"))
            .await?;
        resources.extend(
            r.items
                .iter()
                .map(|v| Value::Object(group_out(state, ctx, v, &gp))),
        );
        total += r.total;
    }
    Ok(scim_json(200, &list_response(total, start, resources)))
}
