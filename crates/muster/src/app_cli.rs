//! `muster app`: application credentials, read-only API tokens with scopes for the applications
//! Muster serves.

use clap::Subcommand;
use muster_core::auth::apps::parse_scopes;
use muster_core::ids::EnvironmentId;
use muster_core::model::AdminToken;
use muster_core::Muster;
use serde_json::json;

use crate::output::{cli_actor, pick_admin_token, print_json};

#[derive(Debug, Subcommand)]
pub enum AppCmd {
    /// Add an application credential; its token (`mapp_…`) is shown once.
    #[command(visible_alias = "create")]
    Add {
        /// Which application uses it.
        #[arg(long)]
        name: String,
        /// Comma-separated: directory:read (users, groups, organizations, roles), events:read.
        #[arg(long, default_value = "directory:read,events:read")]
        scopes: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List application credentials, with their last use.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give a credential a new token (shown once); the old one stops working at once.
    Rotate {
        /// The credential's id, name, or token prefix (mapp_…).
        #[arg(value_name = "APP")]
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a credential at once.
    Revoke {
        /// The credential's id, name, or token prefix (mapp_…).
        #[arg(value_name = "APP")]
        id: String,
    },
}

fn app_json(t: &AdminToken) -> serde_json::Value {
    json!({
        "id": t.id.to_string(),
        "name": t.label,
        "scopes": t.scopes.clone().unwrap_or_default(),
        "prefix": t.prefix,
        "createdAt": t.created_at.to_rfc3339(),
        "lastUsedAt": t.last_used_at.map(|x| x.to_rfc3339()),
        "revokedAt": t.revoked_at.map(|x| x.to_rfc3339()),
    })
}

fn show_secret(t: &AdminToken, secret: &str, json: bool) -> anyhow::Result<()> {
    if json {
        let mut v = app_json(t);
        v["secret"] = json!(secret);
        return print_json(&v);
    }
    println!(
        "Application credential '{}' ({}).\n\n  Token: {secret}\n\nIt is shown only once. The application sends it as 'Authorization: Bearer <token>' to /api/v1.",
        t.label, t.id
    );
    Ok(())
}

/// Runs `muster app ...`.
pub async fn run_app(m: &Muster, env: EnvironmentId, cmd: AppCmd) -> anyhow::Result<()> {
    match cmd {
        AppCmd::Add { name, scopes, json } => {
            let scopes = parse_scopes(&scopes)?;
            let c = m.create_app(env, &name, &scopes, &cli_actor()).await?;
            show_secret(&c.token, &c.secret, json)
        }
        AppCmd::List { json } => {
            let apps = m.list_apps(env).await?;
            if json {
                return print_json(&apps.iter().map(app_json).collect::<Vec<_>>());
            }
            if apps.is_empty() {
                println!("No application credentials. Make one with: muster app add --name NAME");
            } else {
                println!(
                    "{:<36}  {:<20}  {:<28}  {:<14}  LAST USED",
                    "ID", "NAME", "SCOPES", "PREFIX"
                );
            }
            for t in apps {
                let scopes: Vec<&str> = t.scopes.iter().flatten().map(|s| s.as_str()).collect();
                println!(
                    "{}  {:<20}  {:<28}  {:<14}  {}{}",
                    t.id,
                    t.label,
                    scopes.join(","),
                    format!("{}…", t.prefix),
                    t.last_used_at
                        .map(|x| x.to_rfc3339())
                        .unwrap_or_else(|| "never".into()),
                    if t.revoked_at.is_some() {
                        "  (revoked)"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        AppCmd::Rotate { id, json } => {
            let app = pick_admin_token(&m.list_apps(env).await?, &id, "application credential")?;
            let c = m.rotate_app(env, app.id, &cli_actor()).await?;
            show_secret(&c.token, &c.secret, json)
        }
        AppCmd::Revoke { id } => {
            let app = pick_admin_token(&m.list_apps(env).await?, &id, "application credential")?;
            m.revoke_app(env, app.id, &cli_actor()).await?;
            println!(
                "Application credential '{}' ({}) revoked.",
                app.label, app.id
            );
            Ok(())
        }
    }
}
