//! Organizations: a tree under the environment's root, each active or deactivated, each with
//! default roles of its own or inherited from its parent. A user with no explicit roles holds
//! its organization's effective defaults (the fallback role mapping relies on).

use crate::clock::Timestamp;
use crate::error::CoreError;
use crate::error::CoreResult;
use crate::error::StoreError;
use crate::error::Unique;
use crate::ids::EnvironmentId;
use crate::ids::OrgId;
use crate::ids::RoleId;
use crate::model::name_key as key;
use crate::model::Actor;
use crate::model::Org;
use crate::model::OrgStatus;
use crate::muster::Muster;
use crate::store::Tx;

pub(crate) mod index;
use crate::synclog::admin_entry;
use crate::synclog::event::Event;
use serde_json::json;

/// The shortest and longest organization names.
pub const ORG_NAME_CHARS: (usize, usize) = (3, 220);

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

pub(crate) use index::Orgs;
pub use index::{OrgTree, OrgView};

impl Muster {
    pub(crate) async fn root_org(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
    ) -> CoreResult<Org> {
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
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::OrgCreated,
                ("org", org.id.to_string(), &org.name),
                json!({"parent": parent.name}),
            )],
        )
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
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::OrgRenamed,
                ("org", id.to_string(), &org.name),
                json!({"before": before, "after": org.name}),
            )],
        )
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
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::OrgMoved,
                ("org", id.to_string(), &org.name),
                json!({"before": from, "after": parent.name}),
            )],
        )
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
            Event::OrgReactivated
        } else {
            Event::OrgDeactivated
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
        self.record(&mut tx, &log).await?;
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
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::OrgDefaultRolesChanged,
                ("org", id.to_string(), &org.name),
                json!({"before": before, "after": names, "inherited": roles.is_none()}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(view)
    }
}
