//! The store implementation shared by both backends.
//!
//! This file is compiled twice, once inside `sqlite` and once inside `postgres` (each includes
//! it with `#[path]`). Each parent module defines `Db` (the sqlx database type) and
//! `classify_unique` (which of Muster's uniqueness rules a constraint error names). The SQL is
//! written once, in the subset both databases speak: `$n` placeholders (sqlx binds them by
//! number on SQLite too), 64-bit integer times, and `on conflict do nothing`.

use async_trait::async_trait;
use muster_core::clock::Timestamp;
use muster_core::error::StoreError;
use muster_core::ids::{
    AdminId, AdminTokenId, EnvironmentId, GroupId, GroupMappingId, OrgId, ProviderId, RoleId,
    SessionId, TokenId, UserId,
};
use muster_core::model::{
    Actor, AdminAccount, AdminRole, AdminSession, AdminToken, Environment, GroupOrgMapping,
    GroupRecord, GroupRef, MemberRef, Org, OrgMapping, OrgMethod, OrgStatus, Outcome, Provider,
    ProviderToken, Role, RoleSource, SyncLogEntry, UserRecord, UserStatus,
};
use muster_core::store::{
    AdminAccountStore, AdminTokenStore, Cond, Cursor, EnvironmentStore, GroupStore, LogQuery,
    MappingStore, Order, OrderKey, OrgStore, Page, ProviderStore, RoleStore, StoreResult,
    SyncLogStore, TimeColumn, Tx, UserQuery, UserStore,
};
use serde_json::{Map, Value};
use sqlx::{QueryBuilder, Row};
use uuid::Uuid;

use super::{classify_unique, Db, Held};

use super::DbRow;
type DbConn = <Db as sqlx::Database>::Connection;

/// The most ids bound in one `in (...)` list.
const IN_CHUNK: usize = 500;

/// A transaction, or a plain pooled connection for reads.
// Each backend builds only its own variants: PostgreSQL the pooled ones, SQLite `Held`.
#[allow(dead_code)]
pub enum DbTx {
    /// A write transaction, with when it started.
    Tx(sqlx::Transaction<'static, Db>, std::time::Instant),
    /// A pooled connection in autocommit mode.
    Conn(sqlx::pool::PoolConnection<Db>),
    /// A connection the backend holds itself, in a write transaction or not (SQLite).
    Held(Held),
}

impl DbTx {
    fn c(&mut self) -> &mut DbConn {
        match self {
            DbTx::Tx(t, _) => t,
            DbTx::Conn(c) => c,
            DbTx::Held(h) => h.conn(),
        }
    }
}

/// Turns a sqlx error into a store error, recognising unique violations.
pub fn db_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict(classify_unique(db.message(), db.constraint()));
        }
    }
    StoreError::Database(Box::new(e))
}

fn get<'r, T>(row: &'r DbRow, col: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    row.try_get(col).map_err(db_err)
}

fn ts(v: i64) -> Timestamp {
    Timestamp(v)
}

fn ts_opt(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

/// A value bound to a [`Stmt`].
#[derive(Debug, Clone)]
pub enum Arg {
    Uuid(Uuid),
    Int(i64),
    Text(String),
    Bool(bool),
}

impl From<Uuid> for Arg {
    fn from(v: Uuid) -> Self {
        Arg::Uuid(v)
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// SQL and the values bound to its `$n` placeholders, built once and run either through sqlx or,
/// for a SQLite reader's index lookups, on the calling thread (`sqlite_fast.rs`).
#[derive(Debug, Default)]
pub struct Stmt {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Stmt {
    fn new(sql: impl Into<String>) -> Self {
        Stmt {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends the next placeholder and its value.
    fn bind(&mut self, v: impl Into<Arg>) -> &mut Self {
        self.args.push(v.into());
        self.sql.push('$');
        self.sql.push_str(&self.args.len().to_string());
        self
    }

    /// Binds the value of the next `$n` already written in the SQL.
    fn arg(mut self, v: impl Into<Arg>) -> Self {
        self.args.push(v.into());
        self
    }

    fn query(&self) -> sqlx::query::Query<'_, Db, <Db as sqlx::Database>::Arguments<'_>> {
        let mut q = sqlx::query(&self.sql);
        for a in &self.args {
            q = match a {
                Arg::Uuid(v) => q.bind(*v),
                Arg::Int(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_str()),
                Arg::Bool(v) => q.bind(*v),
            };
        }
        q
    }
}

/// A row's columns by name, however the row was read.
pub trait Cols {
    fn uuid(&self, col: &str) -> StoreResult<Uuid>;
    fn uuid_opt(&self, col: &str) -> StoreResult<Option<Uuid>>;
    fn text(&self, col: &str) -> StoreResult<String>;
    fn text_opt(&self, col: &str) -> StoreResult<Option<String>>;
    fn int(&self, col: &str) -> StoreResult<i64>;
    fn int_opt(&self, col: &str) -> StoreResult<Option<i64>>;
    fn flag(&self, col: &str) -> StoreResult<bool>;
}

impl Cols for DbRow {
    fn uuid(&self, col: &str) -> StoreResult<Uuid> {
        get(self, col)
    }
    fn uuid_opt(&self, col: &str) -> StoreResult<Option<Uuid>> {
        get(self, col)
    }
    fn text(&self, col: &str) -> StoreResult<String> {
        get(self, col)
    }
    fn text_opt(&self, col: &str) -> StoreResult<Option<String>> {
        get(self, col)
    }
    fn int(&self, col: &str) -> StoreResult<i64> {
        get(self, col)
    }
    fn int_opt(&self, col: &str) -> StoreResult<Option<i64>> {
        get(self, col)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        get(self, col)
    }
}

/// Decodes one row.
pub type Decode<T> = fn(&dyn Cols) -> StoreResult<T>;

impl DbTx {
    /// Runs a statement and decodes its rows.
    async fn fetch<T: Send>(&mut self, stmt: &Stmt, decode: Decode<T>) -> StoreResult<Vec<T>> {
        let rows = stmt.query().fetch_all(self.c()).await.map_err(db_err)?;
        rows.iter().map(|r| decode(r)).collect()
    }

    /// Runs a statement that reads a few rows through an index. A backend that can run it on
    /// the calling thread does (a SQLite reader, where handing it to sqlx's connection thread
    /// and back costs more than the read); otherwise it goes through sqlx.
    async fn lookup<T: Send>(&mut self, stmt: &Stmt, decode: Decode<T>) -> StoreResult<Vec<T>> {
        if let DbTx::Held(h) = self {
            if let Some(fast) = h.fast() {
                return fast.lookup(stmt, decode);
            }
        }
        self.fetch(stmt, decode).await
    }
}

fn json_map(text: &str) -> StoreResult<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(StoreError::Corrupt(
            "a stored resource is not a JSON object".into(),
        )),
    }
}

fn to_text(m: &Map<String, Value>) -> String {
    // Serialising a map of JSON values cannot fail.
    serde_json::to_string(m).unwrap_or_else(|_| "{}".into())
}

fn key(name: &str) -> String {
    name.trim().to_lowercase()
}

fn environment_from(row: &DbRow) -> StoreResult<Environment> {
    Ok(Environment {
        id: EnvironmentId(get(row, "environment_id")?),
        slug: get(row, "slug")?,
        name: get(row, "name")?,
        created_at: ts(get(row, "created_at")?),
    })
}

fn org_from(row: &DbRow) -> StoreResult<Org> {
    let status: String = get(row, "status")?;
    Ok(Org {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        id: OrgId(get(row, "org_id")?),
        parent_id: get::<Option<Uuid>>(row, "parent_id")?.map(OrgId),
        name: get(row, "name")?,
        status: OrgStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("org status '{status}'")))?,
        own_default_roles: get(row, "own_default_roles")?,
        created_at: ts(get(row, "created_at")?),
        updated_at: ts(get(row, "updated_at")?),
    })
}

fn provider_from(row: &DbRow) -> StoreResult<Provider> {
    Ok(Provider {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        id: ProviderId(get(row, "provider_id")?),
        name: get(row, "name")?,
        deactivation_delay_secs: get(row, "deactivation_delay_secs")?,
        created_at: ts(get(row, "created_at")?),
        updated_at: ts(get(row, "updated_at")?),
        last_sync_at: ts_opt(get(row, "last_sync_at")?),
    })
}

fn token_from(row: &DbRow) -> StoreResult<ProviderToken> {
    Ok(ProviderToken {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        id: TokenId(get(row, "provider_token_id")?),
        provider_id: ProviderId(get(row, "provider_id")?),
        label: get(row, "label")?,
        prefix: get(row, "prefix")?,
        created_at: ts(get(row, "created_at")?),
        expires_at: ts_opt(get(row, "expires_at")?),
        revoked_at: ts_opt(get(row, "revoked_at")?),
        last_used_at: ts_opt(get(row, "last_used_at")?),
    })
}

const USER_COLS: &str = "user_id, environment_id, provider_id, user_name, external_id, display_name, scim_active, status, \
     org_id, legal_hold, changed_outside, resource, version, created_at, updated_at, removed_at, deactivate_at";

fn user_from(row: &dyn Cols) -> StoreResult<UserRecord> {
    let status = row.text("status")?;
    let resource = row.text("resource")?;
    Ok(UserRecord {
        environment_id: EnvironmentId(row.uuid("environment_id")?),
        id: UserId(row.uuid("user_id")?),
        provider_id: row.uuid_opt("provider_id")?.map(ProviderId),
        user_name: row.text("user_name")?,
        external_id: row.text_opt("external_id")?,
        display_name: row.text_opt("display_name")?,
        scim_active: row.flag("scim_active")?,
        status: UserStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("user status '{status}'")))?,
        org_id: OrgId(row.uuid("org_id")?),
        legal_hold: row.flag("legal_hold")?,
        changed_outside: row.flag("changed_outside")?,
        resource: json_map(&resource)?,
        version: row.int("version")?,
        created_at: ts(row.int("created_at")?),
        updated_at: ts(row.int("updated_at")?),
        removed_at: ts_opt(row.int_opt("removed_at")?),
        deactivate_at: ts_opt(row.int_opt("deactivate_at")?),
    })
}

