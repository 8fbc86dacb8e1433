//! What the API answers with: one type per response shape. The handlers serialise these and the
//! OpenAPI document's schemas are derived from the same types, so the two cannot drift apart.

use std::collections::HashMap;

use muster_core::ids::{GroupId, OrgId, ProviderId, RoleId, TokenId, UserId};
use muster_core::mapping::explain::MappingExplanation;
use muster_core::mapping::preview::Applied;
use muster_core::model::{GroupRecord, MemberRef, Provider, ProviderToken, Role, UserRecord};
use muster_core::orgs::{OrgTree, OrgView};
use muster_core::synclog::query::LogEntryView;
use muster_core::users::directory::UserDetail;
use muster_core::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `{"error": {"code", "message"}}`: every error the API gives.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `invalid`, `unauthorized`, `not_found`, `conflict`, `stale`, `busy`, `too_large`,
    /// `rate_limited` or `internal`.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

/// A role of the catalog.
#[derive(Serialize, ToSchema)]
pub struct RoleBody {
    pub id: RoleId,
    pub name: String,
    pub description: String,
    /// One of the roles every environment starts with.
    pub builtin: bool,
}

impl From<&Role> for RoleBody {
    fn from(r: &Role) -> Self {
        RoleBody {
            id: r.id,
            name: r.name.clone(),
            description: r.description.clone(),
            builtin: r.builtin,
        }
    }
}

/// The role catalog.
#[derive(Serialize, ToSchema)]
pub struct RoleList {
    pub roles: Vec<RoleBody>,
}

/// An organization with its place in the tree and its effective default roles.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgBody {
    pub id: OrgId,
    pub name: String,
    /// `null` for the default (root) organization.
    pub parent_id: Option<OrgId>,
    /// Names from the root down to this organization.
    pub path: Vec<String>,
    /// `active` or `deactivated`.
    pub status: &'static str,
    /// The roles its users get when no other role applies.
    pub default_roles: Vec<RoleBody>,
    /// Whether those come from an ancestor.
    pub default_roles_inherited: bool,
    /// The organization they are set on.
    pub default_roles_from: Option<OrgId>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&OrgView> for OrgBody {
    fn from(v: &OrgView) -> Self {
        OrgBody {
            id: v.org.id,
            name: v.org.name.clone(),
            parent_id: v.org.parent_id,
            path: v.path.clone(),
            status: v.org.status.as_str(),
            default_roles: v
                .effective_default_roles
                .iter()
                .map(RoleBody::from)
                .collect(),
            default_roles_inherited: v.default_roles_from != Some(v.org.id),
            default_roles_from: v.default_roles_from,
            created_at: v.org.created_at.to_rfc3339(),
            updated_at: v.org.updated_at.to_rfc3339(),
        }
    }
}

/// Organizations.
#[derive(Serialize, ToSchema)]
pub struct OrgList {
    pub orgs: Vec<OrgBody>,
}

/// An organization and its descendants.
#[derive(Serialize, ToSchema)]
pub struct OrgTreeBody {
    pub id: OrgId,
    pub name: String,
    /// `active` or `deactivated`.
    pub status: &'static str,
    #[schema(no_recursion)]
    pub children: Vec<OrgTreeBody>,
}

impl From<&OrgTree> for OrgTreeBody {
    fn from(t: &OrgTree) -> Self {
        OrgTreeBody {
            id: t.org.id,
            name: t.org.name.clone(),
            status: t.org.status.as_str(),
            children: t.children.iter().map(OrgTreeBody::from).collect(),
        }
    }
}

/// Who owns a user: a provider, or Muster itself (a local user).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// `provider` or `local`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<ProviderId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
}

