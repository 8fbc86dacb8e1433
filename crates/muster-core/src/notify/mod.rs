//! Telling administrators (docs/notifications.md): email notices queued in the database in the
//! transaction of what they report ([`Muster::notify`]), sent by the mail task ([`mail`]); the
//! daily sync report and the error emails ([`report`]); the mass-deactivation guard ([`guard`]);
//! provider health ([`health`]).
//!
//! A queued message holds the notice's kind and data, not its text: the text is written when it
//! is sent, from the templates of the interface that sends it, with the console's links.

pub mod guard;
pub mod health;
pub mod mail;
pub mod report;

use crate::clock::Timestamp;
use crate::error::{CoreError, CoreResult};
use crate::ids::{AdminId, EnvironmentId};
use crate::model::{Actor, AdminAccount, AdminRole, ReportPreference};
use crate::muster::Muster;
use crate::store::Tx;
use crate::synclog::admin_entry;
use crate::synclog::event::Event;
use serde_json::{json, Value};

/// Who a notice goes to, among the administrators with an email address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Customer Cloud Admins (security notices).
    CloudAdmins,
    /// Those who manage providers: Customer Cloud Admins and Identity Management Administrators
    /// (the mass-deactivation guard).
    ProviderManagers,
    /// Everyone whose report preference is not Never (error emails).
    ErrorReaders,
    /// The daily report: Daily, and Only on errors when `errors` is true.
    Report {
        /// Whether the day had errors.
        errors: bool,
    },
}

impl Audience {
    fn includes(self, a: &AdminAccount) -> bool {
        match self {
            Audience::CloudAdmins => a.role == AdminRole::CustomerCloudAdmin,
            Audience::ProviderManagers => a.role != AdminRole::AuditLogViewer,
            Audience::ErrorReaders => a.report != ReportPreference::Never,
            Audience::Report { errors } => match a.report {
                ReportPreference::Daily => true,
                ReportPreference::Errors => errors,
                ReportPreference::Never => false,
            },
        }
    }
}

/// The kinds of notice, as queued.
pub mod kinds {
    /// A test message (`muster notify test`).
    pub const TEST: &str = "test";
    /// An administrator was created, given a role, or removed.
    pub const ADMIN_CHANGED: &str = "admin_changed";
    /// The mass-deactivation guard tripped.
    pub const GUARD_TRIPPED: &str = "guard_tripped";
    /// Provisioning errors of one provider.
    pub const ERRORS: &str = "errors";
    /// The daily directory sync report.
    pub const REPORT: &str = "report";
}

/// Checks an email address: one `@`, something on both sides, no spaces or angle brackets
/// (the SMTP library checks it again when sending).
pub fn check_email(email: &str) -> CoreResult<String> {
    let e = email.trim();
    let ok = e.len() <= 254
        && e.split('@').count() == 2
        && e.split('@').all(|p| !p.is_empty())
        && !e.contains(|c: char| c.is_whitespace() || "<>,;\"".contains(c));
    if ok {
        Ok(e.to_string())
    } else {
        Err(CoreError::Invalid(format!(
            "'{email}' is not an email address"
        )))
    }
}

impl Muster {
    /// Queues `kind` with `data` for every administrator of the audience who has an email
    /// address, in this transaction (so the notice exists exactly when what it reports
    /// committed). Nothing is queued when no SMTP server is configured. Returns how many.
    pub(crate) async fn notify(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        audience: Audience,
        kind: &str,
        data: &Value,
    ) -> CoreResult<usize> {
        if !self.settings.notify.mail_enabled {
            return Ok(0);
        }
        let now = self.now();
        let mut n = 0;
        for a in tx.list_admins(env).await? {
            let Some(email) = a.email.as_deref().filter(|_| audience.includes(&a)) else {
                continue;
            };
            tx.insert_mail(env, email, kind, data, now).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Queues a test message to `to` (`muster notify test`); the mail task sends it.
    pub async fn queue_test_mail(&self, env: EnvironmentId, to: &str) -> CoreResult<()> {
        let to = check_email(to)?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        tx.insert_mail(env, &to, kinds::TEST, &json!({"at": now.to_rfc3339()}), now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets an administrator's email address (`None` removes it) and report preference.
    pub async fn set_admin_notifications(
        &self,
        env: EnvironmentId,
        id: AdminId,
        email: Option<Option<String>>,
        report: Option<ReportPreference>,
        actor: &Actor,
    ) -> CoreResult<AdminAccount> {
        let email = match email {
            Some(Some(e)) if !e.trim().is_empty() => Some(Some(check_email(&e)?)),
            Some(_) => Some(None),
            None => None,
        };
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut a = tx
            .list_admins(env)
            .await?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| CoreError::NotFound(format!("no administrator with id {id}")))?;
        if let Some(e) = email {
            a.email = e;
        }
        if let Some(r) = report {
            a.report = r;
        }
        tx.set_admin_notifications(env, id, a.email.as_deref(), a.report)
            .await?;
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::AdminNotificationsChanged,
                ("admin", id.to_string(), &a.username),
                json!({"email": a.email.is_some(), "report": a.report.as_str()}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(a)
    }
}

/// A timestamp as notices carry it.
pub(crate) fn at(t: Timestamp) -> String {
    t.to_rfc3339()
}
