//! The user lifecycle: every change of a user's status, decided here and only here
//! (docs/concepts.md, "The deactivation lifecycle").
//!
//! - **Provider off** (`active: false`, or DELETE): blocked at once; deactivated after the
//!   provider's deactivation delay (at once when the delay is 0: blocked, then deactivated,
//!   both logged); never while on legal hold.
//! - **Provider on** before the deactivation is due: unblocked, the deactivation cancelled;
//!   after it: reactivated.
//! - **Administrator** block, unblock, deactivate (immediate; refused under legal hold),
//!   reactivate.
//! - **Legal hold** set: any pending deactivation is cancelled and none is scheduled while it
//!   holds. Cleared: a user the provider has turned off gets the provider's full delay again,
//!   counted from the moment the hold is cleared (at once when the delay is 0).
//! - **Due**: the scheduler deactivates a blocked user whose time has come.
//!
//! [`apply`] changes the record and says what happened; the caller writes both, with the sync
//! log entries [`Transition::action`] and [`Transition::details`] describe, in one transaction.
//! It reads no clock: `now` is an argument.
//!
//! Deactivation times live in the database (`deactivate_at`), so they survive restarts and an
//! overdue one runs at the next tick. Each user is deactivated in its own transaction guarded by
//! the version it was read at: when several Muster processes share a database, the first to
//! commit wins and the others find the version moved, so each deactivation, and its sync log
//! entry, happens exactly once.

use crate::clock::Timestamp;
use crate::error::{CoreError, CoreResult};
use crate::model::Actor;
use crate::model::Outcome;
use crate::model::ProviderCtx;
use crate::model::SyncLogEntry;
use crate::model::UserRecord;
use crate::model::UserStatus;
use crate::muster::Muster;
use crate::synclog::event::Event;
use crate::users::user_entry;
use serde_json::{json, Value};

/// What asks for a change of a user's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The provider turned the user off (`active` false, or DELETE), with its delay in seconds.
    ProviderOff {
        /// The provider's deactivation delay.
        delay_secs: i64,
        /// The provider's mass-deactivation guard holds its deactivations: even with a delay of
        /// 0 the user is only blocked, the deactivation scheduled and held.
        held: bool,
    },
    /// The provider turned the user on (`active` true, or the user sent again).
    ProviderOn,
    /// An administrator blocks the user.
    Block,
    /// An administrator unblocks the user.
    Unblock,
    /// An administrator deactivates the user, at once.
    Deactivate,
    /// An administrator reactivates the user.
    Reactivate,
    /// An administrator puts the user on legal hold.
    SetLegalHold,
    /// An administrator releases the hold. `provider_delay_secs` is the owning provider's delay
    /// when that provider has the user turned off (so the postponed deactivation is due again).
    ClearLegalHold {
        /// The provider's delay, when the provider has the user off.
        provider_delay_secs: Option<i64>,
    },
    /// The scheduler found the user's deactivation due.
    Due,
}

/// Why a user was deactivated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeactivatedBy {
    /// The provider's delay is 0.
    NoDelay,
    /// The provider's delay has passed.
    DelayPassed,
    /// An administrator.
    Administrator,
}

/// A change of a user's status, as the sync log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Blocked; deactivation due at the given time (`None`: none scheduled).
    Blocked {
        /// When the deactivation is due.
        deactivate_at: Option<Timestamp>,
    },
    /// Deactivated.
    Deactivated {
        /// Why.
        by: DeactivatedBy,
    },
    /// Unblocked; a pending deactivation, if any, is cancelled.
    Unblocked {
        /// The deactivation cancelled.
        cancelled: Option<Timestamp>,
    },
    /// Active again after deactivation.
    Reactivated,
    /// Deactivation not scheduled because the user is on legal hold.
    HeldByLegalHold,
    /// Put on legal hold; a pending deactivation, if any, is cancelled.
    LegalHoldSet {
        /// The deactivation cancelled.
        cancelled: Option<Timestamp>,
    },
    /// Legal hold released; the deactivation it postponed is due at the given time.
    LegalHoldCleared {
        /// When the postponed deactivation is due.
        deactivate_at: Option<Timestamp>,
    },
}

impl Transition {
    /// The sync log action for this transition.
    pub fn action(self) -> Event {
        match self {
            Transition::Blocked { .. } => Event::UserBlocked,
            Transition::Deactivated { .. } => Event::UserDeactivated,
            Transition::Unblocked { .. } => Event::UserUnblocked,
            Transition::Reactivated => Event::UserReactivated,
            Transition::HeldByLegalHold => Event::UserDeactivationHeld,
            Transition::LegalHoldSet { .. } => Event::UserLegalHoldSet,
            Transition::LegalHoldCleared { .. } => Event::UserLegalHoldCleared,
        }
    }

