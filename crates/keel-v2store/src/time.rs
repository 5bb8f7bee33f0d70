//! Times as the store sees them: nanoseconds since the Unix epoch, passed in by the caller
//! (the store never reads a clock), and formatted as Go's `time.RFC3339Nano` in UTC.

/// Nanoseconds since 1970-01-01T00:00:00Z (etcd's `RequestV2.Expiration` and `Time`).
pub type UnixNanos = i64;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// etcd treats expiration times before 2000-01-01T00:00:00Z as "no TTL" (`minExpireTime`).
pub const MIN_EXPIRE_TIME: UnixNanos = 946_684_800 * NANOS_PER_SECOND;

/// Formats like Go's `t.UTC().Format(time.RFC3339Nano)`: fractional seconds with trailing
/// zeros removed (none at all on a whole second) and a `Z` suffix.
pub fn format_rfc3339_nano(t: UnixNanos) -> String {
    let secs = t.div_euclid(NANOS_PER_SECOND);
    let nanos = t.rem_euclid(NANOS_PER_SECOND);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Parses RFC 3339 with optional fraction and a `Z` or `±hh:mm` offset (what Go's
/// `time.Time` JSON holds). Returns `None` on anything else or out of `i64` range.
pub fn parse_rfc3339(s: &str) -> Option<UnixNanos> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        nanos = digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32);
    }
    let offset_secs = match &s[i..] {
        "Z" => 0,
        rest if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            if rest.as_bytes()[3] != b':' {
                return None;
            }
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_secs;
    secs.checked_mul(NANOS_PER_SECOND)?.checked_add(nanos)
}

/// Howard Hinnant's `civil_from_days`: days since the epoch to (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// etcd's `ttl` in answers: the remaining time rounded up to whole seconds (so 1..=n for a
/// live key; 0 or negative once expired but not yet removed by a SYNC).
pub fn ttl_seconds(expire: UnixNanos, now: UnixNanos) -> i64 {
    let left = expire.saturating_sub(now);
    let mut ttl = left / NANOS_PER_SECOND;
    if left % NANOS_PER_SECOND > 0 {
        ttl += 1;
    }
    ttl
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(format_rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339_nano(1_795_367_876_395_909_718),
            "2026-11-22T17:17:56.395909718Z"
        );
        assert_eq!(
            format_rfc3339_nano(1_795_367_876_637_593_530),
            "2026-11-22T17:17:56.63759353Z"
        );
        assert_eq!(format_rfc3339_nano(MIN_EXPIRE_TIME), "2000-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339_nano(951_782_400 * NANOS_PER_SECOND),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn parses_offsets() {
        assert_eq!(
            parse_rfc3339("2000-01-01T01:00:00+01:00"),
            Some(MIN_EXPIRE_TIME)
        );
        assert_eq!(
            parse_rfc3339("2000-01-01T00:00:00.5Z"),
            Some(MIN_EXPIRE_TIME + 500_000_000)
        );
        assert_eq!(parse_rfc3339("2000-01-01 00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2000-01-01T00:00:00"), None);
    }

    #[test]
    fn ttl_rounds_up() {
        let s = NANOS_PER_SECOND;
        assert_eq!(ttl_seconds(100 * s, 0), 100);
        assert_eq!(ttl_seconds(100 * s, 1), 100);
        assert_eq!(ttl_seconds(100 * s, s - 1), 100);
        assert_eq!(ttl_seconds(100 * s, s), 99);
        assert_eq!(ttl_seconds(0, 0), 0);
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(t in 0i64..4_102_444_800_000_000_000) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339_nano(t)), Some(t));
        }
    }
}
