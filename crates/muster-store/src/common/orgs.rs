//! The organization tree and its default roles.

use super::*;

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

    async fn org_tree(&mut self, env: EnvironmentId) -> StoreResult<OrgTree> {
        let rows = self.rows(&Stmt::new(tree_parts!()).arg(env.0)).await?;
        Ok(super::mapping::tagged_parts(&rows)?.1)
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
        self.count(
            &Stmt::new(
                "select count(*) as n from user_account where environment_id = $1 and org_id = $2",
            )
            .arg(env.0)
            .arg(org.0),
        )
        .await
    }
}
