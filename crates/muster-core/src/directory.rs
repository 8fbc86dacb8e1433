//! The directory administrators manage: organizations (a tree with default roles), the role
//! catalog, users (local and provisioned), and administrator API tokens. Every change is logged
//! with the administrator as its actor.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::clock::Timestamp;
use crate::error::{CoreError, CoreResult, StoreError, Unique};
use crate::ids::{AdminTokenId, EnvironmentId, OrgId, ProviderId, RoleId, UserId};
use crate::model::{
    Actor, AdminToken, Org, OrgStatus, Outcome, Role, RoleSource, SyncLogEntry, UserRecord,
    UserStatus,
};
use crate::service::Muster;
use crate::store::{Cursor, Tx, UserQuery};
use crate::token;

/// The shortest and longest organization names.
pub const ORG_NAME_CHARS: (usize, usize) = (3, 220);

/// An organization with what administrators see of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrgView {
    /// The organization.
    #[serde(flatten)]
    pub org: Org,
    /// Names from the root down to this organization.
    pub path: Vec<String>,
    /// The roles its users get when no other role applies.
    pub effective_default_roles: Vec<Role>,
    /// The organization those roles are set on (itself, or the nearest ancestor that sets them).
    pub default_roles_from: Option<OrgId>,
}

/// An organization and its descendants.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrgTree {
    /// The organization.
    #[serde(flatten)]
    pub org: Org,
    /// Its children, by name.
    pub children: Vec<OrgTree>,
}

/// A role a user holds, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeldRole {
    /// The role.
    pub role: Role,
    /// Where it comes from.
    pub source: RoleSource,
}

/// A user with its organization and effective roles.
#[derive(Debug, Clone)]
pub struct UserDetail {
    /// The user.
    pub user: UserRecord,
    /// Its organization.
    pub org: Org,
    /// Its effective roles.
    pub roles: Vec<HeldRole>,
}

/// What an administrator does to a user.
#[derive(Debug, Clone, PartialEq)]
pub enum UserAction {
    /// Cannot sign in; data kept.
    Block,
    /// Can sign in again.
    Unblock,
    /// Deactivated at once.
    Deactivate,
    /// Active again.
    Reactivate,
    /// Into another organization.
    Move(OrgId),
    /// Exactly these roles (empty: the organization's defaults apply).
    SetRoles(Vec<RoleId>),
    /// Set or clear legal hold.
    LegalHold(bool),
}

/// An administrator token just created, with its secret (shown once).
#[derive(Debug)]
pub struct CreatedAdminToken {
    /// The token.
    pub token: AdminToken,
    /// Its secret.
    pub secret: String,
}

/// What a log entry is about: its kind, id and name.
type Subject<'a> = (&'a str, String, &'a str);

fn admin_entry(
    env: EnvironmentId,
    at: Timestamp,
    actor: &Actor,
    action: &str,
    subject: Subject<'_>,
    details: Value,
) -> SyncLogEntry {
    SyncLogEntry {
        environment_id: env,
        at,
        provider_id: None,
        actor: actor.clone(),
        action: action.into(),
        subject_kind: Some(subject.0.into()),
        subject_id: Some(subject.1),
        subject_name: Some(subject.2.into()),
        details,
        outcome: Outcome::Success,
        message: None,
    }
}

/// Trims a name and checks its length (in characters).
pub fn check_org_name(name: &str) -> CoreResult<String> {
    let name = name.trim();
    let n = name.chars().count();
    if n < ORG_NAME_CHARS.0 || n > ORG_NAME_CHARS.1 {
        return Err(CoreError::Invalid(format!(
            "an organization's name must have {} to {} characters; '{name}' has {n}",
            ORG_NAME_CHARS.0, ORG_NAME_CHARS.1
        )));
    }
    Ok(name.to_string())
}

use crate::provisioning::name_key as key;

/// The organizations of an environment, indexed for tree questions.
struct Orgs {
    by_id: HashMap<OrgId, Org>,
    defaults: HashMap<OrgId, Vec<RoleId>>,
    roles: HashMap<RoleId, Role>,
}

