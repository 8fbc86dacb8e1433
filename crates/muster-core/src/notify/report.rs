//! The daily directory sync report and the error emails (docs/notifications.md).
//!
//! The report goes out once a day at the configured local time and time zone, for the 24 hours
//! before that time, to administrators whose preference is Daily (or Only on errors, when there
//! were errors). Error emails go out at most once per provider per `error_interval_secs`, each
//! error listed once with its count. Both are claimed in the database (`notice_state`), so with
//! several instances one of them sends each.

use std::collections::BTreeMap;

use crate::clock::Timestamp;
use crate::error::{CoreError, CoreResult};
use crate::ids::{EnvironmentId, ProviderId};
use crate::muster::Muster;
use crate::notify::health::Health;
use crate::notify::{at, kinds, Audience};
use serde::Serialize;
use serde_json::json;

/// Error messages an error email or a report lists per provider.
const TOP_ERRORS: u64 = 5;
/// Pending deactivations a report lists per provider.
const PENDING_LISTED: u64 = 20;

/// One provider's day.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderDay {
    /// Its id.
    pub id: ProviderId,
    /// Its name.
    pub name: String,
    /// Sync-log entries by action (`user.created`: 12), errors left out.
    pub counts: BTreeMap<String, u64>,
    /// Errors.
    pub errors: u64,
    /// The most frequent error messages, with their counts.
    pub top_errors: Vec<(String, u64)>,
    /// Users whose deactivation is pending: userName and due time (the first few).
    pub pending: Vec<(String, String)>,
    /// How many are pending in all.
    pub pending_total: u64,
    /// When it last sent a request.
    pub last_request_at: Option<String>,
    /// Whether it sent nothing for longer than the silence setting.
    pub silent: bool,
    /// Whether the mass-deactivation guard holds its deactivations.
    pub held: bool,
}

/// A day of the directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// Start (inclusive), RFC 3339.
    pub from: String,
    /// End (exclusive).
    pub to: String,
    /// The time zone the report is scheduled in.
    pub time_zone: String,
    /// Per provider.
    pub providers: Vec<ProviderDay>,
    /// Errors in all.
    pub errors: u64,
}

/// When today's report is due in `tz` at `(hour, minute)`, as of `now`; `None` before it.
pub fn report_due(
    now: Timestamp,
    tz: &str,
    (hour, minute): (i8, i8),
) -> CoreResult<Option<Timestamp>> {
    let bad = |e: jiff::Error| CoreError::Invalid(format!("report time zone '{tz}': {e}"));
    let instant = jiff::Timestamp::from_microsecond(now.micros()).map_err(bad)?;
    let today = instant.in_tz(tz).map_err(bad)?.date();
    let due = today
        .at(hour, minute, 0, 0)
        .in_tz(tz)
        .map_err(bad)?
        .timestamp()
        .as_microsecond();
    Ok((now.micros() >= due).then_some(Timestamp(due)))
}

impl Muster {
    /// The report of `[from, to)`.
    pub async fn sync_report(
        &self,
        env: EnvironmentId,
        from: Timestamp,
        to: Timestamp,
    ) -> CoreResult<SyncReport> {
        let providers = self.list_providers(env).await?;
        let mut days = Vec::new();
        let mut total_errors = 0;
        let counts = {
            let mut tx = self.store.read().await?;
            tx.log_counts(env, from, to).await?
        };
        for p in providers {
            let mut day = ProviderDay {
                id: p.id,
                name: p.name.clone(),
                counts: BTreeMap::new(),
                errors: 0,
                top_errors: Vec::new(),
                pending: Vec::new(),
                pending_total: 0,
                last_request_at: None,
                silent: false,
                held: false,
            };
            for (pid, action, error, n) in &counts {
                if *pid != Some(p.id) {
                    continue;
                }
                if *error {
                    day.errors += n;
                } else {
                    *day.counts.entry(action.clone()).or_default() += n;
                }
            }
            total_errors += day.errors;
            let health = self.provider_health(env, &p).await?;
            day.last_request_at = health.last_request_at;
            day.silent = health.health == Health::Silent;
            day.held = health.health == Health::Held;
            let mut tx = self.store.read().await?;
            if day.errors > 0 {
                day.top_errors = tx.top_errors(env, p.id, from, to, TOP_ERRORS).await?;
            }
            // Counted, and only the first few read: a held mass deactivation can leave tens
            // of thousands pending, and the console's overview builds this on every visit.
            day.pending_total = tx.count_pending_deactivations(env, p.id).await?;
            day.pending = tx
                .pending_deactivations(env, p.id, PENDING_LISTED)
                .await?
                .iter()
                .map(|u| {
                    (
                        u.user_name.clone(),
                        u.deactivate_at.map(at).unwrap_or_default(),
                    )
                })
                .collect();
            days.push(day);
        }
        Ok(SyncReport {
            from: at(from),
            to: at(to),
            time_zone: self.settings.notify.time_zone.clone(),
            providers: days,
            errors: total_errors,
        })
    }

