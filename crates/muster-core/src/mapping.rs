//! Organization mapping and role mapping: where a provider's users go, and which roles they hold
//! (PRODUCT.md "Organization mapping" and "Role mapping"; the administrator guide, Steps 6 and 7).
//!
//! A provider's [`Rules`] are read in the transaction of each change they apply to, so a change
//! and the placement it causes commit together. They apply:
//! - when a provider creates a user (every method places it) or updates one (methods other than
//!   *single organization* place it again; role mapping, when the provider uses it, sets its
//!   roles), overriding what an administrator changed;
//! - when group membership changes, to exactly the members added or removed, and only for the
//!   aspects that group takes part in;
//! - when a role mapping loses roles (or is deleted), to the group's members, so that a role
//!   taken away is taken away at once;
//! - on [`Muster::apply_mappings`], which performs what [`Muster::preview_mappings`] lists.
//!
//! Changing a mapping otherwise moves nobody by itself: the administrator previews, then applies.

use std::collections::{BTreeSet, HashMap, HashSet};

use muster_scim::schema::{MUSTER_USER_SCHEMA, USER_RESOURCE};
use muster_scim::select::Selector;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::directory::check_org_name;
use crate::error::{CoreError, CoreResult, StoreError};
use crate::ids::{EnvironmentId, GroupId, GroupMappingId, OrgId, ProviderId, RoleId, UserId};
use crate::model::{
    Actor, GroupOrgMapping, Org, OrgMapping, OrgMethod, OrgStatus, Outcome, Provider, Role,
    RoleSource, SyncLogEntry, UserRecord,
};
use crate::service::Muster;
use crate::store::{Cursor, Tx};

/// Users read (and, when applying, written) per round of a preview or an apply.
const CHUNK: u64 = 500;
/// The most changes a preview lists by default; the totals always count every change.
pub const PREVIEW_LIMIT: usize = 1000;

/// The path method 2 reads: `c42OrgName` in Muster's extension, where a top-level `c42OrgName`
/// is kept too.
fn c42_path() -> String {
    format!("{MUSTER_USER_SCHEMA}:c42OrgName")
}

use crate::provisioning::name_key as key;

/// A provider's mappings, read in one transaction.
pub(crate) struct Rules {
    root: OrgId,
    org: Option<OrgMapping>,
    selector: Option<Selector>,
    /// Group -> (priority, organization), method `groups` only.
    group_org: HashMap<GroupId, (i64, OrgId)>,
    /// Group -> its roles.
    group_roles: HashMap<GroupId, Vec<RoleId>>,
}

/// Which parts of a user's placement a change can affect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Aspects {
    pub org: bool,
    pub roles: bool,
}

impl Aspects {
    pub(crate) fn any(self) -> bool {
        self.org || self.roles
    }
}

/// What the mapping wants for a user's organization.
#[derive(Debug, Clone)]
enum OrgWant {
    /// The mapping does not decide (no method, or *single organization* after creation).
    Keep,
    /// An existing organization.
    Org {
        id: OrgId,
        why: String,
        /// Set when the user lands here because the mapping could not place them.
        error: Option<String>,
    },
    /// The organization of this name under `parent`, created if missing.
    Named {
        parent: OrgId,
        name: String,
        why: String,
    },
}

impl Rules {
    /// Reads a provider's mappings.
    pub(crate) async fn load(
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        root: OrgId,
    ) -> CoreResult<Rules> {
        let org = tx.org_mapping(env, provider).await?;
        let selector = match org.as_ref().map(|m| (m.method, m.attribute.as_deref())) {
            Some((OrgMethod::C42OrgName, _)) => Selector::parse(&USER_RESOURCE, &c42_path()).ok(),
            Some((OrgMethod::Attribute, Some(path))) => Selector::parse(&USER_RESOURCE, path).ok(),
            _ => None,
        };
        let mut group_org = HashMap::new();
        if org.as_ref().is_some_and(|m| m.method == OrgMethod::Groups) {
            for entry in tx.group_org_mappings(env, provider).await? {
                for g in &entry.groups {
                    group_org.insert(*g, (entry.priority, entry.org_id));
                }
            }
        }
        let mut group_roles: HashMap<GroupId, Vec<RoleId>> = HashMap::new();
        for (g, r) in tx.role_mappings(env, provider).await? {
            group_roles.entry(g).or_default().push(r);
        }
        Ok(Rules {
            root,
            org,
            selector,
            group_org,
            group_roles,
        })
    }

    /// The root organization.
    pub(crate) fn root(&self) -> OrgId {
        self.root
    }

    fn unmapped(&self) -> OrgId {
        self.org
            .as_ref()
            .and_then(|m| m.unmapped_org_id)
            .unwrap_or(self.root)
    }

    /// What a change to these groups' memberships can affect.
    pub(crate) fn aspects_of(&self, groups: &[GroupId]) -> Aspects {
        Aspects {
            org: groups.iter().any(|g| self.group_org.contains_key(g)),
            roles: groups.iter().any(|g| self.group_roles.contains_key(g)),
        }
    }

    /// Whether role mapping decides this provider's users' roles.
    pub(crate) fn maps_roles(&self) -> bool {
        !self.group_roles.is_empty()
    }

