//! Applying the rules to users: resolving the organization a rule names (creating it for the
//! `c42OrgName` and attribute methods), moving the user, setting mapped roles, and the log
//! entries that say why.

use crate::clock::Timestamp;
use crate::error::CoreResult;
use crate::error::StoreError;
use crate::ids::EnvironmentId;
use crate::ids::GroupId;
use crate::ids::OrgId;
use crate::ids::ProviderId;
use crate::ids::RoleId;
use crate::ids::UserId;
use crate::mapping::rules::roles_differ;
use crate::mapping::rules::Aspects;
use crate::mapping::rules::OrgWant;
use crate::mapping::rules::Rules;
use crate::mapping::rules::Why;
use crate::model::name_key as key;
use crate::model::Actor;
use crate::model::Org;
use crate::model::OrgStatus;
use crate::model::Outcome;
use crate::model::RoleSource;
use crate::model::SyncLogEntry;
use crate::model::UserRecord;
use crate::muster::Muster;
use crate::orgs::Orgs;
use crate::store::Tx;
use crate::synclog::event::Event;
use serde::Serialize;
use serde_json::json;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Users read (and, when applying, written) per round of a preview or an apply.
pub(crate) const CHUNK: u64 = 500;

/// Who causes a placement, when and why: what the log entries it writes carry.
pub(crate) struct Cause<'a> {
    pub env: EnvironmentId,
    pub provider: ProviderId,
    pub actor: &'a Actor,
    pub at: Timestamp,
    /// `provisioning`, `group membership`, `role mapping changed`, `re-apply`.
    pub reason: &'static str,
}

impl Cause<'_> {
    pub(crate) fn entry(&self, action: Event, u: &UserRecord, details: Value) -> SyncLogEntry {
        SyncLogEntry {
            environment_id: self.env,
            at: self.at,
            provider_id: Some(self.provider),
            actor: self.actor.clone(),
            action,
            subject_kind: Some("user".into()),
            subject_id: Some(u.id.to_string()),
            subject_name: Some(u.user_name.clone()),
            details,
            outcome: Outcome::Success,
            message: None,
        }
    }
}

/// Organizations looked up while placing users, so each is read once per transaction.
#[derive(Default)]
pub(crate) struct OrgCache {
    by_id: HashMap<OrgId, Option<Org>>,
    by_name: HashMap<(OrgId, String), Option<Org>>,
    /// The environment's organizations when the caller read them already: looked up before
    /// asking the database, without copying them all into the maps above.
    known: Option<Arc<Orgs>>,
    role_names: Option<HashMap<RoleId, String>>,
    group_names: HashMap<GroupId, String>,
}

impl OrgCache {
    /// A cache that knows these organizations already, so placing a user among them reads none.
    /// [`OrgCache::into_known`] gives them back.
    pub(crate) fn knowing(orgs: Arc<Orgs>) -> OrgCache {
        OrgCache {
            known: Some(orgs),
            ..OrgCache::default()
        }
    }

    /// The organizations [`OrgCache::knowing`] was given.
    pub(crate) fn into_known(self) -> Option<Arc<Orgs>> {
        self.known
    }

    /// The reason in words: a winning SCIM group by its displayName (its id if it is gone).
    pub(crate) async fn reason(
        &mut self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        why: Why,
    ) -> CoreResult<String> {
        let (id, priority) = match why {
            Why::Text(s) => return Ok(s),
            Why::Group { id, priority } => (id, priority),
        };
        let name = match self.group_names.get(&id) {
            Some(name) => name.clone(),
            None => {
                let name = tx
                    .find_group(env, id)
                    .await?
                    .map(|g| g.display_name)
                    .unwrap_or_else(|| id.to_string());
                self.group_names.insert(id, name.clone());
                name
            }
        };
        Ok(format!("SCIM group '{name}' (priority {priority})"))
    }

