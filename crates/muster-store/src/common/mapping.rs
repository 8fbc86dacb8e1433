//! Organization and role mapping configuration.

use super::*;

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

/// What a statement of [`tree_parts!`] and [`rules_parts!`] read, by part.
pub(super) fn tagged_parts(rows: &[Row]) -> StoreResult<(MappingRules, OrgTree, Option<i64>)> {
    let (mut mapping, mut role_mappings, mut tree) = (None, Vec::new(), OrgTree::default());
    let mut version = None;
    for row in rows {
        match get::<String, _>(row, "part")?.as_str() {
            "o" => tree.orgs.push(org_from(row)?),
            "d" => tree
                .defaults
                .push((OrgId(get(row, "org_id")?), RoleId(get(row, "role_id")?))),
            "r" => tree.roles.push(super::roles::role_from(row)?),
            "m" => mapping = Some(org_mapping_from(row)?),
            "v" => version = get::<Option<i64>, _>(row, "created_at")?,
            _ => role_mappings.push((GroupId(get(row, "group_id")?), RoleId(get(row, "role_id")?))),
        }
    }
    role_mappings.sort();
    Ok(((mapping, role_mappings), tree, version))
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

    async fn mapping_rules(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<MappingRules> {
        let q = Stmt::new(rules_parts!()).arg(env.0).arg(provider.0);
        let rows = self.rows(&q).await?;
        Ok(tagged_parts(&rows)?.0)
    }

    async fn rules_and_org_tree(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        known: Option<i64>,
    ) -> StoreResult<(MappingRules, OrgTreeRead)> {
        let q = if super::super::KEEPS_TREE_VERSION {
            Stmt::new(concat!(
                tree_parts!(tree_unless_known!()),
                " union all ",
                rules_parts!(),
                " union all ",
                tree_version_part!()
            ))
            .arg(env.0)
            .arg(provider.0)
            .arg(known)
        } else {
            // Without a token the tree is read every time, by the statement of old: PostgreSQL
            // plans the conditions above on every bind, which cost it more than reading the tree.
            Stmt::new(concat!(tree_parts!(), " union all ", rules_parts!()))
                .arg(env.0)
                .arg(provider.0)
        };
        let rows = self.rows(&q).await?;
        let (rules, tree, version) = tagged_parts(&rows)?;
        let unchanged = known.is_some() && version == known;
        Ok((
            rules,
            OrgTreeRead {
                version,
                tree: (!unchanged).then_some(tree),
            },
        ))
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
