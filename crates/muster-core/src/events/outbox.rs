//! The transactional outbox: every change writes its sync-log entries and its feed events in
//! the transaction that makes it ([`Muster::record`]), so an event exists exactly when its
//! change committed. Events are derived from the entries (one per entry that stands for a
//! change applications care about), with the resource as the API shows it after the change;
//! membership changes give one event per member ([`member_events`]).

use std::collections::{HashMap, HashSet};

use crate::error::CoreResult;
use crate::events::kind::EventType;
use crate::ids::{EnvironmentId, RoleId, UserId};
use crate::model::{FeedEvent, Outcome, RoleSource, SyncLogEntry, UserRecord};
use crate::muster::Muster;
use crate::orgs::Orgs;
use crate::store::Tx;
use crate::users::directory::effective_roles;
use serde_json::{json, Value};

impl Muster {
    /// Appends sync-log entries and the feed events they stand for, in this transaction.
    pub(crate) async fn record(
        &self,
        tx: &mut Box<dyn Tx>,
        entries: &[SyncLogEntry],
    ) -> CoreResult<()> {
        self.record_with(tx, entries, Vec::new()).await
    }

    /// Like [`Muster::record`], for users this transaction created or changed, which the caller
    /// holds as they are now, with the roles they hold of their own (`held`: none for users just
    /// created, since creating a user sets none): their events are built from those records
    /// rather than from reading the users and their roles back, two statements less.
    ///
    /// `orgs`, when given, are the organizations of the users' environment as the transaction
    /// sees them, already read: the events are built from them rather than reading them again.
    pub(crate) async fn record_known(
        &self,
        tx: &mut Box<dyn Tx>,
        entries: &[SyncLogEntry],
        known: &[&UserRecord],
        held: &[(UserId, RoleId, RoleSource)],
        orgs: Option<(EnvironmentId, &Orgs)>,
    ) -> CoreResult<()> {
        tx.append_log(entries).await?;
        let events = events_of(tx, entries, known, held, orgs).await?;
        tx.queue_events(events).await?;
        Ok(())
    }

    /// Like [`Muster::record`], with events the entries cannot say (one per group member).
    pub(crate) async fn record_with(
        &self,
        tx: &mut Box<dyn Tx>,
        entries: &[SyncLogEntry],
        mut extra: Vec<FeedEvent>,
    ) -> CoreResult<()> {
        tx.append_log(entries).await?;
        let mut events = events_of(tx, entries, &[], &[], None).await?;
        events.append(&mut extra);
        tx.queue_events(events).await?;
        Ok(())
    }
}

/// The feed type an entry stands for; `None` for entries that are not a change to the directory
/// (errors, mapping settings, tokens, administrators).
fn type_of(e: &SyncLogEntry) -> Option<EventType> {
    if e.outcome == Outcome::Error {
        return None;
    }
    EventType::parse(e.action.as_str())
}

fn subject(e: &SyncLogEntry) -> Value {
    json!({"id": e.subject_id, "name": e.subject_name})
}

/// A user as events show it: what an application needs to decide who may sign in, where, with
/// which roles.
fn user_data(u: &UserRecord, orgs: &Orgs, held: &[(UserId, RoleId, RoleSource)]) -> Value {
    let emails: Vec<Value> = u
        .resource
        .get("emails")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|e| e.get("value").cloned())
                .collect()
        })
        .unwrap_or_default();
    let org = orgs.by_id.get(&u.org_id);
    let roles = effective_roles(
        orgs,
        u.org_id,
        held.iter()
            .filter(|(uid, _, _)| *uid == u.id)
            .map(|(_, r, s)| (*r, *s)),
    );
    json!({
        "id": u.id.to_string(),
        "userName": u.user_name,
        "displayName": u.full_name(),
        "externalId": u.external_id,
        "emails": emails,
        "status": u.status.as_str(),
        "organization": {"id": u.org_id.to_string(), "name": org.map(|o| o.name.clone())},
        "roles": roles.iter().map(|h| json!({"id": h.role.id.to_string(), "name": h.role.name})).collect::<Vec<_>>(),
        "legalHold": u.legal_hold,
        "provider": u.provider_id.map(|p| p.to_string()),
    })
}

