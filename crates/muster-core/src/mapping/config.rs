//! Configuring a provider's mappings: the organization method, group-to-organization entries,
//! and group-to-role mappings, each change logged.

use crate::error::CoreError;
use crate::error::CoreResult;
use crate::ids::EnvironmentId;
use crate::ids::GroupId;
use crate::ids::GroupMappingId;
use crate::ids::OrgId;
use crate::ids::ProviderId;
use crate::ids::RoleId;
use crate::mapping::placement::Cause;
use crate::mapping::rules::Aspects;
use crate::mapping::view::{
    GroupMappingView, GroupSummary, MappingStatus, MappingView, OrgMappingView, OrgSummary,
    RoleMappingView, RoleSummary,
};
use crate::model::name_key as key;
use crate::model::Actor;
use crate::model::GroupOrgMapping;
use crate::model::Org;
use crate::model::OrgMapping;
use crate::model::OrgMethod;
use crate::model::OrgStatus;
use crate::model::Provider;
use crate::model::Role;
use crate::model::SyncLogEntry;
use crate::muster::Muster;
use crate::store::Tx;
use crate::synclog::event::Event;
use crate::synclog::provider_entry;
use muster_scim::schema::USER_RESOURCE;
use muster_scim::select::Selector;
use serde_json::json;
use std::collections::HashMap;
use std::collections::HashSet;

// ---------------------------------------------------------------------------------------------
// Administration: choosing the method, group and role mappings, preview and apply.

/// What an administrator sets as a provider's organization mapping.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

impl Muster {
    pub(crate) async fn mapping_provider(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        id: ProviderId,
    ) -> CoreResult<Provider> {
        tx.find_provider(env, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no provider with id {id}")))
    }

    pub(crate) async fn active_org(
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
    pub(crate) async fn provider_groups(
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

    /// Every group of the provider, by name: what its mappings can name.
    pub async fn mapping_groups(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> CoreResult<Vec<GroupSummary>> {
        let mut tx = self.store.read().await?;
        self.mapping_provider(&mut tx, env, provider).await?;
        self.provider_groups(&mut tx, env, provider).await
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

    pub(crate) async fn mapping_view_in(
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
            Event::MappingOrgMethodSet,
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
    pub(crate) async fn check_entry_groups(
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
            Event::MappingGroupMappingAdded,
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
            Event::MappingGroupMappingUpdated,
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
            Event::MappingGroupMappingDeleted,
            json!({"id": id}),
        );
        self.log_and_view(tx, env, provider, entry).await
    }

    /// Logs a mapping change and commits it, answering with the mappings as they now are.
    pub(crate) async fn log_and_view(
        &self,
        mut tx: Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        entry: SyncLogEntry,
    ) -> CoreResult<MappingView> {
        self.record(&mut tx, &[entry]).await?;
        let view = self.mapping_view_in(&mut tx, env, provider).await?;
        tx.commit().await?;
        Ok(view)
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
                Event::MappingRoleMappingDeleted
            } else {
                Event::MappingRoleMappingSet
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
            self.record(&mut tx, &log).await?;
            let view = self.mapping_view_in(&mut tx, env, provider).await?;
            tx.commit().await?;
            return Ok(view);
        }
        Err(CoreError::Conflict(
            "users changed while the role mapping was saved; try again".into(),
        ))
    }
}
