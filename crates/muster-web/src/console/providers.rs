//! Identity Management, Provisioning (the administrator guide, Steps 2 to 7): adding a provider
//! and showing its SCIM base URL and token once, and a provider's details — tokens, deactivation
//! delay, SCIM groups, mappings with their status messages, preview and re-apply, last sync and
//! recent errors.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use muster_core::ids::{GroupId, GroupMappingId, OrgId, ProviderId, RoleId, TokenId};
use muster_core::mapping::config::OrgMappingInput;
use muster_core::mapping::preview::Preview;
use muster_core::mapping::view::{GroupSummary, MappingView, RoleMappingView};
use muster_core::model::{OrgMethod, OrgStatus, Role};
use muster_core::orgs::OrgView;
use muster_core::CoreError;
use serde::Deserialize;

use super::access::Providers;
use super::html::{render, Opt, Shell};
use super::shell::{
    duration_words, error_page, internal, redirect, status_of, when, Console, Id, Posted,
};
use crate::state::AppState;

/// The secret shown once, with copy buttons and the warning.
pub struct SecretCard {
    title: &'static str,
    base_url: String,
    secret: String,
    done: String,
}

/// The active organizations as options, `selected` chosen, after an optional empty first one.
fn org_options(orgs: &[OrgView], selected: Option<OrgId>, none: Option<&str>) -> Vec<Opt> {
    let first = none.map(|label| Opt {
        value: String::new(),
        label: label.to_string(),
        selected: false,
    });
    first
        .into_iter()
        .chain(
            orgs.iter()
                .filter(|o| o.org.status == OrgStatus::Active)
                .map(|o| Opt {
                    value: o.org.id.to_string(),
                    label: o.path.join(" › "),
                    selected: Some(o.org.id) == selected,
                }),
        )
        .collect()
}

fn method_title(m: OrgMethod) -> &'static str {
    match m {
        OrgMethod::Single => "Single Organization",
        OrgMethod::C42OrgName => "\"c42OrgName\" attribute",
        OrgMethod::Attribute => "Custom attribute",
        OrgMethod::Groups => "SCIM groups",
    }
}

struct ProviderRow {
    id: ProviderId,
    name: String,
    base_url: String,
    delay: String,
    last_sync: String,
    health: &'static str,
}

#[derive(Template)]
#[template(path = "console/providers.html")]
struct ProvidersPage<'a> {
    shell: Shell,
    csrf: &'a str,
    error: Option<&'a str>,
    rows: Vec<ProviderRow>,
}

/// `GET /console/providers`: the providers and the "Add Provisioning Provider" form.
pub async fn list(State(state): State<AppState>, console: Console<Providers>) -> Response {
    let m = &state.muster;
    let ps = match m.list_providers(console.env()).await {
        Ok(ps) => ps,
        Err(e) => return internal(&e),
    };
    let mut rows = Vec::with_capacity(ps.len());
    for p in ps {
        let health = match m.provider_health(console.env(), &p).await {
            Ok(h) => h.health.as_str(),
            Err(e) => return internal(&e),
        };
        rows.push(ProviderRow {
            id: p.id,
            base_url: m.scim_base_url(p.id),
            delay: duration_words(p.deactivation_delay_secs),
            last_sync: when(p.last_sync_at),
            name: p.name,
            health,
        });
    }
    let page = ProvidersPage {
        shell: console.shell("Identity Management", "/console/providers"),
        csrf: &console.session.csrf_token,
        error: None,
        rows,
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "console/provider_add.html")]
struct AddPage<'a> {
    shell: Shell,
    csrf: &'a str,
    name: &'a str,
    error: Option<&'a str>,
    created: Option<SecretCard>,
}

