//! SCIM groups: what a provider's requests do to its groups and their members (RFC 7644 §3).
//! Membership is stored per member, so changing one member costs the same in a group of ten or
//! of a hundred thousand; membership changes re-apply the mappings to exactly the members they
//! touch.

use crate::clock::Timestamp;
use crate::error::CoreError;
use crate::error::CoreResult;
use crate::error::StoreError;
use crate::error::Unique;
use crate::events::outbox::member_events;
use crate::ids::EnvironmentId;
use crate::ids::GroupId;
use crate::ids::ProviderId;
use crate::ids::UserId;
use crate::listing::ListResult;
use crate::listing::Listed;
use crate::mapping::placement::Cause;
use crate::model::name_key;
use crate::model::Actor;
use crate::model::FeedEvent;
use crate::model::GroupRecord;
use crate::model::Outcome;
use crate::model::ProviderCtx;
use crate::model::SyncLogEntry;
use crate::muster::Muster;
use crate::store::Cond;
use crate::store::Cursor;
use crate::store::Order;
use crate::store::Page;
use crate::store::StoreResult;
use crate::store::Tx;
use crate::synclog::diff_resources;
use crate::synclog::event::Event;
use crate::users::busy;
use crate::users::{provisioning_cause, WRITE_ATTEMPTS};
use crate::versions::{check_expected, Tags};
use muster_scim::list::ListParams;
use muster_scim::normalize;
use muster_scim::patch;
use muster_scim::patch::MemberChange;
use muster_scim::patch::PatchOp;
use muster_scim::render::user_member;
use muster_scim::schema::GROUP_RESOURCE;
use muster_scim::ScimError;
use muster_scim::ScimType;
use serde_json::json;
use serde_json::Map;
use serde_json::Value;
use std::collections::HashSet;

/// The most member ids a sync log entry lists; the count is always exact.
pub(crate) const LOGGED_MEMBERS: usize = 1000;

/// A group with its members, when they were asked for.
#[derive(Debug, Clone)]
pub struct GroupView {
    /// The group.
    pub group: GroupRecord,
    /// Its members, if loaded.
    pub members: Option<Vec<UserId>>,
}

pub(crate) fn parse_group_id(id: &str) -> CoreResult<GroupId> {
    id.parse()
        .map_err(|_| CoreError::NotFound(format!("no group with id '{id}'")))
}

pub(crate) fn group_not_found(id: &str) -> CoreError {
    CoreError::NotFound(format!("no group with id '{id}'"))
}

pub(crate) fn map_group_conflict(e: StoreError, name: &str) -> CoreError {
    match e {
        StoreError::Conflict(Unique::GroupName) => ScimError::uniqueness(format!(
            "a group named '{name}' already exists for this provider"
        ))
        .into(),
        other => other.into(),
    }
}

/// A sync log entry about a group, caused by a provider.
pub(crate) fn group_entry(
    ctx: &ProviderCtx,
    at: Timestamp,
    action: Event,
    g: &GroupRecord,
    details: Value,
) -> SyncLogEntry {
    SyncLogEntry {
        environment_id: ctx.env(),
        at,
        provider_id: Some(ctx.id()),
        actor: Actor::Provider { id: ctx.id() },
        action,
        subject_kind: Some("group".into()),
        subject_id: Some(g.id.to_string()),
        subject_name: Some(g.display_name.clone()),
        details,
        outcome: Outcome::Success,
        message: None,
    }
}

