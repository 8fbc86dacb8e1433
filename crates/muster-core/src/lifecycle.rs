//! The deactivation lifecycle: what a provider turning a user off or on does to the user's
//! status (PRODUCT.md, "Deactivation").
//!
//! These functions only change the record and say what happened; the caller writes both, with
//! the sync log entries, in one transaction. They read no clock: `now` is an argument.

use crate::clock::Timestamp;
use crate::model::{UserRecord, UserStatus};

/// A change of a user's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Blocked at once; deactivation due at the given time (`None` under legal hold).
    Blocked {
        /// When the deactivation is due.
        deactivate_at: Option<Timestamp>,
    },
    /// Deactivated.
    Deactivated,
    /// Unblocked before the deactivation was due; the pending deactivation is cancelled.
    Unblocked,
    /// Active again after deactivation.
    Reactivated,
    /// Deactivation skipped because the user is on legal hold.
    HeldByLegalHold,
}

impl Transition {
    /// The sync log action for this transition.
    pub fn action(self) -> &'static str {
        match self {
            Transition::Blocked { .. } => "user.blocked",
            Transition::Deactivated => "user.deactivated",
            Transition::Unblocked => "user.unblocked",
            Transition::Reactivated => "user.reactivated",
            Transition::HeldByLegalHold => "user.deactivation_held",
        }
    }
}

/// The provider turned the user off (`active` false, or DELETE): block now, deactivate after the
/// provider's delay (at once when the delay is 0), never while on legal hold.
pub fn turn_off(u: &mut UserRecord, delay_secs: i64, now: Timestamp) -> Vec<Transition> {
    let mut out = Vec::new();
    match u.status {
        UserStatus::Deactivated => {}
        UserStatus::Active | UserStatus::Blocked => {
            if u.legal_hold {
                if u.status == UserStatus::Active {
                    u.status = UserStatus::Blocked;
                    out.push(Transition::Blocked {
                        deactivate_at: None,
                    });
                }
                u.deactivate_at = None;
                out.push(Transition::HeldByLegalHold);
            } else if delay_secs == 0 {
                u.status = UserStatus::Deactivated;
                u.deactivate_at = None;
                out.push(Transition::Deactivated);
            } else if u.status == UserStatus::Active || u.deactivate_at.is_none() {
                let due = now.plus_secs(delay_secs);
                u.status = UserStatus::Blocked;
                u.deactivate_at = Some(due);
                out.push(Transition::Blocked {
                    deactivate_at: Some(due),
                });
            }
        }
    }
    out
}

/// The provider turned the user back on: unblock and cancel before the due time, reactivate after.
pub fn turn_on(u: &mut UserRecord) -> Vec<Transition> {
    match u.status {
        UserStatus::Active => Vec::new(),
        UserStatus::Blocked => {
            u.status = UserStatus::Active;
            u.deactivate_at = None;
            vec![Transition::Unblocked]
        }
        UserStatus::Deactivated => {
            u.status = UserStatus::Active;
            u.deactivate_at = None;
            vec![Transition::Reactivated]
        }
    }
}

/// A due deactivation: deactivates a blocked user whose time has come.
pub fn deactivate_if_due(u: &mut UserRecord, now: Timestamp) -> Option<Transition> {
    match (u.status, u.deactivate_at) {
        (UserStatus::Blocked, Some(due)) if due <= now && !u.legal_hold => {
            u.status = UserStatus::Deactivated;
            u.deactivate_at = None;
            Some(Transition::Deactivated)
        }
        _ => None,
    }
}
