//! Requests Muster rejects are logged too (docs/sync-log.md): an error entry with the
//! request and the reason. Refusals that come in floods (429) are counted per provider and
//! written as one entry a minute ([`crate::synclog::bursts`]).

use crate::clock::Timestamp;
use crate::error::CoreResult;
use crate::ids::EnvironmentId;
use crate::ids::ProviderId;
use crate::model::Actor;
use crate::model::Outcome;
use crate::model::SyncLogEntry;
use crate::muster::Muster;
use crate::synclog::bursts::{Admit, Burst, FLOOD_STATUS};
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

fn entry(
    env: EnvironmentId,
    provider: ProviderId,
    at: Timestamp,
    details: serde_json::Value,
    message: String,
) -> SyncLogEntry {
    SyncLogEntry {
        environment_id: env,
        at,
        provider_id: Some(provider),
        actor: Actor::Provider { id: provider },
        action: Event::RequestRejected,
        subject_kind: None,
        subject_id: None,
        subject_name: None,
        details,
        outcome: Outcome::Error,
        message: Some(message.chars().take(1000).collect()),
    }
}

/// The entry that stands for the refusals a window counted.
fn counted(env: EnvironmentId, provider: ProviderId, b: &Burst, at: Timestamp) -> SyncLogEntry {
    let details = json!({
        "method": b.method, "path": b.path, "status": FLOOD_STATUS, "scimType": null,
        "repeated": b.repeated, "first": b.first.to_rfc3339(), "last": b.last.to_rfc3339(),
    });
    let message = format!(
        "{} more requests refused with {FLOOD_STATUS} between {} and {} (counted, not logged one by one); the last: {}",
        b.repeated,
        b.first.to_rfc3339(),
        b.last.to_rfc3339(),
        b.detail
    );
    entry(env, provider, at, details, message)
}

impl Muster {
    /// Records a SCIM request Muster refused or failed: its method, path, status and reason
    /// (never its credentials). A 429 is written only if it is the provider's first in a
    /// window of [`crate::synclog::bursts::WINDOW_SECS`]; the others are counted, and written
    /// as one entry when the window ends ([`Muster::write_counted_rejections`]).
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
        let now = self.now();
        let mut entries = Vec::with_capacity(2);
        if status == FLOOD_STATUS {
            match self
                .memo
                .refused
                .admit((env, provider), now, method, path, detail)
            {
                Admit::Counted => return Ok(()),
                Admit::Write(closed) => {
                    entries.extend(closed.map(|b| counted(env, provider, &b, now)));
                }
            }
        }
        entries.push(entry(
            env,
            provider,
            now,
            json!({"method": method, "path": path, "status": status, "scimType": scim_type}),
            detail.to_string(),
        ));
        let mut tx = self.store.write().await?;
        self.record(&mut tx, &entries).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes the count of each provider's refusals whose window has ended (every window, when
    /// `all`: the server is stopping). The server calls it every second; returns how many
    /// entries it wrote.
    pub async fn write_counted_rejections(&self, all: bool) -> CoreResult<usize> {
        let now = self.now();
        let due = self.memo.refused.take_due(now, all);
        if due.is_empty() {
            return Ok(0);
        }
        let entries: Vec<SyncLogEntry> = due
            .iter()
            .map(|((env, provider), b)| counted(*env, *provider, b, now))
            .collect();
        let mut tx = self.store.write().await?;
        self.record(&mut tx, &entries).await?;
        tx.commit().await?;
        Ok(entries.len())
    }
}
