//! Listing users and groups for SCIM (RFC 7644 §3.4.2): the part of a filter the database can
//! answer is pushed down to it, the rest is evaluated here over candidate rows, and sorting and
//! paging are done where they are cheapest.

use crate::error::CoreResult;
use crate::ids::EnvironmentId;
use crate::ids::ProviderId;
use crate::model::ProviderCtx;
use crate::muster::Muster;
use crate::store::Cond;
use crate::store::Cursor;
use crate::store::Order;
use crate::store::OrderKey;
use crate::store::Page;
use crate::store::StoreResult;
use crate::store::Tx;
use muster_scim::list::ListParams;
use muster_scim::query::is_core;
use muster_scim::sort::SortSpec;
use muster_scim::CompareOp;
use muster_scim::Filter;
use muster_scim::Operand;
use muster_scim::Query;
use muster_scim::ScimError;
use muster_scim::ScimType;
use serde_json::Map;
use serde_json::Value;

/// A resource the SCIM list endpoints serve (users, groups): how its rows are read, and its
/// views built and rendered. [`Muster::list`] is the one listing algorithm over it.
#[async_trait::async_trait]
pub(crate) trait Listed: Sized + Send {
    /// The stored row.
    type Record: Send + Sync;
    /// The resource type filters and `sortBy` are read against.
    const RESOURCE: &'static muster_scim::ResourceTypeDef;
    /// Whether this is the Group resource (what the database can filter and sort on differs).
    const IS_GROUP: bool;
    /// The multi-valued attribute stored in another table (`groups` of a user, `members` of a
    /// group): read only when a filter names it or the response includes it.
    const JOINED: &'static str;

    /// The views of a page of rows matching `cond`, in `order`, with the joined attribute when
    /// `joined`.
    async fn page(
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        order: Order,
        page: Page,
        joined: bool,
    ) -> CoreResult<Vec<Self>>;
    /// How many rows match `cond`.
    async fn count(
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
    ) -> StoreResult<u64>;
    /// Up to `limit` rows matching `cond` after `after`, in creation order.
    async fn scan(
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        cond: Option<&Cond>,
        after: Option<Cursor>,
        limit: u64,
    ) -> StoreResult<Vec<Self::Record>>;
    /// Where a scan goes on after this row.
    fn cursor(r: &Self::Record) -> Cursor;
    /// The views of these rows, with the joined attribute when `joined`.
    async fn views(
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        rows: Vec<Self::Record>,
        joined: bool,
    ) -> CoreResult<Vec<Self>>;
    /// The SCIM resource, for filters and sorting evaluated here.
    fn render(m: &Muster, ctx: &ProviderCtx, view: &Self) -> Map<String, Value>;
    /// The row back from its view.
    fn into_record(self) -> Self::Record;
}

impl Muster {
    /// Lists a provider's users or groups (RFC 7644 §3.4.2): in SQL when the filter and the
    /// sort can be pushed down whole; otherwise by scanning the candidates the pushed-down part
    /// selects, evaluating the rest of the filter on each, and keeping only the page (or, to
    /// sort in memory, at most [`MAX_SORTED_IN_MEMORY`] matches). `joined`: include the joined
    /// attribute in the items.
    pub(crate) async fn list<V: Listed>(
        &self,
        ctx: &ProviderCtx,
        params: &ListParams,
        joined: bool,
    ) -> CoreResult<ListResult<V>> {
        let plan = ListPlan::new(
            params,
            V::RESOURCE,
            V::IS_GROUP,
            self.settings.max_page_size,
        )?;
        let (env, provider) = (ctx.env(), ctx.id());
        // A page read in SQL is one statement, and usually the whole read: a short page tells
        // its own total (`total_from_page`), so only a full one is counted after it.
        let mut tx = match plan.sql_order() {
            Some(_) => self.store.read_one().await?,
            None => self.store.read().await?,
        };
        let cond = plan.cond.as_ref();
        let (total, items) = match plan.sql_order() {
            Some(order) => {
                let items = match plan.page() {
                    Some(page) => {
                        V::page(&mut tx, env, provider, cond, order, page, joined).await?
                    }
                    None => Vec::new(),
                };
                let total = match plan.total_from_page(items.len()) {
                    Some(total) => total,
                    None => V::count(&mut tx, env, provider, cond).await?,
                };
                (total, items)
            }
            None => {
                let filter_joins = plan
                    .query
                    .as_ref()
                    .is_some_and(|q| mentions_attr(q, V::JOINED));
                let mut window = plan.window();
                let mut after = None;
                loop {
                    let chunk = V::scan(&mut tx, env, provider, cond, after, SCAN_CHUNK).await?;
                    let Some(last) = chunk.last() else { break };
                    after = Some(V::cursor(last));
                    let full = chunk.len() as u64 == SCAN_CHUNK;
                    for view in V::views(&mut tx, env, chunk, filter_joins).await? {
                        let rendered = V::render(self, ctx, &view);
                        window.offer(view.into_record(), rendered)?;
                    }
                    if !full {
                        break;
                    }
                }
                let (total, rows) = window.finish();
                (total, V::views(&mut tx, env, rows, joined).await?)
            }
        };
        Ok(ListResult {
            total,
            start_index: params.start_index,
            items,
        })
    }
}