/// "Add Provisioning Provider": a display name, then the "Add SCIM Provisioning" dialog with the
/// base URL and the token, shown once.
pub async fn create(State(state): State<AppState>, posted: Posted<Providers>) -> Response {
    let Posted { console, form } = posted;
    let name = form.field("name").unwrap_or_default();
    let created = state
        .muster
        .create_provider(console.env(), &name, &console.actor())
        .await;
    let (status, error, created) = match created {
        Ok(c) => (
            StatusCode::OK,
            None,
            Some(SecretCard {
                title: "Add SCIM Provisioning",
                done: format!("/console/providers/{}", c.provider.id),
                base_url: c.scim_base_url,
                secret: c.secret,
            }),
        ),
        Err(e @ CoreError::Store(_)) => return internal(&e),
        Err(e) => (status_of(&e), Some(e.to_string()), None),
    };
    let title = if created.is_some() {
        "Add SCIM Provisioning"
    } else {
        "Identity Management"
    };
    let page = AddPage {
        shell: console.shell(title, "/console/providers"),
        csrf: &console.session.csrf_token,
        name: &name,
        error: error.as_deref(),
        created,
    };
    render(status, &page)
}

struct TokenRow {
    id: TokenId,
    prefix: String,
    label: String,
    created: String,
    expires: String,
    last_used: String,
    state: &'static str,
}

struct EntryRow {
    id: GroupMappingId,
    priority: i64,
    names: String,
    org: String,
    up: bool,
    down: bool,
}

#[derive(Template)]
#[template(path = "console/provider.html")]
struct DetailsPage<'a> {
    shell: Shell,
    csrf: &'a str,
    id: ProviderId,
    name: &'a str,
    action: String,
    error: Option<&'a str>,
    secret: Option<SecretCard>,
    base_url: String,
    last_sync: String,
    errors: u64,
    delay_words: String,
    delay_minutes: i64,
    tokens: Vec<TokenRow>,
    mapping: &'a MappingView,
    method_title: &'static str,
    methods: Vec<Opt>,
    groups_method: bool,
    single_org: Vec<Opt>,
    attribute: &'a str,
    parent_org: Vec<Opt>,
    unmapped_org: Vec<Opt>,
    any_org: Vec<Opt>,
    entries: Vec<EntryRow>,
    roles: &'a [Role],
    groups: Vec<&'a GroupSummary>,
    preview: Option<Preview>,
}

impl DetailsPage<'_> {
    fn role_names(&self, r: &RoleMappingView) -> String {
        r.roles
            .iter()
            .map(|x| x.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Deserialize, Default)]
pub struct DetailsQuery {
    preview: Option<String>,
}

/// `GET /console/providers/{id}`; `?preview=1` adds the re-apply preview (it reads every user
/// of the provider, so only when asked for).
pub async fn details(
    State(state): State<AppState>,
    console: Console<Providers>,
    Id(pid): Id<ProviderId>,
    Query(q): Query<DetailsQuery>,
) -> Response {
    let shown = Shown {
        with_preview: q.preview.is_some(),
        ..Shown::default()
    };
    details_page(&state, &console, pid, shown, StatusCode::OK).await
}

/// What a details page shows beyond the provider itself.
#[derive(Default)]
struct Shown {
    error: Option<String>,
    /// A token just made: shown on the page itself, once, never through a redirect.
    secret: Option<String>,
    with_preview: bool,
}