const GROUP_COLS: &str =
    "group_id, environment_id, provider_id, display_name, external_id, resource, version, created_at, updated_at";

fn group_from(row: &dyn Cols) -> StoreResult<GroupRecord> {
    let resource = row.text("resource")?;
    Ok(GroupRecord {
        environment_id: EnvironmentId(row.uuid("environment_id")?),
        id: GroupId(row.uuid("group_id")?),
        provider_id: ProviderId(row.uuid("provider_id")?),
        display_name: row.text("display_name")?,
        external_id: row.text_opt("external_id")?,
        resource: json_map(&resource)?,
        version: row.int("version")?,
        created_at: ts(row.int("created_at")?),
        updated_at: ts(row.int("updated_at")?),
    })
}

fn push_cond(q: &mut Stmt, cond: &Cond, id_col: &str) {
    match cond {
        Cond::Never => {
            q.push("1 = 0");
        }
        Cond::Id(u) => {
            q.push(id_col).push(" = ").bind(*u);
        }
        Cond::IdIn(ids) if ids.is_empty() => {
            q.push("1 = 0");
        }
        Cond::IdIn(ids) => {
            q.push(id_col).push(" in (");
            for (i, u) in ids.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind(*u);
            }
            q.push(")");
        }
        Cond::UserNameKey(s) => {
            q.push("user_name_key = ").bind(s.as_str());
        }
        Cond::ExternalId(s) => {
            q.push("external_id = ").bind(s.as_str());
        }
        Cond::GroupNameKey(s) => {
            q.push("display_name_key = ").bind(s.as_str());
        }
        Cond::Active(b) => {
            q.push("scim_active = ").bind(*b);
        }
        Cond::EmailKey(v) => {
            q.push("user_id in (select e.user_id from user_email e where e.environment_id = user_account.environment_id and e.value_key = ")
                .bind(v.as_str())
                .push(")");
        }
        Cond::Time {
            column,
            from,
            until,
        } => {
            let col = match column {
                TimeColumn::Created => "created_at",
                TimeColumn::LastModified => "updated_at",
            };
            q.push("(1 = 1");
            if let Some(f) = from {
                q.push(&format!(" and {col} >= ")).bind(*f);
            }
            if let Some(u) = until {
                q.push(&format!(" and {col} < ")).bind(*u);
            }
            q.push(")");
        }
        Cond::And(a, b) | Cond::Or(a, b) => {
            let op = if matches!(cond, Cond::And(..)) {
                " and "
            } else {
                " or "
            };
            q.push("(");
            push_cond(q, a, id_col);
            q.push(op);
            push_cond(q, b, id_col);
            q.push(")");
        }
    }
}

/// Which rows of a listing: after a cursor, then skipping `offset`, at most `limit`.
struct Window {
    after: Option<Cursor>,
    order: Order,
    offset: u64,
    limit: u64,
}

/// `order by` for a listing: the key (missing values last ascending, first descending, as RFC
/// 7644 §3.4.2.3 asks), then creation time and id so that equal keys page stably. Text keys
/// compare byte-wise on both databases.
///
/// With a selective condition (an id, a userName, an email address), the creation-time index must
/// not be used to produce the order: a planner that walks it to avoid a sort reads every row of
/// the provider. `created_at + 0` keeps the order and takes that index out of the question; the few
/// matching rows are then sorted.
fn order_by(l: &Listing, order: Order, selective: bool) -> String {
    let dir = if order.descending { "desc" } else { "asc" };
    let created = if selective {
        "created_at + 0"
    } else {
        "created_at"
    };
    let tie = format!("{created} {dir}, {} {dir}", l.id_col);
    let keyed = |col: &str, nullable: bool, text: bool| {
        let collate = if text { super::BYTEWISE } else { "" };
        let nulls = if nullable {
            format!("({col} is null) {dir}, ")
        } else {
            String::new()
        };
        format!(" order by {nulls}{col}{collate} {dir}, {tie}")
    };
    match order.key {
        OrderKey::Created => format!(" order by {tie}"),
        OrderKey::LastModified => keyed("updated_at", false, false),
        OrderKey::Id => format!(" order by {} {dir}", l.id_col),
        OrderKey::UserName => keyed("user_name_key", false, true),
        OrderKey::GroupName => keyed("display_name_key", false, true),
        OrderKey::ExternalId => keyed("external_id", true, true),
    }
}

/// Whether a condition selects few rows through an index of its own.
fn selective(cond: &Cond) -> bool {
    match cond {
        Cond::Never
        | Cond::Id(_)
        | Cond::IdIn(_)
        | Cond::UserNameKey(_)
        | Cond::ExternalId(_)
        | Cond::GroupNameKey(_)
        | Cond::EmailKey(_) => true,
        Cond::Active(_) | Cond::Time { .. } => false,
        Cond::And(a, b) => selective(a) || selective(b),
        Cond::Or(a, b) => selective(a) && selective(b),
    }
}

/// Which listing: users or groups.
struct Listing {
    table: &'static str,
    cols: &'static str,
    id_col: &'static str,
    extra: &'static str,
}

const USERS: Listing = Listing {
    table: "user_account",
    cols: USER_COLS,
    id_col: "user_id",
    extra: " and removed_at is null",
};
const GROUPS: Listing = Listing {
    table: "scim_group",
    cols: GROUP_COLS,
    id_col: "group_id",
    extra: "",
};

fn listing_query(
    l: &Listing,
    select: &str,
    env: EnvironmentId,
    provider: ProviderId,
    cond: Option<&Cond>,
) -> Stmt {
    let mut q = Stmt::new(format!(
        "select {select} from {} where environment_id = ",
        l.table
    ));
    q.bind(env.0)
        .push(" and provider_id = ")
        .bind(provider.0)
        .push(l.extra);
    if let Some(c) = cond {
        q.push(" and ");
        push_cond(&mut q, c, l.id_col);
    }
    q
}

impl DbTx {
    /// Replaces `EmailKey` conditions with the ids of the users that have the address, read from
    /// `user_email` first: a short id list the planner looks up by primary key, rather than a
    /// subquery a planner without statistics may run once per row.
    async fn resolve_emails(&mut self, env: EnvironmentId, cond: &Cond) -> StoreResult<Cond> {
        Ok(match cond {
            Cond::EmailKey(v) => {
                let q = Stmt::new("select user_id from user_email where environment_id = $1 and value_key = $2 limit 10000")
                    .arg(env.0)
                    .arg(v.as_str());
                Cond::IdIn(self.lookup(&q, |r| r.uuid("user_id")).await?)
            }
            Cond::And(a, b) => Cond::And(
                Box::new(Box::pin(self.resolve_emails(env, a)).await?),
                Box::new(Box::pin(self.resolve_emails(env, b)).await?),
            ),
            Cond::Or(a, b) => Cond::Or(
                Box::new(Box::pin(self.resolve_emails(env, a)).await?),
                Box::new(Box::pin(self.resolve_emails(env, b)).await?),
            ),
            other => other.clone(),
        })
    }

    /// Rewrites a user's email index rows.
    async fn write_emails(&mut self, u: &UserRecord, replace: bool) -> StoreResult<()> {
        if replace {
            sqlx::query("delete from user_email where user_id = $1")
                .bind(u.id.0)
                .execute(self.c())
                .await
                .map_err(db_err)?;
        }
        let keys = u.email_keys();
        if keys.is_empty() {
            return Ok(());
        }
        let mut qb =
            QueryBuilder::new("insert into user_email (user_id, environment_id, value_key) ");
        qb.push_values(keys.iter().take(IN_CHUNK), |mut b, k| {
            b.push_bind(u.id.0)
                .push_bind(u.environment_id.0)
                .push_bind(k.clone());
        });
        qb.build().execute(self.c()).await.map_err(db_err)?;
        Ok(())
    }

    async fn fetch_listing<T: Send>(
        &mut self,
        l: &Listing,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        window: Window,
        decode: Decode<T>,
    ) -> StoreResult<Vec<T>> {
        let resolved = match cond {
            Some(c) => Some(self.resolve_emails(env, c).await?),
            None => None,
        };
        let cond = resolved.as_ref();
        let Window {
            after,
            order,
            offset,
            limit,
        } = window;
        let few = cond.is_some_and(selective);
        let ordering = order_by(l, order, few);
        // Rows skipped by OFFSET are read from the index alone: the inner query selects only ids
        // (covered by the listing index), the outer one reads the page's rows.
        let mut q = if offset > 0 {
            let mut q = Stmt::new(format!(
                "select {} from {} where {} in (",
                l.cols, l.table, l.id_col
            ));
            q.push(&format!(
                "select {} from {} where environment_id = ",
                l.id_col, l.table
            ))
            .bind(env.0)
            .push(" and provider_id = ")
            .bind(provider.0)
            .push(l.extra);
            if let Some(c) = cond {
                q.push(" and ");
                push_cond(&mut q, c, l.id_col);
            }
            q
        } else {
            listing_query(l, l.cols, env, provider, cond)
        };
        if let Some(c) = after {
            // `created_at >= t` is an index range; the rest picks up where the last page ended.
            // (An `a > t or (a = t and b > id)` form is not a range, and reading from the start
            // for every page makes a scan quadratic.)
            q.push(" and created_at >= ")
                .bind(c.created_at.0)
                .push(" and (created_at > ")
                .bind(c.created_at.0)
                .push(&format!(" or {} > ", l.id_col))
                .bind(c.id)
                .push(")");
        }
        q.push(&ordering).push(" limit ").bind(limit as i64);
        if offset > 0 {
            q.push(" offset ")
                .bind(offset as i64)
                .push(")")
                .push(&ordering);
        }
        // A selective condition (a userName, an id, an email address) names a handful of rows
        // through an index of its own, whatever the page size asked for.
        if few {
            self.lookup(&q, decode).await
        } else {
            self.fetch(&q, decode).await
        }
    }

