//! Reading the sync log: filtered queries with a stable cursor, errors per provider, and CSV
//! export.

use crate::clock::Timestamp;
use crate::error::CoreResult;
use crate::ids::EnvironmentId;
use crate::ids::ProviderId;
use crate::model::Actor;
use crate::model::SyncLogEntry;
use crate::muster::Muster;
use crate::store::LogQuery;

/// A position in the newest-first order: an entry's time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCursor {
    /// The entry's time.
    pub at: Timestamp,
    /// The entry's id.
    pub id: i64,
}

impl LogCursor {
    /// `"{micros}_{id}"`, opaque to clients.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.at.micros(), self.id)
    }

    /// Reads an encoded cursor.
    pub fn decode(text: &str) -> Option<LogCursor> {
        let (at, id) = text.split_once('_')?;
        Some(LogCursor {
            at: Timestamp(at.parse().ok()?),
            id: id.parse().ok()?,
        })
    }
}

/// The CSV columns of an export, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "time",
    "provider_id",
    "provider",
    "actor_kind",
    "actor",
    "action",
    "subject_kind",
    "subject_id",
    "subject_name",
    "result",
    "message",
    "details",
];

/// Quotes a CSV field when it needs it (RFC 4180), and defuses spreadsheet formulas.
pub fn csv_field(text: &str) -> String {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let text = if formula {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) || formula {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The CSV header line.
pub fn csv_header() -> String {
    let mut line = CSV_COLUMNS.join(",");
    line.push_str("\r\n");
    line
}

/// One entry as a CSV line.
pub fn csv_line(id: i64, e: &SyncLogEntry, provider_name: Option<&str>) -> String {
    let (kind, actor) = match &e.actor {
        Actor::Provider { id } => ("provider", id.to_string()),
        Actor::Admin { name } => ("admin", name.clone()),
        Actor::System => ("system", "muster".to_string()),
    };
    let fields = [
        id.to_string(),
        e.at.to_rfc3339(),
        e.provider_id.map(|p| p.to_string()).unwrap_or_default(),
        provider_name.unwrap_or_default().to_string(),
        kind.to_string(),
        actor,
        e.action.clone(),
        e.subject_kind.clone().unwrap_or_default(),
        e.subject_id.clone().unwrap_or_default(),
        e.subject_name.clone().unwrap_or_default(),
        e.outcome.as_str().to_string(),
        e.message.clone().unwrap_or_default(),
        e.details.to_string(),
    ];
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

impl Muster {
    /// A page of entries, newest first, and the cursor of the next page.
    pub async fn query_sync_log(
        &self,
        env: EnvironmentId,
        q: &LogQuery,
        before: Option<LogCursor>,
        limit: u64,
    ) -> CoreResult<(Vec<(i64, SyncLogEntry)>, Option<LogCursor>)> {
        let limit = limit.clamp(1, 1000);
        let mut tx = self.store.read().await?;
        let mut rows = tx
            .query_log(env, q, before.map(|c| (c.at, c.id)), limit + 1)
            .await?;
        let next = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|(id, e)| LogCursor { at: e.at, id: *id })
        } else {
            None
        };
        Ok((rows, next))
    }

    /// How many errors a provider had in the last 24 hours.
    pub async fn provider_errors_last_day(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> CoreResult<u64> {
        let mut tx = self.store.read().await?;
        Ok(tx
            .count_log_errors(env, provider, self.now().plus_secs(-86_400))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting_and_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(
            LogCursor::decode(
                &LogCursor {
                    at: Timestamp(5),
                    id: 9
                }
                .encode()
            ),
            Some(LogCursor {
                at: Timestamp(5),
                id: 9
            })
        );
        assert_eq!(LogCursor::decode("x"), None);
    }
}
