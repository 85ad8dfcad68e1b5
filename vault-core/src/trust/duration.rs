//! Durations typed by people: `900` (seconds), `15m`, `1h`, `7d`; and the bounds the trust model
//! puts on them (a ceremony request lives at most [`MAX_CEREMONY_EXPIRY`]).
//!
//! Parsing never overflows: a number too large for `u64`, or whose product with its unit is,
//! is an error naming the text, as is anything above the caller's maximum.

use super::TrustError;

/// The longest a ceremony request may stay open: 7 days.
pub const MAX_CEREMONY_EXPIRY: u64 = 7 * 86_400;

/// Parses `text` as a number of seconds: digits, then optionally `s`, `m`, `h` or `d`. Zero
/// and anything above `max_seconds` are refused.
pub fn parse_duration(text: &str, max_seconds: u64) -> Result<u64, TrustError> {
    let invalid = |reason: &'static str| TrustError::InvalidDuration {
        text: text.to_owned(),
        reason,
    };
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], Some(c)),
        _ => (text, None),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "expected a number, then s, m, h or d (e.g. 900, 15m, 1h, 7d)",
        ));
    }
    let multiplier = match unit {
        None | Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3_600,
        Some('d') => 86_400,
        Some(_) => return Err(invalid("the unit must be s, m, h or d")),
    };
    let seconds = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| invalid("too large"))?;
    if seconds == 0 {
        return Err(invalid("must be more than zero"));
    }
    if seconds > max_seconds {
        return Err(TrustError::DurationTooLong {
            text: text.to_owned(),
            max_seconds,
        });
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_minutes_hours_and_days_parse() {
        for (text, seconds) in [
            ("900", 900),
            ("900s", 900),
            ("15m", 900),
            ("1h", 3_600),
            ("7d", 604_800),
            ("007d", 604_800),
        ] {
            assert_eq!(
                parse_duration(text, MAX_CEREMONY_EXPIRY).unwrap(),
                seconds,
                "{text}"
            );
        }
    }

    #[test]
    fn the_maximum_holds_and_nothing_overflows() {
        assert!(matches!(
            parse_duration("8d", MAX_CEREMONY_EXPIRY),
            Err(TrustError::DurationTooLong {
                max_seconds: 604_800,
                ..
            })
        ));
        assert!(parse_duration("604801", MAX_CEREMONY_EXPIRY).is_err());
        // Numbers and products beyond u64: errors, not panics or wraps.
        for text in [
            "18446744073709551616",
            "213503982334602d",
            "99999999999999999999999999d",
        ] {
            assert!(
                matches!(
                    parse_duration(text, u64::MAX),
                    Err(TrustError::InvalidDuration { .. })
                ),
                "{text}"
            );
        }
        assert_eq!(
            parse_duration("18446744073709551615", u64::MAX).unwrap(),
            u64::MAX
        );
        assert_eq!(
            parse_duration("213503982334601d", u64::MAX).unwrap(),
            213_503_982_334_601 * 86_400
        );
    }

    #[test]
    fn malformed_text_is_refused_with_the_text_named() {
        for text in [
            "", "d", "1w", "-1h", "1.5h", " 1h", "1h ", "1 h", "0", "0d", "1hh", "１h", "+1h",
            "+900",
        ] {
            match parse_duration(text, MAX_CEREMONY_EXPIRY) {
                Err(TrustError::InvalidDuration { text: named, .. }) => assert_eq!(named, text),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        // Digits only: Rust's integer parser would take a leading `+`; the check before it
        // refuses that, and says what a duration looks like.
        for text in ["", "d", "+1h", "+900", "-1h"] {
            assert!(
                matches!(
                    parse_duration(text, MAX_CEREMONY_EXPIRY),
                    Err(TrustError::InvalidDuration { reason, .. }) if reason.starts_with("expected a number")
                ),
                "{text:?}"
            );
        }
    }
}