    fn want_org(
        &self,
        resource: &Map<String, Value>,
        groups: &[GroupId],
        creating: bool,
    ) -> OrgWant {
        let Some(m) = &self.org else {
            return if creating {
                OrgWant::Org {
                    id: self.root,
                    why: "no organization mapping: the default organization".into(),
                    error: None,
                }
            } else {
                OrgWant::Keep
            };
        };
        match m.method {
            OrgMethod::Single if creating => OrgWant::Org {
                id: m.org_id.unwrap_or(self.root),
                why: "single organization".into(),
                error: None,
            },
            OrgMethod::Single => OrgWant::Keep,
            OrgMethod::C42OrgName | OrgMethod::Attribute => {
                let attr = match m.method {
                    OrgMethod::C42OrgName => "c42OrgName".to_string(),
                    _ => m.attribute.clone().unwrap_or_default(),
                };
                let value = self.selector.as_ref().and_then(|s| s.select(resource));
                match value {
                    None => OrgWant::Org {
                        id: self.unmapped(),
                        why: format!("no '{attr}' value: unmapped users"),
                        error: None,
                    },
                    Some(v) => match check_org_name(&v) {
                        Ok(name) => OrgWant::Named {
                            parent: m.parent_org_id.unwrap_or(self.root),
                            why: format!("'{attr}' is '{name}'"),
                            name,
                        },
                        Err(e) => OrgWant::Org {
                            id: self.unmapped(),
                            why: format!(
                                "'{attr}' is not a valid organization name: unmapped users"
                            ),
                            error: Some(format!("cannot map '{attr}' value: {e}")),
                        },
                    },
                }
            }
            OrgMethod::Groups => {
                let best = groups
                    .iter()
                    .filter_map(|g| self.group_org.get(g).map(|(p, o)| (*p, *g, *o)))
                    .min_by_key(|(p, g, _)| (*p, *g));
                match best {
                    Some((p, g, org)) => OrgWant::Org {
                        id: org,
                        why: format!("SCIM group {g} (priority {p})"),
                        error: None,
                    },
                    None => OrgWant::Org {
                        id: self.unmapped(),
                        why: "in no mapped SCIM group: unmapped users".into(),
                        error: None,
                    },
                }
            }
        }
    }

    /// The explicit roles role mapping gives a member of these groups (sorted), given the roles
    /// it holds now. `None` when role mapping has no say: the provider maps no roles and the user
    /// holds none by mapping (an administrator's roles stay). A user who holds roles by a mapping
    /// that is gone loses them (an empty list: its organization's defaults apply).
    pub(crate) fn want_roles(
        &self,
        groups: &[GroupId],
        current: &[(RoleId, RoleSource)],
    ) -> Option<Vec<RoleId>> {
        if !self.maps_roles() {
            let by_mapping = current.iter().any(|(_, s)| *s == RoleSource::Mapping);
            return by_mapping.then(Vec::new);
        }
        let set: BTreeSet<RoleId> = groups
            .iter()
            .filter_map(|g| self.group_roles.get(g))
            .flatten()
            .copied()
            .collect();
        Some(set.into_iter().collect())
    }
}

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
    fn entry(&self, action: &str, u: &UserRecord, details: Value) -> SyncLogEntry {
        SyncLogEntry {
            environment_id: self.env,
            at: self.at,
            provider_id: Some(self.provider),
            actor: self.actor.clone(),
            action: action.into(),
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
    role_names: Option<HashMap<RoleId, String>>,
}

impl OrgCache {
    async fn role_names(
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

    async fn org(
        &mut self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        id: OrgId,
    ) -> CoreResult<Option<Org>> {
        if let Some(o) = self.by_id.get(&id) {
            return Ok(o.clone());
        }
        let o = tx.find_org(env, id).await?;
        self.by_id.insert(id, o.clone());
        Ok(o)
    }

    async fn child(
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
        let o = tx.find_child_org(env, parent, &k.1).await?;
        self.by_name.insert(k, o.clone());
        Ok(o)
    }

    fn learn(&mut self, org: &Org) {
        self.by_id.insert(org.id, Some(org.clone()));
        if let Some(p) = org.parent_id {
            self.by_name.insert((p, key(&org.name)), Some(org.clone()));
        }
    }
}

/// Where the mapping puts a user: an organization that exists, or one it would create.
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
struct Placement {
    target: OrgTarget,
    why: String,
    error: Option<String>,
    /// Log entries (organizations created).
    entries: Vec<SyncLogEntry>,
}

impl Muster {
    /// Resolves what the mapping wants into an organization: creating it when `create` (and
    /// logging that), or describing it when previewing. A target that is missing or deactivated
    /// sends the user to the unmapped-users organization (or the root, if that one is
    /// deactivated too), with an error saying why.
    async fn resolve_org(
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
                    why,
                    Err(format!("organization '{}' is deactivated", o.name)),
                ),
                None => (
                    why,
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
                                    why,
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
                                        action: "org.created".into(),
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
                                    why,
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
                    why,
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
            why: format!("{why}; unmapped users instead"),
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
                ..cause.entry("user.mapping_failed", u, json!({"reason": p.why}))
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
            entries.push(cause.entry(
                "user.moved",
                u,
                json!({"before": before, "after": p.target.name, "reason": p.why, "cause": cause.reason}),
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
    async fn role_change(
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
            "user.roles_changed",
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
    async fn memberships_and_roles(
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
}

/// Whether a user's explicit roles must change to be exactly `target`, set by mapping.
pub(crate) fn roles_differ(current: &[(RoleId, RoleSource)], target: &[RoleId]) -> bool {
    let now: BTreeSet<RoleId> = current.iter().map(|(r, _)| *r).collect();
    let want: BTreeSet<RoleId> = target.iter().copied().collect();
    now != want || current.iter().any(|(_, s)| *s != RoleSource::Mapping)
}

// ---------------------------------------------------------------------------------------------
// Administration: choosing the method, group and role mappings, preview and apply.

/// What an administrator sets as a provider's organization mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgMappingInput {
    /// `single`, `c42_org_name`, `attribute` or `groups`.
    pub method: Option<OrgMethod>,
    /// `single`: the organization.
    pub org_id: Option<OrgId>,
    /// `attribute`: the SCIM attribute path.
    pub attribute: Option<String>,
    /// `c42_org_name`, `attribute`: where created organizations go (default: the root).
    pub parent_org_id: Option<OrgId>,
    /// `c42_org_name`, `attribute`, `groups`: where unmapped users go (default: the root).
    pub unmapped_org_id: Option<OrgId>,
}

/// A group as mapping screens show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSummary {
    /// Its id.
    pub id: GroupId,
    /// Its displayName.
    pub display_name: String,
    /// How many members it has.
    pub members: u64,
}

/// An organization as mapping screens show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgSummary {
    /// Its id.
    pub id: OrgId,
    /// Its name.
    pub name: String,
}

/// One entry of the group-to-organization mapping, with names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMappingView {
    /// Its id.
    pub id: GroupMappingId,
    /// 1 is the highest priority.
    pub priority: i64,
    /// The organization.
    pub org: OrgSummary,
    /// Its groups.
    pub groups: Vec<GroupSummary>,
}

/// A group's role mapping, with names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleMappingView {
    /// The group.
    pub group: GroupSummary,
    /// Its roles, by name.
    pub roles: Vec<RoleSummary>,
}

/// A role as mapping screens show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleSummary {
    /// Its id.
    pub id: RoleId,
    /// Its name.
    pub name: String,
}

/// Whether every SCIM group of the provider is mapped (the administrator guide's messages).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingStatus {
    /// `no_groups`, `all_mapped` or `unmapped_groups`.
    pub state: &'static str,
    /// What the console says.
    pub message: String,
    /// The groups not mapped yet.
    pub unmapped_groups: Vec<GroupSummary>,
}

