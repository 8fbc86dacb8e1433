//! SCIM provisioning: what a provider's requests do to users and groups (RFC 7644 §3).
//!
//! Each operation runs in one write transaction: the change, its lifecycle consequences and its
//! sync log entries commit together or not at all. Read-modify-write carries the version it
//! read; if another writer moved it (possible on PostgreSQL), the operation is retried.

use std::collections::HashSet;

use muster_scim::list::ListParams;
use muster_scim::patch::{self, MemberChange, PatchOp};
use muster_scim::query::is_core;
use muster_scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use muster_scim::sort::SortSpec;
use muster_scim::{normalize, CompareOp, Filter, Operand, Query, ScimError, ScimType};
use serde_json::{json, Map, Value};

use crate::clock::Timestamp;
use crate::error::{CoreError, CoreResult, StoreError, Unique};
use crate::ids::{GroupId, RoleId, UserId};
use crate::lifecycle::{self, Transition};
use crate::mapping::{roles_differ, Cause, OrgCache};
use crate::model::{
    Actor, GroupRecord, GroupRef, Outcome, RoleSource, SyncLogEntry, UserRecord, UserStatus,
};
use crate::service::{Muster, ProviderCtx};
use crate::store::{Cond, Cursor, Order, OrderKey, Page, Tx};

/// How many times a read-modify-write is retried when another writer moved the version.
const WRITE_ATTEMPTS: usize = 5;
/// Rows read per round when a filter must be evaluated outside the database.
const SCAN_CHUNK: u64 = 500;
/// The most member ids a sync log entry lists; the count is always exact.
const LOGGED_MEMBERS: usize = 1000;

/// A user with the groups it belongs to, when they were asked for.
#[derive(Debug, Clone)]
pub struct UserView {
    /// The user.
    pub user: UserRecord,
    /// Its groups, if loaded.
    pub groups: Option<Vec<GroupRef>>,
}

/// A group with its members, when they were asked for.
#[derive(Debug, Clone)]
pub struct GroupView {
    /// The group.
    pub group: GroupRecord,
    /// Its members, if loaded.
    pub members: Option<Vec<UserId>>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ListResult<T> {
    /// How many resources match in all.
    pub total: u64,
    /// The 1-based index of the first item.
    pub start_index: u64,
    /// This page.
    pub items: Vec<T>,
}

/// What a create did.
#[derive(Debug, Clone)]
pub struct Created<T> {
    /// The resource.
    pub view: T,
    /// False when an existing, turned-off user of the same provider was brought back instead.
    pub new: bool,
}

/// The fields of a user resource that Muster keeps in columns.
struct UserFields {
    user_name: String,
    external_id: Option<String>,
    display_name: Option<String>,
    active: bool,
}

impl UserFields {
    fn read(resource: &Map<String, Value>) -> UserFields {
        let text = |k: &str| resource.get(k).and_then(Value::as_str).map(str::to_string);
        UserFields {
            user_name: text("userName").unwrap_or_default().trim().to_string(),
            external_id: text("externalId"),
            display_name: text("displayName"),
            active: resource
                .get("active")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        }
    }
}

/// The case-insensitive key of a userName or displayName.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

fn parse_user_id(id: &str) -> CoreResult<UserId> {
    id.parse()
        .map_err(|_| CoreError::NotFound(format!("no user with id '{id}'")))
}

fn parse_group_id(id: &str) -> CoreResult<GroupId> {
    id.parse()
        .map_err(|_| CoreError::NotFound(format!("no group with id '{id}'")))
}

fn user_not_found(id: &str) -> CoreError {
    CoreError::NotFound(format!("no user with id '{id}'"))
}

fn group_not_found(id: &str) -> CoreError {
    CoreError::NotFound(format!("no group with id '{id}'"))
}

/// The weak ETag of a version (RFC 7644 §3.14).
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Checks an `If-Match` header against the current version (RFC 7644 §3.14).
fn check_if_match(if_match: Option<&str>, version: i64) -> CoreResult<()> {
    let Some(header) = if_match else {
        return Ok(());
    };
    let current = etag(version);
    let strong = format!("\"{version}\"");
    let ok = header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == current || t == strong);
    if ok {
        Ok(())
    } else {
        Err(ScimError::new(
            412,
            None,
            format!("the resource has changed: its version is {current}"),
        )
        .into())
    }
}

fn uniqueness_user(user_name: &str, holder: &UserRecord, provider: &ProviderCtx) -> CoreError {
    let whose = match holder.provider_id {
        None => " by a local user managed in Muster; a provider cannot change it",
        Some(p) if p == provider.id() => "",
        Some(_) => " by a user of another provisioning provider",
    };
    ScimError::uniqueness(format!(
        "the userName '{user_name}' is already in use{whose}"
    ))
    .into()
}

fn map_user_conflict(e: StoreError, user_name: &str) -> CoreError {
    match e {
        StoreError::Conflict(Unique::UserName) => {
            ScimError::uniqueness(format!("the userName '{user_name}' is already in use")).into()
        }
        other => other.into(),
    }
}

fn map_group_conflict(e: StoreError, name: &str) -> CoreError {
    match e {
        StoreError::Conflict(Unique::GroupName) => ScimError::uniqueness(format!(
            "a group named '{name}' already exists for this provider"
        ))
        .into(),
        other => other.into(),
    }
}

/// A sync log entry about a user, caused by a provider.
fn user_entry(
    ctx: &ProviderCtx,
    at: Timestamp,
    action: &str,
    u: &UserRecord,
    details: Value,
) -> SyncLogEntry {
    SyncLogEntry {
        environment_id: ctx.env(),
        at,
        provider_id: Some(ctx.id()),
        actor: Actor::Provider { id: ctx.id() },
        action: action.into(),
        subject_kind: Some("user".into()),
        subject_id: Some(u.id.to_string()),
        subject_name: Some(u.user_name.clone()),
        details,
        outcome: Outcome::Success,
        message: None,
    }
}

fn provisioning_cause<'a>(ctx: &ProviderCtx, actor: &'a Actor, at: Timestamp) -> Cause<'a> {
    Cause {
        env: ctx.env(),
        provider: ctx.id(),
        actor,
        at,
        reason: "provisioning",
    }
}

/// The explicit roles a user holds, with where they came from.
async fn current_roles(
    tx: &mut Box<dyn Tx>,
    u: &UserRecord,
) -> CoreResult<Vec<(RoleId, RoleSource)>> {
    Ok(tx
        .user_roles(u.environment_id, &[u.id])
        .await?
        .into_iter()
        .map(|(_, r, s)| (r, s))
        .collect())
}

/// A sync log entry about a group, caused by a provider.
fn group_entry(
    ctx: &ProviderCtx,
    at: Timestamp,
    action: &str,
    g: &GroupRecord,
    details: Value,
) -> SyncLogEntry {
    SyncLogEntry {
        environment_id: ctx.env(),
        at,
        provider_id: Some(ctx.id()),
        actor: Actor::Provider { id: ctx.id() },
        action: action.into(),
        subject_kind: Some("group".into()),
        subject_id: Some(g.id.to_string()),
        subject_name: Some(g.display_name.clone()),
        details,
        outcome: Outcome::Success,
        message: None,
    }
}

fn transition_entries(
    ctx: &ProviderCtx,
    at: Timestamp,
    u: &UserRecord,
    ts: &[Transition],
) -> Vec<SyncLogEntry> {
    ts.iter()
        .map(|t| {
            let details = match t {
                Transition::Blocked { deactivate_at: Some(due) } => json!({"deactivateAt": due.to_rfc3339()}),
                Transition::HeldByLegalHold => json!({"reason": "the user is on legal hold, so Muster blocks but does not deactivate them"}),
                _ => json!({}),
            };
            user_entry(ctx, at, t.action(), u, details)
        })
        .collect()
}

