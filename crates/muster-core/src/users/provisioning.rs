//! SCIM provisioning: what a provider's requests do to users (RFC 7644 §3).
//!
//! Each operation runs in one write transaction: the change, its lifecycle consequences and its
//! sync log entries commit together or not at all. Read-modify-write carries the version it
//! read; if another writer moved it (possible on PostgreSQL), the operation is retried.

use crate::clock::Timestamp;
use crate::error::CoreResult;
use crate::error::StoreError;
use crate::error::Unique;
use crate::ids::EnvironmentId;
use crate::ids::GroupId;
use crate::ids::ProviderId;
use crate::ids::UserId;
use crate::listing::ListResult;
use crate::listing::Listed;
use crate::mapping::placement::OrgCache;
use crate::mapping::rules::roles_differ;
use crate::model::name_key;
use crate::model::Actor;
use crate::model::GroupRef;
use crate::model::ProviderCtx;
use crate::model::SyncLogEntry;
use crate::model::UserRecord;
use crate::model::UserStatus;
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
use crate::users::current_roles;
use crate::users::lifecycle;
use crate::users::lifecycle::transition_entries;
use crate::users::map_user_conflict;
use crate::users::parse_user_id;
use crate::users::provisioning_cause;
use crate::users::uniqueness_user;
use crate::users::user_entry;
use crate::users::user_not_found;
use crate::users::Created;
use crate::users::UserFields;
use crate::users::UserView;
use crate::users::WRITE_ATTEMPTS;
use crate::versions::{check_expected, Tags};
use muster_scim::list::ListParams;
use muster_scim::normalize;
use muster_scim::patch;
use muster_scim::patch::PatchOp;
use muster_scim::schema::USER_RESOURCE;
use muster_scim::ScimError;
use serde_json::json;
use serde_json::Map;
use serde_json::Value;

