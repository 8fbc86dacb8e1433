//! Provisioning providers and their tokens.

use super::*;

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