    pub(crate) async fn role_names(
        &mut self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
    ) -> CoreResult<&HashMap<RoleId, String>> {
        if self.role_names.is_none() {
            let names = tx
                .list_roles(env)
                .await?
                .into_iter()
                .map(|r| (r.id, r.name))
                .collect();
            self.role_names = Some(names);
        }
        Ok(self.role_names.get_or_insert_with(HashMap::new))
    }

    pub(crate) async fn org(
        &mut self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        id: OrgId,
    ) -> CoreResult<Option<Org>> {
        if let Some(o) = self.by_id.get(&id) {
            return Ok(o.clone());
        }
        if let Some(o) = self.known.as_ref().and_then(|k| k.by_id.get(&id)) {
            return Ok(Some(o.clone()));
        }
        let o = tx.find_org(env, id).await?;
        self.by_id.insert(id, o.clone());
        Ok(o)
    }

    pub(crate) async fn child(
        &mut self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        parent: OrgId,
        name: &str,
    ) -> CoreResult<Option<Org>> {
        let k = (parent, key(name));
        if let Some(o) = self.by_name.get(&k) {
            return Ok(o.clone());
        }
        let known = self.known.as_ref().and_then(|known| {
            known
                .by_id
                .values()
                .find(|o| o.parent_id == Some(parent) && key(&o.name) == k.1)
        });
        if let Some(o) = known {
            return Ok(Some(o.clone()));
        }
        let o = tx.find_child_org(env, parent, &k.1).await?;
        self.by_name.insert(k, o.clone());
        Ok(o)
    }

    pub(crate) fn learn(&mut self, org: &Org) {
        self.by_id.insert(org.id, Some(org.clone()));
        if let Some(p) = org.parent_id {
            self.by_name.insert((p, key(&org.name)), Some(org.clone()));
        }
    }
}

/// Where the mapping puts a user: an organization that exists, or one it would create.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgTarget {
    /// The organization, when it exists.
    pub id: Option<OrgId>,
    /// Its name.
    pub name: String,
    /// Whether the mapping creates it.
    pub new: bool,
}

/// A resolved organization decision.
pub(crate) struct Placement {
    pub(crate) target: OrgTarget,
    /// Named by [`OrgCache::reason`] when a log entry says it.
    pub(crate) why: Why,
    pub(crate) error: Option<String>,
    /// Log entries (organizations created).
    pub(crate) entries: Vec<SyncLogEntry>,
}