async fn details_page(
    state: &AppState,
    console: &Console<Providers>,
    pid: ProviderId,
    shown: Shown,
    status: StatusCode,
) -> Response {
    let m = &state.muster;
    let env = console.env();
    let p = match m.get_provider(env, pid).await {
        Ok(p) => p,
        Err(CoreError::NotFound(_)) => {
            return error_page(StatusCode::NOT_FOUND, "There is no such provider.")
        }
        Err(e) => return internal(&e),
    };
    let loaded = (
        m.list_tokens(env, pid).await,
        m.mapping_view(env, pid).await,
        m.provider_errors_last_day(env, pid).await,
        m.list_orgs(env, None).await,
        m.list_roles(env).await,
    );
    let (tokens, mapping, errors, orgs, roles) = match loaded {
        (Ok(t), Ok(mv), Ok(e), Ok(o), Ok(r)) => (t, mv, e, o, r),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), ..) | (.., Err(e), _) | (.., Err(e)) => {
            return internal(&e)
        }
    };
    let preview = if shown.with_preview {
        match m.preview_mappings(env, pid, 20).await {
            Ok(p) => Some(p),
            Err(e) => return internal(&e),
        }
    } else {
        None
    };
    let now = m.now();
    let action = format!("/console/providers/{pid}");
    let om = mapping.org_mapping.as_ref();
    let current = om.map(|o| o.method);
    let methods = [
        ("single", "Single Organization", OrgMethod::Single),
        (
            "c42_org_name",
            "\"c42OrgName\" attribute",
            OrgMethod::C42OrgName,
        ),
        ("attribute", "Custom attribute", OrgMethod::Attribute),
        (
            "groups",
            "SCIM groups (custom SCIM mapping)",
            OrgMethod::Groups,
        ),
    ]
    .into_iter()
    .map(|(value, label, method)| Opt {
        value: value.into(),
        label: label.into(),
        selected: current == Some(method),
    })
    .collect();
    let n = mapping.group_mappings.len();
    let entries = mapping
        .group_mappings
        .iter()
        .enumerate()
        .map(|(i, e)| EntryRow {
            id: e.id,
            priority: e.priority,
            names: e
                .groups
                .iter()
                .map(|g| g.display_name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            org: e.org.name.clone(),
            up: i > 0,
            down: i + 1 < n,
        })
        .collect();
    let tokens = tokens
        .into_iter()
        .map(|t| TokenRow {
            state: if t.is_live(now) {
                "live"
            } else if t.revoked_at.is_some() {
                "revoked"
            } else {
                "expired"
            },
            id: t.id,
            created: t.created_at.to_rfc3339(),
            expires: when(t.expires_at),
            last_used: when(t.last_used_at),
            prefix: t.prefix,
            label: t.label,
        })
        .collect();
    let default_org = Some("the default organization");
    let page = DetailsPage {
        shell: console.shell(&p.name, "/console/providers"),
        csrf: &console.session.csrf_token,
        id: pid,
        name: &p.name,
        error: shown.error.as_deref(),
        secret: shown.secret.map(|secret| SecretCard {
            title: "New token",
            base_url: m.scim_base_url(pid),
            secret,
            done: action.clone(),
        }),
        action,
        base_url: m.scim_base_url(pid),
        last_sync: when(p.last_sync_at),
        errors,
        delay_words: duration_words(p.deactivation_delay_secs),
        delay_minutes: p.deactivation_delay_secs / 60,
        tokens,
        method_title: current.map(method_title).unwrap_or(""),
        methods,
        groups_method: current == Some(OrgMethod::Groups),
        single_org: org_options(&orgs, om.and_then(|o| o.org.as_ref().map(|x| x.id)), None),
        attribute: om.and_then(|o| o.attribute.as_deref()).unwrap_or(""),
        parent_org: org_options(
            &orgs,
            om.and_then(|o| o.parent_org.as_ref().map(|x| x.id)),
            default_org,
        ),
        unmapped_org: org_options(
            &orgs,
            om.and_then(|o| o.unmapped_org.as_ref().map(|x| x.id)),
            default_org,
        ),
        any_org: org_options(&orgs, None, None),
        entries,
        roles: &roles,
        groups: mapping
            .group_mapping_status
            .unmapped_groups
            .iter()
            .chain(mapping.group_mappings.iter().flat_map(|e| e.groups.iter()))
            .collect(),
        mapping: &mapping,
        preview,
    };
    render(status, &page)
}