/// A user as lists show it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    pub id: UserId,
    pub user_name: String,
    /// The name to show: the SCIM `displayName`, else `name.formatted`, else `name.givenName`
    /// and `name.familyName`; the same as the event feed's.
    pub display_name: Option<String>,
    /// The email marked primary, else the first, as the provider sent it.
    pub email: Option<String>,
    /// The provider's `externalId` (RFC 7643 §3.1): its own id for the user.
    pub external_id: Option<String>,
    /// `active`, `blocked` or `deactivated`.
    pub status: &'static str,
    pub org_id: OrgId,
    pub owner: Owner,
    pub legal_hold: bool,
    /// An administrator changed the user since the provider last updated it.
    pub changed_outside_provisioning: bool,
    /// When a pending deactivation is due.
    pub pending_deactivation_at: Option<String>,
    /// The provider DELETEd the user.
    pub removed_by_provider: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl UserSummary {
    pub fn new(u: &UserRecord, providers: &HashMap<ProviderId, String>) -> Self {
        UserSummary {
            id: u.id,
            user_name: u.user_name.clone(),
            display_name: u.full_name(),
            email: u.primary_email().map(str::to_string),
            external_id: u.external_id.clone(),
            status: u.status.as_str(),
            org_id: u.org_id,
            owner: match u.provider_id {
                Some(p) => Owner {
                    kind: "provider",
                    provider_id: Some(p),
                    provider_name: providers.get(&p).cloned(),
                },
                None => Owner {
                    kind: "local",
                    provider_id: None,
                    provider_name: None,
                },
            },
            legal_hold: u.legal_hold,
            changed_outside_provisioning: u.changed_outside,
            pending_deactivation_at: u.deactivate_at.map(|t| t.to_rfc3339()),
            removed_by_provider: u.removed_at.is_some(),
            created_at: u.created_at.to_rfc3339(),
            updated_at: u.updated_at.to_rfc3339(),
        }
    }
}

/// A page of users.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserList {
    pub users: Vec<UserSummary>,
    /// Pass back as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
    /// The event feed's head when this page was read: every change after it is in the feed
    /// after `asOf` (docs/events.md, "Starting").
    pub as_of: i64,
}

/// An organization by id and name.
#[derive(Serialize, ToSchema)]
pub struct OrgRef {
    pub id: OrgId,
    pub name: String,
}

/// A role a user holds, and where it comes from.
#[derive(Serialize, ToSchema)]
pub struct HeldRoleBody {
    pub id: RoleId,
    pub name: String,
    /// `admin` (set by an administrator), `mapping` (role mapping) or `org` (the
    /// organization's defaults).
    pub source: &'static str,
}

/// A SCIM group a user is a member of.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserGroupBody {
    pub id: GroupId,
    pub display_name: String,
}

/// What a provider's mappings want for one of its users, worked out by the rules that place
/// users (docs/mapping.md, "Why a user is where it is").
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingBody {
    /// Where the organization mapping puts the user, and why, in words.
    pub organization: String,
    /// The organization the mapping would put the user in, when it is elsewhere now (moved by
    /// an administrator, or the mapping changed since).
    pub organization_elsewhere: Option<String>,
    /// The roles role mapping gives, by name; `null` when role mapping has no say.
    pub roles: Option<Vec<String>>,
}

/// A user with organization, effective roles, SCIM groups and the SCIM resource as the
/// provider sent it.
#[derive(Serialize, ToSchema)]
pub struct UserBody {
    #[serde(flatten)]
    pub summary: UserSummary,
    pub org: OrgRef,
    pub roles: Vec<HeldRoleBody>,
    /// The SCIM groups its provider made it a member of, by name (what group-based mapping
    /// reads).
    pub groups: Vec<UserGroupBody>,
    /// What the provider's mappings want for the user, and why; `null` for a local user.
    pub mapping: Option<MappingBody>,
    /// The SCIM resource (RFC 7643 §4.1), without `id`, `meta` and `groups`.
    #[schema(value_type = Object)]
    pub scim: Map<String, Value>,
}

impl UserBody {
    /// With the mapping's account of a provisioned user ([`muster_core::Muster::explain_mapping`]).
    pub fn with_mapping(mut self, e: Option<MappingExplanation>) -> Self {
        self.mapping = e.map(|e| MappingBody {
            organization: e.org,
            organization_elsewhere: e.org_elsewhere,
            roles: e.roles,
        });
        self
    }

    pub fn new(d: &UserDetail, providers: &HashMap<ProviderId, String>) -> Self {
        UserBody {
            summary: UserSummary::new(&d.user, providers),
            org: OrgRef {
                id: d.org.id,
                name: d.org.name.clone(),
            },
            roles: d
                .roles
                .iter()
                .map(|h| HeldRoleBody {
                    id: h.role.id,
                    name: h.role.name.clone(),
                    source: h.source.as_str(),
                })
                .collect(),
            groups: d
                .groups
                .iter()
                .map(|g| UserGroupBody {
                    id: g.group_id,
                    display_name: g.display.clone(),
                })
                .collect(),
            scim: d.user.resource.clone().into_map(),
            mapping: None,
        }
    }
}

