//! Storage as traits: one per aggregate, all implemented by a transaction ([`Tx`]).
//!
//! A [`Store`] hands out transactions: [`Store::write`] for changes (serialised on SQLite,
//! concurrent on PostgreSQL) and [`Store::read`] for queries. Every method takes the environment
//! and scopes its query by it: no query can cross environments. A change and its sync-log entries
//! are written through the same transaction, so neither exists without the other.

use async_trait::async_trait;

use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::ids::{
    AdminId, AdminTokenId, EnvironmentId, GroupId, GroupMappingId, OrgId, ProviderId, RoleId,
    SessionId, TokenId, UserId, WebhookId,
};
use crate::model::{
    AdminAccount, AdminRole, AdminSession, AdminToken, Environment, FeedEvent, GroupOrgMapping,
    GroupRecord, GroupRef, Mail, ManualDelivery, MemberRef, Org, OrgMapping, Provider,
    ProviderGuard, ProviderToken, Role, RoleSource, SyncLogEntry, UserRecord, WebhookDelivery,
    WebhookEndpoint,
};
use serde_json::Value;

/// Shorthand for storage results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A provider's organization mapping method, if chosen, and its (group, role) role mappings.
pub type MappingRules = (Option<OrgMapping>, Vec<(GroupId, RoleId)>);

/// An environment's organizations, default roles and roles ([`OrgStore::org_tree`]).
#[derive(Debug, Default)]
pub struct OrgTree {
    /// The organizations.
    pub orgs: Vec<Org>,
    /// (organization, role) default-role pairs.
    pub defaults: Vec<(OrgId, RoleId)>,
    /// The roles.
    pub roles: Vec<Role>,
}

/// An environment's organization tree as [`MappingStore::rules_and_org_tree`] reads it: the
/// token that identifies it, and the tree itself unless the caller held that token already.
#[derive(Debug, Default)]
pub struct OrgTreeRead {
    /// The tree's token: it changes whenever the environment's organizations, their default
    /// roles or its roles change, and is never given to another tree. `None` where the database
    /// keeps none (PostgreSQL: its migration 12 says why), and the tree is then always read.
    pub version: Option<i64>,
    /// The tree; `None` when the token is the one the caller passed.
    pub tree: Option<OrgTree>,
}

/// A condition storage renders to SQL exactly. What a SCIM filter needs beyond it is evaluated
/// in Rust over the rows it selects.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// Matches nothing (for example `id eq "not-a-uuid"`).
    Never,
    /// The resource id.
    Id(uuid::Uuid),
    /// One of these resource ids.
    IdIn(Vec<uuid::Uuid>),
    /// `userName`, lower-cased.
    UserNameKey(String),
    /// `externalId`, exactly.
    ExternalId(String),
    /// A group's `displayName`, lower-cased.
    GroupNameKey(String),
    /// A user's SCIM `active`.
    Active(bool),
    /// A user has this email address (lower-cased).
    EmailKey(String),
    /// A time column is in `[from, until)` (microseconds; either end open).
    Time {
        /// Which column.
        column: TimeColumn,
        /// Inclusive lower bound.
        from: Option<i64>,
        /// Exclusive upper bound.
        until: Option<i64>,
    },
    /// Both.
    And(Box<Cond>, Box<Cond>),
    /// Either.
    Or(Box<Cond>, Box<Cond>),
}

/// The columns a listing can be ordered by in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKey {
    /// Creation time (the stable default order).
    Created,
    /// Last modification time.
    LastModified,
    /// The resource id.
    Id,
    /// `userName`, case-insensitively.
    UserName,
    /// `externalId`, exactly.
    ExternalId,
    /// A group's `displayName`, case-insensitively.
    GroupName,
}

/// A listing order: a key, its direction, then creation time and id to break ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    /// The key.
    pub key: OrderKey,
    /// Descending rather than ascending; missing values come first then, last otherwise.
    pub descending: bool,
}

impl Order {
    /// Creation time, ascending.
    pub const CREATED: Order = Order {
        key: OrderKey::Created,
        descending: false,
    };
}

/// The time columns a condition can bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeColumn {
    /// `meta.created`.
    Created,
    /// `meta.lastModified`.
    LastModified,
}

/// Where a listing starts and how much it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return at most.
    pub limit: u64,
}

/// A position in the stable listing order: creation time, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The creation time of the last row seen.
    pub created_at: Timestamp,
    /// The id of the last row seen.
    pub id: uuid::Uuid,
}

/// Environments.
#[async_trait]
pub trait EnvironmentStore {
    /// The environment with this slug.
    async fn find_environment(&mut self, slug: &str) -> StoreResult<Option<Environment>>;
    /// Adds an environment.
    async fn insert_environment(&mut self, env: &Environment) -> StoreResult<()>;
}