impl Muster {
    /// Resolves what the mapping wants into an organization: creating it when `create` (and
    /// logging that), or describing it when previewing. A target that is missing or deactivated
    /// sends the user to the unmapped-users organization (or the root, if that one is
    /// deactivated too), with an error saying why.
    pub(crate) async fn resolve_org(
        &self,
        tx: &mut Box<dyn Tx>,
        rules: &Rules,
        cause: &Cause<'_>,
        want: OrgWant,
        create: bool,
        cache: &mut OrgCache,
    ) -> CoreResult<Option<Placement>> {
        let env = cause.env;
        let (why, wanted) = match want {
            OrgWant::Keep => return Ok(None),
            OrgWant::Org { id, why, error } => match cache.org(tx, env, id).await? {
                Some(o) if o.status == OrgStatus::Active => {
                    return Ok(Some(Placement {
                        target: OrgTarget {
                            id: Some(o.id),
                            name: o.name,
                            new: false,
                        },
                        why,
                        error,
                        entries: Vec::new(),
                    }))
                }
                Some(o) => (
                    cache.reason(tx, env, why).await?,
                    Err(format!("organization '{}' is deactivated", o.name)),
                ),
                None => (
                    cache.reason(tx, env, why).await?,
                    Err("the mapped organization no longer exists".to_string()),
                ),
            },
            OrgWant::Named { parent, name, why } => {
                let parent_org = cache.org(tx, env, parent).await?;
                match parent_org {
                    Some(p) if p.status == OrgStatus::Active => {
                        match cache.child(tx, env, parent, &name).await? {
                            Some(o) if o.status == OrgStatus::Active => (why, Ok(o)),
                            Some(o) => (
                                why,
                                Err(format!("organization '{}' is deactivated", o.name)),
                            ),
                            None if !create => {
                                return Ok(Some(Placement {
                                    target: OrgTarget {
                                        id: None,
                                        name,
                                        new: true,
                                    },
                                    why: why.into(),
                                    error: None,
                                    entries: Vec::new(),
                                }))
                            }
                            None => {
                                let org = Org {
                                    environment_id: env,
                                    id: OrgId::new(),
                                    parent_id: Some(parent),
                                    name: name.clone(),
                                    status: OrgStatus::Active,
                                    own_default_roles: false,
                                    created_at: cause.at,
                                    updated_at: cause.at,
                                };
                                let (org, inserted) = tx.ensure_child_org(&org).await?;
                                cache.learn(&org);
                                let mut entries = Vec::new();
                                if inserted {
                                    entries.push(SyncLogEntry {
                                        environment_id: env,
                                        at: cause.at,
                                        provider_id: Some(cause.provider),
                                        actor: cause.actor.clone(),
                                        action: Event::OrgCreated,
                                        subject_kind: Some("org".into()),
                                        subject_id: Some(org.id.to_string()),
                                        subject_name: Some(org.name.clone()),
                                        details: json!({"parent": p.name, "by": "organization mapping", "reason": why}),
                                        outcome: Outcome::Success,
                                        message: None,
                                    });
                                }
                                return Ok(Some(Placement {
                                    target: OrgTarget {
                                        id: Some(org.id),
                                        name: org.name,
                                        new: false,
                                    },
                                    why: why.into(),
                                    error: None,
                                    entries,
                                }));
                            }
                        }
                    }
                    Some(p) => (
                        why,
                        Err(format!(
                            "the parent organization '{}' is deactivated",
                            p.name
                        )),
                    ),
                    None => (
                        why,
                        Err("the parent organization no longer exists".to_string()),
                    ),
                }
            }
        };
        let problem = match wanted {
            Ok(o) => {
                return Ok(Some(Placement {
                    target: OrgTarget {
                        id: Some(o.id),
                        name: o.name,
                        new: false,
                    },
                    why: why.into(),
                    error: None,
                    entries: Vec::new(),
                }))
            }
            Err(p) => p,
        };
        let mut fallback = cache.org(tx, env, rules.unmapped()).await?;
        if fallback
            .as_ref()
            .is_none_or(|o| o.status != OrgStatus::Active)
        {
            fallback = cache.org(tx, env, rules.root).await?;
        }
        let fallback = fallback.ok_or_else(|| {
            StoreError::Corrupt("the environment has no root organization".into())
        })?;
        Ok(Some(Placement {
            target: OrgTarget {
                id: Some(fallback.id),
                name: fallback.name.clone(),
                new: false,
            },
            why: Why::Text(format!("{why}; unmapped users instead")),
            error: Some(format!("{problem}: placed in '{}'", fallback.name)),
            entries: Vec::new(),
        }))
    }

    /// Places a user by the organization mapping: sets `u.org_id` (the caller saves the user) and
    /// returns the log entries (organizations created, the move, mapping errors) and the
    /// organization's name. `None` when the mapping does not decide.
    #[allow(clippy::too_many_arguments)] // the transaction, the rules, and one user's facts
    pub(crate) async fn place_user(
        &self,
        tx: &mut Box<dyn Tx>,
        rules: &Rules,
        cause: &Cause<'_>,
        u: &mut UserRecord,
        groups: &[GroupId],
        creating: bool,
        cache: &mut OrgCache,
    ) -> CoreResult<(Option<String>, Vec<SyncLogEntry>)> {
        let want = rules.want_org(&u.resource, groups, creating);
        let Some(p) = self
            .resolve_org(tx, rules, cause, want, true, cache)
            .await?
        else {
            return Ok((None, Vec::new()));
        };
        let mut entries = p.entries;
        if let Some(err) = &p.error {
            entries.push(SyncLogEntry {
                outcome: Outcome::Error,
                message: Some(err.clone()),
                ..cause.entry(
                    Event::UserMappingFailed,
                    u,
                    json!({"reason": cache.reason(tx, cause.env, p.why.clone()).await?}),
                )
            });
        }
        let Some(target) = p.target.id else {
            return Ok((None, entries));
        };
        if !creating && u.org_id != target {
            let before = cache
                .org(tx, cause.env, u.org_id)
                .await?
                .map(|o| o.name)
                .unwrap_or_default();
            let why = cache.reason(tx, cause.env, p.why).await?;
            entries.push(cause.entry(
                Event::UserMoved,
                u,
                json!({"before": before, "after": p.target.name, "reason": why, "cause": cause.reason}),
            ));
        }
        u.org_id = target;
        Ok((Some(p.target.name), entries))
    }

