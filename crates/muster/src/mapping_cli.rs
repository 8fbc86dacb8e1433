//! `muster mapping`: a provider's organization mapping and role mapping, and their preview and
//! re-apply. Each prints a readable result, or JSON with `--json`.

use clap::Subcommand;
use muster_core::ids::{EnvironmentId, GroupId, GroupMappingId, ProviderId};
use muster_core::mapping::config::OrgMappingInput;
use muster_core::mapping::preview::Preview;
use muster_core::mapping::view::MappingView;
use muster_core::model::OrgMethod;
use muster_core::words::count;
use muster_core::Muster;

use crate::output::{
    cli_actor, id_or_name, listed, named_ref, print_json, OrgRef, ProviderRef, RoleRef,
};

named_ref!(
    /// A SCIM group named on the command line: by id, or by its displayName among the
    /// provider's groups (compared without case; Muster keeps a provider's group names unique,
    /// answering 409 `uniqueness` to a second group of the same name).
    GroupRef,
    "a SCIM group's id or displayName"
);

impl GroupRef {
    async fn resolve(
        &self,
        m: &Muster,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> anyhow::Result<GroupId> {
        let mut ids = Self::resolve_all(std::slice::from_ref(self), m, env, provider).await?;
        ids.pop()
            .ok_or_else(|| anyhow::anyhow!("no SCIM group \"{}\"", self.0))
    }

    /// The ids of the groups named, in order; one unknown name fails them all. The provider's
    /// groups are read only when a name is given.
    async fn resolve_all(
        refs: &[Self],
        m: &Muster,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> anyhow::Result<Vec<GroupId>> {
        let groups = if refs.iter().all(|r| r.0.parse::<GroupId>().is_ok()) {
            Vec::new()
        } else {
            m.mapping_groups(env, provider).await?
        };
        refs.iter()
            .map(|r| {
                id_or_name(&r.0, &groups, |g| &g.display_name, |g| g.id).ok_or_else(|| {
                    anyhow::anyhow!(
                        "the provider has no SCIM group with the id or displayName \"{}\" (its groups: {})",
                        r.0,
                        listed(groups.iter().map(|g| g.display_name.as_str()))
                    )
                })
            })
            .collect()
    }
}

#[derive(Debug, Subcommand)]
pub enum MappingCmd {
    /// Show a provider's mappings and whether every SCIM group is mapped.
    Show {
        /// The provider's id or name.
        #[arg(long)]
        provider: ProviderRef,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Choose the organization mapping method (moves nobody by itself: preview, then apply).
    SetOrg {
        /// The provider's id or name.
        #[arg(long)]
        provider: ProviderRef,
        /// single, c42-org-name, attribute or groups.
        #[arg(long, value_parser = parse_method)]
        method: OrgMethod,
        /// single: the organization every new user goes to (its id or name).
        #[arg(long)]
        org: Option<OrgRef>,
        /// attribute: a SCIM attribute path, such as title or
        /// 'addresses[type eq "work"].locality'.
        #[arg(long)]
        attribute: Option<String>,
        /// c42-org-name, attribute: where organizations the mapping creates go (default: the
        /// default organization).
        #[arg(long)]
        parent: Option<OrgRef>,
        /// c42-org-name, attribute, groups: where users the mapping cannot place go (default:
        /// the default organization).
        #[arg(long)]
        unmapped: Option<OrgRef>,
    },
    /// Map one or more SCIM groups to an organization (lowest priority).
    AddGroups {
        /// The provider's id or name.
        #[arg(long)]
        provider: ProviderRef,
        /// A SCIM group's id or displayName (repeat the flag).
        #[arg(long = "group", required = true)]
        groups: Vec<GroupRef>,
        /// The organization's id or name.
        #[arg(long)]
        org: OrgRef,
    },
    /// Change a group mapping entry's groups and organization.
    UpdateGroups {
        /// The provider's id or name.
        #[arg(long)]
        provider: ProviderRef,
        /// The entry's id.
        id: GroupMappingId,
        /// A SCIM group's id or displayName (repeat the flag).
        #[arg(long = "group", required = true)]
        groups: Vec<GroupRef>,
        /// The organization's id or name.
        #[arg(long)]
        org: OrgRef,
    },
    /// Delete a group mapping entry.
    DeleteGroups {
        /// The provider's id or name.
        #[arg(long)]
        provider: ProviderRef,
        /// The entry's id.
        id: GroupMappingId,
    },
    /// Set the priority order of the group mapping entries (every entry, highest first).
    Order {
        /// The provider's id or name.
        #[arg(long)]
        provider: ProviderRef,
        /// Entry ids, highest priority first.
        #[arg(required = true)]
        ids: Vec<GroupMappingId>,
    },
    /// Set a SCIM group's roles (removed roles are taken from its members at once).
    SetRoles {
        /// The provider's id or name.
        #[arg(long)]
        provider: ProviderRef,
        /// The SCIM group's id or displayName.
        #[arg(long)]
        group: GroupRef,
        /// A role's id or name (repeat the flag).
        #[arg(long = "role", required = true)]
        roles: Vec<RoleRef>,
    },
    /// Remove a SCIM group's role mapping (its members lose those roles at once).
    DeleteRoles {
        /// The provider's id or name.
        #[arg(long)]
        provider: ProviderRef,
        /// The SCIM group's id or displayName.
        #[arg(long)]
        group: GroupRef,
    },
    /// List every user the current mappings would move or give other roles.
    Preview {
        /// The provider's id or name.
        #[arg(long)]
        provider: ProviderRef,
        /// List at most this many users (totals count all).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-apply the mappings: perform what the preview lists.
    Apply {
        /// The provider's id or name.
        #[arg(long)]
        provider: ProviderRef,
        /// Apply only if the preview still has this digest.
        #[arg(long)]
        digest: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_method(s: &str) -> Result<OrgMethod, String> {
    OrgMethod::parse(&s.replace('-', "_"))
        .ok_or_else(|| "use single, c42-org-name, attribute or groups".to_string())
}

fn print_view(v: &MappingView) {
    match &v.org_mapping {
        None => println!("Organization mapping: none (new users go to the default organization)"),
        Some(m) => {
            println!("Organization mapping: {}", m.method.as_str());
            if let Some(o) = &m.org {
                println!("  organization: {} ({})", o.name, o.id);
            }
            if let Some(a) = &m.attribute {
                println!("  attribute: {a}");
            }
            if let Some(o) = &m.parent_org {
                println!("  new organizations under: {} ({})", o.name, o.id);
            }
            if let Some(o) = &m.unmapped_org {
                println!("  unmapped users: {} ({})", o.name, o.id);
            }
        }
    }
    if !v.group_mappings.is_empty() {
        println!("Group mappings (by priority):");
        for e in &v.group_mappings {
            let groups: Vec<&str> = e.groups.iter().map(|g| g.display_name.as_str()).collect();
            println!(
                "  {}. {} -> {}  [{}]",
                e.priority,
                groups.join(", "),
                e.org.name,
                e.id
            );
        }
    }
    println!("  {}", v.group_mapping_status.message);
    println!("Role mappings:");
    for r in &v.role_mappings {
        let roles: Vec<&str> = r.roles.iter().map(|x| x.name.as_str()).collect();
        println!("  {} -> {}", r.group.display_name, roles.join(", "));
    }
    println!("  {}", v.role_mapping_status.message);
}

fn print_preview(p: &Preview) {
    println!(
        "{} of {} would change: {}, {}",
        p.changed,
        count(p.users, "user", "users"),
        count(p.org_changes, "move", "moves"),
        count(p.role_changes, "role change", "role changes")
    );
    if !p.orgs_to_create.is_empty() {
        println!("Organizations to create: {}", p.orgs_to_create.join(", "));
    }
    for c in &p.changes {
        let mut parts = Vec::new();
        if let Some(t) = &c.org_to {
            parts.push(format!(
                "org {} -> {}{}",
                c.org_from.name,
                t.name,
                if t.new { " (new)" } else { "" }
            ));
        }
        if let Some(r) = &c.roles_to {
            let show = |v: &[String]| {
                if v.is_empty() {
                    "(organization defaults)".to_string()
                } else {
                    v.join(", ")
                }
            };
            parts.push(format!("roles {} -> {}", show(&c.roles_from), show(r)));
        }
        println!("  {}: {}", c.user_name, parts.join("; "));
    }
    if (p.changes.len() as u64) < p.changed {
        println!("  ... and {} more", p.changed - p.changes.len() as u64);
    }
    println!("Digest: {}", p.digest);
}

pub async fn run_mapping(m: &Muster, env: EnvironmentId, cmd: MappingCmd) -> anyhow::Result<()> {
    let actor = cli_actor();
    let view = match cmd {
        MappingCmd::Show { provider, json } => {
            let provider = provider.resolve(m, env).await?;
            let v = m.mapping_view(env, provider).await?;
            if json {
                return print_json(&serde_json::to_value(&v)?);
            }
            v
        }
        MappingCmd::SetOrg {
            provider,
            method,
            org,
            attribute,
            parent,
            unmapped,
        } => {
            let provider = provider.resolve(m, env).await?;
            let input = OrgMappingInput {
                method: Some(method),
                org_id: OrgRef::resolve_opt(org.as_ref(), m, env).await?,
                attribute,
                parent_org_id: OrgRef::resolve_opt(parent.as_ref(), m, env).await?,
                unmapped_org_id: OrgRef::resolve_opt(unmapped.as_ref(), m, env).await?,
            };
            m.set_org_mapping(env, provider, &input, &actor).await?
        }
        MappingCmd::AddGroups {
            provider,
            groups,
            org,
        } => {
            let provider = provider.resolve(m, env).await?;
            let org = org.resolve(m, env).await?;
            let groups = GroupRef::resolve_all(&groups, m, env, provider).await?;
            m.add_group_mapping(env, provider, &groups, org, &actor)
                .await?
        }
        MappingCmd::UpdateGroups {
            provider,
            id,
            groups,
            org,
        } => {
            let provider = provider.resolve(m, env).await?;
            let org = org.resolve(m, env).await?;
            let groups = GroupRef::resolve_all(&groups, m, env, provider).await?;
            m.update_group_mapping(env, provider, id, &groups, org, &actor)
                .await?
        }
        MappingCmd::DeleteGroups { provider, id } => {
            let provider = provider.resolve(m, env).await?;
            m.delete_group_mapping(env, provider, id, &actor).await?
        }
        MappingCmd::Order { provider, ids } => {
            let provider = provider.resolve(m, env).await?;
            m.reorder_group_mappings(env, provider, &ids, &actor)
                .await?
        }
        MappingCmd::SetRoles {
            provider,
            group,
            roles,
        } => {
            let provider = provider.resolve(m, env).await?;
            let roles = RoleRef::resolve_all(&roles, m, env).await?;
            let group = group.resolve(m, env, provider).await?;
            m.set_role_mapping(env, provider, group, &roles, &actor)
                .await?
        }
        MappingCmd::DeleteRoles { provider, group } => {
            let provider = provider.resolve(m, env).await?;
            let group = group.resolve(m, env, provider).await?;
            m.set_role_mapping(env, provider, group, &[], &actor)
                .await?
        }
        MappingCmd::Preview {
            provider,
            limit,
            json,
        } => {
            let provider = provider.resolve(m, env).await?;
            let p = m.preview_mappings(env, provider, limit).await?;
            if json {
                return print_json(&serde_json::to_value(&p)?);
            }
            print_preview(&p);
            return Ok(());
        }
        MappingCmd::Apply {
            provider,
            digest,
            json,
        } => {
            let provider = provider.resolve(m, env).await?;
            let a = m
                .apply_mappings(env, provider, digest.as_deref(), &actor)
                .await?;
            if json {
                return print_json(&serde_json::to_value(&a)?);
            }
            println!(
                "Re-applied to {}: {} moved, {} with new roles, {} created",
                count(a.users as u64, "user", "users"),
                a.moved,
                a.roles_changed,
                count(a.orgs_created as u64, "organization", "organizations")
            );
            return Ok(());
        }
    };
    print_view(&view);
    Ok(())
}
