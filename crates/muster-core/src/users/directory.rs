//! The directory as administrators see it: users with their organization and effective roles,
//! and what an administrator does to a user (status changes go through [`super::lifecycle`]).

use crate::error::CoreError;
use crate::error::CoreResult;
use crate::ids::EnvironmentId;
use crate::ids::OrgId;
use crate::ids::RoleId;
use crate::ids::UserId;
use crate::model::Actor;
use crate::model::GroupRef;
use crate::model::Org;
use crate::model::OrgStatus;
use crate::model::Role;
use crate::model::RoleSource;
use crate::model::SyncLogEntry;
use crate::model::UserRecord;
use crate::muster::Muster;
use crate::orgs::Orgs;
use crate::store::Cursor;
use crate::store::Tx;
use crate::store::UserQuery;
use crate::synclog::admin_entry;
use crate::synclog::event::Event;
use crate::users::lifecycle::{self, delay_if_provider_off, Cause};
use serde_json::json;
use serde_json::Value;
use std::collections::HashSet;

/// A role a user holds, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeldRole {
    /// The role.
    pub role: Role,
    /// Where it comes from.
    pub source: RoleSource,
}

/// A user with its organization, effective roles and SCIM groups.
#[derive(Debug, Clone)]
pub struct UserDetail {
    /// The user.
    pub user: UserRecord,
    /// Its organization.
    pub org: Org,
    /// Its effective roles.
    pub roles: Vec<HeldRole>,
    /// The SCIM groups its provider made it a member of, by name: what group-based organization
    /// mapping and role mapping read, so what an administrator checks when a placement surprises.
    pub groups: Vec<GroupRef>,
}

/// A user's effective roles, by name: those it holds itself (`held`), or else its
/// organization's defaults.
pub(crate) fn effective_roles(
    orgs: &Orgs,
    org: OrgId,
    held: impl IntoIterator<Item = (RoleId, RoleSource)>,
) -> Vec<HeldRole> {
    let mut roles: Vec<HeldRole> = held
        .into_iter()
        .filter_map(|(r, source)| {
            orgs.roles
                .get(&r)
                .cloned()
                .map(|role| HeldRole { role, source })
        })
        .collect();
    if roles.is_empty() {
        roles = orgs
            .effective_defaults(org)
            .into_iter()
            .map(|role| HeldRole {
                role,
                source: RoleSource::Org,
            })
            .collect();
    }
    roles.sort_by(|a, b| a.role.name.cmp(&b.role.name));
    roles
}

/// What an administrator does to a user.
#[derive(Debug, Clone, PartialEq)]
pub enum UserAction {
    /// Cannot sign in; data kept.
    Block,
    /// Can sign in again.
    Unblock,
    /// Deactivated at once.
    Deactivate,
    /// Active again.
    Reactivate,
    /// Into another organization.
    Move(OrgId),
    /// Exactly these roles (empty: the organization's defaults apply).
    SetRoles(Vec<RoleId>),
    /// Set or clear legal hold.
    LegalHold(bool),
}

impl Muster {
    /// A page of users for administrators, and the cursor of the next page.
    pub async fn query_users(
        &self,
        env: EnvironmentId,
        q: &UserQuery,
        after: Option<Cursor>,
        limit: u64,
    ) -> CoreResult<(Vec<UserRecord>, Option<Cursor>)> {
        let limit = limit.clamp(1, 1000);
        let mut tx = self.store.read().await?;
        let mut users = tx.query_users(env, q, after, limit + 1).await?;
        let next = if users.len() as u64 > limit {
            users.truncate(limit as usize);
            users.last().map(|u| Cursor {
                created_at: u.created_at,
                id: u.id.uuid(),
            })
        } else {
            None
        };
        Ok((users, next))
    }

    /// A user with its organization and effective roles.
    /// The id of the user holding a userName, compared without case (RFC 7643 §4.1.1); a
    /// userName is unique in its environment, across providers and local users.
    pub async fn user_id_by_name(
        &self,
        env: EnvironmentId,
        user_name: &str,
    ) -> CoreResult<Option<UserId>> {
        let mut tx = self.store.read().await?;
        let found = tx
            .find_user_by_name(env, &crate::model::name_key(user_name))
            .await?;
        Ok(found.map(|u| u.id))
    }

    pub async fn user_detail(&self, env: EnvironmentId, id: UserId) -> CoreResult<UserDetail> {
        let mut tx = self.store.read().await?;
        self.detail_in(&mut tx, env, id).await
    }