/// Rows read per round when a filter must be evaluated outside the database.
pub(crate) const SCAN_CHUNK: u64 = 500;

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ListResult<T> {
    /// How many resources match in all.
    pub total: u64,
    /// The 1-based index of the first item.
    pub start_index: u64,
    /// This page.
    pub items: Vec<T>,
}

/// Translates the part of a checked filter that storage renders exactly. Returns the condition
/// and whether it is the whole filter.
pub(crate) fn pushdown(q: &Query, group: bool) -> (Option<Cond>, bool) {
    match q {
        Query::Compare(r, CompareOp::Eq, Operand::Text(t)) => {
            if is_core(r, "id") {
                let cond = t.parse::<uuid::Uuid>().map(Cond::Id).unwrap_or(Cond::Never);
                (Some(cond), true)
            } else if is_core(r, "externalId") {
                (Some(Cond::ExternalId(t.clone())), true)
            } else if !group && is_core(r, "userName") {
                (Some(Cond::UserNameKey(t.trim().to_string())), true)
            } else if group && is_core(r, "displayName") {
                (Some(Cond::GroupNameKey(t.trim().to_string())), true)
            } else if !group && is_emails_value(r) {
                (Some(Cond::EmailKey(t.trim().to_string())), true)
            } else {
                (None, false)
            }
        }
        Query::Compare(r, op, Operand::DateTime(t)) if is_meta_time(r).is_some() => {
            let column = match is_meta_time(r) {
                Some(c) => c,
                None => return (None, false),
            };
            match time_bounds(*op, t) {
                Some((from, until)) => (
                    Some(Cond::Time {
                        column,
                        from,
                        until,
                    }),
                    true,
                ),
                None => (None, false),
            }
        }
        Query::Element(r, inner) if !group && r.attr.name == "emails" => {
            // `emails[type eq "work" and value eq "x"]`: the address narrows in SQL, the rest
            // is checked on the rows it selects.
            match element_value_eq(inner) {
                Some(v) => (Some(Cond::EmailKey(v)), false),
                None => (None, false),
            }
        }
        Query::Compare(r, CompareOp::Eq, Operand::Bool(b)) if !group && is_core(r, "active") => {
            (Some(Cond::Active(*b)), true)
        }
        Query::And(a, b) => {
            let ((ca, ea), (cb, eb)) = (pushdown(a, group), pushdown(b, group));
            match (ca, cb) {
                (Some(x), Some(y)) => (Some(Cond::And(Box::new(x), Box::new(y))), ea && eb),
                (Some(x), None) | (None, Some(x)) => (Some(x), false),
                (None, None) => (None, false),
            }
        }
        Query::Or(a, b) => match (pushdown(a, group), pushdown(b, group)) {
            ((Some(x), ea), (Some(y), eb)) => (Some(Cond::Or(Box::new(x), Box::new(y))), ea && eb),
            _ => (None, false),
        },
        _ => (None, false),
    }
}