/// The attribute-level differences between two canonical resources, for the sync log.
pub fn diff_resources(before: &Map<String, Value>, after: &Map<String, Value>) -> Vec<Value> {
    let mut changes = Vec::new();
    let mut keys: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| *k != "schemas")
        .collect();
    let mut seen = HashSet::new();
    keys.retain(|k| seen.insert(*k));
    for key in keys {
        let (b, a) = (before.get(key), after.get(key));
        if let (Some(Value::Object(bo)), Some(Value::Object(ao))) = (b, a) {
            if key.starts_with("urn:") {
                for c in diff_resources(bo, ao) {
                    if let Value::Object(mut m) = c {
                        let attr = m
                            .get("attribute")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        m.insert("attribute".into(), Value::String(format!("{key}:{attr}")));
                        changes.push(Value::Object(m));
                    }
                }
                continue;
            }
        }
        if b != a {
            changes.push(json!({"attribute": key, "before": b.cloned().unwrap_or(Value::Null), "after": a.cloned().unwrap_or(Value::Null)}));
        }
    }
    changes
}

/// Translates the part of a checked filter that storage renders exactly. Returns the condition
/// and whether it is the whole filter.
fn pushdown(q: &Query, group: bool) -> (Option<Cond>, bool) {
    match q {
        Query::Compare(r, CompareOp::Eq, Operand::Text(t)) => {
            if is_core(r, "id") {
                let cond = t.parse::<uuid::Uuid>().map(Cond::Id).unwrap_or(Cond::Never);
                (Some(cond), true)
            } else if is_core(r, "externalId") {
                (Some(Cond::ExternalId(t.clone())), true)
            } else if !group && is_core(r, "userName") {
                (Some(Cond::UserNameKey(t.trim().to_string())), true)
            } else if group && is_core(r, "displayName") {
                (Some(Cond::GroupNameKey(t.trim().to_string())), true)
            } else if !group && is_emails_value(r) {
                (Some(Cond::EmailKey(t.trim().to_string())), true)
            } else {
                (None, false)
            }
        }
        Query::Compare(r, op, Operand::DateTime(t)) if is_meta_time(r).is_some() => {
            let column = match is_meta_time(r) {
                Some(c) => c,
                None => return (None, false),
            };
            match time_bounds(*op, t) {
                Some((from, until)) => (
                    Some(Cond::Time {
                        column,
                        from,
                        until,
                    }),
                    true,
                ),
                None => (None, false),
            }
        }
        Query::Element(r, inner) if !group && r.attr.name == "emails" => {
            // `emails[type eq "work" and value eq "x"]`: the address narrows in SQL, the rest
            // is checked on the rows it selects.
            match element_value_eq(inner) {
                Some(v) => (Some(Cond::EmailKey(v)), false),
                None => (None, false),
            }
        }
        Query::Compare(r, CompareOp::Eq, Operand::Bool(b)) if !group && is_core(r, "active") => {
            (Some(Cond::Active(*b)), true)
        }
        Query::And(a, b) => {
            let ((ca, ea), (cb, eb)) = (pushdown(a, group), pushdown(b, group));
            match (ca, cb) {
                (Some(x), Some(y)) => (Some(Cond::And(Box::new(x), Box::new(y))), ea && eb),
                (Some(x), None) | (None, Some(x)) => (Some(x), false),
                (None, None) => (None, false),
            }
        }
        Query::Or(a, b) => match (pushdown(a, group), pushdown(b, group)) {
            ((Some(x), ea), (Some(y), eb)) => (Some(Cond::Or(Box::new(x), Box::new(y))), ea && eb),
            _ => (None, false),
        },
        _ => (None, false),
    }
}

fn is_emails_value(r: &muster_scim::schema::Resolved) -> bool {
    r.container == muster_scim::schema::Container::Core
        && r.attr.name == "emails"
        && r.sub.is_some_and(|s| s.name == "value")
}

fn is_meta_time(r: &muster_scim::schema::Resolved) -> Option<crate::store::TimeColumn> {
    if r.container != muster_scim::schema::Container::Core || r.attr.name != "meta" {
        return None;
    }
    match r.sub.map(|s| s.name) {
        Some("created") => Some(crate::store::TimeColumn::Created),
        Some("lastModified") => Some(crate::store::TimeColumn::LastModified),
        _ => None,
    }
}

/// The stored-microsecond range matching a comparison of `meta` times, which are returned at
/// millisecond precision: `ms = floor(µs / 1000)`, so `ms ≥ k ⟺ µs ≥ 1000·k`.
fn time_bounds(op: CompareOp, t: &time::OffsetDateTime) -> Option<(Option<i64>, Option<i64>)> {
    let t_us = i64::try_from(t.unix_timestamp_nanos().div_euclid(1000)).ok()?;
    let floor_ms = t_us.div_euclid(1000);
    let ceil_ms = floor_ms + i64::from(t_us.rem_euclid(1000) != 0);
    Some(match op {
        CompareOp::Gt => (Some((floor_ms + 1) * 1000), None),
        CompareOp::Ge => (Some(ceil_ms * 1000), None),
        CompareOp::Lt => (None, Some(ceil_ms * 1000)),
        CompareOp::Le => (None, Some((floor_ms + 1) * 1000)),
        CompareOp::Eq if t_us.rem_euclid(1000) == 0 => (Some(t_us), Some(t_us + 1000)),
        CompareOp::Eq => (Some(1), Some(0)),
        _ => return None,
    })
}

/// The `value eq "x"` term of an `and`-only value filter over emails.
fn element_value_eq(q: &Query) -> Option<String> {
    match q {
        Query::Compare(r, CompareOp::Eq, Operand::Text(t))
            if r.sub.is_some_and(|s| s.name == "value") =>
        {
            Some(t.trim().to_string())
        }
        Query::And(a, b) => element_value_eq(a).or_else(|| element_value_eq(b)),
        _ => None,
    }
}

fn mentions_attr(q: &Query, name: &str) -> bool {
    match q {
        Query::Present(r) | Query::Compare(r, _, _) | Query::Element(r, _) => {
            r.container == muster_scim::schema::Container::Core && r.attr.name == name
        }
        Query::And(a, b) | Query::Or(a, b) => mentions_attr(a, name) || mentions_attr(b, name),
        Query::Not(inner) => mentions_attr(inner, name),
    }
}

fn check_filter(
    params: &ListParams,
    rt: &'static muster_scim::ResourceTypeDef,
) -> CoreResult<Option<Query>> {
    let Some(text) = params.filter.as_deref().filter(|f| !f.trim().is_empty()) else {
        return Ok(None);
    };
    let filter = Filter::parse(text)
        .map_err(|e| ScimError::invalid_filter(format!("invalid filter: {e}")))?;
    Ok(Some(Query::check(&filter, rt)?))
}

impl Muster {
    /// Renders a user as its SCIM resource (RFC 7643 §4.1), with `meta` and, if loaded, `groups`.
    pub fn render_user(&self, ctx: &ProviderCtx, v: &UserView) -> Map<String, Value> {
        let u = &v.user;
        let mut out = Map::new();
        out.insert(
            "schemas".into(),
            u.resource
                .get("schemas")
                .cloned()
                .unwrap_or_else(|| json!([USER_RESOURCE.schema.id])),
        );
        out.insert("id".into(), Value::String(u.id.to_string()));
        for (k, val) in &u.resource {
            if k != "schemas" {
                out.insert(k.clone(), val.clone());
            }
        }
        if let Some(groups) = &v.groups {
            if !groups.is_empty() {
                let list: Vec<Value> = groups
                    .iter()
                    .map(|g| {
                        json!({"value": g.group_id.to_string(), "$ref": format!("{}/Groups/{}", ctx.base_url, g.group_id),
                               "display": g.display, "type": "direct"})
                    })
                    .collect();
                out.insert("groups".into(), Value::Array(list));
            }
        }
        out.insert(
            "meta".into(),
            json!({
                "resourceType": "User",
                "created": u.created_at.to_rfc3339(),
                "lastModified": u.updated_at.to_rfc3339(),
                "location": format!("{}/Users/{}", ctx.base_url, u.id),
                "version": etag(u.version),
            }),
        );
        out
    }