impl Orgs {
    async fn load(tx: &mut Box<dyn Tx>, env: EnvironmentId) -> CoreResult<Orgs> {
        let by_id = tx
            .list_orgs(env)
            .await?
            .into_iter()
            .map(|o| (o.id, o))
            .collect();
        let mut defaults: HashMap<OrgId, Vec<RoleId>> = HashMap::new();
        for (org, role) in tx.org_default_roles(env).await? {
            defaults.entry(org).or_default().push(role);
        }
        let roles = tx
            .list_roles(env)
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        Ok(Orgs {
            by_id,
            defaults,
            roles,
        })
    }

    fn get(&self, id: OrgId) -> CoreResult<&Org> {
        self.by_id
            .get(&id)
            .ok_or_else(|| CoreError::NotFound(format!("no organization with id {id}")))
    }

    fn ancestors(&self, id: OrgId) -> Vec<OrgId> {
        let mut out = Vec::new();
        let mut cur = self.by_id.get(&id).and_then(|o| o.parent_id);
        while let Some(p) = cur {
            if out.contains(&p) {
                break;
            }
            out.push(p);
            cur = self.by_id.get(&p).and_then(|o| o.parent_id);
        }
        out
    }

    fn descendants(&self, id: OrgId) -> Vec<OrgId> {
        let mut out = Vec::new();
        let mut stack = vec![id];
        while let Some(cur) = stack.pop() {
            for o in self.by_id.values().filter(|o| o.parent_id == Some(cur)) {
                if !out.contains(&o.id) {
                    out.push(o.id);
                    stack.push(o.id);
                }
            }
        }
        out
    }

    fn defaults_from(&self, id: OrgId) -> Option<OrgId> {
        std::iter::once(id)
            .chain(self.ancestors(id))
            .find(|o| self.by_id.get(o).is_some_and(|o| o.own_default_roles))
    }

    fn effective_defaults(&self, id: OrgId) -> Vec<Role> {
        let mut roles: Vec<Role> = self
            .defaults_from(id)
            .and_then(|o| self.defaults.get(&o))
            .map(|ids| {
                ids.iter()
                    .filter_map(|r| self.roles.get(r).cloned())
                    .collect()
            })
            .unwrap_or_default();
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        roles
    }

    fn view(&self, id: OrgId) -> CoreResult<OrgView> {
        let org = self.get(id)?.clone();
        let mut path: Vec<String> = self
            .ancestors(id)
            .iter()
            .rev()
            .filter_map(|a| self.by_id.get(a).map(|o| o.name.clone()))
            .collect();
        path.push(org.name.clone());
        Ok(OrgView {
            path,
            effective_default_roles: self.effective_defaults(id),
            default_roles_from: self.defaults_from(id),
            org,
        })
    }

    fn tree(&self, id: OrgId) -> OrgTree {
        let mut children: Vec<&Org> = self
            .by_id
            .values()
            .filter(|o| o.parent_id == Some(id))
            .collect();
        children.sort_by_key(|o| key(&o.name));
        OrgTree {
            org: self
                .by_id
                .get(&id)
                .cloned()
                .unwrap_or_else(|| placeholder(id)),
            children: children.into_iter().map(|c| self.tree(c.id)).collect(),
        }
    }
}

fn placeholder(id: OrgId) -> Org {
    Org {
        environment_id: EnvironmentId(uuid::Uuid::nil()),
        id,
        parent_id: None,
        name: String::new(),
        status: OrgStatus::Active,
        own_default_roles: false,
        created_at: Timestamp(0),
        updated_at: Timestamp(0),
    }
}

impl Muster {
    async fn root_org(&self, tx: &mut Box<dyn Tx>, env: EnvironmentId) -> CoreResult<Org> {
        tx.find_root_org(env).await?.ok_or_else(|| {
            StoreError::Corrupt("the environment has no root organization".into()).into()
        })
    }