/// A provisioning provider (docs/sync-log.md, "Provider status", for `errorsLast24h`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderBody {
    pub id: ProviderId,
    pub name: String,
    /// What the provider's SCIM client is configured with.
    pub scim_base_url: String,
    pub deactivation_delay_seconds: i64,
    pub created_at: String,
    pub last_sync_at: Option<String>,
    /// Requests refused and changes that failed in the last 24 hours.
    pub errors_last24h: u64,
    /// Healthy, silent, erroring or held (docs/notifications.md).
    pub health: muster_core::notify::health::ProviderHealth,
}

impl ProviderBody {
    pub fn new(
        p: &Provider,
        scim_base_url: String,
        errors_last24h: u64,
        health: muster_core::notify::health::ProviderHealth,
    ) -> Self {
        ProviderBody {
            id: p.id,
            name: p.name.clone(),
            scim_base_url,
            deactivation_delay_seconds: p.deactivation_delay_secs,
            created_at: p.created_at.to_rfc3339(),
            last_sync_at: p.last_sync_at.map(|t| t.to_rfc3339()),
            errors_last24h,
            health,
        }
    }
}

/// Providers.
#[derive(Serialize, ToSchema)]
pub struct ProviderList {
    pub providers: Vec<ProviderBody>,
}

/// A provider's first token, in the response that creates the provider.
#[derive(Serialize, ToSchema)]
pub struct FirstToken {
    pub id: TokenId,
    pub prefix: String,
    /// The bearer token: shown this once, stored only as a hash.
    pub secret: String,
}

/// A provider just added, with its first token.
#[derive(Serialize, ToSchema)]
pub struct ProviderCreated {
    #[serde(flatten)]
    pub provider: ProviderBody,
    pub token: FirstToken,
}

/// A provider's token, by prefix; never its secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenBody {
    pub id: TokenId,
    pub label: String,
    /// The secret's first characters, to tell tokens apart.
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    /// Neither revoked nor expired.
    pub live: bool,
}

impl TokenBody {
    pub fn new(t: &ProviderToken, now: Timestamp) -> Self {
        TokenBody {
            id: t.id,
            label: t.label.clone(),
            prefix: t.prefix.clone(),
            created_at: t.created_at.to_rfc3339(),
            expires_at: t.expires_at.map(|x| x.to_rfc3339()),
            revoked_at: t.revoked_at.map(|x| x.to_rfc3339()),
            last_used_at: t.last_used_at.map(|x| x.to_rfc3339()),
            live: t.is_live(now),
        }
    }
}

/// A provider's tokens.
#[derive(Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenBody>,
}

/// A token just made, with its secret.
#[derive(Serialize, ToSchema)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub token: TokenBody,
    /// The bearer token: shown this once, stored only as a hash.
    pub secret: String,
}

/// A page of sync log entries, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    pub entries: Vec<LogEntryView>,
    /// Pass back as `cursor` for older entries; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// What a re-apply did.
#[derive(Serialize, ToSchema)]
pub struct AppliedBody {
    pub applied: Applied,
}

/// A group.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupBody {
    id: GroupId,
    display_name: String,
    external_id: Option<String>,
    /// The provider that pushes it.
    provider_id: ProviderId,
    provider_name: Option<String>,
    created_at: String,
    updated_at: String,
}

impl GroupBody {
    pub fn new(g: &GroupRecord, providers: &HashMap<ProviderId, String>) -> Self {
        GroupBody {
            id: g.id,
            display_name: g.display_name.clone(),
            external_id: g.external_id.clone(),
            provider_id: g.provider_id,
            provider_name: providers.get(&g.provider_id).cloned(),
            created_at: g.created_at.to_rfc3339(),
            updated_at: g.updated_at.to_rfc3339(),
        }
    }
}

/// A page of groups.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupList {
    pub groups: Vec<GroupBody>,
    /// Pass back as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
    /// The event feed's head when this page was read (docs/events.md, "Starting").
    pub as_of: i64,
}

/// A member of a group.
#[derive(Serialize, ToSchema)]
pub struct Member {
    id: UserId,
    /// Its display name, or its userName.
    display: String,
}

/// A group with its members.
#[derive(Serialize, ToSchema)]
pub struct GroupDetail {
    #[serde(flatten)]
    pub group: GroupBody,
    pub members: Vec<Member>,
}

impl GroupDetail {
    pub fn new(
        g: &GroupRecord,
        members: Vec<MemberRef>,
        providers: &HashMap<ProviderId, String>,
    ) -> Self {
        GroupDetail {
            group: GroupBody::new(g, providers),
            members: members
                .into_iter()
                .map(|m| Member {
                    id: m.user_id,
                    display: m.display,
                })
                .collect(),
        }
    }
}
