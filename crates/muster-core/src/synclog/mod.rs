//! The sync log: one entry for every change, with its actor, subject, details and outcome
//! (docs/sync-log.md).
//!
//! # Layout
//! - [`query`]: filtered reading and CSV export.
//! - [`retention`]: deleting entries past the retention period.
//! - [`rejections`]: entries for requests Muster rejects.

pub mod bursts;
pub mod event;
pub mod query;
pub mod rejections;
pub mod retention;

use crate::clock::Timestamp;
use crate::ids::EnvironmentId;
use crate::model::Actor;
use crate::model::Outcome;
use crate::model::Provider;
use crate::model::SyncLogEntry;
use crate::synclog::event::Event;
use std::collections::HashSet;

use serde_json::{json, Map, Value};

/// What a log entry is about: its kind, id and name.
pub(crate) type Subject<'a> = (&'a str, String, &'a str);

/// A successful entry for an administrator's action on a subject.
pub(crate) fn admin_entry(
    env: EnvironmentId,
    at: Timestamp,
    actor: &Actor,
    action: Event,
    subject: Subject<'_>,
    details: Value,
) -> SyncLogEntry {
    SyncLogEntry {
        environment_id: env,
        at,
        provider_id: None,
        actor: actor.clone(),
        action,
        subject_kind: Some(subject.0.into()),
        subject_id: Some(subject.1),
        subject_name: Some(subject.2.into()),
        details,
        outcome: Outcome::Success,
        message: None,
    }
}

/// The attribute-level differences between two canonical resources, for the sync log.
pub fn diff_resources(before: &Map<String, Value>, after: &Map<String, Value>) -> Vec<Value> {
    let mut changes = Vec::new();
    let mut keys: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| *k != "schemas")
        .collect();
    let mut seen = HashSet::new();
    keys.retain(|k| seen.insert(*k));
    for key in keys {
        let (b, a) = (before.get(key), after.get(key));
        if let (Some(Value::Object(bo)), Some(Value::Object(ao))) = (b, a) {
            if key.starts_with("urn:") {
                for c in diff_resources(bo, ao) {
                    if let Value::Object(mut m) = c {
                        let attr = m
                            .get("attribute")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        m.insert("attribute".into(), Value::String(format!("{key}:{attr}")));
                        changes.push(Value::Object(m));
                    }
                }
                continue;
            }
        }
        if b != a {
            changes.push(json!({"attribute": key, "before": b.cloned().unwrap_or(Value::Null), "after": a.cloned().unwrap_or(Value::Null)}));
        }
    }
    changes
}

pub(crate) fn provider_entry(
    env: EnvironmentId,
    at: Timestamp,
    actor: &Actor,
    p: &Provider,
    action: Event,
    details: Value,
) -> SyncLogEntry {
    SyncLogEntry {
        environment_id: env,
        at,
        provider_id: Some(p.id),
        actor: actor.clone(),
        action,
        subject_kind: Some("provider".into()),
        subject_id: Some(p.id.to_string()),
        subject_name: Some(p.name.clone()),
        details,
        outcome: Outcome::Success,
        message: None,
    }
}
