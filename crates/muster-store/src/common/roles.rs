//! The role catalog and users' roles.

use super::*;

pub(super) fn role_from<R: Cols + ?Sized>(row: &R) -> StoreResult<Role> {
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

    async fn update_role(&mut self, role: &Role) -> StoreResult<()> {
        self.exec(
            &Stmt::new(
                "update role set name = $1, name_key = $2, description = $3 where environment_id = $4 and role_id = $5",
            )
            .arg(&role.name)
            .arg(key(&role.name))
            .arg(&role.description)
            .arg(role.environment_id.0)
            .arg(role.id.0),
        )
        .await?;
        Ok(())
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
