//! Console administrators: accounts with argon2id password hashes and the password rules.

use crate::error::CoreError;
use crate::error::CoreResult;
use crate::error::StoreError;
use crate::ids::AdminId;
use crate::ids::EnvironmentId;
use crate::model::name_key as key;
use crate::model::Actor;
use crate::model::AdminAccount;
use crate::model::AdminRole;
use crate::model::Outcome;
use crate::model::SyncLogEntry;
use crate::muster::Muster;
use crate::notify::{kinds, Audience};
use crate::synclog::event::Event;
use argon2::password_hash::PasswordHash;
use argon2::password_hash::SaltString;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use rand::RngCore;
use serde_json::json;
use std::sync::OnceLock;

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

pub(crate) fn hash_password(password: &str) -> CoreResult<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|_| CoreError::Invalid("could not make a password salt".into()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| CoreError::Invalid("could not hash the password".into()))
}

pub(crate) fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the username is unknown, so that the answer takes as long.
pub(crate) fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never valid").unwrap_or_default())
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> CoreResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| StoreError::Corrupt("a password check did not finish".into()).into())
}

/// Checks a new password: long enough, not the username.
pub fn check_password(username: &str, password: &str) -> CoreResult<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(CoreError::Invalid(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if key(password) == key(username) {
        return Err(CoreError::Invalid(
            "the password must not be the username".into(),
        ));
    }
    Ok(())
}

/// The security notice of a change to an administrator's access, made `by` someone (an
/// administrator's name, or the identity provider's groups).
pub(crate) fn access_notice(
    a: &AdminAccount,
    change: &str,
    role: AdminRole,
    before: Option<AdminRole>,
    by: &str,
    now: crate::clock::Timestamp,
) -> serde_json::Value {
    json!({
        "admin": a.username, "change": change, "role": role.title(),
        "before": before.map(AdminRole::title), "by": by, "at": now.to_rfc3339(),
    })
}

/// Who made a change, as notices name them.
fn by(actor: &Actor) -> String {
    match actor {
        Actor::Admin { name } => name.clone(),
        Actor::Provider { id } => format!("provider {id}"),
        Actor::System => "Muster".into(),
    }
}

impl Muster {
    /// Adds an administrator who signs in to the console with a password.
    pub async fn create_admin(
        &self,
        env: EnvironmentId,
        username: &str,
        password: &str,
        role: AdminRole,
        actor: &Actor,
    ) -> CoreResult<AdminAccount> {
        let username = username.trim().to_string();
        let n = username.chars().count();
        if n == 0 || n > 64 || username.chars().any(char::is_whitespace) {
            return Err(CoreError::Invalid(
                "a username has 1 to 64 characters and no spaces".into(),
            ));
        }
        check_password(&username, password)?;
        let pw = password.to_string();
        let hash = blocking(move || hash_password(&pw)).await??;
        let now = self.now();
        let a = AdminAccount {
            environment_id: env,
            id: AdminId::new(),
            username: username.clone(),
            role,
            created_at: now,
            last_sign_in_at: None,
            failed_sign_ins: 0,
            locked_until: None,
            email: None,
            oidc_subject: None,
            // Customer Cloud Admins get the daily report unless they choose otherwise.
            report: if role == AdminRole::CustomerCloudAdmin {
                crate::model::ReportPreference::Daily
            } else {
                crate::model::ReportPreference::Never
            },
        };
        let mut tx = self.store.write().await?;
        if tx
            .find_admin_by_username(env, &key(&username))
            .await?
            .is_some()
        {
            return Err(CoreError::Conflict(format!(
                "there is already an administrator named '{username}'"
            )));
        }
        tx.insert_admin(&a, &hash).await.map_err(|e| match e {
            StoreError::Conflict(_) => CoreError::Conflict(format!(
                "there is already an administrator named '{username}'"
            )),
            other => other.into(),
        })?;
        self.record(
            &mut tx,
            &[SyncLogEntry {
                environment_id: env,
                at: now,
                provider_id: None,
                actor: actor.clone(),
                action: Event::AdminCreated,
                subject_kind: Some("admin".into()),
                subject_id: Some(a.id.to_string()),
                subject_name: Some(a.username.clone()),
                details: json!({"role": role.as_str()}),
                outcome: Outcome::Success,
                message: None,
            }],
        )
        .await?;
        let notice = access_notice(&a, "created", role, None, &by(actor), now);
        self.notify(
            &mut tx,
            env,
            Audience::CloudAdmins,
            kinds::ADMIN_CHANGED,
            &notice,
        )
        .await?;
        tx.commit().await?;
        Ok(a)
    }

    /// Every administrator of the environment.
    pub async fn list_admins(&self, env: EnvironmentId) -> CoreResult<Vec<AdminAccount>> {
        let mut tx = self.store.read().await?;
        Ok(tx.list_admins(env).await?)
    }

    /// The administrator `id`, refusing a change that would leave no Customer Cloud Admin (no
    /// one could then manage administrators from the console).
    async fn changeable_admin(
        tx: &mut Box<dyn crate::store::Tx>,
        env: EnvironmentId,
        id: AdminId,
        new_role: Option<AdminRole>,
    ) -> CoreResult<AdminAccount> {
        let admins = tx.list_admins(env).await?;
        let a = admins
            .iter()
            .find(|a| a.id == id)
            .cloned()
            .ok_or_else(|| CoreError::NotFound(format!("no administrator with id {id}")))?;
        let ccas = admins
            .iter()
            .filter(|x| x.role == AdminRole::CustomerCloudAdmin)
            .count();
        let loses_cca = a.role == AdminRole::CustomerCloudAdmin
            && new_role != Some(AdminRole::CustomerCloudAdmin);
        if loses_cca && ccas <= 1 {
            return Err(CoreError::Invalid(
                "this is the last Customer Cloud Admin: give another administrator that role first"
                    .into(),
            ));
        }
        Ok(a)
    }

    /// Gives an administrator another role. Their console sessions end at once: they sign in
    /// again with what the new role allows.
    pub async fn set_admin_role(
        &self,
        env: EnvironmentId,
        id: AdminId,
        role: AdminRole,
        actor: &Actor,
    ) -> CoreResult<AdminAccount> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut a = Self::changeable_admin(&mut tx, env, id, Some(role)).await?;
        if a.role == role {
            return Ok(a);
        }
        let before = a.role;
        tx.set_admin_role(env, id, role).await?;
        tx.revoke_sessions_of(id, now).await?;
        a.role = role;
        self.record(
            &mut tx,
            &[crate::synclog::admin_entry(
                env,
                now,
                actor,
                Event::AdminRoleChanged,
                ("admin", id.to_string(), &a.username),
                json!({"before": before.as_str(), "after": role.as_str()}),
            )],
        )
        .await?;
        let notice = access_notice(&a, "role_changed", role, Some(before), &by(actor), now);
        self.notify(
            &mut tx,
            env,
            Audience::CloudAdmins,
            kinds::ADMIN_CHANGED,
            &notice,
        )
        .await?;
        tx.commit().await?;
        Ok(a)
    }

    /// Removes an administrator; their console sessions end at once.
    pub async fn remove_admin(
        &self,
        env: EnvironmentId,
        id: AdminId,
        actor: &Actor,
    ) -> CoreResult<()> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let a = Self::changeable_admin(&mut tx, env, id, None).await?;
        tx.delete_admin(env, id).await?;
        self.record(
            &mut tx,
            &[crate::synclog::admin_entry(
                env,
                now,
                actor,
                Event::AdminRemoved,
                ("admin", id.to_string(), &a.username),
                json!({"role": a.role.as_str()}),
            )],
        )
        .await?;
        let notice = access_notice(&a, "removed", a.role, None, &by(actor), now);
        self.notify(
            &mut tx,
            env,
            Audience::CloudAdmins,
            kinds::ADMIN_CHANGED,
            &notice,
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
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap_or_default();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterx", &h));
        assert!(!verify_password("x", "not a hash"));
        let again = hash_password("correct horse battery").unwrap_or_default();
        assert_ne!(h, again, "salted");
    }

    #[test]
    fn weak_passwords_are_refused() {
        assert!(check_password("ada", "short").is_err());
        assert!(check_password("ada-lovelace", "ADA-LOVELACE").is_err());
        assert!(check_password("ada", "a long enough passphrase").is_ok());
    }
}
