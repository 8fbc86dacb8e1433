//! Users: SCIM records, status, listings.

use super::listing::*;
use super::*;

const INSERT_USER: &str = "insert into user_account (user_id, environment_id, provider_id, user_name, user_name_key, external_id, \
     display_name, shown_name_key, scim_active, status, org_id, legal_hold, changed_outside, resource, version, created_at, \
     updated_at, removed_at, deactivate_at) \
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";

/// The user's columns from `provider_id` to `version`, in the order both statements name them.
/// `shown_name_key` is what administrators' searches match ([`UserRecord::full_name`],
/// lower-cased).
fn user_columns(u: &UserRecord) -> [Arg; 13] {
    [
        u.provider_id.map(|p| p.0).into(),
        u.user_name.as_str().into(),
        key(&u.user_name).into(),
        u.external_id.as_deref().into(),
        u.display_name.as_deref().into(),
        u.full_name()
            .map(|n| n.to_lowercase())
            .unwrap_or_default()
            .into(),
        u.scim_active.into(),
        u.status.as_str().into(),
        u.org_id.0.into(),
        u.legal_hold.into(),
        u.changed_outside.into(),
        u.resource.to_json().into(),
        u.version.into(),
    ]
}

fn bind_user_insert(qb: &mut Stmt, u: &UserRecord) {
    qb.args.push(u.id.0.into());
    qb.args.push(u.environment_id.0.into());
    qb.args.extend(user_columns(u));
    qb.args.push(u.created_at.0.into());
    qb.args.push(u.updated_at.0.into());
    qb.args.push(u.removed_at.map(|t| t.0).into());
    qb.args.push(u.deactivate_at.map(|t| t.0).into());
}

const UPDATE_USER: &str = "update user_account set provider_id = $1, user_name = $2, user_name_key = $3, external_id = $4, \
     display_name = $5, shown_name_key = $6, scim_active = $7, status = $8, org_id = $9, legal_hold = $10, \
     changed_outside = $11, resource = $12, version = $13, updated_at = $14, removed_at = $15, deactivate_at = $16 \
     where environment_id = $17 and user_id = $18 and version = $19";

fn bind_user_update(qb: &mut Stmt, u: &UserRecord, expected_version: i64) {
    qb.args.extend(user_columns(u));
    qb.args.push(u.updated_at.0.into());
    qb.args.push(u.removed_at.map(|t| t.0).into());
    qb.args.push(u.deactivate_at.map(|t| t.0).into());
    qb.args.push(u.environment_id.0.into());
    qb.args.push(u.id.0.into());
    qb.args.push(expected_version.into());
}

/// ` insert into user_email ... values ...` for a user's email keys (the first [`IN_CHUNK`]).
fn push_email_rows(qb: &mut Stmt, u: &UserRecord, keys: &[String]) {
    qb.push("insert into user_email (user_id, environment_id, value_key) ");
    qb.push_values(keys.iter().take(IN_CHUNK), |mut b, k| {
        b.push_bind(u.id.0)
            .push_bind(u.environment_id.0)
            .push_bind(k.clone());
    });
}

#[async_trait]
impl UserStore for DbTx {
    async fn insert_user(&mut self, u: &UserRecord) -> StoreResult<()> {
        let keys = u.email_keys();
        if super::super::WRITES_IN_WITH && !keys.is_empty() {
            let mut qb = Stmt::new(format!("with u as ({INSERT_USER}) "));
            bind_user_insert(&mut qb, u);
            push_email_rows(&mut qb, u, &keys);
            self.exec(&qb).await?;
            return Ok(());
        }
        let mut qb = Stmt::new(INSERT_USER);
        bind_user_insert(&mut qb, u);
        self.exec(&qb).await?;
        self.write_emails(u, false).await?;
        Ok(())
    }

    async fn find_user(
        &mut self,
        env: EnvironmentId,
        id: UserId,
    ) -> StoreResult<Option<UserRecord>> {
        let q = Stmt::new(concat!(
            "select ",
            user_cols!(),
            " from user_account where environment_id = $1 and user_id = $2"
        ))
        .arg(env.0)
        .arg(id.0);
        Ok(self.lookup(&q, |r| user_from(r)).await?.into_iter().next())
    }

