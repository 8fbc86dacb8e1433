//! The mapping rules themselves, pure: which organization the four methods (single
//! organization, `c42OrgName`, a custom attribute, SCIM groups by priority) choose for a user,
//! and which roles role mapping gives it. No I/O: [`Rules`] is read once per transaction.

use crate::error::CoreResult;
use crate::ids::EnvironmentId;
use crate::ids::GroupId;
use crate::ids::OrgId;
use crate::ids::ProviderId;
use crate::ids::RoleId;
use crate::mapping::priority::winning_group;
use crate::model::OrgMapping;
use crate::model::OrgMethod;
use crate::model::RoleSource;
use crate::orgs::check_org_name;
use crate::store::MappingRules;
use crate::store::Tx;
use muster_scim::schema::MUSTER_USER_SCHEMA;
use muster_scim::schema::USER_RESOURCE;
use muster_scim::select::Selector;
use serde_json::Map;
use serde_json::Value;
use std::collections::BTreeSet;
use std::collections::HashMap;

/// The path method 2 reads: `c42OrgName` in Muster's extension, where a top-level `c42OrgName`
/// is kept too.
pub(crate) fn c42_path() -> String {
    format!("{MUSTER_USER_SCHEMA}:c42OrgName")
}

/// A provider's mappings, read in one transaction.
pub(crate) struct Rules {
    pub(crate) root: OrgId,
    pub(crate) org: Option<OrgMapping>,
    pub(crate) selector: Option<Selector>,
    /// Group -> (priority, organization), method `groups` only.
    pub(crate) group_org: HashMap<GroupId, (i64, OrgId)>,
    /// Group -> its roles.
    pub(crate) group_roles: HashMap<GroupId, Vec<RoleId>>,
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

/// Why the mapping chose an organization: words, or the SCIM group that won (named when the
/// log entry is written, so the entry shows the group's name, not its id).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Why {
    Text(String),
    Group { id: GroupId, priority: i64 },
}

impl From<String> for Why {
    fn from(s: String) -> Why {
        Why::Text(s)
    }
}

impl From<&str> for Why {
    fn from(s: &str) -> Why {
        Why::Text(s.to_string())
    }
}

/// What the mapping wants for a user's organization.
#[derive(Debug, Clone)]
pub(crate) enum OrgWant {
    /// The mapping does not decide (no method, or *single organization* after creation).
    Keep,
    /// An existing organization.
    Org {
        id: OrgId,
        why: Why,
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
        let read = tx.mapping_rules(env, provider).await?;
        Rules::from_read(tx, env, provider, root, read).await
    }

    /// The rules from a provider's mappings already read ([`crate::store::MappingRules`]); the
    /// group-to-organization entries are read here when that is the method.
    pub(crate) async fn from_read(
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        root: OrgId,
        (org, role_mappings): MappingRules,
    ) -> CoreResult<Rules> {
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
        for (g, r) in role_mappings {
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

    pub(crate) fn unmapped(&self) -> OrgId {
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

    /// Whether the provider has chosen an organization mapping method.
    pub(crate) fn has_org_mapping(&self) -> bool {
        self.org.is_some()
    }

    /// Whether role mapping decides this provider's users' roles.
    pub(crate) fn maps_roles(&self) -> bool {
        !self.group_roles.is_empty()
    }

    pub(crate) fn want_org(
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
                        why: format!("no '{attr}' value: unmapped users").into(),
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
                            )
                            .into(),
                            error: Some(format!("cannot map '{attr}' value: {e}")),
                        },
                    },
                }
            }
            OrgMethod::Groups => match winning_group(groups, &self.group_org) {
                Some((p, g, org)) => OrgWant::Org {
                    id: org,
                    why: Why::Group { id: g, priority: p },
                    error: None,
                },
                None => OrgWant::Org {
                    id: self.unmapped(),
                    why: "in no mapped SCIM group: unmapped users".into(),
                    error: None,
                },
            },
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