    /// Sets a saved user's roles by role mapping, given the explicit roles it holds now.
    /// Nothing when the provider maps no roles or the roles are already right.
    #[allow(clippy::too_many_arguments)] // the transaction, the rules, and one user's facts
    pub(crate) async fn assign_roles(
        &self,
        tx: &mut Box<dyn Tx>,
        rules: &Rules,
        cause: &Cause<'_>,
        u: &UserRecord,
        groups: &[GroupId],
        current: &[(RoleId, RoleSource)],
        cache: &mut OrgCache,
    ) -> CoreResult<Vec<SyncLogEntry>> {
        let Some((target, entry)) = self
            .role_change(tx, rules, cause, u, groups, current, cache)
            .await?
        else {
            return Ok(Vec::new());
        };
        tx.set_user_roles(cause.env, u.id, &target, RoleSource::Mapping)
            .await?;
        Ok(vec![entry])
    }

    /// The roles role mapping gives a user, and the log entry saying so, when they differ from
    /// the explicit roles it holds now. Writes nothing.
    #[allow(clippy::too_many_arguments)] // the transaction, the rules, and one user's facts
    pub(crate) async fn role_change(
        &self,
        tx: &mut Box<dyn Tx>,
        rules: &Rules,
        cause: &Cause<'_>,
        u: &UserRecord,
        groups: &[GroupId],
        current: &[(RoleId, RoleSource)],
        cache: &mut OrgCache,
    ) -> CoreResult<Option<(Vec<RoleId>, SyncLogEntry)>> {
        let Some(target) = rules.want_roles(groups, current) else {
            return Ok(None);
        };
        if !roles_differ(current, &target) {
            return Ok(None);
        }
        let catalog = cache.role_names(tx, cause.env).await?;
        let names = |ids: &mut dyn Iterator<Item = RoleId>| -> Vec<String> {
            let mut v: Vec<String> = ids.filter_map(|r| catalog.get(&r).cloned()).collect();
            v.sort();
            v
        };
        let entry = cause.entry(
            Event::UserRolesChanged,
            u,
            json!({
                "before": names(&mut current.iter().map(|(r, _)| *r)),
                "after": names(&mut target.iter().copied()),
                "source": "role mapping",
                "cause": cause.reason,
            }),
        );
        Ok(Some((target, entry)))
    }

