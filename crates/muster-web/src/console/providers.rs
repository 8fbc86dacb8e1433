//! Identity Management, Provisioning (the administrator guide, Steps 2 to 7): adding a provider
//! and showing its SCIM base URL and token once, and a provider's details — tokens, deactivation
//! delay, SCIM groups, mappings with their status messages, preview and re-apply, last sync and
//! recent errors.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use muster_core::ids::{ProviderId, TokenId};
use muster_core::model::{Actor, OrgMethod};
use muster_core::CoreError;
use serde::Deserialize;

use super::access::PROVIDERS;
use super::html::esc;
use super::shell::{duration_words, error_page, internal, redirect, Console};
use crate::state::AppState;

fn actor(console: &Console) -> Actor {
    Actor::Admin {
        name: format!("console:{}", console.admin.username),
    }
}

fn method_title(m: OrgMethod) -> &'static str {
    match m {
        OrgMethod::Single => "Single Organization",
        OrgMethod::C42OrgName => "\"c42OrgName\" attribute",
        OrgMethod::Attribute => "Custom attribute",
        OrgMethod::Groups => "SCIM groups",
    }
}

/// The secret shown once, with copy buttons and the warning.
fn secret_card(title: &str, base_url: &str, secret: &str, done: &str) -> String {
    format!(
        "<div class=\"card\" role=\"dialog\" aria-labelledby=\"secret-title\"><h2 id=\"secret-title\">{}</h2>\
         <p class=\"error\" role=\"alert\">Copy the token now: Muster shows it only once and keeps only its hash.</p>\
         <label>SCIM base URL <input id=\"base-url\" readonly value=\"{}\"></label> \
         <button type=\"button\" class=\"secondary\" data-copy=\"base-url\">Copy base URL</button>\
         <label>Token <input id=\"token\" readonly value=\"{}\"></label> \
         <button type=\"button\" class=\"secondary\" data-copy=\"token\">Copy token</button>\
         <p><a class=\"button\" href=\"{}\">Done</a></p></div>",
        esc(title),
        esc(base_url),
        esc(secret),
        esc(done)
    )
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// "Add Provisioning Provider": a display name, then the "Add SCIM Provisioning" dialog with the
/// base URL and the token, shown once.
pub async fn create(State(state): State<AppState>, console: Console, body: Bytes) -> Response {
    if let Some(r) = console.deny(PROVIDERS) {
        return r;
    }
    let form: CreateForm = serde_urlencoded::from_bytes(&body).unwrap_or(CreateForm {
        csrf: String::new(),
        name: String::new(),
    });
    if let Some(r) = console.bad_csrf(&form.csrf) {
        return r;
    }
    match state
        .muster
        .create_provider(console.admin.environment_id, &form.name, &actor(&console))
        .await
    {
        Ok(c) => {
            let body = secret_card(
                "Add SCIM Provisioning",
                &c.scim_base_url,
                &c.secret,
                &format!("/console/providers/{}", c.provider.id),
            );
            console
                .page("Add SCIM Provisioning", "/console/providers")
                .body(format!(
                    "<h1>{}</h1><p>Enter these in {}'s SCIM provisioning settings.</p>{body}",
                    esc(&c.provider.name),
                    esc(&c.provider.name)
                ))
                .render()
                .into_response()
        }
        Err(CoreError::Store(e)) => internal(&CoreError::Store(e)),
        Err(e) => {
            let code = if matches!(e, CoreError::Conflict(_)) {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            (
                code,
                console
                    .page("Identity Management", "/console/providers")
                    .body(format!(
                        "<h1>Add Provisioning Provider</h1>{}",
                        add_form(
                            &console.session.csrf_token,
                            Some(&e.to_string()),
                            &form.name
                        )
                    ))
                    .render(),
            )
                .into_response()
        }
    }
}

/// The "Add Provisioning Provider" form.
pub fn add_form(csrf: &str, error: Option<&str>, name: &str) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "<div class=\"card\"><h2>Add Provisioning Provider</h2>{error}\
         <form class=\"stack\" method=\"post\" action=\"/console/providers\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>Display name <input name=\"name\" required maxlength=\"100\" value=\"{}\"></label>\
         <button type=\"submit\">Next</button></form></div>",
        esc(csrf),
        esc(name)
    )
}

/// A provider's details page.
#[derive(Deserialize, Default)]
pub struct DetailsQuery {
    preview: Option<String>,
}

