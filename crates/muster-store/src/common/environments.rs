//! Environments.

use super::*;

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
