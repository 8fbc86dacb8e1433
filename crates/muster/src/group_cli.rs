//! `muster group`: the SCIM groups providers push (read-only: the providers own them), and what
//! each provider's mappings do with a group's members.

use clap::Subcommand;
use muster_core::ids::{EnvironmentId, GroupId};
use muster_core::mapping::view::GroupSummary;
use muster_core::model::Provider;
use muster_core::Muster;
use serde_json::json;

use crate::output::{id_or_name, print_json, ProviderRef};

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// List SCIM groups, with their member counts.
    List {
        /// Only this provider's (its id or name).
        #[arg(long)]
        provider: Option<ProviderRef>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a SCIM group: its members, and where the provider's mappings put them.
    Show {
        /// The group's id or displayName (compared without case).
        #[arg(value_name = "GROUP")]
        group: String,
        /// The provider whose group it is, when several providers have a group of that name.
        #[arg(long)]
        provider: Option<ProviderRef>,
        /// Print JSON: the API's `GET /api/v1/groups/{id}`, with `placement`.
        #[arg(long)]
        json: bool,
    },
}

/// The providers a command is about, with their groups.
async fn groups_of(
    m: &Muster,
    env: EnvironmentId,
    provider: Option<&ProviderRef>,
) -> anyhow::Result<Vec<(Provider, Vec<GroupSummary>)>> {
    let providers = m.list_providers(env).await?;
    let chosen = match provider {
        Some(p) => {
            let id = p.resolve(m, env).await?;
            providers.into_iter().filter(|p| p.id == id).collect()
        }
        None => providers,
    };
    let mut out = Vec::with_capacity(chosen.len());
    for p in chosen {
        let groups = m.mapping_groups(env, p.id).await?;
        out.push((p, groups));
    }
    Ok(out)
}

/// A group named on the command line: its id, or its displayName among the providers' groups.
async fn find_group(
    m: &Muster,
    env: EnvironmentId,
    name: &str,
    provider: Option<&ProviderRef>,
) -> anyhow::Result<GroupId> {
    if let Ok(id) = name.parse::<GroupId>() {
        return Ok(id);
    }
    // A provider's group names are unique (compared as `mapping` compares them): at most one
    // match a provider.
    let mut found: Vec<(String, GroupId)> = Vec::new();
    for (p, groups) in groups_of(m, env, provider).await? {
        if let Some(id) = id_or_name(name, &groups, |g| &g.display_name, |g| g.id) {
            found.push((p.name, id));
        }
    }
    match found.as_slice() {
        [(_, id)] => Ok(*id),
        [] => anyhow::bail!(
            "no SCIM group has the id or displayName \"{name}\"; `muster group list` lists them"
        ),
        many => anyhow::bail!(
            "{} providers have a group \"{name}\" ({}): name one with --provider",
            many.len(),
            many.iter()
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub async fn run_group(m: &Muster, env: EnvironmentId, cmd: GroupCmd) -> anyhow::Result<()> {
    match cmd {
        GroupCmd::List { provider, json } => {
            let all = groups_of(m, env, provider.as_ref()).await?;
            if json {
                let rows: Vec<_> = all
                    .iter()
                    .flat_map(|(p, groups)| {
                        groups.iter().map(move |g| {
                            json!({"id": g.id.to_string(), "displayName": g.display_name,
                                   "providerId": p.id.to_string(), "providerName": p.name,
                                   "members": g.members})
                        })
                    })
                    .collect();
                return print_json(&rows);
            }
            if all.iter().all(|(_, groups)| groups.is_empty()) {
                println!("No SCIM groups. A provider pushes them (Okta's Push Groups, Entra ID's group provisioning).");
                return Ok(());
            }
            println!(
                "{:<36}  {:<20}  {:>7}  DISPLAY NAME",
                "ID", "PROVIDER", "MEMBERS"
            );
            for (p, groups) in &all {
                for g in groups {
                    println!(
                        "{}  {:<20}  {:>7}  {}",
                        g.id, p.name, g.members, g.display_name
                    );
                }
            }
            Ok(())
        }
        GroupCmd::Show {
            group,
            provider,
            json,
        } => {
            let id = find_group(m, env, &group, provider.as_ref()).await?;
            let (g, members) = m.group_with_members(env, id).await?;
            let placement = m.mapping_view(env, g.provider_id).await?.placement_of(id);
            let providers = m.provider_names(env).await?;
            if json {
                let mut v = serde_json::to_value(muster_web::api::body::GroupDetail::new(
                    &g, members, &providers,
                ))?;
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "placement".into(),
                        json!({"organization": placement.org, "roles": placement.roles}),
                    );
                }
                return print_json(&v);
            }
            println!("{} ({})", g.display_name, g.id);
            println!(
                "  Provider:      {}",
                providers
                    .get(&g.provider_id)
                    .map(String::as_str)
                    .unwrap_or("(removed)")
            );
            if let Some(x) = &g.external_id {
                println!("  External ID:   {x}");
            }
            println!("  Members:       {}", members.len());
            println!("  Placement:     {}", placement.org);
            if placement.roles.is_empty() {
                println!("  Roles:         Role mapping: none for this group.");
            } else {
                println!(
                    "  Roles:         Role mapping: {}",
                    placement.roles.join(", ")
                );
            }
            println!("  Created:       {}", g.created_at);
            println!("  Updated:       {}", g.updated_at);
            if !members.is_empty() {
                println!();
                println!("{:<36}  MEMBER", "USER ID");
                for u in &members {
                    println!("{}  {}", u.user_id, u.display);
                }
            }
            Ok(())
        }
    }
}
