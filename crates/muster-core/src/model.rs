//! The records Muster keeps, as the domain sees them.

pub use muster_scim::stored::Attributes;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::Timestamp;
use crate::ids::{
    AdminId, AdminTokenId, EnvironmentId, GroupId, GroupMappingId, OrgId, ProviderId, RoleId,
    SessionId, TokenId, UserId,
};

/// The slug of the environment a fresh install has, and every command uses by default.
pub const DEFAULT_ENVIRONMENT: &str = "default";
/// The name of the root organization created with an environment.
pub const DEFAULT_ORG_NAME: &str = "Default Organization";
/// The deactivation delay a new provider gets: 15 minutes.
pub const DEFAULT_DEACTIVATION_DELAY_SECS: i64 = 15 * 60;
/// The longest deactivation delay: 90 days.
pub const MAX_DEACTIVATION_DELAY_SECS: i64 = 90 * 24 * 60 * 60;

/// One company's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Environment {
    /// Its id.
    pub id: EnvironmentId,
    /// A short, unique, URL-safe name.
    pub slug: String,
    /// A display name.
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Whether an organization is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgStatus {
    /// In use.
    Active,
    /// Deactivated: keeps its users, takes no new ones.
    Deactivated,
}

impl OrgStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgStatus::Active => "active",
            OrgStatus::Deactivated => "deactivated",
        }
    }
    /// Reads the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(OrgStatus::Active),
            "deactivated" => Some(OrgStatus::Deactivated),
            _ => None,
        }
    }
}

/// An organization: a node of the environment's tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Org {
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// Its id.
    pub id: OrgId,
    /// Its parent; `None` for the root (default) organization.
    pub parent_id: Option<OrgId>,
    /// Its name, as entered.
    pub name: String,
    /// Active or deactivated.
    pub status: OrgStatus,
    /// Whether it sets its own default roles (otherwise it inherits its parent's).
    pub own_default_roles: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A role of the environment's catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// Its id.
    pub id: RoleId,
    /// Its name, unique case-insensitively.
    pub name: String,
    /// What it allows.
    pub description: String,
    /// One of the standard roles every environment starts with.
    pub builtin: bool,
    /// When it was added.
    pub created_at: Timestamp,
}

/// The standard roles every environment starts with: name and description.
pub const STANDARD_ROLES: &[(&str, &str)] = &[
    ("Desktop User", "Signs in to the desktop app and backs up their own devices."),
    ("PROe User", "Signs in to the app and the web restore; recommended with Desktop User for everyone who backs up."),
    ("Customer Cloud Admin", "Manages everything in the environment, administrators and settings included."),
    ("Identity Management Administrator", "Manages provisioning providers, organization mapping and role mapping."),
    ("Org Admin", "Manages the users, devices and settings of their organization and its children."),
    ("Org Manager", "Views and manages the users of their organization."),
    ("Security Administrator", "Manages security settings and alerts."),
    ("Audit Log Viewer", "Reads the audit and sync logs."),
    ("Cross-Org Admin", "Manages users and devices across all organizations."),
    ("Legal Hold Administrator", "Places users on legal hold and releases them."),
];

/// The roles a new environment's root organization gives its users by default.
pub const ROOT_DEFAULT_ROLES: &[&str] = &["Desktop User", "PROe User"];

/// Where a user's role comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleSource {
    /// Set by an administrator.
    Admin,
    /// Set by role mapping.
    Mapping,
    /// Inherited from the organization's default roles.
    Org,
}

impl RoleSource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleSource::Admin => "admin",
            RoleSource::Mapping => "mapping",
            RoleSource::Org => "org",
        }
    }
}

/// An administrator API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminToken {
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// Its id.
    pub id: AdminTokenId,
    /// A label, for people.
    pub label: String,
    /// The first characters, to recognise it by.
    pub prefix: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// When it was last used.
    pub last_used_at: Option<Timestamp>,
    /// An application credential's scopes; `None` for an administrator token (full access).
    pub scopes: Option<Vec<Scope>>,
}