impl MappingStatus {
    fn of(groups: &[GroupSummary], mapped: &HashSet<GroupId>) -> MappingStatus {
        if groups.is_empty() {
            return MappingStatus {
                state: "no_groups",
                message: "There are no SCIM groups available".into(),
                unmapped_groups: Vec::new(),
            };
        }
        let unmapped: Vec<GroupSummary> = groups
            .iter()
            .filter(|g| !mapped.contains(&g.id))
            .cloned()
            .collect();
        if unmapped.is_empty() {
            MappingStatus {
                state: "all_mapped",
                message: "All SCIM groups are mapped".into(),
                unmapped_groups: unmapped,
            }
        } else {
            MappingStatus {
                state: "unmapped_groups",
                message: format!(
                    "{} SCIM group(s) are not mapped: {}",
                    unmapped.len(),
                    unmapped
                        .iter()
                        .take(20)
                        .map(|g| g.display_name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                unmapped_groups: unmapped,
            }
        }
    }
}

/// A provider's mappings as administrators see them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingView {
    /// The organization mapping method, if chosen.
    pub org_mapping: Option<OrgMappingView>,
    /// Method `groups`: its entries, by priority.
    pub group_mappings: Vec<GroupMappingView>,
    /// Whether every group is in a group mapping entry.
    pub group_mapping_status: MappingStatus,
    /// Role mappings, by group name.
    pub role_mappings: Vec<RoleMappingView>,
    /// Whether every group has a role mapping.
    pub role_mapping_status: MappingStatus,
    /// Groups with no role mapping yet: what "Add Role Mapping" offers.
    pub groups_without_role_mapping: Vec<GroupSummary>,
}

/// The organization mapping method, with names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgMappingView {
    /// The method.
    pub method: OrgMethod,
    /// `single`: the organization.
    pub org: Option<OrgSummary>,
    /// `attribute`: the path.
    pub attribute: Option<String>,
    /// Where created organizations go.
    pub parent_org: Option<OrgSummary>,
    /// Where unmapped users go.
    pub unmapped_org: Option<OrgSummary>,
    /// When it was set (RFC 3339).
    pub updated_at: String,
}

