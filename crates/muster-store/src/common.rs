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
use muster_core::synclog::event::Event;
use serde_json::{Map, Value};
use sqlx::Row as _;
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
    /// The sqlx connection, for a statement that runs through sqlx.
    fn c(&mut self) -> StoreResult<&mut DbConn> {
        match self {
            DbTx::Tx(t, _) => Ok(t),
            DbTx::Conn(c) => Ok(c),
            DbTx::Held(h) => h.conn().ok_or_else(|| {
                StoreError::Database(Box::new(std::io::Error::other(
                    "this connection runs its statements on the caller's thread",
                )))
            }),
        }
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
        let done = stmt.query().execute(self.c()?).await.map_err(db_err)?;
        Ok(done.rows_affected())
    }

    /// Runs a statement; its rows.
    async fn rows(&mut self, stmt: &Stmt) -> StoreResult<Vec<Row>> {
        if let Some(fast) = self.inline(false) {
            let rows = fast.rows(stmt, None);
            tokio::task::consume_budget().await;
            return Ok(rows?.into_iter().map(Row::Held).collect());
        }
        let rows = stmt.query().fetch_all(self.c()?).await.map_err(db_err)?;
        Ok(rows.into_iter().map(Row::Db).collect())
    }

    /// Runs a statement; its first row, if any.
    async fn row(&mut self, stmt: &Stmt) -> StoreResult<Option<Row>> {
        if let Some(fast) = self.inline(false) {
            let row = fast.rows(stmt, Some(1));
            tokio::task::consume_budget().await;
            return Ok(row?.pop().map(Row::Held));
        }
        let row = stmt
            .query()
            .fetch_optional(self.c()?)
            .await
            .map_err(db_err)?;
        Ok(row.map(Row::Db))
    }

    /// Runs a statement that returns a row.
    async fn one(&mut self, stmt: &Stmt) -> StoreResult<Row> {
        self.row(stmt).await?.ok_or_else(|| {
            StoreError::Database(Box::new(std::io::Error::other(
                "a statement that returns a row returned none",
            )))
        })
    }

    /// Runs a statement and decodes its rows.
    async fn fetch<T: Send>(&mut self, stmt: &Stmt, decode: Decode<T>) -> StoreResult<Vec<T>> {
        if let Some(fast) = self.inline(false) {
            let found = fast.lookup(stmt, decode);
            tokio::task::consume_budget().await;
            return found;
        }
        let rows = stmt.query().fetch_all(self.c()?).await.map_err(db_err)?;
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

    fn push(&mut self, sql: impl std::fmt::Display) -> &mut Self {
        use std::fmt::Write;
        let _ = write!(self.sql, "{sql}");
        self
    }

    /// Appends the next placeholder and its value.
    fn bind(&mut self, v: impl Into<Arg>) -> &mut Self {
        self.args.push(v.into());
        let n = self.args.len();
        self.push(format_args!("${n}"))
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

const USER_COLS: &str = "user_id, environment_id, provider_id, user_name, external_id, display_name, scim_active, status, \
     org_id, legal_hold, changed_outside, resource, version, created_at, updated_at, removed_at, deactivate_at";

fn user_from<R: Cols + ?Sized>(row: &R) -> StoreResult<UserRecord> {
    let status: String = get(row, "status")?;
    let resource: String = get(row, "resource")?;
    Ok(UserRecord {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        id: UserId(get(row, "user_id")?),
        provider_id: get::<Option<Uuid>, _>(row, "provider_id")?.map(ProviderId),
        user_name: get(row, "user_name")?,
        external_id: get(row, "external_id")?,
        display_name: get(row, "display_name")?,
        scim_active: get(row, "scim_active")?,
        status: UserStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("user status '{status}'")))?,
        org_id: OrgId(get(row, "org_id")?),
        legal_hold: get(row, "legal_hold")?,
        changed_outside: get(row, "changed_outside")?,
        resource: json_map(&resource)?,
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
                q.push(format!(" and {col} >= ")).bind(*f);
            }
            if let Some(u) = until {
                q.push(format!(" and {col} < ")).bind(*u);
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

impl Window {
    /// A page in the given order.
    fn page(order: Order, page: Page) -> Window {
        Window {
            after: None,
            order,
            offset: page.offset,
            limit: page.limit,
        }
    }

    /// The next `limit` rows in creation order after a cursor (a scan).
    fn scan(after: Option<Cursor>, limit: u64) -> Window {
        Window {
            after,
            order: Order::CREATED,
            offset: 0,
            limit,
        }
    }
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
                Cond::IdIn(self.lookup(&q, |r| get(r, "user_id")).await?)
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
            self.exec(&Stmt::new("delete from user_email where user_id = $1").arg(u.id.0))
                .await?;
        }
        let keys = u.email_keys();
        if keys.is_empty() {
            return Ok(());
        }
        let mut qb = Stmt::new("insert into user_email (user_id, environment_id, value_key) ");
        qb.push_values(keys.iter().take(IN_CHUNK), |mut b, k| {
            b.push_bind(u.id.0)
                .push_bind(u.environment_id.0)
                .push_bind(k.clone());
        });
        self.exec(&qb).await?;
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
            q.push(format!(
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
                .push(format!(" or {} > ", l.id_col))
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
            true => self.lookup(&q, |r| get::<i64, _>(r, "n")).await?,
            false => self.fetch(&q, |r| get::<i64, _>(r, "n")).await?,
        };
        Ok(counted.first().copied().unwrap_or(0).max(0) as u64)
    }
}

#[async_trait]
impl EnvironmentStore for DbTx {
    async fn find_environment(&mut self, slug: &str) -> StoreResult<Option<Environment>> {
        let row = self.row(&Stmt::new("select environment_id, slug, name, created_at from environment where slug = $1").arg(slug)).await?;
        row.as_ref().map(environment_from).transpose()
    }

    async fn insert_environment(&mut self, env: &Environment) -> StoreResult<()> {
        self.exec(&Stmt::new("insert into environment (environment_id, slug, name, created_at) values ($1, $2, $3, $4)").arg(env.id.0).arg(&env.slug).arg(&env.name).arg(env.created_at.0)).await?;
        Ok(())
    }
}

const ORG_COLS: &str =
    "org_id, environment_id, parent_id, name, status, own_default_roles, created_at, updated_at";

#[async_trait]
impl OrgStore for DbTx {
    async fn find_root_org(&mut self, env: EnvironmentId) -> StoreResult<Option<Org>> {
        let row = self
            .row(
                &Stmt::new(format!(
                    "select {ORG_COLS} from org where environment_id = $1 and parent_id is null"
                ))
                .arg(env.0),
            )
            .await?;
        row.as_ref().map(org_from).transpose()
    }

    async fn find_org(&mut self, env: EnvironmentId, id: OrgId) -> StoreResult<Option<Org>> {
        let row = self
            .row(
                &Stmt::new(format!(
                    "select {ORG_COLS} from org where environment_id = $1 and org_id = $2"
                ))
                .arg(env.0)
                .arg(id.0),
            )
            .await?;
        row.as_ref().map(org_from).transpose()
    }

    async fn insert_org(&mut self, org: &Org) -> StoreResult<()> {
        self.exec(&Stmt::new("insert into org (org_id, environment_id, parent_id, name, name_key, status, own_default_roles, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)").arg(org.id.0).arg(org.environment_id.0).arg(org.parent_id.map(|p| p.0)).arg(&org.name).arg(key(&org.name)).arg(org.status.as_str()).arg(org.own_default_roles).arg(org.created_at.0).arg(org.updated_at.0)).await?;
        Ok(())
    }

    async fn update_org(&mut self, org: &Org) -> StoreResult<()> {
        self.exec(&Stmt::new("update org set parent_id = $1, name = $2, name_key = $3, status = $4, own_default_roles = $5, updated_at = $6 \
             where environment_id = $7 and org_id = $8").arg(org.parent_id.map(|p| p.0)).arg(&org.name).arg(key(&org.name)).arg(org.status.as_str()).arg(org.own_default_roles).arg(org.updated_at.0).arg(org.environment_id.0).arg(org.id.0)).await?;
        Ok(())
    }

    async fn list_orgs(&mut self, env: EnvironmentId) -> StoreResult<Vec<Org>> {
        let rows = self
            .rows(
                &Stmt::new(format!(
            "select {ORG_COLS} from org where environment_id = $1 order by name_key, org_id"
        ))
                .arg(env.0),
            )
            .await?;
        rows.iter().map(org_from).collect()
    }

    async fn ensure_child_org(&mut self, org: &Org) -> StoreResult<(Org, bool)> {
        let parent = org.parent_id.ok_or_else(|| {
            StoreError::Corrupt("an organization made by mapping needs a parent".into())
        })?;
        // `on conflict do nothing`: a concurrent insert of the same name (PostgreSQL waits for
        // it to commit) leaves this one a no-op; the select then reads the winner.
        let inserted = self.exec(&Stmt::new("insert into org (org_id, environment_id, parent_id, name, name_key, status, own_default_roles, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict do nothing").arg(org.id.0).arg(org.environment_id.0).arg(parent.0).arg(&org.name).arg(key(&org.name)).arg(org.status.as_str()).arg(org.own_default_roles).arg(org.created_at.0).arg(org.updated_at.0)).await?
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
        let row = self.row(&Stmt::new(format!(
            "select {ORG_COLS} from org where environment_id = $1 and parent_id = $2 and name_key = $3"
        )).arg(env.0).arg(parent.0).arg(name_key)).await?;
        row.as_ref().map(org_from).transpose()
    }

    async fn org_default_roles(&mut self, env: EnvironmentId) -> StoreResult<Vec<(OrgId, RoleId)>> {
        let rows = self
            .rows(
                &Stmt::new(
                    "select org_id, role_id from org_default_role where environment_id = $1",
                )
                .arg(env.0),
            )
            .await?;
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
        self.exec(
            &Stmt::new("delete from org_default_role where environment_id = $1 and org_id = $2")
                .arg(env.0)
                .arg(org.0),
        )
        .await?;
        if roles.is_empty() {
            return Ok(());
        }
        let mut qb = Stmt::new("insert into org_default_role (org_id, role_id, environment_id) ");
        qb.push_values(roles, |mut b, r| {
            b.push_bind(org.0).push_bind(r.0).push_bind(env.0);
        });
        qb.push(" on conflict do nothing");
        self.exec(&qb).await?;
        Ok(())
    }

    async fn count_org_users(&mut self, env: EnvironmentId, org: OrgId) -> StoreResult<u64> {
        let row = self.one(&Stmt::new("select count(*) as n from user_account where environment_id = $1 and org_id = $2").arg(env.0).arg(org.0)).await?;
        Ok(get::<i64, _>(&row, "n")?.max(0) as u64)
    }
}

fn role_from<R: Cols + ?Sized>(row: &R) -> StoreResult<Role> {
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
        self.exec(&Stmt::new("insert into role (role_id, environment_id, name, name_key, description, builtin, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7)").arg(role.id.0).arg(role.environment_id.0).arg(&role.name).arg(key(&role.name)).arg(&role.description).arg(role.builtin).arg(role.created_at.0)).await?;
        Ok(())
    }

    async fn list_roles(&mut self, env: EnvironmentId) -> StoreResult<Vec<Role>> {
        let rows = self.rows(&Stmt::new("select role_id, environment_id, name, description, builtin, created_at from role \
             where environment_id = $1 order by name_key").arg(env.0)).await?;
        rows.iter().map(role_from).collect()
    }

    async fn delete_role(&mut self, env: EnvironmentId, id: RoleId) -> StoreResult<bool> {
        let done = self
            .exec(
                &Stmt::new("delete from role where environment_id = $1 and role_id = $2")
                    .arg(env.0)
                    .arg(id.0),
            )
            .await?;
        Ok(done == 1)
    }

    async fn role_usage(&mut self, env: EnvironmentId, id: RoleId) -> StoreResult<(u64, u64)> {
        let row = self.one(&Stmt::new("select (select count(*) from user_role where environment_id = $1 and role_id = $2) as users, \
             (select count(*) from org_default_role where environment_id = $1 and role_id = $2) as orgs").arg(env.0).arg(id.0)).await?;
        Ok((
            get::<i64, _>(&row, "users")?.max(0) as u64,
            get::<i64, _>(&row, "orgs")?.max(0) as u64,
        ))
    }

    async fn user_roles(
        &mut self,
        env: EnvironmentId,
        users: &[UserId],
    ) -> StoreResult<Vec<(UserId, RoleId, RoleSource)>> {
        let mut out = Vec::new();
        for chunk in users.chunks(IN_CHUNK) {
            let mut qb =
                Stmt::new("select user_id, role_id, source from user_role where environment_id = ");
            qb.push_bind(env.0).push(" and user_id in (");
            let mut sep = qb.separated(", ");
            for u in chunk {
                sep.push_bind(u.0);
            }
            qb.push(")");
            for row in self.rows(&qb).await? {
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
        self.exec(
            &Stmt::new("delete from user_role where environment_id = $1 and user_id = $2")
                .arg(env.0)
                .arg(user.0),
        )
        .await?;
        if roles.is_empty() {
            return Ok(());
        }
        let mut qb = Stmt::new("insert into user_role (user_id, role_id, environment_id, source) ");
        qb.push_values(roles, |mut b, r| {
            b.push_bind(user.0)
                .push_bind(r.0)
                .push_bind(env.0)
                .push_bind(source.as_str());
        });
        qb.push(" on conflict do nothing");
        self.exec(&qb).await?;
        Ok(())
    }

    async fn set_users_roles(
        &mut self,
        env: EnvironmentId,
        sets: &[(UserId, Vec<RoleId>)],
        source: RoleSource,
    ) -> StoreResult<()> {
        for chunk in sets.chunks(IN_CHUNK) {
            let mut q = Stmt::new("delete from user_role where environment_id = ");
            q.bind(env.0).push(" and user_id in (");
            let mut ids = q.separated(", ");
            for (u, _) in chunk {
                ids.push_bind(u.0);
            }
            q.push(")");
            self.exec(&q).await?;
        }
        let rows: Vec<(UserId, RoleId)> = sets
            .iter()
            .flat_map(|(u, roles)| roles.iter().map(move |r| (*u, *r)))
            .collect();
        for chunk in rows.chunks(IN_CHUNK) {
            let mut q =
                Stmt::new("insert into user_role (user_id, role_id, environment_id, source) ");
            q.push_values(chunk, |mut b, (u, r)| {
                b.push_bind(u.0)
                    .push_bind(r.0)
                    .push_bind(env.0)
                    .push_bind(source.as_str());
            });
            q.push(" on conflict do nothing");
            self.exec(&q).await?;
        }
        Ok(())
    }
}

const ADMIN_TOKEN_COLS: &str = "admin_token_id, environment_id, label, prefix, created_at, expires_at, revoked_at, last_used_at";

fn admin_token_from<R: Cols + ?Sized>(row: &R) -> StoreResult<AdminToken> {
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
        self.exec(&Stmt::new("insert into admin_token (admin_token_id, environment_id, label, prefix, token_hash, created_at, expires_at, \
             revoked_at, last_used_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)").arg(t.id.0).arg(t.environment_id.0).arg(&t.label).arg(&t.prefix).arg(hash.to_vec()).arg(t.created_at.0).arg(t.expires_at.map(|x| x.0)).arg(t.revoked_at.map(|x| x.0)).arg(t.last_used_at.map(|x| x.0))).await?;
        Ok(())
    }

    async fn find_admin_token_by_hash(
        &mut self,
        hash: &[u8],
    ) -> StoreResult<Option<(AdminToken, Vec<u8>)>> {
        let row = self
            .row(
                &Stmt::new(format!(
                    "select {ADMIN_TOKEN_COLS}, token_hash from admin_token where token_hash = $1"
                ))
                .arg(hash.to_vec()),
            )
            .await?;
        match row {
            Some(r) => Ok(Some((admin_token_from(&r)?, get(&r, "token_hash")?))),
            None => Ok(None),
        }
    }

    async fn list_admin_tokens(&mut self, env: EnvironmentId) -> StoreResult<Vec<AdminToken>> {
        let rows = self.rows(&Stmt::new(format!(
            "select {ADMIN_TOKEN_COLS} from admin_token where environment_id = $1 order by created_at desc, admin_token_id desc"
        )).arg(env.0)).await?;
        rows.iter().map(admin_token_from).collect()
    }

    async fn revoke_admin_token(
        &mut self,
        env: EnvironmentId,
        id: AdminTokenId,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let done = self.exec(&Stmt::new("update admin_token set revoked_at = $1 where environment_id = $2 and admin_token_id = $3 and revoked_at is null").arg(at.0).arg(env.0).arg(id.0)).await?;
        Ok(done == 1)
    }

    async fn touch_admin_token(
        &mut self,
        env: EnvironmentId,
        id: AdminTokenId,
        at: Timestamp,
    ) -> StoreResult<()> {
        self.exec(&Stmt::new("update admin_token set last_used_at = $1 where environment_id = $2 and admin_token_id = $3").arg(at.0).arg(env.0).arg(id.0)).await?;
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
        self.exec(&Stmt::new("insert into provider (provider_id, environment_id, name, name_key, deactivation_delay_secs, created_at, \
             updated_at, last_sync_at) values ($1, $2, $3, $4, $5, $6, $7, $8)").arg(p.id.0).arg(p.environment_id.0).arg(&p.name).arg(key(&p.name)).arg(p.deactivation_delay_secs).arg(p.created_at.0).arg(p.updated_at.0).arg(p.last_sync_at.map(|t| t.0))).await?;
        Ok(())
    }

    async fn find_provider(
        &mut self,
        env: EnvironmentId,
        id: ProviderId,
    ) -> StoreResult<Option<Provider>> {
        let row = self
            .row(
                &Stmt::new(format!(
            "select {PROVIDER_COLS} from provider where environment_id = $1 and provider_id = $2"
        ))
                .arg(env.0)
                .arg(id.0),
            )
            .await?;
        row.as_ref().map(provider_from).transpose()
    }

    async fn locate_provider(&mut self, id: ProviderId) -> StoreResult<Option<Provider>> {
        let row = self
            .row(
                &Stmt::new(format!(
                    "select {PROVIDER_COLS} from provider where provider_id = $1"
                ))
                .arg(id.0),
            )
            .await?;
        row.as_ref().map(provider_from).transpose()
    }

    async fn list_providers(&mut self, env: EnvironmentId) -> StoreResult<Vec<Provider>> {
        let rows = self.rows(&Stmt::new(format!(
            "select {PROVIDER_COLS} from provider where environment_id = $1 order by created_at, provider_id"
        )).arg(env.0)).await?;
        rows.iter().map(provider_from).collect()
    }

    async fn update_provider(&mut self, p: &Provider) -> StoreResult<()> {
        self.exec(&Stmt::new("update provider set name = $1, name_key = $2, deactivation_delay_secs = $3, updated_at = $4 \
             where environment_id = $5 and provider_id = $6").arg(&p.name).arg(key(&p.name)).arg(p.deactivation_delay_secs).arg(p.updated_at.0).arg(p.environment_id.0).arg(p.id.0)).await?;
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
        self.exec(&Stmt::new("update provider set last_sync_at = $1 where environment_id = $2 and provider_id = $3 \
             and (last_sync_at is null or last_sync_at < $4)").arg(at.0).arg(env.0).arg(id.0).arg(at.0 - 5_000_000)).await?;
        Ok(())
    }

    async fn insert_token(&mut self, t: &ProviderToken, hash: &[u8]) -> StoreResult<()> {
        self.exec(&Stmt::new("insert into provider_token (provider_token_id, environment_id, provider_id, label, prefix, token_hash, \
             created_at, expires_at, revoked_at, last_used_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)").arg(t.id.0).arg(t.environment_id.0).arg(t.provider_id.0).arg(&t.label).arg(&t.prefix).arg(hash.to_vec()).arg(t.created_at.0).arg(t.expires_at.map(|x| x.0)).arg(t.revoked_at.map(|x| x.0)).arg(t.last_used_at.map(|x| x.0))).await?;
        Ok(())
    }

    async fn find_token_by_hash(
        &mut self,
        hash: &[u8],
    ) -> StoreResult<Option<(ProviderToken, Vec<u8>)>> {
        let row = self
            .row(
                &Stmt::new(format!(
                    "select {TOKEN_COLS}, token_hash from provider_token where token_hash = $1"
                ))
                .arg(hash.to_vec()),
            )
            .await?;
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
        let rows = self.rows(&Stmt::new(format!(
            "select {TOKEN_COLS} from provider_token where environment_id = $1 and provider_id = $2 \
             order by created_at desc, provider_token_id desc"
        )).arg(env.0).arg(provider.0)).await?;
        rows.iter().map(token_from).collect()
    }

    async fn revoke_token(
        &mut self,
        env: EnvironmentId,
        id: TokenId,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let done = self
            .exec(
                &Stmt::new(
                    "update provider_token set revoked_at = $1 \
             where environment_id = $2 and provider_token_id = $3 and revoked_at is null",
                )
                .arg(at.0)
                .arg(env.0)
                .arg(id.0),
            )
            .await?;
        Ok(done == 1)
    }

    async fn touch_token(
        &mut self,
        env: EnvironmentId,
        id: TokenId,
        at: Timestamp,
    ) -> StoreResult<()> {
        self.exec(&Stmt::new("update provider_token set last_used_at = $1 where environment_id = $2 and provider_token_id = $3").arg(at.0).arg(env.0).arg(id.0)).await?;
        Ok(())
    }
}

#[async_trait]
impl UserStore for DbTx {
    async fn insert_user(&mut self, u: &UserRecord) -> StoreResult<()> {
        self.exec(&Stmt::new("insert into user_account (user_id, environment_id, provider_id, user_name, user_name_key, external_id, \
             display_name, scim_active, status, org_id, legal_hold, changed_outside, resource, version, created_at, \
             updated_at, removed_at, deactivate_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)").arg(u.id.0).arg(u.environment_id.0).arg(u.provider_id.map(|p| p.0)).arg(&u.user_name).arg(key(&u.user_name)).arg(&u.external_id).arg(&u.display_name).arg(u.scim_active).arg(u.status.as_str()).arg(u.org_id.0).arg(u.legal_hold).arg(u.changed_outside).arg(to_text(&u.resource)).arg(u.version).arg(u.created_at.0).arg(u.updated_at.0).arg(u.removed_at.map(|t| t.0)).arg(u.deactivate_at.map(|t| t.0))).await?;
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
        Ok(self.lookup(&q, |r| user_from(r)).await?.into_iter().next())
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
        Ok(self.lookup(&q, |r| user_from(r)).await?.into_iter().next())
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
        Ok(self.lookup(&q, |r| user_from(r)).await?.into_iter().next())
    }

    async fn update_user(&mut self, u: &UserRecord, expected_version: i64) -> StoreResult<bool> {
        let done = self.exec(&Stmt::new("update user_account set provider_id = $1, user_name = $2, user_name_key = $3, external_id = $4, \
             display_name = $5, scim_active = $6, status = $7, org_id = $8, legal_hold = $9, changed_outside = $10, \
             resource = $11, version = $12, updated_at = $13, removed_at = $14, deactivate_at = $15 \
             where environment_id = $16 and user_id = $17 and version = $18").arg(u.provider_id.map(|p| p.0)).arg(&u.user_name).arg(key(&u.user_name)).arg(&u.external_id).arg(&u.display_name).arg(u.scim_active).arg(u.status.as_str()).arg(u.org_id.0).arg(u.legal_hold).arg(u.changed_outside).arg(to_text(&u.resource)).arg(u.version).arg(u.updated_at.0).arg(u.removed_at.map(|t| t.0)).arg(u.deactivate_at.map(|t| t.0)).arg(u.environment_id.0).arg(u.id.0).arg(expected_version)).await?;
        if done != 1 {
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
            Window::page(order, page),
            |r| user_from(r),
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
            Window::scan(after, limit),
            |r| user_from(r),
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
        let mut qb = Stmt::new(format!(
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
        let rows = self.rows(&qb).await?;
        rows.iter().map(user_from).collect()
    }

    async fn due_deactivations(
        &mut self,
        now: Timestamp,
        limit: u64,
    ) -> StoreResult<Vec<UserRecord>> {
        let rows = self.rows(&Stmt::new(format!(
            "select {USER_COLS} from user_account where deactivate_at is not null and deactivate_at <= $1 \
             order by deactivate_at limit $2"
        )).arg(now.0).arg(limit as i64)).await?;
        rows.iter().map(user_from).collect()
    }

    async fn deactivation_backlog(
        &mut self,
        now: Timestamp,
    ) -> StoreResult<(u64, u64, Option<Timestamp>)> {
        let row = self
            .one(
                &Stmt::new(
                    "select count(*) as pending, \
             coalesce(sum(case when deactivate_at <= $1 then 1 else 0 end), 0) as overdue, \
             min(deactivate_at) as oldest from user_account where deactivate_at is not null",
                )
                .arg(now.0),
            )
            .await?;
        Ok((
            get::<i64, _>(&row, "pending")?.max(0) as u64,
            get::<i64, _>(&row, "overdue")?.max(0) as u64,
            get::<Option<i64>, _>(&row, "oldest")?.map(Timestamp),
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
        let done = self
            .exec(
                &Stmt::new(
                    "update user_account set org_id = $1, version = version + 1, updated_at = $2 \
             where environment_id = $3 and user_id = $4 and version = $5",
                )
                .arg(org.0)
                .arg(at.0)
                .arg(env.0)
                .arg(id.0)
                .arg(expected_version),
            )
            .await?;
        Ok(done == 1)
    }

    async fn move_users(
        &mut self,
        env: EnvironmentId,
        moves: &[(UserId, OrgId, i64)],
        at: Timestamp,
    ) -> StoreResult<Vec<UserId>> {
        let mut moved = Vec::with_capacity(moves.len());
        // One update joined to a list of (user, organization, version): `column1`… are the
        // names both databases give a `values` list's columns.
        for chunk in moves.chunks(IN_CHUNK / 2) {
            let mut q = Stmt::new(
                "update user_account set org_id = v.column2, version = version + 1, updated_at = ",
            );
            q.bind(at.0).push(" from (");
            q.push_values(chunk, |mut b, (u, org, version)| {
                b.push_bind(u.0).push_bind(org.0).push_bind(*version);
            });
            q.push(") as v where user_account.environment_id = ")
                .bind(env.0)
                .push(" and user_account.user_id = v.column1 and user_account.version = v.column3 returning user_id");
            for row in self.rows(&q).await? {
                moved.push(UserId(get(&row, "user_id")?));
            }
        }
        Ok(moved)
    }

    async fn users_by_ids(
        &mut self,
        env: EnvironmentId,
        ids: &[UserId],
    ) -> StoreResult<Vec<UserRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let mut qb = Stmt::new(format!(
                "select {USER_COLS} from user_account where environment_id = "
            ));
            qb.push_bind(env.0).push(" and user_id in (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id.0);
            }
            qb.push(")");
            for row in self.rows(&qb).await? {
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
            let mut qb = Stmt::new(
                "select user_id, environment_id, provider_id, removed_at from user_account where user_id in (",
            );
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id.0);
            }
            qb.push(")");
            for row in self.rows(&qb).await? {
                let in_env = get::<Uuid, _>(&row, "environment_id")? == env.0;
                let mine = get::<Option<Uuid>, _>(&row, "provider_id")? == Some(provider.0);
                let live = get::<Option<i64>, _>(&row, "removed_at")?.is_none();
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
        self.exec(&Stmt::new("insert into scim_group (group_id, environment_id, provider_id, display_name, display_name_key, external_id, \
             resource, version, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)").arg(g.id.0).arg(g.environment_id.0).arg(g.provider_id.0).arg(&g.display_name).arg(key(&g.display_name)).arg(&g.external_id).arg(to_text(&g.resource)).arg(g.version).arg(g.created_at.0).arg(g.updated_at.0)).await?;
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
        Ok(self.lookup(&q, |r| group_from(r)).await?.into_iter().next())
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
        Ok(self.lookup(&q, |r| group_from(r)).await?.into_iter().next())
    }

    async fn update_group(&mut self, g: &GroupRecord, expected_version: i64) -> StoreResult<bool> {
        let done = self.exec(&Stmt::new("update scim_group set display_name = $1, display_name_key = $2, external_id = $3, resource = $4, \
             version = $5, updated_at = $6 where environment_id = $7 and group_id = $8 and version = $9").arg(&g.display_name).arg(key(&g.display_name)).arg(&g.external_id).arg(to_text(&g.resource)).arg(g.version).arg(g.updated_at.0).arg(g.environment_id.0).arg(g.id.0).arg(expected_version)).await?;
        Ok(done == 1)
    }

    async fn bump_group_version(
        &mut self,
        env: EnvironmentId,
        id: GroupId,
        at: Timestamp,
        expected: Option<i64>,
    ) -> StoreResult<Option<i64>> {
        let mut qb = Stmt::new("update scim_group set version = version + 1, updated_at = ");
        qb.push_bind(at.0)
            .push(" where environment_id = ")
            .push_bind(env.0)
            .push(" and group_id = ")
            .push_bind(id.0);
        if let Some(v) = expected {
            qb.push(" and version = ").push_bind(v);
        }
        qb.push(" returning version");
        let row = self.row(&qb).await?;
        row.as_ref()
            .map(|r| get::<i64, _>(r, "version"))
            .transpose()
    }

    async fn member_count_capped(
        &mut self,
        env: EnvironmentId,
        group: GroupId,
        cap: u64,
    ) -> StoreResult<u64> {
        let row = self.one(&Stmt::new("select count(*) as n from (select 1 from group_member where environment_id = $1 and group_id = $2 limit $3) capped").arg(env.0).arg(group.0).arg(cap as i64)).await?;
        let n: i64 = get(&row, "n")?;
        Ok(n.max(0) as u64)
    }

    async fn group_summaries(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<Vec<(GroupId, String, u64)>> {
        let rows = self
            .rows(
                &Stmt::new(
                    "select g.group_id, g.display_name, \
             (select count(*) from group_member m where m.group_id = g.group_id) as n \
             from scim_group g where g.environment_id = $1 and g.provider_id = $2",
                )
                .arg(env.0)
                .arg(provider.0),
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    GroupId(get(r, "group_id")?),
                    get(r, "display_name")?,
                    get::<i64, _>(r, "n")?.max(0) as u64,
                ))
            })
            .collect()
    }

    async fn delete_group(&mut self, env: EnvironmentId, id: GroupId) -> StoreResult<bool> {
        // A giant group's memberships go 10,000 at a time, letting other requests run between
        // (on SQLite the writer's statements run on a request's thread).
        loop {
            let gone = self
                .exec(
                    &Stmt::new(
                        "delete from group_member where environment_id = $1 and group_id = $2 and user_id in \
                         (select user_id from group_member where environment_id = $1 and group_id = $2 limit 10000)",
                    )
                    .arg(env.0)
                    .arg(id.0),
                )
                .await?;
            if gone < 10_000 {
                break;
            }
            tokio::task::yield_now().await;
        }
        for table in ["role_mapping", "group_org_mapping_group"] {
            self.exec(
                &Stmt::new(format!(
                    "delete from {table} where environment_id = $1 and group_id = $2"
                ))
                .arg(env.0)
                .arg(id.0),
            )
            .await?;
        }
        // An organization mapping entry left without groups maps nothing: it goes too.
        self.exec(&Stmt::new("delete from group_org_mapping where environment_id = $1 and not exists \
             (select 1 from group_org_mapping_group g where g.group_org_mapping_id = group_org_mapping.group_org_mapping_id)").arg(env.0)).await?;
        let done = self
            .exec(
                &Stmt::new("delete from scim_group where environment_id = $1 and group_id = $2")
                    .arg(env.0)
                    .arg(id.0),
            )
            .await?;
        Ok(done == 1)
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
            Window::page(order, page),
            |r| group_from(r),
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
            Window::scan(after, limit),
            |r| group_from(r),
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
            let mut qb = Stmt::new(
                "insert into group_member (group_id, user_id, environment_id, created_at) ",
            );
            qb.push_values(chunk, |mut b, u| {
                b.push_bind(group.0)
                    .push_bind(u.0)
                    .push_bind(env.0)
                    .push_bind(at.0);
            });
            qb.push(" on conflict do nothing returning user_id");
            for row in self.rows(&qb).await? {
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
            let mut qb = Stmt::new("delete from group_member where environment_id = ");
            qb.push_bind(env.0)
                .push(" and group_id = ")
                .push_bind(group.0)
                .push(" and user_id in (");
            let mut sep = qb.separated(", ");
            for u in chunk {
                sep.push_bind(u.0);
            }
            qb.push(") returning user_id");
            for row in self.rows(&qb).await? {
                removed.push(UserId(get(&row, "user_id")?));
            }
        }
        Ok(removed)
    }

    async fn member_ids(&mut self, env: EnvironmentId, group: GroupId) -> StoreResult<Vec<UserId>> {
        let rows = self.rows(&Stmt::new("select user_id from group_member where environment_id = $1 and group_id = $2 order by user_id").arg(env.0).arg(group.0)).await?;
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
        let rows = self
            .rows(
                &Stmt::new(
                    "select user_id from group_member where environment_id = $1 and group_id = $2 \
             and user_id > $3 order by user_id limit $4",
                )
                .arg(env.0)
                .arg(group.0)
                .arg(after.map(|u| u.0).unwrap_or(Uuid::nil()))
                .arg(limit.min(i64::MAX as u64) as i64),
            )
            .await?;
        rows.iter()
            .map(|r| Ok(UserId(get(r, "user_id")?)))
            .collect()
    }

    async fn members(&mut self, env: EnvironmentId, group: GroupId) -> StoreResult<Vec<MemberRef>> {
        let rows = self.rows(&Stmt::new("select m.user_id, coalesce(u.display_name, u.user_name) as display from group_member m \
             join user_account u on u.user_id = m.user_id \
             where m.environment_id = $1 and m.group_id = $2 order by m.user_id").arg(env.0).arg(group.0)).await?;
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
                    Ok((
                        get::<Uuid, _>(r, "group_id")?,
                        get::<Option<String>, _>(r, "display_name")?,
                    ))
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
            let mut qb = Stmt::new("select user_id, group_id from group_member where user_id in (");
            let mut sep = qb.separated(", ");
            for u in chunk {
                sep.push_bind(u.0);
            }
            qb.push(") and environment_id = ").push_bind(env.0);
            for row in self.rows(&qb).await? {
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
            let mut qb =
                Stmt::new("select group_id, display_name from scim_group where group_id in (");
            let mut sep = qb.separated(", ");
            for g in chunk {
                sep.push_bind(g.0);
            }
            qb.push(") and environment_id = ").push_bind(env.0);
            for row in self.rows(&qb).await? {
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

fn log_from<R: Cols + ?Sized>(row: &R) -> StoreResult<SyncLogEntry> {
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
    let action: String = get(row, "action")?;
    Ok(SyncLogEntry {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        at: ts(get(row, "at")?),
        provider_id: get::<Option<Uuid>, _>(row, "provider_id")?.map(ProviderId),
        actor,
        action: Event::parse(&action)
            .ok_or_else(|| StoreError::Corrupt(format!("sync log action '{action}'")))?,
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
            let mut qb = Stmt::new(
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
                    .push_bind(e.action.as_str().to_string())
                    .push_bind(e.subject_kind.clone())
                    .push_bind(e.subject_id.clone())
                    .push_bind(e.subject_name.clone())
                    .push_bind(e.details.to_string())
                    .push_bind(e.outcome.as_str())
                    .push_bind(e.message.clone());
            });
            self.exec(&qb).await?;
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
        let mut qb = Stmt::new(format!(
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
        let rows = self.rows(&qb).await?;
        rows.iter()
            .map(|r| Ok((get::<i64, _>(r, "sync_log_id")?, log_from(r)?)))
            .collect()
    }

    async fn count_log_errors(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        since: Timestamp,
    ) -> StoreResult<u64> {
        let row = self.one(&Stmt::new("select count(*) as n from sync_log where environment_id = $1 and provider_id = $2 and outcome = 'error' and at >= $3").arg(env.0).arg(provider.0).arg(since.0)).await?;
        Ok(get::<i64, _>(&row, "n")?.max(0) as u64)
    }

    async fn delete_log_before(&mut self, cutoff: Timestamp, limit: u64) -> StoreResult<u64> {
        let done = self.exec(&Stmt::new("delete from sync_log where sync_log_id in (select sync_log_id from sync_log where at < $1 order by at limit $2)").arg(cutoff.0).arg(limit as i64)).await?;
        Ok(done)
    }

    async fn recent_log(
        &mut self,
        env: EnvironmentId,
        limit: u64,
    ) -> StoreResult<Vec<SyncLogEntry>> {
        let rows = self.rows(&Stmt::new(format!(
            "select {LOG_COLS} from sync_log where environment_id = $1 order by at desc, sync_log_id desc limit $2"
        )).arg(env.0).arg(limit as i64)).await?;
        rows.iter().map(log_from).collect()
    }
}

const ADMIN_COLS: &str = "a.admin_id, a.environment_id, a.username, a.role, a.created_at, a.last_sign_in_at, a.failed_sign_ins, a.locked_until";

fn admin_from<R: Cols + ?Sized>(row: &R) -> StoreResult<AdminAccount> {
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
        self.exec(&Stmt::new("insert into admin_account (admin_id, environment_id, username, username_key, password_hash, role, created_at, failed_sign_ins) \
             values ($1, $2, $3, $4, $5, $6, $7, 0)").arg(a.id.0).arg(a.environment_id.0).arg(&a.username).arg(key(&a.username)).arg(password_hash).arg(a.role.as_str()).arg(a.created_at.0)).await?;
        Ok(())
    }

    async fn find_admin_by_username(
        &mut self,
        env: EnvironmentId,
        username_key: &str,
    ) -> StoreResult<Option<(AdminAccount, String)>> {
        let row = self.row(&Stmt::new(format!(
            "select {ADMIN_COLS}, a.password_hash from admin_account a where a.environment_id = $1 and a.username_key = $2"
        )).arg(env.0).arg(username_key)).await?;
        match row {
            Some(r) => Ok(Some((admin_from(&r)?, get(&r, "password_hash")?))),
            None => Ok(None),
        }
    }

    async fn list_admins(&mut self, env: EnvironmentId) -> StoreResult<Vec<AdminAccount>> {
        let rows = self.rows(&Stmt::new(format!(
            "select {ADMIN_COLS} from admin_account a where a.environment_id = $1 order by a.username_key"
        )).arg(env.0)).await?;
        rows.iter().map(admin_from).collect()
    }

    async fn update_admin_sign_in(&mut self, a: &AdminAccount) -> StoreResult<()> {
        self.exec(&Stmt::new("update admin_account set last_sign_in_at = $1, failed_sign_ins = $2, locked_until = $3 \
             where environment_id = $4 and admin_id = $5").arg(a.last_sign_in_at.map(|t| t.0)).arg(a.failed_sign_ins).arg(a.locked_until.map(|t| t.0)).arg(a.environment_id.0).arg(a.id.0)).await?;
        Ok(())
    }

    async fn insert_session(&mut self, s: &AdminSession, token_hash: &[u8]) -> StoreResult<()> {
        self.exec(&Stmt::new("insert into admin_session (session_id, environment_id, admin_id, token_hash, csrf_token, created_at, last_seen_at, expires_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8)").arg(s.id.0).arg(s.environment_id.0).arg(s.admin_id.0).arg(token_hash).arg(&s.csrf_token).arg(s.created_at.0).arg(s.last_seen_at.0).arg(s.expires_at.0)).await?;
        Ok(())
    }

    async fn find_session_by_hash(
        &mut self,
        hash: &[u8],
    ) -> StoreResult<Option<(AdminSession, AdminAccount)>> {
        let row = self.row(&Stmt::new(format!(
            "select {ADMIN_COLS}, s.session_id, s.csrf_token, s.created_at as s_created, s.last_seen_at, s.expires_at, s.revoked_at \
             from admin_session s join admin_account a on a.admin_id = s.admin_id where s.token_hash = $1"
        )).arg(hash)).await?;
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
        self.exec(
            &Stmt::new("update admin_session set last_seen_at = $1 where session_id = $2")
                .arg(at.0)
                .arg(id.0),
        )
        .await?;
        Ok(())
    }

    async fn revoke_session(&mut self, id: SessionId, at: Timestamp) -> StoreResult<()> {
        self.exec(&Stmt::new("update admin_session set revoked_at = $1 where session_id = $2 and revoked_at is null").arg(at.0).arg(id.0)).await?;
        Ok(())
    }

    async fn revoke_sessions_of(&mut self, admin: AdminId, at: Timestamp) -> StoreResult<()> {
        self.exec(&Stmt::new("update admin_session set revoked_at = $1 where admin_id = $2 and revoked_at is null").arg(at.0).arg(admin.0)).await?;
        Ok(())
    }
}

fn org_mapping_from<R: Cols + ?Sized>(row: &R) -> StoreResult<OrgMapping> {
    let method: String = get(row, "method")?;
    Ok(OrgMapping {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        provider_id: ProviderId(get(row, "provider_id")?),
        method: OrgMethod::parse(&method)
            .ok_or_else(|| StoreError::Corrupt(format!("org mapping method '{method}'")))?,
        org_id: get::<Option<Uuid>, _>(row, "org_id")?.map(OrgId),
        attribute: get(row, "attribute")?,
        parent_org_id: get::<Option<Uuid>, _>(row, "parent_org_id")?.map(OrgId),
        unmapped_org_id: get::<Option<Uuid>, _>(row, "unmapped_org_id")?.map(OrgId),
        updated_at: ts(get(row, "updated_at")?),
    })
}

impl DbTx {
    async fn write_group_org_mapping_groups(&mut self, m: &GroupOrgMapping) -> StoreResult<()> {
        self.exec(
            &Stmt::new("delete from group_org_mapping_group where group_org_mapping_id = $1")
                .arg(m.id.0),
        )
        .await?;
        for chunk in m.groups.chunks(IN_CHUNK) {
            let mut qb = Stmt::new(
                "insert into group_org_mapping_group (group_id, group_org_mapping_id, environment_id) ",
            );
            qb.push_values(chunk, |mut b, g| {
                b.push_bind(g.0)
                    .push_bind(m.id.0)
                    .push_bind(m.environment_id.0);
            });
            self.exec(&qb).await?;
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
        let row = self.row(&Stmt::new("select provider_id, environment_id, method, org_id, attribute, parent_org_id, unmapped_org_id, updated_at \
             from org_mapping where environment_id = $1 and provider_id = $2").arg(env.0).arg(provider.0)).await?;
        row.as_ref().map(org_mapping_from).transpose()
    }

    async fn put_org_mapping(&mut self, m: &OrgMapping) -> StoreResult<()> {
        self.exec(&Stmt::new("insert into org_mapping (provider_id, environment_id, method, org_id, attribute, parent_org_id, unmapped_org_id, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8) \
             on conflict (provider_id) do update set method = excluded.method, org_id = excluded.org_id, \
             attribute = excluded.attribute, parent_org_id = excluded.parent_org_id, \
             unmapped_org_id = excluded.unmapped_org_id, updated_at = excluded.updated_at").arg(m.provider_id.0).arg(m.environment_id.0).arg(m.method.as_str()).arg(m.org_id.map(|o| o.0)).arg(m.attribute.as_deref()).arg(m.parent_org_id.map(|o| o.0)).arg(m.unmapped_org_id.map(|o| o.0)).arg(m.updated_at.0)).await?;
        Ok(())
    }

    async fn group_org_mappings(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<Vec<GroupOrgMapping>> {
        let rows = self.rows(&Stmt::new("select m.group_org_mapping_id, m.org_id, m.priority, m.created_at, g.group_id \
             from group_org_mapping m left join group_org_mapping_group g on g.group_org_mapping_id = m.group_org_mapping_id \
             where m.environment_id = $1 and m.provider_id = $2 \
             order by m.priority, m.created_at, m.group_org_mapping_id, g.group_id").arg(env.0).arg(provider.0)).await?;
        let mut out: Vec<GroupOrgMapping> = Vec::new();
        for row in &rows {
            let id = GroupMappingId(get(row, "group_org_mapping_id")?);
            let group = get::<Option<Uuid>, _>(row, "group_id")?.map(GroupId);
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
        self.exec(&Stmt::new("insert into group_org_mapping (group_org_mapping_id, environment_id, provider_id, org_id, priority, created_at) \
             values ($1, $2, $3, $4, $5, $6)").arg(m.id.0).arg(m.environment_id.0).arg(m.provider_id.0).arg(m.org_id.0).arg(m.priority).arg(m.created_at.0)).await?;
        self.write_group_org_mapping_groups(m).await
    }

    async fn update_group_org_mapping(&mut self, m: &GroupOrgMapping) -> StoreResult<()> {
        self.exec(
            &Stmt::new(
                "update group_org_mapping set org_id = $1, priority = $2 \
             where environment_id = $3 and group_org_mapping_id = $4",
            )
            .arg(m.org_id.0)
            .arg(m.priority)
            .arg(m.environment_id.0)
            .arg(m.id.0),
        )
        .await?;
        self.write_group_org_mapping_groups(m).await
    }

    async fn delete_group_org_mapping(
        &mut self,
        env: EnvironmentId,
        id: GroupMappingId,
    ) -> StoreResult<bool> {
        self.exec(&Stmt::new("delete from group_org_mapping_group where environment_id = $1 and group_org_mapping_id = $2").arg(env.0).arg(id.0)).await?;
        let n = self.exec(&Stmt::new("delete from group_org_mapping where environment_id = $1 and group_org_mapping_id = $2").arg(env.0).arg(id.0)).await?
        ;
        Ok(n > 0)
    }

    async fn role_mappings(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<Vec<(GroupId, RoleId)>> {
        let rows = self.rows(&Stmt::new("select group_id, role_id from role_mapping where environment_id = $1 and provider_id = $2 \
             order by group_id, role_id").arg(env.0).arg(provider.0)).await?;
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
        self.exec(
            &Stmt::new("delete from role_mapping where environment_id = $1 and group_id = $2")
                .arg(env.0)
                .arg(group.0),
        )
        .await?;
        if roles.is_empty() {
            return Ok(());
        }
        let mut qb =
            Stmt::new("insert into role_mapping (group_id, role_id, environment_id, provider_id) ");
        qb.push_values(roles, |mut b, r| {
            b.push_bind(group.0)
                .push_bind(r.0)
                .push_bind(env.0)
                .push_bind(provider.0);
        });
        qb.push(" on conflict do nothing");
        self.exec(&qb).await?;
        Ok(())
    }

    async fn role_mapping_groups(
        &mut self,
        env: EnvironmentId,
        role: RoleId,
    ) -> StoreResult<Vec<String>> {
        let rows = self.rows(&Stmt::new("select g.display_name from role_mapping m join scim_group g on g.group_id = m.group_id \
             where m.environment_id = $1 and m.role_id = $2 order by g.display_name_key").arg(env.0).arg(role.0)).await?;
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