    /// Re-evaluates users of the provider whose group memberships (or whose groups' mappings)
    /// changed, for the given aspects. Users whose organization changes get a new version.
    /// `None` when one of them changed under us (the caller retries its transaction).
    pub(crate) async fn reevaluate_users(
        &self,
        tx: &mut Box<dyn Tx>,
        rules: &Rules,
        cause: &Cause<'_>,
        ids: &[UserId],
        aspects: Aspects,
    ) -> CoreResult<Option<Vec<SyncLogEntry>>> {
        let mut log = Vec::new();
        if !aspects.any() || ids.is_empty() {
            return Ok(Some(log));
        }
        let mut cache = OrgCache::default();
        for chunk in ids.chunks(CHUNK as usize) {
            let users: Vec<UserRecord> = tx
                .users_by_ids(cause.env, chunk)
                .await?
                .into_iter()
                .filter(|u| u.provider_id == Some(cause.provider) && u.removed_at.is_none())
                .collect();
            let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
            let (groups, roles) = self
                .memberships_and_roles(tx, cause.env, &ids, aspects.roles)
                .await?;
            for u in users {
                let g = groups.get(&u.id).map(Vec::as_slice).unwrap_or_default();
                let mut changed = u.clone();
                if aspects.org {
                    let (_, entries) = self
                        .place_user(tx, rules, cause, &mut changed, g, false, &mut cache)
                        .await?;
                    log.extend(entries);
                }
                if changed.org_id != u.org_id {
                    if !tx
                        .move_user(cause.env, u.id, changed.org_id, u.version, cause.at)
                        .await?
                    {
                        return Ok(None);
                    }
                    changed.version += 1;
                    changed.updated_at = cause.at;
                }
                if aspects.roles {
                    let current = roles.get(&u.id).map(Vec::as_slice).unwrap_or_default();
                    log.extend(
                        self.assign_roles(tx, rules, cause, &changed, g, current, &mut cache)
                            .await?,
                    );
                }
            }
        }
        Ok(Some(log))
    }

    /// The groups of each user, and (if asked) the explicit roles each holds.
    #[allow(clippy::type_complexity)]
    pub(crate) async fn memberships_and_roles(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        ids: &[UserId],
        with_roles: bool,
    ) -> CoreResult<(
        HashMap<UserId, Vec<GroupId>>,
        HashMap<UserId, Vec<(RoleId, RoleSource)>>,
    )> {
        let mut groups: HashMap<UserId, Vec<GroupId>> = HashMap::new();
        for (u, g) in tx.groups_of_users(env, ids).await? {
            groups.entry(u).or_default().push(g.group_id);
        }
        let mut roles: HashMap<UserId, Vec<(RoleId, RoleSource)>> = HashMap::new();
        if with_roles {
            for (u, r, s) in tx.user_roles(env, ids).await? {
                roles.entry(u).or_default().push((r, s));
            }
        }
        Ok((groups, roles))
    }

    /// A provider's mapping rules and its environment's organizations, read in `tx` in one
    /// statement: what creating a user needs before placing it. The organizations are kept
    /// between calls with the token the store gives their tree, and read again only when the
    /// tree has changed since (in any process: the token lives in the database).
    pub(crate) async fn rules_and_orgs(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> CoreResult<(crate::mapping::rules::Rules, Arc<Orgs>)> {
        let kept = self
            .memo
            .trees
            .read()
            .ok()
            .and_then(|t| t.get(&env).cloned());
        let (read, tree) = tx
            .rules_and_org_tree(env, provider, kept.as_ref().map(|(v, _)| *v))
            .await?;
        let orgs = match (tree.tree, kept) {
            (None, Some((_, orgs))) => orgs,
            (fresh, _) => {
                let orgs = Arc::new(Orgs::from_tree(fresh.unwrap_or_default()));
                if let (Some(version), Ok(mut t)) = (tree.version, self.memo.trees.write()) {
                    t.insert(env, (version, orgs.clone()));
                }
                orgs
            }
        };
        let root = orgs.root().ok_or_else(no_root)?;
        let rules = crate::mapping::rules::Rules::from_read(tx, env, provider, root, read).await?;
        Ok((rules, orgs))
    }

    /// A provider's mapping rules, read in `tx`.
    pub(crate) async fn rules(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> CoreResult<crate::mapping::rules::Rules> {
        let known = self
            .memo
            .roots
            .read()
            .ok()
            .and_then(|r| r.get(&env).copied());
        let root = match known {
            Some(root) => root,
            None => {
                let root = tx.find_root_org(env).await?.ok_or_else(no_root)?.id;
                if let Ok(mut r) = self.memo.roots.write() {
                    r.insert(env, root);
                }
                root
            }
        };
        crate::mapping::rules::Rules::load(tx, env, provider, root).await
    }
}

/// Every environment is created with its root organization; without one its data is damaged.
fn no_root() -> StoreError {
    StoreError::Corrupt("the environment has no root organization".into())
}