    async fn count_listing(
        &mut self,
        l: &Listing,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
    ) -> StoreResult<u64> {
        let resolved = match cond {
            Some(c) => Some(self.resolve_emails(env, c).await?),
            None => None,
        };
        let few = resolved.as_ref().is_some_and(selective);
        let q = listing_query(l, "count(*) as n", env, provider, resolved.as_ref());
        let counted = match few {
            true => self.lookup(&q, |r| r.int("n")).await?,
            false => self.fetch(&q, |r| r.int("n")).await?,
        };
        Ok(counted.first().copied().unwrap_or(0).max(0) as u64)
    }
}

#[async_trait]
impl EnvironmentStore for DbTx {
    async fn find_environment(&mut self, slug: &str) -> StoreResult<Option<Environment>> {
        let row = sqlx::query(
            "select environment_id, slug, name, created_at from environment where slug = $1",
        )
        .bind(slug)
        .fetch_optional(self.c())
        .await
        .map_err(db_err)?;
        row.as_ref().map(environment_from).transpose()
    }

    async fn insert_environment(&mut self, env: &Environment) -> StoreResult<()> {
        sqlx::query("insert into environment (environment_id, slug, name, created_at) values ($1, $2, $3, $4)")
            .bind(env.id.0)
            .bind(&env.slug)
            .bind(&env.name)
            .bind(env.created_at.0)
            .execute(self.c())
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

const ORG_COLS: &str =
    "org_id, environment_id, parent_id, name, status, own_default_roles, created_at, updated_at";

#[async_trait]
impl OrgStore for DbTx {
    async fn find_root_org(&mut self, env: EnvironmentId) -> StoreResult<Option<Org>> {
        let row = sqlx::query(&format!(
            "select {ORG_COLS} from org where environment_id = $1 and parent_id is null"
        ))
        .bind(env.0)
        .fetch_optional(self.c())
        .await
        .map_err(db_err)?;
        row.as_ref().map(org_from).transpose()
    }

    async fn find_org(&mut self, env: EnvironmentId, id: OrgId) -> StoreResult<Option<Org>> {
        let row = sqlx::query(&format!(
            "select {ORG_COLS} from org where environment_id = $1 and org_id = $2"
        ))
        .bind(env.0)
        .bind(id.0)
        .fetch_optional(self.c())
        .await
        .map_err(db_err)?;
        row.as_ref().map(org_from).transpose()
    }

    async fn insert_org(&mut self, org: &Org) -> StoreResult<()> {
        sqlx::query(
            "insert into org (org_id, environment_id, parent_id, name, name_key, status, own_default_roles, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(org.id.0)
        .bind(org.environment_id.0)
        .bind(org.parent_id.map(|p| p.0))
        .bind(&org.name)
        .bind(key(&org.name))
        .bind(org.status.as_str())
        .bind(org.own_default_roles)
        .bind(org.created_at.0)
        .bind(org.updated_at.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn update_org(&mut self, org: &Org) -> StoreResult<()> {
        sqlx::query(
            "update org set parent_id = $1, name = $2, name_key = $3, status = $4, own_default_roles = $5, updated_at = $6 \
             where environment_id = $7 and org_id = $8",
        )
        .bind(org.parent_id.map(|p| p.0))
        .bind(&org.name)
        .bind(key(&org.name))
        .bind(org.status.as_str())
        .bind(org.own_default_roles)
        .bind(org.updated_at.0)
        .bind(org.environment_id.0)
        .bind(org.id.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn list_orgs(&mut self, env: EnvironmentId) -> StoreResult<Vec<Org>> {
        let rows = sqlx::query(&format!(
            "select {ORG_COLS} from org where environment_id = $1 order by name_key, org_id"
        ))
        .bind(env.0)
        .fetch_all(self.c())
        .await
        .map_err(db_err)?;
        rows.iter().map(org_from).collect()
    }

    async fn ensure_child_org(&mut self, org: &Org) -> StoreResult<(Org, bool)> {
        let parent = org.parent_id.ok_or_else(|| {
            StoreError::Corrupt("an organization made by mapping needs a parent".into())
        })?;
        // `on conflict do nothing`: a concurrent insert of the same name (PostgreSQL waits for
        // it to commit) leaves this one a no-op; the select then reads the winner.
        let inserted = sqlx::query(
            "insert into org (org_id, environment_id, parent_id, name, name_key, status, own_default_roles, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict do nothing",
        )
        .bind(org.id.0)
        .bind(org.environment_id.0)
        .bind(parent.0)
        .bind(&org.name)
        .bind(key(&org.name))
        .bind(org.status.as_str())
        .bind(org.own_default_roles)
        .bind(org.created_at.0)
        .bind(org.updated_at.0)
        .execute(self.c())
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        let found = self
            .find_child_org(org.environment_id, parent, &key(&org.name))
            .await?
            .ok_or_else(|| StoreError::Corrupt("an organization vanished while created".into()))?;
        Ok((found, inserted))
    }

    async fn find_child_org(
        &mut self,
        env: EnvironmentId,
        parent: OrgId,
        name_key: &str,
    ) -> StoreResult<Option<Org>> {
        let row = sqlx::query(&format!(
            "select {ORG_COLS} from org where environment_id = $1 and parent_id = $2 and name_key = $3"
        ))
        .bind(env.0)
        .bind(parent.0)
        .bind(name_key)
        .fetch_optional(self.c())
        .await
        .map_err(db_err)?;
        row.as_ref().map(org_from).transpose()
    }

    async fn org_default_roles(&mut self, env: EnvironmentId) -> StoreResult<Vec<(OrgId, RoleId)>> {
        let rows =
            sqlx::query("select org_id, role_id from org_default_role where environment_id = $1")
                .bind(env.0)
                .fetch_all(self.c())
                .await
                .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((OrgId(get(r, "org_id")?), RoleId(get(r, "role_id")?))))
            .collect()
    }

    async fn set_org_default_roles(
        &mut self,
        env: EnvironmentId,
        org: OrgId,
        roles: &[RoleId],
    ) -> StoreResult<()> {
        sqlx::query("delete from org_default_role where environment_id = $1 and org_id = $2")
            .bind(env.0)
            .bind(org.0)
            .execute(self.c())
            .await
            .map_err(db_err)?;
        if roles.is_empty() {
            return Ok(());
        }
        let mut qb =
            QueryBuilder::new("insert into org_default_role (org_id, role_id, environment_id) ");
        qb.push_values(roles, |mut b, r| {
            b.push_bind(org.0).push_bind(r.0).push_bind(env.0);
        });
        qb.push(" on conflict do nothing");
        qb.build().execute(self.c()).await.map_err(db_err)?;
        Ok(())
    }

    async fn count_org_users(&mut self, env: EnvironmentId, org: OrgId) -> StoreResult<u64> {
        let row = sqlx::query(
            "select count(*) as n from user_account where environment_id = $1 and org_id = $2",
        )
        .bind(env.0)
        .bind(org.0)
        .fetch_one(self.c())
        .await
        .map_err(db_err)?;
        Ok(get::<i64>(&row, "n")?.max(0) as u64)
    }
}

fn role_from(row: &DbRow) -> StoreResult<Role> {
    Ok(Role {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        id: RoleId(get(row, "role_id")?),
        name: get(row, "name")?,
        description: get(row, "description")?,
        builtin: get(row, "builtin")?,
        created_at: ts(get(row, "created_at")?),
    })
}

#[async_trait]
impl RoleStore for DbTx {
    async fn insert_role(&mut self, role: &Role) -> StoreResult<()> {
        sqlx::query(
            "insert into role (role_id, environment_id, name, name_key, description, builtin, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(role.id.0)
        .bind(role.environment_id.0)
        .bind(&role.name)
        .bind(key(&role.name))
        .bind(&role.description)
        .bind(role.builtin)
        .bind(role.created_at.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn list_roles(&mut self, env: EnvironmentId) -> StoreResult<Vec<Role>> {
        let rows = sqlx::query(
            "select role_id, environment_id, name, description, builtin, created_at from role \
             where environment_id = $1 order by name_key",
        )
        .bind(env.0)
        .fetch_all(self.c())
        .await
        .map_err(db_err)?;
        rows.iter().map(role_from).collect()
    }

    async fn delete_role(&mut self, env: EnvironmentId, id: RoleId) -> StoreResult<bool> {
        let done = sqlx::query("delete from role where environment_id = $1 and role_id = $2")
            .bind(env.0)
            .bind(id.0)
            .execute(self.c())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn role_usage(&mut self, env: EnvironmentId, id: RoleId) -> StoreResult<(u64, u64)> {
        let row = sqlx::query(
            "select (select count(*) from user_role where environment_id = $1 and role_id = $2) as users, \
             (select count(*) from org_default_role where environment_id = $1 and role_id = $2) as orgs",
        )
        .bind(env.0)
        .bind(id.0)
        .fetch_one(self.c())
        .await
        .map_err(db_err)?;
        Ok((
            get::<i64>(&row, "users")?.max(0) as u64,
            get::<i64>(&row, "orgs")?.max(0) as u64,
        ))
    }

    async fn user_roles(
        &mut self,
        env: EnvironmentId,
        users: &[UserId],
    ) -> StoreResult<Vec<(UserId, RoleId, RoleSource)>> {
        let mut out = Vec::new();
        for chunk in users.chunks(IN_CHUNK) {
            let mut qb = QueryBuilder::new(
                "select user_id, role_id, source from user_role where environment_id = ",
            );
            qb.push_bind(env.0).push(" and user_id in (");
            let mut sep = qb.separated(", ");
            for u in chunk {
                sep.push_bind(u.0);
            }
            qb.push(")");
            for row in qb.build().fetch_all(self.c()).await.map_err(db_err)? {
                let source: String = get(&row, "source")?;
                let source = if source == "mapping" {
                    RoleSource::Mapping
                } else {
                    RoleSource::Admin
                };
                out.push((
                    UserId(get(&row, "user_id")?),
                    RoleId(get(&row, "role_id")?),
                    source,
                ));
            }
        }
        Ok(out)
    }

    async fn set_user_roles(
        &mut self,
        env: EnvironmentId,
        user: UserId,
        roles: &[RoleId],
        source: RoleSource,
    ) -> StoreResult<()> {
        sqlx::query("delete from user_role where environment_id = $1 and user_id = $2")
            .bind(env.0)
            .bind(user.0)
            .execute(self.c())
            .await
            .map_err(db_err)?;
        if roles.is_empty() {
            return Ok(());
        }
        let mut qb =
            QueryBuilder::new("insert into user_role (user_id, role_id, environment_id, source) ");
        qb.push_values(roles, |mut b, r| {
            b.push_bind(user.0)
                .push_bind(r.0)
                .push_bind(env.0)
                .push_bind(source.as_str());
        });
        qb.push(" on conflict do nothing");
        qb.build().execute(self.c()).await.map_err(db_err)?;
        Ok(())
    }
}

const ADMIN_TOKEN_COLS: &str = "admin_token_id, environment_id, label, prefix, created_at, expires_at, revoked_at, last_used_at";

fn admin_token_from(row: &DbRow) -> StoreResult<AdminToken> {
    Ok(AdminToken {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        id: AdminTokenId(get(row, "admin_token_id")?),
        label: get(row, "label")?,
        prefix: get(row, "prefix")?,
        created_at: ts(get(row, "created_at")?),
        expires_at: ts_opt(get(row, "expires_at")?),
        revoked_at: ts_opt(get(row, "revoked_at")?),
        last_used_at: ts_opt(get(row, "last_used_at")?),
    })
}

#[async_trait]
impl AdminTokenStore for DbTx {
    async fn insert_admin_token(&mut self, t: &AdminToken, hash: &[u8]) -> StoreResult<()> {
        sqlx::query(
            "insert into admin_token (admin_token_id, environment_id, label, prefix, token_hash, created_at, expires_at, \
             revoked_at, last_used_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(t.id.0)
        .bind(t.environment_id.0)
        .bind(&t.label)
        .bind(&t.prefix)
        .bind(hash.to_vec())
        .bind(t.created_at.0)
        .bind(t.expires_at.map(|x| x.0))
        .bind(t.revoked_at.map(|x| x.0))
        .bind(t.last_used_at.map(|x| x.0))
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn find_admin_token_by_hash(
        &mut self,
        hash: &[u8],
    ) -> StoreResult<Option<(AdminToken, Vec<u8>)>> {
        let row = sqlx::query(&format!(
            "select {ADMIN_TOKEN_COLS}, token_hash from admin_token where token_hash = $1"
        ))
        .bind(hash.to_vec())
        .fetch_optional(self.c())
        .await
        .map_err(db_err)?;
        match row {
            Some(r) => Ok(Some((admin_token_from(&r)?, get(&r, "token_hash")?))),
            None => Ok(None),
        }
    }

    async fn list_admin_tokens(&mut self, env: EnvironmentId) -> StoreResult<Vec<AdminToken>> {
        let rows = sqlx::query(&format!(
            "select {ADMIN_TOKEN_COLS} from admin_token where environment_id = $1 order by created_at desc, admin_token_id desc"
        ))
        .bind(env.0)
        .fetch_all(self.c())
        .await
        .map_err(db_err)?;
        rows.iter().map(admin_token_from).collect()
    }

    async fn revoke_admin_token(
        &mut self,
        env: EnvironmentId,
        id: AdminTokenId,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "update admin_token set revoked_at = $1 where environment_id = $2 and admin_token_id = $3 and revoked_at is null",
        )
        .bind(at.0)
        .bind(env.0)
        .bind(id.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_admin_token(
        &mut self,
        env: EnvironmentId,
        id: AdminTokenId,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query("update admin_token set last_used_at = $1 where environment_id = $2 and admin_token_id = $3")
            .bind(at.0)
            .bind(env.0)
            .bind(id.0)
            .execute(self.c())
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

const PROVIDER_COLS: &str =
    "provider_id, environment_id, name, deactivation_delay_secs, created_at, updated_at, last_sync_at";
const TOKEN_COLS: &str =
    "provider_token_id, environment_id, provider_id, label, prefix, created_at, expires_at, revoked_at, last_used_at";

#[async_trait]
impl ProviderStore for DbTx {
    async fn insert_provider(&mut self, p: &Provider) -> StoreResult<()> {
        sqlx::query(
            "insert into provider (provider_id, environment_id, name, name_key, deactivation_delay_secs, created_at, \
             updated_at, last_sync_at) values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(p.id.0)
        .bind(p.environment_id.0)
        .bind(&p.name)
        .bind(key(&p.name))
        .bind(p.deactivation_delay_secs)
        .bind(p.created_at.0)
        .bind(p.updated_at.0)
        .bind(p.last_sync_at.map(|t| t.0))
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn find_provider(
        &mut self,
        env: EnvironmentId,
        id: ProviderId,
    ) -> StoreResult<Option<Provider>> {
        let row = sqlx::query(&format!(
            "select {PROVIDER_COLS} from provider where environment_id = $1 and provider_id = $2"
        ))
        .bind(env.0)
        .bind(id.0)
        .fetch_optional(self.c())
        .await
        .map_err(db_err)?;
        row.as_ref().map(provider_from).transpose()
    }

    async fn locate_provider(&mut self, id: ProviderId) -> StoreResult<Option<Provider>> {
        let row = sqlx::query(&format!(
            "select {PROVIDER_COLS} from provider where provider_id = $1"
        ))
        .bind(id.0)
        .fetch_optional(self.c())
        .await
        .map_err(db_err)?;
        row.as_ref().map(provider_from).transpose()
    }

    async fn list_providers(&mut self, env: EnvironmentId) -> StoreResult<Vec<Provider>> {
        let rows = sqlx::query(&format!(
            "select {PROVIDER_COLS} from provider where environment_id = $1 order by created_at, provider_id"
        ))
        .bind(env.0)
        .fetch_all(self.c())
        .await
        .map_err(db_err)?;
        rows.iter().map(provider_from).collect()
    }

    async fn update_provider(&mut self, p: &Provider) -> StoreResult<()> {
        sqlx::query(
            "update provider set name = $1, name_key = $2, deactivation_delay_secs = $3, updated_at = $4 \
             where environment_id = $5 and provider_id = $6",
        )
        .bind(&p.name)
        .bind(key(&p.name))
        .bind(p.deactivation_delay_secs)
        .bind(p.updated_at.0)
        .bind(p.environment_id.0)
        .bind(p.id.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn touch_provider_sync(
        &mut self,
        env: EnvironmentId,
        id: ProviderId,
        at: Timestamp,
    ) -> StoreResult<()> {
        // Only when the stored time is 5 seconds old: every provisioning write passes here, and an
        // unconditional update would make concurrent writers of one provider queue on its row.
        sqlx::query(
            "update provider set last_sync_at = $1 where environment_id = $2 and provider_id = $3 \
             and (last_sync_at is null or last_sync_at < $4)",
        )
        .bind(at.0)
        .bind(env.0)
        .bind(id.0)
        .bind(at.0 - 5_000_000)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn insert_token(&mut self, t: &ProviderToken, hash: &[u8]) -> StoreResult<()> {
        sqlx::query(
            "insert into provider_token (provider_token_id, environment_id, provider_id, label, prefix, token_hash, \
             created_at, expires_at, revoked_at, last_used_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(t.id.0)
        .bind(t.environment_id.0)
        .bind(t.provider_id.0)
        .bind(&t.label)
        .bind(&t.prefix)
        .bind(hash.to_vec())
        .bind(t.created_at.0)
        .bind(t.expires_at.map(|x| x.0))
        .bind(t.revoked_at.map(|x| x.0))
        .bind(t.last_used_at.map(|x| x.0))
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn find_token_by_hash(
        &mut self,
        hash: &[u8],
    ) -> StoreResult<Option<(ProviderToken, Vec<u8>)>> {
        let row = sqlx::query(&format!(
            "select {TOKEN_COLS}, token_hash from provider_token where token_hash = $1"
        ))
        .bind(hash.to_vec())
        .fetch_optional(self.c())
        .await
        .map_err(db_err)?;
        match row {
            Some(r) => Ok(Some((token_from(&r)?, get(&r, "token_hash")?))),
            None => Ok(None),
        }
    }

    async fn list_tokens(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<Vec<ProviderToken>> {
        let rows = sqlx::query(&format!(
            "select {TOKEN_COLS} from provider_token where environment_id = $1 and provider_id = $2 \
             order by created_at desc, provider_token_id desc"
        ))
        .bind(env.0)
        .bind(provider.0)
        .fetch_all(self.c())
        .await
        .map_err(db_err)?;
        rows.iter().map(token_from).collect()
    }

    async fn revoke_token(
        &mut self,
        env: EnvironmentId,
        id: TokenId,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "update provider_token set revoked_at = $1 \
             where environment_id = $2 and provider_token_id = $3 and revoked_at is null",
        )
        .bind(at.0)
        .bind(env.0)
        .bind(id.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_token(
        &mut self,
        env: EnvironmentId,
        id: TokenId,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query("update provider_token set last_used_at = $1 where environment_id = $2 and provider_token_id = $3")
            .bind(at.0)
            .bind(env.0)
            .bind(id.0)
            .execute(self.c())
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl UserStore for DbTx {
    async fn insert_user(&mut self, u: &UserRecord) -> StoreResult<()> {
        sqlx::query(
            "insert into user_account (user_id, environment_id, provider_id, user_name, user_name_key, external_id, \
             display_name, scim_active, status, org_id, legal_hold, changed_outside, resource, version, created_at, \
             updated_at, removed_at, deactivate_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(u.id.0)
        .bind(u.environment_id.0)
        .bind(u.provider_id.map(|p| p.0))
        .bind(&u.user_name)
        .bind(key(&u.user_name))
        .bind(&u.external_id)
        .bind(&u.display_name)
        .bind(u.scim_active)
        .bind(u.status.as_str())
        .bind(u.org_id.0)
        .bind(u.legal_hold)
        .bind(u.changed_outside)
        .bind(to_text(&u.resource))
        .bind(u.version)
        .bind(u.created_at.0)
        .bind(u.updated_at.0)
        .bind(u.removed_at.map(|t| t.0))
        .bind(u.deactivate_at.map(|t| t.0))
        .execute(self.c())
        .await
        .map_err(db_err)?;
        self.write_emails(u, false).await?;
        Ok(())
    }

    async fn find_user(
        &mut self,
        env: EnvironmentId,
        id: UserId,
    ) -> StoreResult<Option<UserRecord>> {
        let q = Stmt::new(format!(
            "select {USER_COLS} from user_account where environment_id = $1 and user_id = $2"
        ))
        .arg(env.0)
        .arg(id.0);
        Ok(self.lookup(&q, user_from).await?.into_iter().next())
    }

    async fn find_user_by_name(
        &mut self,
        env: EnvironmentId,
        user_name_key: &str,
    ) -> StoreResult<Option<UserRecord>> {
        let q = Stmt::new(format!(
            "select {USER_COLS} from user_account where environment_id = $1 and user_name_key = $2"
        ))
        .arg(env.0)
        .arg(user_name_key);
        Ok(self.lookup(&q, user_from).await?.into_iter().next())
    }

    async fn find_user_by_external_id(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        external_id: &str,
    ) -> StoreResult<Option<UserRecord>> {
        let q = Stmt::new(format!(
            "select {USER_COLS} from user_account where environment_id = $1 and provider_id = $2 and external_id = $3 \
             order by created_at desc limit 1"
        ))
            .arg(env.0)
            .arg(provider.0)
            .arg(external_id);
        Ok(self.lookup(&q, user_from).await?.into_iter().next())
    }

    async fn update_user(&mut self, u: &UserRecord, expected_version: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "update user_account set provider_id = $1, user_name = $2, user_name_key = $3, external_id = $4, \
             display_name = $5, scim_active = $6, status = $7, org_id = $8, legal_hold = $9, changed_outside = $10, \
             resource = $11, version = $12, updated_at = $13, removed_at = $14, deactivate_at = $15 \
             where environment_id = $16 and user_id = $17 and version = $18",
        )
        .bind(u.provider_id.map(|p| p.0))
        .bind(&u.user_name)
        .bind(key(&u.user_name))
        .bind(&u.external_id)
        .bind(&u.display_name)
        .bind(u.scim_active)
        .bind(u.status.as_str())
        .bind(u.org_id.0)
        .bind(u.legal_hold)
        .bind(u.changed_outside)
        .bind(to_text(&u.resource))
        .bind(u.version)
        .bind(u.updated_at.0)
        .bind(u.removed_at.map(|t| t.0))
        .bind(u.deactivate_at.map(|t| t.0))
        .bind(u.environment_id.0)
        .bind(u.id.0)
        .bind(expected_version)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.write_emails(u, true).await?;
        Ok(true)
    }

    async fn list_users(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        order: Order,
        page: Page,
    ) -> StoreResult<Vec<UserRecord>> {
        self.fetch_listing(
            &USERS,
            env,
            provider,
            cond,
            Window {
                after: None,
                order,
                offset: page.offset,
                limit: page.limit,
            },
            user_from,
        )
        .await
    }

    async fn count_users(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
    ) -> StoreResult<u64> {
        self.count_listing(&USERS, env, provider, cond).await
    }

    async fn scan_users(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        after: Option<Cursor>,
        limit: u64,
    ) -> StoreResult<Vec<UserRecord>> {
        self.fetch_listing(
            &USERS,
            env,
            provider,
            cond,
            Window {
                after,
                order: Order::CREATED,
                offset: 0,
                limit,
            },
            user_from,
        )
        .await
    }

    async fn query_users(
        &mut self,
        env: EnvironmentId,
        q: &UserQuery,
        after: Option<Cursor>,
        limit: u64,
    ) -> StoreResult<Vec<UserRecord>> {
        let mut qb = QueryBuilder::new(format!(
            "select {USER_COLS} from user_account where environment_id = "
        ));
        qb.push_bind(env.0);
        if let Some(org) = q.org {
            qb.push(" and org_id = ").push_bind(org.0);
        }
        if let Some(status) = q.status {
            qb.push(" and status = ").push_bind(status.as_str());
        }
        match q.provider {
            Some(Some(p)) => {
                qb.push(" and provider_id = ").push_bind(p.0);
            }
            Some(None) => {
                qb.push(" and provider_id is null");
            }
            None => {}
        }
        if let Some(text) = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let escaped = text
                .to_lowercase()
                .replace('!', "!!")
                .replace('%', "!%")
                .replace('_', "!_");
            let pattern = format!("%{escaped}%");
            qb.push(" and (user_name_key like ")
                .push_bind(pattern.clone())
                .push(" escape '!' or lower(coalesce(display_name, '')) like ")
                .push_bind(pattern)
                .push(" escape '!')");
        }
        if let Some(c) = after {
            qb.push(" and created_at >= ")
                .push_bind(c.created_at.0)
                .push(" and (created_at > ")
                .push_bind(c.created_at.0)
                .push(" or user_id > ")
                .push_bind(c.id)
                .push(")");
        }
        qb.push(" order by created_at, user_id limit ")
            .push_bind(limit as i64);
        let rows = qb.build().fetch_all(self.c()).await.map_err(db_err)?;
        rows.iter().map(|r| user_from(r)).collect()
    }

    async fn due_deactivations(
        &mut self,
        now: Timestamp,
        limit: u64,
    ) -> StoreResult<Vec<UserRecord>> {
        let rows = sqlx::query(&format!(
            "select {USER_COLS} from user_account where deactivate_at is not null and deactivate_at <= $1 \
             order by deactivate_at limit $2"
        ))
        .bind(now.0)
        .bind(limit as i64)
        .fetch_all(self.c())
        .await
        .map_err(db_err)?;
        rows.iter().map(|r| user_from(r)).collect()
    }

    async fn deactivation_backlog(
        &mut self,
        now: Timestamp,
    ) -> StoreResult<(u64, u64, Option<Timestamp>)> {
        let row = sqlx::query(
            "select count(*) as pending, \
             coalesce(sum(case when deactivate_at <= $1 then 1 else 0 end), 0) as overdue, \
             min(deactivate_at) as oldest from user_account where deactivate_at is not null",
        )
        .bind(now.0)
        .fetch_one(self.c())
        .await
        .map_err(db_err)?;
        Ok((
            get::<i64>(&row, "pending")?.max(0) as u64,
            get::<i64>(&row, "overdue")?.max(0) as u64,
            get::<Option<i64>>(&row, "oldest")?.map(Timestamp),
        ))
    }

    async fn move_user(
        &mut self,
        env: EnvironmentId,
        id: UserId,
        org: OrgId,
        expected_version: i64,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "update user_account set org_id = $1, version = version + 1, updated_at = $2 \
             where environment_id = $3 and user_id = $4 and version = $5",
        )
        .bind(org.0)
        .bind(at.0)
        .bind(env.0)
        .bind(id.0)
        .bind(expected_version)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn users_by_ids(
        &mut self,
        env: EnvironmentId,
        ids: &[UserId],
    ) -> StoreResult<Vec<UserRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let mut qb = QueryBuilder::new(format!(
                "select {USER_COLS} from user_account where environment_id = "
            ));
            qb.push_bind(env.0).push(" and user_id in (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id.0);
            }
            qb.push(")");
            for row in qb.build().fetch_all(self.c()).await.map_err(db_err)? {
                out.push(user_from(&row)?);
            }
        }
        Ok(out)
    }

    async fn existing_user_ids(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        ids: &[UserId],
    ) -> StoreResult<Vec<UserId>> {
        // By primary key only, the rest checked here: given `provider_id = ? and removed_at is
        // null`, SQLite's planner prefers the provider's partial index and scans every user of
        // the provider (10 ms a call at 20,000 users, measured).
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let mut qb = QueryBuilder::new(
                "select user_id, environment_id, provider_id, removed_at from user_account where user_id in (",
            );
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id.0);
            }
            qb.push(")");
            for row in qb.build().fetch_all(self.c()).await.map_err(db_err)? {
                let in_env = get::<Uuid>(&row, "environment_id")? == env.0;
                let mine = get::<Option<Uuid>>(&row, "provider_id")? == Some(provider.0);
                let live = get::<Option<i64>>(&row, "removed_at")?.is_none();
                if in_env && mine && live {
                    out.push(UserId(get(&row, "user_id")?));
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl GroupStore for DbTx {
    async fn insert_group(&mut self, g: &GroupRecord) -> StoreResult<()> {
        sqlx::query(
            "insert into scim_group (group_id, environment_id, provider_id, display_name, display_name_key, external_id, \
             resource, version, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(g.id.0)
        .bind(g.environment_id.0)
        .bind(g.provider_id.0)
        .bind(&g.display_name)
        .bind(key(&g.display_name))
        .bind(&g.external_id)
        .bind(to_text(&g.resource))
        .bind(g.version)
        .bind(g.created_at.0)
        .bind(g.updated_at.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn find_group(
        &mut self,
        env: EnvironmentId,
        id: GroupId,
    ) -> StoreResult<Option<GroupRecord>> {
        let q = Stmt::new(format!(
            "select {GROUP_COLS} from scim_group where environment_id = $1 and group_id = $2"
        ))
        .arg(env.0)
        .arg(id.0);
        Ok(self.lookup(&q, group_from).await?.into_iter().next())
    }

    async fn find_group_by_name(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        name_key: &str,
    ) -> StoreResult<Option<GroupRecord>> {
        let q = Stmt::new(format!(
            "select {GROUP_COLS} from scim_group where environment_id = $1 and provider_id = $2 and display_name_key = $3"
        ))
            .arg(env.0)
            .arg(provider.0)
            .arg(name_key);
        Ok(self.lookup(&q, group_from).await?.into_iter().next())
    }

    async fn update_group(&mut self, g: &GroupRecord, expected_version: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "update scim_group set display_name = $1, display_name_key = $2, external_id = $3, resource = $4, \
             version = $5, updated_at = $6 where environment_id = $7 and group_id = $8 and version = $9",
        )
        .bind(&g.display_name)
        .bind(key(&g.display_name))
        .bind(&g.external_id)
        .bind(to_text(&g.resource))
        .bind(g.version)
        .bind(g.updated_at.0)
        .bind(g.environment_id.0)
        .bind(g.id.0)
        .bind(expected_version)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn bump_group_version(
        &mut self,
        env: EnvironmentId,
        id: GroupId,
        at: Timestamp,
        expected: Option<i64>,
    ) -> StoreResult<Option<i64>> {
        let mut qb =
            QueryBuilder::new("update scim_group set version = version + 1, updated_at = ");
        qb.push_bind(at.0)
            .push(" where environment_id = ")
            .push_bind(env.0)
            .push(" and group_id = ")
            .push_bind(id.0);
        if let Some(v) = expected {
            qb.push(" and version = ").push_bind(v);
        }
        qb.push(" returning version");
        let row = qb.build().fetch_optional(self.c()).await.map_err(db_err)?;
        row.as_ref().map(|r| get::<i64>(r, "version")).transpose()
    }

    async fn member_count_capped(
        &mut self,
        env: EnvironmentId,
        group: GroupId,
        cap: u64,
    ) -> StoreResult<u64> {
        let row = sqlx::query(
            "select count(*) as n from (select 1 from group_member where environment_id = $1 and group_id = $2 limit $3) capped",
        )
        .bind(env.0)
        .bind(group.0)
        .bind(cap as i64)
        .fetch_one(self.c())
        .await
        .map_err(db_err)?;
        let n: i64 = get(&row, "n")?;
        Ok(n.max(0) as u64)
    }

    async fn group_summaries(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<Vec<(GroupId, String, u64)>> {
        let rows = sqlx::query(
            "select g.group_id, g.display_name, \
             (select count(*) from group_member m where m.group_id = g.group_id) as n \
             from scim_group g where g.environment_id = $1 and g.provider_id = $2",
        )
        .bind(env.0)
        .bind(provider.0)
        .fetch_all(self.c())
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    GroupId(get(r, "group_id")?),
                    get(r, "display_name")?,
                    get::<i64>(r, "n")?.max(0) as u64,
                ))
            })
            .collect()
    }

    async fn delete_group(&mut self, env: EnvironmentId, id: GroupId) -> StoreResult<bool> {
        for table in ["group_member", "role_mapping", "group_org_mapping_group"] {
            sqlx::query(&format!(
                "delete from {table} where environment_id = $1 and group_id = $2"
            ))
            .bind(env.0)
            .bind(id.0)
            .execute(self.c())
            .await
            .map_err(db_err)?;
        }
        // An organization mapping entry left without groups maps nothing: it goes too.
        sqlx::query(
            "delete from group_org_mapping where environment_id = $1 and not exists \
             (select 1 from group_org_mapping_group g where g.group_org_mapping_id = group_org_mapping.group_org_mapping_id)",
        )
        .bind(env.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        let done =
            sqlx::query("delete from scim_group where environment_id = $1 and group_id = $2")
                .bind(env.0)
                .bind(id.0)
                .execute(self.c())
                .await
                .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_groups(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        order: Order,
        page: Page,
    ) -> StoreResult<Vec<GroupRecord>> {
        self.fetch_listing(
            &GROUPS,
            env,
            provider,
            cond,
            Window {
                after: None,
                order,
                offset: page.offset,
                limit: page.limit,
            },
            group_from,
        )
        .await
    }

    async fn count_groups(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
    ) -> StoreResult<u64> {
        self.count_listing(&GROUPS, env, provider, cond).await
    }

    async fn scan_groups(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        after: Option<Cursor>,
        limit: u64,
    ) -> StoreResult<Vec<GroupRecord>> {
        self.fetch_listing(
            &GROUPS,
            env,
            provider,
            cond,
            Window {
                after,
                order: Order::CREATED,
                offset: 0,
                limit,
            },
            group_from,
        )
        .await
    }

    async fn add_members(
        &mut self,
        env: EnvironmentId,
        group: GroupId,
        users: &[UserId],
        at: Timestamp,
    ) -> StoreResult<Vec<UserId>> {
        let mut added = Vec::new();
        for chunk in users.chunks(IN_CHUNK) {
            let mut qb = QueryBuilder::new(
                "insert into group_member (group_id, user_id, environment_id, created_at) ",
            );
            qb.push_values(chunk, |mut b, u| {
                b.push_bind(group.0)
                    .push_bind(u.0)
                    .push_bind(env.0)
                    .push_bind(at.0);
            });
            qb.push(" on conflict do nothing returning user_id");
            for row in qb.build().fetch_all(self.c()).await.map_err(db_err)? {
                added.push(UserId(get(&row, "user_id")?));
            }
        }
        Ok(added)
    }

    async fn remove_members(
        &mut self,
        env: EnvironmentId,
        group: GroupId,
        users: &[UserId],
    ) -> StoreResult<Vec<UserId>> {
        let mut removed = Vec::new();
        for chunk in users.chunks(IN_CHUNK) {
            let mut qb = QueryBuilder::new("delete from group_member where environment_id = ");
            qb.push_bind(env.0)
                .push(" and group_id = ")
                .push_bind(group.0)
                .push(" and user_id in (");
            let mut sep = qb.separated(", ");
            for u in chunk {
                sep.push_bind(u.0);
            }
            qb.push(") returning user_id");
            for row in qb.build().fetch_all(self.c()).await.map_err(db_err)? {
                removed.push(UserId(get(&row, "user_id")?));
            }
        }
        Ok(removed)
    }

    async fn member_ids(&mut self, env: EnvironmentId, group: GroupId) -> StoreResult<Vec<UserId>> {
        let rows = sqlx::query("select user_id from group_member where environment_id = $1 and group_id = $2 order by user_id")
            .bind(env.0)
            .bind(group.0)
            .fetch_all(self.c())
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok(UserId(get(r, "user_id")?)))
            .collect()
    }

    async fn member_ids_page(
        &mut self,
        env: EnvironmentId,
        group: GroupId,
        after: Option<UserId>,
        limit: u64,
    ) -> StoreResult<Vec<UserId>> {
        // The primary key (group_id, user_id) serves the range and the order.
        let rows = sqlx::query(
            "select user_id from group_member where environment_id = $1 and group_id = $2 \
             and user_id > $3 order by user_id limit $4",
        )
        .bind(env.0)
        .bind(group.0)
        .bind(after.map(|u| u.0).unwrap_or(Uuid::nil()))
        .bind(limit.min(i64::MAX as u64) as i64)
        .fetch_all(self.c())
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok(UserId(get(r, "user_id")?)))
            .collect()
    }

    async fn members(&mut self, env: EnvironmentId, group: GroupId) -> StoreResult<Vec<MemberRef>> {
        let rows = sqlx::query(
            "select m.user_id, coalesce(u.display_name, u.user_name) as display from group_member m \
             join user_account u on u.user_id = m.user_id \
             where m.environment_id = $1 and m.group_id = $2 order by m.user_id",
        )
        .bind(env.0)
        .bind(group.0)
        .fetch_all(self.c())
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(MemberRef {
                    user_id: UserId(get(r, "user_id")?),
                    display: get(r, "display")?,
                })
            })
            .collect()
    }

    async fn groups_of_users(
        &mut self,
        env: EnvironmentId,
        users: &[UserId],
    ) -> StoreResult<Vec<(UserId, GroupRef)>> {
        if let [one] = users {
            // One user (GET of a user): one statement. The group's name comes from a subquery
            // by primary key, so the plan starts from the member index whatever the planner
            // thinks of the tables (as a join, SQLite chose to scan every group).
            let q = Stmt::new(
                "select m.group_id, (select g.display_name from scim_group g \
                 where g.group_id = m.group_id and g.environment_id = m.environment_id) as display_name \
                 from group_member m where m.user_id = $1 and m.environment_id = $2",
            )
            .arg(one.0)
            .arg(env.0);
            let rows = self
                .lookup(&q, |r| {
                    Ok((r.uuid("group_id")?, r.text_opt("display_name")?))
                })
                .await?;
            let mut out: Vec<(UserId, GroupRef)> = rows
                .into_iter()
                .filter_map(|(g, name)| {
                    name.map(|display| {
                        (
                            *one,
                            GroupRef {
                                group_id: GroupId(g),
                                display,
                            },
                        )
                    })
                })
                .collect();
            out.sort_by(|a, b| (&a.1.display, a.1.group_id).cmp(&(&b.1.display, b.1.group_id)));
            return Ok(out);
        }
        // Two index-driven steps rather than one join: a planner that starts a join from the
        // group side walks every member of a giant group to find a page of users.
        let mut pairs: Vec<(UserId, GroupId)> = Vec::new();
        for chunk in users.chunks(IN_CHUNK) {
            let mut qb =
                QueryBuilder::new("select user_id, group_id from group_member where user_id in (");
            let mut sep = qb.separated(", ");
            for u in chunk {
                sep.push_bind(u.0);
            }
            qb.push(") and environment_id = ").push_bind(env.0);
            for row in qb.build().fetch_all(self.c()).await.map_err(db_err)? {
                pairs.push((
                    UserId(get(&row, "user_id")?),
                    GroupId(get(&row, "group_id")?),
                ));
            }
        }
        let mut group_ids: Vec<GroupId> = pairs.iter().map(|(_, g)| *g).collect();
        group_ids.sort();
        group_ids.dedup();
        let mut names: std::collections::HashMap<GroupId, String> =
            std::collections::HashMap::new();
        for chunk in group_ids.chunks(IN_CHUNK) {
            let mut qb = QueryBuilder::new(
                "select group_id, display_name from scim_group where group_id in (",
            );
            let mut sep = qb.separated(", ");
            for g in chunk {
                sep.push_bind(g.0);
            }
            qb.push(") and environment_id = ").push_bind(env.0);
            for row in qb.build().fetch_all(self.c()).await.map_err(db_err)? {
                names.insert(GroupId(get(&row, "group_id")?), get(&row, "display_name")?);
            }
        }
        let mut out: Vec<(UserId, GroupRef)> = pairs
            .into_iter()
            .filter_map(|(u, g)| {
                names.get(&g).map(|d| {
                    (
                        u,
                        GroupRef {
                            group_id: g,
                            display: d.clone(),
                        },
                    )
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.1.display, a.1.group_id).cmp(&(&b.1.display, b.1.group_id)));
        Ok(out)
    }
}

const LOG_COLS: &str =
    "environment_id, at, provider_id, actor_kind, actor_id, actor_name, action, subject_kind, \
     subject_id, subject_name, details, outcome, message";

fn actor_columns(a: &Actor) -> (&'static str, Option<String>, Option<String>) {
    match a {
        Actor::Provider { id } => ("provider", Some(id.to_string()), None),
        Actor::Admin { name } => ("admin", None, Some(name.clone())),
        Actor::System => ("system", None, None),
    }
}

fn log_from(row: &DbRow) -> StoreResult<SyncLogEntry> {
    let kind: String = get(row, "actor_kind")?;
    let actor_id: Option<String> = get(row, "actor_id")?;
    let actor_name: Option<String> = get(row, "actor_name")?;
    let actor = match kind.as_str() {
        "provider" => Actor::Provider {
            id: actor_id
                .as_deref()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Corrupt("log entry without its provider".into()))?,
        },
        "admin" => Actor::Admin {
            name: actor_name.unwrap_or_default(),
        },
        _ => Actor::System,
    };
    let details: String = get(row, "details")?;
    let outcome: String = get(row, "outcome")?;
    Ok(SyncLogEntry {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        at: ts(get(row, "at")?),
        provider_id: get::<Option<Uuid>>(row, "provider_id")?.map(ProviderId),
        actor,
        action: get(row, "action")?,
        subject_kind: get(row, "subject_kind")?,
        subject_id: get(row, "subject_id")?,
        subject_name: get(row, "subject_name")?,
        details: serde_json::from_str(&details).unwrap_or(Value::Null),
        outcome: if outcome == "error" {
            Outcome::Error
        } else {
            Outcome::Success
        },
        message: get(row, "message")?,
    })
}

#[async_trait]
impl SyncLogStore for DbTx {
    async fn append_log(&mut self, entries: &[SyncLogEntry]) -> StoreResult<()> {
        crate::stats::SYNC_LOG_ENTRIES
            .fetch_add(entries.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for chunk in entries.chunks(100) {
            let mut qb = QueryBuilder::new(
                "insert into sync_log (environment_id, at, provider_id, actor_kind, actor_id, actor_name, action, \
                 subject_kind, subject_id, subject_name, details, outcome, message) ",
            );
            qb.push_values(chunk, |mut b, e| {
                let (kind, id, name) = actor_columns(&e.actor);
                b.push_bind(e.environment_id.0)
                    .push_bind(e.at.0)
                    .push_bind(e.provider_id.map(|p| p.0))
                    .push_bind(kind)
                    .push_bind(id)
                    .push_bind(name)
                    .push_bind(e.action.clone())
                    .push_bind(e.subject_kind.clone())
                    .push_bind(e.subject_id.clone())
                    .push_bind(e.subject_name.clone())
                    .push_bind(e.details.to_string())
                    .push_bind(e.outcome.as_str())
                    .push_bind(e.message.clone());
            });
            qb.build().execute(self.c()).await.map_err(db_err)?;
        }
        Ok(())
    }

    async fn query_log(
        &mut self,
        env: EnvironmentId,
        q: &LogQuery,
        before: Option<(Timestamp, i64)>,
        limit: u64,
    ) -> StoreResult<Vec<(i64, SyncLogEntry)>> {
        let mut qb = QueryBuilder::new(format!(
            "select sync_log_id, {LOG_COLS} from sync_log where environment_id = "
        ));
        qb.push_bind(env.0);
        if let Some(t) = q.since {
            qb.push(" and at >= ").push_bind(t.0);
        }
        if let Some(t) = q.until {
            qb.push(" and at < ").push_bind(t.0);
        }
        if let Some(p) = q.provider {
            qb.push(" and provider_id = ").push_bind(p.0);
        }
        if let Some(s) = &q.subject {
            qb.push(" and subject_id = ").push_bind(s.clone());
        }
        match q.action.as_deref() {
            Some(a) if a.ends_with('.') => {
                // A family: `user.` is every user action. `.` never needs escaping in LIKE.
                qb.push(" and action like ")
                    .push_bind(format!("{}%", a.replace(['%', '_'], "")));
            }
            Some(a) => {
                qb.push(" and action = ").push_bind(a.to_string());
            }
            None => {}
        }
        if let Some(o) = q.outcome {
            qb.push(" and outcome = ").push_bind(o.as_str());
        }
        if let Some((at, id)) = before {
            // A range on `at` the index can start from, then the tie-break on the id.
            qb.push(" and at <= ")
                .push_bind(at.0)
                .push(" and (at < ")
                .push_bind(at.0)
                .push(" or sync_log_id < ")
                .push_bind(id)
                .push(")");
        }
        qb.push(" order by at desc, sync_log_id desc limit ")
            .push_bind(limit as i64);
        let rows = qb.build().fetch_all(self.c()).await.map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((get::<i64>(r, "sync_log_id")?, log_from(r)?)))
            .collect()
    }

    async fn count_log_errors(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        since: Timestamp,
    ) -> StoreResult<u64> {
        let row = sqlx::query(
            "select count(*) as n from sync_log where environment_id = $1 and provider_id = $2 and outcome = 'error' and at >= $3",
        )
        .bind(env.0)
        .bind(provider.0)
        .bind(since.0)
        .fetch_one(self.c())
        .await
        .map_err(db_err)?;
        Ok(get::<i64>(&row, "n")?.max(0) as u64)
    }

    async fn delete_log_before(&mut self, cutoff: Timestamp, limit: u64) -> StoreResult<u64> {
        let done = sqlx::query(
            "delete from sync_log where sync_log_id in (select sync_log_id from sync_log where at < $1 order by at limit $2)",
        )
        .bind(cutoff.0)
        .bind(limit as i64)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn recent_log(
        &mut self,
        env: EnvironmentId,
        limit: u64,
    ) -> StoreResult<Vec<SyncLogEntry>> {
        let rows = sqlx::query(&format!(
            "select {LOG_COLS} from sync_log where environment_id = $1 order by at desc, sync_log_id desc limit $2"
        ))
        .bind(env.0)
        .bind(limit as i64)
        .fetch_all(self.c())
        .await
        .map_err(db_err)?;
        rows.iter().map(log_from).collect()
    }
}

const ADMIN_COLS: &str = "a.admin_id, a.environment_id, a.username, a.role, a.created_at, a.last_sign_in_at, a.failed_sign_ins, a.locked_until";

fn admin_from(row: &DbRow) -> StoreResult<AdminAccount> {
    let role: String = get(row, "role")?;
    Ok(AdminAccount {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        id: AdminId(get(row, "admin_id")?),
        username: get(row, "username")?,
        role: AdminRole::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("admin role '{role}'")))?,
        created_at: ts(get(row, "created_at")?),
        last_sign_in_at: ts_opt(get(row, "last_sign_in_at")?),
        failed_sign_ins: get(row, "failed_sign_ins")?,
        locked_until: ts_opt(get(row, "locked_until")?),
    })
}

#[async_trait]
impl AdminAccountStore for DbTx {
    async fn insert_admin(&mut self, a: &AdminAccount, password_hash: &str) -> StoreResult<()> {
        sqlx::query(
            "insert into admin_account (admin_id, environment_id, username, username_key, password_hash, role, created_at, failed_sign_ins) \
             values ($1, $2, $3, $4, $5, $6, $7, 0)",
        )
        .bind(a.id.0)
        .bind(a.environment_id.0)
        .bind(&a.username)
        .bind(key(&a.username))
        .bind(password_hash)
        .bind(a.role.as_str())
        .bind(a.created_at.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn find_admin_by_username(
        &mut self,
        env: EnvironmentId,
        username_key: &str,
    ) -> StoreResult<Option<(AdminAccount, String)>> {
        let row = sqlx::query(&format!(
            "select {ADMIN_COLS}, a.password_hash from admin_account a where a.environment_id = $1 and a.username_key = $2"
        ))
        .bind(env.0)
        .bind(username_key)
        .fetch_optional(self.c())
        .await
        .map_err(db_err)?;
        match row {
            Some(r) => Ok(Some((admin_from(&r)?, get(&r, "password_hash")?))),
            None => Ok(None),
        }
    }

    async fn list_admins(&mut self, env: EnvironmentId) -> StoreResult<Vec<AdminAccount>> {
        let rows = sqlx::query(&format!(
            "select {ADMIN_COLS} from admin_account a where a.environment_id = $1 order by a.username_key"
        ))
        .bind(env.0)
        .fetch_all(self.c())
        .await
        .map_err(db_err)?;
        rows.iter().map(admin_from).collect()
    }

    async fn update_admin_sign_in(&mut self, a: &AdminAccount) -> StoreResult<()> {
        sqlx::query(
            "update admin_account set last_sign_in_at = $1, failed_sign_ins = $2, locked_until = $3 \
             where environment_id = $4 and admin_id = $5",
        )
        .bind(a.last_sign_in_at.map(|t| t.0))
        .bind(a.failed_sign_ins)
        .bind(a.locked_until.map(|t| t.0))
        .bind(a.environment_id.0)
        .bind(a.id.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn insert_session(&mut self, s: &AdminSession, token_hash: &[u8]) -> StoreResult<()> {
        sqlx::query(
            "insert into admin_session (session_id, environment_id, admin_id, token_hash, csrf_token, created_at, last_seen_at, expires_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(s.id.0)
        .bind(s.environment_id.0)
        .bind(s.admin_id.0)
        .bind(token_hash)
        .bind(&s.csrf_token)
        .bind(s.created_at.0)
        .bind(s.last_seen_at.0)
        .bind(s.expires_at.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn find_session_by_hash(
        &mut self,
        hash: &[u8],
    ) -> StoreResult<Option<(AdminSession, AdminAccount)>> {
        let row = sqlx::query(&format!(
            "select {ADMIN_COLS}, s.session_id, s.csrf_token, s.created_at as s_created, s.last_seen_at, s.expires_at, s.revoked_at \
             from admin_session s join admin_account a on a.admin_id = s.admin_id where s.token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(self.c())
        .await
        .map_err(db_err)?;
        let Some(r) = row else { return Ok(None) };
        let admin = admin_from(&r)?;
        let session = AdminSession {
            environment_id: admin.environment_id,
            id: SessionId(get(&r, "session_id")?),
            admin_id: admin.id,
            csrf_token: get(&r, "csrf_token")?,
            created_at: ts(get(&r, "s_created")?),
            last_seen_at: ts(get(&r, "last_seen_at")?),
            expires_at: ts(get(&r, "expires_at")?),
            revoked_at: ts_opt(get(&r, "revoked_at")?),
        };
        Ok(Some((session, admin)))
    }

    async fn touch_session(&mut self, id: SessionId, at: Timestamp) -> StoreResult<()> {
        sqlx::query("update admin_session set last_seen_at = $1 where session_id = $2")
            .bind(at.0)
            .bind(id.0)
            .execute(self.c())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn revoke_session(&mut self, id: SessionId, at: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "update admin_session set revoked_at = $1 where session_id = $2 and revoked_at is null",
        )
        .bind(at.0)
        .bind(id.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn revoke_sessions_of(&mut self, admin: AdminId, at: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "update admin_session set revoked_at = $1 where admin_id = $2 and revoked_at is null",
        )
        .bind(at.0)
        .bind(admin.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

fn org_mapping_from(row: &DbRow) -> StoreResult<OrgMapping> {
    let method: String = get(row, "method")?;
    Ok(OrgMapping {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        provider_id: ProviderId(get(row, "provider_id")?),
        method: OrgMethod::parse(&method)
            .ok_or_else(|| StoreError::Corrupt(format!("org mapping method '{method}'")))?,
        org_id: get::<Option<Uuid>>(row, "org_id")?.map(OrgId),
        attribute: get(row, "attribute")?,
        parent_org_id: get::<Option<Uuid>>(row, "parent_org_id")?.map(OrgId),
        unmapped_org_id: get::<Option<Uuid>>(row, "unmapped_org_id")?.map(OrgId),
        updated_at: ts(get(row, "updated_at")?),
    })
}

impl DbTx {
    async fn write_group_org_mapping_groups(&mut self, m: &GroupOrgMapping) -> StoreResult<()> {
        sqlx::query("delete from group_org_mapping_group where group_org_mapping_id = $1")
            .bind(m.id.0)
            .execute(self.c())
            .await
            .map_err(db_err)?;
        for chunk in m.groups.chunks(IN_CHUNK) {
            let mut qb = QueryBuilder::new(
                "insert into group_org_mapping_group (group_id, group_org_mapping_id, environment_id) ",
            );
            qb.push_values(chunk, |mut b, g| {
                b.push_bind(g.0)
                    .push_bind(m.id.0)
                    .push_bind(m.environment_id.0);
            });
            qb.build().execute(self.c()).await.map_err(db_err)?;
        }
        Ok(())
    }
}

#[async_trait]
impl MappingStore for DbTx {
    async fn org_mapping(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<Option<OrgMapping>> {
        let row = sqlx::query(
            "select provider_id, environment_id, method, org_id, attribute, parent_org_id, unmapped_org_id, updated_at \
             from org_mapping where environment_id = $1 and provider_id = $2",
        )
        .bind(env.0)
        .bind(provider.0)
        .fetch_optional(self.c())
        .await
        .map_err(db_err)?;
        row.as_ref().map(org_mapping_from).transpose()
    }

    async fn put_org_mapping(&mut self, m: &OrgMapping) -> StoreResult<()> {
        sqlx::query(
            "insert into org_mapping (provider_id, environment_id, method, org_id, attribute, parent_org_id, unmapped_org_id, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8) \
             on conflict (provider_id) do update set method = excluded.method, org_id = excluded.org_id, \
             attribute = excluded.attribute, parent_org_id = excluded.parent_org_id, \
             unmapped_org_id = excluded.unmapped_org_id, updated_at = excluded.updated_at",
        )
        .bind(m.provider_id.0)
        .bind(m.environment_id.0)
        .bind(m.method.as_str())
        .bind(m.org_id.map(|o| o.0))
        .bind(m.attribute.as_deref())
        .bind(m.parent_org_id.map(|o| o.0))
        .bind(m.unmapped_org_id.map(|o| o.0))
        .bind(m.updated_at.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn group_org_mappings(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<Vec<GroupOrgMapping>> {
        let rows = sqlx::query(
            "select m.group_org_mapping_id, m.org_id, m.priority, m.created_at, g.group_id \
             from group_org_mapping m left join group_org_mapping_group g on g.group_org_mapping_id = m.group_org_mapping_id \
             where m.environment_id = $1 and m.provider_id = $2 \
             order by m.priority, m.created_at, m.group_org_mapping_id, g.group_id",
        )
        .bind(env.0)
        .bind(provider.0)
        .fetch_all(self.c())
        .await
        .map_err(db_err)?;
        let mut out: Vec<GroupOrgMapping> = Vec::new();
        for row in &rows {
            let id = GroupMappingId(get(row, "group_org_mapping_id")?);
            let group = get::<Option<Uuid>>(row, "group_id")?.map(GroupId);
            match out.last_mut() {
                Some(last) if last.id == id => last.groups.extend(group),
                _ => out.push(GroupOrgMapping {
                    environment_id: env,
                    id,
                    provider_id: provider,
                    org_id: OrgId(get(row, "org_id")?),
                    priority: get(row, "priority")?,
                    groups: group.into_iter().collect(),
                    created_at: ts(get(row, "created_at")?),
                }),
            }
        }
        Ok(out)
    }

    async fn insert_group_org_mapping(&mut self, m: &GroupOrgMapping) -> StoreResult<()> {
        sqlx::query(
            "insert into group_org_mapping (group_org_mapping_id, environment_id, provider_id, org_id, priority, created_at) \
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(m.id.0)
        .bind(m.environment_id.0)
        .bind(m.provider_id.0)
        .bind(m.org_id.0)
        .bind(m.priority)
        .bind(m.created_at.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        self.write_group_org_mapping_groups(m).await
    }

    async fn update_group_org_mapping(&mut self, m: &GroupOrgMapping) -> StoreResult<()> {
        sqlx::query(
            "update group_org_mapping set org_id = $1, priority = $2 \
             where environment_id = $3 and group_org_mapping_id = $4",
        )
        .bind(m.org_id.0)
        .bind(m.priority)
        .bind(m.environment_id.0)
        .bind(m.id.0)
        .execute(self.c())
        .await
        .map_err(db_err)?;
        self.write_group_org_mapping_groups(m).await
    }

    async fn delete_group_org_mapping(
        &mut self,
        env: EnvironmentId,
        id: GroupMappingId,
    ) -> StoreResult<bool> {
        sqlx::query("delete from group_org_mapping_group where environment_id = $1 and group_org_mapping_id = $2")
            .bind(env.0)
            .bind(id.0)
            .execute(self.c())
            .await
            .map_err(db_err)?;
        let n = sqlx::query(
            "delete from group_org_mapping where environment_id = $1 and group_org_mapping_id = $2",
        )
        .bind(env.0)
        .bind(id.0)
        .execute(self.c())
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(n > 0)
    }

    async fn role_mappings(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<Vec<(GroupId, RoleId)>> {
        let rows = sqlx::query(
            "select group_id, role_id from role_mapping where environment_id = $1 and provider_id = $2 \
             order by group_id, role_id",
        )
        .bind(env.0)
        .bind(provider.0)
        .fetch_all(self.c())
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((GroupId(get(r, "group_id")?), RoleId(get(r, "role_id")?))))
            .collect()
    }

    async fn put_role_mapping(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        group: GroupId,
        roles: &[RoleId],
    ) -> StoreResult<()> {
        sqlx::query("delete from role_mapping where environment_id = $1 and group_id = $2")
            .bind(env.0)
            .bind(group.0)
            .execute(self.c())
            .await
            .map_err(db_err)?;
        if roles.is_empty() {
            return Ok(());
        }
        let mut qb = QueryBuilder::new(
            "insert into role_mapping (group_id, role_id, environment_id, provider_id) ",
        );
        qb.push_values(roles, |mut b, r| {
            b.push_bind(group.0)
                .push_bind(r.0)
                .push_bind(env.0)
                .push_bind(provider.0);
        });
        qb.push(" on conflict do nothing");
        qb.build().execute(self.c()).await.map_err(db_err)?;
        Ok(())
    }

    async fn role_mapping_groups(
        &mut self,
        env: EnvironmentId,
        role: RoleId,
    ) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "select g.display_name from role_mapping m join scim_group g on g.group_id = m.group_id \
             where m.environment_id = $1 and m.role_id = $2 order by g.display_name_key",
        )
        .bind(env.0)
        .bind(role.0)
        .fetch_all(self.c())
        .await
        .map_err(db_err)?;
        rows.iter().map(|r| get(r, "display_name")).collect()
    }
}

#[async_trait]
impl Tx for DbTx {
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        match *self {
            DbTx::Tx(t, started) => {
                let at = std::time::Instant::now();
                let done = t.commit().await.map_err(db_err);
                crate::stats::COMMIT.observe(at.elapsed());
                if done.is_ok() {
                    crate::stats::COMMITTED_TRANSACTIONS
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                crate::stats::WRITE_TX.observe(started.elapsed());
                done
            }
            DbTx::Conn(_) => Ok(()),
            DbTx::Held(h) => h.commit().await,
        }
    }
}