impl Muster {
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
            // The organizations are read once, with the rules: placing the user looks its
            // organization up among them, and its `user.created` event names the organization
            // and its default roles.
            let (rules, orgs) = self.rules_and_orgs(&mut tx, ctx.env(), ctx.id()).await?;
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
                resource: n.resource.clone().into(),
                version: 1,
                created_at: now,
                updated_at: now,
                removed_at: None,
                deactivate_at: None,
            };
            let mut cache = OrgCache::knowing(orgs);
            let (org_name, placed) = self
                .place_user(&mut tx, &rules, &cause, &mut user, &[], true, &mut cache)
                .await?;
            let orgs = cache.into_known();
            let transitions = if fields.active {
                Vec::new()
            } else {
                self.provider_turn_off(&mut tx, ctx, &mut user, now, false)
                    .await?
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
            let (mut log, rest): (Vec<SyncLogEntry>, Vec<SyncLogEntry>) = placed
                .into_iter()
                .partition(|e| e.action == Event::OrgCreated);
            log.push(user_entry(
                ctx,
                now,
                Event::UserCreated,
                &user,
                json!({"org": org_name, "active": fields.active}),
            ));
            log.extend(rest);
            log.extend(transition_entries(ctx, now, &user, &transitions));
            // An organization the placement created is not among those read before it.
            let orgs_current = !log.iter().any(|e| e.action == Event::OrgCreated);
            let orgs = orgs
                .as_deref()
                .filter(|_| orgs_current)
                .map(|o| (ctx.env(), o));
            self.record_known(&mut tx, &log, &[&user], &[], orgs)
                .await?;
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
    pub(crate) async fn holder(
        &self,
        tx: &mut Box<dyn Tx>,
        ctx: &ProviderCtx,
        key: &str,
        fields: &UserFields,
    ) -> CoreResult<Option<UserRecord>> {
        let (by_name, by_external_id) = tx
            .find_user_by_name_or_external_id(
                ctx.env(),
                key,
                ctx.id(),
                fields.external_id.as_deref(),
            )
            .await?;
        if by_name.is_some() {
            return Ok(by_name);
        }
        Ok(by_external_id.filter(|u| u.removed_at.is_some() || !u.scim_active))
    }

    /// Brings back a user the provider had turned off or deleted, with the resource it now sent.
    /// `None` when the version moved under us (retry).
    pub(crate) async fn bring_back(
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
        u.resource = resource.into();
        u.user_name = fields.user_name.clone();
        u.external_id = fields.external_id.clone();
        u.display_name = fields.display_name.clone();
        u.scim_active = fields.active;
        u.changed_outside = false;
        u.version += 1;
        u.updated_at = now;
        let transitions = if fields.active {
            lifecycle::turn_on(&mut u, now)
        } else {
            let counted = existing.status == UserStatus::Active && existing.removed_at.is_none();
            self.provider_turn_off(tx, ctx, &mut u, now, counted)
                .await?
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
                Event::UserRestored,
                &u,
                json!({"changes": changes}),
            ));
        } else if !changes.is_empty() {
            log.push(user_entry(
                ctx,
                now,
                Event::UserUpdated,
                &u,
                json!({"changes": changes}),
            ));
        }
        log.extend(transition_entries(ctx, now, &u, &transitions));
        log.extend(placed);
        log.extend(roles_log);
        self.record(tx, &log).await?;
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
        // One statement either way (the user and its groups are read together).
        let mut tx = self.store.read_one().await?;
        let (user, groups) = if with_groups {
            match tx.find_user_and_groups(ctx.env(), uid).await? {
                Some((user, groups)) => (Some(user), Some(groups)),
                None => (None, None),
            }
        } else {
            (tx.find_user(ctx.env(), uid).await?, None)
        };
        let user = user
            .filter(|u| u.provider_id == Some(ctx.id()) && u.removed_at.is_none())
            .ok_or_else(|| user_not_found(id))?;
        Ok(UserView { user, groups })
    }

    /// `PUT /Users/{id}` (RFC 7644 §3.5.1): the body replaces the resource.
    pub async fn replace_user(
        &self,
        ctx: &ProviderCtx,
        id: &str,
        body: &Value,
        if_match: Option<&Tags>,
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
        if_match: Option<&Tags>,
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
    pub(crate) async fn write_user<F>(
        &self,
        ctx: &ProviderCtx,
        id: &str,
        if_match: Option<&Tags>,
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
            check_expected(if_match, existing.version)?;
            let resource = make(&existing)?;
            let fields = UserFields::read(&resource);
            let key = name_key(&fields.user_name);
            if name_key(&existing.user_name) != key {
                if let Some(holder) = tx.find_user_by_name(ctx.env(), &key).await? {
                    return Err(uniqueness_user(&fields.user_name, &holder, ctx));
                }
            }
            let mut u = existing.clone();
            u.resource = resource.into();
            u.user_name = fields.user_name.clone();
            u.external_id = fields.external_id.clone();
            u.display_name = fields.display_name.clone();
            let transitions = match (existing.scim_active, fields.active) {
                (true, false) => {
                    let counted = existing.status == UserStatus::Active;
                    self.provider_turn_off(&mut tx, ctx, &mut u, now, counted)
                        .await?
                }
                (false, true) => lifecycle::turn_on(&mut u, now),
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
            // The organizations are read with the rules, as for a create: the placement looks
            // them up, and the events name the user's organization and its default roles.
            let (rules, orgs) = self.rules_and_orgs(&mut tx, ctx.env(), ctx.id()).await?;
            let actor = Actor::Provider { id: ctx.id() };
            let cause = provisioning_cause(ctx, &actor, now);
            let mut cache = OrgCache::knowing(orgs);
            let (_, placed) = self
                .place_user(&mut tx, &rules, &cause, &mut u, &gids, false, &mut cache)
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
                    Event::UserUpdated,
                    &u,
                    json!({"changes": changes}),
                ));
            }
            log.extend(transition_entries(ctx, now, &u, &transitions));
            log.extend(placed);
            let roles_log = self
                .assign_roles(&mut tx, &rules, &cause, &u, &gids, &current, &mut cache)
                .await?;
            // The user's events are built from the record in hand, with the roles it held
            // before, unless its roles changed or the placement made an organization the tree
            // read above does not hold; then they are read back.
            if roles_log.is_empty() && !log.iter().any(|e| e.action == Event::OrgCreated) {
                let held: Vec<(UserId, crate::ids::RoleId, crate::model::RoleSource)> =
                    current.iter().map(|(r, s)| (u.id, *r, *s)).collect();
                let orgs = cache.into_known();
                let orgs = orgs.as_deref().map(|o| (ctx.env(), o));
                self.record_known(&mut tx, &log, &[&u], &held, orgs).await?;
            } else {
                log.extend(roles_log);
                self.record(&mut tx, &log).await?;
            }
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
        if_match: Option<&Tags>,
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
            check_expected(if_match, existing.version)?;
            let mut u = existing.clone();
            u.removed_at = Some(now);
            let counted = existing.status == UserStatus::Active;
            let transitions = self
                .provider_turn_off(&mut tx, ctx, &mut u, now, counted)
                .await?;
            u.version += 1;
            u.updated_at = now;
            if !tx.update_user(&u, existing.version).await? {
                continue;
            }
            let mut log = vec![user_entry(ctx, now, Event::UserRemoved, &u, json!({}))];
            for (_, g) in tx.groups_of_users(ctx.env(), &[uid]).await? {
                tx.remove_members(ctx.env(), g.group_id, &[uid]).await?;
                log.push(SyncLogEntry {
                    subject_kind: Some("group".into()),
                    subject_id: Some(g.group_id.to_string()),
                    subject_name: Some(g.display.clone()),
                    ..user_entry(ctx, now, Event::GroupMembersRemoved, &u, json!({"members": [{"id": uid.to_string(), "userName": u.user_name}], "count": 1}))
                });
            }
            log.extend(transition_entries(ctx, now, &u, &transitions));
            self.record(&mut tx, &log).await?;
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
        self.list(ctx, params, with_groups).await
    }
}

