//! The command line: `muster serve`, `muster migrate`, and administration commands. Every
//! command reads the same configuration as the server, so it acts on the same database, and
//! takes `--json` for output scripts can read.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use muster_core::ids::TokenId;
use muster_core::model::{Provider, ProviderToken};
use muster_core::Timestamp;
use serde_json::json;

use crate::config::{Config, Overrides};
use crate::output::{cli_actor, describe_secs, parse_duration_secs, print_json, ProviderRef};
use crate::serve;

/// Muster: SCIM 2.0 provisioning for your applications.
#[derive(Debug, Parser)]
#[command(name = "muster", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub overrides: Overrides,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (SCIM, API, console).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Provisioning providers and their tokens.
    #[command(subcommand)]
    Provider(ProviderCmd),
    /// Console administrators, their email reports and their API tokens.
    #[command(subcommand)]
    Admin(crate::admin_cli::AdminCmd),
    /// Application credentials: read-only API tokens for the applications Muster serves.
    #[command(subcommand)]
    App(crate::app_cli::AppCmd),
    /// Webhook endpoints that receive the event feed.
    #[command(subcommand)]
    Webhook(crate::webhook_cli::WebhookCmd),
    /// Email notices: send a test message.
    #[command(subcommand)]
    Notify(NotifyCmd),
    /// Organizations.
    #[command(subcommand)]
    Org(crate::admin_cli::OrgCmd),
    /// The role catalog.
    #[command(subcommand)]
    Role(crate::admin_cli::RoleCmd),
    /// Users.
    #[command(subcommand)]
    User(crate::admin_cli::UserCmd),
    /// SCIM groups: list them, and show one's members and what the mappings do with them.
    #[command(subcommand)]
    Group(crate::group_cli::GroupCmd),
    /// The sync log: list and export.
    #[command(subcommand, name = "sync-log")]
    SyncLog(crate::admin_cli::SyncLogCmd),
    /// Write a consistent copy of the SQLite database while the server runs.
    Backup {
        /// Where to write the copy (must not exist yet).
        #[arg(long, value_name = "FILE", required_unless_present = "file")]
        to: Option<std::path::PathBuf>,
        /// The same as --to: `muster backup FILE`.
        #[arg(value_name = "FILE", conflicts_with = "to")]
        file: Option<std::path::PathBuf>,
    },
    /// Organization mapping and role mapping: set, preview, re-apply.
    #[command(subcommand)]
    Mapping(crate::mapping_cli::MappingCmd),
}

