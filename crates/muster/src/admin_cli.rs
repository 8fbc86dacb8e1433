//! Administration commands beyond providers: administrator API tokens, organizations, roles and
//! users. Each prints a readable result, or JSON with `--json`.

use anyhow::Context;
use clap::Subcommand;
use muster_core::ids::{EnvironmentId, UserId};
use muster_core::model::{Actor, OrgStatus, UserStatus};
use muster_core::orgs::OrgTree;
use muster_core::store::UserQuery;
use muster_core::users::directory::{UserAction, UserDetail};
use muster_core::words::count;
use muster_core::Muster;
use serde_json::json;

use crate::output::{
    parse_duration_secs, parse_time, pick_admin_token, print_json, OrgRef, ProviderRef, RoleRef,
};

#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Create an administrator who signs in to the console. The password is read from standard
    /// input (typed twice, hidden, at a terminal).
    #[command(visible_alias = "add")]
    Create {
        /// The name to sign in with.
        #[arg(long)]
        username: String,
        /// customer-cloud-admin (everything), identity-management-admin (providers and
        /// mappings) or audit-log-viewer (the sync log, read-only).
        #[arg(long, value_parser = parse_admin_role, default_value = "customer-cloud-admin")]
        role: muster_core::model::AdminRole,
    },
    /// List the console's administrators.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give an administrator another role; their console sessions end at once.
    SetRole {
        /// The administrator's username.
        #[arg(long)]
        username: String,
        /// customer-cloud-admin, identity-management-admin or audit-log-viewer.
        #[arg(long, value_parser = parse_admin_role)]
        role: muster_core::model::AdminRole,
    },
    /// Set an administrator's email address and which reports they get (docs/notifications.md).
    SetNotifications {
        /// The administrator's username.
        #[arg(long)]
        username: String,
        /// Where notices go; an empty value removes it.
        #[arg(long)]
        email: Option<String>,
        /// daily, errors (the daily report only when there were errors) or never.
        #[arg(long, value_parser = ["daily", "errors", "never"])]
        report: Option<String>,
    },
    /// Remove an administrator; their console sessions end at once.
    Remove {
        /// The administrator's username.
        #[arg(long)]
        username: String,
    },
    /// Administrator API tokens for the REST API.
    #[command(subcommand)]
    Token(AdminTokenCmd),
}

/// The administrator with this username (case-insensitively).
async fn admin_id(
    m: &Muster,
    env: EnvironmentId,
    username: &str,
) -> anyhow::Result<muster_core::ids::AdminId> {
    m.list_admins(env)
        .await?
        .into_iter()
        .find(|a| a.username.eq_ignore_ascii_case(username))
        .map(|a| a.id)
        .with_context(|| format!("no administrator named '{username}'"))
}

fn parse_admin_role(s: &str) -> Result<muster_core::model::AdminRole, String> {
    muster_core::model::AdminRole::parse(&s.replace('-', "_")).ok_or_else(|| {
        "use customer-cloud-admin, identity-management-admin or audit-log-viewer".to_string()
    })
}

/// Reads a password from standard input: at a terminal, twice and without echo.
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let stty = |arg: &str| {
        let _ = std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status();
    };
    let ask = |prompt: &str| -> anyhow::Result<String> {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        stty("-echo");
        let mut line = String::new();
        let read = stdin.lock().read_line(&mut line);
        stty("echo");
        eprintln!();
        read?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    };
    let first = ask("Password: ")?;
    let second = ask("Again: ")?;
    if first != second {
        anyhow::bail!("the two passwords differ");
    }
    Ok(first)
}