#[async_trait::async_trait]
impl Listed for UserView {
    type Record = UserRecord;
    const RESOURCE: &'static muster_scim::ResourceTypeDef = &USER_RESOURCE;
    const IS_GROUP: bool = false;
    const JOINED: &'static str = "groups";

    async fn page(
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        order: Order,
        page: Page,
        joined: bool,
    ) -> CoreResult<Vec<UserView>> {
        if !joined {
            let rows = tx.list_users(env, provider, cond, order, page).await?;
            return Self::views(tx, env, rows, false).await;
        }
        // The users and their groups in one statement.
        Ok(tx
            .list_users_with_groups(env, provider, cond, order, page)
            .await?
            .into_iter()
            .map(|(user, groups)| UserView {
                user,
                groups: Some(groups),
            })
            .collect())
    }

    async fn count(
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
    ) -> StoreResult<u64> {
        tx.count_users(env, provider, cond).await
    }

    async fn scan(
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        after: Option<Cursor>,
        limit: u64,
    ) -> StoreResult<Vec<UserRecord>> {
        tx.scan_users(env, provider, cond, after, limit).await
    }

    fn cursor(u: &UserRecord) -> Cursor {
        Cursor {
            created_at: u.created_at,
            id: u.id.uuid(),
        }
    }

    /// The users' groups are read for all of them in one query.
    async fn views(
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
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
        let pairs = tx.groups_of_users(env, &ids).await?;
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

    fn render(m: &Muster, ctx: &ProviderCtx, view: &UserView) -> Map<String, Value> {
        m.render_user(ctx, view.clone())
    }

    fn into_record(self) -> UserRecord {
        self.user
    }
}
