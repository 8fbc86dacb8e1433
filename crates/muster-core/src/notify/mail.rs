//! The mail queue's side in the core: an instance takes a message's lease, the mail task sends
//! it, and the outcome is recorded: sent, retried with backoff, or given up on after
//! `mail_give_up_after_secs` (logged as an error). The lease keeps other instances off the
//! message while it is being sent, so each message goes out once; an instance that dies after
//! the SMTP server took the message but before recording it leaves it to be sent again after
//! the lease (at least once, as every mail system).

use crate::error::CoreResult;
use crate::model::{Actor, Mail, Outcome, SyncLogEntry};
use crate::muster::Muster;
use crate::synclog::event::Event;
use serde_json::json;

/// How long an instance holds a message it is sending (the SMTP timeout is well below).
pub const LEASE_SECS: i64 = 120;

impl Muster {
    /// Takes the next message due, if any.
    pub async fn next_mail(&self) -> CoreResult<Option<Mail>> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let m = tx.claim_due_mail(now, now.plus_secs(LEASE_SECS)).await?;
        tx.commit().await?;
        Ok(m)
    }

    /// Records how sending went: `Ok` with the server's answer, or `Err` with why it failed.
    pub async fn mail_done(&self, m: &Mail, outcome: Result<String, String>) -> CoreResult<()> {
        let now = self.now();
        let s = &self.settings.notify;
        let mut tx = self.store.write().await?;
        let entry = |event: Event, result: Outcome, message: String| SyncLogEntry {
            environment_id: m.environment_id,
            at: now,
            provider_id: None,
            actor: Actor::System,
            action: event,
            subject_kind: Some("mail".into()),
            subject_id: Some(m.id.to_string()),
            subject_name: Some(m.recipient.clone()),
            details: json!({"kind": m.kind, "attempts": m.attempts + 1}),
            outcome: result,
            message: Some(message),
        };
        match outcome {
            Ok(answer) => {
                tx.mail_sent(m.id, now).await?;
                self.record(&mut tx, &[entry(Event::MailSent, Outcome::Success, answer)])
                    .await?;
            }
            Err(why) => {
                let waited = now.micros() - m.created_at.micros();
                if waited >= s.mail_give_up_after_secs * 1_000_000 {
                    tx.mail_failed(m.id, now, None, &why).await?;
                    self.record(
                        &mut tx,
                        &[entry(
                            Event::MailFailed,
                            Outcome::Error,
                            format!("not sent after {} attempts: {why}", m.attempts + 1),
                        )],
                    )
                    .await?;
                } else {
                    let exp = m.attempts.clamp(0, 10);
                    let wait = (s.mail_retry_base_secs.max(1) << exp).min(3600);
                    tx.mail_failed(m.id, now, Some(now.plus_secs(wait)), &why)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Messages waiting, messages given up on, and providers held by the mass-deactivation
    /// guard (for `/metrics`).
    pub async fn mail_status(&self) -> CoreResult<(u64, u64, u64)> {
        let mut tx = self.store.read().await?;
        Ok(tx.mail_status().await?)
    }
}
