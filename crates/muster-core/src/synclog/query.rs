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
use serde_json::Value;
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

/// Who made a change, as the API and the CLI show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActorView {
    /// `provider`, `admin` or `system`.
    pub kind: &'static str,
    /// The provider's display name (its id once deleted), the administrator's name, or `muster`.
    pub name: String,
    /// A provider actor's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<ProviderId>,
}

/// What an entry is about.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubjectView {
    /// `user`, `group`, `org`, `role`, `provider`, `token`, `admin` or `mapping`.
    pub kind: Option<String>,
    /// Its id.
    pub id: Option<String>,
    /// Its name when the entry was written.
    pub name: Option<String>,
}

/// One entry: the one shape the API (`/api/v1/sync-log`) and the CLI
/// (`muster sync-log list --json`) both give.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogEntryView {
    /// Its id (ascending in time of writing).
    pub id: i64,
    /// When (RFC 3339).
    pub at: String,
    /// The provider it concerns.
    pub provider_id: Option<ProviderId>,
    /// That provider's display name.
    pub provider: Option<String>,
    /// Who.
    pub actor: ActorView,
    /// What, such as `user.created` (docs/sync-log.md lists every action).
    pub action: &'static str,
    /// About what.
    pub subject: SubjectView,
    /// `success` or `error`.
    pub result: &'static str,
    /// What went wrong, for an error.
    pub message: Option<String>,
    /// The change: attributes before and after, reasons, counts.
    pub details: Value,
}

impl LogEntryView {
    /// The view of entry `id`; `providers` names the providers.
    pub fn new(id: i64, e: &SyncLogEntry, providers: &HashMap<ProviderId, String>) -> Self {
        let (kind, name) = actor_name(&e.actor, providers);
        LogEntryView {
            id,
            at: e.at.to_rfc3339(),
            provider_id: e.provider_id,
            provider: e.provider_id.and_then(|p| providers.get(&p).cloned()),
            actor: ActorView {
                kind,
                name,
                provider_id: match &e.actor {
                    Actor::Provider { id } => Some(*id),
                    _ => None,
                },
            },
            action: e.action.as_str(),
            subject: SubjectView {
                kind: e.subject_kind.clone(),
                id: e.subject_id.clone(),
                name: e.subject_name.clone(),
            },
            result: e.outcome.as_str(),
            message: e.message.clone(),
            details: e.details.clone(),
        }
    }
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
    use serde_json::json;

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
        let view = LogEntryView::new(7, &entry(Actor::Provider { id: okta }), &names);
        assert_eq!(view.actor.name, "Okta");
        assert_eq!(view.actor.provider_id, Some(okta));
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