    /// Renders a group as its SCIM resource (RFC 7643 §4.2), with `members` if loaded.
    pub fn render_group(&self, ctx: &ProviderCtx, v: &GroupView) -> Map<String, Value> {
        let g = &v.group;
        let mut out = Map::new();
        out.insert(
            "schemas".into(),
            g.resource
                .get("schemas")
                .cloned()
                .unwrap_or_else(|| json!([GROUP_RESOURCE.schema.id])),
        );
        out.insert("id".into(), Value::String(g.id.to_string()));
        for (k, val) in &g.resource {
            if k != "schemas" && k != "members" {
                out.insert(k.clone(), val.clone());
            }
        }
        if let Some(members) = &v.members {
            if !members.is_empty() {
                let list: Vec<Value> = members.iter().map(|m| self.member_json(ctx, *m)).collect();
                out.insert("members".into(), Value::Array(list));
            }
        }
        out.insert(
            "meta".into(),
            json!({
                "resourceType": "Group",
                "created": g.created_at.to_rfc3339(),
                "lastModified": g.updated_at.to_rfc3339(),
                "location": format!("{}/Groups/{}", ctx.base_url, g.id),
                "version": etag(g.version),
            }),
        );
        out
    }

    /// `POST /Users` (RFC 7644 §3.3). A POST of the userName (or externalId) of a user this
    /// provider turned off or deleted brings that user back instead of failing.
    pub async fn create_user(
        &self,
        ctx: &ProviderCtx,
        body: &Value,
    ) -> CoreResult<Created<UserView>> {
        let n = normalize(&USER_RESOURCE, body)?;
        let fields = UserFields::read(&n.resource);
        let key = name_key(&fields.user_name);
        // Whether someone holds this userName (or, for a returning user, this externalId) is
        // read first from a read connection, so the single writer of SQLite spends its time on
        // the insert alone when, as in an initial sync, nobody does. When someone does, or when
        // the insert meets a userName taken in between (the unique index says so), the check is
        // made again inside the write transaction, which decides.
        let mut check_in_tx = {
            let mut r = self.store.read().await?;
            self.holder(&mut r, ctx, &key, &fields).await?.is_some()
        };
        for _ in 0..WRITE_ATTEMPTS {
            let now = self.now();
            let mut tx = self.store.write().await?;
            let returning = if check_in_tx {
                self.holder(&mut tx, ctx, &key, &fields).await?
            } else {
                None
            };
            if let Some(existing) = &returning {
                let mine = existing.provider_id == Some(ctx.id());
                if !mine || (existing.removed_at.is_none() && existing.scim_active) {
                    return Err(uniqueness_user(&fields.user_name, existing, ctx));
                }
            }
            if let Some(existing) = returning {
                match self
                    .bring_back(&mut tx, ctx, existing, n.resource.clone(), &fields, now)
                    .await?
                {
                    Some(view) => {
                        tx.commit().await?;
                        return Ok(Created { view, new: false });
                    }
                    None => continue,
                }
            }
            let rules = self.rules(&mut tx, ctx.env(), ctx.id()).await?;
            let actor = Actor::Provider { id: ctx.id() };
            let cause = provisioning_cause(ctx, &actor, now);
            let mut user = UserRecord {
                environment_id: ctx.env(),
                id: UserId::new(),
                provider_id: Some(ctx.id()),
                user_name: fields.user_name.clone(),
                external_id: fields.external_id.clone(),
                display_name: fields.display_name.clone(),
                scim_active: fields.active,
                status: UserStatus::Active,
                org_id: rules.root(),
                legal_hold: false,
                changed_outside: false,
                resource: n.resource.clone(),
                version: 1,
                created_at: now,
                updated_at: now,
                removed_at: None,
                deactivate_at: None,
            };
            let (org_name, placed) = self
                .place_user(
                    &mut tx,
                    &rules,
                    &cause,
                    &mut user,
                    &[],
                    true,
                    &mut OrgCache::default(),
                )
                .await?;
            let transitions = if fields.active {
                Vec::new()
            } else {
                lifecycle::turn_off(&mut user, ctx.provider.deactivation_delay_secs, now)
            };
            match tx.insert_user(&user).await {
                Ok(()) => {}
                Err(StoreError::Conflict(Unique::UserName)) if !check_in_tx => {
                    // Taken since the first look: decide inside the transaction.
                    check_in_tx = true;
                    continue;
                }
                Err(e) => return Err(map_user_conflict(e, &fields.user_name)),
            }
            let (mut log, rest): (Vec<SyncLogEntry>, Vec<SyncLogEntry>) =
                placed.into_iter().partition(|e| e.action == "org.created");
            log.push(user_entry(
                ctx,
                now,
                "user.created",
                &user,
                json!({"org": org_name, "active": fields.active}),
            ));
            log.extend(rest);
            log.extend(transition_entries(ctx, now, &user, &transitions));
            tx.append_log(&log).await?;
            self.touch_sync(&mut tx, ctx.env(), ctx.id(), now).await?;
            tx.commit().await?;
            return Ok(Created {
                view: UserView {
                    user,
                    groups: Some(Vec::new()),
                },
                new: true,
            });
        }
        Err(busy())
    }

    /// Who stands in the way of creating this user: the holder of its userName (any provider's,
    /// any state), else this provider's turned-off or deleted user with its externalId.
    async fn holder(
        &self,
        tx: &mut Box<dyn Tx>,
        ctx: &ProviderCtx,
        key: &str,
        fields: &UserFields,
    ) -> CoreResult<Option<UserRecord>> {
        if let Some(u) = tx.find_user_by_name(ctx.env(), key).await? {
            return Ok(Some(u));
        }
        Ok(match &fields.external_id {
            Some(ext) => tx
                .find_user_by_external_id(ctx.env(), ctx.id(), ext)
                .await?
                .filter(|u| u.removed_at.is_some() || !u.scim_active),
            None => None,
        })
    }

