//! What administrators see of a provider's mappings: the method, the entries, the role
//! mappings, and which groups are mapped.

use crate::ids::GroupId;
use crate::ids::GroupMappingId;
use crate::ids::OrgId;
use crate::ids::RoleId;
use crate::model::OrgMethod;
use serde::Serialize;
use std::collections::HashSet;

/// A group as mapping screens show it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgSummary {
    /// Its id.
    pub id: OrgId,
    /// Its name.
    pub name: String,
}

/// One entry of the group-to-organization mapping, with names.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleMappingView {
    /// The group.
    pub group: GroupSummary,
    /// Its roles, by name.
    pub roles: Vec<RoleSummary>,
}

/// A role as mapping screens show it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleSummary {
    /// Its id.
    pub id: RoleId,
    /// Its name.
    pub name: String,
}

/// Whether every SCIM group of the provider is mapped (the administrator guide's messages).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    pub(crate) fn of(groups: &[GroupSummary], mapped: &HashSet<GroupId>) -> MappingStatus {
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
                    "{} {} not mapped: {}",
                    crate::words::count(unmapped.len() as u64, "SCIM group", "SCIM groups"),
                    if unmapped.len() == 1 { "is" } else { "are" },
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// What a provider's mappings do with the members of one of its SCIM groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPlacement {
    /// Where the organization mapping puts them, in words.
    pub org: String,
    /// The roles the group's role mapping gives, by name; empty when it has none.
    pub roles: Vec<String>,
}

impl MappingView {
    /// What these mappings do with the members of `group`: the organization mapping entry that
    /// names it and its priority (or why the method places them otherwise), and the roles its
    /// role mapping gives.
    pub fn placement_of(&self, group: GroupId) -> GroupPlacement {
        let entries = self.group_mappings.len();
        let org = match self.org_mapping.as_ref().map(|o| o.method) {
            Some(OrgMethod::Groups) => match self
                .group_mappings
                .iter()
                .find(|e| e.groups.iter().any(|g| g.id == group))
            {
                Some(e) if e.priority == 1 => format!(
                    "Organization mapping: {}, priority 1 of {entries}: its members go there.",
                    e.org.name
                ),
                Some(e) => format!(
                    "Organization mapping: {}, priority {} of {entries}: its members go there \
                     unless a group of a higher priority also has them.",
                    e.org.name, e.priority
                ),
                None => "Organization mapping: this group is in no entry; its members go where \
                         their other groups, or the unmapped users' organization, put them."
                    .into(),
            },
            Some(_) => "Organization mapping: this provider places users by another method than \
                        SCIM groups."
                .into(),
            None => "Organization mapping: none chosen for this provider yet.".into(),
        };
        let roles = self
            .role_mappings
            .iter()
            .find(|r| r.group.id == group)
            .map(|r| r.roles.iter().map(|x| x.name.clone()).collect())
            .unwrap_or_default();
        GroupPlacement { org, roles }
    }
}

/// The organization mapping method, with names.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