    /// Every organization, as a flat list with paths and effective default roles.
    pub async fn list_orgs(
        &self,
        env: EnvironmentId,
        status: Option<OrgStatus>,
    ) -> CoreResult<Vec<OrgView>> {
        let mut tx = self.store.read().await?;
        let orgs = Orgs::load(&mut tx, env).await?;
        let mut out: Vec<OrgView> = orgs
            .by_id
            .values()
            .filter(|o| status.is_none_or(|s| o.status == s))
            .map(|o| orgs.view(o.id))
            .collect::<CoreResult<_>>()?;
        out.sort_by(|a, b| {
            a.path
                .iter()
                .map(|p| key(p))
                .cmp(b.path.iter().map(|p| key(p)))
        });
        Ok(out)
    }

    /// The organization tree from the root.
    pub async fn org_tree(&self, env: EnvironmentId) -> CoreResult<OrgTree> {
        let mut tx = self.store.read().await?;
        let root = self.root_org(&mut tx, env).await?;
        let orgs = Orgs::load(&mut tx, env).await?;
        Ok(orgs.tree(root.id))
    }

    /// One organization.
    pub async fn get_org(&self, env: EnvironmentId, id: OrgId) -> CoreResult<OrgView> {
        let mut tx = self.store.read().await?;
        let orgs = Orgs::load(&mut tx, env).await?;
        orgs.view(id)
    }

    /// Adds an organization under `parent` (the root organization if `None`).
    pub async fn create_org(
        &self,
        env: EnvironmentId,
        name: &str,
        parent: Option<OrgId>,
        actor: &Actor,
    ) -> CoreResult<Org> {
        let name = check_org_name(name)?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let parent = match parent {
            Some(p) => tx
                .find_org(env, p)
                .await?
                .ok_or_else(|| CoreError::NotFound(format!("no organization with id {p}")))?,
            None => self.root_org(&mut tx, env).await?,
        };
        if parent.status == OrgStatus::Deactivated {
            return Err(CoreError::Invalid(format!(
                "'{}' is deactivated: reactivate it before adding organizations to it",
                parent.name
            )));
        }
        let org = self
            .insert_child_org(&mut tx, env, &parent, &name, now)
            .await?;
        tx.append_log(&[admin_entry(
            env,
            now,
            actor,
            "org.created",
            ("org", org.id.to_string(), &org.name),
            json!({"parent": parent.name}),
        )])
        .await?;
        tx.commit().await?;
        Ok(org)
    }

    /// Inserts a child organization; a sibling of the same name (case-insensitively) is a conflict.
    pub(crate) async fn insert_child_org(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        parent: &Org,
        name: &str,
        now: Timestamp,
    ) -> CoreResult<Org> {
        if tx
            .find_child_org(env, parent.id, &key(name))
            .await?
            .is_some()
        {
            return Err(CoreError::Conflict(format!(
                "'{}' already has an organization named '{name}'",
                parent.name
            )));
        }
        let org = Org {
            environment_id: env,
            id: OrgId::new(),
            parent_id: Some(parent.id),
            name: name.to_string(),
            status: OrgStatus::Active,
            own_default_roles: false,
            created_at: now,
            updated_at: now,
        };
        tx.insert_org(&org).await.map_err(|e| match e {
            StoreError::Conflict(Unique::OrgName) => CoreError::Conflict(format!(
                "'{}' already has an organization named '{name}'",
                parent.name
            )),
            other => other.into(),
        })?;
        Ok(org)
    }