    /// The sync log details for this transition.
    pub fn details(self) -> Value {
        let at = |t: Option<Timestamp>| t.map(|t| t.to_rfc3339());
        match self {
            Transition::Blocked {
                deactivate_at: Some(due),
            } => {
                json!({"deactivateAt": due.to_rfc3339()})
            }
            Transition::Blocked {
                deactivate_at: None,
            } => json!({}),
            Transition::Deactivated { by } => json!({"reason": match by {
                DeactivatedBy::NoDelay => "the provider's deactivation delay is 0",
                DeactivatedBy::DelayPassed => "the provider's deactivation delay has passed",
                DeactivatedBy::Administrator => "deactivated by an administrator",
            }}),
            Transition::Unblocked { cancelled } | Transition::LegalHoldSet { cancelled } => {
                match cancelled {
                    Some(_) => json!({"cancelledDeactivationAt": at(cancelled)}),
                    None => json!({}),
                }
            }
            Transition::Reactivated => json!({}),
            Transition::HeldByLegalHold => json!({
                "reason": "the user is on legal hold, so Muster blocks but does not deactivate them"
            }),
            Transition::LegalHoldCleared { deactivate_at } => match deactivate_at {
                Some(_) => json!({"deactivateAt": at(deactivate_at)}),
                None => json!({}),
            },
        }
    }
}

/// Applies `cause` to the user at `now`: changes the record and returns what happened, in
/// order. Provider and scheduler causes never fail (a change that does not apply does
/// nothing); an administrator's change that does not apply is refused with the reason.
pub fn apply(u: &mut UserRecord, cause: Cause, now: Timestamp) -> CoreResult<Vec<Transition>> {
    // Refusals are built only when they happen: the userName is not copied on every call.
    let refuse = |why: String| Err(CoreError::Invalid(why));
    let status = u.status;
    let mut out = Vec::new();
    match cause {
        Cause::ProviderOff { delay_secs, held } => match status {
            UserStatus::Deactivated => {}
            UserStatus::Active | UserStatus::Blocked => {
                if status == UserStatus::Active {
                    let due = (!u.legal_hold).then(|| now.plus_secs(delay_secs));
                    u.status = UserStatus::Blocked;
                    u.deactivate_at = due;
                    out.push(Transition::Blocked { deactivate_at: due });
                } else if !u.legal_hold && u.deactivate_at.is_none() {
                    // Blocked by an administrator, now off at the provider too: the delay runs.
                    let due = now.plus_secs(delay_secs);
                    u.deactivate_at = Some(due);
                    out.push(Transition::Blocked {
                        deactivate_at: Some(due),
                    });
                }
                if u.legal_hold {
                    u.deactivate_at = None;
                    out.push(Transition::HeldByLegalHold);
                } else if delay_secs == 0 && !held {
                    deactivate(u, DeactivatedBy::NoDelay, &mut out);
                }
            }
        },
        Cause::ProviderOn => match status {
            UserStatus::Active => {}
            UserStatus::Blocked => {
                let cancelled = u.deactivate_at.take();
                u.status = UserStatus::Active;
                out.push(Transition::Unblocked { cancelled });
            }
            UserStatus::Deactivated => {
                u.status = UserStatus::Active;
                u.deactivate_at = None;
                out.push(Transition::Reactivated);
            }
        },
        Cause::Block => {
            if status != UserStatus::Active {
                return refuse(format!(
                    "'{}' is {}, not active",
                    u.user_name,
                    status.as_str()
                ));
            }
            u.status = UserStatus::Blocked;
            out.push(Transition::Blocked {
                deactivate_at: None,
            });
        }
        Cause::Unblock => {
            if status != UserStatus::Blocked {
                return refuse(format!(
                    "'{}' is {}, not blocked",
                    u.user_name,
                    status.as_str()
                ));
            }
            let cancelled = u.deactivate_at.take();
            u.status = UserStatus::Active;
            out.push(Transition::Unblocked { cancelled });
        }
        Cause::Deactivate => {
            if status == UserStatus::Deactivated {
                return refuse(format!("'{}' is already deactivated", u.user_name));
            }
            if u.legal_hold {
                return refuse(format!(
                    "'{}' is on legal hold: release the hold before deactivating",
                    u.user_name
                ));
            }
            deactivate(u, DeactivatedBy::Administrator, &mut out);
        }
        Cause::Reactivate => {
            if status != UserStatus::Deactivated {
                return refuse(format!(
                    "'{}' is {}, not deactivated",
                    u.user_name,
                    status.as_str()
                ));
            }
            u.status = UserStatus::Active;
            u.deactivate_at = None;
            out.push(Transition::Reactivated);
        }
        Cause::SetLegalHold => {
            if u.legal_hold {
                return refuse(format!("'{}' is already on legal hold", u.user_name));
            }
            u.legal_hold = true;
            let cancelled = u.deactivate_at.take();
            out.push(Transition::LegalHoldSet { cancelled });
        }
        Cause::ClearLegalHold {
            provider_delay_secs,
        } => {
            if !u.legal_hold {
                return refuse(format!("'{}' is not on legal hold", u.user_name));
            }
            u.legal_hold = false;
            match provider_delay_secs {
                Some(delay) if status == UserStatus::Blocked => {
                    let due = now.plus_secs(delay);
                    u.deactivate_at = Some(due);
                    out.push(Transition::LegalHoldCleared {
                        deactivate_at: Some(due),
                    });
                    if delay == 0 {
                        deactivate(u, DeactivatedBy::NoDelay, &mut out);
                    }
                }
                _ => out.push(Transition::LegalHoldCleared {
                    deactivate_at: None,
                }),
            }
        }
        Cause::Due => {
            if let (UserStatus::Blocked, Some(due)) = (status, u.deactivate_at) {
                if due <= now && !u.legal_hold {
                    deactivate(u, DeactivatedBy::DelayPassed, &mut out);
                }
            }
        }
    }
    Ok(out)
}