/// What an application credential may read (docs/api.md, "Application credentials").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scope {
    /// `directory:read`: users, groups, organizations and roles.
    #[serde(rename = "directory:read")]
    DirectoryRead,
    /// `events:read`: the event feed.
    #[serde(rename = "events:read")]
    EventsRead,
}

impl Scope {
    /// Every scope.
    pub const ALL: &'static [Scope] = &[Scope::DirectoryRead, Scope::EventsRead];

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::DirectoryRead => "directory:read",
            Scope::EventsRead => "events:read",
        }
    }

    /// The scope with this name.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.iter().copied().find(|s| s.as_str() == name)
    }
}

impl AdminToken {
    /// Whether the token authenticates requests at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// A provisioning provider: an identity provider that pushes users and groups over SCIM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provider {
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// Its id, which is also the last segment of its SCIM base URL.
    pub id: ProviderId,
    /// The display name administrators gave it.
    pub name: String,
    /// Seconds between a provider turning a user off and Muster deactivating them.
    pub deactivation_delay_secs: i64,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When it last changed a user or group.
    pub last_sync_at: Option<Timestamp>,
}

/// A provider's bearer token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderToken {
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// Its id.
    pub id: TokenId,
    /// The provider it authenticates.
    pub provider_id: ProviderId,
    /// A label, for administrators.
    pub label: String,
    /// The first characters of the token, to recognise it by.
    pub prefix: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// When it last authenticated a request.
    pub last_used_at: Option<Timestamp>,
}

impl ProviderToken {
    /// Whether the token authenticates requests at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// A user's standing in Muster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    /// Can sign in.
    Active,
    /// Cannot sign in; data kept.
    Blocked,
    /// Deactivated.
    Deactivated,
}

impl UserStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Blocked => "blocked",
            UserStatus::Deactivated => "deactivated",
        }
    }
    /// Reads the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(UserStatus::Active),
            "blocked" => Some(UserStatus::Blocked),
            "deactivated" => Some(UserStatus::Deactivated),
            _ => None,
        }
    }
}

/// A user: local (`provider_id` is `None`) or provisioned by exactly one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// Its id (the SCIM `id`).
    pub id: UserId,
    /// The provider that owns it, or `None` for a local user.
    pub provider_id: Option<ProviderId>,
    /// The SCIM `userName`, as sent.
    pub user_name: String,
    /// The provider's `externalId`, if any.
    pub external_id: Option<String>,
    /// The SCIM `displayName`, if any.
    pub display_name: Option<String>,
    /// The SCIM `active` flag as the provider last set it.
    pub scim_active: bool,
    /// Muster's status for the user.
    pub status: UserStatus,
    /// The organization the user belongs to.
    pub org_id: OrgId,
    /// Whether a legal hold stops deactivation.
    pub legal_hold: bool,
    /// Whether an administrator changed the user since the provider last updated it.
    pub changed_outside: bool,
    /// The SCIM resource in canonical form (without `id`, `meta` and `groups`): its stored
    /// text, parsed on first use.
    pub resource: Attributes,
    /// Bumped on every write; the SCIM `meta.version`.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When the provider DELETEd it; the user is then invisible to the provider.
    pub removed_at: Option<Timestamp>,
    /// When a pending deactivation is due.
    pub deactivate_at: Option<Timestamp>,
}

impl UserRecord {
    /// The name to show a person: the SCIM `displayName`, else `name.formatted`, else
    /// `name.givenName` and `name.familyName` (RFC 7643 §4.1.1), else nothing.
    pub fn full_name(&self) -> Option<String> {
        if let Some(d) = self
            .display_name
            .as_deref()
            .filter(|d| !d.trim().is_empty())
        {
            return Some(d.to_string());
        }
        let name = self.resource.get("name")?;
        let part = |k: &str| {
            name.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        if let Some(f) = part("formatted") {
            return Some(f.to_string());
        }
        let joined: Vec<&str> = [part("givenName"), part("familyName")]
            .into_iter()
            .flatten()
            .collect();
        (!joined.is_empty()).then(|| joined.join(" "))
    }

    /// The address to show a person: the email marked `primary` (RFC 7643 §2.4), else the
    /// first, as the provider sent it.
    pub fn primary_email(&self) -> Option<&str> {
        let emails = self.resource.get("emails")?.as_array()?;
        let primary = emails
            .iter()
            .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true));
        primary
            .or_else(|| emails.first())?
            .get("value")?
            .as_str()
            .filter(|v| !v.trim().is_empty())
    }

    /// The user's email addresses, lower-cased and without duplicates: what `emails.value`
    /// filters are matched against in storage.
    pub fn email_keys(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .resource
            .get("emails")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|e| e.get("value").and_then(Value::as_str))
                    .map(|v| v.trim().to_lowercase())
                    .filter(|v| !v.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out.dedup();
        out
    }
}