    /// Sends today's report if it is due and no instance sent it yet; true when this call
    /// queued it.
    pub async fn run_daily_report(&self, env: EnvironmentId) -> CoreResult<bool> {
        let s = &self.settings.notify;
        if !s.mail_enabled {
            return Ok(false);
        }
        let now = self.now();
        let Some(due) = report_due(now, &s.time_zone, s.report_at)? else {
            return Ok(false);
        };
        let scope = env.to_string();
        {
            let mut tx = self.store.read().await?;
            if tx
                .notice_last(kinds::REPORT, &scope)
                .await?
                .is_some_and(|last| last >= due)
            {
                return Ok(false);
            }
            // A directory made after today's report time has no day to report yet: a Muster
            // installed at noon sends its first report the next morning, not a late one for a
            // day it did not exist.
            if tx
                .find_root_org(env)
                .await?
                .is_some_and(|root| root.created_at > due)
            {
                return Ok(false);
            }
        }
        let report = self.sync_report(env, due.plus_secs(-86_400), due).await?;
        let data = serde_json::to_value(&report).unwrap_or_else(|_| json!({}));
        let mut tx = self.store.write().await?;
        if !tx.claim_notice(kinds::REPORT, &scope, due, due).await? {
            return Ok(false); // another instance sent it
        }
        self.notify(
            &mut tx,
            env,
            Audience::Report {
                errors: report.errors > 0,
            },
            kinds::REPORT,
            &data,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sends each provider's new errors, at most once per provider per interval; returns how
    /// many providers' errors this call queued.
    pub async fn run_error_emails(&self, env: EnvironmentId) -> CoreResult<usize> {
        let s = &self.settings.notify;
        if !s.mail_enabled {
            return Ok(0);
        }
        let now = self.now();
        let window_start = now.plus_secs(-s.error_interval_secs);
        let mut sent = 0;
        for p in self.list_providers(env).await? {
            let scope = p.id.to_string();
            let (last, errors) = {
                let mut tx = self.store.read().await?;
                let last = tx.notice_last(kinds::ERRORS, &scope).await?;
                if last.is_some_and(|l| l > window_start) {
                    continue; // sent less than an interval ago
                }
                // Entries up to and including `now` count; the next window starts just after.
                let from = last.map_or(window_start, |l| Timestamp(l.micros() + 1));
                (
                    from,
                    tx.top_errors(env, p.id, from, Timestamp(now.micros() + 1), 50)
                        .await?,
                )
            };
            if errors.is_empty() {
                continue;
            }
            let total: u64 = errors.iter().map(|(_, n)| n).sum();
            let data = json!({
                "provider": p.name, "providerId": scope, "from": at(last), "to": at(now),
                "errors": errors, "total": total,
            });
            let mut tx = self.store.write().await?;
            if !tx
                .claim_notice(kinds::ERRORS, &scope, now, window_start.plus_secs(1))
                .await?
            {
                continue;
            }
            self.notify(&mut tx, env, Audience::ErrorReaders, kinds::ERRORS, &data)
                .await?;
            tx.commit().await?;
            sent += 1;
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_due_from_its_local_time_on() {
        // 2026-03-10 05:59:59 UTC is 06:59:59 in Paris (UTC+1 in March before DST).
        let before = Timestamp(1_773_122_399_000_000);
        assert_eq!(report_due(before, "Europe/Paris", (7, 0)).ok(), Some(None));
        let after = Timestamp(1_773_122_400_000_000);
        assert_eq!(
            report_due(after, "Europe/Paris", (7, 0)).ok(),
            Some(Some(after)),
            "07:00 Paris is 06:00 UTC"
        );
        assert!(report_due(after, "Mars/Olympus", (7, 0)).is_err());
    }
}
