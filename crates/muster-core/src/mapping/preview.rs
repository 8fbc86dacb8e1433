//! Preview and re-apply: what the current mappings would change for every user of a provider,
//! and performing exactly that.

use crate::error::CoreError;
use crate::error::CoreResult;
use crate::ids::EnvironmentId;
use crate::ids::OrgId;
use crate::ids::ProviderId;
use crate::ids::RoleId;
use crate::ids::UserId;
use crate::mapping::placement::Cause;
use crate::mapping::placement::OrgCache;
use crate::mapping::placement::OrgTarget;
use crate::mapping::placement::CHUNK;
use crate::mapping::rules::roles_differ;
use crate::mapping::view::OrgSummary;
use crate::model::name_key as key;
use crate::model::Actor;
use crate::model::RoleSource;
use crate::model::SyncLogEntry;
use crate::muster::Muster;
use crate::store::Cursor;
use crate::synclog::event::Event;
use crate::synclog::provider_entry;
use serde::Serialize;
use serde_json::json;
use sha2::Digest;
use sha2::Sha256;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::collections::HashSet;

/// The most changes a preview lists by default; the totals always count every change.
pub const PREVIEW_LIMIT: usize = 1000;

/// One user a re-apply would change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedChange {
    /// The user.
    pub user_id: UserId,
    /// Its userName.
    pub user_name: String,
    /// Its organization now.
    pub org_from: OrgSummary,
    /// Where the mapping puts it, if elsewhere.
    pub org_to: Option<OrgTarget>,
    /// Its explicit roles now (empty: its organization's defaults), by name.
    pub roles_from: Vec<String>,
    /// The roles mapping gives it, if different (empty: its organization's defaults).
    pub roles_to: Option<Vec<String>>,
}

/// What re-applying a provider's mappings would change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// The provider's users examined.
    pub users: u64,
    /// Users whose organization or roles would change.
    pub changed: u64,
    /// Of them, users who would move.
    pub org_changes: u64,
    /// Of them, users whose roles would change.
    pub role_changes: u64,
    /// Organizations the apply would create.
    pub orgs_to_create: Vec<String>,
    /// The changes, by userName (the first `limit`).
    pub changes: Vec<PlannedChange>,
    /// Identifies this exact list of changes: an apply given it refuses to run if the list is
    /// no longer the same.
    pub digest: String,
}

/// What an apply did.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Users examined.
    pub users: u64,
    /// Users moved to another organization.
    pub moved: u64,
    /// Users whose roles changed.
    pub roles_changed: u64,
    /// Organizations created.
    pub orgs_created: u64,
}

impl Muster {
    /// Lists every user of the provider whose organization or roles the current mappings would
    /// change, with totals (the first `limit` changes, by userName).
    pub async fn preview_mappings(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        limit: usize,
    ) -> CoreResult<Preview> {
        let mut tx = self.store.read().await?;
        self.mapping_provider(&mut tx, env, provider).await?;
        let rules = self.rules(&mut tx, env, provider).await?;
        let catalog: HashMap<RoleId, String> = tx
            .list_roles(env)
            .await?
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect();
        let role_names = |ids: &mut dyn Iterator<Item = RoleId>| -> Vec<String> {
            let mut v: Vec<String> = ids.filter_map(|r| catalog.get(&r).cloned()).collect();
            v.sort();
            v
        };
        let actor = Actor::System;
        let cause = Cause {
            env,
            provider,
            actor: &actor,
            at: self.now(),
            reason: "preview",
        };
        let mut cache = OrgCache::default();
        let mut users = 0u64;
        let mut changes: Vec<PlannedChange> = Vec::new();
        let (mut changed, mut org_changes, mut role_changes) = (0u64, 0u64, 0u64);
        let mut to_create: BTreeSet<(String, String)> = BTreeSet::new();
        let mut hasher = Sha256::new();
        let mut after = None;
        loop {
            let chunk = tx.scan_users(env, provider, None, after, CHUNK).await?;
            let Some(last) = chunk.last() else { break };
            after = Some(Cursor {
                created_at: last.created_at,
                id: last.id.uuid(),
            });
            let full = chunk.len() as u64 == CHUNK;
            let ids: Vec<UserId> = chunk.iter().map(|u| u.id).collect();
            let (groups, roles) = self.memberships_and_roles(&mut tx, env, &ids, true).await?;
            for u in chunk {
                users += 1;
                let g = groups.get(&u.id).map(Vec::as_slice).unwrap_or_default();
                let want = rules.want_org(&u.resource, g, false);
                let org_to = self
                    .resolve_org(&mut tx, &rules, &cause, want, false, &mut cache)
                    .await?
                    .map(|p| p.target)
                    .filter(|t| t.id != Some(u.org_id));
                let current = roles.get(&u.id).map(Vec::as_slice).unwrap_or_default();
                let roles_to = rules
                    .want_roles(g, current)
                    .filter(|t| roles_differ(current, t));
                if org_to.is_none() && roles_to.is_none() {
                    continue;
                }
                changed += 1;
                if let Some(t) = &org_to {
                    org_changes += 1;
                    if t.new {
                        to_create.insert((key(&t.name), t.name.clone()));
                    }
                    hasher.update(format!("{}>{}|", u.id, key(&t.name)));
                }
                if let Some(r) = &roles_to {
                    role_changes += 1;
                    hasher.update(format!("{}>{:?}|", u.id, r));
                }
                let from_name = cache
                    .org(&mut tx, env, u.org_id)
                    .await?
                    .map(|o| o.name)
                    .unwrap_or_default();
                changes.push(PlannedChange {
                    user_id: u.id,
                    user_name: u.user_name.clone(),
                    org_from: OrgSummary {
                        id: u.org_id,
                        name: from_name,
                    },
                    org_to,
                    roles_from: role_names(&mut current.iter().map(|(r, _)| *r)),
                    roles_to: roles_to.map(|r| role_names(&mut r.into_iter())),
                });
                if changes.len() > limit.saturating_mul(2).max(limit + 1000) {
                    // Keep memory bounded: only the first `limit` by userName are returned.
                    changes.sort_by_key(|a| key(&a.user_name));
                    changes.truncate(limit);
                }
            }
            if !full {
                break;
            }
        }
        changes.sort_by_key(|a| key(&a.user_name));
        changes.truncate(limit);
        Ok(Preview {
            users,
            changed,
            org_changes,
            role_changes,
            orgs_to_create: to_create.into_iter().map(|(_, n)| n).collect(),
            changes,
            digest: hex::encode(&hasher.finalize()[..16]),
        })
    }

