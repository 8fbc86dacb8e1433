//! Time as an argument: a [`Timestamp`] type and a [`Clock`] the tests can drive.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A point in time: microseconds since the Unix epoch, UTC. Stored as a 64-bit integer in both
/// databases, so it compares and sorts the same everywhere.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The time as microseconds since the epoch.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// This time plus a number of seconds.
    pub fn plus_secs(self, secs: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1_000_000)))
    }

    /// Parses an RFC 3339 date-time.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let t = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
        let micros = t.unix_timestamp_nanos() / 1000;
        i64::try_from(micros).ok().map(Timestamp)
    }

    /// RFC 3339 in UTC with millisecond precision, as SCIM `meta` dates are written.
    pub fn to_rfc3339(self) -> String {
        let mut buf = [0u8; RFC3339_MAX];
        self.write_rfc3339(3, &mut buf).to_string()
    }

    /// RFC 3339 in UTC with `frac` digits of the second (0 to 6), written into `buf`.
    ///
    /// The digits are written into a fixed buffer: a resource carries two of these dates, and
    /// `format!` with seven padded fields cost about 3,000 instructions each (callgrind, GET of
    /// a user), more than the rest of rendering the user's `meta`. The request log's timestamps
    /// are written the same way. Outside years 0 to 9999 this writes the epoch.
    pub fn write_rfc3339(self, frac: usize, buf: &mut [u8; RFC3339_MAX]) -> &str {
        let frac = frac.min(6);
        // Whole seconds and the microseconds apart, in 64-bit arithmetic, and the date and the
        // time of day each asked for once: through nanoseconds (`i128`) and one accessor per
        // field, the two dates of a user's `meta` were 1,480 of a GET's instructions.
        let (secs, micros) = (self.0.div_euclid(1_000_000), self.0.rem_euclid(1_000_000));
        let (t, micros) = match OffsetDateTime::from_unix_timestamp(secs) {
            Ok(t) if (0..=9999).contains(&t.year()) => (t, micros as u32),
            _ => (OffsetDateTime::UNIX_EPOCH, 0),
        };
        let (year, month, day) = t.to_calendar_date();
        let (hour, minute, second) = t.to_hms();
        *buf = *b"0000-00-00T00:00:00.000000Z";
        let fields = [
            (0, 4, year.unsigned_abs()),
            (5, 2, u32::from(u8::from(month))),
            (8, 2, u32::from(day)),
            (11, 2, u32::from(hour)),
            (14, 2, u32::from(minute)),
            (17, 2, u32::from(second)),
            (20, frac, micros / 10u32.pow(6 - frac as u32)),
        ];
        for (at, width, mut n) in fields {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        }
        let len = if frac == 0 {
            buf[19] = b'Z';
            20
        } else {
            buf[20 + frac] = b'Z';
            21 + frac
        };
        // Only ASCII digits were written into an ASCII template.
        std::str::from_utf8(&buf[..len]).unwrap_or("1970-01-01T00:00:00Z")
    }
}

/// The longest RFC 3339 date [`Timestamp::write_rfc3339`] writes: microseconds and `Z`.
pub const RFC3339_MAX: usize = 27;

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.to_rfc3339())
    }
}

/// Where "now" comes from.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Timestamp(i64::try_from(nanos / 1000).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to: for tests of time-dependent rules.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start.0)))
    }
    /// Moves the clock forward.
    pub fn advance_secs(&self, secs: i64) {
        self.0
            .fetch_add(secs.saturating_mul(1_000_000), Ordering::SeqCst);
    }
    /// Sets the clock.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_at_millisecond_precision() {
        let t = Timestamp(1_700_000_000_123_000);
        assert_eq!(t.to_rfc3339(), "2023-11-14T22:13:20.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2023-11-14T23:13:20.123+01:00"),
            Some(t)
        );
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn rfc3339_pads_every_field() {
        // 0005-01-02T03:04:05.006Z, written from a known instant.
        let early = Timestamp::parse_rfc3339("0005-01-02T03:04:05.006Z");
        assert_eq!(
            early.map(Timestamp::to_rfc3339).as_deref(),
            Some("0005-01-02T03:04:05.006Z")
        );
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        // Microseconds are cut, not rounded.
        assert_eq!(Timestamp(999_999).to_rfc3339(), "1970-01-01T00:00:00.999Z");
        assert_eq!(
            Timestamp(253_402_300_799_999_000).to_rfc3339(),
            "9999-12-31T23:59:59.999Z"
        );
        let mut buf = [0; RFC3339_MAX];
        let t = Timestamp(1_700_000_000_123_456);
        assert_eq!(t.write_rfc3339(6, &mut buf), "2023-11-14T22:13:20.123456Z");
        assert_eq!(t.write_rfc3339(0, &mut buf), "2023-11-14T22:13:20Z");
    }

    /// Every field as the `time` crate computes it, for instants spread over years 0 to 9999
    /// (negative ones too) and at every precision; outside those years, the epoch.
    #[test]
    fn rfc3339_agrees_with_the_time_crate() {
        let (first, last) = (-62_167_219_200_000_000i64, 253_402_300_799_999_999i64);
        let step = (last - first) / 20_000;
        let mut buf = [0; RFC3339_MAX];
        let mut at = first;
        while at <= last {
            for micros in [at, at + 1, at + 999_999, at - at.rem_euclid(1_000_000)] {
                let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
                else {
                    continue;
                };
                if !(0..=9999).contains(&t.year()) {
                    continue;
                }
                let full = format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second(),
                    t.microsecond()
                );
                for frac in 0..=6 {
                    let want = match frac {
                        0 => format!("{}Z", &full[..19]),
                        f => format!("{}Z", &full[..20 + f]),
                    };
                    assert_eq!(Timestamp(micros).write_rfc3339(frac, &mut buf), want);
                }
            }
            at += step;
        }
        assert_eq!(Timestamp(-1).to_rfc3339(), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            Timestamp(first - 1).to_rfc3339(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(Timestamp(last + 1).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp(i64::MIN).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp(i64::MAX).to_rfc3339(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp(0));
        assert_eq!(c.now(), Timestamp(0));
        c.advance_secs(90);
        assert_eq!(c.now(), Timestamp(90_000_000));
    }
}
