//! The store implementation shared by both backends.
//!
//! This module holds the statement builder, row decoding, listings and transactions; each
//! aggregate's SQL is in a child named after it (`users`, `groups`, `orgs`, `roles`, `providers`,
//! `admin_tokens`, `admins`, `mapping`, `synclog`, `environments`).
//!
//! This module is compiled twice, once inside `sqlite` and once inside `postgres` (each includes
//! it with `#[path]`). Each parent module defines `Db` (the sqlx database type) and
//! `classify_unique` (which of Muster's uniqueness rules a constraint error names). The SQL is
//! written once, in the subset both databases speak: `$n` placeholders (sqlx binds them by
//! number on SQLite too), 64-bit integer times, and `on conflict do nothing`.

use async_trait::async_trait;
use muster_core::clock::Timestamp;
use muster_core::error::StoreError;
use muster_core::ids::{
    AdminId, AdminTokenId, EnvironmentId, GroupId, GroupMappingId, OrgId, ProviderId, RoleId,
    SessionId, TokenId, UserId, WebhookId,
};
use muster_core::model::{
    Actor, AdminAccount, AdminRole, AdminSession, AdminToken, Attributes, DeliveryKind,
    Environment, FeedEvent, GroupOrgMapping, GroupRecord, GroupRef, ManualDelivery, MemberRef, Org,
    OrgMapping, OrgMethod, OrgStatus, Outcome, Provider, ProviderToken, ReportPreference, Role,
    RoleSource, Scope, SyncLogEntry, UserRecord, UserStatus, WebhookDelivery, WebhookEndpoint,
};
use muster_core::store::{
    AdminAccountStore, AdminTokenStore, Cond, Cursor, EnvironmentStore, EventStore, GroupStore,
    LogQuery, MappingRules, MappingStore, Order, OrderKey, OrgStore, OrgTree, OrgTreeRead, Page,
    ProviderStore, RoleStore, StoreResult, SyncLogStore, TimeColumn, Tx, UserQuery, UserStore,
    WebhookStore,
};
use muster_core::synclog::event::Event;
use serde_json::{Map, Value};
use sqlx::Row as _;
use std::borrow::Cow;
use uuid::Uuid;

use super::{classify_unique, Db, Held};

use super::DbRow;
type DbConn = <Db as sqlx::Database>::Connection;

/// A user's columns, as a literal: the lookups on every read put their SQL together with
/// `concat!` once, rather than with `format!` on every call.
macro_rules! user_cols {
    () => {
        "user_id, environment_id, provider_id, user_name, external_id, display_name, scim_active, status, \
         org_id, legal_hold, changed_outside, resource, version, created_at, updated_at, removed_at, deactivate_at"
    };
}

/// The organizations, their default roles and the roles, as the parts (`o`, `d`, `r`) of one
/// union ([`OrgStore::org_tree`]). Every part has the columns of [`rules_parts!`] as well, so the
/// two can be one statement ([`MappingStore::rules_and_org_tree`]); PostgreSQL types a union's
/// columns from its parts in order, hence the typed nulls in the first.
macro_rules! tree_parts {
    () => {
        tree_parts!("")
    };
    ($cond:expr) => {
        concat!(
            "select 'o' as part, org_id, environment_id, parent_id, name, status, own_default_roles, \
             created_at, updated_at, cast(null as uuid) as role_id, cast(null as text) as description, \
             cast(null as boolean) as builtin, cast(null as uuid) as provider_id, \
             cast(null as text) as method, cast(null as text) as attribute, \
             cast(null as uuid) as parent_org_id, cast(null as uuid) as unmapped_org_id, \
             cast(null as uuid) as group_id \
             from org where environment_id = $1",
            $cond,
            " union all \
             select 'd', org_id, environment_id, null, null, null, null, null, null, role_id, null, null, \
             null, null, null, null, null, null \
             from org_default_role where environment_id = $1",
            $cond,
            " union all \
             select 'r', null, environment_id, null, name, null, null, created_at, null, role_id, \
             description, builtin, null, null, null, null, null, null \
             from role where environment_id = $1",
            $cond
        )
    };
}