fn deactivate(u: &mut UserRecord, by: DeactivatedBy, out: &mut Vec<Transition>) {
    u.status = UserStatus::Deactivated;
    u.deactivate_at = None;
    out.push(Transition::Deactivated { by });
}

/// The provider turned the user off (`active` false, or DELETE); `held` when its
/// mass-deactivation guard holds its deactivations.
pub fn turn_off(
    u: &mut UserRecord,
    delay_secs: i64,
    held: bool,
    now: Timestamp,
) -> Vec<Transition> {
    // Provider causes are never refused.
    apply(u, Cause::ProviderOff { delay_secs, held }, now).unwrap_or_default()
}

/// The provider turned the user back on.
pub fn turn_on(u: &mut UserRecord, now: Timestamp) -> Vec<Transition> {
    apply(u, Cause::ProviderOn, now).unwrap_or_default()
}

/// The provider's deactivation delay, when the provider has this user turned off (its
/// `active` is false, or the provider deleted it): what clearing a legal hold reschedules.
pub fn delay_if_provider_off(u: &UserRecord, provider_delay_secs: Option<i64>) -> Option<i64> {
    let off = u.provider_id.is_some() && (!u.scim_active || u.removed_at.is_some());
    provider_delay_secs.filter(|_| off)
}

pub(crate) fn transition_entries(
    ctx: &ProviderCtx,
    at: Timestamp,
    u: &UserRecord,
    ts: &[Transition],
) -> Vec<SyncLogEntry> {
    ts.iter()
        .map(|t| user_entry(ctx, at, t.action(), u, t.details()))
        .collect()
}

/// How many due users one pass reads at a time.
pub(crate) const BATCH: u64 = 200;

/// Scheduled deactivations, as `/metrics` reports them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Users blocked and waiting for their deactivation.
    pub pending: u64,
    /// Of them, those whose time has passed.
    pub overdue: u64,
    /// How long the oldest overdue one has been due, in seconds (0 when none).
    pub lag_secs: f64,
}

impl Muster {
    /// Scheduled deactivations at `now`: pending, overdue, and the scheduler's lag.
    pub async fn deactivation_backlog(&self, now: Timestamp) -> CoreResult<Backlog> {
        let mut tx = self.store.read().await?;
        let (pending, overdue, oldest) = tx.deactivation_backlog(now).await?;
        let lag_secs = oldest
            .filter(|t| *t <= now)
            .map(|t| (now.0 - t.0) as f64 / 1e6)
            .unwrap_or(0.0);
        Ok(Backlog {
            pending,
            overdue,
            lag_secs,
        })
    }