/// Takes `members` out of a canonical group resource: its member ids.
pub(crate) fn take_member_values(resource: &mut Map<String, Value>) -> CoreResult<Vec<String>> {
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

/// Logs a membership change and queues one feed event per member.
fn push_members(
    log: &mut Vec<SyncLogEntry>,
    feed: &mut Vec<FeedEvent>,
    entry: SyncLogEntry,
    members: &[UserId],
) {
    feed.extend(member_events(&entry, members));
    log.push(entry);
}

pub(crate) fn member_details(ids: &[UserId]) -> Value {
    let listed: Vec<String> = ids
        .iter()
        .take(LOGGED_MEMBERS)
        .map(|u| u.to_string())
        .collect();
    json!({"members": listed, "count": ids.len()})
}

impl Muster {
    /// Checks that every member value names a user of this provider; returns their ids.
    pub(crate) async fn resolve_members(
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
                    "members must be users of this provider; unknown member {}: {}",
                    if unknown.len() == 1 { "id" } else { "ids" },
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
        let mut feed = Vec::new();
        let mut log = vec![group_entry(
            ctx,
            now,
            Event::GroupCreated,
            &group,
            json!({}),
        )];
        if !members.is_empty() {
            let added = tx.add_members(ctx.env(), group.id, &members, now).await?;
            push_members(
                &mut log,
                &mut feed,
                group_entry(
                    ctx,
                    now,
                    Event::GroupMembersAdded,
                    &group,
                    member_details(&added),
                ),
                &added,
            );
        }
        self.record_with(&mut tx, &log, feed).await?;
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
        user_member(&ctx.base_url, &m.to_string())
    }

    /// A page of the environment's groups for the API (one provider's, if given), and the
    /// cursor of the next page.
    pub async fn query_groups(
        &self,
        env: EnvironmentId,
        provider: Option<ProviderId>,
        after: Option<Cursor>,
        limit: u64,
    ) -> CoreResult<(Vec<GroupRecord>, Option<Cursor>)> {
        let limit = limit.clamp(1, 1000);
        let mut tx = self.store.read().await?;
        let mut groups = tx.query_groups(env, provider, after, limit + 1).await?;
        let next = if groups.len() as u64 > limit {
            groups.truncate(limit as usize);
            groups.last().map(|g| Cursor {
                created_at: g.created_at,
                id: g.id.uuid(),
            })
        } else {
            None
        };
        Ok((groups, next))
    }

    /// A group and its members by name (without case, then by id): what the API, the console
    /// and the CLI list.
    pub async fn group_with_members(
        &self,
        env: EnvironmentId,
        id: GroupId,
    ) -> CoreResult<(GroupRecord, Vec<crate::model::MemberRef>)> {
        let mut tx = self.store.read().await?;
        let g = tx
            .find_group(env, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no group with id {id}")))?;
        let mut members = tx.members(env, id).await?;
        // Stable: the store gives them by id, which breaks ties between equal names.
        members.sort_by_cached_key(|m| m.display.to_lowercase());
        Ok((g, members))
    }

    /// `PUT /Groups/{id}` (RFC 7644 §3.5.1): replaces the group, its members included; only the
    /// difference in membership is written.
    pub async fn replace_group(
        &self,
        ctx: &ProviderCtx,
        id: &str,
        body: &Value,
        if_match: Option<&Tags>,
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
            check_expected(if_match, existing.version)?;
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
            let mut feed = Vec::new();
            let mut log = Vec::new();
            if existing.display_name != g.display_name {
                log.push(group_entry(
                    ctx,
                    now,
                    Event::GroupRenamed,
                    &g,
                    json!({"before": existing.display_name, "after": g.display_name}),
                ));
            } else if !changes.is_empty() {
                log.push(group_entry(
                    ctx,
                    now,
                    Event::GroupUpdated,
                    &g,
                    json!({"changes": changes}),
                ));
            }
            if !to_add.is_empty() {
                let added = tx.add_members(ctx.env(), gid, &to_add, now).await?;
                push_members(
                    &mut log,
                    &mut feed,
                    group_entry(
                        ctx,
                        now,
                        Event::GroupMembersAdded,
                        &g,
                        member_details(&added),
                    ),
                    &added,
                );
            }
            if !to_remove.is_empty() {
                let removed = tx.remove_members(ctx.env(), gid, &to_remove).await?;
                push_members(
                    &mut log,
                    &mut feed,
                    group_entry(
                        ctx,
                        now,
                        Event::GroupMembersRemoved,
                        &g,
                        member_details(&removed),
                    ),
                    &removed,
                );
            }
            let touched: Vec<UserId> = to_add.iter().chain(&to_remove).copied().collect();
            match self.remap_members(&mut tx, ctx, gid, &touched, now).await? {
                Some(entries) => log.extend(entries),
                None => continue,
            }
            self.record_with(&mut tx, &log, feed).await?;
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
        if_match: Option<&Tags>,
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
            check_expected(if_match, existing.version)?;
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
                                q.matches_element(&user_member(&ctx.base_url, &m.to_string()))
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
                    return Err(CoreError::Stale(
                        "the group changed while this request ran".into(),
                    ));
                }
                continue;
            }
            let mut feed = Vec::new();
            let mut log = Vec::new();
            if existing.display_name != g.display_name {
                log.push(group_entry(
                    ctx,
                    now,
                    Event::GroupRenamed,
                    &g,
                    json!({"before": existing.display_name, "after": g.display_name}),
                ));
            } else if !changes.is_empty() {
                log.push(group_entry(
                    ctx,
                    now,
                    Event::GroupUpdated,
                    &g,
                    json!({"changes": changes}),
                ));
            }
            if !net_added.is_empty() {
                push_members(
                    &mut log,
                    &mut feed,
                    group_entry(
                        ctx,
                        now,
                        Event::GroupMembersAdded,
                        &g,
                        member_details(&net_added),
                    ),
                    &net_added,
                );
            }
            if !net_removed.is_empty() {
                push_members(
                    &mut log,
                    &mut feed,
                    group_entry(
                        ctx,
                        now,
                        Event::GroupMembersRemoved,
                        &g,
                        member_details(&net_removed),
                    ),
                    &net_removed,
                );
            }
            let touched: Vec<UserId> = net_added.iter().chain(&net_removed).copied().collect();
            match self.remap_members(&mut tx, ctx, gid, &touched, now).await? {
                Some(entries) => log.extend(entries),
                None if if_match.is_some() => {
                    return Err(CoreError::Stale(
                        "a member changed while this request ran".into(),
                    ))
                }
                None => continue,
            }
            self.record_with(&mut tx, &log, feed).await?;
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
    pub(crate) async fn remap_members(
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

    pub(crate) async fn members_if_small(
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
        if_match: Option<&Tags>,
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
            check_expected(if_match, existing.version)?;
            // What the group took part in, read before it (and its mappings) go.
            let aspects = self.rules(&mut tx, env, ctx.id()).await?.aspects_of(&[gid]);
            let members = if aspects.any() {
                tx.member_ids(env, gid).await?
            } else {
                Vec::new()
            };
            tx.delete_group(env, gid).await?;
            let mut log = vec![group_entry(
                ctx,
                now,
                Event::GroupDeleted,
                &existing,
                json!({}),
            )];
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
            self.record(&mut tx, &log).await?;
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
        self.list(ctx, params, with_members).await
    }
}

#[async_trait::async_trait]
impl Listed for GroupView {
    type Record = GroupRecord;
    const RESOURCE: &'static muster_scim::ResourceTypeDef = &GROUP_RESOURCE;
    const IS_GROUP: bool = true;
    const JOINED: &'static str = "members";

    async fn page(
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        order: Order,
        page: Page,
        joined: bool,
    ) -> CoreResult<Vec<GroupView>> {
        let rows = tx.list_groups(env, provider, cond, order, page).await?;
        Self::views(tx, env, rows, joined).await
    }

    async fn count(
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
    ) -> StoreResult<u64> {
        tx.count_groups(env, provider, cond).await
    }

    async fn scan(
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        after: Option<Cursor>,
        limit: u64,
    ) -> StoreResult<Vec<GroupRecord>> {
        tx.scan_groups(env, provider, cond, after, limit).await
    }

    fn cursor(g: &GroupRecord) -> Cursor {
        Cursor {
            created_at: g.created_at,
            id: g.id.uuid(),
        }
    }

    async fn views(
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        groups: Vec<GroupRecord>,
        with_members: bool,
    ) -> CoreResult<Vec<GroupView>> {
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            let members = if with_members {
                Some(tx.member_ids(env, group.id).await?)
            } else {
                None
            };
            out.push(GroupView { group, members });
        }
        Ok(out)
    }

    fn render(m: &Muster, ctx: &ProviderCtx, view: &GroupView) -> Map<String, Value> {
        m.render_group(ctx, view)
    }

    fn into_record(self) -> GroupRecord {
        self.group
    }
}