/// The condition on [`tree_parts!`] that leaves the tree out when its token ([`tree_version!`],
/// defined by each backend) is `$3`, the one the caller holds; and the row (`v`) that gives the
/// token, its value in the `created_at` column.
macro_rules! tree_unless_known {
    () => {
        concat!(" and not coalesce(", tree_version!(), " = $3, false)")
    };
}
macro_rules! tree_version_part {
    () => {
        concat!(
            "select 'v', null, null, null, null, null, null, ",
            tree_version!(),
            ", null, null, null, null, null, null, null, null, null, null"
        )
    };
}

/// A provider's organization mapping and its role mappings, as the parts (`m`, `g`) of one union
/// with the columns of [`tree_parts!`] ([`MappingStore::mapping_rules`]).
macro_rules! rules_parts {
    () => {
        "select 'm' as part, org_id, environment_id, cast(null as uuid) as parent_id, \
         cast(null as text) as name, cast(null as text) as status, \
         cast(null as boolean) as own_default_roles, cast(null as bigint) as created_at, \
         updated_at, cast(null as uuid) as role_id, cast(null as text) as description, \
         cast(null as boolean) as builtin, provider_id, method, attribute, parent_org_id, \
         unmapped_org_id, cast(null as uuid) as group_id \
         from org_mapping where environment_id = $1 and provider_id = $2 \
         union all \
         select 'g', null, environment_id, null, null, null, null, null, null, role_id, null, null, \
         provider_id, null, null, null, null, group_id \
         from role_mapping where environment_id = $1 and provider_id = $2"
    };
}

mod admin_tokens;
mod admins;
mod environments;
mod events;
mod groups;
mod listing;
mod mapping;
mod notices;
mod orgs;
mod providers;
mod roles;
mod synclog;
mod users;
mod webhooks;

/// The most ids bound in one `in (...)` list.
const IN_CHUNK: usize = 500;

/// Sync log entries per INSERT statement (13 values each).
const LOG_CHUNK: usize = 100;

/// A transaction, or a plain pooled connection for reads.
// Each backend builds only its own variants: PostgreSQL the pooled ones, SQLite `Held`.
#[allow(dead_code)]
pub enum DbTx {
    /// A write transaction (PostgreSQL).
    Tx(Box<Writing>),
    /// A pooled connection in autocommit mode.
    Conn(super::PooledConn),
    /// A connection the backend holds itself, in a write transaction or not (SQLite).
    Held(Held),
}

/// A PostgreSQL write transaction and the outbox it writes just before COMMIT (`events.rs`).
pub struct Writing {
    tx: super::PooledTx,
    started: std::time::Instant,
    /// The sync log's entries and the feed's events, written together in one statement at
    /// commit, a round trip less per change than writing the entries when they are made.
    log: Vec<SyncLogEntry>,
    events: Vec<FeedEvent>,
    /// Woken after COMMIT when events were written, to number them.
    sequencer: super::Sequencer,
}

impl DbTx {
    /// A write transaction begun on PostgreSQL.
    #[allow(dead_code)] // SQLite's write transactions are `Held`.
    pub fn writing(tx: super::PooledTx, sequencer: super::Sequencer) -> Self {
        DbTx::Tx(Box::new(Writing {
            tx,
            started: std::time::Instant::now(),
            log: Vec::new(),
            events: Vec::new(),
            sequencer,
        }))
    }

    /// The sqlx connection, for a statement that runs through sqlx.
    fn c(&mut self) -> StoreResult<&mut DbConn> {
        match self {
            DbTx::Tx(w) => w.tx.conn(),
            DbTx::Conn(c) => Ok(super::pooled_conn(c)),
            DbTx::Held(h) => h.conn().ok_or_else(|| {
                StoreError::Database(Box::new(std::io::Error::other(
                    "this connection runs its statements on the caller's thread",
                )))
            }),
        }
    }