    /// Deactivates every user whose deactivation is due at `now`; returns how many this call
    /// deactivated. Safe to run concurrently, in one process or several.
    pub async fn run_due_deactivations(&self, now: Timestamp) -> CoreResult<usize> {
        let mut done = 0;
        loop {
            let due = {
                let mut tx = self.store.read().await?;
                tx.due_deactivations(now, BATCH).await?
            };
            if due.is_empty() {
                return Ok(done);
            }
            let mut progressed = false;
            for candidate in due {
                let mut tx = self.store.write().await?;
                // Read again inside the write: another process may have got there first.
                let Some(mut u) = tx.find_user(candidate.environment_id, candidate.id).await?
                else {
                    continue;
                };
                let expected = u.version;
                let Some(t) = apply(&mut u, Cause::Due, now)?.first().copied() else {
                    if u.deactivate_at.is_some_and(|d| d <= now) {
                        // A schedule that no longer applies (the user is on legal hold, or was
                        // deactivated by other means): drop it so it does not come back.
                        u.deactivate_at = None;
                        u.version += 1;
                        if tx.update_user(&u, expected).await? {
                            tx.commit().await?;
                            progressed = true;
                        }
                    }
                    continue;
                };
                u.version += 1;
                u.updated_at = now;
                if !tx.update_user(&u, expected).await? {
                    continue;
                }
                self.record(
                    &mut tx,
                    &[SyncLogEntry {
                        environment_id: u.environment_id,
                        at: now,
                        provider_id: u.provider_id,
                        actor: Actor::System,
                        action: t.action(),
                        subject_kind: Some("user".into()),
                        subject_id: Some(u.id.to_string()),
                        subject_name: Some(u.user_name.clone()),
                        details: t.details(),
                        outcome: Outcome::Success,
                        message: None,
                    }],
                )
                .await?;
                tx.commit().await?;
                done += 1;
                progressed = true;
            }
            if !progressed {
                // Everything read was handled elsewhere; the next tick will look again.
                return Ok(done);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EnvironmentId, OrgId, ProviderId, UserId};
    use serde_json::Map;

    const NOW: Timestamp = Timestamp(1_000_000_000);
    const DELAY: i64 = 900;

    fn user(status: UserStatus, hold: bool, due: Option<Timestamp>) -> UserRecord {
        UserRecord {
            environment_id: EnvironmentId::new(),
            id: UserId::new(),
            provider_id: Some(ProviderId::new()),
            user_name: "ada@example.com".into(),
            external_id: None,
            display_name: None,
            scim_active: status == UserStatus::Active,
            status,
            org_id: OrgId::new(),
            legal_hold: hold,
            changed_outside: false,
            resource: Map::new().into(),
            version: 1,
            created_at: NOW,
            updated_at: NOW,
            removed_at: None,
            deactivate_at: due,
        }
    }

    use Transition as T;

    /// From (status, hold, due), a cause, to (status, due), with the transitions logged.
    type Case = (
        UserStatus,
        bool,
        Option<Timestamp>,
        Cause,
        UserStatus,
        Option<Timestamp>,
        Vec<T>,
    );
    use UserStatus::{Active, Blocked, Deactivated};

    /// Every cause from every relevant state: the status, the due time and the transitions
    /// logged, in order.
    #[test]
    fn every_transition() {
        let later = Some(NOW.plus_secs(DELAY));
        let past = Some(Timestamp(NOW.0 - 1));
        let off = Cause::ProviderOff {
            delay_secs: DELAY,
            held: false,
        };
        let off_now = Cause::ProviderOff {
            delay_secs: 0,
            held: false,
        };
        let off_held = Cause::ProviderOff {
            delay_secs: 0,
            held: true,
        };
        let clear = |d| Cause::ClearLegalHold {
            provider_delay_secs: d,
        };
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            // The provider turns the user off.
            (Active, false, None, off, Blocked, later, vec![T::Blocked { deactivate_at: later }]),
            (Active, false, None, off_now, Deactivated, None, vec![
                T::Blocked { deactivate_at: Some(NOW) },
                T::Deactivated { by: DeactivatedBy::NoDelay },
            ]),
            // The mass-deactivation guard holds: blocked, the deactivation scheduled, not done.
            (Active, false, None, off_held, Blocked, Some(NOW), vec![T::Blocked { deactivate_at: Some(NOW) }]),
            (Active, true, None, off, Blocked, None, vec![T::Blocked { deactivate_at: None }, T::HeldByLegalHold]),
            (Active, true, None, off_now, Blocked, None, vec![T::Blocked { deactivate_at: None }, T::HeldByLegalHold]),
            (Blocked, false, later, off, Blocked, later, vec![]),
            (Blocked, false, None, off, Blocked, later, vec![T::Blocked { deactivate_at: later }]),
            (Blocked, false, later, off_now, Deactivated, None, vec![T::Deactivated { by: DeactivatedBy::NoDelay }]),
            (Deactivated, false, None, off, Deactivated, None, vec![]),
            // The provider turns the user on.
            (Blocked, false, later, Cause::ProviderOn, Active, None, vec![T::Unblocked { cancelled: later }]),
            (Deactivated, false, None, Cause::ProviderOn, Active, None, vec![T::Reactivated]),
            (Active, false, None, Cause::ProviderOn, Active, None, vec![]),
            // Administrators.
            (Active, false, None, Cause::Block, Blocked, None, vec![T::Blocked { deactivate_at: None }]),
            (Blocked, false, later, Cause::Unblock, Active, None, vec![T::Unblocked { cancelled: later }]),
            (Active, false, None, Cause::Deactivate, Deactivated, None, vec![T::Deactivated { by: DeactivatedBy::Administrator }]),
            (Blocked, false, later, Cause::Deactivate, Deactivated, None, vec![T::Deactivated { by: DeactivatedBy::Administrator }]),
            (Deactivated, false, None, Cause::Reactivate, Active, None, vec![T::Reactivated]),
            // Legal hold.
            (Blocked, false, later, Cause::SetLegalHold, Blocked, None, vec![T::LegalHoldSet { cancelled: later }]),
            (Active, false, None, Cause::SetLegalHold, Active, None, vec![T::LegalHoldSet { cancelled: None }]),
            (Blocked, true, None, clear(Some(DELAY)), Blocked, later, vec![T::LegalHoldCleared { deactivate_at: later }]),
            (Blocked, true, None, clear(Some(0)), Deactivated, None, vec![
                T::LegalHoldCleared { deactivate_at: Some(NOW) },
                T::Deactivated { by: DeactivatedBy::NoDelay },
            ]),
            (Blocked, true, None, clear(None), Blocked, None, vec![T::LegalHoldCleared { deactivate_at: None }]),
            (Active, true, None, clear(Some(DELAY)), Active, None, vec![T::LegalHoldCleared { deactivate_at: None }]),
            // The scheduler.
            (Blocked, false, past, Cause::Due, Deactivated, None, vec![T::Deactivated { by: DeactivatedBy::DelayPassed }]),
            (Blocked, false, later, Cause::Due, Blocked, later, vec![]),
            (Blocked, true, past, Cause::Due, Blocked, past, vec![]),
            (Active, false, None, Cause::Due, Active, None, vec![]),
        ];
        for (i, (status, hold, due, cause, want_status, want_due, want)) in
            cases.into_iter().enumerate()
        {
            let mut u = user(status, hold, due);
            let got = apply(&mut u, cause, NOW).unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(got, want, "case {i}: {status:?} {cause:?}");
            assert_eq!(u.status, want_status, "case {i}: status");
            assert_eq!(u.deactivate_at, want_due, "case {i}: due time");
        }
    }

    #[test]
    fn administrators_are_refused_what_does_not_apply() {
        let refused: Vec<(UserStatus, bool, Cause, &str)> = vec![
            (Blocked, false, Cause::Block, "is blocked, not active"),
            (Active, false, Cause::Unblock, "is active, not blocked"),
            (Deactivated, false, Cause::Deactivate, "already deactivated"),
            (Active, true, Cause::Deactivate, "on legal hold"),
            (Active, false, Cause::Reactivate, "not deactivated"),
            (Active, true, Cause::SetLegalHold, "already on legal hold"),
            (
                Active,
                false,
                Cause::ClearLegalHold {
                    provider_delay_secs: None,
                },
                "not on legal hold",
            ),
        ];
        for (status, hold, cause, why) in refused {
            let mut u = user(status, hold, None);
            let before = u.clone();
            match apply(&mut u, cause, NOW) {
                Err(CoreError::Invalid(m)) => assert!(m.contains(why), "{cause:?}: {m}"),
                other => panic!("{cause:?} from {status:?}: {other:?}"),
            }
            assert_eq!(u, before, "a refused change changes nothing");
        }
    }

    #[test]
    fn clearing_a_hold_reschedules_only_users_the_provider_turned_off() {
        let mut u = user(Blocked, true, None);
        assert_eq!(delay_if_provider_off(&u, Some(DELAY)), Some(DELAY));
        u.scim_active = true;
        assert_eq!(
            delay_if_provider_off(&u, Some(DELAY)),
            None,
            "blocked by an administrator"
        );
        u.removed_at = Some(NOW);
        assert_eq!(
            delay_if_provider_off(&u, Some(DELAY)),
            Some(DELAY),
            "deleted by the provider"
        );
        u.provider_id = None;
        assert_eq!(delay_if_provider_off(&u, Some(DELAY)), None, "a local user");
    }
}