pub(crate) fn is_emails_value(r: &muster_scim::schema::Resolved) -> bool {
    r.container == muster_scim::schema::Container::Core
        && r.attr.name == "emails"
        && r.sub.is_some_and(|s| s.name == "value")
}

pub(crate) fn is_meta_time(r: &muster_scim::schema::Resolved) -> Option<crate::store::TimeColumn> {
    if r.container != muster_scim::schema::Container::Core || r.attr.name != "meta" {
        return None;
    }
    match r.sub.map(|s| s.name) {
        Some("created") => Some(crate::store::TimeColumn::Created),
        Some("lastModified") => Some(crate::store::TimeColumn::LastModified),
        _ => None,
    }
}

/// The stored-microsecond range matching a comparison of `meta` times, which are returned at
/// millisecond precision: `ms = floor(µs / 1000)`, so `ms ≥ k ⟺ µs ≥ 1000·k`.
pub(crate) fn time_bounds(
    op: CompareOp,
    t: &time::OffsetDateTime,
) -> Option<(Option<i64>, Option<i64>)> {
    let t_us = i64::try_from(t.unix_timestamp_nanos().div_euclid(1000)).ok()?;
    let floor_ms = t_us.div_euclid(1000);
    let ceil_ms = floor_ms + i64::from(t_us.rem_euclid(1000) != 0);
    Some(match op {
        CompareOp::Gt => (Some((floor_ms + 1) * 1000), None),
        CompareOp::Ge => (Some(ceil_ms * 1000), None),
        CompareOp::Lt => (None, Some(ceil_ms * 1000)),
        CompareOp::Le => (None, Some((floor_ms + 1) * 1000)),
        CompareOp::Eq if t_us.rem_euclid(1000) == 0 => (Some(t_us), Some(t_us + 1000)),
        CompareOp::Eq => (Some(1), Some(0)),
        _ => return None,
    })
}

/// The `value eq "x"` term of an `and`-only value filter over emails.
pub(crate) fn element_value_eq(q: &Query) -> Option<String> {
    match q {
        Query::Compare(r, CompareOp::Eq, Operand::Text(t))
            if r.sub.is_some_and(|s| s.name == "value") =>
        {
            Some(t.trim().to_string())
        }
        Query::And(a, b) => element_value_eq(a).or_else(|| element_value_eq(b)),
        _ => None,
    }
}

pub(crate) fn mentions_attr(q: &Query, name: &str) -> bool {
    match q {
        Query::Present(r) | Query::Compare(r, _, _) | Query::Element(r, _) => {
            r.container == muster_scim::schema::Container::Core && r.attr.name == name
        }
        Query::And(a, b) | Query::Or(a, b) => mentions_attr(a, name) || mentions_attr(b, name),
        Query::Not(inner) => mentions_attr(inner, name),
    }
}

pub(crate) fn check_filter(
    params: &ListParams,
    rt: &'static muster_scim::ResourceTypeDef,
) -> CoreResult<Option<Query>> {
    let Some(text) = params.filter.as_deref().filter(|f| !f.trim().is_empty()) else {
        return Ok(None);
    };
    let filter = Filter::parse(text)
        .map_err(|e| ScimError::invalid_filter(format!("invalid filter: {e}")))?;
    Ok(Some(Query::check(&filter, rt)?))
}

/// The most resources a list sorts outside the database; past it, the client must filter.
pub(crate) const MAX_SORTED_IN_MEMORY: usize = 50_000;

/// How a listing will be answered: the filter (checked), the part of it SQL renders, the sort,
/// and the page window.
pub(crate) struct ListPlan {
    pub(crate) query: Option<Query>,
    pub(crate) cond: Option<Cond>,
    pub(crate) exact: bool,
    pub(crate) sort: Option<SortSpec>,
    pub(crate) sort_key: Option<OrderKey>,
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

impl ListPlan {
    pub(crate) fn new(
        params: &ListParams,
        rt: &'static muster_scim::ResourceTypeDef,
        group: bool,
        max: u64,
    ) -> CoreResult<ListPlan> {
        let query = check_filter(params, rt)?;
        let (cond, exact) = match &query {
            Some(q) => pushdown(q, group),
            None => (None, true),
        };
        let sort = params
            .sort_by
            .as_deref()
            .map(|s| SortSpec::parse(rt, s, params.descending))
            .transpose()?;
        let sort_key = sort.as_ref().and_then(|s| order_key(&s.by, group));
        Ok(ListPlan {
            query,
            cond,
            exact,
            sort,
            sort_key,
            offset: params.start_index.saturating_sub(1),
            size: params.page_size(max),
        })
    }

