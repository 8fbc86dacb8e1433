//! Console sign-in and sessions: password sign-in slowed down after repeated failures, sessions
//! that end after inactivity or a maximum age, and sign-out.

use crate::admins::blocking;
use crate::admins::decoy_hash;
use crate::admins::verify_password;
use crate::auth::secret as token;
use crate::clock::Timestamp;
use crate::error::CoreError;
use crate::error::CoreResult;
use crate::ids::EnvironmentId;
use crate::ids::SessionId;
use crate::model::name_key as key;
use crate::model::Actor;
use crate::model::AdminAccount;
use crate::model::AdminSession;
use crate::model::Outcome;
use crate::model::SyncLogEntry;
use crate::muster::Muster;
use crate::synclog::admin_entry;
use crate::synclog::event::Event;
use rand::RngCore;
use serde_json::json;

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

impl Muster {
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
        if let Some(refused) = self.password_refused(&admin) {
            return Ok(Err(refused));
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
            self.record(
                &mut tx,
                &[SyncLogEntry {
                    environment_id: env,
                    at: now,
                    provider_id: None,
                    actor: Actor::Admin {
                        name: format!("console:{}", admin.username),
                    },
                    action: Event::AdminSignInFailed,
                    subject_kind: Some("admin".into()),
                    subject_id: Some(admin.id.to_string()),
                    subject_name: Some(admin.username.clone()),
                    details: json!({"failuresInARow": admin.failed_sign_ins}),
                    outcome: Outcome::Error,
                    message: Some("wrong password".into()),
                }],
            )
            .await?;
            tx.commit().await?;
            return Ok(Err(wrong()));
        }
        let signed = self
            .start_session(&mut tx, admin, now, json!({"via": "password"}))
            .await?;
        tx.commit().await?;
        Ok(Ok(signed))
    }

    /// Why password sign-in is refused to this administrator, if it is: one made from the
    /// identity provider has no password; with password sign-in limited to break-glass accounts,
    /// only those may use it.
    fn password_refused(&self, admin: &AdminAccount) -> Option<SignInRefused> {
        let refuse = |message: &str| {
            Some(SignInRefused {
                message: message.into(),
                retry_after: None,
            })
        };
        if admin.oidc_subject.is_some() {
            return refuse("This administrator signs in with the company's identity provider.");
        }
        match &self.settings.console.break_glass {
            Some(names) if !names.iter().any(|n| key(n) == key(&admin.username)) => refuse(
                "Password sign-in is only for break-glass accounts: sign in with the company's identity provider.",
            ),
            _ => None,
        }
    }

    /// Opens a session for `admin` in this transaction and records the sign-in.
    pub(crate) async fn start_session(
        &self,
        tx: &mut Box<dyn crate::store::Tx>,
        mut admin: AdminAccount,
        now: Timestamp,
        details: serde_json::Value,
    ) -> CoreResult<SignedIn> {
        admin.failed_sign_ins = 0;
        admin.locked_until = None;
        admin.last_sign_in_at = Some(now);
        tx.update_admin_sign_in(&admin).await?;
        let secret = token::generate_with(SESSION_PREFIX);
        let mut csrf = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut csrf);
        let session = AdminSession {
            environment_id: admin.environment_id,
            id: SessionId::new(),
            admin_id: admin.id,
            csrf_token: hex::encode(csrf),
            created_at: now,
            last_seen_at: now,
            expires_at: Timestamp(now.0 + SESSION_MAX_SECS * 1_000_000),
            revoked_at: None,
        };
        tx.insert_session(&session, &secret.hash).await?;
        self.record(
            tx,
            &[admin_entry(
                admin.environment_id,
                now,
                &Actor::Admin {
                    name: format!("console:{}", admin.username),
                },
                Event::AdminSignedIn,
                ("admin", admin.id.to_string(), &admin.username),
                details,
            )],
        )
        .await?;
        Ok(SignedIn {
            secret: secret.secret,
            session,
            admin,
        })
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

    /// The console sessions that are live now (not signed out, not past their maximum age, not
    /// idle too long), most recently used first, with their administrators.
    pub async fn live_sessions(
        &self,
        env: EnvironmentId,
    ) -> CoreResult<Vec<(AdminSession, AdminAccount)>> {
        let now = self.now();
        let mut tx = self.store.read().await?;
        Ok(tx
            .open_sessions(env, now)
            .await?
            .into_iter()
            .filter(|(s, _)| now.0 - s.last_seen_at.0 <= SESSION_IDLE_SECS * 1_000_000)
            .collect())
    }

    /// Ends another administrator's session (a Customer Cloud Admin's action), logged.
    pub async fn end_session(
        &self,
        env: EnvironmentId,
        session: SessionId,
        actor: &Actor,
    ) -> CoreResult<()> {
        let live = self.live_sessions(env).await?;
        let Some((s, admin)) = live.into_iter().find(|(s, _)| s.id == session) else {
            return Err(CoreError::NotFound("no such live session".into()));
        };
        let now = self.now();
        let mut tx = self.store.write().await?;
        tx.revoke_session(s.id, now).await?;
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::AdminSessionEnded,
                ("admin", admin.id.to_string(), &admin.username),
                json!({"session_started": s.created_at.to_rfc3339()}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a session, and records who signed out.
    pub async fn sign_out(&self, session: SessionId, admin: &AdminAccount) -> CoreResult<()> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        tx.revoke_session(session, now).await?;
        self.record(
            &mut tx,
            &[admin_entry(
                admin.environment_id,
                now,
                &Actor::Admin {
                    name: format!("console:{}", admin.username),
                },
                Event::AdminSignedOut,
                ("admin", admin.id.to_string(), &admin.username),
                json!({}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
