//! Provider health (docs/notifications.md): held (the mass-deactivation guard holds its
//! deactivations), erroring (errors over the last hour above a share of its sync-log entries,
//! and at least [`MIN_ERRORS`]), silent (no request for longer than the silence setting), or
//! healthy. The first that applies, in that order.

use crate::clock::Timestamp;
use crate::error::CoreResult;
use crate::ids::EnvironmentId;
use crate::model::Provider;
use crate::muster::Muster;
use serde::Serialize;

/// Fewer errors than this in an hour never make a provider "erroring".
pub const MIN_ERRORS: u64 = 3;

/// How a provider is doing.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Requests arrive and succeed.
    Healthy,
    /// No request for longer than the silence setting.
    Silent,
    /// Many of the last hour's changes failed.
    Erroring,
    /// The mass-deactivation guard holds its deactivations.
    Held,
}

impl Health {
    /// As shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Silent => "silent",
            Health::Erroring => "erroring",
            Health::Held => "held",
        }
    }
}

/// A provider's health and the figures behind it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderHealth {
    /// The verdict.
    pub health: Health,
    /// When one of its tokens last authenticated a request.
    pub last_request_at: Option<String>,
    /// Its sync-log entries of the last hour.
    pub entries_last_hour: u64,
    /// Of them, errors.
    pub errors_last_hour: u64,
}

impl Muster {
    /// The provider's health now.
    pub async fn provider_health(
        &self,
        env: EnvironmentId,
        p: &Provider,
    ) -> CoreResult<ProviderHealth> {
        let now = self.now();
        let mut tx = self.store.read().await?;
        let last: Option<Timestamp> = tx
            .list_tokens(env, p.id)
            .await?
            .iter()
            .filter_map(|t| t.last_used_at)
            .chain(p.last_sync_at)
            .max();
        let (mut entries, mut errors) = (0, 0);
        for (pid, _, error, n) in tx
            .log_counts(env, now.plus_secs(-3600), now.plus_secs(1))
            .await?
        {
            if pid == Some(p.id) {
                entries += n;
                if error {
                    errors += n;
                }
            }
        }
        let held = tx
            .find_guard(p.id)
            .await?
            .is_some_and(|g| g.held_since.is_some());
        let s = &self.settings.notify;
        let silent_since = last.unwrap_or(p.created_at);
        let health = if held {
            Health::Held
        } else if errors >= MIN_ERRORS && errors as f64 > s.error_rate * entries as f64 {
            Health::Erroring
        } else if now.micros() - silent_since.micros() > s.silence_secs * 1_000_000 {
            Health::Silent
        } else {
            Health::Healthy
        };
        Ok(ProviderHealth {
            health,
            last_request_at: last.map(|t| t.to_rfc3339()),
            entries_last_hour: entries,
            errors_last_hour: errors,
        })
    }
}