#[derive(Debug, Subcommand)]
pub enum AdminTokenCmd {
    /// Create an API token (shown once).
    #[command(visible_alias = "add")]
    Create {
        /// A label to recognise it by.
        #[arg(long, default_value = "api")]
        label: String,
        /// Expire after this long (such as 90d).
        #[arg(long, value_parser = parse_duration_secs)]
        expires_in: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List API tokens (prefixes only).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API token.
    Revoke {
        /// The token's id, its prefix (msa_…) or its label.
        #[arg(value_name = "TOKEN")]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCmd {
    /// List organizations.
    List {
        /// Only active or deactivated ones.
        #[arg(long)]
        status: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the organization tree.
    Tree {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add an organization (under the default organization unless --parent).
    #[command(visible_alias = "add")]
    Create {
        /// Its name (3 to 220 characters).
        #[arg(long)]
        name: String,
        /// The parent organization's id or name.
        #[arg(long)]
        parent: Option<OrgRef>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rename an organization.
    Rename {
        /// The organization's id or name.
        #[arg(value_name = "ORG")]
        id: OrgRef,
        /// The new name.
        #[arg(long)]
        name: String,
    },
    /// Move an organization under another parent.
    Move {
        /// The organization's id or name.
        #[arg(value_name = "ORG")]
        id: OrgRef,
        /// The new parent's id or name.
        #[arg(long)]
        parent: OrgRef,
    },
    /// Deactivate an organization and every organization below it.
    Deactivate {
        /// The organization's id or name.
        #[arg(value_name = "ORG")]
        id: OrgRef,
    },
    /// Reactivate an organization.
    Reactivate {
        /// The organization's id or name.
        #[arg(value_name = "ORG")]
        id: OrgRef,
    },
    /// Set an organization's default roles, or make it inherit its parent's (--inherit).
    DefaultRoles {
        /// The organization's id or name.
        #[arg(value_name = "ORG")]
        id: OrgRef,
        /// A role's id or name (repeat the flag).
        #[arg(long = "role")]
        roles: Vec<RoleRef>,
        /// Inherit the parent's default roles.
        #[arg(long, conflicts_with = "roles")]
        inherit: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    /// List the role catalog.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a role.
    #[command(visible_alias = "create")]
    Add {
        /// Its name.
        #[arg(long)]
        name: String,
        /// What it allows.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a role nothing uses.
    Delete {
        /// The role's id or name.
        #[arg(value_name = "ROLE")]
        id: RoleRef,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// List users.
    List {
        /// Only this organization's (its id or name).
        #[arg(long)]
        org: Option<OrgRef>,
        /// Only active, blocked or deactivated ones.
        #[arg(long)]
        status: Option<String>,
        /// Only this provider's (its id or name), or "local".
        #[arg(long)]
        provider: Option<String>,
        /// Text in the userName or the name shown (displayName, else the given and family names), or a whole email address or externalId.
        #[arg(long)]
        search: Option<String>,
        /// Those with this email address (without case).
        #[arg(long)]
        email: Option<String>,
        /// Those their provider gave this externalId (the provider's own id for the person).
        #[arg(long)]
        external_id: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one user: what its provider sent, organization, roles and SCIM groups.
    Show {
        /// The user's id or userName (or an email address or externalId only one user has).
        #[arg(value_name = "USER")]
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a local user.
    #[command(visible_alias = "add")]
    Create {
        /// The userName.
        #[arg(long)]
        user_name: String,
        /// A display name.
        #[arg(long)]
        display_name: Option<String>,
        /// An email address.
        #[arg(long)]
        email: Option<String>,
        /// The organization's id or name (default: the default organization).
        #[arg(long)]
        org: Option<OrgRef>,
    },
    /// Block a user (cannot sign in; data kept).
    Block {
        /// The user's id or userName (or an email address or externalId only one user has).
        #[arg(value_name = "USER")]
        id: String,
    },
    /// Unblock a user.
    Unblock {
        /// The user's id or userName (or an email address or externalId only one user has).
        #[arg(value_name = "USER")]
        id: String,
    },
    /// Deactivate a user at once.
    Deactivate {
        /// The user's id or userName (or an email address or externalId only one user has).
        #[arg(value_name = "USER")]
        id: String,
    },
    /// Reactivate a user.
    Reactivate {
        /// The user's id or userName (or an email address or externalId only one user has).
        #[arg(value_name = "USER")]
        id: String,
    },
    /// Move a user to another organization.
    Move {
        /// The user's id or userName (or an email address or externalId only one user has).
        #[arg(value_name = "USER")]
        id: String,
        /// The organization's id or name.
        #[arg(long)]
        org: OrgRef,
    },
    /// Set a user's roles (none: the organization's defaults apply).
    Roles {
        /// The user's id or userName (or an email address or externalId only one user has).
        #[arg(value_name = "USER")]
        id: String,
        /// A role's id or name (repeat the flag).
        #[arg(long = "role")]
        roles: Vec<RoleRef>,
    },
    /// Set or clear legal hold.
    LegalHold {
        /// The user's id or userName (or an email address or externalId only one user has).
        #[arg(value_name = "USER")]
        id: String,
        /// on or off.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

fn actor() -> Actor {
    crate::output::cli_actor()
}

fn print_tree(t: &OrgTree, depth: usize) {
    let status = if t.org.status == OrgStatus::Deactivated {
        "  (deactivated)"
    } else {
        ""
    };
    println!(
        "{}{}  [{}]{status}",
        "  ".repeat(depth),
        t.org.name,
        t.org.id
    );
    for c in &t.children {
        print_tree(c, depth + 1);
    }
}

/// A user as `--json` prints it: the shape of the API's `GET /api/v1/users/{id}`.
async fn user_detail_json(
    m: &Muster,
    env: EnvironmentId,
    d: &UserDetail,
) -> anyhow::Result<serde_json::Value> {
    let providers = m.provider_names(env).await?;
    let mapping = m.explain_mapping(env, &d.user, &d.groups).await?;
    Ok(serde_json::to_value(
        muster_web::api::body::UserBody::new(d, &providers).with_mapping(mapping),
    )?)
}

/// A user's owner as an administrator reads it: the provider by name (and id), or "local".
async fn owner(m: &Muster, env: EnvironmentId, d: &UserDetail) -> String {
    match d.user.provider_id {
        None => "local".into(),
        Some(p) => match m.get_provider(env, p).await {
            Ok(provider) => format!("provider {} ({p})", provider.name),
            // Deleted since: its id is all there is to show.
            Err(_) => format!("provider {p}"),
        },
    }
}

async fn print_user(m: &Muster, env: EnvironmentId, d: &UserDetail) {
    let owner = owner(m, env, d).await;
    let u = &d.user;
    println!("{} ({})", u.user_name, u.id);
    if let Some(name) = u.full_name() {
        println!("  Name:          {name}");
    }
    if let Some(email) = u.primary_email() {
        println!("  Email:         {email}");
    }
    if let Some(external) = &u.external_id {
        println!("  External ID:   {external}");
    }
    println!(
        "  Status:        {}{}",
        d.user.status.as_str(),
        if d.user.legal_hold {
            ", on legal hold"
        } else {
            ""
        }
    );
    println!("  Organization:  {}", d.org.name);
    let roles: Vec<String> = d
        .roles
        .iter()
        .map(|h| format!("{} ({})", h.role.name, h.source.as_str()))
        .collect();
    println!(
        "  Roles:         {}",
        if roles.is_empty() {
            "none".into()
        } else {
            roles.join(", ")
        }
    );
    if !d.groups.is_empty() {
        let groups: Vec<&str> = d.groups.iter().map(|g| g.display.as_str()).collect();
        println!("  SCIM groups:   {}", groups.join(", "));
    }
    println!("  Owner:         {owner}");
    match m.explain_mapping(env, u, &d.groups).await {
        Ok(Some(e)) => {
            for (i, line) in e.lines().iter().enumerate() {
                let head = if i == 0 {
                    "  Mapping:       "
                } else {
                    "                 "
                };
                println!("{head}{line}");
            }
        }
        Ok(None) => {}
        Err(e) => println!("  Mapping:       could not be read ({e})"),
    }
    println!("  Created:       {}", u.created_at);
    println!("  Updated:       {}", u.updated_at);
    if let Some(t) = d.user.deactivate_at {
        println!("  Deactivation:  due {t}");
    }
    if d.user.changed_outside {
        println!("  Changed outside provisioning until the provider next updates the user.");
    }
}

pub async fn run_admin_tokens(m: &Muster, env: EnvironmentId, cmd: AdminCmd) -> anyhow::Result<()> {
    let cmd = match cmd {
        AdminCmd::Create { username, role } => {
            let password = read_password()?;
            let a = m
                .create_admin(env, &username, &password, role, &actor())
                .await?;
            println!(
                "Administrator '{}' created ({}). Sign in at {}/console.",
                a.username,
                a.role.title(),
                m.settings.public_url
            );
            return Ok(());
        }
        AdminCmd::List { json: as_json } => {
            let admins = m.list_admins(env).await?;
            if as_json {
                return print_json(&serde_json::to_value(&admins)?);
            }
            if admins.is_empty() {
                println!("No administrators yet. Add the first with: muster admin create --username admin");
            } else {
                println!("{:<24}  {:<34}  LAST SIGN-IN", "USERNAME", "ROLE");
            }
            for a in admins {
                println!(
                    "{:<24}  {:<34}  {}",
                    a.username,
                    a.role.title(),
                    a.last_sign_in_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "never".into())
                );
            }
            return Ok(());
        }
        AdminCmd::SetRole { username, role } => {
            let id = admin_id(m, env, &username).await?;
            let a = m.set_admin_role(env, id, role, &actor()).await?;
            println!(
                "{} is now {}; their sessions have ended.",
                a.username,
                a.role.title()
            );
            return Ok(());
        }
        AdminCmd::SetNotifications {
            username,
            email,
            report,
        } => {
            let id = admin_id(m, env, &username).await?;
            let report = report
                .as_deref()
                .and_then(muster_core::model::ReportPreference::parse);
            let a = m
                .set_admin_notifications(env, id, email.map(Some), report, &actor())
                .await?;
            println!(
                "{}: email {}, report {}.",
                a.username,
                a.email.as_deref().unwrap_or("none"),
                a.report.as_str()
            );
            return Ok(());
        }
        AdminCmd::Remove { username } => {
            let id = admin_id(m, env, &username).await?;
            m.remove_admin(env, id, &actor()).await?;
            println!("Administrator '{username}' removed; their sessions have ended.");
            return Ok(());
        }
        AdminCmd::Token(cmd) => cmd,
    };
    match cmd {
        AdminTokenCmd::Create {
            label,
            expires_in,
            json,
        } => {
            let expires = expires_in.map(|s| m.now().plus_secs(s));
            let c = m.create_admin_token(env, &label, expires, &actor()).await?;
            if json {
                print_json(
                    &json!({"id": c.token.id.to_string(), "label": c.token.label, "prefix": c.token.prefix, "secret": c.secret,
                                   "expiresAt": c.token.expires_at.map(|t| t.to_rfc3339())}),
                )?;
            } else {
                println!("API token created ({}).\n\n  Token: {}\n\nIt is shown only once. Send it as 'Authorization: Bearer <token>' to /api/v1.", c.token.id, c.secret);
            }
        }
        AdminTokenCmd::List { json } => {
            let now = m.now();
            let tokens = m.list_admin_tokens(env).await?;
            if json {
                print_json(&json!(tokens.iter().map(|t| json!({"id": t.id.to_string(), "label": t.label, "prefix": t.prefix,
                    "createdAt": t.created_at.to_rfc3339(), "expiresAt": t.expires_at.map(|x| x.to_rfc3339()),
                    "revokedAt": t.revoked_at.map(|x| x.to_rfc3339()), "lastUsedAt": t.last_used_at.map(|x| x.to_rfc3339()), "live": t.is_live(now)})).collect::<Vec<_>>()))?;
            } else if tokens.is_empty() {
                println!("No administrator API tokens. Make one with: muster admin token add --label LABEL");
            } else {
                println!("{:<36}  {:<12}  {:<20}  STATE", "ID", "PREFIX", "LABEL");
                for t in tokens {
                    println!(
                        "{}  {:<12}  {:<20}  {}",
                        t.id,
                        t.prefix,
                        t.label,
                        if t.is_live(now) {
                            "live"
                        } else {
                            "revoked or expired"
                        }
                    );
                }
            }
        }
        AdminTokenCmd::Revoke { id } => {
            let t = pick_admin_token(&m.list_admin_tokens(env).await?, &id, "API token")?;
            m.revoke_admin_token(env, t.id, &actor()).await?;
            println!("API token {} ({}) revoked.", t.prefix, t.id);
        }
    }
    Ok(())
}

pub async fn run_org(m: &Muster, env: EnvironmentId, cmd: OrgCmd) -> anyhow::Result<()> {
    let a = actor();
    match cmd {
        OrgCmd::List { status, json } => {
            let status = status
                .as_deref()
                .map(|s| OrgStatus::parse(s).context("--status must be active or deactivated"))
                .transpose()?;
            let orgs = m.list_orgs(env, status).await?;
            if json {
                print_json(&serde_json::to_value(&orgs)?)?;
            } else {
                println!(
                    "{:<36}  {:<11}  ORGANIZATION (DEFAULT ROLES)",
                    "ID", "STATUS"
                );
                for o in orgs {
                    let roles: Vec<&str> = o
                        .effective_default_roles
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect();
                    println!(
                        "{}  {:<11}  {}  (default roles: {})",
                        o.org.id,
                        o.org.status.as_str(),
                        o.path.join(" / "),
                        roles.join(", ")
                    );
                }
            }
        }
        OrgCmd::Tree { json } => {
            let tree = m.org_tree(env).await?;
            if json {
                print_json(&serde_json::to_value(&tree)?)?;
            } else {
                print_tree(&tree, 0);
            }
        }
        OrgCmd::Create { name, parent, json } => {
            let parent = OrgRef::resolve_opt(parent.as_ref(), m, env).await?;
            let org = m.create_org(env, &name, parent, &a).await?;
            if json {
                print_json(&serde_json::to_value(m.get_org(env, org.id).await?)?)?;
            } else {
                println!("Organization \"{}\" created ({}).", org.name, org.id);
            }
        }
        OrgCmd::Rename { id, name } => {
            let org = m
                .rename_org(env, id.resolve(m, env).await?, &name, &a)
                .await?;
            println!("Organization renamed to \"{}\".", org.name);
        }
        OrgCmd::Move { id, parent } => {
            let (id, parent) = (id.resolve(m, env).await?, parent.resolve(m, env).await?);
            m.move_org(env, id, parent, &a).await?;
            println!("Organization moved.");
        }
        OrgCmd::Deactivate { id } => {
            let changed = m
                .set_org_active(env, id.resolve(m, env).await?, false, &a)
                .await?;
            println!(
                "{} deactivated.",
                count(changed.len() as u64, "organization", "organizations")
            );
        }
        OrgCmd::Reactivate { id } => {
            let changed = m
                .set_org_active(env, id.resolve(m, env).await?, true, &a)
                .await?;
            println!(
                "{} reactivated.",
                count(changed.len() as u64, "organization", "organizations")
            );
        }
        OrgCmd::DefaultRoles { id, roles, inherit } => {
            let id = id.resolve(m, env).await?;
            let roles = RoleRef::resolve_all(&roles, m, env).await?;
            let view = m
                .set_org_default_roles(env, id, if inherit { None } else { Some(roles) }, &a)
                .await?;
            let names: Vec<&str> = view
                .effective_default_roles
                .iter()
                .map(|r| r.name.as_str())
                .collect();
            println!(
                "Default roles of \"{}\": {}",
                view.org.name,
                names.join(", ")
            );
        }
    }
    Ok(())
}

pub async fn run_role(m: &Muster, env: EnvironmentId, cmd: RoleCmd) -> anyhow::Result<()> {
    match cmd {
        RoleCmd::List { json } => {
            let roles = m.list_roles(env).await?;
            if json {
                print_json(&serde_json::to_value(&roles)?)?;
            } else {
                println!("{:<36}  {:<36}  DESCRIPTION", "ID", "NAME");
                for r in roles {
                    println!("{}  {:<36}  {}", r.id, r.name, r.description);
                }
            }
        }
        RoleCmd::Add { name, description } => {
            let r = m.create_role(env, &name, &description, &actor()).await?;
            println!("Role \"{}\" added ({}).", r.name, r.id);
        }
        RoleCmd::Delete { id } => {
            let id = id.resolve(m, env).await?;
            m.delete_role(env, id, &actor()).await?;
            println!("Role {id} deleted.");
        }
    }
    Ok(())
}

/// The user a command names: by id, or by userName, compared without case as SCIM compares
/// userNames (RFC 7643 §4.1.1). A userName is unique in its environment, so it names one user.
/// A user named on the command line: by id or userName, else by an email address or the
/// provider's externalId when exactly one user has it.
async fn find_user(m: &Muster, env: EnvironmentId, key: &str) -> anyhow::Result<UserId> {
    if let Ok(id) = key.parse::<UserId>() {
        return Ok(id);
    }
    if let Some(id) = m.user_id_by_name(env, key).await? {
        return Ok(id);
    }
    let by_email = UserQuery {
        email: Some(key.to_string()),
        ..UserQuery::default()
    };
    let by_external = UserQuery {
        external_id: Some(key.to_string()),
        ..UserQuery::default()
    };
    for (q, what) in [(by_email, "the address"), (by_external, "the externalId")] {
        let (users, _) = m.query_users(env, &q, None, 10).await?;
        match users.as_slice() {
            [] => continue,
            [one] => return Ok(one.id),
            many => {
                let names: Vec<String> = many
                    .iter()
                    .map(|u| format!("{} ({})", u.user_name, u.id))
                    .collect();
                anyhow::bail!(
                    "{} users have {what} \"{key}\": {}; name one by its userName or id",
                    many.len(),
                    names.join(", ")
                );
            }
        }
    }
    anyhow::bail!("no user has the id, userName, email address or externalId \"{key}\"")
}

pub async fn run_user(m: &Muster, env: EnvironmentId, cmd: UserCmd) -> anyhow::Result<()> {
    let a = actor();
    let action = |id: String, act: UserAction| (id, act);
    let (id, act) = match cmd {
        UserCmd::List {
            org,
            status,
            provider,
            search,
            email,
            external_id,
            limit,
            json,
        } => {
            let q = UserQuery {
                org: OrgRef::resolve_opt(org.as_ref(), m, env).await?,
                status: status
                    .as_deref()
                    .map(|s| {
                        UserStatus::parse(s)
                            .context("--status must be active, blocked or deactivated")
                    })
                    .transpose()?,
                provider: match provider.as_deref() {
                    None => None,
                    Some("local") => Some(None),
                    Some(p) => Some(Some(
                        p.parse::<ProviderRef>()
                            .map_err(anyhow::Error::msg)?
                            .resolve(m, env)
                            .await?,
                    )),
                },
                text: search,
                email,
                external_id,
                ..UserQuery::default()
            };
            let (users, more) = m.query_users(env, &q, None, limit).await?;
            if json {
                print_json(&json!(users.iter().map(|u| json!({"id": u.id.to_string(), "userName": u.user_name, "status": u.status.as_str(),
                    "orgId": u.org_id.to_string(), "providerId": u.provider_id.map(|p| p.to_string()),
                    "email": u.primary_email(), "externalId": u.external_id})).collect::<Vec<_>>()))?;
            } else if users.is_empty() {
                println!("No users match. Users arrive from a provider's SCIM requests, or: muster user create --user-name NAME");
            } else {
                println!("{:<36}  {:<11}  USERNAME", "ID", "STATUS");
                for u in &users {
                    println!("{}  {:<11}  {}", u.id, u.status.as_str(), u.user_name);
                }
                if more.is_some() {
                    // On stderr, so that the table piped elsewhere stays a table.
                    eprintln!(
                        "The first {} users shown; more match. Raise --limit (up to 1000) or narrow with --search, --org, --status or --provider.",
                        users.len()
                    );
                }
            }
            return Ok(());
        }
        UserCmd::Show { id, json } => {
            let d = m.user_detail(env, find_user(m, env, &id).await?).await?;
            if json {
                print_json(&user_detail_json(m, env, &d).await?)?;
            } else {
                print_user(m, env, &d).await;
            }
            return Ok(());
        }
        UserCmd::Create {
            user_name,
            display_name,
            email,
            org,
        } => {
            let d = m
                .create_local_user(
                    env,
                    &user_name,
                    display_name.as_deref(),
                    email.as_deref(),
                    OrgRef::resolve_opt(org.as_ref(), m, env).await?,
                    &a,
                )
                .await?;
            print_user(m, env, &d).await;
            return Ok(());
        }
        UserCmd::Block { id } => action(id, UserAction::Block),
        UserCmd::Unblock { id } => action(id, UserAction::Unblock),
        UserCmd::Deactivate { id } => action(id, UserAction::Deactivate),
        UserCmd::Reactivate { id } => action(id, UserAction::Reactivate),
        UserCmd::Move { id, org } => action(id, UserAction::Move(org.resolve(m, env).await?)),
        UserCmd::Roles { id, roles } => action(
            id,
            UserAction::SetRoles(RoleRef::resolve_all(&roles, m, env).await?),
        ),
        UserCmd::LegalHold { id, state } => action(id, UserAction::LegalHold(state == "on")),
    };
    let id = find_user(m, env, &id).await?;
    let d = m.act_on_user(env, id, act, &a).await?;
    print_user(m, env, &d).await;
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum SyncLogCmd {
    /// List entries, newest first.
    List {
        #[command(flatten)]
        filter: LogFilterArgs,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the matching entries as CSV to standard output (streamed).
    Export {
        #[command(flatten)]
        filter: LogFilterArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct LogFilterArgs {
    /// From this time, inclusive: RFC 3339, a date (midnight UTC) or how long ago (24h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Until this time, exclusive: RFC 3339, a date (midnight UTC) or how long ago (1h).
    #[arg(long)]
    until: Option<String>,
    /// Only this provider's entries (its id or name).
    #[arg(long)]
    provider: Option<ProviderRef>,
    /// Only entries about this user or group (id).
    #[arg(long)]
    subject: Option<String>,
    /// Only this action (user.created), or family (user.).
    #[arg(long)]
    action: Option<String>,
    /// Only success or error entries.
    #[arg(long, value_parser = ["success", "error"])]
    result: Option<String>,
}

impl LogFilterArgs {
    async fn query(
        &self,
        m: &Muster,
        env: EnvironmentId,
    ) -> anyhow::Result<muster_core::store::LogQuery> {
        let now = m.now();
        let time =
            |v: &Option<String>, name: &str| -> anyhow::Result<Option<muster_core::Timestamp>> {
                v.as_deref()
                    .map(|t| parse_time(t, now).map_err(|e| anyhow::anyhow!("--{name}: {e}")))
                    .transpose()
            };
        let q = muster_core::store::LogQuery {
            since: time(&self.since, "since")?,
            until: time(&self.until, "until")?,
            provider: match &self.provider {
                Some(p) => Some(p.resolve(m, env).await?),
                None => None,
            },
            subject: self.subject.clone(),
            action: self.action.clone(),
            outcome: match self.result.as_deref() {
                Some("error") => Some(muster_core::model::Outcome::Error),
                Some(_) => Some(muster_core::model::Outcome::Success),
                None => None,
            },
        };
        if let Some(p) = q.range_problem() {
            anyhow::bail!("--since and --until: {p}");
        }
        Ok(q)
    }
}

pub async fn run_sync_log(m: &Muster, env: EnvironmentId, cmd: SyncLogCmd) -> anyhow::Result<()> {
    use std::io::Write;
    let names = m.provider_names(env).await?;
    match cmd {
        SyncLogCmd::List {
            filter,
            limit,
            json,
        } => {
            let (rows, more) = m
                .query_sync_log(env, &filter.query(m, env).await?, None, limit)
                .await?;
            if json {
                let entries: Vec<_> = rows
                    .iter()
                    .map(|(id, e)| muster_core::synclog::query::LogEntryView::new(*id, e, &names))
                    .collect();
                print_json(&entries)?;
            } else if rows.is_empty() {
                println!("No entries match.");
            } else {
                println!(
                    "{:<24}  {:<16}  {:<28}  {:<7}  SUBJECT",
                    "TIME", "PROVIDER", "ACTION", "RESULT"
                );
                for (_, e) in &rows {
                    let provider = e
                        .provider_id
                        .and_then(|p| names.get(&p))
                        .map(String::as_str)
                        .unwrap_or("-");
                    let subject = e.subject_name.as_deref().unwrap_or("-");
                    let line = match (e.outcome, e.message.as_deref()) {
                        (muster_core::model::Outcome::Error, Some(why)) => {
                            format!("{subject}: {why}")
                        }
                        _ => subject.to_string(),
                    };
                    println!(
                        "{:<24}  {:<16}  {:<28}  {:<7}  {line}",
                        e.at.to_string(),
                        provider,
                        e.action.as_str(),
                        e.outcome.as_str(),
                    );
                }
                if more.is_some() {
                    // On stderr, so that the table piped elsewhere stays a table.
                    eprintln!(
                        "The newest {} entries shown; more match. Raise --limit (up to 1000), narrow with the filters, or use `muster sync-log export`.",
                        rows.len()
                    );
                }
            }
        }
        SyncLogCmd::Export { filter } => {
            let q = filter.query(m, env).await?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            out.write_all(muster_core::synclog::query::csv_header().as_bytes())?;
            let mut before = None;
            loop {
                let (rows, next) = m.query_sync_log(env, &q, before, 1000).await?;
                for (id, e) in &rows {
                    out.write_all(
                        muster_core::synclog::query::csv_line(*id, e, &names).as_bytes(),
                    )?;
                }
                match next {
                    Some(n) => before = Some(n),
                    None => break,
                }
            }
            out.flush()?;
        }
    }
    Ok(())
}