    pub(crate) async fn detail_in(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        id: UserId,
    ) -> CoreResult<UserDetail> {
        let (user, groups) = tx
            .find_user_and_groups(env, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no user with id {id}")))?;
        let orgs = Orgs::load(tx, env).await?;
        let org = orgs.get(user.org_id)?.clone();
        let held = tx.user_roles(env, &[id]).await?;
        let roles = effective_roles(&orgs, user.org_id, held.into_iter().map(|(_, r, s)| (r, s)));
        Ok(UserDetail {
            user,
            org,
            roles,
            groups,
        })
    }

    /// An administrator's action on a user. A provisioned user so changed is marked as changed
    /// outside provisioning until its provider next updates it.
    pub async fn act_on_user(
        &self,
        env: EnvironmentId,
        id: UserId,
        action: UserAction,
        actor: &Actor,
    ) -> CoreResult<UserDetail> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let existing = tx
            .find_user(env, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no user with id {id}")))?;
        let mut u = existing.clone();
        let mut log: Vec<(Event, Value)> = Vec::new();
        match &action {
            UserAction::Block
            | UserAction::Unblock
            | UserAction::Deactivate
            | UserAction::Reactivate
            | UserAction::LegalHold(_) => {
                let cause = match &action {
                    UserAction::Block => Cause::Block,
                    UserAction::Unblock => Cause::Unblock,
                    UserAction::Deactivate => Cause::Deactivate,
                    UserAction::Reactivate => Cause::Reactivate,
                    UserAction::LegalHold(true) => Cause::SetLegalHold,
                    _ => {
                        let delay = match u.provider_id {
                            Some(p) => tx
                                .find_provider(env, p)
                                .await?
                                .map(|p| p.deactivation_delay_secs),
                            None => None,
                        };
                        Cause::ClearLegalHold {
                            provider_delay_secs: delay_if_provider_off(&u, delay),
                        }
                    }
                };
                for t in lifecycle::apply(&mut u, cause, now)? {
                    log.push((t.action(), t.details()));
                }
            }
            UserAction::Move(org) => {
                let target = tx
                    .find_org(env, *org)
                    .await?
                    .ok_or_else(|| CoreError::NotFound(format!("no organization with id {org}")))?;
                if target.status == OrgStatus::Deactivated {
                    return Err(CoreError::Invalid(format!(
                        "'{}' is deactivated: users cannot move into it",
                        target.name
                    )));
                }
                let from = tx
                    .find_org(env, u.org_id)
                    .await?
                    .map(|o| o.name)
                    .unwrap_or_default();
                u.org_id = target.id;
                log.push((
                    Event::UserMoved,
                    json!({"before": from, "after": target.name}),
                ));
            }
            UserAction::SetRoles(roles) => {
                let catalog: HashSet<RoleId> = tx
                    .list_roles(env)
                    .await?
                    .into_iter()
                    .map(|r| r.id)
                    .collect();
                if let Some(missing) = roles.iter().find(|r| !catalog.contains(r)) {
                    return Err(CoreError::NotFound(format!("no role with id {missing}")));
                }
                let before = self
                    .detail_in(&mut tx, env, id)
                    .await?
                    .roles
                    .into_iter()
                    .map(|h| h.role.name)
                    .collect::<Vec<_>>();
                tx.set_user_roles(env, id, roles, RoleSource::Admin).await?;
                let after = self
                    .detail_in(&mut tx, env, id)
                    .await?
                    .roles
                    .into_iter()
                    .map(|h| h.role.name)
                    .collect::<Vec<_>>();
                log.push((
                    Event::UserRolesChanged,
                    json!({"before": before, "after": after}),
                ));
            }
        }
        if u.provider_id.is_some() {
            u.changed_outside = true;
        }
        u.version += 1;
        u.updated_at = now;
        if !tx.update_user(&u, existing.version).await? {
            return Err(CoreError::Conflict(
                "the user changed while this request ran; try again".into(),
            ));
        }
        let entries: Vec<SyncLogEntry> = log
            .into_iter()
            .map(|(action, details)| SyncLogEntry {
                provider_id: u.provider_id,
                ..admin_entry(
                    env,
                    now,
                    actor,
                    action,
                    ("user", u.id.to_string(), &u.user_name),
                    details,
                )
            })
            .collect();
        self.record(&mut tx, &entries).await?;
        let detail = self.detail_in(&mut tx, env, id).await?;
        tx.commit().await?;
        Ok(detail)
    }
}
