//! Application credentials: API tokens (`mapp_…`) for the applications Muster serves, separate
//! from administrator tokens. Each has scopes (`directory:read`, `events:read`) and can read
//! nothing else and change nothing; shown once, stored hashed, rotatable and revocable. They are
//! administrator-token rows with scopes, so one check authenticates both.

use crate::auth::admin_tokens::CreatedAdminToken;
use crate::auth::secret as token;
use crate::error::CoreError;
use crate::error::CoreResult;
use crate::ids::AdminTokenId;
use crate::ids::EnvironmentId;
use crate::model::Actor;
use crate::model::AdminToken;
use crate::model::Scope;
use crate::muster::Muster;
use crate::synclog::admin_entry;
use crate::synclog::event::Event;
use serde_json::json;

/// Reads `directory:read,events:read`: at least one scope, each known, each once.
pub fn parse_scopes(text: &str) -> CoreResult<Vec<Scope>> {
    let mut out = Vec::new();
    for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let scope = Scope::parse(name).ok_or_else(|| {
            let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            CoreError::Invalid(format!(
                "'{name}' is not a scope; scopes are {}",
                known.join(", ")
            ))
        })?;
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    if out.is_empty() {
        return Err(CoreError::Invalid(
            "give at least one scope: directory:read, events:read".into(),
        ));
    }
    out.sort();
    Ok(out)
}

impl Muster {
    /// Creates an application credential (its secret shown once).
    pub async fn create_app(
        &self,
        env: EnvironmentId,
        name: &str,
        scopes: &[Scope],
        actor: &Actor,
    ) -> CoreResult<CreatedAdminToken> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(CoreError::Invalid(
                "an application's name is 1 to 100 characters".into(),
            ));
        }
        if scopes.is_empty() {
            return Err(CoreError::Invalid(
                "give at least one scope: directory:read, events:read".into(),
            ));
        }
        let now = self.now();
        let secret = token::generate_with(token::APP_TOKEN_PREFIX);
        let t = AdminToken {
            environment_id: env,
            id: AdminTokenId::new(),
            label: name.into(),
            prefix: secret.prefix.clone(),
            created_at: now,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            scopes: Some(scopes.to_vec()),
        };
        let mut tx = self.store.write().await?;
        tx.insert_admin_token(&t, &secret.hash).await?;
        let scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::AppCreated,
                ("app", t.id.to_string(), &t.label),
                json!({"token": t.prefix, "scopes": scope_names}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedAdminToken {
            token: t,
            secret: secret.secret,
        })
    }

    /// Every application credential, newest first.
    pub async fn list_apps(&self, env: EnvironmentId) -> CoreResult<Vec<AdminToken>> {
        let mut tx = self.store.read().await?;
        Ok(tx.list_admin_tokens(env, true).await?)
    }

    async fn live_app(&self, env: EnvironmentId, id: AdminTokenId) -> CoreResult<AdminToken> {
        self.list_apps(env)
            .await?
            .into_iter()
            .find(|t| t.id == id && t.revoked_at.is_none())
            .ok_or_else(|| CoreError::NotFound(format!("no live application credential {id}")))
    }

    /// Gives an application credential a new secret (shown once); the old one stops at once.
    pub async fn rotate_app(
        &self,
        env: EnvironmentId,
        id: AdminTokenId,
        actor: &Actor,
    ) -> CoreResult<CreatedAdminToken> {
        let mut t = self.live_app(env, id).await?;
        let now = self.now();
        let secret = token::generate_with(token::APP_TOKEN_PREFIX);
        let mut tx = self.store.write().await?;
        if !tx
            .replace_admin_token_secret(env, id, &secret.prefix, &secret.hash)
            .await?
        {
            return Err(CoreError::NotFound(format!(
                "no live application credential {id}"
            )));
        }
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::AppRotated,
                ("app", id.to_string(), &t.label),
                json!({"token": secret.prefix}),
            )],
        )
        .await?;
        tx.commit().await?;
        // The answer shows the new secret's prefix.
        t.prefix = secret.prefix;
        Ok(CreatedAdminToken {
            token: t,
            secret: secret.secret,
        })
    }

    /// Revokes an application credential at once.
    pub async fn revoke_app(
        &self,
        env: EnvironmentId,
        id: AdminTokenId,
        actor: &Actor,
    ) -> CoreResult<()> {
        let t = self.live_app(env, id).await?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        if !tx.revoke_admin_token(env, id, now).await? {
            return Err(CoreError::NotFound(format!(
                "no live application credential {id}"
            )));
        }
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::AppRevoked,
                ("app", id.to_string(), &t.label),
                json!({"token": t.prefix}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_known_names_once_each() {
        assert_eq!(
            parse_scopes("events:read, directory:read,events:read").ok(),
            Some(vec![Scope::DirectoryRead, Scope::EventsRead])
        );
        assert!(parse_scopes("directory:write").is_err());
        assert!(parse_scopes(" , ").is_err());
    }
}