/// Organizations.
#[async_trait]
pub trait OrgStore {
    /// The root (default) organization.
    async fn find_root_org(&mut self, env: EnvironmentId) -> StoreResult<Option<Org>>;
    /// An organization by id.
    async fn find_org(&mut self, env: EnvironmentId, id: OrgId) -> StoreResult<Option<Org>>;
    /// Adds an organization; `Conflict(OrgName)` if a sibling has that name.
    async fn insert_org(&mut self, org: &Org) -> StoreResult<()>;
    /// Adds an organization unless its parent already has one of that name, and returns the one
    /// that exists afterwards. Concurrent callers get the same organization (on PostgreSQL the
    /// second waits for the first to commit).
    async fn ensure_child_org(&mut self, org: &Org) -> StoreResult<(Org, bool)>;
    /// Saves an organization's name, parent, status and default-roles flag.
    async fn update_org(&mut self, org: &Org) -> StoreResult<()>;
    /// Every organization of the environment.
    async fn list_orgs(&mut self, env: EnvironmentId) -> StoreResult<Vec<Org>>;
    /// A child of `parent` by lower-cased name.
    async fn find_child_org(
        &mut self,
        env: EnvironmentId,
        parent: OrgId,
        name_key: &str,
    ) -> StoreResult<Option<Org>>;
    /// Every (organization, role) default-role pair of the environment.
    async fn org_default_roles(&mut self, env: EnvironmentId) -> StoreResult<Vec<(OrgId, RoleId)>>;
    /// The environment's organizations, their default roles and its roles, in one statement (in
    /// no particular order): what every user change's event reads, one round trip rather than
    /// three on PostgreSQL.
    async fn org_tree(&mut self, env: EnvironmentId) -> StoreResult<OrgTree>;
    /// Replaces an organization's own default roles.
    async fn set_org_default_roles(
        &mut self,
        env: EnvironmentId,
        org: OrgId,
        roles: &[RoleId],
    ) -> StoreResult<()>;
    /// How many users (removed ones included) belong to the organization.
    async fn count_org_users(&mut self, env: EnvironmentId, org: OrgId) -> StoreResult<u64>;
}

/// The role catalog.
#[async_trait]
pub trait RoleStore {
    /// Adds a role; `Conflict(RoleName)` if the name is taken.
    async fn insert_role(&mut self, role: &Role) -> StoreResult<()>;
    /// Every role, by name.
    async fn list_roles(&mut self, env: EnvironmentId) -> StoreResult<Vec<Role>>;
    /// Deletes a role that nothing uses any more.
    async fn delete_role(&mut self, env: EnvironmentId, id: RoleId) -> StoreResult<bool>;
    /// Renames a role and sets its description; `Conflict` when the name is taken.
    async fn update_role(&mut self, role: &Role) -> StoreResult<()>;
    /// How many users hold the role explicitly, and how many organizations give it by default.
    async fn role_usage(&mut self, env: EnvironmentId, id: RoleId) -> StoreResult<(u64, u64)>;
    /// The roles users hold explicitly, with where each came from.
    async fn user_roles(
        &mut self,
        env: EnvironmentId,
        users: &[UserId],
    ) -> StoreResult<Vec<(UserId, RoleId, RoleSource)>>;
    /// Replaces a user's explicit roles.
    async fn set_user_roles(
        &mut self,
        env: EnvironmentId,
        user: UserId,
        roles: &[RoleId],
        source: RoleSource,
    ) -> StoreResult<()>;
    /// Replaces these users' explicit roles, in a few statements (a re-apply's round).
    async fn set_users_roles(
        &mut self,
        env: EnvironmentId,
        sets: &[(UserId, Vec<RoleId>)],
        source: RoleSource,
    ) -> StoreResult<()>;
}

