//! Groups and their members.

use super::listing::*;
use super::*;

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

    async fn query_groups(
        &mut self,
        env: EnvironmentId,
        provider: Option<ProviderId>,
        after: Option<Cursor>,
        limit: u64,
    ) -> StoreResult<Vec<GroupRecord>> {
        let mut qb = Stmt::new(format!(
            "select {GROUP_COLS} from scim_group where environment_id = "
        ));
        qb.push_bind(env.0);
        if let Some(p) = provider {
            qb.push(" and provider_id = ").push_bind(p.0);
        }
        if let Some(c) = after {
            qb.push(" and created_at >= ")
                .push_bind(c.created_at.0)
                .push(" and (created_at > ")
                .push_bind(c.created_at.0)
                .push(" or group_id > ")
                .push_bind(c.id)
                .push(")");
        }
        qb.push(" order by created_at, group_id limit ")
            .push_bind(limit as i64);
        let rows = self.rows(&qb).await?;
        rows.iter().map(group_from).collect()
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
            out.sort_by(|a, b| a.1.name_order().cmp(&b.1.name_order()));
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
        out.sort_by(|a, b| a.1.name_order().cmp(&b.1.name_order()));
        Ok(out)
    }
}