/// A SCIM group, owned by one provider. Its members live in their own table.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// Its id (the SCIM `id`).
    pub id: GroupId,
    /// The provider that owns it.
    pub provider_id: ProviderId,
    /// The SCIM `displayName`.
    pub display_name: String,
    /// The provider's `externalId`, if any.
    pub external_id: Option<String>,
    /// The SCIM resource in canonical form (without `id`, `meta` and `members`).
    pub resource: Map<String, Value>,
    /// Bumped on every write; the SCIM `meta.version`.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A member of a group, with what a SCIM `members` value shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    /// The user.
    pub user_id: UserId,
    /// Its display name, or its userName.
    pub display: String,
}

/// A group a user belongs to, with what a SCIM `groups` value shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    /// The group.
    pub group_id: GroupId,
    /// Its displayName.
    pub display: String,
}

impl GroupRef {
    /// The order a user's groups are listed in: by name, then by id.
    pub fn name_order(&self) -> (&str, GroupId) {
        (&self.display, self.group_id)
    }
}

/// Who caused a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Actor {
    /// A provisioning provider, through SCIM.
    Provider {
        /// The provider.
        id: ProviderId,
    },
    /// An administrator, through the console, the API or the CLI.
    Admin {
        /// Who, as they are known.
        name: String,
    },
    /// Muster itself (the deactivation scheduler, retention).
    System,
}

/// Whether a logged change happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It happened.
    Success,
    /// It was refused or failed.
    Error,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
        }
    }
}

/// One sync log entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncLogEntry {
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// When.
    pub at: Timestamp,
    /// Which provider's sync it belongs to, if any.
    pub provider_id: Option<ProviderId>,
    /// Who caused it.
    pub actor: Actor,
    /// What happened, such as `user.created` or `group.members_added`.
    pub action: crate::synclog::event::Event,
    /// `user` or `group` or `org`, if the entry is about one.
    pub subject_kind: Option<String>,
    /// The subject's id.
    pub subject_id: Option<String>,
    /// The subject's name at the time, readable after the subject is gone.
    pub subject_name: Option<String>,
    /// What changed: fields before and after, members added, request details.
    pub details: Value,
    /// Whether it happened.
    pub outcome: Outcome,
    /// For errors: why.
    pub message: Option<String>,
}

/// One change in the event feed (docs/events.md). The store gives it its `seq` when the
/// transaction that wrote it commits.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    /// Stable across deliveries: receivers deduplicate by it.
    pub id: uuid::Uuid,
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// A dotted noun: `user.created`, `group.member_added` (`events::EventType`).
    pub kind: String,
    /// When the change was made.
    pub occurred_at: Timestamp,
    /// The provider whose resource changed, if any.
    pub provider_id: Option<ProviderId>,
    /// Who made it.
    pub actor: Actor,
    /// The resource as the API shows it after the change.
    pub data: Value,
}