/// Administrator API tokens.
#[async_trait]
pub trait AdminTokenStore {
    /// Adds a token, stored by the SHA-256 of its secret.
    async fn insert_admin_token(&mut self, t: &AdminToken, hash: &[u8]) -> StoreResult<()>;
    /// The token whose secret hashes to `hash`, with that hash.
    async fn find_admin_token_by_hash(
        &mut self,
        hash: &[u8],
    ) -> StoreResult<Option<(AdminToken, Vec<u8>)>>;
    /// Every token, newest first.
    /// Administrator tokens, or (`apps`) application credentials, newest first.
    async fn list_admin_tokens(
        &mut self,
        env: EnvironmentId,
        apps: bool,
    ) -> StoreResult<Vec<AdminToken>>;
    /// Gives a live token a new secret (rotation): the old one stops working at once.
    async fn replace_admin_token_secret(
        &mut self,
        env: EnvironmentId,
        id: AdminTokenId,
        prefix: &str,
        hash: &[u8],
    ) -> StoreResult<bool>;
    /// Revokes a token; false if there was no such live token.
    async fn revoke_admin_token(
        &mut self,
        env: EnvironmentId,
        id: AdminTokenId,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Records a token's use.
    async fn touch_admin_token(
        &mut self,
        env: EnvironmentId,
        id: AdminTokenId,
        at: Timestamp,
    ) -> StoreResult<()>;
}

/// Which users an administrator's listing shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserQuery {
    /// Only this organization's users.
    pub org: Option<OrgId>,
    /// Only users with this status.
    pub status: Option<crate::model::UserStatus>,
    /// Only this provider's users; `Some(None)` for local users.
    pub provider: Option<Option<ProviderId>>,
    /// userName or the name the user is shown as ([`crate::model::UserRecord::full_name`])
    /// containing this text, case-insensitively; or an email address or externalId that is
    /// exactly this text (the address without case).
    pub text: Option<String>,
    /// The user with exactly this userName, compared without case.
    pub user_name: Option<String>,
    /// Users whose provider gave them this `externalId` (compared exactly, as RFC 7643 §3.1
    /// says it is the provider's own identifier): how an application finds the person an
    /// identity provider signed in, by the id that provider knows them by.
    pub external_id: Option<String>,
    /// Users with this email address among their `emails`, compared without case.
    pub email: Option<String>,
}

