//! The organizations of an environment held in memory, indexed for tree questions: what
//! placing a user, the events and the console's tree read. Apart from the rest of `orgs` (which
//! is the service's), so that the service's memo can keep one without the two modules importing
//! each other.

use std::collections::HashMap;

use crate::clock::Timestamp;
use crate::error::{CoreError, CoreResult};
use crate::ids::{EnvironmentId, OrgId, RoleId};
use crate::model::{name_key as key, Org, OrgStatus, Role};
use crate::store::Tx;

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

/// The organizations of an environment, indexed for tree questions.
#[derive(Debug)]
pub(crate) struct Orgs {
    pub(crate) by_id: HashMap<OrgId, Org>,
    pub(crate) defaults: HashMap<OrgId, Vec<RoleId>>,
    pub(crate) roles: HashMap<RoleId, Role>,
}

impl Orgs {
    pub(crate) async fn load(tx: &mut Box<dyn Tx>, env: EnvironmentId) -> CoreResult<Orgs> {
        Ok(Orgs::from_tree(tx.org_tree(env).await?))
    }

    /// The organizations of a tree already read.
    pub(crate) fn from_tree(tree: crate::store::OrgTree) -> Orgs {
        let by_id = tree.orgs.into_iter().map(|o| (o.id, o)).collect();
        let mut defaults: HashMap<OrgId, Vec<RoleId>> = HashMap::new();
        for (org, role) in tree.defaults {
            defaults.entry(org).or_default().push(role);
        }
        let roles = tree.roles.into_iter().map(|r| (r.id, r)).collect();
        Orgs {
            by_id,
            defaults,
            roles,
        }
    }

    /// The root organization (the one without a parent).
    pub(crate) fn root(&self) -> Option<OrgId> {
        self.by_id
            .values()
            .find(|o| o.parent_id.is_none())
            .map(|o| o.id)
    }

    pub(crate) fn get(&self, id: OrgId) -> CoreResult<&Org> {
        self.by_id
            .get(&id)
            .ok_or_else(|| CoreError::NotFound(format!("no organization with id {id}")))
    }

    pub(crate) fn ancestors(&self, id: OrgId) -> Vec<OrgId> {
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

    pub(crate) fn descendants(&self, id: OrgId) -> Vec<OrgId> {
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

    pub(crate) fn defaults_from(&self, id: OrgId) -> Option<OrgId> {
        std::iter::once(id)
            .chain(self.ancestors(id))
            .find(|o| self.by_id.get(o).is_some_and(|o| o.own_default_roles))
    }

    pub(crate) fn effective_defaults(&self, id: OrgId) -> Vec<Role> {
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

    pub(crate) fn view(&self, id: OrgId) -> CoreResult<OrgView> {
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

    pub(crate) fn tree(&self, id: OrgId) -> OrgTree {
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

/// An empty organization with this id: the tree of an id not among the organizations read.
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
