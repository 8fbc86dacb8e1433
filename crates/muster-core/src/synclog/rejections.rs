//! Requests Muster rejects are logged too (docs/sync-log.md): an error entry with the
//! request and the reason.

use crate::error::CoreResult;
use crate::ids::EnvironmentId;
use crate::ids::ProviderId;
use crate::model::Actor;
use crate::model::Outcome;
use crate::model::SyncLogEntry;
use crate::muster::Muster;
use crate::synclog::event::Event;
use serde_json::json;

/// A request Muster refused, as the sync log records it.
#[derive(Debug, Clone, Copy)]
pub struct Rejection<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The path, without the query string.
    pub path: &'a str,
    /// The status answered.
    pub status: u16,
    /// The SCIM error keyword, if any.
    pub scim_type: Option<&'a str>,
    /// Why.
    pub detail: &'a str,
}

impl Muster {
    /// Records a SCIM request Muster refused or failed: its method, path, status and reason
    /// (never its credentials).
    pub async fn record_rejection(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        r: &Rejection<'_>,
    ) -> CoreResult<()> {
        let Rejection {
            method,
            path,
            status,
            scim_type,
            detail,
        } = *r;
        let entry = SyncLogEntry {
            environment_id: env,
            at: self.now(),
            provider_id: Some(provider),
            actor: Actor::Provider { id: provider },
            action: Event::RequestRejected,
            subject_kind: None,
            subject_id: None,
            subject_name: None,
            details: json!({"method": method, "path": path, "status": status, "scimType": scim_type}),
            outcome: Outcome::Error,
            message: Some(detail.chars().take(1000).collect()),
        };
        let mut tx = self.store.write().await?;
        self.record(&mut tx, &[entry]).await?;
        tx.commit().await?;
        Ok(())
    }
}
