//! Listings of users and groups: conditions, windows and order, one SQL text for both.

use super::*;

pub(super) fn push_cond(q: &mut Stmt, cond: &Cond, id_col: &str) {
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
pub(super) struct Window {
    after: Option<Cursor>,
    order: Order,
    offset: u64,
    limit: u64,
}

impl Window {
    /// A page in the given order.
    pub(super) fn page(order: Order, page: Page) -> Window {
        Window {
            after: None,
            order,
            offset: page.offset,
            limit: page.limit,
        }
    }

    /// The next `limit` rows in creation order after a cursor (a scan).
    pub(super) fn scan(after: Option<Cursor>, limit: u64) -> Window {
        Window {
            after,
            order: Order::CREATED,
            offset: 0,
            limit,
        }
    }
}

/// The most index entries a page may walk (skipped ones included) and still be read on the
/// request's thread.
const SHORT_WALK: u64 = 1_000;

/// `order by` for a listing: the key (missing values last ascending, first descending, as RFC
/// 7644 §3.4.2.3 asks), then creation time and id so that equal keys page stably. Text keys
/// compare byte-wise on both databases.
///
/// With a selective condition (an id, a userName, an email address), the creation-time index must
/// not be used to produce the order: a planner that walks it to avoid a sort reads every row of
/// the provider. `created_at + 0` keeps the order and takes that index out of the question; the few
/// matching rows are then sorted.
pub(super) fn order_by(l: &Listing, order: Order, selective: bool) -> String {
    // Put together with `push_str`, not `format!`: it runs on every listing request.
    let dir = if order.descending { " desc" } else { " asc" };
    let created = if selective {
        "created_at + 0"
    } else {
        "created_at"
    };
    let mut out = String::with_capacity(96);
    out.push_str(" order by ");
    let mut key = |col: &str, nullable: bool, text: bool| {
        if nullable {
            out.push('(');
            out.push_str(col);
            out.push_str(" is null)");
            out.push_str(dir);
            out.push_str(", ");
        }
        out.push_str(col);
        if text {
            out.push_str(super::super::BYTEWISE);
        }
        out.push_str(dir);
        out.push_str(", ");
    };
    match order.key {
        OrderKey::Created => {}
        OrderKey::Id => {
            out.push_str(l.id_col);
            out.push_str(dir);
            return out;
        }
        OrderKey::LastModified => key("updated_at", false, false),
        OrderKey::UserName => key("user_name_key", false, true),
        OrderKey::GroupName => key("display_name_key", false, true),
        OrderKey::ExternalId => key("external_id", true, true),
    }
    // Equal keys page stably: creation time, then id.
    out.push_str(created);
    out.push_str(dir);
    out.push_str(", ");
    out.push_str(l.id_col);
    out.push_str(dir);
    out
}

/// Whether a condition selects few rows through an index of its own.
pub(super) fn selective(cond: &Cond) -> bool {
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
pub(super) struct Listing {
    table: &'static str,
    cols: &'static str,
    id_col: &'static str,
    extra: &'static str,
    /// The index holding every listed row of a provider in creation order, for an unfiltered
    /// listing ("" for none).
    provider_index: &'static str,
}

pub(super) const USERS: Listing = Listing {
    table: "user_account",
    cols: USER_COLS,
    id_col: "user_id",
    extra: " and removed_at is null",
    provider_index: "user_account_provider_idx",
};
/// Users, each with its groups in the same row (`member_of`, [`member_of`]).
pub(super) const USERS_WITH_GROUPS: Listing = Listing {
    cols: concat!(user_cols!(), ", ", member_of_col!()),
    ..USERS
};
pub(super) const GROUPS: Listing = Listing {
    table: "scim_group",
    cols: GROUP_COLS,
    id_col: "group_id",
    extra: "",
    provider_index: "",
};

pub(super) fn listing_query(
    l: &Listing,
    select: &str,
    env: EnvironmentId,
    provider: ProviderId,
    cond: Option<&Cond>,
) -> Stmt {
    // Unfiltered, the provider's index is the one to read (and, for users, it covers the
    // listing's condition). SQLite's planner, without statistics, chose another index on the same
    // leading columns for the count of a provider's users and read every row from the table to
    // check `removed_at`: a first page of 100 of 10,000 users spent most of its time counting.
    let hint = match (cond, l.provider_index) {
        (None, index) if !index.is_empty() => super::super::index_hint(index),
        _ => String::new(),
    };
    let mut q = Stmt::new("select ");
    q.push(select)
        .push(" from ")
        .push(l.table)
        .push(hint)
        .push(" where environment_id = ")
        .bind(env.0)
        .push(" and provider_id = ")
        .bind(provider.0)
        .push(l.extra);
    if let Some(c) = cond {
        q.push(" and ");
        push_cond(&mut q, c, l.id_col);
    }
    q
}

/// The groups in a row's `member_of` column, sorted by name (then id), as `groups_of_users`
/// gives them.
pub(super) fn member_of<R: Cols + ?Sized>(row: &R) -> StoreResult<Vec<GroupRef>> {
    let text: String = get(row, "member_of")?;
    // A user in no group, as most are in a directory that does not push groups: no parse
    // (about 800 instructions of a GET, callgrind).
    if text == "[]" {
        return Ok(Vec::new());
    }
    let pairs: Vec<(String, Option<String>)> = serde_json::from_str(&text)
        .map_err(|_| StoreError::Corrupt("a user's groups did not read as pairs".into()))?;
    let mut groups = Vec::with_capacity(pairs.len());
    for (id, name) in pairs {
        let id =
            Uuid::parse_str(&id).map_err(|_| StoreError::Corrupt(format!("a group id '{id}'")))?;
        // A membership whose group is gone in this snapshot.
        if let Some(display) = name {
            groups.push(GroupRef {
                group_id: GroupId(id),
                display,
            });
        }
    }
    groups.sort_by(|a, b| a.name_order().cmp(&b.name_order()));
    Ok(groups)
}

impl DbTx {
    /// Replaces `EmailKey` conditions with the ids of the users that have the address, read from
    /// `user_email` first: a short id list the planner looks up by primary key, rather than a
    /// subquery a planner without statistics may run once per row.
    pub(super) async fn resolve_emails(
        &mut self,
        env: EnvironmentId,
        cond: &Cond,
    ) -> StoreResult<Cond> {
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
    pub(super) async fn write_emails(&mut self, u: &UserRecord, replace: bool) -> StoreResult<()> {
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

    pub(super) async fn fetch_listing<T: Send>(
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
        // through an index of its own, whatever the page size asked for. So does an unfiltered
        // page in creation order near the start of the listing: it walks the listing index for
        // at most `SHORT_WALK` entries. Both run on the request's thread; through sqlx's
        // connection thread every row of a page was a hand-off (a first page of 100 users: 47
        // thread switches and 386 pages a second at 32 connections).
        let short_walk = cond.is_none()
            && order.key == OrderKey::Created
            && after.is_none()
            && offset + limit <= SHORT_WALK;
        if few || short_walk {
            self.lookup(&q, decode).await
        } else {
            self.fetch(&q, decode).await
        }
    }

    pub(super) async fn count_listing(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_names_the_key_then_creation_time_and_id() {
        let b = super::super::super::BYTEWISE;
        let o = |key, descending| Order { key, descending };
        assert_eq!(
            order_by(&USERS, o(OrderKey::Created, false), false),
            " order by created_at asc, user_id asc"
        );
        assert_eq!(
            order_by(&USERS, o(OrderKey::Created, true), true),
            " order by created_at + 0 desc, user_id desc"
        );
        assert_eq!(
            order_by(&USERS, o(OrderKey::Id, true), false),
            " order by user_id desc"
        );
        assert_eq!(
            order_by(&USERS, o(OrderKey::UserName, false), true),
            format!(" order by user_name_key{b} asc, created_at + 0 asc, user_id asc")
        );
        assert_eq!(
            order_by(&USERS, o(OrderKey::ExternalId, true), false),
            format!(
                " order by (external_id is null) desc, external_id{b} desc, created_at desc, user_id desc"
            )
        );
        assert_eq!(
            order_by(&USERS, o(OrderKey::LastModified, false), false),
            " order by updated_at asc, created_at asc, user_id asc"
        );
    }
}