    /// Brings back a user the provider had turned off or deleted, with the resource it now sent.
    /// `None` when the version moved under us (retry).
    async fn bring_back(
        &self,
        tx: &mut Box<dyn Tx>,
        ctx: &ProviderCtx,
        existing: UserRecord,
        resource: Map<String, Value>,
        fields: &UserFields,
        now: Timestamp,
    ) -> CoreResult<Option<UserView>> {
        let rules = self.rules(tx, ctx.env(), ctx.id()).await?;
        let actor = Actor::Provider { id: ctx.id() };
        let cause = provisioning_cause(ctx, &actor, now);
        let groups: Vec<GroupRef> = tx
            .groups_of_users(ctx.env(), &[existing.id])
            .await?
            .into_iter()
            .map(|(_, g)| g)
            .collect();
        let gids: Vec<GroupId> = groups.iter().map(|g| g.group_id).collect();
        let mut u = existing.clone();
        let was_removed = u.removed_at.is_some();
        u.removed_at = None;
        u.resource = resource;
        u.user_name = fields.user_name.clone();
        u.external_id = fields.external_id.clone();
        u.display_name = fields.display_name.clone();
        u.scim_active = fields.active;
        u.changed_outside = false;
        u.version += 1;
        u.updated_at = now;
        let transitions = if fields.active {
            lifecycle::turn_on(&mut u)
        } else {
            lifecycle::turn_off(&mut u, ctx.provider.deactivation_delay_secs, now)
        };
        let (_, placed) = self
            .place_user(
                tx,
                &rules,
                &cause,
                &mut u,
                &gids,
                false,
                &mut OrgCache::default(),
            )
            .await?;
        if !tx
            .update_user(&u, existing.version)
            .await
            .map_err(|e| map_user_conflict(e, &fields.user_name))?
        {
            return Ok(None);
        }
        let current = current_roles(tx, &u).await?;
        let roles_log = self
            .assign_roles(
                tx,
                &rules,
                &cause,
                &u,
                &gids,
                &current,
                &mut OrgCache::default(),
            )
            .await?;
        let changes = diff_resources(&existing.resource, &u.resource);
        let mut log = Vec::new();
        if was_removed {
            log.push(user_entry(
                ctx,
                now,
                "user.restored",
                &u,
                json!({"changes": changes}),
            ));
        } else if !changes.is_empty() {
            log.push(user_entry(
                ctx,
                now,
                "user.updated",
                &u,
                json!({"changes": changes}),
            ));
        }
        log.extend(transition_entries(ctx, now, &u, &transitions));
        log.extend(placed);
        log.extend(roles_log);
        tx.append_log(&log).await?;
        self.touch_sync(tx, ctx.env(), ctx.id(), now).await?;
        Ok(Some(UserView {
            user: u,
            groups: Some(groups),
        }))
    }

    /// `GET /Users/{id}` (RFC 7644 §3.4.1).
    pub async fn get_user(
        &self,
        ctx: &ProviderCtx,
        id: &str,
        with_groups: bool,
    ) -> CoreResult<UserView> {
        let uid = parse_user_id(id)?;
        let mut tx = self.store.read().await?;
        let user = tx
            .find_user(ctx.env(), uid)
            .await?
            .filter(|u| u.provider_id == Some(ctx.id()) && u.removed_at.is_none())
            .ok_or_else(|| user_not_found(id))?;
        let groups = if with_groups {
            Some(
                tx.groups_of_users(ctx.env(), &[uid])
                    .await?
                    .into_iter()
                    .map(|(_, g)| g)
                    .collect(),
            )
        } else {
            None
        };
        Ok(UserView { user, groups })
    }