/// Where events are delivered (docs/webhooks.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// Its id.
    pub id: crate::ids::WebhookId,
    /// Where deliveries are POSTed.
    pub url: String,
    /// For people.
    pub description: String,
    /// The event types and families it receives; every type when empty.
    pub event_types: Vec<String>,
    /// The signing secret (`whsec_…`), kept to sign every delivery.
    pub secret: String,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Deliveries failed for longer than the retry schedule allows; disabled until re-enabled.
    pub failing: bool,
    /// The last event delivered: the next delivery starts after it.
    pub after_seq: i64,
    /// Failed attempts in a row.
    pub attempts: i64,
    /// When the current run of failures began.
    pub first_failure_at: Option<Timestamp>,
    /// When the next delivery may be made.
    pub next_attempt_at: Timestamp,
    /// Until when an instance holds it for a delivery.
    pub lease_until: Option<Timestamp>,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// Increasing.
    pub id: i64,
    /// The endpoint.
    pub webhook_id: crate::ids::WebhookId,
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// When.
    pub attempted_at: Timestamp,
    /// The first and last `seq` of the batch sent.
    pub first_seq: i64,
    /// The last `seq` of the batch sent.
    pub last_seq: i64,
    /// The HTTP status, if the receiver answered.
    pub status_code: Option<i64>,
    /// How long it took.
    pub latency_ms: i64,
    /// The first KiB of the answer.
    pub response: String,
    /// What went wrong, when no status came back or it was not 2xx.
    pub error: Option<String>,
    /// What was sent.
    pub kind: DeliveryKind,
}

/// What a delivery attempt sent.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryKind {
    /// The endpoint's next batch of the feed.
    Feed,
    /// One event sent again at an administrator's request.
    Redeliver,
    /// A test event.
    Test,
}

impl DeliveryKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Feed => "feed",
            DeliveryKind::Redeliver => "redeliver",
            DeliveryKind::Test => "test",
        }
    }

    /// From storage; an unknown value reads as `feed`.
    pub fn parse(s: &str) -> DeliveryKind {
        match s {
            "redeliver" => DeliveryKind::Redeliver,
            "test" => DeliveryKind::Test,
            _ => DeliveryKind::Feed,
        }
    }
}

/// A delivery an administrator asked for outside the endpoint's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManualDelivery {
    /// Its id in the queue.
    pub id: i64,
    /// The event to send again; a test event when `None`.
    pub seq: Option<i64>,
}

/// How a provider's users are placed in organizations (docs/mapping.md).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgMethod {
    /// Every new user goes to one organization, once, when created.
    Single,
    /// The `c42OrgName` attribute names the organization.
    C42OrgName,
    /// An attribute the administrator chose names the organization.
    Attribute,
    /// The user's highest-priority mapped SCIM group decides.
    Groups,
}

impl OrgMethod {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgMethod::Single => "single",
            OrgMethod::C42OrgName => "c42_org_name",
            OrgMethod::Attribute => "attribute",
            OrgMethod::Groups => "groups",
        }
    }
    /// Reads the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "single" => Some(OrgMethod::Single),
            "c42_org_name" => Some(OrgMethod::C42OrgName),
            "attribute" => Some(OrgMethod::Attribute),
            "groups" => Some(OrgMethod::Groups),
            _ => None,
        }
    }
}

/// A provider's organization mapping method and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgMapping {
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// The provider it belongs to.
    pub provider_id: ProviderId,
    /// The method.
    pub method: OrgMethod,
    /// `Single`: the organization new users go to.
    pub org_id: Option<OrgId>,
    /// `Attribute`: the SCIM attribute path whose value names the organization.
    pub attribute: Option<String>,
    /// `C42OrgName`, `Attribute`: where organizations the mapping creates go (`None`: the root).
    pub parent_org_id: Option<OrgId>,
    /// `C42OrgName`, `Attribute`, `Groups`: where users the mapping cannot place go (`None`: the
    /// root).
    pub unmapped_org_id: Option<OrgId>,
    /// When it was last set.
    pub updated_at: Timestamp,
}

/// One entry of a provider's group-to-organization mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupOrgMapping {
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// Its id.
    pub id: GroupMappingId,
    /// The provider it belongs to.
    pub provider_id: ProviderId,
    /// The organization its groups' members go to.
    pub org_id: OrgId,
    /// Its rank: 1 wins over 2 for a user in groups of both.
    pub priority: i64,
    /// Its groups (each group is in at most one entry).
    pub groups: Vec<GroupId>,
    /// When it was added.
    pub created_at: Timestamp,
}

/// What an administrator may do in the console (docs/console.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    /// Everything.
    CustomerCloudAdmin,
    /// Providers and mappings.
    IdentityManagementAdmin,
    /// The sync log, read-only.
    AuditLogViewer,
}