    async fn find_user_and_groups(
        &mut self,
        env: EnvironmentId,
        id: UserId,
    ) -> StoreResult<Option<(UserRecord, Vec<GroupRef>)>> {
        // The user's groups as a column of its row (`member_of_col!`, as for a listing): a GET
        // of a user is one statement on SQLite and one round trip on PostgreSQL.
        let q = Stmt::new(concat!(
            "select ",
            user_cols!(),
            ", ",
            member_of_col!(),
            " from user_account where environment_id = $1 and user_id = $2"
        ))
        .arg(env.0)
        .arg(id.0);
        Ok(self
            .lookup(&q, |r| Ok((user_from(r)?, member_of(r)?)))
            .await?
            .into_iter()
            .next())
    }

    async fn find_user_by_name(
        &mut self,
        env: EnvironmentId,
        user_name_key: &str,
    ) -> StoreResult<Option<UserRecord>> {
        let q = Stmt::new(concat!(
            "select ",
            user_cols!(),
            " from user_account where environment_id = $1 and user_name_key = $2"
        ))
        .arg(env.0)
        .arg(user_name_key);
        Ok(self.lookup(&q, |r| user_from(r)).await?.into_iter().next())
    }

    async fn find_user_by_name_or_external_id(
        &mut self,
        env: EnvironmentId,
        user_name_key: &str,
        provider: ProviderId,
        external_id: Option<&str>,
    ) -> StoreResult<(Option<UserRecord>, Option<UserRecord>)> {
        let Some(external_id) = external_id else {
            return Ok((self.find_user_by_name(env, user_name_key).await?, None));
        };
        // Two index lookups as one statement: one round trip on PostgreSQL, where a create used
        // to spend two before its transaction.
        let q = Stmt::new(format!(
            "select true as by_name, {USER_COLS} from user_account where environment_id = $1 and user_name_key = $2 \
             union all \
             select * from (select false as by_name, {USER_COLS} from user_account \
             where environment_id = $1 and provider_id = $3 and external_id = $4 \
             order by created_at desc limit 1) newest"
        ))
        .arg(env.0)
        .arg(user_name_key)
        .arg(provider.0)
        .arg(external_id);
        let rows = self
            .lookup(&q, |r| Ok((get::<bool, _>(r, "by_name")?, user_from(r)?)))
            .await?;
        let mut found = (None, None);
        for (by_name, u) in rows {
            match by_name {
                true => found.0 = found.0.or(Some(u)),
                false => found.1 = found.1.or(Some(u)),
            }
        }
        Ok(found)
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
        if super::super::WRITES_IN_WITH {
            // The update, then the email index brought to the new keys: rows for keys no longer
            // held deleted, new keys added, both only if the version matched. The two touch
            // different rows, so they can run in one statement.
            let keys = u.email_keys();
            let mut qb = Stmt::new(format!("with u as ({UPDATE_USER} returning user_id), "));
            bind_user_update(&mut qb, u, expected_version);
            qb.push("d as (delete from user_email where user_id in (select user_id from u)");
            if !keys.is_empty() {
                qb.push(" and value_key not in (");
                let mut sep = qb.separated(", ");
                for k in keys.iter().take(IN_CHUNK) {
                    sep.push_bind(k.clone());
                }
                qb.push(")");
            }
            qb.push(")");
            if !keys.is_empty() {
                qb.push(", i as (insert into user_email (user_id, environment_id, value_key) select u.user_id, ");
                qb.bind(u.environment_id.0);
                qb.push(", k.value_key from u, (");
                qb.push_values(keys.iter().take(IN_CHUNK), |mut b, k| {
                    b.push_bind(k.clone());
                });
                qb.push(") as k(value_key) on conflict do nothing)");
            }
            qb.push(" select count(*) as updated from u");
            let updated: i64 = get(&self.one(&qb).await?, "updated")?;
            return Ok(updated == 1);
        }
        let mut qb = Stmt::new(UPDATE_USER);
        bind_user_update(&mut qb, u, expected_version);
        if self.exec(&qb).await? != 1 {
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

    async fn list_users_with_groups(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        order: Order,
        page: Page,
    ) -> StoreResult<Vec<(UserRecord, Vec<GroupRef>)>> {
        self.fetch_listing(
            &USERS_WITH_GROUPS,
            env,
            provider,
            cond,
            Window::page(order, page),
            |r| Ok((user_from(r)?, member_of(r)?)),
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
            // Or exactly an address or the provider's externalId, when someone has it: an
            // administrator searches by what they have in hand.
            let mut exact = self.ids_by_email(env, text).await?;
            exact.extend(self.ids_by_external_id(env, q.provider, text).await?);
            qb.push(" and (user_name_key like ")
                .push_bind(pattern.clone())
                .push(" escape '!' or shown_name_key like ")
                .push_bind(pattern)
                .push(" escape '!'");
            if !exact.is_empty() {
                qb.push(" or ");
                push_cond(&mut qb, &Cond::IdIn(exact), "user_id");
            }
            qb.push(")");
        }
        if let Some(name) = q.user_name.as_deref() {
            qb.push(" and user_name_key = ").push_bind(key(name));
        }
        // The users with the address or the externalId, read first through their indexes: a
        // short id list the planner looks up by primary key. In one statement with the page's
        // order, SQLite chose the (environment, created_at) index and read every user.
        if let Some(ids) = self.users_by_exact(env, q).await? {
            qb.push(" and ");
            push_cond(&mut qb, &Cond::IdIn(ids), "user_id");
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
             and not exists (select 1 from provider_guard g where g.provider_id = user_account.provider_id \
                             and g.held_since is not null) \
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

/// The most users an exact email or externalId condition finds (SCIM's email filters read as
/// many, `listing.rs`).
const EXACT_MATCHES: usize = 10_000;

impl DbTx {
    /// The ids of the users a listing's exact email and externalId conditions allow, each
    /// read through its index; `None` when the query has neither.
    async fn users_by_exact(
        &mut self,
        env: EnvironmentId,
        q: &UserQuery,
    ) -> StoreResult<Option<Vec<Uuid>>> {
        let by_email = match q.email.as_deref() {
            Some(email) => Some(self.ids_by_email(env, email).await?),
            None => None,
        };
        let by_external = match q.external_id.as_deref() {
            Some(external) => Some(self.ids_by_external_id(env, q.provider, external).await?),
            None => None,
        };
        Ok(match (by_email, by_external) {
            (Some(a), Some(b)) => {
                let b: std::collections::HashSet<Uuid> = b.into_iter().collect();
                Some(a.into_iter().filter(|u| b.contains(u)).collect())
            }
            (a, b) => a.or(b),
        })
    }

    /// The users with this address among their emails (`user_email`'s index).
    async fn ids_by_email(&mut self, env: EnvironmentId, email: &str) -> StoreResult<Vec<Uuid>> {
        let st = Stmt::new(
            "select user_id from user_email where environment_id = $1 and value_key = $2 limit $3",
        )
        .arg(env.0)
        .arg(email.trim().to_lowercase())
        .arg(EXACT_MATCHES as i64);
        self.lookup(&st, |r| get(r, "user_id")).await
    }

    /// The users a provider gave this externalId: one lookup of the (environment, provider,
    /// externalId) index per provider, or of the one the listing is narrowed to.
    async fn ids_by_external_id(
        &mut self,
        env: EnvironmentId,
        provider: Option<Option<ProviderId>>,
        external: &str,
    ) -> StoreResult<Vec<Uuid>> {
        let providers: Vec<Uuid> = match provider {
            Some(Some(p)) => vec![p.0],
            Some(None) => Vec::new(),
            None => {
                let st = Stmt::new("select provider_id from provider where environment_id = $1")
                    .arg(env.0);
                self.lookup(&st, |r| get(r, "provider_id")).await?
            }
        };
        let mut found = Vec::new();
        // At most as many as one address finds, whatever the number of providers: the ids become
        // bound values of the listing's statement, which PostgreSQL limits to 65,535.
        for p in providers {
            if found.len() >= EXACT_MATCHES {
                break;
            }
            let st = Stmt::new(
                "select user_id from user_account where environment_id = $1 and provider_id = $2 \
                 and external_id = $3 limit $4",
            )
            .arg(env.0)
            .arg(p)
            .arg(external)
            .arg((EXACT_MATCHES - found.len()) as i64);
            found.extend(self.lookup(&st, |r| get::<Uuid, _>(r, "user_id")).await?);
        }
        Ok(found)
    }
}