/// One user a re-apply would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedChange {
    /// The user.
    pub user_id: UserId,
    /// Its userName.
    pub user_name: String,
    /// Its organization now.
    pub org_from: OrgSummary,
    /// Where the mapping puts it, if elsewhere.
    pub org_to: Option<OrgTarget>,
    /// Its explicit roles now (empty: its organization's defaults), by name.
    pub roles_from: Vec<String>,
    /// The roles mapping gives it, if different (empty: its organization's defaults).
    pub roles_to: Option<Vec<String>>,
}

/// What re-applying a provider's mappings would change.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// The provider's users examined.
    pub users: u64,
    /// Users whose organization or roles would change.
    pub changed: u64,
    /// Of them, users who would move.
    pub org_changes: u64,
    /// Of them, users whose roles would change.
    pub role_changes: u64,
    /// Organizations the apply would create.
    pub orgs_to_create: Vec<String>,
    /// The changes, by userName (the first `limit`).
    pub changes: Vec<PlannedChange>,
    /// Identifies this exact list of changes: an apply given it refuses to run if the list is
    /// no longer the same.
    pub digest: String,
}

/// What an apply did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Users examined.
    pub users: u64,
    /// Users moved to another organization.
    pub moved: u64,
    /// Users whose roles changed.
    pub roles_changed: u64,
    /// Organizations created.
    pub orgs_created: u64,
}

fn provider_entry(
    env: EnvironmentId,
    at: Timestamp,
    actor: &Actor,
    p: &Provider,
    action: &str,
    details: Value,
) -> SyncLogEntry {
    SyncLogEntry {
        environment_id: env,
        at,
        provider_id: Some(p.id),
        actor: actor.clone(),
        action: action.into(),
        subject_kind: Some("provider".into()),
        subject_id: Some(p.id.to_string()),
        subject_name: Some(p.name.clone()),
        details,
        outcome: Outcome::Success,
        message: None,
    }
}

impl Muster {
    async fn mapping_provider(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        id: ProviderId,
    ) -> CoreResult<Provider> {
        tx.find_provider(env, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no provider with id {id}")))
    }

    async fn active_org(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        id: OrgId,
        what: &str,
    ) -> CoreResult<Org> {
        let org = tx
            .find_org(env, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("{what}: no organization with id {id}")))?;
        if org.status != OrgStatus::Active {
            return Err(CoreError::Invalid(format!(
                "{what}: '{}' is deactivated",
                org.name
            )));
        }
        Ok(org)
    }