impl AdminRole {
    /// How much it may do: Customer Cloud Admin 3, Identity Management Administrator 2, Audit
    /// Log Viewer 1.
    pub fn rank(self) -> u8 {
        match self {
            AdminRole::CustomerCloudAdmin => 3,
            AdminRole::IdentityManagementAdmin => 2,
            AdminRole::AuditLogViewer => 1,
        }
    }
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::CustomerCloudAdmin => "customer_cloud_admin",
            AdminRole::IdentityManagementAdmin => "identity_management_admin",
            AdminRole::AuditLogViewer => "audit_log_viewer",
        }
    }
    /// Reads the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer_cloud_admin" => Some(AdminRole::CustomerCloudAdmin),
            "identity_management_admin" => Some(AdminRole::IdentityManagementAdmin),
            "audit_log_viewer" => Some(AdminRole::AuditLogViewer),
            _ => None,
        }
    }
    /// The role's name in the catalog.
    pub fn title(self) -> &'static str {
        match self {
            AdminRole::CustomerCloudAdmin => "Customer Cloud Admin",
            AdminRole::IdentityManagementAdmin => "Identity Management Administrator",
            AdminRole::AuditLogViewer => "Audit Log Viewer",
        }
    }
}

/// An administrator who signs in to the console, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminAccount {
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// Its id.
    pub id: AdminId,
    /// The name it signs in with.
    pub username: String,
    /// What it may do.
    pub role: AdminRole,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last signed in.
    pub last_sign_in_at: Option<Timestamp>,
    /// Consecutive failed sign-ins.
    pub failed_sign_ins: i64,
    /// Sign-in is refused until then, after repeated failures.
    pub locked_until: Option<Timestamp>,
    /// Where notices go; none without it.
    pub email: Option<String>,
    /// Which reports it wants (docs/notifications.md).
    pub report: ReportPreference,
    /// For an administrator made from the company's identity provider: `issuer|subject`. They
    /// have no password.
    pub oidc_subject: Option<String>,
}

/// A console session, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// Its id.
    pub id: SessionId,
    /// Who it belongs to.
    pub admin_id: AdminId,
    /// The token every form of this session carries (CSRF).
    pub csrf_token: String,
    /// When it began.
    pub created_at: Timestamp,
    /// When it was last used.
    pub last_seen_at: Timestamp,
    /// When it ends whatever happens.
    pub expires_at: Timestamp,
    /// When it was signed out.
    pub revoked_at: Option<Timestamp>,
}

/// A provider as the subject of a request, with its environment. Shared, not copied: every
/// SCIM request clones one out of the token cache.
#[derive(Debug, Clone)]
pub struct ProviderCtx {
    /// The provider.
    pub provider: std::sync::Arc<Provider>,
    /// Its SCIM base URL (`{public_url}/scim/v2/{provider_id}`).
    pub base_url: std::sync::Arc<str>,
}

impl ProviderCtx {
    /// The provider's environment.
    pub fn env(&self) -> EnvironmentId {
        self.provider.environment_id
    }
    /// The provider's id.
    pub fn id(&self) -> ProviderId {
        self.provider.id
    }
}

