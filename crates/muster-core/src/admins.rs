//! Console administrators: accounts with argon2id password hashes, sign-in slowed down after
//! repeated failures, and sessions that end after inactivity.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use serde_json::json;

use crate::clock::Timestamp;
use crate::error::{CoreError, CoreResult, StoreError};
use crate::ids::{AdminId, EnvironmentId, SessionId};
use crate::model::{Actor, AdminAccount, AdminRole, AdminSession, Outcome, SyncLogEntry};
use crate::service::Muster;
use crate::token;

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// A session ends after this long without a request.
pub const SESSION_IDLE_SECS: i64 = 30 * 60;
/// A session ends this long after sign-in, whatever happens.
pub const SESSION_MAX_SECS: i64 = 12 * 3600;
/// Failed sign-ins in a row before each further attempt must wait.
pub const FAILURES_BEFORE_DELAY: i64 = 5;
/// The longest wait after failures.
pub const MAX_DELAY_SECS: i64 = 15 * 60;
/// Every console session cookie secret starts with this.
pub const SESSION_PREFIX: &str = "mss_";

/// A signed-in session: the cookie secret (never stored), the session and its administrator.
#[derive(Debug)]
pub struct SignedIn {
    /// The cookie's value.
    pub secret: String,
    /// The session.
    pub session: AdminSession,
    /// Who signed in.
    pub admin: AdminAccount,
}

/// Why a sign-in was refused, in words fit for the sign-in page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInRefused {
    /// What to tell the person.
    pub message: String,
    /// Seconds to wait before trying again, when that is the reason.
    pub retry_after: Option<i64>,
}

fn hash_password(password: &str) -> CoreResult<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|_| CoreError::Invalid("could not make a password salt".into()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| CoreError::Invalid("could not hash the password".into()))
}

fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the username is unknown, so that the answer takes as long.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never valid").unwrap_or_default())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> CoreResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| StoreError::Corrupt("a password check did not finish".into()).into())
}

use crate::provisioning::name_key as key;

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
        tx.append_log(&[SyncLogEntry {
            environment_id: env,
            at: now,
            provider_id: None,
            actor: actor.clone(),
            action: "admin.created".into(),
            subject_kind: Some("admin".into()),
            subject_id: Some(a.id.to_string()),
            subject_name: Some(a.username.clone()),
            details: json!({"role": role.as_str()}),
            outcome: Outcome::Success,
            message: None,
        }])
        .await?;
        tx.commit().await?;
        Ok(a)
    }

    /// Every administrator of the environment.
    pub async fn list_admins(&self, env: EnvironmentId) -> CoreResult<Vec<AdminAccount>> {
        let mut tx = self.store.read().await?;
        Ok(tx.list_admins(env).await?)
    }

    /// Signs an administrator in. After [`FAILURES_BEFORE_DELAY`] failures in a row, each
    /// further attempt must wait (30 s, doubling, at most 15 minutes); the wait is checked before
    /// the password, so guessing gains nothing. An unknown username costs the same time as a
    /// wrong password and gets the same answer.
    pub async fn sign_in(
        &self,
        env: EnvironmentId,
        username: &str,
        password: &str,
    ) -> CoreResult<Result<SignedIn, SignInRefused>> {
        let wrong = || SignInRefused {
            message: "The username or password is not right.".into(),
            retry_after: None,
        };
        let found = {
            let mut tx = self.store.read().await?;
            tx.find_admin_by_username(env, &key(username)).await?
        };
        let now = self.now();
        let Some((mut admin, stored)) = found else {
            let pw = password.to_string();
            blocking(move || verify_password(&pw, decoy_hash())).await?;
            return Ok(Err(wrong()));
        };
        if let Some(until) = admin.locked_until.filter(|u| *u > now) {
            let secs = (until.0 - now.0 + 999_999) / 1_000_000;
            return Ok(Err(SignInRefused {
                message: format!(
                    "Too many failed sign-ins for this account: try again in {secs} seconds."
                ),
                retry_after: Some(secs),
            }));
        }
        let pw = password.to_string();
        let ok = blocking(move || verify_password(&pw, &stored)).await?;
        let mut tx = self.store.write().await?;
        if !ok {
            admin.failed_sign_ins += 1;
            if admin.failed_sign_ins >= FAILURES_BEFORE_DELAY {
                let steps = (admin.failed_sign_ins - FAILURES_BEFORE_DELAY).min(10) as u32;
                let delay = (30i64 << steps).min(MAX_DELAY_SECS);
                admin.locked_until = Some(Timestamp(now.0 + delay * 1_000_000));
            }
            tx.update_admin_sign_in(&admin).await?;
            tx.append_log(&[SyncLogEntry {
                environment_id: env,
                at: now,
                provider_id: None,
                actor: Actor::Admin {
                    name: format!("console:{}", admin.username),
                },
                action: "admin.sign_in_failed".into(),
                subject_kind: Some("admin".into()),
                subject_id: Some(admin.id.to_string()),
                subject_name: Some(admin.username.clone()),
                details: json!({"failuresInARow": admin.failed_sign_ins}),
                outcome: Outcome::Error,
                message: Some("wrong password".into()),
            }])
            .await?;
            tx.commit().await?;
            return Ok(Err(wrong()));
        }
        admin.failed_sign_ins = 0;
        admin.locked_until = None;
        admin.last_sign_in_at = Some(now);
        tx.update_admin_sign_in(&admin).await?;
        let secret = token::generate_with(SESSION_PREFIX);
        let mut csrf = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut csrf);
        let session = AdminSession {
            environment_id: env,
            id: SessionId::new(),
            admin_id: admin.id,
            csrf_token: hex::encode(csrf),
            created_at: now,
            last_seen_at: now,
            expires_at: Timestamp(now.0 + SESSION_MAX_SECS * 1_000_000),
            revoked_at: None,
        };
        tx.insert_session(&session, &secret.hash).await?;
        tx.commit().await?;
        Ok(Ok(SignedIn {
            secret: secret.secret,
            session,
            admin,
        }))
    }

    /// The live session a cookie secret names, and its administrator; `None` when there is none,
    /// it was signed out, it ran past its maximum age, or it sat idle too long.
    pub async fn console_session(
        &self,
        secret: &str,
    ) -> CoreResult<Option<(AdminSession, AdminAccount)>> {
        if !secret.starts_with(SESSION_PREFIX) {
            return Ok(None);
        }
        let hash = token::hash(secret);
        let found = {
            let mut tx = self.store.read().await?;
            tx.find_session_by_hash(&hash).await?
        };
        let now = self.now();
        let Some((session, admin)) = found else {
            return Ok(None);
        };
        let idle = now.0 - session.last_seen_at.0 > SESSION_IDLE_SECS * 1_000_000;
        if session.revoked_at.is_some() || now >= session.expires_at || idle {
            return Ok(None);
        }
        // Recorded at most once a minute: a page of requests costs one write.
        if now.0 - session.last_seen_at.0 > 60 * 1_000_000 {
            let mut tx = self.store.write().await?;
            tx.touch_session(session.id, now).await?;
            tx.commit().await?;
        }
        Ok(Some((session, admin)))
    }

    /// Ends a session.
    pub async fn sign_out(&self, session: SessionId) -> CoreResult<()> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        tx.revoke_session(session, now).await?;
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