pub async fn details(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<DetailsQuery>,
) -> Response {
    if let Some(r) = console.deny(PROVIDERS) {
        return r;
    }
    let Ok(pid) = id.parse::<ProviderId>() else {
        return error_page(StatusCode::NOT_FOUND, "There is no such provider.");
    };
    details_page(&state, &console, pid, None, None, q.preview.is_some()).await
}

async fn details_page(
    state: &AppState,
    console: &Console,
    pid: ProviderId,
    error: Option<&str>,
    secret: Option<String>,
    with_preview: bool,
) -> Response {
    let m = &state.muster;
    let env = console.admin.environment_id;
    let p = match m.get_provider(env, pid).await {
        Ok(p) => p,
        Err(CoreError::NotFound(_)) => {
            return error_page(StatusCode::NOT_FOUND, "There is no such provider.")
        }
        Err(e) => return internal(&e),
    };
    let (tokens, mapping, errors) = match (
        m.list_tokens(env, pid).await,
        m.mapping_view(env, pid).await,
        m.provider_errors_last_day(env, pid).await,
    ) {
        (Ok(t), Ok(mv), Ok(e)) => (t, mv, e),
        (Err(e), ..) | (_, Err(e), _) | (_, _, Err(e)) => return internal(&e),
    };
    // The preview reads every user of the provider: only when asked for.
    let preview = if with_preview {
        match m.preview_mappings(env, pid, 20).await {
            Ok(p) => Some(p),
            Err(e) => return internal(&e),
        }
    } else {
        None
    };
    let csrf = esc(&console.session.csrf_token);
    let now = m.now();
    let action = format!("/console/providers/{pid}");
    let mut body = format!("<h1>{}</h1>", esc(&p.name));
    if let Some(e) = error {
        body.push_str(&format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)));
    }
    if let Some(s) = secret {
        body.push_str(&secret_card(
            "New token",
            &m.scim_base_url(pid),
            &s,
            &action,
        ));
    }
    body.push_str(&format!(
        "<div class=\"grid\"><div class=\"card\"><div class=\"muted\">SCIM base URL</div><code id=\"base\">{}</code></div>\
         <div class=\"card\"><div class=\"muted\">Last sync</div>{}</div>\
         <div class=\"card\"><div class=\"muted\">Errors in the last 24 hours</div><div class=\"stat\">{errors}</div><a href=\"/console/sync-log?provider={pid}&amp;result=error\">See the errors</a></div></div>",
        esc(&m.scim_base_url(pid)),
        p.last_sync_at.map(|t| esc(&t.to_rfc3339())).unwrap_or_else(|| "never".into())
    ));
    if mapping.org_mapping.is_none() && mapping.role_mappings.is_empty() {
        body.push_str("<p class=\"error\" role=\"note\">Wait to assign people or groups to the app in your provider: configure organization mapping and role mapping first, or users will not be mapped to organizations and roles.</p>");
    }
    // Deactivation delay.
    body.push_str(&format!(
        "<div class=\"card\"><h2>Deactivation delay</h2><p>Users this provider turns off are blocked at once and deactivated after <strong>{}</strong>.</p>\
         <form method=\"post\" action=\"{action}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"action\" value=\"delay\">\
         <label>Delay <input name=\"amount\" type=\"number\" min=\"0\" required value=\"{}\"></label>\
         <label>Unit <select name=\"unit\"><option value=\"60\" selected>minutes</option><option value=\"3600\">hours</option><option value=\"86400\">days</option></select></label>\
         <button type=\"submit\">Save delay</button></form></div>",
        esc(&duration_words(p.deactivation_delay_secs)),
        p.deactivation_delay_secs / 60
    ));
    // Tokens.
    body.push_str("<div class=\"card\"><h2>Tokens</h2><table><thead><tr><th scope=\"col\">Token</th><th scope=\"col\">Label</th><th scope=\"col\">Created</th><th scope=\"col\">Expires</th><th scope=\"col\">Last used</th><th scope=\"col\">State</th><th scope=\"col\"></th></tr></thead><tbody>");
    for t in &tokens {
        let live = t.is_live(now);
        let revoke = if live {
            format!(
                "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"action\" value=\"revoke\"><input type=\"hidden\" name=\"token\" value=\"{}\"><button class=\"secondary\" type=\"submit\">Revoke {}</button></form>",
                t.id,
                esc(&t.prefix)
            )
        } else {
            String::new()
        };
        body.push_str(&format!(
            "<tr><td><code>{}…</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{revoke}</td></tr>",
            esc(&t.prefix),
            esc(&t.label),
            esc(&t.created_at.to_rfc3339()),
            t.expires_at.map(|x| esc(&x.to_rfc3339())).unwrap_or_else(|| "never".into()),
            t.last_used_at.map(|x| esc(&x.to_rfc3339())).unwrap_or_else(|| "never".into()),
            if live { "live" } else if t.revoked_at.is_some() { "revoked" } else { "expired" }
        ));
    }
    body.push_str(&format!(
        "</tbody></table><form method=\"post\" action=\"{action}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"action\" value=\"token\">\
         <label>Label <input name=\"label\" maxlength=\"100\" value=\"rotation\"></label>\
         <label>Expires after (days, empty: never) <input name=\"days\" type=\"number\" min=\"1\" max=\"3650\"></label>\
         <button type=\"submit\">Add token</button></form></div>"
    ));
    // SCIM groups and mappings.
    let groups: Vec<_> = mapping
        .group_mapping_status
        .unmapped_groups
        .iter()
        .chain(mapping.group_mappings.iter().flat_map(|e| e.groups.iter()))
        .collect();
    let orgs = match m.list_orgs(env, None).await {
        Ok(o) => o,
        Err(e) => return internal(&e),
    };
    let roles = match m.list_roles(env).await {
        Ok(r) => r,
        Err(e) => return internal(&e),
    };
    let org_options = |selected: Option<muster_core::ids::OrgId>, none: Option<&str>| -> String {
        let mut out = none
            .map(|n| format!("<option value=\"\">{}</option>", esc(n)))
            .unwrap_or_default();
        for o in orgs.iter().filter(|o| o.org.status.as_str() == "active") {
            out.push_str(&format!(
                "<option value=\"{}\"{}>{}</option>",
                o.org.id,
                if Some(o.org.id) == selected {
                    " selected"
                } else {
                    ""
                },
                esc(&o.path.join(" › "))
            ));
        }
        out
    };
    let hidden = |act: &str| {
        format!("<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"action\" value=\"{act}\">")
    };
    body.push_str("<div class=\"card\"><h2>Organization Mapping</h2>");
    let om = mapping.org_mapping.as_ref();
    match om {
        None => body
            .push_str("<p>No organization mapping: new users go to the default organization.</p>"),
        Some(om) => {
            body.push_str(&format!(
                "<p>Method: <strong>{}</strong>",
                esc(method_title(om.method))
            ));
            if let Some(o) = &om.org {
                body.push_str(&format!(" — {}", esc(&o.name)));
            }
            if let Some(a) = &om.attribute {
                body.push_str(&format!(" — attribute <code>{}</code>", esc(a)));
            }
            if let Some(o) = &om.unmapped_org {
                body.push_str(&format!("; unmapped users: {}", esc(&o.name)));
            }
            body.push_str("</p>");
        }
    }
    let current = om.map(|o| o.method);
    let radio = |value: &str, label: &str, method: OrgMethod| {
        format!(
            "<label class=\"check\"><input type=\"radio\" name=\"method\" value=\"{value}\"{}> {}</label>",
            if current == Some(method) { " checked" } else { "" },
            esc(label)
        )
    };
    body.push_str(&format!(
        "<details{}><summary>{}</summary><form class=\"stack\" method=\"post\" action=\"{action}\">{}\
         <fieldset><legend>Edit Organization Mapping Method</legend>{}{}{}{}</fieldset>\
         <label>Organization (single organization) <select name=\"org\">{}</select></label>\
         <label>SCIM attribute (custom attribute) <input name=\"attribute\" value=\"{}\" placeholder=\"title, addresses[type eq &quot;work&quot;].locality\"></label>\
         <label>New organizations go under (attributes) <select name=\"parent\">{}</select></label>\
         <label>Unmapped users go to <select name=\"unmapped\">{}</select></label>\
         <button type=\"submit\">Save</button></form></details>",
        if om.is_none() { " open" } else { "" },
        if om.is_none() { "Add Organization Mapping" } else { "Edit Organization Mapping Method" },
        hidden("method"),
        radio("single", "Single Organization", OrgMethod::Single),
        radio("c42_org_name", "\"c42OrgName\" attribute", OrgMethod::C42OrgName),
        radio("attribute", "Custom attribute", OrgMethod::Attribute),
        radio("groups", "SCIM groups (custom SCIM mapping)", OrgMethod::Groups),
        org_options(om.and_then(|o| o.org.as_ref().map(|x| x.id)), None),
        esc(om.and_then(|o| o.attribute.as_deref()).unwrap_or("")),
        org_options(om.and_then(|o| o.parent_org.as_ref().map(|x| x.id)), Some("the default organization")),
        org_options(om.and_then(|o| o.unmapped_org.as_ref().map(|x| x.id)), Some("the default organization")),
    ));
    if current == Some(OrgMethod::Groups) {
        if !mapping.group_mappings.is_empty() {
            body.push_str("<table><thead><tr><th scope=\"col\">Priority</th><th scope=\"col\">SCIM groups</th><th scope=\"col\">Organization</th><th scope=\"col\"></th></tr></thead><tbody>");
            let n = mapping.group_mappings.len();
            for (i, e) in mapping.group_mappings.iter().enumerate() {
                let names = e
                    .groups
                    .iter()
                    .map(|g| g.display_name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut buttons = String::new();
                for (act, label, show) in [
                    ("up", "Move up", i > 0),
                    ("down", "Move down", i + 1 < n),
                    ("unmap", "Delete", true),
                ] {
                    if show {
                        buttons.push_str(&format!(
                            "<form method=\"post\" action=\"{action}\">{}<input type=\"hidden\" name=\"entry\" value=\"{}\"><button class=\"secondary\" type=\"submit\" aria-label=\"{label} {}\">{label}</button></form>",
                            hidden(act),
                            e.id,
                            esc(&names)
                        ));
                    }
                }
                body.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"actions\">{buttons}</td></tr>",
                    e.priority,
                    esc(&names),
                    esc(&e.org.name)
                ));
            }
            body.push_str("</tbody></table>");
        }
        let boxes: String = mapping
            .group_mapping_status
            .unmapped_groups
            .iter()
            .map(|g| format!("<label class=\"check\"><input type=\"checkbox\" name=\"group\" value=\"{}\"> {}</label>", g.id, esc(&g.display_name)))
            .collect();
        if !boxes.is_empty() {
            body.push_str(&format!(
                "<form method=\"post\" action=\"{action}\">{}<fieldset><legend>Add Mapping: select one or more SCIM groups</legend>{boxes}</fieldset>\
                 <label>Select an organization <select name=\"org\">{}</select></label> <button type=\"submit\">Save mapping</button></form>",
                hidden("map"),
                org_options(None, None)
            ));
        }
    }
    body.push_str(&format!(
        "<p class=\"muted\" role=\"status\">{}</p></div>",
        esc(&mapping.group_mapping_status.message)
    ));
    body.push_str("<div class=\"card\"><h2>Role Mapping</h2>");
    if mapping.role_mappings.is_empty() {
        body.push_str("<p>No role mapping: users get their organization's default roles.</p>");
    } else {
        body.push_str("<table><thead><tr><th scope=\"col\">SCIM group</th><th scope=\"col\">Roles</th><th scope=\"col\"></th></tr></thead><tbody>");
        for r in &mapping.role_mappings {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td><form method=\"post\" action=\"{action}\">{}<input type=\"hidden\" name=\"group\" value=\"{}\"><button class=\"secondary\" type=\"submit\" aria-label=\"Delete the role mapping of {}\">Delete</button></form></td></tr>",
                esc(&r.group.display_name),
                esc(&r.roles.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", ")),
                hidden("unrole"),
                r.group.id,
                esc(&r.group.display_name)
            ));
        }
        body.push_str("</tbody></table>");
    }
    if !mapping.groups_without_role_mapping.is_empty() {
        let options: String = mapping
            .groups_without_role_mapping
            .iter()
            .map(|g| {
                format!(
                    "<option value=\"{}\">{}</option>",
                    g.id,
                    esc(&g.display_name)
                )
            })
            .collect();
        let boxes: String = roles
            .iter()
            .map(|r| format!("<label class=\"check\"><input type=\"checkbox\" name=\"role\" value=\"{}\"> {}</label>", r.id, esc(&r.name)))
            .collect();
        body.push_str(&format!(
            "<form method=\"post\" action=\"{action}\">{}<h3>Add Role Mapping</h3><label>SCIM group <select name=\"group\">{options}</select></label>\
             <fieldset><legend>Roles</legend>{boxes}</fieldset><button type=\"submit\">Add</button></form>",
            hidden("role")
        ));
    }
    body.push_str(&format!(
        "<p class=\"muted\" role=\"status\">{}</p><p class=\"muted\">We recommend including Desktop User and PROe User for everyone who backs up computers; external groups (outside legal counsel, for example) do not need them.</p></div>",
        esc(&mapping.role_mapping_status.message)
    ));
    body.push_str(&format!(
        "<div class=\"card\"><h2>SCIM groups</h2><p>{} group(s) pushed by this provider.</p><table><thead><tr><th scope=\"col\">Group</th><th scope=\"col\">Members</th></tr></thead><tbody>",
        groups.len()
    ));
    for g in &groups {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&g.display_name),
            g.members
        ));
    }
    body.push_str("</tbody></table></div>");
    // Preview and re-apply.
    let Some(preview) = preview else {
        body.push_str(&format!(
            "<div class=\"card\"><h2>Re-apply mappings</h2><p>Changing a mapping moves nobody by itself. \
             <a href=\"{action}?preview=1#reapply\">Preview a re-apply</a>: every user whose organization or roles the current mappings would change.</p></div>"
        ));
        return console
            .page(&p.name, "/console/providers")
            .body(body)
            .render()
            .into_response();
    };
    body.push_str(&format!(
        "<div class=\"card\" id=\"reapply\"><h2>Re-apply mappings</h2><p>{} of {} user(s) would change: {} move(s), {} role change(s).</p>",
        preview.changed, preview.users, preview.org_changes, preview.role_changes
    ));
    if !preview.changes.is_empty() {
        body.push_str("<table><thead><tr><th scope=\"col\">User</th><th scope=\"col\">Organization</th><th scope=\"col\">Roles</th></tr></thead><tbody>");
        for c in &preview.changes {
            let org = c
                .org_to
                .as_ref()
                .map(|t| {
                    format!(
                        "{} → {}{}",
                        esc(&c.org_from.name),
                        esc(&t.name),
                        if t.new { " (new)" } else { "" }
                    )
                })
                .unwrap_or_default();
            let roles = c
                .roles_to
                .as_ref()
                .map(|r| format!("{} → {}", esc(&c.roles_from.join(", ")), esc(&r.join(", "))))
                .unwrap_or_default();
            body.push_str(&format!(
                "<tr><td>{}</td><td>{org}</td><td>{roles}</td></tr>",
                esc(&c.user_name)
            ));
        }
        body.push_str("</tbody></table>");
        body.push_str(&format!(
            "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"action\" value=\"apply\"><input type=\"hidden\" name=\"digest\" value=\"{}\"><button type=\"submit\">Re-apply mappings</button></form>",
            esc(&preview.digest)
        ));
    }
    body.push_str("</div>");
    console
        .page(&p.name, "/console/providers")
        .body(body)
        .render()
        .into_response()
}