/// `POST /console/providers/{id}`: the forms of a provider's details page.
pub async fn act(
    State(state): State<AppState>,
    Id(pid): Id<ProviderId>,
    posted: Posted<Providers>,
) -> Response {
    let Posted { console, form } = posted;
    let m = &state.muster;
    let env = console.env();
    let who = console.actor();
    let back = format!("/console/providers/{pid}");
    let action = form.field("action").unwrap_or_default();
    let result: Result<Option<String>, CoreError> = match action.as_str() {
        "delay" => {
            let unit = form.parsed::<i64>("unit").unwrap_or(60);
            match form.parsed::<i64>("amount") {
                Some(a) if a >= 0 => m
                    .update_provider(env, pid, None, Some(a.saturating_mul(unit)), &who)
                    .await
                    .map(|_| None),
                _ => Err(CoreError::Invalid(
                    "the delay must be a whole number, 0 or more".into(),
                )),
            }
        }
        "token" => {
            let expires = match form.field("days").map(|d| d.parse::<i64>()) {
                None => Ok(None),
                Some(Ok(d)) if d > 0 => Ok(Some(m.now().plus_secs(d * 86_400))),
                Some(_) => Err(CoreError::Invalid("expiry must be a number of days".into())),
            };
            match expires {
                Ok(exp) => {
                    let label = form.field("label").unwrap_or_else(|| "token".into());
                    m.create_token(env, pid, &label, exp, &who)
                        .await
                        .map(|c| Some(c.secret))
                }
                Err(e) => Err(e),
            }
        }
        "revoke" => match form.parsed::<TokenId>("token") {
            Some(t) => m.revoke_token(env, t, &who).await.map(|_| None),
            None => Err(CoreError::Invalid("no such token".into())),
        },
        "apply" => m
            .apply_mappings(env, pid, form.field("digest").as_deref(), &who)
            .await
            .map(|_| None),
        "method" => {
            let input = OrgMappingInput {
                method: form.field("method").and_then(|v| OrgMethod::parse(&v)),
                org_id: form.parsed("org"),
                attribute: form.field("attribute"),
                parent_org_id: form.parsed("parent"),
                unmapped_org_id: form.parsed("unmapped"),
            };
            m.set_org_mapping(env, pid, &input, &who)
                .await
                .map(|_| None)
        }
        "map" => match form.parsed::<OrgId>("org") {
            Some(org) => m
                .add_group_mapping(env, pid, &form.all::<GroupId>("group"), org, &who)
                .await
                .map(|_| None),
            None => Err(CoreError::Invalid("select an organization".into())),
        },
        "unmap" => match form.parsed::<GroupMappingId>("entry") {
            Some(e) => m
                .delete_group_mapping(env, pid, e, &who)
                .await
                .map(|_| None),
            None => Err(CoreError::NotFound("no such mapping entry".into())),
        },
        "up" | "down" => match form.parsed::<GroupMappingId>("entry") {
            Some(e) => m
                .move_group_mapping(env, pid, e, action == "up", &who)
                .await
                .map(|_| None),
            None => Err(CoreError::NotFound("no such mapping entry".into())),
        },
        "role" | "unrole" => match form.all::<GroupId>("group").first() {
            Some(g) => {
                let roles: Vec<RoleId> = if action == "role" {
                    form.all("role")
                } else {
                    Vec::new()
                };
                if action == "role" && roles.is_empty() {
                    Err(CoreError::Invalid("choose one or more roles".into()))
                } else {
                    m.set_role_mapping(env, pid, *g, &roles, &who)
                        .await
                        .map(|_| None)
                }
            }
            None => Err(CoreError::Invalid("select a SCIM group".into())),
        },
        _ => return error_page(StatusCode::BAD_REQUEST, "Unknown action."),
    };
    match result {
        Ok(None) if action == "apply" => redirect(&format!("{back}?preview=1#reapply")),
        Ok(None) => redirect(&back),
        Ok(Some(secret)) => {
            let shown = Shown {
                secret: Some(secret),
                ..Shown::default()
            };
            details_page(&state, &console, pid, shown, StatusCode::OK).await
        }
        Err(e @ CoreError::Store(_)) => internal(&e),
        Err(e) => {
            let shown = Shown {
                error: Some(e.to_string()),
                ..Shown::default()
            };
            details_page(&state, &console, pid, shown, status_of(&e)).await
        }
    }
}