    /// Renames an organization.
    pub async fn rename_org(
        &self,
        env: EnvironmentId,
        id: OrgId,
        name: &str,
        actor: &Actor,
    ) -> CoreResult<Org> {
        let name = check_org_name(name)?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut org = tx
            .find_org(env, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no organization with id {id}")))?;
        if let Some(parent) = org.parent_id {
            if let Some(other) = tx.find_child_org(env, parent, &key(&name)).await? {
                if other.id != id {
                    return Err(CoreError::Conflict(format!(
                        "a sibling organization is already named '{name}'"
                    )));
                }
            }
        }
        let before = std::mem::replace(&mut org.name, name);
        org.updated_at = now;
        tx.update_org(&org).await.map_err(|e| match e {
            StoreError::Conflict(_) => CoreError::Conflict(format!(
                "a sibling organization is already named '{}'",
                org.name
            )),
            other => other.into(),
        })?;
        tx.append_log(&[admin_entry(
            env,
            now,
            actor,
            "org.renamed",
            ("org", id.to_string(), &org.name),
            json!({"before": before, "after": org.name}),
        )])
        .await?;
        tx.commit().await?;
        Ok(org)
    }

    /// Moves an organization under another parent (never under itself or its descendants).
    pub async fn move_org(
        &self,
        env: EnvironmentId,
        id: OrgId,
        new_parent: OrgId,
        actor: &Actor,
    ) -> CoreResult<Org> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let orgs = Orgs::load(&mut tx, env).await?;
        let mut org = orgs.get(id)?.clone();
        let parent = orgs.get(new_parent)?.clone();
        let Some(old_parent) = org.parent_id else {
            return Err(CoreError::Invalid(
                "the root organization cannot be moved".into(),
            ));
        };
        if new_parent == id || orgs.descendants(id).contains(&new_parent) {
            return Err(CoreError::Invalid(format!(
                "'{}' cannot be moved under itself or one of its own organizations",
                org.name
            )));
        }
        if parent.status == OrgStatus::Deactivated && org.status == OrgStatus::Active {
            return Err(CoreError::Invalid(format!(
                "'{}' is deactivated: an active organization cannot move under it",
                parent.name
            )));
        }
        if tx
            .find_child_org(env, new_parent, &key(&org.name))
            .await?
            .is_some_and(|o| o.id != id)
        {
            return Err(CoreError::Conflict(format!(
                "'{}' already has an organization named '{}'",
                parent.name, org.name
            )));
        }
        org.parent_id = Some(new_parent);
        org.updated_at = now;
        tx.update_org(&org).await?;
        let from = orgs
            .get(old_parent)
            .map(|o| o.name.clone())
            .unwrap_or_default();
        tx.append_log(&[admin_entry(
            env,
            now,
            actor,
            "org.moved",
            ("org", id.to_string(), &org.name),
            json!({"before": from, "after": parent.name}),
        )])
        .await?;
        tx.commit().await?;
        Ok(org)
    }