/// The case-insensitive key of a userName or displayName.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(display: Option<&str>, resource: Value) -> UserRecord {
        let at = Timestamp(0);
        UserRecord {
            environment_id: EnvironmentId::new(),
            id: UserId::new(),
            provider_id: None,
            user_name: "ada@example.com".into(),
            external_id: None,
            display_name: display.map(str::to_string),
            scim_active: true,
            status: UserStatus::Active,
            org_id: OrgId::new(),
            legal_hold: false,
            changed_outside: false,
            resource: resource.as_object().cloned().unwrap_or_default().into(),
            version: 1,
            created_at: at,
            updated_at: at,
            removed_at: None,
            deactivate_at: None,
        }
    }

    #[test]
    fn a_users_name_comes_from_display_name_then_the_name_parts() {
        let parts = json!({"name": {"givenName": "Ada", "familyName": "Lovelace"}});
        assert_eq!(
            user(Some("A. L."), parts.clone()).full_name().as_deref(),
            Some("A. L.")
        );
        assert_eq!(
            user(None, parts).full_name().as_deref(),
            Some("Ada Lovelace")
        );
        let formatted = json!({"name": {"formatted": "Ada King", "givenName": "Ada"}});
        assert_eq!(
            user(Some(" "), formatted).full_name().as_deref(),
            Some("Ada King")
        );
        let family = json!({"name": {"familyName": "Lovelace"}});
        assert_eq!(user(None, family).full_name().as_deref(), Some("Lovelace"));
        assert_eq!(user(None, json!({})).full_name(), None);
    }

    #[test]
    fn a_users_email_is_the_primary_one_else_the_first() {
        let emails = json!({"emails": [
            {"value": "ada@home.example", "type": "home"},
            {"value": "Ada@Work.example", "type": "work", "primary": true},
        ]});
        assert_eq!(user(None, emails).primary_email(), Some("Ada@Work.example"));
        let none_primary = json!({"emails": [{"value": "a@x.example"}, {"value": "b@x.example"}]});
        assert_eq!(
            user(None, none_primary).primary_email(),
            Some("a@x.example")
        );
        // Only a boolean `true` makes an address primary.
        let odd = json!({"emails": [{"value": "a@x.example"}, {"value": "b@x.example", "primary": "yes"}]});
        assert_eq!(user(None, odd).primary_email(), Some("a@x.example"));
        assert_eq!(user(None, json!({"emails": []})).primary_email(), None);
        assert_eq!(
            user(None, json!({"emails": [{"value": " "}]})).primary_email(),
            None
        );
        assert_eq!(user(None, json!({})).primary_email(), None);
    }
}

/// A provider's mass-deactivation guard (docs/notifications.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderGuard {
    /// The provider.
    pub provider_id: ProviderId,
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// Whether the guard watches this provider.
    pub enabled: bool,
    /// Trips when the provider turns off more than this percentage of its active users ...
    pub percent: i64,
    /// ... and more than this many users ...
    pub min_users: i64,
    /// ... within this many seconds.
    pub window_secs: i64,
    /// Since when every deactivation from the provider is held (`None`: not tripped).
    pub held_since: Option<Timestamp>,
    /// How many users the provider had turned off within the window when the guard tripped.
    pub held_turned_off: i64,
}

impl ProviderGuard {
    /// The defaults: on, more than 10% and more than 25 users within an hour.
    pub fn default_for(environment_id: EnvironmentId, provider_id: ProviderId) -> ProviderGuard {
        ProviderGuard {
            provider_id,
            environment_id,
            enabled: true,
            percent: 10,
            min_users: 25,
            window_secs: 3600,
            held_since: None,
            held_turned_off: 0,
        }
    }

    /// Whether `turned_off` users out of `base` (the active users before the window, that is
    /// those still active plus those turned off) trip the guard.
    pub fn trips(&self, turned_off: u64, base: u64) -> bool {
        self.enabled
            && turned_off as i64 > self.min_users
            && (turned_off as i64) * 100 > self.percent * base as i64
    }
}

/// What an administrator wants emailed about the directory.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportPreference {
    /// The daily sync report, and error emails.
    Daily,
    /// The daily report only when there were errors, and error emails.
    Errors,
    /// Neither.
    Never,
}

impl ReportPreference {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportPreference::Daily => "daily",
            ReportPreference::Errors => "errors",
            ReportPreference::Never => "never",
        }
    }

    /// From storage or input.
    pub fn parse(s: &str) -> Option<ReportPreference> {
        match s {
            "daily" => Some(ReportPreference::Daily),
            "errors" => Some(ReportPreference::Errors),
            "never" => Some(ReportPreference::Never),
            _ => None,
        }
    }
}

/// A message in the mail queue, for one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    /// Its id.
    pub id: i64,
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// The address.
    pub recipient: String,
    /// What it is (`notify::Notice`'s kind), rendered when sent.
    pub kind: String,
    /// The notice's data.
    pub payload: Value,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Failed attempts so far.
    pub attempts: i64,
}
