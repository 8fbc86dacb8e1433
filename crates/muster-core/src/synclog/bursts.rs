//! Refusals that come in floods are not written one by one.
//!
//! A 429 is by nature one of many: a provider past its rate limit, or an address past its budget
//! of failed authentications, is refused as fast as it sends. Written one entry and one commit
//! each, those refusals made a flood of reads into a flood of durable writes (several thousand
//! sync log entries a second from one client past the default limit), which is what the limit is
//! there to prevent, and buried everything else in the provider's log.
//!
//! So for each provider the first 429 of a [`WINDOW_SECS`] window is written as before, and the
//! ones after it in the window are counted in memory. When the window has ended, one entry says
//! how many more were refused, between when and when, and what the last of them was
//! ([`crate::synclog::rejections`] writes it: at the next 429 after the window, or at the
//! server's next periodic check, or when it stops). Other refusals (a bad filter, a conflict) are
//! each a provisioning error an administrator wants to see, and the rate limit bounds them; they
//! are written one by one.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Timestamp;
use crate::ids::{EnvironmentId, ProviderId};

/// How long refusals of one provider are counted before their count is written.
pub const WINDOW_SECS: i64 = 60;

/// The status whose refusals are counted rather than written one by one.
pub const FLOOD_STATUS: u16 = 429;

/// The refusals of one provider counted in the current window.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Burst {
    /// When the window opened: the refusal that was written.
    pub(crate) opened: Timestamp,
    /// Refusals after that one, not written one by one.
    pub(crate) repeated: u64,
    /// The first and the last of them.
    pub(crate) first: Timestamp,
    pub(crate) last: Timestamp,
    /// The last one's method, path and reason.
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) detail: String,
}

/// What to do with one refusal of the flooding kind.
#[derive(Debug, PartialEq)]
pub(crate) enum Admit {
    /// Write it: it opens a window. First write the count of the window it closes, if it counted
    /// any.
    Write(Option<Burst>),
    /// Counted; nothing to write now.
    Counted,
}

type Key = (EnvironmentId, ProviderId);

/// The open windows, per provider.
#[derive(Debug, Default)]
pub(crate) struct Bursts(Mutex<HashMap<Key, Burst>>);

impl Bursts {
    /// A refusal of the flooding kind for `key` at `now`.
    pub(crate) fn admit(
        &self,
        key: Key,
        now: Timestamp,
        method: &str,
        path: &str,
        detail: &str,
    ) -> Admit {
        // A poisoned lock only means another request panicked while counting: the counts are
        // still whole numbers, so go on with them.
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match open.get_mut(&key) {
            Some(b) if now.micros() < b.opened.plus_secs(WINDOW_SECS).micros() => {
                if b.repeated == 0 {
                    b.first = now;
                }
                b.repeated += 1;
                b.last = now;
                method.clone_into(&mut b.method);
                path.clone_into(&mut b.path);
                detail.clone_into(&mut b.detail);
                Admit::Counted
            }
            _ => {
                let fresh = Burst {
                    opened: now,
                    repeated: 0,
                    first: now,
                    last: now,
                    method: String::new(),
                    path: String::new(),
                    detail: String::new(),
                };
                let closed = open.insert(key, fresh).filter(|b| b.repeated > 0);
                Admit::Write(closed)
            }
        }
    }

    /// The windows that have ended by `now` (every window when `all`), taken out, with the
    /// refusals they counted; windows that counted none are dropped.
    pub(crate) fn take_due(&self, now: Timestamp, all: bool) -> Vec<(Key, Burst)> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let ended: Vec<Key> = open
            .iter()
            .filter(|(_, b)| all || now.micros() >= b.opened.plus_secs(WINDOW_SECS).micros())
            .map(|(k, _)| *k)
            .collect();
        ended
            .into_iter()
            .filter_map(|k| open.remove(&k).map(|b| (k, b)))
            .filter(|(_, b)| b.repeated > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        (
            EnvironmentId(uuid::Uuid::nil()),
            ProviderId(uuid::Uuid::nil()),
        )
    }

    #[test]
    fn the_first_of_a_window_is_written_and_the_rest_counted() {
        let b = Bursts::default();
        let t = Timestamp(1_000_000_000);
        assert_eq!(b.admit(key(), t, "GET", "/a", "x"), Admit::Write(None));
        assert_eq!(
            b.admit(key(), t.plus_secs(1), "GET", "/b", "y"),
            Admit::Counted
        );
        assert_eq!(
            b.admit(key(), t.plus_secs(59), "POST", "/c", "z"),
            Admit::Counted
        );
        // Not yet due.
        assert!(b.take_due(t.plus_secs(59), false).is_empty());
        // The next refusal after the window writes itself, after the window's count.
        match b.admit(key(), t.plus_secs(60), "GET", "/d", "w") {
            Admit::Write(Some(closed)) => {
                assert_eq!(closed.repeated, 2);
                assert_eq!(closed.first, t.plus_secs(1));
                assert_eq!(closed.last, t.plus_secs(59));
                assert_eq!(
                    (closed.method.as_str(), closed.path.as_str()),
                    ("POST", "/c")
                );
                assert_eq!(closed.detail, "z");
            }
            other => panic!("{other:?}"),
        }
        // A window that counted nothing has nothing to write.
        assert!(b.take_due(t.plus_secs(200), false).is_empty());
    }

    #[test]
    fn ended_windows_are_taken_once() {
        let b = Bursts::default();
        let t = Timestamp(5_000_000);
        let other = (key().0, ProviderId(uuid::Uuid::from_u128(1)));
        b.admit(key(), t, "GET", "/a", "x");
        b.admit(key(), t, "GET", "/a", "x");
        b.admit(other, t.plus_secs(30), "GET", "/a", "x");
        b.admit(other, t.plus_secs(31), "GET", "/a", "x");
        let due = b.take_due(t.plus_secs(60), false);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, key());
        assert!(b.take_due(t.plus_secs(60), false).is_empty());
        // At a stop, every window is written, ended or not.
        let all = b.take_due(t.plus_secs(61), true);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0, other);
        // The next refusal opens a new window.
        assert_eq!(
            b.admit(other, t.plus_secs(62), "GET", "/a", "x"),
            Admit::Write(None)
        );
    }
}