    /// Deactivates an organization and every organization below it (their users stay where they
    /// are), or reactivates one organization whose parent is active.
    pub async fn set_org_active(
        &self,
        env: EnvironmentId,
        id: OrgId,
        active: bool,
        actor: &Actor,
    ) -> CoreResult<Vec<Org>> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let orgs = Orgs::load(&mut tx, env).await?;
        let org = orgs.get(id)?.clone();
        let mut changed = Vec::new();
        if active {
            if let Some(p) = org.parent_id {
                if orgs.get(p)?.status == OrgStatus::Deactivated {
                    return Err(CoreError::Invalid(format!(
                        "reactivate '{}' first: it holds '{}'",
                        orgs.get(p)?.name,
                        org.name
                    )));
                }
            }
            if org.status == OrgStatus::Deactivated {
                changed.push(org);
            }
        } else {
            if org.parent_id.is_none() {
                return Err(CoreError::Invalid(
                    "the root organization cannot be deactivated".into(),
                ));
            }
            for o in std::iter::once(id).chain(orgs.descendants(id)) {
                let o = orgs.get(o)?.clone();
                if o.status == OrgStatus::Active {
                    changed.push(o);
                }
            }
        }
        let status = if active {
            OrgStatus::Active
        } else {
            OrgStatus::Deactivated
        };
        let action = if active {
            "org.reactivated"
        } else {
            "org.deactivated"
        };
        let mut log = Vec::new();
        for o in &mut changed {
            o.status = status;
            o.updated_at = now;
            tx.update_org(o).await?;
            log.push(admin_entry(
                env,
                now,
                actor,
                action,
                ("org", o.id.to_string(), &o.name),
                json!({}),
            ));
        }
        tx.append_log(&log).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Sets an organization's own default roles, or (`None`) makes it inherit its parent's.
    pub async fn set_org_default_roles(
        &self,
        env: EnvironmentId,
        id: OrgId,
        roles: Option<Vec<RoleId>>,
        actor: &Actor,
    ) -> CoreResult<OrgView> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let orgs = Orgs::load(&mut tx, env).await?;
        let mut org = orgs.get(id)?.clone();
        let before: Vec<String> = orgs
            .effective_defaults(id)
            .into_iter()
            .map(|r| r.name)
            .collect();
        match &roles {
            Some(ids) => {
                for r in ids {
                    if !orgs.roles.contains_key(r) {
                        return Err(CoreError::NotFound(format!("no role with id {r}")));
                    }
                }
                org.own_default_roles = true;
                tx.set_org_default_roles(env, id, ids).await?;
            }
            None => {
                if org.parent_id.is_none() {
                    return Err(CoreError::Invalid(
                        "the root organization has no parent to inherit from".into(),
                    ));
                }
                org.own_default_roles = false;
                tx.set_org_default_roles(env, id, &[]).await?;
            }
        }
        org.updated_at = now;
        tx.update_org(&org).await?;
        let after = Orgs::load(&mut tx, env).await?;
        let view = after.view(id)?;
        let names: Vec<String> = view
            .effective_default_roles
            .iter()
            .map(|r| r.name.clone())
            .collect();
        tx.append_log(&[admin_entry(
            env,
            now,
            actor,
            "org.default_roles_changed",
            ("org", id.to_string(), &org.name),
            json!({"before": before, "after": names, "inherited": roles.is_none()}),
        )])
        .await?;
        tx.commit().await?;
        Ok(view)
    }

    /// The role catalog.
    pub async fn list_roles(&self, env: EnvironmentId) -> CoreResult<Vec<Role>> {
        let mut tx = self.store.read().await?;
        Ok(tx.list_roles(env).await?)
    }

    /// Adds a role to the catalog.
    pub async fn create_role(
        &self,
        env: EnvironmentId,
        name: &str,
        description: &str,
        actor: &Actor,
    ) -> CoreResult<Role> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(CoreError::Invalid(
                "a role's name must have 1 to 100 characters".into(),
            ));
        }
        let now = self.now();
        let role = Role {
            environment_id: env,
            id: RoleId::new(),
            name: name.into(),
            description: description.trim().into(),
            builtin: false,
            created_at: now,
        };
        let mut tx = self.store.write().await?;
        tx.insert_role(&role).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                CoreError::Conflict(format!("a role named '{name}' already exists"))
            }
            other => other.into(),
        })?;
        tx.append_log(&[admin_entry(
            env,
            now,
            actor,
            "role.created",
            ("role", role.id.to_string(), &role.name),
            json!({}),
        )])
        .await?;
        tx.commit().await?;
        Ok(role)
    }

    /// Deletes a role; refused while a user, an organization or a role mapping still uses it,
    /// and for the standard roles.
    pub async fn delete_role(
        &self,
        env: EnvironmentId,
        id: RoleId,
        actor: &Actor,
    ) -> CoreResult<()> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let role = tx
            .list_roles(env)
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| CoreError::NotFound(format!("no role with id {id}")))?;
        if role.builtin {
            return Err(CoreError::Invalid(format!(
                "'{}' is one of the standard roles and cannot be deleted",
                role.name
            )));
        }
        let (users, orgs) = tx.role_usage(env, id).await?;
        let groups = tx.role_mapping_groups(env, id).await?;
        if !groups.is_empty() {
            return Err(CoreError::Conflict(format!(
                "'{}' is given by the role mapping of {} SCIM group(s) ({}): remove it from those mappings first",
                role.name,
                groups.len(),
                groups.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        if users > 0 || orgs > 0 {
            return Err(CoreError::Conflict(format!(
                "'{}' is still in use ({users} user(s) hold it, {orgs} organization(s) give it by default): remove it from them first",
                role.name
            )));
        }
        tx.delete_role(env, id).await?;
        tx.append_log(&[admin_entry(
            env,
            now,
            actor,
            "role.deleted",
            ("role", id.to_string(), &role.name),
            json!({}),
        )])
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A page of users for administrators, and the cursor of the next page.
    pub async fn query_users(
        &self,
        env: EnvironmentId,
        q: &UserQuery,
        after: Option<Cursor>,
        limit: u64,
    ) -> CoreResult<(Vec<UserRecord>, Option<Cursor>)> {
        let limit = limit.clamp(1, 1000);
        let mut tx = self.store.read().await?;
        let mut users = tx.query_users(env, q, after, limit + 1).await?;
        let next = if users.len() as u64 > limit {
            users.truncate(limit as usize);
            users.last().map(|u| Cursor {
                created_at: u.created_at,
                id: u.id.uuid(),
            })
        } else {
            None
        };
        Ok((users, next))
    }

    /// A user with its organization and effective roles.
    pub async fn user_detail(&self, env: EnvironmentId, id: UserId) -> CoreResult<UserDetail> {
        let mut tx = self.store.read().await?;
        self.detail_in(&mut tx, env, id).await
    }

    async fn detail_in(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        id: UserId,
    ) -> CoreResult<UserDetail> {
        let user = tx
            .find_user(env, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no user with id {id}")))?;
        let orgs = Orgs::load(tx, env).await?;
        let org = orgs.get(user.org_id)?.clone();
        let held = tx.user_roles(env, &[id]).await?;
        let mut roles: Vec<HeldRole> = if held.is_empty() {
            orgs.effective_defaults(user.org_id)
                .into_iter()
                .map(|role| HeldRole {
                    role,
                    source: RoleSource::Org,
                })
                .collect()
        } else {
            held.into_iter()
                .filter_map(|(_, r, source)| {
                    orgs.roles
                        .get(&r)
                        .cloned()
                        .map(|role| HeldRole { role, source })
                })
                .collect()
        };
        roles.sort_by(|a, b| a.role.name.cmp(&b.role.name));
        Ok(UserDetail { user, org, roles })
    }

    /// Adds a local user: made by an administrator, never changed by a provider.
    pub async fn create_local_user(
        &self,
        env: EnvironmentId,
        user_name: &str,
        display_name: Option<&str>,
        email: Option<&str>,
        org: Option<OrgId>,
        actor: &Actor,
    ) -> CoreResult<UserDetail> {
        let user_name = user_name.trim();
        if user_name.is_empty() || user_name.chars().count() > 256 {
            return Err(CoreError::Invalid(
                "a userName must have 1 to 256 characters".into(),
            ));
        }
        let now = self.now();
        let mut tx = self.store.write().await?;
        if tx.find_user_by_name(env, &key(user_name)).await?.is_some() {
            return Err(CoreError::Conflict(format!(
                "the userName '{user_name}' is already in use"
            )));
        }
        let org = match org {
            Some(o) => tx
                .find_org(env, o)
                .await?
                .ok_or_else(|| CoreError::NotFound(format!("no organization with id {o}")))?,
            None => self.root_org(&mut tx, env).await?,
        };
        let mut resource = serde_json::Map::new();
        resource.insert("schemas".into(), json!([muster_scim::schema::USER_SCHEMA]));
        resource.insert("userName".into(), json!(user_name));
        if let Some(d) = display_name.map(str::trim).filter(|d| !d.is_empty()) {
            resource.insert("displayName".into(), json!(d));
        }
        if let Some(e) = email.map(str::trim).filter(|e| !e.is_empty()) {
            resource.insert(
                "emails".into(),
                json!([{"value": e, "type": "work", "primary": true}]),
            );
        }
        resource.insert("active".into(), json!(true));
        let user = UserRecord {
            environment_id: env,
            id: UserId::new(),
            provider_id: None,
            user_name: user_name.into(),
            external_id: None,
            display_name: display_name
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            scim_active: true,
            status: UserStatus::Active,
            org_id: org.id,
            legal_hold: false,
            changed_outside: false,
            resource,
            version: 1,
            created_at: now,
            updated_at: now,
            removed_at: None,
            deactivate_at: None,
        };
        tx.insert_user(&user).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                CoreError::Conflict(format!("the userName '{user_name}' is already in use"))
            }
            other => other.into(),
        })?;
        tx.append_log(&[admin_entry(
            env,
            now,
            actor,
            "user.created",
            ("user", user.id.to_string(), &user.user_name),
            json!({"org": org.name, "local": true}),
        )])
        .await?;
        let detail = self.detail_in(&mut tx, env, user.id).await?;
        tx.commit().await?;
        Ok(detail)
    }

    /// An administrator's action on a user. A provisioned user so changed is marked as changed
    /// outside provisioning until its provider next updates it.
    pub async fn act_on_user(
        &self,
        env: EnvironmentId,
        id: UserId,
        action: UserAction,
        actor: &Actor,
    ) -> CoreResult<UserDetail> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let existing = tx
            .find_user(env, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no user with id {id}")))?;
        let mut u = existing.clone();
        let mut log: Vec<(&str, Value)> = Vec::new();
        match &action {
            UserAction::Block => {
                if u.status != UserStatus::Active {
                    return Err(CoreError::Invalid(format!(
                        "'{}' is {}, not active",
                        u.user_name,
                        u.status.as_str()
                    )));
                }
                u.status = UserStatus::Blocked;
                log.push(("user.blocked", json!({})));
            }
            UserAction::Unblock => {
                if u.status != UserStatus::Blocked {
                    return Err(CoreError::Invalid(format!(
                        "'{}' is {}, not blocked",
                        u.user_name,
                        u.status.as_str()
                    )));
                }
                u.status = UserStatus::Active;
                let cancelled = u.deactivate_at.take();
                log.push((
                    "user.unblocked",
                    json!({"cancelledDeactivationAt": cancelled.map(|t| t.to_rfc3339())}),
                ));
            }
            UserAction::Deactivate => {
                if u.status == UserStatus::Deactivated {
                    return Err(CoreError::Invalid(format!(
                        "'{}' is already deactivated",
                        u.user_name
                    )));
                }
                if u.legal_hold {
                    return Err(CoreError::Invalid(format!(
                        "'{}' is on legal hold: release the hold before deactivating",
                        u.user_name
                    )));
                }
                u.status = UserStatus::Deactivated;
                u.deactivate_at = None;
                log.push((
                    "user.deactivated",
                    json!({"reason": "deactivated by an administrator"}),
                ));
            }
            UserAction::Reactivate => {
                if u.status != UserStatus::Deactivated {
                    return Err(CoreError::Invalid(format!(
                        "'{}' is {}, not deactivated",
                        u.user_name,
                        u.status.as_str()
                    )));
                }
                u.status = UserStatus::Active;
                log.push(("user.reactivated", json!({})));
            }
            UserAction::Move(org) => {
                let target = tx
                    .find_org(env, *org)
                    .await?
                    .ok_or_else(|| CoreError::NotFound(format!("no organization with id {org}")))?;
                if target.status == OrgStatus::Deactivated {
                    return Err(CoreError::Invalid(format!(
                        "'{}' is deactivated: users cannot move into it",
                        target.name
                    )));
                }
                let from = tx
                    .find_org(env, u.org_id)
                    .await?
                    .map(|o| o.name)
                    .unwrap_or_default();
                u.org_id = target.id;
                log.push(("user.moved", json!({"before": from, "after": target.name})));
            }
            UserAction::SetRoles(roles) => {
                let catalog: HashSet<RoleId> = tx
                    .list_roles(env)
                    .await?
                    .into_iter()
                    .map(|r| r.id)
                    .collect();
                if let Some(missing) = roles.iter().find(|r| !catalog.contains(r)) {
                    return Err(CoreError::NotFound(format!("no role with id {missing}")));
                }
                let before = self
                    .detail_in(&mut tx, env, id)
                    .await?
                    .roles
                    .into_iter()
                    .map(|h| h.role.name)
                    .collect::<Vec<_>>();
                tx.set_user_roles(env, id, roles, RoleSource::Admin).await?;
                let after = self
                    .detail_in(&mut tx, env, id)
                    .await?
                    .roles
                    .into_iter()
                    .map(|h| h.role.name)
                    .collect::<Vec<_>>();
                log.push((
                    "user.roles_changed",
                    json!({"before": before, "after": after}),
                ));
            }
            UserAction::LegalHold(on) => {
                if u.legal_hold == *on {
                    return Err(CoreError::Invalid(format!(
                        "'{}' is {} on legal hold",
                        u.user_name,
                        if *on { "already" } else { "not" }
                    )));
                }
                u.legal_hold = *on;
                if *on {
                    u.deactivate_at = None;
                }
                log.push((
                    if *on {
                        "user.legal_hold_set"
                    } else {
                        "user.legal_hold_cleared"
                    },
                    json!({}),
                ));
            }
        }
        if u.provider_id.is_some() {
            u.changed_outside = true;
        }
        u.version += 1;
        u.updated_at = now;
        if !tx.update_user(&u, existing.version).await? {
            return Err(CoreError::Conflict(
                "the user changed while this request ran; try again".into(),
            ));
        }
        let entries: Vec<SyncLogEntry> = log
            .into_iter()
            .map(|(action, details)| SyncLogEntry {
                provider_id: u.provider_id,
                ..admin_entry(
                    env,
                    now,
                    actor,
                    action,
                    ("user", u.id.to_string(), &u.user_name),
                    details,
                )
            })
            .collect();
        tx.append_log(&entries).await?;
        let detail = self.detail_in(&mut tx, env, id).await?;
        tx.commit().await?;
        Ok(detail)
    }

    /// Creates an administrator API token (shown once).
    pub async fn create_admin_token(
        &self,
        env: EnvironmentId,
        label: &str,
        expires_at: Option<Timestamp>,
        actor: &Actor,
    ) -> CoreResult<CreatedAdminToken> {
        let now = self.now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(CoreError::Invalid(
                "a token's expiry must be in the future".into(),
            ));
        }
        let secret = token::generate_with(token::ADMIN_TOKEN_PREFIX);
        let t = AdminToken {
            environment_id: env,
            id: AdminTokenId::new(),
            label: label.trim().into(),
            prefix: secret.prefix.clone(),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        let mut tx = self.store.write().await?;
        tx.insert_admin_token(&t, &secret.hash).await?;
        tx.append_log(&[admin_entry(
            env,
            now,
            actor,
            "admin_token.created",
            ("admin_token", t.id.to_string(), &t.label),
            json!({"token": t.prefix}),
        )])
        .await?;
        tx.commit().await?;
        Ok(CreatedAdminToken {
            token: t,
            secret: secret.secret,
        })
    }

    /// Every administrator token.
    pub async fn list_admin_tokens(&self, env: EnvironmentId) -> CoreResult<Vec<AdminToken>> {
        let mut tx = self.store.read().await?;
        Ok(tx.list_admin_tokens(env).await?)
    }

    /// Revokes an administrator token.
    pub async fn revoke_admin_token(
        &self,
        env: EnvironmentId,
        id: AdminTokenId,
        actor: &Actor,
    ) -> CoreResult<()> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        if !tx.revoke_admin_token(env, id, now).await? {
            return Err(CoreError::NotFound(format!(
                "no live administrator token with id {id}"
            )));
        }
        tx.append_log(&[admin_entry(
            env,
            now,
            actor,
            "admin_token.revoked",
            ("admin_token", id.to_string(), &id.to_string()),
            json!({}),
        )])
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The administrator token a request presents, if it is live.
    pub async fn authenticate_admin(&self, secret: &str) -> CoreResult<AdminToken> {
        let denied = || {
            CoreError::Unauthorized("the API token is missing, invalid, revoked or expired".into())
        };
        let presented = token::hash(secret);
        let now = self.now();
        let mut tx = self.store.read().await?;
        let Some((t, stored)) = tx.find_admin_token_by_hash(&presented).await? else {
            return Err(denied());
        };
        if !token::hashes_match(&stored, &presented) || !t.is_live(now) {
            return Err(denied());
        }
        drop(tx);
        if t.last_used_at
            .is_none_or(|u| now.micros() - u.micros() > 60_000_000)
        {
            let mut w = self.store.write().await?;
            w.touch_admin_token(t.environment_id, t.id, now).await?;
            w.commit().await?;
        }
        Ok(t)
    }

    /// The name of a provider, for listings.
    pub async fn provider_names(
        &self,
        env: EnvironmentId,
    ) -> CoreResult<HashMap<ProviderId, String>> {
        Ok(self
            .list_providers(env)
            .await?
            .into_iter()
            .map(|p| (p.id, p.name))
            .collect())
    }
}