/// Whether a user's explicit roles must change to be exactly `target`, set by mapping.
pub(crate) fn roles_differ(current: &[(RoleId, RoleSource)], target: &[RoleId]) -> bool {
    let now: BTreeSet<RoleId> = current.iter().map(|(r, _)| *r).collect();
    let want: BTreeSet<RoleId> = target.iter().copied().collect();
    now != want || current.iter().any(|(_, s)| *s != RoleSource::Mapping)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use serde_json::json;

    fn rules(method: Option<OrgMethod>, attribute: Option<&str>) -> Rules {
        let org = method.map(|method| OrgMapping {
            environment_id: EnvironmentId::new(),
            provider_id: ProviderId::new(),
            method,
            org_id: Some(OrgId::new()),
            attribute: attribute.map(str::to_string),
            parent_org_id: Some(OrgId::new()),
            unmapped_org_id: Some(OrgId::new()),
            updated_at: Timestamp(0),
        });
        let selector = match (method, attribute) {
            (Some(OrgMethod::C42OrgName), _) => Selector::parse(&USER_RESOURCE, &c42_path()).ok(),
            (Some(OrgMethod::Attribute), Some(p)) => Selector::parse(&USER_RESOURCE, p).ok(),
            _ => None,
        };
        Rules {
            root: OrgId::new(),
            org,
            selector,
            group_org: HashMap::new(),
            group_roles: HashMap::new(),
        }
    }

    fn resource(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn org_of(w: &OrgWant) -> Option<OrgId> {
        match w {
            OrgWant::Org { id, .. } => Some(*id),
            _ => None,
        }
    }

    #[test]
    fn no_method_places_new_users_at_the_root_and_keeps_existing_ones() {
        let r = rules(None, None);
        let u = resource(json!({}));
        assert_eq!(org_of(&r.want_org(&u, &[], true)), Some(r.root));
        assert!(matches!(r.want_org(&u, &[], false), OrgWant::Keep));
    }

    #[test]
    fn single_organization_decides_only_at_creation() {
        let r = rules(Some(OrgMethod::Single), None);
        let chosen = r.org.as_ref().and_then(|m| m.org_id);
        let u = resource(json!({}));
        assert_eq!(org_of(&r.want_org(&u, &[], true)), chosen);
        assert!(matches!(r.want_org(&u, &[], false), OrgWant::Keep));
    }

    #[test]
    fn c42_org_name_names_an_organization_under_the_parent_or_sends_to_unmapped() {
        let r = rules(Some(OrgMethod::C42OrgName), None);
        let parent = r.org.as_ref().and_then(|m| m.parent_org_id);
        let u = resource(json!({ MUSTER_USER_SCHEMA: {"c42OrgName": "Sales"} }));
        match r.want_org(&u, &[], false) {
            OrgWant::Named {
                parent: p, name, ..
            } => {
                assert_eq!(Some(p), parent);
                assert_eq!(name, "Sales");
            }
            other => panic!("{other:?}"),
        }
        let missing = resource(json!({}));
        assert_eq!(
            org_of(&r.want_org(&missing, &[], false)),
            Some(r.unmapped())
        );
        let bad = resource(json!({ MUSTER_USER_SCHEMA: {"c42OrgName": "a/b".repeat(200)} }));
        match r.want_org(&bad, &[], false) {
            OrgWant::Org { id, error, .. } => {
                assert_eq!(id, r.unmapped());
                assert!(error.is_some(), "an invalid name is an error in the log");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_custom_attribute_is_read_by_its_path() {
        let r = rules(Some(OrgMethod::Attribute), Some("title"));
        let u = resource(json!({"title": "Engineering"}));
        assert!(
            matches!(r.want_org(&u, &[], false), OrgWant::Named { ref name, .. } if name == "Engineering")
        );
    }

    #[test]
    fn groups_pick_the_highest_priority_mapped_group_or_unmapped() {
        let mut r = rules(Some(OrgMethod::Groups), None);
        let (g1, g2, stray) = (GroupId::new(), GroupId::new(), GroupId::new());
        let (o1, o2) = (OrgId::new(), OrgId::new());
        r.group_org.insert(g1, (2, o1));
        r.group_org.insert(g2, (1, o2));
        let u = resource(json!({}));
        assert_eq!(
            org_of(&r.want_org(&u, &[g1, g2], false)),
            Some(o2),
            "priority 1 wins"
        );
        assert_eq!(org_of(&r.want_org(&u, &[g1, stray], false)), Some(o1));
        assert_eq!(org_of(&r.want_org(&u, &[stray], false)), Some(r.unmapped()));
    }

    #[test]
    fn role_mapping_gives_the_union_and_falls_back_to_org_defaults() {
        let mut r = rules(None, None);
        let (admin_role, mapped_role) = (RoleId::new(), RoleId::new());
        // No role mapping: an administrator's roles stay; roles held by a mapping now gone are
        // dropped, so the organization's defaults apply.
        assert_eq!(r.want_roles(&[], &[(admin_role, RoleSource::Admin)]), None);
        assert_eq!(
            r.want_roles(&[], &[(mapped_role, RoleSource::Mapping)]),
            Some(vec![])
        );
        let (g1, g2) = (GroupId::new(), GroupId::new());
        let (a, b) = (RoleId::new(), RoleId::new());
        r.group_roles.insert(g1, vec![a]);
        r.group_roles.insert(g2, vec![a, b]);
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(r.want_roles(&[g1, g2], &[]), Some(want), "union, once each");
        assert_eq!(
            r.want_roles(&[], &[]),
            Some(vec![]),
            "in no mapped group: the defaults"
        );
        assert!(
            roles_differ(&[(a, RoleSource::Admin)], &[a]),
            "an admin role becomes a mapped one"
        );
        assert!(!roles_differ(&[(a, RoleSource::Mapping)], &[a]));
    }
}