    /// The store error of a statement's failure, noting on the connection a failure that leaves
    /// it unfit to be lent again (PostgreSQL's pool, `pg_pool.rs`).
    fn failed(&mut self, e: sqlx::Error) -> StoreError {
        match self {
            DbTx::Tx(w) => w.tx.failed(&e),
            DbTx::Conn(c) => super::pooled_failed(c, &e),
            DbTx::Held(_) => {}
        }
        db_err(e)
    }

    /// The connection that runs statements on the calling thread, if this one has it: SQLite's
    /// writer for every statement, a SQLite reader for index lookups (`lookup`) only.
    fn inline(&mut self, lookup: bool) -> Option<&mut super::Fast> {
        match self {
            DbTx::Held(h) => h.fast(lookup),
            _ => None,
        }
    }

    /// Runs a statement that returns no rows; how many rows it changed.
    async fn exec(&mut self, stmt: &Stmt) -> StoreResult<u64> {
        if let Some(fast) = self.inline(false) {
            let changed = fast.exec(stmt);
            tokio::task::consume_budget().await;
            return changed;
        }
        let done = stmt.query().execute(self.c()?).await;
        Ok(done.map_err(|e| self.failed(e))?.rows_affected())
    }

    /// Runs a statement; its rows.
    async fn rows(&mut self, stmt: &Stmt) -> StoreResult<Vec<Row>> {
        if let Some(fast) = self.inline(false) {
            let rows = fast.rows(stmt, None);
            tokio::task::consume_budget().await;
            return Ok(rows?.into_iter().map(Row::Held).collect());
        }
        let rows = stmt.query().fetch_all(self.c()?).await;
        let rows = rows.map_err(|e| self.failed(e))?;
        Ok(rows.into_iter().map(Row::Db).collect())
    }

    /// Runs a statement; its first row, if any.
    async fn row(&mut self, stmt: &Stmt) -> StoreResult<Option<Row>> {
        if let Some(fast) = self.inline(false) {
            let row = fast.rows(stmt, Some(1));
            tokio::task::consume_budget().await;
            return Ok(row?.pop().map(Row::Held));
        }
        let row = stmt.query().fetch_optional(self.c()?).await;
        Ok(row.map_err(|e| self.failed(e))?.map(Row::Db))
    }

    /// Runs a statement that returns a row.
    async fn one(&mut self, stmt: &Stmt) -> StoreResult<Row> {
        self.row(stmt).await?.ok_or_else(|| {
            StoreError::Database(Box::new(std::io::Error::other(
                "a statement that returns a row returned none",
            )))
        })
    }

    /// Runs a `select count(*) as n ...` statement: its count.
    async fn count(&mut self, stmt: &Stmt) -> StoreResult<u64> {
        let row = self.one(stmt).await?;
        Ok(get::<i64, _>(&row, "n")?.max(0) as u64)
    }

    /// Runs a statement and decodes its rows.
    async fn fetch<T: Send>(&mut self, stmt: &Stmt, decode: Decode<T>) -> StoreResult<Vec<T>> {
        if let Some(fast) = self.inline(false) {
            let found = fast.lookup(stmt, decode);
            tokio::task::consume_budget().await;
            return found;
        }
        let rows = stmt.query().fetch_all(self.c()?).await;
        let rows = rows.map_err(|e| self.failed(e))?;
        rows.iter().map(|r| decode(r)).collect()
    }

