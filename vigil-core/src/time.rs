//! Wall-clock timestamps and the clock that supplies them.

use core::fmt;
use core::time::Duration;

/// A point in UTC time with nanosecond precision, counted from the Unix epoch.
///
/// On the wire it is RFC 3339 with microseconds and a `Z` offset, e.g.
/// `2026-11-24T10:00:00.123456Z`, the form the Vigil server stores.
///
/// ```
/// use vigil_core::Timestamp;
///
/// let t = Timestamp::from_unix_nanos(1_795_514_400_123_456_789);
/// assert_eq!(t.to_string(), "2026-11-24T10:00:00.123456Z");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

/// Length of [`Timestamp::to_rfc3339`]'s output.
pub const RFC3339_LEN: usize = 27;

impl Timestamp {
    /// The timestamp `nanos` nanoseconds after 1970-01-01T00:00:00Z.
    pub const fn from_unix_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> u64 {
        self.0
    }

    /// This timestamp moved `d` later (saturating at the far future).
    pub fn saturating_add(self, d: Duration) -> Self {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(nanos))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Writes the RFC 3339 form (UTC, microseconds) into `buf`.
    pub fn to_rfc3339(self, buf: &mut [u8; RFC3339_LEN]) -> &str {
        let secs = self.0 / 1_000_000_000;
        let micros = (self.0 % 1_000_000_000) / 1_000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        let year = year.min(9999);
        // Two digits at a time from a table: this runs twice per span on
        // the exporter, and a division per digit showed in its profile.
        const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
            2021222324252627282930313233343536373839\
            4041424344454647484950515253545556575859\
            6061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899";
        let mut pair = |at: usize, value: u64| {
            let i = (value % 100) as usize * 2;
            buf[at] = PAIRS[i];
            buf[at + 1] = PAIRS[i + 1];
        };
        pair(0, year / 100);
        pair(2, year);
        pair(5, month);
        pair(8, day);
        pair(11, rem / 3600);
        pair(14, rem % 3600 / 60);
        pair(17, rem % 60);
        pair(20, micros / 10_000);
        pair(22, micros / 100);
        pair(24, micros);
        buf[4] = b'-';
        buf[7] = b'-';
        buf[10] = b'T';
        buf[13] = b':';
        buf[16] = b':';
        buf[19] = b'.';
        buf[26] = b'Z';
        // SAFETY: every byte of `buf` was written above, all ASCII digits
        // and separators. (Checking costs as much as formatting, twice per
        // span on the exporter.)
        unsafe { core::str::from_utf8_unchecked(buf) }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_rfc3339(&mut [0; RFC3339_LEN]))
    }
}

/// The days from 1970-01-01 to `year-month-day` (after Howard Hinnant's
/// `days_from_civil`); `None` for a date before the epoch or a month
/// outside 1 to 12. The day is not checked against its month's length.
///
/// ```
/// use vigil_core::time::days_from_civil;
///
/// assert_eq!(days_from_civil(1970, 1, 1), Some(0));
/// assert_eq!(days_from_civil(2024, 3, 1), Some(19_783));
/// assert_eq!(days_from_civil(1969, 12, 31), None);
/// ```
pub fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    if !(1..=12).contains(&month) || day == 0 {
        return None;
    }
    let (y, m) = if month <= 2 {
        (year.checked_sub(1)?, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's
/// `civil_from_days`, restricted to dates on or after the epoch.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A source of wall-clock time.
///
/// The core never reads a clock itself; whoever drives it passes one in, so
/// tests can use a fake clock and embedded targets their RTC.
pub trait Clock {
    /// The current UTC time.
    fn now(&self) -> Timestamp;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn formats_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000Z"),
            (1_000_010_203_000, "1970-01-01T00:16:40.010203Z"),
            (1_234_567_890_987_654_321, "2009-02-13T23:31:30.987654Z"),
            (951_782_400_000_000_000, "2000-02-29T00:00:00.000000Z"),
            (1_795_514_400_123_456_789, "2026-11-24T10:00:00.123456Z"),
            (4_102_444_799_999_999_000, "2099-12-31T23:59:59.999999Z"),
        ];
        for (nanos, text) in cases {
            assert_eq!(Timestamp::from_unix_nanos(nanos).to_string(), text);
        }
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for days in [0, 59, 60, 365, 10_957, 19_783, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days), "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(2024, 13, 1), None);
    }

    #[test]
    fn far_future_stays_well_formed() {
        let text = Timestamp::from_unix_nanos(u64::MAX).to_string();
        assert_eq!(text.len(), RFC3339_LEN);
        assert!(text.ends_with('Z'));
    }
}