    /// The database order, when SQL can answer the whole listing.
    pub(crate) fn sql_order(&self) -> Option<Order> {
        if !self.exact {
            return None;
        }
        match (&self.sort, self.sort_key) {
            (None, _) => Some(Order::CREATED),
            (Some(s), Some(key)) => Some(Order {
                key,
                descending: s.descending,
            }),
            (Some(_), None) => None,
        }
    }

    /// The rows to read for this page, if any.
    pub(crate) fn page(&self) -> Option<Page> {
        (self.size > 0).then_some(Page {
            offset: self.offset,
            limit: self.size,
        })
    }

    /// `totalResults` read off the page, when the page tells it: a short page that holds rows,
    /// or starts at the first, ends the results. Saves the count for the common case of a
    /// filter that matches a few resources (`userName eq`, Okta's existence check).
    pub(crate) fn total_from_page(&self, rows: usize) -> Option<u64> {
        let rows = rows as u64;
        (self.size > 0 && rows < self.size && (rows > 0 || self.offset == 0))
            .then_some(self.offset + rows)
    }

    pub(crate) fn window<T>(&self) -> Window<'_, T> {
        Window {
            plan: self,
            total: 0,
            page: Vec::new(),
            sorted: Vec::new(),
        }
    }
}

/// Collects the matches of a scan: the page directly when unsorted (memory stays at one page),
/// every match when it must be sorted first.
pub(crate) struct Window<'a, T> {
    pub(crate) plan: &'a ListPlan,
    pub(crate) total: u64,
    pub(crate) page: Vec<T>,
    pub(crate) sorted: Vec<(T, Map<String, Value>)>,
}

impl<T> Window<'_, T> {
    pub(crate) fn offer(&mut self, item: T, rendered: Map<String, Value>) -> CoreResult<()> {
        if let Some(q) = &self.plan.query {
            if !q.matches(&rendered) {
                return Ok(());
            }
        }
        if self.plan.sort.is_some() {
            if self.sorted.len() >= MAX_SORTED_IN_MEMORY {
                return Err(ScimError::bad_request(
                    ScimType::TooMany,
                    format!("sorting by this attribute is limited to {MAX_SORTED_IN_MEMORY} results: add a filter"),
                )
                .into());
            }
            self.sorted.push((item, rendered));
        } else if self.total >= self.plan.offset && (self.page.len() as u64) < self.plan.size {
            self.page.push(item);
        }
        self.total += 1;
        Ok(())
    }

    pub(crate) fn finish(self) -> (u64, Vec<T>) {
        let Some(sort) = &self.plan.sort else {
            return (self.total, self.page);
        };
        let mut sorted = self.sorted;
        // Stable: equal keys keep the creation order of the scan.
        sorted.sort_by(|a, b| sort.compare(&a.1, &b.1));
        let page = sorted
            .into_iter()
            .skip(self.plan.offset as usize)
            .take(self.plan.size as usize)
            .map(|(item, _)| item)
            .collect();
        (self.total, page)
    }
}

/// The database column a sort maps to, if any.
pub(crate) fn order_key(by: &muster_scim::schema::Resolved, group: bool) -> Option<OrderKey> {
    use muster_scim::schema::Container;
    if by.container != Container::Core {
        return None;
    }
    match (by.attr.name, by.sub.map(|s| s.name)) {
        ("id", None) => Some(OrderKey::Id),
        ("externalId", None) => Some(OrderKey::ExternalId),
        ("userName", None) if !group => Some(OrderKey::UserName),
        ("displayName", None) if group => Some(OrderKey::GroupName),
        ("meta", Some("created")) => Some(OrderKey::Created),
        ("meta", Some("lastModified")) => Some(OrderKey::LastModified),
        _ => None,
    }
}
