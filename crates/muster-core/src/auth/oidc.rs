//! Console sign-in with the company's identity provider, the domain's half (docs/console.md):
//! sign-ins under way (state, nonce and PKCE verifier, each taken once), and the administrator an
//! ID token stands for: made just in time, given the most powerful role its groups map to, and
//! refused with the reason when none does. The protocol itself (discovery, the redirect, the
//! code exchange, the ID token's signature and claims) is the web interface's, with the
//! `openidconnect` crate.

use crate::admins::access_notice;
use crate::auth::secret;
use crate::auth::sessions::{SignInRefused, SignedIn};
use crate::clock::Timestamp;
use crate::error::CoreResult;
use crate::ids::{AdminId, EnvironmentId};
use crate::model::{Actor, AdminAccount, AdminRole, Outcome, ReportPreference, SyncLogEntry};
use crate::muster::Muster;
use crate::notify::{kinds, Audience};
use crate::synclog::event::Event;
use serde_json::json;

/// Who changes the access of an administrator made from the identity provider.
const BY_GROUPS: &str = "the identity provider's groups";

/// A sign-in must come back from the identity provider within this long.
pub const LOGIN_TTL_SECS: i64 = 600;

/// Who the identity provider says signed in, from a verified ID token.
#[derive(Debug, Clone)]
pub struct OidcIdentity {
    /// `issuer|sub`: stable, and unique across providers.
    pub subject: String,
    /// The name to show and sign in as (`preferred_username`, else the email, else `sub`).
    pub username: String,
    /// The email claim, if any.
    pub email: Option<String>,
    /// The role claim's values (`groups`).
    pub groups: Vec<String>,
}

fn state_key(state: &str) -> String {
    hex::encode(secret::hash(state))
}

impl Muster {
    /// The most powerful role the groups map to.
    pub fn role_for_groups(&self, groups: &[String]) -> Option<AdminRole> {
        self.settings
            .console
            .oidc_roles
            .iter()
            .filter(|(g, _)| groups.iter().any(|x| x == g))
            .map(|(_, r)| *r)
            .max_by_key(|r| r.rank())
    }

    /// Records a sign-in under way.
    pub async fn oidc_begin(
        &self,
        env: EnvironmentId,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> CoreResult<()> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        tx.prune_oidc_logins(now.plus_secs(-LOGIN_TTL_SECS)).await?;
        tx.insert_oidc_login(env, &state_key(state), nonce, verifier, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes the sign-in `state` names, once: its environment, nonce and verifier; `None` when
    /// there is none (tampered, replayed) or it is too old.
    pub async fn oidc_take(
        &self,
        state: &str,
    ) -> CoreResult<Option<(EnvironmentId, String, String)>> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let taken = tx.take_oidc_login(&state_key(state)).await?;
        tx.commit().await?;
        Ok(taken
            .filter(|(_, _, _, at)| now.micros() - at.micros() <= LOGIN_TTL_SECS * 1_000_000)
            .map(|(env, nonce, verifier, _)| (env, nonce, verifier)))
    }

    /// Signs in the administrator a verified ID token stands for: made just in time on first
    /// sign-in; given the role its groups map to each time (the identity provider decides);
    /// refused, with the reason, when no group maps to a role or the name is a local account's.
    pub async fn oidc_sign_in(
        &self,
        env: EnvironmentId,
        who: &OidcIdentity,
    ) -> CoreResult<Result<SignedIn, SignInRefused>> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let refuse = |message: String| SignInRefused {
            message,
            retry_after: None,
        };
        let Some(role) = self.role_for_groups(&who.groups) else {
            let why = if who.groups.is_empty() {
                "Your identity provider sent no groups for you, so none of them gives a Muster role. Ask an administrator to add you to a group mapped to a Muster role.".to_string()
            } else {
                format!(
                    "None of your groups ({}) gives a Muster role. Ask an administrator to add you to a group mapped to a Muster role.",
                    who.groups.join(", ")
                )
            };
            self.log_refusal(&mut tx, env, who, now, &why).await?;
            tx.commit().await?;
            return Ok(Err(refuse(why)));
        };
        let admin = match tx.find_admin_by_oidc_subject(env, &who.subject).await? {
            Some(mut a) => {
                if a.role != role {
                    // The identity provider's groups changed: sessions with the old role end.
                    tx.set_admin_role(env, a.id, role).await?;
                    tx.revoke_sessions_of(a.id, now).await?;
                    let notice =
                        access_notice(&a, "role_changed", role, Some(a.role), BY_GROUPS, now);
                    a.role = role;
                    self.notify(
                        &mut tx,
                        env,
                        Audience::CloudAdmins,
                        kinds::ADMIN_CHANGED,
                        &notice,
                    )
                    .await?;
                }
                a
            }
            None => {
                let name_key = crate::model::name_key(&who.username);
                if tx.find_admin_by_username(env, &name_key).await?.is_some() {
                    let why = format!(
                        "An administrator named '{}' already exists in Muster with a password. Ask a Customer Cloud Admin to rename or remove it, then sign in again.",
                        who.username
                    );
                    self.log_refusal(&mut tx, env, who, now, &why).await?;
                    tx.commit().await?;
                    return Ok(Err(refuse(why)));
                }
                let a = AdminAccount {
                    environment_id: env,
                    id: AdminId::new(),
                    username: who.username.clone(),
                    role,
                    created_at: now,
                    last_sign_in_at: None,
                    failed_sign_ins: 0,
                    locked_until: None,
                    email: who.email.clone(),
                    report: if role == AdminRole::CustomerCloudAdmin {
                        ReportPreference::Daily
                    } else {
                        ReportPreference::Never
                    },
                    oidc_subject: Some(who.subject.clone()),
                };
                // No password: "!" is no PHC string, so no password ever matches it.
                tx.insert_admin(&a, "!").await?;
                tx.set_admin_notifications(env, a.id, a.email.as_deref(), a.report)
                    .await?;
                tx.set_admin_oidc_subject(a.id, &who.subject).await?;
                self.record(
                    &mut tx,
                    &[crate::synclog::admin_entry(
                        env,
                        now,
                        &Actor::System,
                        Event::AdminCreated,
                        ("admin", a.id.to_string(), &a.username),
                        json!({"role": role.as_str(), "via": "oidc", "groups": who.groups}),
                    )],
                )
                .await?;
                let notice = access_notice(&a, "created", role, None, BY_GROUPS, now);
                self.notify(
                    &mut tx,
                    env,
                    Audience::CloudAdmins,
                    kinds::ADMIN_CHANGED,
                    &notice,
                )
                .await?;
                a
            }
        };
        let signed = self
            .start_session(
                &mut tx,
                admin,
                now,
                json!({"via": "oidc", "role": role.as_str(), "groups": who.groups}),
            )
            .await?;
        tx.commit().await?;
        Ok(Ok(signed))
    }

    async fn log_refusal(
        &self,
        tx: &mut Box<dyn crate::store::Tx>,
        env: EnvironmentId,
        who: &OidcIdentity,
        now: Timestamp,
        why: &str,
    ) -> CoreResult<()> {
        self.record(
            tx,
            &[SyncLogEntry {
                environment_id: env,
                at: now,
                provider_id: None,
                actor: Actor::System,
                action: Event::AdminSignInRefused,
                subject_kind: Some("admin".into()),
                subject_id: None,
                subject_name: Some(who.username.clone()),
                details: json!({"via": "oidc", "groups": who.groups}),
                outcome: Outcome::Error,
                message: Some(why.to_string()),
            }],
        )
        .await
    }
}
