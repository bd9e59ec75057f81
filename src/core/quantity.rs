//! How numbers are spelled in our variables and rules, and how values are
//! quoted in diagnostics.

use crate::timers::{UserTimeout, MAX_USER_TIMEOUT_MS};
use std::fmt::Write as _;

/// How a number is written for one setting and what it means (also in the
/// timers of a rule, see `rules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// Whole seconds; suffixes ms (if whole), s, m, h.
    Seconds {
        /// The largest valid value.
        max: u32,
    },
    /// Milliseconds; suffixes ms, s, m, h; `auto` allowed.
    Millis {
        /// The largest valid value.
        max: u32,
    },
    /// A plain count, no suffix.
    Count {
        /// The largest valid value.
        max: u32,
    },
}

impl Quantity {
    /// What is valid, for diagnostics.
    pub fn describe(self) -> String {
        match self {
            Quantity::Seconds { max } => text(format_args!(
                "whole seconds 1..{max} (a suffix ms, s, m or h is allowed)"
            )),
            Quantity::Millis { max } => text(format_args!(
                "milliseconds 0..{max} (a suffix ms, s, m or h is allowed) or auto"
            )),
            Quantity::Count { max } => text(format_args!("a whole number 1..{max}")),
        }
    }
}

/// `format!` for messages, with its inlined fast path for text without
/// arguments taken out of every call site: one copy serves them all.
#[inline(never)]
pub fn text(message: std::fmt::Arguments<'_>) -> String {
    std::fmt::format(message)
}

/// Parses `digits[suffix]` strictly: no sign, no spaces, no other base, no
/// exponent. Returns the value in the quantity's own unit, or `None`.
pub fn parse_quantity(text: &str, quantity: Quantity) -> Option<u32> {
    let digits_end = text
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    if digits.is_empty() {
        return None;
    }
    // Saturate instead of failing so that a huge number is reported as out of
    // range rather than as a spelling mistake.
    let number = digits.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    });
    let millis_per_unit: u64 = match suffix {
        "ms" => 1,
        "s" | "" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    let (value, min, max) = match quantity {
        Quantity::Count { max } => {
            if !suffix.is_empty() {
                return None;
            }
            (number, 1, max)
        }
        Quantity::Seconds { max } => {
            let millis = number.saturating_mul(millis_per_unit);
            if millis % 1000 != 0 {
                return None;
            }
            (millis / 1000, 1, max)
        }
        Quantity::Millis { max } => {
            // A bare number is already milliseconds, the kernel's unit.
            let per_unit = if suffix.is_empty() {
                1
            } else {
                millis_per_unit
            };
            (number.saturating_mul(per_unit), 0, max)
        }
    };
    if value < min || value > u64::from(max) {
        return None;
    }
    u32::try_from(value).ok()
}

/// A value shown in a diagnostic: escaped so it stays on one line, and cut
/// short so a megabyte of garbage gives a readable message.
pub fn quote_value(value: &str) -> String {
    quote_value_up_to(value, 40)
}

/// `quote_value` showing up to `shown_chars` characters.
pub fn quote_value_up_to(value: &str, shown_chars: usize) -> String {
    let mut quoted = String::from("\"");
    for (count, c) in value.chars().enumerate() {
        if count == shown_chars {
            let _ = write!(quoted, "\"... ({} bytes)", value.len());
            return quoted;
        }
        quoted.extend(c.escape_debug());
    }
    quoted.push('"');
    quoted
}

/// `TCP_USER_TIMEOUT`: milliseconds or `auto`.
pub fn parse_user_timeout(text: &str) -> Option<UserTimeout> {
    if text == "auto" {
        return Some(UserTimeout::Auto);
    }
    parse_quantity(
        text,
        Quantity::Millis {
            max: MAX_USER_TIMEOUT_MS,
        },
    )
    .map(UserTimeout::Millis)
}