    /// Runs a statement that reads a few rows through an index. A SQLite reader runs it on the
    /// calling thread (handing it to sqlx's connection thread and back costs more than the
    /// read), like every statement of SQLite's writer; anything else goes through sqlx.
    async fn lookup<T: Send>(&mut self, stmt: &Stmt, decode: Decode<T>) -> StoreResult<Vec<T>> {
        if let Some(fast) = self.inline(true) {
            let found = fast.lookup(stmt, decode);
            tokio::task::consume_budget().await;
            return found;
        }
        self.fetch(stmt, decode).await
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

/// A value bound to a [`Stmt`]. Nulls keep their type: PostgreSQL needs it.
#[derive(Debug, Clone)]
pub enum Arg {
    Uuid(Option<Uuid>),
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
    Bytes(Vec<u8>),
}

macro_rules! arg_from {
    ($($t:ty => |$v:ident| $e:expr;)*) => {
        $(impl From<$t> for Arg {
            fn from($v: $t) -> Self {
                $e
            }
        })*
    };
}

arg_from! {
    Uuid => |v| Arg::Uuid(Some(v));
    Option<Uuid> => |v| Arg::Uuid(v);
    i64 => |v| Arg::Int(Some(v));
    Option<i64> => |v| Arg::Int(v);
    bool => |v| Arg::Bool(v);
    String => |v| Arg::Text(Some(v));
    &String => |v| Arg::Text(Some(v.clone()));
    &str => |v| Arg::Text(Some(v.to_string()));
    Option<String> => |v| Arg::Text(v);
    &Option<String> => |v| Arg::Text(v.clone());
    Option<&str> => |v| Arg::Text(v.map(str::to_string));
    Vec<u8> => |v| Arg::Bytes(v);
    &[u8] => |v| Arg::Bytes(v.to_vec());
}

/// SQL and the values bound to its `$n` placeholders, written once for both databases and run
/// either through sqlx or, on SQLite, on the calling thread (`sqlite_fast.rs`).
#[derive(Debug, Default)]
pub struct Stmt {
    /// The SQL: borrowed when it is a constant, as most lookups' are, so that running one does
    /// not copy its text (a user's lookup is 640 bytes).
    pub sql: Cow<'static, str>,
    pub args: Vec<Arg>,
}

impl Stmt {
    fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Stmt {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    /// Appends SQL text. Copied in, not formatted: a listing's statement is put together from
    /// a dozen pieces on every request, and `write!` of each was about 3,000 of a filtered
    /// GET's instructions (callgrind, docs/benchmarks.md).
    fn push(&mut self, sql: impl AsRef<str>) -> &mut Self {
        self.sql.to_mut().push_str(sql.as_ref());
        self
    }

    /// Appends the next placeholder and its value.
    fn bind(&mut self, v: impl Into<Arg>) -> &mut Self {
        self.args.push(v.into());
        let mut n = itoa::Buffer::new();
        let sql = self.sql.to_mut();
        sql.push('$');
        sql.push_str(n.format(self.args.len()));
        self
    }

    fn push_bind(&mut self, v: impl Into<Arg>) -> &mut Self {
        self.bind(v)
    }

    /// Binds the value of the next `$n` already written in the SQL.
    fn arg(mut self, v: impl Into<Arg>) -> Self {
        self.args.push(v.into());
        self
    }

    /// Placeholders separated by `sep`.
    fn separated(&mut self, sep: &'static str) -> Separated<'_> {
        Separated {
            stmt: self,
            sep,
            first: true,
        }
    }

    /// `values (…), (…)`: one tuple of placeholders per item.
    fn push_values<I, F>(&mut self, items: I, mut tuple: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(Separated<'_>, I::Item),
    {
        self.push("values ");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push("(");
            tuple(self.separated(", "), item);
            self.push(")");
        }
        self
    }

    fn query(&self) -> sqlx::query::Query<'_, Db, <Db as sqlx::Database>::Arguments<'_>> {
        let mut q = sqlx::query(&self.sql);
        for a in &self.args {
            q = match a {
                Arg::Uuid(v) => q.bind(*v),
                Arg::Int(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_deref()),
                Arg::Bool(v) => q.bind(*v),
                Arg::Bytes(v) => q.bind(v.as_slice()),
            };
        }
        q
    }
}

/// Placeholders with a separator between them.
struct Separated<'a> {
    stmt: &'a mut Stmt,
    sep: &'static str,
    first: bool,
}

impl Separated<'_> {
    fn push_bind(&mut self, v: impl Into<Arg>) -> &mut Self {
        if !self.first {
            self.stmt.push(self.sep);
        }
        self.first = false;
        self.stmt.bind(v);
        self
    }
}

/// A row's columns by name, however the row was read.
pub trait Cols {
    fn uuid(&self, col: &str) -> StoreResult<Option<Uuid>>;
    fn text(&self, col: &str) -> StoreResult<Option<String>>;
    fn int(&self, col: &str) -> StoreResult<Option<i64>>;
    fn flag(&self, col: &str) -> StoreResult<bool>;
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>>;
}

fn null(col: &str) -> StoreError {
    StoreError::Corrupt(format!("the column {col} is null"))
}

impl Cols for DbRow {
    fn uuid(&self, col: &str) -> StoreResult<Option<Uuid>> {
        self.try_get(col).map_err(db_err)
    }
    fn text(&self, col: &str) -> StoreResult<Option<String>> {
        self.try_get(col).map_err(db_err)
    }
    fn int(&self, col: &str) -> StoreResult<Option<i64>> {
        self.try_get(col).map_err(db_err)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        self.try_get(col).map_err(db_err)
    }
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>> {
        self.try_get(col).map_err(db_err)
    }
}

/// A row from either kind of connection.
pub enum Row {
    Db(DbRow),
    Held(super::HeldRow),
}

impl Cols for Row {
    fn uuid(&self, col: &str) -> StoreResult<Option<Uuid>> {
        match self {
            Row::Db(r) => r.uuid(col),
            Row::Held(r) => r.uuid(col),
        }
    }
    fn text(&self, col: &str) -> StoreResult<Option<String>> {
        match self {
            Row::Db(r) => r.text(col),
            Row::Held(r) => r.text(col),
        }
    }
    fn int(&self, col: &str) -> StoreResult<Option<i64>> {
        match self {
            Row::Db(r) => r.int(col),
            Row::Held(r) => r.int(col),
        }
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        match self {
            Row::Db(r) => r.flag(col),
            Row::Held(r) => r.flag(col),
        }
    }
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>> {
        match self {
            Row::Db(r) => r.bytes(col),
            Row::Held(r) => r.bytes(col),
        }
    }
}

/// A column's value as a Rust type.
trait FromCol: Sized {
    fn from_col<R: Cols + ?Sized>(row: &R, col: &str) -> StoreResult<Self>;
}

macro_rules! from_col {
    ($($t:ty => $m:ident;)*) => {
        $(impl FromCol for Option<$t> {
            fn from_col<R: Cols + ?Sized>(row: &R, col: &str) -> StoreResult<Self> {
                row.$m(col)
            }
        }
        impl FromCol for $t {
            fn from_col<R: Cols + ?Sized>(row: &R, col: &str) -> StoreResult<Self> {
                row.$m(col)?.ok_or_else(|| null(col))
            }
        })*
    };
}

from_col! {
    Uuid => uuid;
    String => text;
    i64 => int;
}

impl FromCol for bool {
    fn from_col<R: Cols + ?Sized>(row: &R, col: &str) -> StoreResult<Self> {
        row.flag(col)
    }
}

impl FromCol for Vec<u8> {
    fn from_col<R: Cols + ?Sized>(row: &R, col: &str) -> StoreResult<Self> {
        row.bytes(col)
    }
}

fn get<T: FromCol, R: Cols + ?Sized>(row: &R, col: &str) -> StoreResult<T> {
    T::from_col(row, col)
}

/// Decodes one row.
pub type Decode<T> = fn(&dyn Cols) -> StoreResult<T>;

fn ts(v: i64) -> Timestamp {
    Timestamp(v)
}

fn ts_opt(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
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

fn environment_from<R: Cols + ?Sized>(row: &R) -> StoreResult<Environment> {
    Ok(Environment {
        id: EnvironmentId(get(row, "environment_id")?),
        slug: get(row, "slug")?,
        name: get(row, "name")?,
        created_at: ts(get(row, "created_at")?),
    })
}

fn org_from<R: Cols + ?Sized>(row: &R) -> StoreResult<Org> {
    let status: String = get(row, "status")?;
    Ok(Org {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        id: OrgId(get(row, "org_id")?),
        parent_id: get::<Option<Uuid>, _>(row, "parent_id")?.map(OrgId),
        name: get(row, "name")?,
        status: OrgStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("org status '{status}'")))?,
        own_default_roles: get(row, "own_default_roles")?,
        created_at: ts(get(row, "created_at")?),
        updated_at: ts(get(row, "updated_at")?),
    })
}

fn provider_from<R: Cols + ?Sized>(row: &R) -> StoreResult<Provider> {
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

fn token_from<R: Cols + ?Sized>(row: &R) -> StoreResult<ProviderToken> {
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

const USER_COLS: &str = user_cols!();

fn user_from<R: Cols + ?Sized>(row: &R) -> StoreResult<UserRecord> {
    // Read in the order of `user_cols!`, which finds each column at once on SQLite's inline
    // reader (`sqlite_fast.rs`).
    let id = UserId(get(row, "user_id")?);
    let environment_id = EnvironmentId(get(row, "environment_id")?);
    let provider_id = get::<Option<Uuid>, _>(row, "provider_id")?.map(ProviderId);
    let user_name = get(row, "user_name")?;
    let external_id = get(row, "external_id")?;
    let display_name = get(row, "display_name")?;
    let scim_active = get(row, "scim_active")?;
    let status: String = get(row, "status")?;
    let status = UserStatus::parse(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("user status '{status}'")))?;
    let org_id = OrgId(get(row, "org_id")?);
    let legal_hold = get(row, "legal_hold")?;
    let changed_outside = get(row, "changed_outside")?;
    // Kept as text: most reads only send it back (muster_scim::stored).
    let resource = Attributes::from_text(get::<String, _>(row, "resource")?)
        .map_err(|_| StoreError::Corrupt("a stored resource is not a JSON object".into()))?;
    Ok(UserRecord {
        environment_id,
        id,
        provider_id,
        user_name,
        external_id,
        display_name,
        scim_active,
        status,
        org_id,
        legal_hold,
        changed_outside,
        resource,
        version: get(row, "version")?,
        created_at: ts(get(row, "created_at")?),
        updated_at: ts(get(row, "updated_at")?),
        removed_at: ts_opt(get(row, "removed_at")?),
        deactivate_at: ts_opt(get(row, "deactivate_at")?),
    })
}

const GROUP_COLS: &str =
    "group_id, environment_id, provider_id, display_name, external_id, resource, version, created_at, updated_at";

fn group_from<R: Cols + ?Sized>(row: &R) -> StoreResult<GroupRecord> {
    let resource: String = get(row, "resource")?;
    Ok(GroupRecord {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        id: GroupId(get(row, "group_id")?),
        provider_id: ProviderId(get(row, "provider_id")?),
        display_name: get(row, "display_name")?,
        external_id: get(row, "external_id")?,
        resource: json_map(&resource)?,
        version: get(row, "version")?,
        created_at: ts(get(row, "created_at")?),
        updated_at: ts(get(row, "updated_at")?),
    })
}

#[async_trait]
impl Tx for DbTx {
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        match *self {
            DbTx::Tx(w) => {
                let Writing {
                    mut tx,
                    started,
                    log,
                    events,
                    sequencer,
                } = *w;
                DbTx::write_outbox(tx.conn()?, &log, &events).await?;
                let at = std::time::Instant::now();
                let done = tx.commit().await.map_err(db_err);
                crate::stats::COMMIT.observe(at.elapsed());
                if done.is_ok() {
                    crate::stats::COMMITTED_TRANSACTIONS
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if !events.is_empty() {
                        sequencer.wake();
                        crate::signal::EVENTS_COMMITTED.notify_one();
                    }
                }
                crate::stats::WRITE_TX.observe(started.elapsed());
                done
            }
            DbTx::Conn(_) => Ok(()),
            DbTx::Held(h) => h.commit().await,
        }
    }
}