/// Providers and their tokens.
#[async_trait]
pub trait ProviderStore {
    /// Adds a provider.
    async fn insert_provider(&mut self, p: &Provider) -> StoreResult<()>;
    /// A provider by id.
    async fn find_provider(
        &mut self,
        env: EnvironmentId,
        id: ProviderId,
    ) -> StoreResult<Option<Provider>>;
    /// A provider by id alone, in whichever environment it is: provider ids are globally unique,
    /// and a request names one before anything tells which environment it belongs to.
    async fn locate_provider(&mut self, id: ProviderId) -> StoreResult<Option<Provider>>;
    /// Every provider, oldest first.
    async fn list_providers(&mut self, env: EnvironmentId) -> StoreResult<Vec<Provider>>;
    /// Saves a provider's name and deactivation delay.
    async fn update_provider(&mut self, p: &Provider) -> StoreResult<()>;
    /// Records that the provider changed something at `at` (precise to 5 seconds).
    async fn touch_provider_sync(
        &mut self,
        env: EnvironmentId,
        id: ProviderId,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Adds a token, stored by the SHA-256 of its secret.
    async fn insert_token(&mut self, t: &ProviderToken, hash: &[u8]) -> StoreResult<()>;
    /// The token whose secret hashes to `hash`, with that stored hash. Any environment: a token
    /// identifies its environment.
    async fn find_token_by_hash(
        &mut self,
        hash: &[u8],
    ) -> StoreResult<Option<(ProviderToken, Vec<u8>)>>;
    /// A provider's tokens, newest first.
    async fn list_tokens(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<Vec<ProviderToken>>;
    /// Revokes a token; false if there was no such live token.
    async fn revoke_token(
        &mut self,
        env: EnvironmentId,
        id: TokenId,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Records a token's use.
    async fn touch_token(
        &mut self,
        env: EnvironmentId,
        id: TokenId,
        at: Timestamp,
    ) -> StoreResult<()>;
}

/// Users.
#[async_trait]
pub trait UserStore {
    /// Adds a user; `Conflict(UserName)` if the userName is taken.
    async fn insert_user(&mut self, u: &UserRecord) -> StoreResult<()>;
    /// A user by id (removed ones included).
    async fn find_user(
        &mut self,
        env: EnvironmentId,
        id: UserId,
    ) -> StoreResult<Option<UserRecord>>;
    /// A user by id (removed ones included) with the groups it belongs to, sorted by name, read
    /// together.
    async fn find_user_and_groups(
        &mut self,
        env: EnvironmentId,
        id: UserId,
    ) -> StoreResult<Option<(UserRecord, Vec<GroupRef>)>>;
    /// A user by lower-cased userName (removed ones included).
    async fn find_user_by_name(
        &mut self,
        env: EnvironmentId,
        user_name_key: &str,
    ) -> StoreResult<Option<UserRecord>>;
    /// In one statement: the user holding a userName key (any provider's), and, when
    /// `external_id` is given, the provider's newest user with that externalId (removed ones
    /// included) — what a create must look at before it inserts.
    async fn find_user_by_name_or_external_id(
        &mut self,
        env: EnvironmentId,
        user_name_key: &str,
        provider: ProviderId,
        external_id: Option<&str>,
    ) -> StoreResult<(Option<UserRecord>, Option<UserRecord>)>;
    /// A provider's user by externalId (removed ones included), newest first.
    async fn find_user_by_external_id(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        external_id: &str,
    ) -> StoreResult<Option<UserRecord>>;
    /// Saves a user if its stored version is still `expected_version`; false if it moved.
    /// The record's own `version` is the new one.
    async fn update_user(&mut self, u: &UserRecord, expected_version: i64) -> StoreResult<bool>;
    /// A provider's users that are not removed and match `cond`, in `order`.
    async fn list_users(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        order: Order,
        page: Page,
    ) -> StoreResult<Vec<UserRecord>>;
    /// Like `list_users`, each user with the groups it belongs to (sorted by name), read in
    /// the same statement.
    async fn list_users_with_groups(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        order: Order,
        page: Page,
    ) -> StoreResult<Vec<(UserRecord, Vec<GroupRef>)>>;
    /// How many of a provider's users are not removed and match `cond`.
    async fn count_users(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
    ) -> StoreResult<u64>;
    /// Like `list_users`, from a cursor onwards: for scanning without offsets.
    async fn scan_users(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        after: Option<Cursor>,
        limit: u64,
    ) -> StoreResult<Vec<UserRecord>>;
    /// Users for administrators, removed ones included, in creation order after `after`.
    async fn query_users(
        &mut self,
        env: EnvironmentId,
        q: &UserQuery,
        after: Option<Cursor>,
        limit: u64,
    ) -> StoreResult<Vec<UserRecord>>;
    /// Users blocked with a deactivation scheduled (every environment): how many, how many are
    /// due at `now`, and the earliest due time.
    async fn deactivation_backlog(
        &mut self,
        now: Timestamp,
    ) -> StoreResult<(u64, u64, Option<Timestamp>)>;
    /// Users, in any environment, whose deactivation is due at `now`, earliest first.
    async fn due_deactivations(
        &mut self,
        now: Timestamp,
        limit: u64,
    ) -> StoreResult<Vec<UserRecord>>;
    /// Moves a user to another organization and bumps its version, if its version is still
    /// `expected_version`; false otherwise. Touches nothing else (no resource rewrite).
    async fn move_user(
        &mut self,
        env: EnvironmentId,
        id: UserId,
        org: OrgId,
        expected_version: i64,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// [`UserStore::move_user`] for many users in a few statements (a re-apply's round): each
    /// `(user, organization, expected version)`. Returns the users moved.
    async fn move_users(
        &mut self,
        env: EnvironmentId,
        moves: &[(UserId, OrgId, i64)],
        at: Timestamp,
    ) -> StoreResult<Vec<UserId>>;
    /// The users with these ids (in no particular order; unknown ids are skipped).
    async fn users_by_ids(
        &mut self,
        env: EnvironmentId,
        ids: &[UserId],
    ) -> StoreResult<Vec<UserRecord>>;
    /// Those of `ids` that are users of the provider and not removed.
    async fn existing_user_ids(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        ids: &[UserId],
    ) -> StoreResult<Vec<UserId>>;
}

/// SCIM groups and their members.
#[async_trait]
pub trait GroupStore {
    /// Adds a group; `Conflict(GroupName)` if the provider has one of that name.
    async fn insert_group(&mut self, g: &GroupRecord) -> StoreResult<()>;
    /// A group by id.
    async fn find_group(
        &mut self,
        env: EnvironmentId,
        id: GroupId,
    ) -> StoreResult<Option<GroupRecord>>;
    /// A provider's group by lower-cased displayName.
    async fn find_group_by_name(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        key: &str,
    ) -> StoreResult<Option<GroupRecord>>;
    /// Saves a group if its stored version is still `expected_version`; false if it moved.
    async fn update_group(&mut self, g: &GroupRecord, expected_version: i64) -> StoreResult<bool>;
    /// Bumps a group's version and modification time without touching its resource (a
    /// membership change); with `expected`, only if the version is still that. Returns the new
    /// version, or `None` if the group is gone or its version moved.
    async fn bump_group_version(
        &mut self,
        env: EnvironmentId,
        id: GroupId,
        at: Timestamp,
        expected: Option<i64>,
    ) -> StoreResult<Option<i64>>;
    /// How many members a group has, counting no further than `cap`.
    async fn member_count_capped(
        &mut self,
        env: EnvironmentId,
        group: GroupId,
        cap: u64,
    ) -> StoreResult<u64>;
    /// Every group of the provider with its displayName and member count (one query).
    async fn group_summaries(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<Vec<(GroupId, String, u64)>>;
    /// Deletes a group and its memberships.
    async fn delete_group(&mut self, env: EnvironmentId, id: GroupId) -> StoreResult<bool>;
    /// A provider's groups matching `cond`, in `order`.
    async fn list_groups(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        order: Order,
        page: Page,
    ) -> StoreResult<Vec<GroupRecord>>;
    /// How many of a provider's groups match `cond`.
    async fn count_groups(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
    ) -> StoreResult<u64>;
    /// Like `list_groups`, from a cursor onwards.
    async fn scan_groups(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        after: Option<Cursor>,
        limit: u64,
    ) -> StoreResult<Vec<GroupRecord>>;
    /// Adds members; those already present are left alone. Returns the ones added.
    async fn add_members(
        &mut self,
        env: EnvironmentId,
        group: GroupId,
        users: &[UserId],
        at: Timestamp,
    ) -> StoreResult<Vec<UserId>>;
    /// Removes members; returns the ones that were members.
    async fn remove_members(
        &mut self,
        env: EnvironmentId,
        group: GroupId,
        users: &[UserId],
    ) -> StoreResult<Vec<UserId>>;
    /// The ids of a group's members.
    async fn member_ids(&mut self, env: EnvironmentId, group: GroupId) -> StoreResult<Vec<UserId>>;
    /// Up to `limit` member ids after `after`, by id: a page of a group's members.
    async fn member_ids_page(
        &mut self,
        env: EnvironmentId,
        group: GroupId,
        after: Option<UserId>,
        limit: u64,
    ) -> StoreResult<Vec<UserId>>;
    /// A group's members with their display names, in the order they were added.
    async fn members(&mut self, env: EnvironmentId, group: GroupId) -> StoreResult<Vec<MemberRef>>;
    /// The environment's groups (one provider's, if given) by creation, after the cursor.
    async fn query_groups(
        &mut self,
        env: EnvironmentId,
        provider: Option<ProviderId>,
        after: Option<Cursor>,
        limit: u64,
    ) -> StoreResult<Vec<GroupRecord>>;
    /// The groups each of these users belongs to.
    async fn groups_of_users(
        &mut self,
        env: EnvironmentId,
        users: &[UserId],
    ) -> StoreResult<Vec<(UserId, GroupRef)>>;
}

/// Which sync log entries a query selects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
    /// Of this provider.
    pub provider: Option<ProviderId>,
    /// About this subject (user or group id).
    pub subject: Option<String>,
    /// With this action (`user.created`), or a family of them (`user.` for every user action).
    pub action: Option<String>,
    /// With this outcome.
    pub outcome: Option<crate::model::Outcome>,
}

impl LogQuery {
    /// Why the time range can select nothing (its start not before its end), if so: a mistake
    /// to point out rather than answer with an empty list or export.
    pub fn range_problem(&self) -> Option<String> {
        match (self.since, self.until) {
            (Some(s), Some(u)) if s.micros() >= u.micros() => Some(format!(
                "the range's start ({}) must be before its end ({})",
                s.to_rfc3339(),
                u.to_rfc3339()
            )),
            _ => None,
        }
    }
}

/// The sync log.
#[async_trait]
pub trait SyncLogStore {
    /// Appends entries.
    async fn append_log(&mut self, entries: &[SyncLogEntry]) -> StoreResult<()>;
    /// Entries matching `q`, newest first, strictly before the entry `before` (an id) if given.
    async fn query_log(
        &mut self,
        env: EnvironmentId,
        q: &LogQuery,
        before: Option<(Timestamp, i64)>,
        limit: u64,
    ) -> StoreResult<Vec<(i64, SyncLogEntry)>>;
    /// How many error entries a provider has since `since`.
    async fn count_log_errors(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        since: Timestamp,
    ) -> StoreResult<u64>;
    /// Deletes at most `limit` entries older than `cutoff`, in any environment; returns how many.
    async fn delete_log_before(&mut self, cutoff: Timestamp, limit: u64) -> StoreResult<u64>;
    /// The newest entries, newest first (most `limit`).
    async fn recent_log(
        &mut self,
        env: EnvironmentId,
        limit: u64,
    ) -> StoreResult<Vec<SyncLogEntry>>;
}

/// The event feed (docs/events.md).
#[async_trait]
pub trait EventStore {
    /// Adds events to this write transaction. Their `seq`s are handed out in commit order: on
    /// SQLite at once (its one writer commits in that order anyway), on PostgreSQL just after
    /// the transaction commits, by the store's sequencer ([`Store::settle_events`]).
    async fn queue_events(&mut self, events: Vec<FeedEvent>) -> StoreResult<()>;
    /// Up to `limit` events of the environment after `after`, in `seq` order; only those of
    /// `types` (a type, or a family such as `user.`) when given.
    async fn events_after(
        &mut self,
        env: EnvironmentId,
        after: i64,
        limit: u64,
        types: &[String],
    ) -> StoreResult<Vec<(i64, FeedEvent)>>;
    /// The newest `seq` handed out (0 before the first event).
    async fn event_head(&mut self) -> StoreResult<i64>;
    /// The newest `seq` retention has deleted (0 if none): a cursor before it missed events.
    async fn event_horizon(&mut self) -> StoreResult<i64>;
    /// Deletes at most `limit` of the oldest events, all of them written before `cutoff`;
    /// returns how many.
    async fn prune_events(&mut self, cutoff: Timestamp, limit: u64) -> StoreResult<u64>;
}

/// Webhook endpoints and their deliveries (docs/webhooks.md).
#[async_trait]
pub trait WebhookStore {
    /// Adds an endpoint.
    async fn insert_webhook(&mut self, w: &WebhookEndpoint) -> StoreResult<()>;
    /// The environment's endpoints, oldest first.
    async fn list_webhooks(&mut self, env: EnvironmentId) -> StoreResult<Vec<WebhookEndpoint>>;
    /// One endpoint.
    async fn find_webhook(
        &mut self,
        env: EnvironmentId,
        id: WebhookId,
    ) -> StoreResult<Option<WebhookEndpoint>>;
    /// Saves an endpoint; false if it is gone.
    async fn update_webhook(&mut self, w: &WebhookEndpoint) -> StoreResult<bool>;
    /// Deletes an endpoint and its delivery log; false if there was none.
    async fn delete_webhook(&mut self, env: EnvironmentId, id: WebhookId) -> StoreResult<bool>;
    /// Whether an endpoint is due for a delivery: enabled, with events newer than its cursor (or,
    /// after failures, its retry due), or with a manual delivery queued; and no live lease.
    async fn any_webhook_due(&mut self, now: Timestamp) -> StoreResult<bool>;
    /// Takes the lease of one endpoint due, as [`WebhookStore::any_webhook_due`] says, until
    /// `lease_until`; `None` when none is due. Two instances never hold the same endpoint at once.
    async fn claim_due_webhook(
        &mut self,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<WebhookEndpoint>>;
    /// Across environments: endpoints on, failing, and the most events any endpoint that is on
    /// has yet to receive (the newest `seq` minus its cursor).
    async fn webhook_status(&mut self) -> StoreResult<(u64, u64, i64)>;
    /// Records an attempt.
    async fn insert_delivery(&mut self, d: &WebhookDelivery) -> StoreResult<()>;
    /// Deletes at most `limit` attempts made before `cutoff`, in any environment; returns how
    /// many.
    async fn delete_deliveries_before(&mut self, cutoff: Timestamp, limit: u64)
        -> StoreResult<u64>;
    /// Queues a delivery outside the endpoint's order: event `seq` again, or a test event.
    async fn insert_manual_delivery(
        &mut self,
        env: EnvironmentId,
        id: WebhookId,
        seq: Option<i64>,
        now: Timestamp,
    ) -> StoreResult<i64>;
    /// The endpoint's oldest queued manual delivery.
    async fn next_manual_delivery(&mut self, id: WebhookId) -> StoreResult<Option<ManualDelivery>>;
    /// Removes a queued manual delivery (sent, or its event is gone).
    async fn delete_manual_delivery(&mut self, manual_id: i64) -> StoreResult<()>;
    /// An endpoint's attempts, newest first.
    async fn list_deliveries(
        &mut self,
        env: EnvironmentId,
        id: WebhookId,
        limit: u64,
    ) -> StoreResult<Vec<WebhookDelivery>>;
}

/// The mass-deactivation guard, the mail queue, and when periodic notices last went out
/// (docs/notifications.md).
#[async_trait]
pub trait NoticeStore {
    /// A provider's guard; `None` when it has the defaults.
    async fn find_guard(&mut self, provider: ProviderId) -> StoreResult<Option<ProviderGuard>>;
    /// Saves a provider's guard.
    async fn save_guard(&mut self, g: &ProviderGuard) -> StoreResult<()>;
    /// Every guard that is holding deactivations.
    async fn held_guards(&mut self, env: EnvironmentId) -> StoreResult<Vec<ProviderGuard>>;
    /// Users the provider turned off (blocked) since `since`, from the sync log.
    async fn count_turn_offs(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        since: Timestamp,
    ) -> StoreResult<u64>;
    /// The provider's users that are active now.
    async fn count_active_users(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<u64>;
    /// How many of the provider's users have a deactivation scheduled.
    async fn count_pending_deactivations(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<u64>;
    /// The provider's users blocked with a deactivation scheduled, soonest first (most `limit`).
    async fn pending_deactivations(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        limit: u64,
    ) -> StoreResult<Vec<UserRecord>>;
    /// Queues a message.
    async fn insert_mail(
        &mut self,
        env: EnvironmentId,
        recipient: &str,
        kind: &str,
        payload: &Value,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Takes the lease of one message due, until `lease_until`.
    async fn claim_due_mail(
        &mut self,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<Mail>>;
    /// Marks a message sent.
    async fn mail_sent(&mut self, id: i64, now: Timestamp) -> StoreResult<()>;
    /// Records a failed attempt: retried at `retry_at`, or given up when `None`.
    async fn mail_failed(
        &mut self,
        id: i64,
        now: Timestamp,
        retry_at: Option<Timestamp>,
        error: &str,
    ) -> StoreResult<()>;
    /// Messages waiting, messages given up on, and providers whose deactivations the guard
    /// holds, in every environment.
    async fn mail_status(&mut self) -> StoreResult<(u64, u64, u64)>;
    /// Sets when a periodic notice last went out to `at`, if it last went out before
    /// `older_than` (or never); true when this call did it (so one instance sends it).
    async fn claim_notice(
        &mut self,
        kind: &str,
        scope: &str,
        at: Timestamp,
        older_than: Timestamp,
    ) -> StoreResult<bool>;
    /// Sync-log entries of `[from, to)` counted by provider, action and whether they are errors.
    async fn log_counts(
        &mut self,
        env: EnvironmentId,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<(Option<ProviderId>, String, bool, u64)>>;
    /// The provider's most frequent error messages of `[from, to)`, with their counts.
    async fn top_errors(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        from: Timestamp,
        to: Timestamp,
        limit: u64,
    ) -> StoreResult<Vec<(String, u64)>>;
    /// When a periodic notice last went out.
    async fn notice_last(&mut self, kind: &str, scope: &str) -> StoreResult<Option<Timestamp>>;
}

/// Console administrators and their sessions.
#[async_trait]
pub trait AdminAccountStore {
    /// Adds an administrator; `Conflict(Other)` if the username is taken.
    async fn insert_admin(&mut self, a: &AdminAccount, password_hash: &str) -> StoreResult<()>;
    /// An administrator by lower-cased username, with its password hash.
    async fn find_admin_by_username(
        &mut self,
        env: EnvironmentId,
        username_key: &str,
    ) -> StoreResult<Option<(AdminAccount, String)>>;
    /// Every administrator, by username.
    async fn list_admins(&mut self, env: EnvironmentId) -> StoreResult<Vec<AdminAccount>>;
    /// Saves the sign-in bookkeeping: last sign-in, failures, lock.
    async fn update_admin_sign_in(&mut self, a: &AdminAccount) -> StoreResult<()>;
    /// Adds a session, stored by the SHA-256 of its secret.
    async fn insert_session(&mut self, s: &AdminSession, token_hash: &[u8]) -> StoreResult<()>;
    /// The session whose secret hashes to `hash`, with its administrator.
    async fn find_session_by_hash(
        &mut self,
        hash: &[u8],
    ) -> StoreResult<Option<(AdminSession, AdminAccount)>>;
    /// Records a session's use.
    async fn touch_session(&mut self, id: SessionId, at: Timestamp) -> StoreResult<()>;
    /// Ends a session.
    async fn revoke_session(&mut self, id: SessionId, at: Timestamp) -> StoreResult<()>;
    /// Ends every session of an administrator.
    async fn revoke_sessions_of(&mut self, admin: AdminId, at: Timestamp) -> StoreResult<()>;
    /// The administrator made from an identity provider's subject (`issuer|sub`).
    async fn find_admin_by_oidc_subject(
        &mut self,
        env: EnvironmentId,
        subject: &str,
    ) -> StoreResult<Option<AdminAccount>>;
    /// Links an administrator to an identity provider's subject.
    async fn set_admin_oidc_subject(&mut self, id: AdminId, subject: &str) -> StoreResult<()>;
    /// Records a sign-in under way.
    async fn insert_oidc_login(
        &mut self,
        env: EnvironmentId,
        state_hash: &str,
        nonce: &str,
        verifier: &str,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Takes a sign-in under way (once): its environment, nonce, verifier and start.
    async fn take_oidc_login(
        &mut self,
        state_hash: &str,
    ) -> StoreResult<Option<(EnvironmentId, String, String, Timestamp)>>;
    /// Deletes sign-ins started before `cutoff` and never finished.
    async fn prune_oidc_logins(&mut self, cutoff: Timestamp) -> StoreResult<u64>;
    /// Sets an administrator's email address and report preference.
    async fn set_admin_notifications(
        &mut self,
        env: EnvironmentId,
        id: AdminId,
        email: Option<&str>,
        report: crate::model::ReportPreference,
    ) -> StoreResult<()>;
    /// Gives an administrator another role; false if there is none with that id.
    async fn set_admin_role(
        &mut self,
        env: EnvironmentId,
        id: AdminId,
        role: AdminRole,
    ) -> StoreResult<bool>;
    /// Removes an administrator and its sessions; false if there is none with that id.
    async fn delete_admin(&mut self, env: EnvironmentId, id: AdminId) -> StoreResult<bool>;
    /// The sessions not signed out and not past their end, newest first, with their
    /// administrator.
    async fn open_sessions(
        &mut self,
        env: EnvironmentId,
        now: Timestamp,
    ) -> StoreResult<Vec<(AdminSession, AdminAccount)>>;
}

/// Organization mapping and role mapping.
#[async_trait]
pub trait MappingStore {
    /// A provider's organization mapping method, if one was chosen.
    async fn org_mapping(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<Option<OrgMapping>>;
    /// Sets a provider's organization mapping method.
    async fn put_org_mapping(&mut self, m: &OrgMapping) -> StoreResult<()>;
    /// A provider's group-to-organization entries, by priority.
    async fn group_org_mappings(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<Vec<GroupOrgMapping>>;
    /// Adds an entry with its groups.
    async fn insert_group_org_mapping(&mut self, m: &GroupOrgMapping) -> StoreResult<()>;
    /// Saves an entry's organization, priority and groups.
    async fn update_group_org_mapping(&mut self, m: &GroupOrgMapping) -> StoreResult<()>;
    /// Deletes an entry; false if there was none.
    async fn delete_group_org_mapping(
        &mut self,
        env: EnvironmentId,
        id: GroupMappingId,
    ) -> StoreResult<bool>;
    /// A provider's organization mapping method and its role mappings in one statement: what a
    /// user's placement reads (one round trip rather than two on PostgreSQL).
    async fn mapping_rules(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<MappingRules>;
    /// [`MappingStore::mapping_rules`] and [`OrgStore::org_tree`] together: what creating a
    /// user reads before placing it, in one statement. `known` is the token of a tree the
    /// caller kept from an earlier read: while the tree has not changed, it is not read again.
    ///
    /// A token read after this transaction changed the tree may belong to a change that is
    /// rolled back; it is still never given to another tree.
    async fn rules_and_org_tree(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        known: Option<i64>,
    ) -> StoreResult<(MappingRules, OrgTreeRead)>;
    /// Every (group, role) pair of a provider's role mappings.
    async fn role_mappings(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<Vec<(GroupId, RoleId)>>;
    /// Replaces a group's role mapping (no roles: the group has none).
    async fn put_role_mapping(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        group: GroupId,
        roles: &[RoleId],
    ) -> StoreResult<()>;
    /// The groups whose role mapping gives the role, with their display names.
    async fn role_mapping_groups(
        &mut self,
        env: EnvironmentId,
        role: RoleId,
    ) -> StoreResult<Vec<String>>;
}

/// A transaction (or, from [`Store::read`], a connection) with every aggregate's operations.
#[async_trait]
pub trait Tx:
    EnvironmentStore
    + OrgStore
    + AdminAccountStore
    + MappingStore
    + RoleStore
    + AdminTokenStore
    + ProviderStore
    + UserStore
    + GroupStore
    + SyncLogStore
    + EventStore
    + WebhookStore
    + NoticeStore
    + Send
{
    /// Makes the changes durable. Dropping a transaction without committing rolls it back.
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// A database.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// A transaction for changes.
    async fn write(&self) -> StoreResult<Box<dyn Tx>>;
    /// A connection for queries. Each query sees what was committed when it ran (a store may
    /// read several from one snapshot; none is promised).
    async fn read(&self) -> StoreResult<Box<dyn Tx>>;
    /// A connection for one query: the store may leave out what makes several queries cheaper
    /// together (SQLite's read transaction). Further queries still run correctly.
    async fn read_one(&self) -> StoreResult<Box<dyn Tx>> {
        self.read().await
    }
    /// Whether the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// Gives every event committed so far its `seq`, so that a read of the feed that follows
    /// sees them (a caller sees its own writes). PostgreSQL numbers events just after they commit
    /// (`muster-store`'s `common/events.rs` says why); SQLite numbers them at commit, so for it
    /// there is nothing to do.
    async fn settle_events(&self) -> StoreResult<()> {
        Ok(())
    }
    /// Refreshes the planner's statistics (PostgreSQL `ANALYZE`, SQLite `PRAGMA optimize`), so
    /// that tables that grew quickly (an initial sync) keep their index plans. Cheap; run
    /// periodically. Returns how many sync log entries the refreshed statistics count (0 where
    /// the database keeps no such count): the size against which the next refresh's growth is
    /// judged, so that a server started on a large database does not refresh as often as one
    /// filling an empty one.
    async fn maintain(&self) -> StoreResult<u64>;
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Adds the database's metrics (pools, waits, transactions) to a scrape's registry.
    fn register_metrics(&self, _registry: &mut prometheus_client::registry::Registry) {}
    /// The database's metrics alone, in the text exposition format.
    fn render_metrics(&self, out: &mut String) {
        let mut registry = prometheus_client::registry::Registry::default();
        self.register_metrics(&mut registry);
        if prometheus_client::encoding::text::encode(out, &registry).is_err() {
            out.clear();
        }
    }
}
