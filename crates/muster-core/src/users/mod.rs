//! Users: provisioned (owned by one provider, changed by SCIM) and local (made by an
//! administrator). What a user is and how it is read lives here; each way of changing one lives
//! in a module of its own.
//!
//! # Layout
//! - [`provisioning`]: what a provider's SCIM requests do to its users (RFC 7644 §3).
//! - [`lifecycle`]: the whole status machine (blocking, deactivation and its delay, legal hold,
//!   reactivation) and the scheduler's due-deactivation step.
//! - [`directory`]: administrators' view of users and their actions on them.
//! - [`local`]: users made by an administrator.

pub mod directory;
pub mod lifecycle;
pub mod local;
pub mod provisioning;

use crate::clock::Timestamp;
use crate::error::CoreError;
use crate::error::CoreResult;
use crate::error::StoreError;
use crate::error::Unique;
use crate::ids::RoleId;
use crate::ids::UserId;
use crate::mapping::placement::Cause;
use crate::model::Actor;
use crate::model::GroupRef;
use crate::model::Outcome;
use crate::model::ProviderCtx;
use crate::model::RoleSource;
use crate::model::SyncLogEntry;
use crate::model::UserRecord;
use crate::store::Tx;
use crate::synclog::event::Event;
use muster_scim::ScimError;
use serde_json::Map;
use serde_json::Value;

/// How many times a read-modify-write is retried when another writer moved the version.
pub(crate) const WRITE_ATTEMPTS: usize = 5;

/// A user with the groups it belongs to, when they were asked for.
#[derive(Debug, Clone)]
pub struct UserView {
    /// The user.
    pub user: UserRecord,
    /// Its groups, if loaded.
    pub groups: Option<Vec<GroupRef>>,
}

/// What a create did.
#[derive(Debug, Clone)]
pub struct Created<T> {
    /// The resource.
    pub view: T,
    /// False when an existing, turned-off user of the same provider was brought back instead.
    pub new: bool,
}

/// The fields of a user resource that Muster keeps in columns.
pub(crate) struct UserFields {
    user_name: String,
    external_id: Option<String>,
    display_name: Option<String>,
    active: bool,
}

impl UserFields {
    fn read(resource: &Map<String, Value>) -> UserFields {
        let text = |k: &str| resource.get(k).and_then(Value::as_str).map(str::to_string);
        UserFields {
            user_name: text("userName").unwrap_or_default().trim().to_string(),
            external_id: text("externalId"),
            display_name: text("displayName"),
            active: resource
                .get("active")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        }
    }
}

pub(crate) fn parse_user_id(id: &str) -> CoreResult<UserId> {
    id.parse()
        .map_err(|_| CoreError::NotFound(format!("no user with id '{id}'")))
}

pub(crate) fn user_not_found(id: &str) -> CoreError {
    CoreError::NotFound(format!("no user with id '{id}'"))
}

pub(crate) fn uniqueness_user(
    user_name: &str,
    holder: &UserRecord,
    provider: &ProviderCtx,
) -> CoreError {
    let whose = match holder.provider_id {
        None => " by a local user managed in Muster; a provider cannot change it",
        Some(p) if p == provider.id() => "",
        Some(_) => " by a user of another provisioning provider",
    };
    ScimError::uniqueness(format!(
        "the userName '{user_name}' is already in use{whose}"
    ))
    .into()
}

pub(crate) fn map_user_conflict(e: StoreError, user_name: &str) -> CoreError {
    match e {
        StoreError::Conflict(Unique::UserName) => {
            ScimError::uniqueness(format!("the userName '{user_name}' is already in use")).into()
        }
        other => other.into(),
    }
}

/// A sync log entry about a user, caused by a provider.
pub(crate) fn user_entry(
    ctx: &ProviderCtx,
    at: Timestamp,
    action: Event,
    u: &UserRecord,
    details: Value,
) -> SyncLogEntry {
    SyncLogEntry {
        environment_id: ctx.env(),
        at,
        provider_id: Some(ctx.id()),
        actor: Actor::Provider { id: ctx.id() },
        action,
        subject_kind: Some("user".into()),
        subject_id: Some(u.id.to_string()),
        subject_name: Some(u.user_name.clone()),
        details,
        outcome: Outcome::Success,
        message: None,
    }
}

pub(crate) fn provisioning_cause<'a>(
    ctx: &ProviderCtx,
    actor: &'a Actor,
    at: Timestamp,
) -> Cause<'a> {
    Cause {
        env: ctx.env(),
        provider: ctx.id(),
        actor,
        at,
        reason: "provisioning",
    }
}

/// The explicit roles a user holds, with where they came from.
pub(crate) async fn current_roles(
    tx: &mut Box<dyn Tx>,
    u: &UserRecord,
) -> CoreResult<Vec<(RoleId, RoleSource)>> {
    Ok(tx
        .user_roles(u.environment_id, &[u.id])
        .await?
        .into_iter()
        .map(|(_, r, s)| (r, s))
        .collect())
}

pub(crate) fn busy() -> CoreError {
    CoreError::Busy("the resource was changed by another request at the same time; retry".into())
}