    /// Every group of the provider, with member counts, by name.
    async fn provider_groups(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> CoreResult<Vec<GroupSummary>> {
        let mut out: Vec<GroupSummary> = tx
            .group_summaries(env, provider)
            .await?
            .into_iter()
            .map(|(id, display_name, members)| GroupSummary {
                id,
                display_name,
                members,
            })
            .collect();
        out.sort_by_key(|a| key(&a.display_name));
        Ok(out)
    }

    /// A provider's mappings, with the status messages of the administrator guide.
    pub async fn mapping_view(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> CoreResult<MappingView> {
        let mut tx = self.store.read().await?;
        self.mapping_provider(&mut tx, env, provider).await?;
        self.mapping_view_in(&mut tx, env, provider).await
    }

    async fn mapping_view_in(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> CoreResult<MappingView> {
        let groups = self.provider_groups(tx, env, provider).await?;
        let by_id: HashMap<GroupId, &GroupSummary> = groups.iter().map(|g| (g.id, g)).collect();
        let orgs: HashMap<OrgId, String> = tx
            .list_orgs(env)
            .await?
            .into_iter()
            .map(|o| (o.id, o.name))
            .collect();
        let org_summary = |id: Option<OrgId>| {
            id.map(|id| OrgSummary {
                id,
                name: orgs.get(&id).cloned().unwrap_or_default(),
            })
        };
        let org_mapping = tx
            .org_mapping(env, provider)
            .await?
            .map(|m| OrgMappingView {
                method: m.method,
                org: org_summary(m.org_id),
                attribute: m.attribute.clone(),
                parent_org: org_summary(m.parent_org_id),
                unmapped_org: org_summary(m.unmapped_org_id),
                updated_at: m.updated_at.to_rfc3339(),
            });
        let entries = tx.group_org_mappings(env, provider).await?;
        let in_entries: HashSet<GroupId> = entries.iter().flat_map(|e| e.groups.clone()).collect();
        let group_mappings = entries
            .iter()
            .map(|e| GroupMappingView {
                id: e.id,
                priority: e.priority,
                org: OrgSummary {
                    id: e.org_id,
                    name: orgs.get(&e.org_id).cloned().unwrap_or_default(),
                },
                groups: e
                    .groups
                    .iter()
                    .filter_map(|g| by_id.get(g).map(|s| (*s).clone()))
                    .collect(),
            })
            .collect();
        let catalog: HashMap<RoleId, Role> = tx
            .list_roles(env)
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        let mut role_map: HashMap<GroupId, Vec<RoleSummary>> = HashMap::new();
        for (g, r) in tx.role_mappings(env, provider).await? {
            if let Some(role) = catalog.get(&r) {
                role_map.entry(g).or_default().push(RoleSummary {
                    id: role.id,
                    name: role.name.clone(),
                });
            }
        }
        let role_mapped: HashSet<GroupId> = role_map.keys().copied().collect();
        let mut role_mappings: Vec<RoleMappingView> = role_map
            .into_iter()
            .filter_map(|(g, mut roles)| {
                roles.sort_by(|a, b| a.name.cmp(&b.name));
                by_id.get(&g).map(|s| RoleMappingView {
                    group: (*s).clone(),
                    roles,
                })
            })
            .collect();
        role_mappings.sort_by_key(|a| key(&a.group.display_name));
        Ok(MappingView {
            org_mapping,
            group_mappings,
            group_mapping_status: MappingStatus::of(&groups, &in_entries),
            role_mapping_status: MappingStatus::of(&groups, &role_mapped),
            groups_without_role_mapping: groups
                .iter()
                .filter(|g| !role_mapped.contains(&g.id))
                .cloned()
                .collect(),
            role_mappings,
        })
    }

    /// Chooses a provider's organization mapping method. Existing users stay where they are
    /// until their next update or a re-apply.
    pub async fn set_org_mapping(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        input: &OrgMappingInput,
        actor: &Actor,
    ) -> CoreResult<MappingView> {
        let method = input.method.ok_or_else(|| {
            CoreError::Invalid(
                "method is required: single, c42_org_name, attribute or groups".into(),
            )
        })?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let p = self.mapping_provider(&mut tx, env, provider).await?;
        let mut m = OrgMapping {
            environment_id: env,
            provider_id: provider,
            method,
            org_id: None,
            attribute: None,
            parent_org_id: None,
            unmapped_org_id: None,
            updated_at: now,
        };
        match method {
            OrgMethod::Single => {
                let id = input.org_id.ok_or_else(|| {
                    CoreError::Invalid("single organization mapping needs orgId".into())
                })?;
                m.org_id = Some(self.active_org(&mut tx, env, id, "orgId").await?.id);
            }
            OrgMethod::C42OrgName | OrgMethod::Attribute | OrgMethod::Groups => {
                if method == OrgMethod::Attribute {
                    let path = input.attribute.as_deref().unwrap_or_default();
                    let sel = Selector::parse(&USER_RESOURCE, path)
                        .map_err(|e| CoreError::Invalid(format!("attribute: {}", e.detail)))?;
                    m.attribute = Some(sel.as_str().to_string());
                }
                if method != OrgMethod::Groups {
                    if let Some(id) = input.parent_org_id {
                        m.parent_org_id =
                            Some(self.active_org(&mut tx, env, id, "parentOrgId").await?.id);
                    }
                }
                if let Some(id) = input.unmapped_org_id {
                    m.unmapped_org_id =
                        Some(self.active_org(&mut tx, env, id, "unmappedOrgId").await?.id);
                }
            }
        }
        tx.put_org_mapping(&m).await?;
        let entry = provider_entry(
            env,
            now,
            actor,
            &p,
            "mapping.org_method_set",
            json!({
                "method": method.as_str(),
                "orgId": m.org_id,
                "attribute": m.attribute,
                "parentOrgId": m.parent_org_id,
                "unmappedOrgId": m.unmapped_org_id,
            }),
        );
        self.log_and_view(tx, env, provider, entry).await
    }

    /// Checks the groups of a group mapping entry: some, all of the provider, none in another
    /// entry.
    async fn check_entry_groups(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        groups: &[GroupId],
        entries: &[GroupOrgMapping],
        except: Option<GroupMappingId>,
    ) -> CoreResult<Vec<GroupId>> {
        let mut out: Vec<GroupId> = Vec::new();
        for g in groups {
            if !out.contains(g) {
                out.push(*g);
            }
        }
        if out.is_empty() {
            return Err(CoreError::Invalid(
                "select at least one SCIM group (groupIds)".into(),
            ));
        }
        for g in &out {
            let group = tx
                .find_group(env, *g)
                .await?
                .filter(|x| x.provider_id == provider)
                .ok_or_else(|| {
                    CoreError::NotFound(format!("this provider has no SCIM group with id {g}"))
                })?;
            if entries
                .iter()
                .any(|e| Some(e.id) != except && e.groups.contains(g))
            {
                return Err(CoreError::Conflict(format!(
                    "the SCIM group '{}' is already in another organization mapping",
                    group.display_name
                )));
            }
        }
        Ok(out)
    }

    /// Adds a group-to-organization entry, at the lowest priority.
    pub async fn add_group_mapping(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        groups: &[GroupId],
        org: OrgId,
        actor: &Actor,
    ) -> CoreResult<MappingView> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let p = self.mapping_provider(&mut tx, env, provider).await?;
        let entries = tx.group_org_mappings(env, provider).await?;
        let groups = self
            .check_entry_groups(&mut tx, env, provider, groups, &entries, None)
            .await?;
        let org = self.active_org(&mut tx, env, org, "orgId").await?;
        let entry = GroupOrgMapping {
            environment_id: env,
            id: GroupMappingId::new(),
            provider_id: provider,
            org_id: org.id,
            priority: entries.iter().map(|e| e.priority).max().unwrap_or(0) + 1,
            groups,
            created_at: now,
        };
        tx.insert_group_org_mapping(&entry).await?;
        let entry = provider_entry(
            env,
            now,
            actor,
            &p,
            "mapping.group_mapping_added",
            json!({"id": entry.id, "org": org.name, "groups": entry.groups, "priority": entry.priority}),
        );
        self.log_and_view(tx, env, provider, entry).await
    }

    /// Changes a group-to-organization entry's groups and organization.
    pub async fn update_group_mapping(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        id: GroupMappingId,
        groups: &[GroupId],
        org: OrgId,
        actor: &Actor,
    ) -> CoreResult<MappingView> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let p = self.mapping_provider(&mut tx, env, provider).await?;
        let entries = tx.group_org_mappings(env, provider).await?;
        let mut entry = entries
            .iter()
            .find(|e| e.id == id)
            .cloned()
            .ok_or_else(|| CoreError::NotFound(format!("no organization mapping entry {id}")))?;
        entry.groups = self
            .check_entry_groups(&mut tx, env, provider, groups, &entries, Some(id))
            .await?;
        let org = self.active_org(&mut tx, env, org, "orgId").await?;
        entry.org_id = org.id;
        tx.update_group_org_mapping(&entry).await?;
        let entry = provider_entry(
            env,
            now,
            actor,
            &p,
            "mapping.group_mapping_updated",
            json!({"id": id, "org": org.name, "groups": entry.groups, "priority": entry.priority}),
        );
        self.log_and_view(tx, env, provider, entry).await
    }

    /// Deletes a group-to-organization entry; the others keep their order.
    pub async fn delete_group_mapping(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        id: GroupMappingId,
        actor: &Actor,
    ) -> CoreResult<MappingView> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let p = self.mapping_provider(&mut tx, env, provider).await?;
        let entries = tx.group_org_mappings(env, provider).await?;
        if !entries.iter().any(|e| e.id == id) {
            return Err(CoreError::NotFound(format!(
                "no organization mapping entry {id}"
            )));
        }
        tx.delete_group_org_mapping(env, id).await?;
        let rest: Vec<GroupMappingId> = entries.iter().map(|e| e.id).filter(|e| *e != id).collect();
        self.renumber(&mut tx, env, provider, &rest).await?;
        let entry = provider_entry(
            env,
            now,
            actor,
            &p,
            "mapping.group_mapping_deleted",
            json!({"id": id}),
        );
        self.log_and_view(tx, env, provider, entry).await
    }

