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
use serde_json::{json, Value};
use std::collections::HashMap;

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

/// Spreadsheets run a cell that starts with one of these as a formula ("CSV injection"): such a
/// field is written with a leading `'`, which makes it text.
fn defuse(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    }
}

/// One CSV record (RFC 4180: quoted where needed, CRLF-terminated), through the `csv` crate.
fn csv_record<I, F>(fields: I) -> String
where
    I: IntoIterator<Item = F>,
    F: AsRef<[u8]>,
{
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(256));
    // Writing into memory cannot fail; if it did, the line would be left out, never half-written.
    if w.write_record(fields).is_err() {
        return String::new();
    }
    w.into_inner()
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

/// The CSV header line.
pub fn csv_header() -> String {
    csv_record(CSV_COLUMNS)
}

/// Who an entry's actor is, by kind and by the name the console shows (a provider by its
/// display name; its id when the provider is gone).
fn actor_name(actor: &Actor, providers: &HashMap<ProviderId, String>) -> (&'static str, String) {
    match actor {
        Actor::Provider { id } => (
            "provider",
            providers.get(id).cloned().unwrap_or_else(|| id.to_string()),
        ),
        Actor::Admin { name } => ("admin", name.clone()),
        Actor::System => ("system", "muster".to_string()),
    }
}

/// One entry as JSON: the one shape the API (`/api/v1/sync-log`) and the CLI
/// (`muster sync-log list --json`) both give.
pub fn entry_json(id: i64, e: &SyncLogEntry, providers: &HashMap<ProviderId, String>) -> Value {
    let (kind, name) = actor_name(&e.actor, providers);
    let actor = match &e.actor {
        Actor::Provider { id } => {
            json!({"kind": kind, "providerId": id.to_string(), "name": name})
        }
        _ => json!({"kind": kind, "name": name}),
    };
    json!({
        "id": id, "at": e.at.to_rfc3339(), "providerId": e.provider_id.map(|p| p.to_string()),
        "provider": e.provider_id.and_then(|p| providers.get(&p)), "actor": actor, "action": e.action,
        "subject": {"kind": e.subject_kind, "id": e.subject_id, "name": e.subject_name},
        "result": e.outcome.as_str(), "message": e.message, "details": e.details,
    })
}

/// One entry as a CSV line; `providers` names the providers, for the provider column and for
/// an actor that is a provider.
pub fn csv_line(id: i64, e: &SyncLogEntry, providers: &HashMap<ProviderId, String>) -> String {
    let (kind, actor) = actor_name(&e.actor, providers);
    let fields = [
        id.to_string(),
        e.at.to_rfc3339(),
        e.provider_id.map(|p| p.to_string()).unwrap_or_default(),
        e.provider_id
            .and_then(|p| providers.get(&p))
            .cloned()
            .unwrap_or_default(),
        kind.to_string(),
        actor,
        e.action.to_string(),
        e.subject_kind.clone().unwrap_or_default(),
        e.subject_id.clone().unwrap_or_default(),
        e.subject_name.clone().unwrap_or_default(),
        e.outcome.as_str().to_string(),
        e.message.clone().unwrap_or_default(),
        e.details.to_string(),
    ];
    csv_record(fields.map(defuse))
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
    use crate::synclog::event::Event;

    #[test]
    fn a_provider_actor_is_named_as_the_console_names_it() {
        use crate::ids::{EnvironmentId, ProviderId};
        use crate::model::Outcome;
        let okta = ProviderId::new();
        let gone = ProviderId::new();
        let names = HashMap::from([(okta, "Okta".to_string())]);
        let entry = |actor| SyncLogEntry {
            environment_id: EnvironmentId::new(),
            at: crate::clock::Timestamp(0),
            provider_id: Some(okta),
            actor,
            action: Event::UserCreated,
            subject_kind: Some("user".into()),
            subject_id: None,
            subject_name: Some("ada".into()),
            details: json!({}),
            outcome: Outcome::Success,
            message: None,
        };
        let line = csv_line(7, &entry(Actor::Provider { id: okta }), &names);
        assert!(line.contains(",Okta,provider,Okta,user.created,"), "{line}");
        assert!(!line.contains(&format!(",provider,{okta},")), "{line}");
        let json = entry_json(7, &entry(Actor::Provider { id: okta }), &names);
        assert_eq!(json["actor"]["name"], "Okta");
        // A provider deleted since is still identified.
        let line = csv_line(8, &entry(Actor::Provider { id: gone }), &names);
        assert!(line.contains(&format!(",provider,{gone},")), "{line}");
    }

    #[test]
    fn csv_quoting_and_formulas() {
        let fields = [
            "plain",
            "a,b",
            "say \"hi\"",
            "=HYPERLINK(\"x\")",
            "-1",
            "two\nlines",
        ];
        assert_eq!(
            csv_record(fields.map(|f| defuse(f.to_string()))),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"'=HYPERLINK(\"\"x\"\")\",'-1,\"two\nlines\"\r\n"
        );
        assert_eq!(csv_header().lines().count(), 1);
        assert!(csv_header().ends_with(",details\r\n"));
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