    /// Re-applies the provider's mappings to every one of its users: what
    /// [`Muster::preview_mappings`] lists. Given the preview's digest, refuses to run if the list
    /// changed since. Runs in rounds of 500 users, each its own transaction, so provisioning is
    /// not held up; a user its provider changes meanwhile is placed by that change instead.
    pub async fn apply_mappings(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        expect: Option<&str>,
        actor: &Actor,
    ) -> CoreResult<Applied> {
        if let Some(digest) = expect {
            let now = self.preview_mappings(env, provider, 0).await?;
            if now.digest != digest.trim() {
                return Err(CoreError::Conflict(
                    "the users or the mappings changed since this preview: preview again".into(),
                ));
            }
        }
        let started = self.now();
        let mut done = Applied {
            users: 0,
            moved: 0,
            roles_changed: 0,
            orgs_created: 0,
        };
        let mut after = None;
        loop {
            let now = self.now();
            let mut tx = self.store.write().await?;
            let p = self.mapping_provider(&mut tx, env, provider).await?;
            let rules = self.rules(&mut tx, env, provider).await?;
            let chunk = tx.scan_users(env, provider, None, after, CHUNK).await?;
            let Some(last) = chunk.last() else {
                self.record(
                    &mut tx,
                    &[provider_entry(
                        env,
                        now,
                        actor,
                        &p,
                        Event::MappingsReapplied,
                        json!({
                            "users": done.users,
                            "moved": done.moved,
                            "rolesChanged": done.roles_changed,
                            "orgsCreated": done.orgs_created,
                            "startedAt": started.to_rfc3339(),
                        }),
                    )],
                )
                .await?;
                tx.commit().await?;
                return Ok(done);
            };
            after = Some(Cursor {
                created_at: last.created_at,
                id: last.id.uuid(),
            });
            let cause = Cause {
                env,
                provider,
                actor,
                at: now,
                reason: "re-apply",
            };
            let ids: Vec<UserId> = chunk.iter().map(|u| u.id).collect();
            let (groups, roles) = self.memberships_and_roles(&mut tx, env, &ids, true).await?;
            let mut cache = OrgCache::default();
            // Each user's change is worked out first; the round's moves and role changes are
            // then written in a few statements, not two or three per user (on PostgreSQL each
            // statement is a round trip).
            struct Change {
                user: UserId,
                moving: Option<(OrgId, i64)>,
                placed: Vec<SyncLogEntry>,
                roles: Option<(Vec<RoleId>, SyncLogEntry)>,
            }
            let mut changes = Vec::with_capacity(chunk.len());
            for u in chunk {
                done.users += 1;
                let g = groups.get(&u.id).map(Vec::as_slice).unwrap_or_default();
                let mut changed = u.clone();
                let (_, placed) = self
                    .place_user(&mut tx, &rules, &cause, &mut changed, g, false, &mut cache)
                    .await?;
                done.orgs_created += placed
                    .iter()
                    .filter(|e| e.action == Event::OrgCreated)
                    .count() as u64;
                let moving = (changed.org_id != u.org_id).then(|| {
                    changed.version += 1;
                    changed.updated_at = now;
                    (changed.org_id, u.version)
                });
                let current = roles.get(&u.id).map(Vec::as_slice).unwrap_or_default();
                let roles = self
                    .role_change(&mut tx, &rules, &cause, &changed, g, current, &mut cache)
                    .await?;
                changes.push(Change {
                    user: u.id,
                    moving,
                    placed,
                    roles,
                });
            }
            let moves: Vec<(UserId, OrgId, i64)> = changes
                .iter()
                .filter_map(|c| c.moving.map(|(org, version)| (c.user, org, version)))
                .collect();
            let moved: HashSet<UserId> =
                tx.move_users(env, &moves, now).await?.into_iter().collect();
            let mut log = Vec::new();
            let mut role_sets = Vec::new();
            for c in changes {
                if c.moving.is_some() && !moved.contains(&c.user) {
                    // Its provider changed it meanwhile, placing it by the same mappings.
                    log.extend(
                        c.placed
                            .into_iter()
                            .filter(|e| e.action == Event::OrgCreated),
                    );
                    continue;
                }
                if c.moving.is_some() {
                    done.moved += 1;
                }
                log.extend(c.placed);
                if let Some((target, entry)) = c.roles {
                    done.roles_changed += 1;
                    role_sets.push((c.user, target));
                    log.push(entry);
                }
            }
            tx.set_users_roles(env, &role_sets, RoleSource::Mapping)
                .await?;
            self.record(&mut tx, &log).await?;
            tx.commit().await?;
        }
    }
}