/// The forms of a provider's details page.
pub async fn act(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = console.deny(PROVIDERS) {
        return r;
    }
    let Ok(pid) = id.parse::<ProviderId>() else {
        return error_page(StatusCode::NOT_FOUND, "There is no such provider.");
    };
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return error_page(StatusCode::BAD_REQUEST, "The form could not be read.");
    };
    let field = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let all = |k: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect()
    };
    if let Some(r) = console.bad_csrf(&field("csrf").unwrap_or_default()) {
        return r;
    }
    let m = &state.muster;
    let env = console.admin.environment_id;
    let who = actor(&console);
    let back = format!("/console/providers/{pid}");
    let action = field("action").unwrap_or_default();
    let ids = |k: &str| -> Vec<muster_core::ids::GroupId> {
        all(k).iter().filter_map(|v| v.parse().ok()).collect()
    };
    let result: Result<Option<String>, CoreError> = match action.as_str() {
        "delay" => {
            let amount = field("amount").unwrap_or_default().parse::<i64>();
            let unit = field("unit")
                .and_then(|u| u.parse::<i64>().ok())
                .unwrap_or(60);
            match amount {
                Ok(a) if a >= 0 => m
                    .update_provider(env, pid, None, Some(a.saturating_mul(unit)), &who)
                    .await
                    .map(|_| None),
                _ => Err(CoreError::Invalid(
                    "the delay must be a whole number, 0 or more".into(),
                )),
            }
        }
        "token" => {
            let expires = match field("days").as_deref().map(str::parse::<i64>) {
                None => Ok(None),
                Some(Ok(d)) if d > 0 => Ok(Some(m.now().plus_secs(d * 86_400))),
                Some(_) => Err(CoreError::Invalid("expiry must be a number of days".into())),
            };
            match expires {
                Ok(exp) => m
                    .create_token(
                        env,
                        pid,
                        &field("label").unwrap_or_else(|| "token".into()),
                        exp,
                        &who,
                    )
                    .await
                    .map(|c| Some(c.secret)),
                Err(e) => Err(e),
            }
        }
        "revoke" => match field("token").and_then(|t| t.parse::<TokenId>().ok()) {
            Some(t) => m.revoke_token(env, t, &who).await.map(|_| None),
            None => Err(CoreError::Invalid("no such token".into())),
        },
        "apply" => m
            .apply_mappings(env, pid, field("digest").as_deref(), &who)
            .await
            .map(|_| None),
        "method" => {
            let input = muster_core::mapping::config::OrgMappingInput {
                method: field("method").and_then(|v| OrgMethod::parse(&v)),
                org_id: field("org").and_then(|v| v.parse().ok()),
                attribute: field("attribute"),
                parent_org_id: field("parent").and_then(|v| v.parse().ok()),
                unmapped_org_id: field("unmapped").and_then(|v| v.parse().ok()),
            };
            m.set_org_mapping(env, pid, &input, &who)
                .await
                .map(|_| None)
        }
        "map" => match field("org").and_then(|v| v.parse().ok()) {
            Some(org) => m
                .add_group_mapping(env, pid, &ids("group"), org, &who)
                .await
                .map(|_| None),
            None => Err(CoreError::Invalid("select an organization".into())),
        },
        "up" | "down" | "unmap" => {
            let entry =
                field("entry").and_then(|v| v.parse::<muster_core::ids::GroupMappingId>().ok());
            match (entry, m.mapping_view(env, pid).await) {
                (Some(e), Ok(view)) if action == "unmap" => {
                    let _ = view;
                    m.delete_group_mapping(env, pid, e, &who)
                        .await
                        .map(|_| None)
                }
                (Some(e), Ok(view)) => {
                    let mut order: Vec<_> = view.group_mappings.iter().map(|g| g.id).collect();
                    match order.iter().position(|x| *x == e) {
                        Some(i) => {
                            let j = if action == "up" {
                                i.saturating_sub(1)
                            } else {
                                (i + 1).min(order.len() - 1)
                            };
                            order.swap(i, j);
                            m.reorder_group_mappings(env, pid, &order, &who)
                                .await
                                .map(|_| None)
                        }
                        None => Err(CoreError::NotFound("no such mapping entry".into())),
                    }
                }
                (_, Err(e)) => Err(e),
                (None, _) => Err(CoreError::NotFound("no such mapping entry".into())),
            }
        }
        "role" => match ids("group").first() {
            Some(g) => {
                let roles: Vec<muster_core::ids::RoleId> =
                    all("role").iter().filter_map(|v| v.parse().ok()).collect();
                if roles.is_empty() {
                    Err(CoreError::Invalid("choose one or more roles".into()))
                } else {
                    m.set_role_mapping(env, pid, *g, &roles, &who)
                        .await
                        .map(|_| None)
                }
            }
            None => Err(CoreError::Invalid("select a SCIM group".into())),
        },
        "unrole" => match ids("group").first() {
            Some(g) => m
                .set_role_mapping(env, pid, *g, &[], &who)
                .await
                .map(|_| None),
            None => Err(CoreError::Invalid("select a SCIM group".into())),
        },
        _ => return error_page(StatusCode::BAD_REQUEST, "Unknown action."),
    };
    match result {
        Ok(None) if action == "apply" => redirect(&format!("{back}?preview=1#reapply")),
        Ok(None) => redirect(&back),
        // A new token is shown on the page itself, once; never through a redirect.
        Ok(Some(secret)) => details_page(&state, &console, pid, None, Some(secret), false).await,
        Err(CoreError::Store(e)) => internal(&CoreError::Store(e)),
        Err(e) => {
            let code = match e {
                CoreError::Conflict(_) => StatusCode::CONFLICT,
                CoreError::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            let page = details_page(&state, &console, pid, Some(&e.to_string()), None, false).await;
            let (mut parts, body) = page.into_parts();
            if parts.status == StatusCode::OK {
                parts.status = code;
            }
            Response::from_parts(parts, body)
        }
    }
}