    /// `PUT /Users/{id}` (RFC 7644 §3.5.1): the body replaces the resource.
    pub async fn replace_user(
        &self,
        ctx: &ProviderCtx,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> CoreResult<UserView> {
        let n = normalize(&USER_RESOURCE, body)?;
        self.write_user(ctx, id, if_match, |_| Ok(n.resource.clone()))
            .await
    }

    /// `PATCH /Users/{id}` (RFC 7644 §3.5.2): the operations apply to the stored resource, all
    /// or none.
    pub async fn patch_user(
        &self,
        ctx: &ProviderCtx,
        id: &str,
        ops: &[PatchOp],
        if_match: Option<&str>,
    ) -> CoreResult<UserView> {
        self.write_user(ctx, id, if_match, |existing| {
            let patched = patch::apply(
                &USER_RESOURCE,
                &existing.resource,
                &existing.id.to_string(),
                ops,
            )?;
            if !patched.members.is_empty() {
                return Err(ScimError::invalid_path("users have no 'members'").into());
            }
            Ok(patched.resource)
        })
        .await
    }

    /// Writes a provider's change to one of its users: the new canonical resource comes from
    /// `make`, given the stored user. Lifecycle transitions follow `active`; an unchanged
    /// resource writes nothing.
    async fn write_user<F>(
        &self,
        ctx: &ProviderCtx,
        id: &str,
        if_match: Option<&str>,
        make: F,
    ) -> CoreResult<UserView>
    where
        F: Fn(&UserRecord) -> CoreResult<Map<String, Value>> + Send + Sync,
    {
        let uid = parse_user_id(id)?;
        for _ in 0..WRITE_ATTEMPTS {
            let now = self.now();
            let mut tx = self.store.write().await?;
            let existing = tx
                .find_user(ctx.env(), uid)
                .await?
                .filter(|u| u.provider_id == Some(ctx.id()) && u.removed_at.is_none())
                .ok_or_else(|| user_not_found(id))?;
            check_if_match(if_match, existing.version)?;
            let resource = make(&existing)?;
            let fields = UserFields::read(&resource);
            let key = name_key(&fields.user_name);
            if name_key(&existing.user_name) != key {
                if let Some(holder) = tx.find_user_by_name(ctx.env(), &key).await? {
                    return Err(uniqueness_user(&fields.user_name, &holder, ctx));
                }
            }
            let mut u = existing.clone();
            u.resource = resource;
            u.user_name = fields.user_name.clone();
            u.external_id = fields.external_id.clone();
            u.display_name = fields.display_name.clone();
            let transitions = match (existing.scim_active, fields.active) {
                (true, false) => {
                    lifecycle::turn_off(&mut u, ctx.provider.deactivation_delay_secs, now)
                }
                (false, true) => lifecycle::turn_on(&mut u),
                _ => Vec::new(),
            };
            u.scim_active = fields.active;
            let changes = diff_resources(&existing.resource, &u.resource);
            let groups: Vec<GroupRef> = tx
                .groups_of_users(ctx.env(), &[uid])
                .await?
                .into_iter()
                .map(|(_, g)| g)
                .collect();
            let gids: Vec<GroupId> = groups.iter().map(|g| g.group_id).collect();
            let rules = self.rules(&mut tx, ctx.env(), ctx.id()).await?;
            let actor = Actor::Provider { id: ctx.id() };
            let cause = provisioning_cause(ctx, &actor, now);
            let (_, placed) = self
                .place_user(
                    &mut tx,
                    &rules,
                    &cause,
                    &mut u,
                    &gids,
                    false,
                    &mut OrgCache::default(),
                )
                .await?;
            let current = current_roles(&mut tx, &u).await?;
            let roles_change = rules
                .want_roles(&gids, &current)
                .is_some_and(|t| roles_differ(&current, &t));
            if changes.is_empty()
                && transitions.is_empty()
                && !existing.changed_outside
                && u.org_id == existing.org_id
                && !roles_change
            {
                // Nothing changed (Okta PUTs back what it read): no new version, no log entry.
                return Ok(UserView {
                    user: existing,
                    groups: Some(groups),
                });
            }
            u.changed_outside = false;
            u.version += 1;
            u.updated_at = now;
            if !tx
                .update_user(&u, existing.version)
                .await
                .map_err(|e| map_user_conflict(e, &fields.user_name))?
            {
                continue;
            }
            let mut log = Vec::new();
            if !changes.is_empty() {
                log.push(user_entry(
                    ctx,
                    now,
                    "user.updated",
                    &u,
                    json!({"changes": changes}),
                ));
            }
            log.extend(transition_entries(ctx, now, &u, &transitions));
            log.extend(placed);
            log.extend(
                self.assign_roles(
                    &mut tx,
                    &rules,
                    &cause,
                    &u,
                    &gids,
                    &current,
                    &mut OrgCache::default(),
                )
                .await?,
            );
            tx.append_log(&log).await?;
            self.touch_sync(&mut tx, ctx.env(), ctx.id(), now).await?;
            tx.commit().await?;
            return Ok(UserView {
                user: u,
                groups: Some(groups),
            });
        }
        Err(busy())
    }

    /// `DELETE /Users/{id}` (RFC 7644 §3.6): the user is blocked at once, deactivated after the
    /// provider's delay, leaves the provider's groups, and is no longer visible to the provider.
    /// Administrators still see it.
    pub async fn delete_user(
        &self,
        ctx: &ProviderCtx,
        id: &str,
        if_match: Option<&str>,
    ) -> CoreResult<()> {
        let uid = parse_user_id(id)?;
        for _ in 0..WRITE_ATTEMPTS {
            let now = self.now();
            let mut tx = self.store.write().await?;
            let existing = tx
                .find_user(ctx.env(), uid)
                .await?
                .filter(|u| u.provider_id == Some(ctx.id()) && u.removed_at.is_none())
                .ok_or_else(|| user_not_found(id))?;
            check_if_match(if_match, existing.version)?;
            let mut u = existing.clone();
            u.removed_at = Some(now);
            let transitions =
                lifecycle::turn_off(&mut u, ctx.provider.deactivation_delay_secs, now);
            u.version += 1;
            u.updated_at = now;
            if !tx.update_user(&u, existing.version).await? {
                continue;
            }
            let mut log = vec![user_entry(ctx, now, "user.removed", &u, json!({}))];
            for (_, g) in tx.groups_of_users(ctx.env(), &[uid]).await? {
                tx.remove_members(ctx.env(), g.group_id, &[uid]).await?;
                log.push(SyncLogEntry {
                    subject_kind: Some("group".into()),
                    subject_id: Some(g.group_id.to_string()),
                    subject_name: Some(g.display.clone()),
                    ..user_entry(ctx, now, "group.members_removed", &u, json!({"members": [{"id": uid.to_string(), "userName": u.user_name}], "count": 1}))
                });
            }
            log.extend(transition_entries(ctx, now, &u, &transitions));
            tx.append_log(&log).await?;
            self.touch_sync(&mut tx, ctx.env(), ctx.id(), now).await?;
            tx.commit().await?;
            return Ok(());
        }
        Err(busy())
    }

    /// `GET /Users` (RFC 7644 §3.4.2): filtered, sorted, paged in a stable order.
    pub async fn list_users(
        &self,
        ctx: &ProviderCtx,
        params: &ListParams,
        with_groups: bool,
    ) -> CoreResult<ListResult<UserView>> {
        let plan = ListPlan::new(params, &USER_RESOURCE, false, self.settings.max_page_size)?;
        let env = ctx.env();
        let mut tx = self.store.read().await?;
        let (total, users) = match plan.sql_order() {
            Some(order) => {
                let users = match plan.page() {
                    Some(page) => {
                        tx.list_users(env, ctx.id(), plan.cond.as_ref(), order, page)
                            .await?
                    }
                    None => Vec::new(),
                };
                let total = match plan.total_from_page(users.len()) {
                    Some(total) => total,
                    None => tx.count_users(env, ctx.id(), plan.cond.as_ref()).await?,
                };
                (total, users)
            }
            None => {
                let needs_groups = plan
                    .query
                    .as_ref()
                    .is_some_and(|q| mentions_attr(q, "groups"));
                let mut window = plan.window();
                let mut after = None;
                loop {
                    let chunk = tx
                        .scan_users(env, ctx.id(), plan.cond.as_ref(), after, SCAN_CHUNK)
                        .await?;
                    let Some(last) = chunk.last() else { break };
                    after = Some(Cursor {
                        created_at: last.created_at,
                        id: last.id.uuid(),
                    });
                    let full = chunk.len() as u64 == SCAN_CHUNK;
                    let groups = if needs_groups {
                        let ids: Vec<UserId> = chunk.iter().map(|u| u.id).collect();
                        tx.groups_of_users(env, &ids).await?
                    } else {
                        Vec::new()
                    };
                    for user in chunk {
                        let view = UserView {
                            groups: needs_groups.then(|| {
                                groups
                                    .iter()
                                    .filter(|(uid, _)| *uid == user.id)
                                    .map(|(_, g)| g.clone())
                                    .collect()
                            }),
                            user,
                        };
                        let rendered = self.render_user(ctx, &view);
                        window.offer(view.user, rendered)?;
                    }
                    if !full {
                        break;
                    }
                }
                window.finish()
            }
        };
        let items = self.attach_groups(&mut tx, ctx, users, with_groups).await?;
        Ok(ListResult {
            total,
            start_index: params.start_index,
            items,
        })
    }

    async fn attach_groups(
        &self,
        tx: &mut Box<dyn Tx>,
        ctx: &ProviderCtx,
        users: Vec<UserRecord>,
        with_groups: bool,
    ) -> CoreResult<Vec<UserView>> {
        if !with_groups || users.is_empty() {
            return Ok(users
                .into_iter()
                .map(|user| UserView { user, groups: None })
                .collect());
        }
        let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
        let pairs = tx.groups_of_users(ctx.env(), &ids).await?;
        Ok(users
            .into_iter()
            .map(|user| {
                let groups = pairs
                    .iter()
                    .filter(|(uid, _)| *uid == user.id)
                    .map(|(_, g)| g.clone())
                    .collect();
                UserView {
                    user,
                    groups: Some(groups),
                }
            })
            .collect())
    }

    /// Checks that every member value names a user of this provider; returns their ids.
    async fn resolve_members(
        &self,
        tx: &mut Box<dyn Tx>,
        ctx: &ProviderCtx,
        values: &[String],
    ) -> CoreResult<Vec<UserId>> {
        let mut ids = Vec::with_capacity(values.len());
        let mut seen = HashSet::new();
        let mut unknown = Vec::new();
        for v in values {
            match v.parse::<UserId>() {
                Ok(id) => {
                    if seen.insert(id) {
                        ids.push(id);
                    }
                }
                Err(_) => unknown.push(v.clone()),
            }
        }
        if !ids.is_empty() {
            let existing: HashSet<UserId> = tx
                .existing_user_ids(ctx.env(), ctx.id(), &ids)
                .await?
                .into_iter()
                .collect();
            unknown.extend(
                ids.iter()
                    .filter(|id| !existing.contains(id))
                    .map(|id| id.to_string()),
            );
        }
        if !unknown.is_empty() {
            unknown.truncate(20);
            return Err(ScimError::bad_request(
                ScimType::InvalidValue,
                format!(
                    "members must be users of this provider; unknown member id(s): {}",
                    unknown.join(", ")
                ),
            )
            .into());
        }
        Ok(ids)
    }

    /// `POST /Groups` (RFC 7644 §3.3).
    pub async fn create_group(&self, ctx: &ProviderCtx, body: &Value) -> CoreResult<GroupView> {
        let n = normalize(&GROUP_RESOURCE, body)?;
        let mut resource = n.resource;
        let member_values = take_member_values(&mut resource)?;
        let display_name = resource
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_string();
        let external_id = resource
            .get("externalId")
            .and_then(Value::as_str)
            .map(str::to_string);
        let now = self.now();
        let mut tx = self.store.write().await?;
        if tx
            .find_group_by_name(ctx.env(), ctx.id(), &name_key(&display_name))
            .await?
            .is_some()
        {
            return Err(map_group_conflict(
                StoreError::Conflict(Unique::GroupName),
                &display_name,
            ));
        }
        let members = self.resolve_members(&mut tx, ctx, &member_values).await?;
        let group = GroupRecord {
            environment_id: ctx.env(),
            id: GroupId::new(),
            provider_id: ctx.id(),
            display_name: display_name.clone(),
            external_id,
            resource,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        tx.insert_group(&group)
            .await
            .map_err(|e| map_group_conflict(e, &display_name))?;
        let mut log = vec![group_entry(ctx, now, "group.created", &group, json!({}))];
        if !members.is_empty() {
            let added = tx.add_members(ctx.env(), group.id, &members, now).await?;
            log.push(group_entry(
                ctx,
                now,
                "group.members_added",
                &group,
                member_details(&added),
            ));
        }
        tx.append_log(&log).await?;
        self.touch_sync(&mut tx, ctx.env(), ctx.id(), now).await?;
        let view_members = tx.member_ids(ctx.env(), group.id).await?;
        tx.commit().await?;
        Ok(GroupView {
            group,
            members: Some(view_members),
        })
    }

    /// `GET /Groups/{id}` (RFC 7644 §3.4.1). With `members_up_to: Some(n)`, its members when it
    /// has at most `n`; with more (or with `None`, when they will not be returned), `members` is
    /// `None` and a caller that wants them reads them page by page ([`Muster::member_page`]) so
    /// that memory does not grow with the group.
    pub async fn get_group(
        &self,
        ctx: &ProviderCtx,
        id: &str,
        members_up_to: Option<u64>,
    ) -> CoreResult<GroupView> {
        let gid = parse_group_id(id)?;
        let mut tx = self.store.read().await?;
        let group = tx
            .find_group(ctx.env(), gid)
            .await?
            .filter(|g| g.provider_id == ctx.id())
            .ok_or_else(|| group_not_found(id))?;
        let members = self
            .members_if_small(&mut tx, ctx.env(), gid, members_up_to)
            .await?;
        Ok(GroupView { group, members })
    }

    /// A page of a group's member ids, after `after`, by id.
    pub async fn member_page(
        &self,
        ctx: &ProviderCtx,
        group: GroupId,
        after: Option<UserId>,
        limit: u64,
    ) -> CoreResult<Vec<UserId>> {
        let mut tx = self.store.read().await?;
        Ok(tx.member_ids_page(ctx.env(), group, after, limit).await?)
    }

    /// The SCIM representation of one member (RFC 7643 §4.2).
    pub fn member_json(&self, ctx: &ProviderCtx, m: UserId) -> Value {
        json!({"value": m.to_string(), "$ref": format!("{}/Users/{}", ctx.base_url, m), "type": "User"})
    }

    /// `PUT /Groups/{id}` (RFC 7644 §3.5.1): replaces the group, its members included; only the
    /// difference in membership is written.
    pub async fn replace_group(
        &self,
        ctx: &ProviderCtx,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> CoreResult<GroupView> {
        let gid = parse_group_id(id)?;
        let n = normalize(&GROUP_RESOURCE, body)?;
        let mut resource = n.resource;
        let member_values = take_member_values(&mut resource)?;
        let display_name = resource
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_string();
        for _ in 0..WRITE_ATTEMPTS {
            let now = self.now();
            let mut tx = self.store.write().await?;
            let existing = tx
                .find_group(ctx.env(), gid)
                .await?
                .filter(|g| g.provider_id == ctx.id())
                .ok_or_else(|| group_not_found(id))?;
            check_if_match(if_match, existing.version)?;
            if name_key(&existing.display_name) != name_key(&display_name)
                && tx
                    .find_group_by_name(ctx.env(), ctx.id(), &name_key(&display_name))
                    .await?
                    .is_some()
            {
                return Err(map_group_conflict(
                    StoreError::Conflict(Unique::GroupName),
                    &display_name,
                ));
            }
            let wanted = self.resolve_members(&mut tx, ctx, &member_values).await?;
            let current: HashSet<UserId> =
                tx.member_ids(ctx.env(), gid).await?.into_iter().collect();
            let wanted_set: HashSet<UserId> = wanted.iter().copied().collect();
            let to_add: Vec<UserId> = wanted
                .iter()
                .copied()
                .filter(|u| !current.contains(u))
                .collect();
            let to_remove: Vec<UserId> = current
                .iter()
                .copied()
                .filter(|u| !wanted_set.contains(u))
                .collect();
            let mut g = existing.clone();
            g.display_name = display_name.clone();
            g.external_id = resource
                .get("externalId")
                .and_then(Value::as_str)
                .map(str::to_string);
            g.resource = resource.clone();
            let changes = diff_resources(&existing.resource, &g.resource);
            if changes.is_empty() && to_add.is_empty() && to_remove.is_empty() {
                let members = tx.member_ids(ctx.env(), gid).await?;
                return Ok(GroupView {
                    group: existing,
                    members: Some(members),
                });
            }
            g.version += 1;
            g.updated_at = now;
            if !tx
                .update_group(&g, existing.version)
                .await
                .map_err(|e| map_group_conflict(e, &display_name))?
            {
                continue;
            }
            let mut log = Vec::new();
            if existing.display_name != g.display_name {
                log.push(group_entry(
                    ctx,
                    now,
                    "group.renamed",
                    &g,
                    json!({"before": existing.display_name, "after": g.display_name}),
                ));
            } else if !changes.is_empty() {
                log.push(group_entry(
                    ctx,
                    now,
                    "group.updated",
                    &g,
                    json!({"changes": changes}),
                ));
            }
            if !to_add.is_empty() {
                let added = tx.add_members(ctx.env(), gid, &to_add, now).await?;
                log.push(group_entry(
                    ctx,
                    now,
                    "group.members_added",
                    &g,
                    member_details(&added),
                ));
            }
            if !to_remove.is_empty() {
                let removed = tx.remove_members(ctx.env(), gid, &to_remove).await?;
                log.push(group_entry(
                    ctx,
                    now,
                    "group.members_removed",
                    &g,
                    member_details(&removed),
                ));
            }
            let touched: Vec<UserId> = to_add.iter().chain(&to_remove).copied().collect();
            match self.remap_members(&mut tx, ctx, gid, &touched, now).await? {
                Some(entries) => log.extend(entries),
                None => continue,
            }
            tx.append_log(&log).await?;
            self.touch_sync(&mut tx, ctx.env(), ctx.id(), now).await?;
            let members = tx.member_ids(ctx.env(), gid).await?;
            tx.commit().await?;
            return Ok(GroupView {
                group: g,
                members: Some(members),
            });
        }
        Err(busy())
    }

    /// `PATCH /Groups/{id}` (RFC 7644 §3.5.2). Membership operations touch only the members
    /// they name: adding or removing one member costs the same in a group of 10 or 100,000.
    /// Returns the group, and its members when `members_up_to` allows (the group has at most
    /// that many).
    pub async fn patch_group(
        &self,
        ctx: &ProviderCtx,
        id: &str,
        ops: &[PatchOp],
        if_match: Option<&str>,
        members_up_to: Option<u64>,
    ) -> CoreResult<GroupView> {
        let gid = parse_group_id(id)?;
        for _ in 0..WRITE_ATTEMPTS {
            let now = self.now();
            let env = ctx.env();
            let mut tx = self.store.write().await?;
            let existing = tx
                .find_group(env, gid)
                .await?
                .filter(|g| g.provider_id == ctx.id())
                .ok_or_else(|| group_not_found(id))?;
            check_if_match(if_match, existing.version)?;
            let patched = patch::apply(&GROUP_RESOURCE, &existing.resource, id, ops)?;
            let mut g = existing.clone();
            g.resource = patched.resource;
            g.display_name = g
                .resource
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .to_string();
            g.external_id = g
                .resource
                .get("externalId")
                .and_then(Value::as_str)
                .map(str::to_string);
            if name_key(&existing.display_name) != name_key(&g.display_name)
                && tx
                    .find_group_by_name(env, ctx.id(), &name_key(&g.display_name))
                    .await?
                    .is_some()
            {
                return Err(map_group_conflict(
                    StoreError::Conflict(Unique::GroupName),
                    &g.display_name,
                ));
            }
            let mut added = Vec::new();
            let mut removed = Vec::new();
            for change in &patched.members {
                match change {
                    MemberChange::Add(values) => {
                        let ids = self.resolve_members(&mut tx, ctx, values).await?;
                        added.extend(tx.add_members(env, gid, &ids, now).await?);
                    }
                    MemberChange::Remove(values) => {
                        let ids: Vec<UserId> =
                            values.iter().filter_map(|v| v.parse().ok()).collect();
                        removed.extend(tx.remove_members(env, gid, &ids).await?);
                    }
                    MemberChange::RemoveAll => {
                        let ids = tx.member_ids(env, gid).await?;
                        removed.extend(tx.remove_members(env, gid, &ids).await?);
                    }
                    MemberChange::ReplaceAll(values) => {
                        let wanted = self.resolve_members(&mut tx, ctx, values).await?;
                        let wanted_set: HashSet<UserId> = wanted.iter().copied().collect();
                        let current = tx.member_ids(env, gid).await?;
                        let current_set: HashSet<UserId> = current.iter().copied().collect();
                        let gone: Vec<UserId> = current
                            .into_iter()
                            .filter(|u| !wanted_set.contains(u))
                            .collect();
                        let new: Vec<UserId> = wanted
                            .into_iter()
                            .filter(|u| !current_set.contains(u))
                            .collect();
                        removed.extend(tx.remove_members(env, gid, &gone).await?);
                        added.extend(tx.add_members(env, gid, &new, now).await?);
                    }
                    MemberChange::RemoveWhere(q) => {
                        let ids: Vec<UserId> = tx
                            .member_ids(env, gid)
                            .await?
                            .into_iter()
                            .filter(|m| {
                                q.matches_element(&json!({
                                    "value": m.to_string(),
                                    "$ref": format!("{}/Users/{m}", ctx.base_url),
                                    "type": "User"
                                }))
                            })
                            .collect();
                        removed.extend(tx.remove_members(env, gid, &ids).await?);
                    }
                }
            }
            // A member added then removed in one request is neither.
            let added_set: HashSet<UserId> = added.iter().copied().collect();
            let removed_set: HashSet<UserId> = removed.iter().copied().collect();
            let net_added: Vec<UserId> = added
                .iter()
                .copied()
                .filter(|u| !removed_set.contains(u))
                .collect();
            let net_removed: Vec<UserId> = removed
                .iter()
                .copied()
                .filter(|u| !added_set.contains(u))
                .collect();
            let changes = diff_resources(&existing.resource, &g.resource);
            if changes.is_empty() && added.is_empty() && removed.is_empty() {
                let members = self
                    .members_if_small(&mut tx, env, gid, members_up_to)
                    .await?;
                return Ok(GroupView {
                    group: existing,
                    members,
                });
            }
            g.version += 1;
            g.updated_at = now;
            let saved = if changes.is_empty() {
                let expected = if_match.map(|_| existing.version);
                tx.bump_group_version(env, gid, now, expected)
                    .await?
                    .inspect(|v| g.version = *v)
                    .is_some()
            } else {
                tx.update_group(&g, existing.version)
                    .await
                    .map_err(|e| map_group_conflict(e, &g.display_name))?
            };
            if !saved {
                if if_match.is_some() {
                    return Err(ScimError::new(
                        412,
                        None,
                        "the group changed while this request ran",
                    )
                    .into());
                }
                continue;
            }
            let mut log = Vec::new();
            if existing.display_name != g.display_name {
                log.push(group_entry(
                    ctx,
                    now,
                    "group.renamed",
                    &g,
                    json!({"before": existing.display_name, "after": g.display_name}),
                ));
            } else if !changes.is_empty() {
                log.push(group_entry(
                    ctx,
                    now,
                    "group.updated",
                    &g,
                    json!({"changes": changes}),
                ));
            }
            if !net_added.is_empty() {
                log.push(group_entry(
                    ctx,
                    now,
                    "group.members_added",
                    &g,
                    member_details(&net_added),
                ));
            }
            if !net_removed.is_empty() {
                log.push(group_entry(
                    ctx,
                    now,
                    "group.members_removed",
                    &g,
                    member_details(&net_removed),
                ));
            }
            let touched: Vec<UserId> = net_added.iter().chain(&net_removed).copied().collect();
            match self.remap_members(&mut tx, ctx, gid, &touched, now).await? {
                Some(entries) => log.extend(entries),
                None if if_match.is_some() => {
                    return Err(ScimError::new(
                        412,
                        None,
                        "a member changed while this request ran",
                    )
                    .into())
                }
                None => continue,
            }
            tx.append_log(&log).await?;
            self.touch_sync(&mut tx, env, ctx.id(), now).await?;
            let members = self
                .members_if_small(&mut tx, env, gid, members_up_to)
                .await?;
            tx.commit().await?;
            return Ok(GroupView { group: g, members });
        }
        Err(busy())
    }

    /// Re-evaluates the mappings of members added to or removed from a group, when the group
    /// is in a mapping. `None` when a member changed under us (retry).
    async fn remap_members(
        &self,
        tx: &mut Box<dyn Tx>,
        ctx: &ProviderCtx,
        gid: GroupId,
        touched: &[UserId],
        now: Timestamp,
    ) -> CoreResult<Option<Vec<SyncLogEntry>>> {
        if touched.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let rules = self.rules(tx, ctx.env(), ctx.id()).await?;
        let aspects = rules.aspects_of(&[gid]);
        if !aspects.any() {
            return Ok(Some(Vec::new()));
        }
        let actor = Actor::Provider { id: ctx.id() };
        let cause = Cause {
            reason: "group membership",
            ..provisioning_cause(ctx, &actor, now)
        };
        self.reevaluate_users(tx, &rules, &cause, touched, aspects)
            .await
    }

    async fn members_if_small(
        &self,
        tx: &mut Box<dyn Tx>,
        env: crate::ids::EnvironmentId,
        gid: GroupId,
        up_to: Option<u64>,
    ) -> CoreResult<Option<Vec<UserId>>> {
        let Some(limit) = up_to else { return Ok(None) };
        if tx
            .member_count_capped(env, gid, limit.saturating_add(1))
            .await?
            > limit
        {
            return Ok(None);
        }
        Ok(Some(tx.member_ids(env, gid).await?))
    }

    /// `DELETE /Groups/{id}` (RFC 7644 §3.6).
    pub async fn delete_group(
        &self,
        ctx: &ProviderCtx,
        id: &str,
        if_match: Option<&str>,
    ) -> CoreResult<()> {
        let gid = parse_group_id(id)?;
        for _ in 0..WRITE_ATTEMPTS {
            let now = self.now();
            let env = ctx.env();
            let mut tx = self.store.write().await?;
            let existing = tx
                .find_group(env, gid)
                .await?
                .filter(|g| g.provider_id == ctx.id())
                .ok_or_else(|| group_not_found(id))?;
            check_if_match(if_match, existing.version)?;
            // What the group took part in, read before it (and its mappings) go.
            let aspects = self.rules(&mut tx, env, ctx.id()).await?.aspects_of(&[gid]);
            let members = if aspects.any() {
                tx.member_ids(env, gid).await?
            } else {
                Vec::new()
            };
            tx.delete_group(env, gid).await?;
            let mut log = vec![group_entry(ctx, now, "group.deleted", &existing, json!({}))];
            if aspects.any() {
                let rules = self.rules(&mut tx, env, ctx.id()).await?;
                let actor = Actor::Provider { id: ctx.id() };
                let cause = Cause {
                    reason: "group deleted",
                    ..provisioning_cause(ctx, &actor, now)
                };
                match self
                    .reevaluate_users(&mut tx, &rules, &cause, &members, aspects)
                    .await?
                {
                    Some(entries) => log.extend(entries),
                    None => continue,
                }
            }
            tx.append_log(&log).await?;
            self.touch_sync(&mut tx, env, ctx.id(), now).await?;
            tx.commit().await?;
            return Ok(());
        }
        Err(busy())
    }

    /// `GET /Groups` (RFC 7644 §3.4.2).
    pub async fn list_groups(
        &self,
        ctx: &ProviderCtx,
        params: &ListParams,
        with_members: bool,
    ) -> CoreResult<ListResult<GroupView>> {
        let plan = ListPlan::new(params, &GROUP_RESOURCE, true, self.settings.max_page_size)?;
        let env = ctx.env();
        let mut tx = self.store.read().await?;
        let (total, groups) = match plan.sql_order() {
            Some(order) => {
                let groups = match plan.page() {
                    Some(page) => {
                        tx.list_groups(env, ctx.id(), plan.cond.as_ref(), order, page)
                            .await?
                    }
                    None => Vec::new(),
                };
                let total = match plan.total_from_page(groups.len()) {
                    Some(total) => total,
                    None => tx.count_groups(env, ctx.id(), plan.cond.as_ref()).await?,
                };
                (total, groups)
            }
            None => {
                let needs_members = plan
                    .query
                    .as_ref()
                    .is_some_and(|q| mentions_attr(q, "members"));
                let mut window = plan.window();
                let mut after = None;
                loop {
                    let chunk = tx
                        .scan_groups(env, ctx.id(), plan.cond.as_ref(), after, SCAN_CHUNK)
                        .await?;
                    let Some(last) = chunk.last() else { break };
                    after = Some(Cursor {
                        created_at: last.created_at,
                        id: last.id.uuid(),
                    });
                    let full = chunk.len() as u64 == SCAN_CHUNK;
                    for group in chunk {
                        let members = if needs_members {
                            Some(tx.member_ids(env, group.id).await?)
                        } else {
                            None
                        };
                        let view = GroupView { group, members };
                        let rendered = self.render_group(ctx, &view);
                        window.offer(view.group, rendered)?;
                    }
                    if !full {
                        break;
                    }
                }
                window.finish()
            }
        };
        let mut items = Vec::with_capacity(groups.len());
        for group in groups {
            let members = if with_members {
                Some(tx.member_ids(env, group.id).await?)
            } else {
                None
            };
            items.push(GroupView { group, members });
        }
        Ok(ListResult {
            total,
            start_index: params.start_index,
            items,
        })
    }
}

/// The most resources a list sorts outside the database; past it, the client must filter.
const MAX_SORTED_IN_MEMORY: usize = 50_000;

/// How a listing will be answered: the filter (checked), the part of it SQL renders, the sort,
/// and the page window.
struct ListPlan {
    query: Option<Query>,
    cond: Option<Cond>,
    exact: bool,
    sort: Option<SortSpec>,
    sort_key: Option<OrderKey>,
    offset: u64,
    size: u64,
}

impl ListPlan {
    fn new(
        params: &ListParams,
        rt: &'static muster_scim::ResourceTypeDef,
        group: bool,
        max: u64,
    ) -> CoreResult<ListPlan> {
        let query = check_filter(params, rt)?;
        let (cond, exact) = match &query {
            Some(q) => pushdown(q, group),
            None => (None, true),
        };
        let sort = params
            .sort_by
            .as_deref()
            .map(|s| SortSpec::parse(rt, s, params.descending))
            .transpose()?;
        let sort_key = sort.as_ref().and_then(|s| order_key(&s.by, group));
        Ok(ListPlan {
            query,
            cond,
            exact,
            sort,
            sort_key,
            offset: params.start_index.saturating_sub(1),
            size: params.page_size(max),
        })
    }

    /// The database order, when SQL can answer the whole listing.
    fn sql_order(&self) -> Option<Order> {
        if !self.exact {
            return None;
        }
        match (&self.sort, self.sort_key) {
            (None, _) => Some(Order::CREATED),
            (Some(s), Some(key)) => Some(Order {
                key,
                descending: s.descending,
            }),
            (Some(_), None) => None,
        }
    }

    /// The rows to read for this page, if any.
    fn page(&self) -> Option<Page> {
        (self.size > 0).then_some(Page {
            offset: self.offset,
            limit: self.size,
        })
    }

    /// `totalResults` read off the page, when the page tells it: a short page that holds rows,
    /// or starts at the first, ends the results. Saves the count for the common case of a
    /// filter that matches a few resources (`userName eq`, Okta's existence check).
    fn total_from_page(&self, rows: usize) -> Option<u64> {
        let rows = rows as u64;
        (self.size > 0 && rows < self.size && (rows > 0 || self.offset == 0))
            .then_some(self.offset + rows)
    }

    fn window<T>(&self) -> Window<'_, T> {
        Window {
            plan: self,
            total: 0,
            page: Vec::new(),
            sorted: Vec::new(),
        }
    }
}

/// Collects the matches of a scan: the page directly when unsorted (memory stays at one page),
/// every match when it must be sorted first.
struct Window<'a, T> {
    plan: &'a ListPlan,
    total: u64,
    page: Vec<T>,
    sorted: Vec<(T, Map<String, Value>)>,
}

impl<T> Window<'_, T> {
    fn offer(&mut self, item: T, rendered: Map<String, Value>) -> CoreResult<()> {
        if let Some(q) = &self.plan.query {
            if !q.matches(&rendered) {
                return Ok(());
            }
        }
        if self.plan.sort.is_some() {
            if self.sorted.len() >= MAX_SORTED_IN_MEMORY {
                return Err(ScimError::bad_request(
                    ScimType::TooMany,
                    format!("sorting by this attribute is limited to {MAX_SORTED_IN_MEMORY} results: add a filter"),
                )
                .into());
            }
            self.sorted.push((item, rendered));
        } else if self.total >= self.plan.offset && (self.page.len() as u64) < self.plan.size {
            self.page.push(item);
        }
        self.total += 1;
        Ok(())
    }