/// The events these entries stand for, with their data read in the transaction (after the
/// change): users in one query per environment, organizations and roles once.
async fn events_of(
    tx: &mut Box<dyn Tx>,
    entries: &[SyncLogEntry],
    known: &[&UserRecord],
    known_held: &[(UserId, RoleId, RoleSource)],
    known_orgs: Option<(EnvironmentId, &Orgs)>,
) -> CoreResult<Vec<FeedEvent>> {
    let typed: Vec<(&SyncLogEntry, EventType)> = entries
        .iter()
        .filter_map(|e| type_of(e).map(|t| (e, t)))
        .collect();
    if typed.is_empty() {
        return Ok(Vec::new());
    }
    // Users, by environment.
    let mut wanted: HashMap<EnvironmentId, HashSet<UserId>> = HashMap::new();
    for (e, t) in &typed {
        if t.as_str().starts_with("user.") {
            if let Some(id) = e.subject_id.as_deref().and_then(|s| s.parse().ok()) {
                wanted.entry(e.environment_id).or_default().insert(id);
            }
        }
    }
    let mut users: HashMap<UserId, Value> = HashMap::new();
    for (env, ids) in wanted {
        let ids: Vec<UserId> = ids.into_iter().collect();
        let mut found: Vec<UserRecord> = Vec::new();
        let mut unknown = Vec::new();
        for id in &ids {
            match known
                .iter()
                .find(|u| u.id == *id && u.environment_id == env)
            {
                Some(u) => found.push((*u).clone()),
                None => unknown.push(*id),
            }
        }
        // The known users' roles are given (`record_known`); the others' are read.
        let mut held: Vec<(UserId, RoleId, RoleSource)> = known_held
            .iter()
            .filter(|(uid, _, _)| found.iter().any(|u| u.id == *uid))
            .copied()
            .collect();
        if !unknown.is_empty() {
            found.extend(tx.users_by_ids(env, &unknown).await?);
            held.extend(tx.user_roles(env, &unknown).await?);
        }
        let loaded;
        let orgs = match known_orgs {
            Some((e, orgs)) if e == env => orgs,
            _ => {
                loaded = Orgs::load(tx, env).await?;
                &loaded
            }
        };
        for u in &found {
            users.insert(u.id, user_data(u, orgs, &held));
        }
    }
    Ok(typed
        .into_iter()
        .map(|(e, t)| {
            let data = if t.as_str().starts_with("user.") {
                let mut data = e
                    .subject_id
                    .as_deref()
                    .and_then(|s| s.parse::<UserId>().ok())
                    .and_then(|id| users.get(&id).cloned())
                    .unwrap_or_else(|| json!({"id": e.subject_id, "userName": e.subject_name}));
                if t == EventType::UserUpdated {
                    data["changedFields"] = changed_fields(&e.details);
                }
                data
            } else if t.as_str().starts_with("group.") {
                json!({"id": e.subject_id, "displayName": e.subject_name, "provider": e.provider_id.map(|p| p.to_string())})
            } else {
                subject(e)
            };
            FeedEvent {
                id: uuid::Uuid::now_v7(),
                environment_id: e.environment_id,
                kind: t.as_str().to_string(),
                occurred_at: e.at,
                provider_id: e.provider_id,
                actor: e.actor.clone(),
                data,
            }
        })
        .collect())
}

/// The attributes a `user.updated` entry's details name as changed.
fn changed_fields(details: &Value) -> Value {
    let names: Vec<Value> = details["changes"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .filter_map(|c| c.get("attribute").cloned())
                .collect()
        })
        .unwrap_or_default();
    Value::Array(names)
}

/// One `group.member_added` or `group.member_removed` event per member of a
/// `group.members_added` or `group.members_removed` entry (which lists only the first members).
pub(crate) fn member_events(entry: &SyncLogEntry, members: &[UserId]) -> Vec<FeedEvent> {
    let kind = match entry.action {
        crate::synclog::event::Event::GroupMembersAdded => EventType::GroupMemberAdded,
        crate::synclog::event::Event::GroupMembersRemoved => EventType::GroupMemberRemoved,
        _ => return Vec::new(),
    };
    let group = json!({"id": entry.subject_id, "displayName": entry.subject_name});
    members
        .iter()
        .map(|m| FeedEvent {
            id: uuid::Uuid::now_v7(),
            environment_id: entry.environment_id,
            kind: kind.as_str().to_string(),
            occurred_at: entry.at,
            provider_id: entry.provider_id,
            actor: entry.actor.clone(),
            data: json!({"group": group, "user": {"id": m.to_string()}}),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_name_their_changed_fields() {
        let details = json!({"changes": [{"attribute": "title", "before": null, "after": "Lead"}, {"attribute": "name", "before": 1, "after": 2}]});
        assert_eq!(changed_fields(&details), json!(["title", "name"]));
        assert_eq!(changed_fields(&json!({})), json!([]));
    }
}