    /// Logs a mapping change and commits it, answering with the mappings as they now are.
    async fn log_and_view(
        &self,
        mut tx: Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        entry: SyncLogEntry,
    ) -> CoreResult<MappingView> {
        tx.append_log(&[entry]).await?;
        let view = self.mapping_view_in(&mut tx, env, provider).await?;
        tx.commit().await?;
        Ok(view)
    }

    async fn renumber(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        order: &[GroupMappingId],
    ) -> CoreResult<()> {
        let entries = tx.group_org_mappings(env, provider).await?;
        for (i, id) in order.iter().enumerate() {
            if let Some(e) = entries.iter().find(|e| e.id == *id) {
                let priority = i as i64 + 1;
                if e.priority != priority {
                    let mut e = e.clone();
                    e.priority = priority;
                    tx.update_group_org_mapping(&e).await?;
                }
            }
        }
        Ok(())
    }

    /// Sets the priority order of the group-to-organization entries: `order` lists every entry,
    /// highest priority first.
    pub async fn reorder_group_mappings(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        order: &[GroupMappingId],
        actor: &Actor,
    ) -> CoreResult<MappingView> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let p = self.mapping_provider(&mut tx, env, provider).await?;
        let entries = tx.group_org_mappings(env, provider).await?;
        let have: BTreeSet<GroupMappingId> = entries.iter().map(|e| e.id).collect();
        let given: BTreeSet<GroupMappingId> = order.iter().copied().collect();
        if have != given || order.len() != entries.len() {
            return Err(CoreError::Invalid(format!(
                "the order must list each of the provider's {} organization mapping entries exactly once",
                entries.len()
            )));
        }
        self.renumber(&mut tx, env, provider, order).await?;
        let entry = provider_entry(
            env,
            now,
            actor,
            &p,
            "mapping.group_priorities_changed",
            json!({"order": order}),
        );
        self.log_and_view(tx, env, provider, entry).await
    }

    /// Sets a group's role mapping (no roles: removes it). Roles the mapping no longer gives are
    /// taken from the group's members at once; roles it adds reach them at their next update or
    /// a re-apply.
    pub async fn set_role_mapping(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        group: GroupId,
        roles: &[RoleId],
        actor: &Actor,
    ) -> CoreResult<MappingView> {
        let now = self.now();
        for _ in 0..5 {
            let mut tx = self.store.write().await?;
            let p = self.mapping_provider(&mut tx, env, provider).await?;
            let g = tx
                .find_group(env, group)
                .await?
                .filter(|g| g.provider_id == provider)
                .ok_or_else(|| {
                    CoreError::NotFound(format!("this provider has no SCIM group with id {group}"))
                })?;
            let catalog: HashMap<RoleId, Role> = tx
                .list_roles(env)
                .await?
                .into_iter()
                .map(|r| (r.id, r))
                .collect();
            let mut wanted: Vec<RoleId> = Vec::new();
            for r in roles {
                if !catalog.contains_key(r) {
                    return Err(CoreError::NotFound(format!("no role with id {r}")));
                }
                if !wanted.contains(r) {
                    wanted.push(*r);
                }
            }
            let before: Vec<RoleId> = tx
                .role_mappings(env, provider)
                .await?
                .into_iter()
                .filter(|(gid, _)| *gid == group)
                .map(|(_, r)| r)
                .collect();
            let removed = before.iter().any(|r| !wanted.contains(r));
            tx.put_role_mapping(env, provider, group, &wanted).await?;
            let names = |ids: &[RoleId]| -> Vec<String> {
                let mut v: Vec<String> = ids
                    .iter()
                    .filter_map(|r| catalog.get(r).map(|x| x.name.clone()))
                    .collect();
                v.sort();
                v
            };
            let action = if wanted.is_empty() {
                "mapping.role_mapping_deleted"
            } else {
                "mapping.role_mapping_set"
            };
            let mut log = vec![provider_entry(
                env,
                now,
                actor,
                &p,
                action,
                json!({"group": g.display_name, "groupId": group, "before": names(&before), "after": names(&wanted)}),
            )];
            if removed {
                let rules = self.rules(&mut tx, env, provider).await?;
                let members = tx.member_ids(env, group).await?;
                let cause = Cause {
                    env,
                    provider,
                    actor,
                    at: now,
                    reason: "role mapping changed",
                };
                let aspects = Aspects {
                    org: false,
                    roles: true,
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
            let view = self.mapping_view_in(&mut tx, env, provider).await?;
            tx.commit().await?;
            return Ok(view);
        }
        Err(CoreError::Conflict(
            "users changed while the role mapping was saved; try again".into(),
        ))
    }

    /// Lists every user of the provider whose organization or roles the current mappings would
    /// change, with totals (the first `limit` changes, by userName).
    pub async fn preview_mappings(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        limit: usize,
    ) -> CoreResult<Preview> {
        let mut tx = self.store.read().await?;
        self.mapping_provider(&mut tx, env, provider).await?;
        let rules = self.rules(&mut tx, env, provider).await?;
        let catalog: HashMap<RoleId, String> = tx
            .list_roles(env)
            .await?
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect();
        let role_names = |ids: &mut dyn Iterator<Item = RoleId>| -> Vec<String> {
            let mut v: Vec<String> = ids.filter_map(|r| catalog.get(&r).cloned()).collect();
            v.sort();
            v
        };
        let actor = Actor::System;
        let cause = Cause {
            env,
            provider,
            actor: &actor,
            at: self.now(),
            reason: "preview",
        };
        let mut cache = OrgCache::default();
        let mut users = 0u64;
        let mut changes: Vec<PlannedChange> = Vec::new();
        let (mut changed, mut org_changes, mut role_changes) = (0u64, 0u64, 0u64);
        let mut to_create: BTreeSet<(String, String)> = BTreeSet::new();
        let mut hasher = Sha256::new();
        let mut after = None;
        loop {
            let chunk = tx.scan_users(env, provider, None, after, CHUNK).await?;
            let Some(last) = chunk.last() else { break };
            after = Some(Cursor {
                created_at: last.created_at,
                id: last.id.uuid(),
            });
            let full = chunk.len() as u64 == CHUNK;
            let ids: Vec<UserId> = chunk.iter().map(|u| u.id).collect();
            let (groups, roles) = self.memberships_and_roles(&mut tx, env, &ids, true).await?;
            for u in chunk {
                users += 1;
                let g = groups.get(&u.id).map(Vec::as_slice).unwrap_or_default();
                let want = rules.want_org(&u.resource, g, false);
                let org_to = self
                    .resolve_org(&mut tx, &rules, &cause, want, false, &mut cache)
                    .await?
                    .map(|p| p.target)
                    .filter(|t| t.id != Some(u.org_id));
                let current = roles.get(&u.id).map(Vec::as_slice).unwrap_or_default();
                let roles_to = rules
                    .want_roles(g, current)
                    .filter(|t| roles_differ(current, t));
                if org_to.is_none() && roles_to.is_none() {
                    continue;
                }
                changed += 1;
                if let Some(t) = &org_to {
                    org_changes += 1;
                    if t.new {
                        to_create.insert((key(&t.name), t.name.clone()));
                    }
                    hasher.update(format!("{}>{}|", u.id, key(&t.name)));
                }
                if let Some(r) = &roles_to {
                    role_changes += 1;
                    hasher.update(format!("{}>{:?}|", u.id, r));
                }
                let from_name = cache
                    .org(&mut tx, env, u.org_id)
                    .await?
                    .map(|o| o.name)
                    .unwrap_or_default();
                changes.push(PlannedChange {
                    user_id: u.id,
                    user_name: u.user_name.clone(),
                    org_from: OrgSummary {
                        id: u.org_id,
                        name: from_name,
                    },
                    org_to,
                    roles_from: role_names(&mut current.iter().map(|(r, _)| *r)),
                    roles_to: roles_to.map(|r| role_names(&mut r.into_iter())),
                });
                if changes.len() > limit.saturating_mul(2).max(limit + 1000) {
                    // Keep memory bounded: only the first `limit` by userName are returned.
                    changes.sort_by_key(|a| key(&a.user_name));
                    changes.truncate(limit);
                }
            }
            if !full {
                break;
            }
        }
        changes.sort_by_key(|a| key(&a.user_name));
        changes.truncate(limit);
        Ok(Preview {
            users,
            changed,
            org_changes,
            role_changes,
            orgs_to_create: to_create.into_iter().map(|(_, n)| n).collect(),
            changes,
            digest: hex::encode(&hasher.finalize()[..16]),
        })
    }

    /// Re-applies the provider's mappings to every one of its users: what
    /// [`Muster::preview_mappings`] lists. Given the preview's digest, refuses to run if the list
    /// changed since. Runs in rounds of 500 users, each its own transaction, so provisioning is
    /// not held up; a user its provider changes meanwhile is placed by that change instead.
    pub async fn apply_mappings(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        expect: Option<&str>,
        actor: &Actor,
    ) -> CoreResult<Applied> {
        if let Some(digest) = expect {
            let now = self.preview_mappings(env, provider, 0).await?;
            if now.digest != digest.trim() {
                return Err(CoreError::Conflict(
                    "the users or the mappings changed since this preview: preview again".into(),
                ));
            }
        }
        let started = self.now();
        let mut done = Applied {
            users: 0,
            moved: 0,
            roles_changed: 0,
            orgs_created: 0,
        };
        let mut after = None;
        loop {
            let now = self.now();
            let mut tx = self.store.write().await?;
            let p = self.mapping_provider(&mut tx, env, provider).await?;
            let rules = self.rules(&mut tx, env, provider).await?;
            let chunk = tx.scan_users(env, provider, None, after, CHUNK).await?;
            let Some(last) = chunk.last() else {
                tx.append_log(&[provider_entry(
                    env,
                    now,
                    actor,
                    &p,
                    "mappings.reapplied",
                    json!({
                        "users": done.users,
                        "moved": done.moved,
                        "rolesChanged": done.roles_changed,
                        "orgsCreated": done.orgs_created,
                        "startedAt": started.to_rfc3339(),
                    }),
                )])
                .await?;
                tx.commit().await?;
                return Ok(done);
            };
            after = Some(Cursor {
                created_at: last.created_at,
                id: last.id.uuid(),
            });
            let cause = Cause {
                env,
                provider,
                actor,
                at: now,
                reason: "re-apply",
            };
            let ids: Vec<UserId> = chunk.iter().map(|u| u.id).collect();
            let (groups, roles) = self.memberships_and_roles(&mut tx, env, &ids, true).await?;
            let mut cache = OrgCache::default();
            // Each user's change is worked out first; the round's moves and role changes are
            // then written in a few statements, not two or three per user (on PostgreSQL each
            // statement is a round trip).
            struct Change {
                user: UserId,
                moving: Option<(OrgId, i64)>,
                placed: Vec<SyncLogEntry>,
                roles: Option<(Vec<RoleId>, SyncLogEntry)>,
            }
            let mut changes = Vec::with_capacity(chunk.len());
            for u in chunk {
                done.users += 1;
                let g = groups.get(&u.id).map(Vec::as_slice).unwrap_or_default();
                let mut changed = u.clone();
                let (_, placed) = self
                    .place_user(&mut tx, &rules, &cause, &mut changed, g, false, &mut cache)
                    .await?;
                done.orgs_created +=
                    placed.iter().filter(|e| e.action == "org.created").count() as u64;
                let moving = (changed.org_id != u.org_id).then(|| {
                    changed.version += 1;
                    changed.updated_at = now;
                    (changed.org_id, u.version)
                });
                let current = roles.get(&u.id).map(Vec::as_slice).unwrap_or_default();
                let roles = self
                    .role_change(&mut tx, &rules, &cause, &changed, g, current, &mut cache)
                    .await?;
                changes.push(Change {
                    user: u.id,
                    moving,
                    placed,
                    roles,
                });
            }
            let moves: Vec<(UserId, OrgId, i64)> = changes
                .iter()
                .filter_map(|c| c.moving.map(|(org, version)| (c.user, org, version)))
                .collect();
            let moved: HashSet<UserId> =
                tx.move_users(env, &moves, now).await?.into_iter().collect();
            let mut log = Vec::new();
            let mut role_sets = Vec::new();
            for c in changes {
                if c.moving.is_some() && !moved.contains(&c.user) {
                    // Its provider changed it meanwhile, placing it by the same mappings.
                    log.extend(c.placed.into_iter().filter(|e| e.action == "org.created"));
                    continue;
                }
                if c.moving.is_some() {
                    done.moved += 1;
                }
                log.extend(c.placed);
                if let Some((target, entry)) = c.roles {
                    done.roles_changed += 1;
                    role_sets.push((c.user, target));
                    log.push(entry);
                }
            }
            tx.set_users_roles(env, &role_sets, RoleSource::Mapping)
                .await?;
            tx.append_log(&log).await?;
            tx.commit().await?;
        }
    }
}
