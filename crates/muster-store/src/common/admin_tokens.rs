//! Administrator API tokens.

use super::*;

const ADMIN_TOKEN_COLS: &str = "admin_token_id, environment_id, label, prefix, created_at, expires_at, revoked_at, last_used_at, scopes";

/// Scopes as stored: comma-separated names.
fn scopes_text(scopes: &Option<Vec<Scope>>) -> Option<String> {
    scopes
        .as_ref()
        .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(","))
}

fn scopes_from(text: Option<String>) -> StoreResult<Option<Vec<Scope>>> {
    text.map(|t| {
        t.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| Scope::parse(s).ok_or_else(|| StoreError::Corrupt(format!("scope '{s}'"))))
            .collect()
    })
    .transpose()
}

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
        scopes: scopes_from(get(row, "scopes")?)?,
    })
}

#[async_trait]
impl AdminTokenStore for DbTx {
    async fn insert_admin_token(&mut self, t: &AdminToken, hash: &[u8]) -> StoreResult<()> {
        self.exec(&Stmt::new("insert into admin_token (admin_token_id, environment_id, label, prefix, token_hash, created_at, expires_at, \
             revoked_at, last_used_at, scopes) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)").arg(t.id.0).arg(t.environment_id.0).arg(&t.label).arg(&t.prefix).arg(hash.to_vec()).arg(t.created_at.0).arg(t.expires_at.map(|x| x.0)).arg(t.revoked_at.map(|x| x.0)).arg(t.last_used_at.map(|x| x.0)).arg(scopes_text(&t.scopes))).await?;
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

    async fn list_admin_tokens(
        &mut self,
        env: EnvironmentId,
        apps: bool,
    ) -> StoreResult<Vec<AdminToken>> {
        let which = if apps {
            "scopes is not null"
        } else {
            "scopes is null"
        };
        let rows = self.rows(&Stmt::new(format!(
            "select {ADMIN_TOKEN_COLS} from admin_token where environment_id = $1 and {which} order by created_at desc, admin_token_id desc"
        )).arg(env.0)).await?;
        rows.iter().map(admin_token_from).collect()
    }

    async fn replace_admin_token_secret(
        &mut self,
        env: EnvironmentId,
        id: AdminTokenId,
        prefix: &str,
        hash: &[u8],
    ) -> StoreResult<bool> {
        let done = self.exec(&Stmt::new("update admin_token set prefix = $1, token_hash = $2 where environment_id = $3 and admin_token_id = $4 and revoked_at is null").arg(prefix).arg(hash.to_vec()).arg(env.0).arg(id.0)).await?;
        Ok(done == 1)
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