    fn finish(self) -> (u64, Vec<T>) {
        let Some(sort) = &self.plan.sort else {
            return (self.total, self.page);
        };
        let mut sorted = self.sorted;
        // Stable: equal keys keep the creation order of the scan.
        sorted.sort_by(|a, b| sort.compare(&a.1, &b.1));
        let page = sorted
            .into_iter()
            .skip(self.plan.offset as usize)
            .take(self.plan.size as usize)
            .map(|(item, _)| item)
            .collect();
        (self.total, page)
    }
}

/// The database column a sort maps to, if any.
fn order_key(by: &muster_scim::schema::Resolved, group: bool) -> Option<OrderKey> {
    use muster_scim::schema::Container;
    if by.container != Container::Core {
        return None;
    }
    match (by.attr.name, by.sub.map(|s| s.name)) {
        ("id", None) => Some(OrderKey::Id),
        ("externalId", None) => Some(OrderKey::ExternalId),
        ("userName", None) if !group => Some(OrderKey::UserName),
        ("displayName", None) if group => Some(OrderKey::GroupName),
        ("meta", Some("created")) => Some(OrderKey::Created),
        ("meta", Some("lastModified")) => Some(OrderKey::LastModified),
        _ => None,
    }
}

fn busy() -> CoreError {
    ScimError::new(
        409,
        None,
        "the resource was changed by another request at the same time; retry",
    )
    .into()
}

/// Takes `members` out of a canonical group resource: its member ids.
fn take_member_values(resource: &mut Map<String, Value>) -> CoreResult<Vec<String>> {
    let Some(members) = resource.remove("members") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if let Value::Array(items) = members {
        for item in items {
            match item.get("value").and_then(Value::as_str) {
                Some(v) => out.push(v.to_string()),
                None => {
                    return Err(ScimError::invalid_value(
                        "each member needs a 'value': the id of a user",
                    )
                    .into())
                }
            }
        }
    }
    Ok(out)
}

fn member_details(ids: &[UserId]) -> Value {
    let listed: Vec<String> = ids
        .iter()
        .take(LOGGED_MEMBERS)
        .map(|u| u.to_string())
        .collect();
    json!({"members": listed, "count": ids.len()})
}