#[derive(Debug, Subcommand)]
pub enum ProviderCmd {
    /// Add a provider; prints its SCIM base URL and a token (shown once).
    #[command(visible_alias = "create")]
    Add {
        /// Display name, such as "Okta".
        #[arg(long)]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List providers.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one provider.
    Show {
        /// The provider's id or name.
        #[arg(value_name = "PROVIDER")]
        id: ProviderRef,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a provider's display name or deactivation delay.
    Update {
        /// The provider's id or name.
        #[arg(value_name = "PROVIDER")]
        id: ProviderRef,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// New deactivation delay: 0 (at once), or a number with s, m, h or d (15m, 7d); at most 90d.
        #[arg(long, value_parser = parse_duration_secs)]
        deactivation_delay: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A provider's bearer tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Show or set the mass-deactivation guard (docs/notifications.md), with the users whose
    /// deactivation is pending.
    Guard {
        /// The provider's id or name.
        #[arg(value_name = "PROVIDER")]
        id: ProviderRef,
        /// on or off.
        #[arg(long, value_parser = ["on", "off"])]
        state: Option<String>,
        /// Trips above this share of active users (percent, 1 to 100) ...
        #[arg(long)]
        percent: Option<i64>,
        /// ... and above this many users ...
        #[arg(long)]
        min_users: Option<i64>,
        /// ... within this window (a number with s, m, h or d, such as 1h).
        #[arg(long, value_parser = parse_duration_secs)]
        window: Option<i64>,
    },
    /// Release the guard's hold: the held deactivations proceed on their schedule.
    Release {
        /// The provider's id or name.
        #[arg(value_name = "PROVIDER")]
        id: ProviderRef,
    },
    /// Restore the users the guard holds: unblocked, their deactivations cancelled.
    Restore {
        /// The provider's id or name.
        #[arg(value_name = "PROVIDER")]
        id: ProviderRef,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token (shown once). Several can be live at once, to rotate without downtime.
    #[command(visible_alias = "create")]
    Add {
        /// The provider's id or name.
        #[arg(long)]
        provider: ProviderRef,
        /// A label to recognise the token by.
        #[arg(long, default_value = "")]
        label: String,
        /// Expire after this long (such as 90d).
        #[arg(long, value_parser = parse_duration_secs, conflicts_with = "expires_at")]
        expires_in: Option<i64>,
        /// Expire at this time (RFC 3339, such as 2027-01-01T00:00:00Z).
        #[arg(long)]
        expires_at: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a provider's tokens (prefixes only).
    List {
        /// The provider's id or name.
        #[arg(long)]
        provider: ProviderRef,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's id, or the prefix `muster provider token list` shows (mst_…).
        #[arg(value_name = "TOKEN")]
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `muster notify`.
#[derive(Debug, clap::Subcommand)]
pub enum NotifyCmd {
    /// Send a test message now, through the configured SMTP server, and print its answer.
    Test {
        /// The address to send to.
        #[arg(long)]
        to: String,
    },
}

fn provider_json(p: &Provider, scim_base_url: &str) -> serde_json::Value {
    json!({
        "id": p.id.to_string(),
        "name": p.name,
        "scimBaseUrl": scim_base_url,
        "deactivationDelaySeconds": p.deactivation_delay_secs,
        "createdAt": p.created_at.to_rfc3339(),
        "lastSyncAt": p.last_sync_at.map(|t| t.to_rfc3339()),
    })
}

fn token_json(t: &ProviderToken, now: Timestamp) -> serde_json::Value {
    json!({
        "id": t.id.to_string(),
        "providerId": t.provider_id.to_string(),
        "label": t.label,
        "prefix": t.prefix,
        "createdAt": t.created_at.to_rfc3339(),
        "expiresAt": t.expires_at.map(|x| x.to_rfc3339()),
        "revokedAt": t.revoked_at.map(|x| x.to_rfc3339()),
        "lastUsedAt": t.last_used_at.map(|x| x.to_rfc3339()),
        "live": t.is_live(now),
    })
}

/// Runs an administration command against the configured database.
pub async fn run_command(cfg: &Config, cmd: Command) -> anyhow::Result<()> {
    let app = serve::open(cfg).await?;
    let (m, env) = (&app.muster, app.env.id);
    let result = match cmd {
        Command::Provider(p) => run_provider(m, env, p).await,
        Command::Admin(c) => crate::admin_cli::run_admin_tokens(m, env, c).await,
        Command::App(c) => crate::app_cli::run_app(m, env, c).await,
        Command::Webhook(c) => crate::webhook_cli::run_webhook(m, env, c).await,
        Command::Notify(NotifyCmd::Test { to }) => {
            match crate::mail_sender::send_test(cfg, &to).await {
                Ok(answer) => {
                    println!("Sent to {to}. The SMTP server answered: {answer}");
                    Ok(())
                }
                Err(e) => Err(e.context("the test message was not sent")),
            }
        }
        Command::Org(c) => crate::admin_cli::run_org(m, env, c).await,
        Command::Role(c) => crate::admin_cli::run_role(m, env, c).await,
        Command::User(c) => crate::admin_cli::run_user(m, env, c).await,
        Command::Group(c) => crate::group_cli::run_group(m, env, c).await,
        Command::SyncLog(c) => crate::admin_cli::run_sync_log(m, env, c).await,
        Command::Mapping(c) => crate::mapping_cli::run_mapping(m, env, c).await,
        Command::Backup { to, file } => match to.or(file) {
            Some(to) => backup(&app.store, &to).await,
            None => anyhow::bail!("say where to write the copy: muster backup FILE"),
        },
        Command::Serve | Command::Migrate => Ok(()),
    };
    app.store.close().await;
    result
}

async fn backup(store: &muster_store::AnyStore, to: &std::path::Path) -> anyhow::Result<()> {
    let muster_store::AnyStore::Sqlite(sqlite) = store else {
        anyhow::bail!(
            "muster backup copies a SQLite database; back PostgreSQL up with pg_dump (see docs/operations.md)"
        );
    };
    if to.exists() {
        anyhow::bail!("{} already exists: choose a new file", to.display());
    }
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "cannot write the backup to {}: the directory {} does not exist",
            to.display(),
            dir.display()
        );
    }
    let started = std::time::Instant::now();
    let users = sqlite
        .backup_to(to)
        .await
        .with_context(|| format!("cannot write the backup to {}", to.display()))?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    println!(
        "Backup written to {} ({:.1} MiB, {users} users) in {:.1} s; it passed an integrity check.",
        to.display(),
        bytes as f64 / 1_048_576.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn run_provider(
    m: &muster_core::Muster,
    env: muster_core::ids::EnvironmentId,
    cmd: ProviderCmd,
) -> anyhow::Result<()> {
    match cmd {
        ProviderCmd::Guard {
            id,
            state,
            percent,
            min_users,
            window,
        } => {
            let id = id.resolve(m, env).await?;
            let input = muster_core::notify::guard::GuardInput {
                enabled: state.map(|s| s == "on"),
                percent,
                min_users,
                window_secs: window,
            };
            let g = if input.enabled.is_some()
                || percent.is_some()
                || min_users.is_some()
                || window.is_some()
            {
                m.set_provider_guard(env, id, &input, &cli_actor()).await?
            } else {
                m.provider_guard(env, id).await?
            };
            println!(
                "Guard {}: trips above {}% and {} users turned off within {} minutes.",
                if g.enabled { "on" } else { "off" },
                g.percent,
                g.min_users,
                g.window_secs / 60
            );
            match g.held_since {
                Some(t) => println!(
                    "HOLDING every deactivation since {} ({} users turned off): `muster provider release {id}` or `muster provider restore {id}`.",
                    t.to_rfc3339(),
                    g.held_turned_off
                ),
                None => println!("Not holding."),
            }
            const LISTED: u64 = 1000;
            let pending = m.pending_deactivations(env, id, LISTED).await?;
            if pending.is_empty() {
                println!("No deactivation pending.");
                return Ok(());
            }
            println!();
            println!("Deactivations pending:");
            println!("{:<36}  {:<24}  USERNAME", "USER ID", "DUE");
            for u in &pending {
                println!(
                    "{}  {:<24}  {}",
                    u.id,
                    u.deactivate_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    u.user_name
                );
            }
            if pending.len() as u64 >= LISTED {
                eprintln!("The first {LISTED} shown, soonest due first; there may be more.");
            }
            Ok(())
        }
        ProviderCmd::Release { id } => {
            let id = id.resolve(m, env).await?;
            m.release_guard(env, id, &cli_actor()).await?;
            println!("Released: the held deactivations proceed on their schedule (those due at the scheduler's next run).");
            Ok(())
        }
        ProviderCmd::Restore { id } => {
            let id = id.resolve(m, env).await?;
            let n = m.restore_held_users(env, id, &cli_actor()).await?;
            println!(
                "Restored {n} users: unblocked, their deactivations cancelled. The hold has ended."
            );
            Ok(())
        }
        ProviderCmd::Add { name, json } => {
            let created = m.create_provider(env, &name, &cli_actor()).await?;
            if json {
                print_json(&json!({
                    "provider": provider_json(&created.provider, &created.scim_base_url),
                    "token": {"id": created.token.id.to_string(), "prefix": created.token.prefix, "secret": created.secret},
                }))?;
            } else {
                println!("Provider \"{}\" created.", created.provider.name);
                println!();
                println!("  Provider ID:    {}", created.provider.id);
                println!("  SCIM base URL:  {}", created.scim_base_url);
                println!("  Bearer token:   {}", created.secret);
                println!();
                println!("Enter the SCIM base URL and the token in your identity provider now: the token is shown");
                println!("only once. Muster stores only its hash. Make more with `muster provider token add`.");
            }
            Ok(())
        }
        ProviderCmd::List { json } => {
            let providers = m.list_providers(env).await?;
            if json {
                print_json(&json!(providers
                    .iter()
                    .map(|p| provider_json(p, &m.scim_base_url(p.id)))
                    .collect::<Vec<_>>()))?;
            } else if providers.is_empty() {
                println!("No providers yet. Add one with: muster provider add --name \"Okta\"");
            } else {
                println!(
                    "{:<36}  {:<24}  {:<12}  SCIM BASE URL",
                    "ID", "NAME", "DELAY"
                );
                for p in providers {
                    println!(
                        "{:<36}  {:<24}  {:<12}  {}",
                        p.id,
                        p.name,
                        describe_secs(p.deactivation_delay_secs),
                        m.scim_base_url(p.id)
                    );
                }
            }
            Ok(())
        }
        ProviderCmd::Show { id, json } => {
            let id = id.resolve(m, env).await?;
            let p = m.get_provider(env, id).await?;
            let tokens = m.list_tokens(env, id).await?;
            if json {
                let now = m.now();
                let mut v = provider_json(&p, &m.scim_base_url(p.id));
                v["tokens"] = json!(tokens
                    .iter()
                    .map(|t| token_json(t, now))
                    .collect::<Vec<_>>());
                print_json(&v)?;
            } else {
                println!("{}", p.name);
                println!("  Provider ID:         {}", p.id);
                println!("  SCIM base URL:       {}", m.scim_base_url(p.id));
                println!(
                    "  Deactivation delay:  {}",
                    describe_secs(p.deactivation_delay_secs)
                );
                println!("  Created:             {}", p.created_at);
                println!(
                    "  Last sync:           {}",
                    p.last_sync_at
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "never".into())
                );
                println!(
                    "  Live tokens:         {}",
                    tokens.iter().filter(|t| t.is_live(m.now())).count()
                );
            }
            Ok(())
        }
        ProviderCmd::Update {
            id,
            name,
            deactivation_delay,
            json,
        } => {
            let id = id.resolve(m, env).await?;
            if name.is_none() && deactivation_delay.is_none() {
                bail!("nothing to change: give --name or --deactivation-delay");
            }
            let p = m
                .update_provider(env, id, name.as_deref(), deactivation_delay, &cli_actor())
                .await?;
            if json {
                print_json(&provider_json(&p, &m.scim_base_url(p.id)))?;
            } else {
                println!(
                    "Provider \"{}\" updated; deactivation delay: {}.",
                    p.name,
                    describe_secs(p.deactivation_delay_secs)
                );
            }
            Ok(())
        }
        ProviderCmd::Token(t) => run_token(m, env, t).await,
    }
}

async fn run_token(
    m: &muster_core::Muster,
    env: muster_core::ids::EnvironmentId,
    cmd: TokenCmd,
) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Add {
            provider,
            label,
            expires_in,
            expires_at,
            json,
        } => {
            let provider = m.get_provider(env, provider.resolve(m, env).await?).await?;
            let expires = match (expires_in, expires_at) {
                (Some(secs), _) => Some(m.now().plus_secs(secs)),
                (None, Some(at)) => Some(Timestamp::parse_rfc3339(&at).context(
                    "--expires-at must be an RFC 3339 time such as 2027-01-01T00:00:00Z",
                )?),
                (None, None) => None,
            };
            let created = m
                .create_token(env, provider.id, &label, expires, &cli_actor())
                .await?;
            if json {
                let mut v = token_json(&created.token, m.now());
                v["secret"] = json!(created.secret);
                print_json(&v)?;
            } else {
                println!(
                    "Token created for provider \"{}\" ({}).",
                    provider.name, provider.id
                );
                println!();
                println!("  Token ID:      {}", created.token.id);
                println!("  Bearer token:  {}", created.secret);
                if let Some(e) = created.token.expires_at {
                    println!("  Expires:       {e}");
                }
                println!();
                println!("The token is shown only once. Revoke the old one when the provider uses this one:");
                println!("  muster provider token revoke <old token's id or prefix>");
            }
        }
        TokenCmd::List { provider, json } => {
            let provider = provider.resolve(m, env).await?;
            let tokens = m.list_tokens(env, provider).await?;
            let now = m.now();
            if json {
                print_json(&json!(tokens
                    .iter()
                    .map(|t| token_json(t, now))
                    .collect::<Vec<_>>()))?;
            } else {
                println!(
                    "{:<36}  {:<12}  {:<16}  {:<8}  {:<24}  LAST USED",
                    "ID", "PREFIX", "LABEL", "STATE", "EXPIRES"
                );
                for t in tokens {
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else if t.is_live(now) {
                        "live"
                    } else {
                        "expired"
                    };
                    println!(
                        "{:<36}  {:<12}  {:<16}  {:<8}  {:<24}  {}",
                        t.id,
                        t.prefix,
                        t.label,
                        state,
                        t.expires_at
                            .map(|x| x.to_string())
                            .unwrap_or_else(|| "never".into()),
                        t.last_used_at
                            .map(|x| x.to_string())
                            .unwrap_or_else(|| "never".into())
                    );
                }
            }
        }
        TokenCmd::Revoke { id, json } => {
            let (id, named) = find_token(m, env, &id).await?;
            m.revoke_token(env, id, &cli_actor()).await?;
            if json {
                print_json(&json!({"id": id.to_string(), "revoked": true}))?;
            } else {
                println!("Token {named} revoked.");
            }
        }
    }
    Ok(())
}

/// The token a command names: its id, or the prefix a token list shows (`mst_` and eight
/// characters), looked for among every provider's tokens. With how to name it in the answer.
async fn find_token(
    m: &muster_core::Muster,
    env: muster_core::ids::EnvironmentId,
    text: &str,
) -> anyhow::Result<(TokenId, String)> {
    let text = text.trim().trim_end_matches('…');
    if let Ok(id) = text.parse::<TokenId>() {
        return Ok((id, id.to_string()));
    }
    if !text.starts_with("mst_") {
        anyhow::bail!(
            "\"{text}\" is neither a token's id nor its prefix (mst_…): `muster provider token list --provider PROVIDER` shows both"
        );
    }
    let mut found = Vec::new();
    for p in m.list_providers(env).await? {
        for t in m.list_tokens(env, p.id).await? {
            if t.prefix == text {
                found.push((t.id, p.name.clone()));
            }
        }
    }
    match found.as_slice() {
        [(id, provider)] => Ok((*id, format!("{text} of provider \"{provider}\""))),
        [] => anyhow::bail!("no token has the prefix {text}"),
        many => anyhow::bail!(
            "{} tokens have the prefix {text}; give the id of the one to revoke: {}",
            many.len(),
            many.iter()
                .map(|(id, p)| format!("{id} (provider \"{p}\")"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("0"), Ok(0));
        assert_eq!(parse_duration_secs("15m"), Ok(900));
        assert_eq!(parse_duration_secs("7d"), Ok(604_800));
        assert_eq!(parse_duration_secs("2h"), Ok(7200));
        assert!(parse_duration_secs("soon").is_err());
        assert!(parse_duration_secs("5y").is_err());
        assert_eq!(describe_secs(900), "15 minutes");
        assert_eq!(describe_secs(60), "1 minute");
        assert_eq!(describe_secs(86_400 * 2), "2 days");
        assert_eq!(describe_secs(0), "at once");
    }
}
