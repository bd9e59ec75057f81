//! What is wrong with the configuration, as values: the library prints
//! each as one line at start-up, the `keepalive` command prints the same
//! lines and reads which variables they name.

use crate::quantity::{quote_value, quote_value_up_to};
use std::fmt;

/// How much of a rule's text a diagnostic quotes: enough to recognise it,
/// short enough that the line always ends with what is valid.
const SHOWN_RULE_CHARS: usize = 60;

/// One bad variable, conflict or rule. `Display` prints the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnostic {
    /// A variable's bytes are not UTF-8 (`value`: lossily decoded).
    NotUtf8 {
        /// The variable.
        variable: &'static str,
        /// Its value, invalid bytes replaced.
        value: String,
    },
    /// A value outside the grammar or the range.
    Invalid {
        /// The variable.
        variable: &'static str,
        /// Its value as written.
        value: String,
        /// What is valid.
        expected: String,
    },
    /// Two valid spellings of one setting that disagree: both ignored.
    Conflict {
        /// The spelling read first.
        first: &'static str,
        /// Its value as written.
        first_value: String,
        /// The spelling that disagrees with it.
        second: &'static str,
        /// Its value as written.
        second_value: String,
    },
    /// More rules than `rules::MAX_RULES`.
    TooManyRules {
        /// The variable holding the rules.
        variable: &'static str,
        /// The first rule ignored (and every later one).
        first_ignored: usize,
    },
    /// One bad rule, dropped alone.
    BadRule {
        /// The variable holding the rules.
        variable: &'static str,
        /// Its position, from 1.
        number: usize,
        /// Its text.
        rule: String,
        /// What is wrong.
        reason: String,
        /// What its author probably meant, if a common mistake.
        hint: Option<&'static str>,
    },
}

impl Diagnostic {
    /// The variables the line names (a conflict names two).
    pub fn variables(&self) -> Vec<&'static str> {
        match *self {
            Diagnostic::NotUtf8 { variable, .. }
            | Diagnostic::Invalid { variable, .. }
            | Diagnostic::TooManyRules { variable, .. }
            | Diagnostic::BadRule { variable, .. } => vec![variable],
            Diagnostic::Conflict { first, second, .. } => vec![first, second],
        }
    }

    /// Whether it drops rules (the others drop a whole variable).
    pub fn is_about_rules(&self) -> bool {
        matches!(
            self,
            Diagnostic::TooManyRules { .. } | Diagnostic::BadRule { .. }
        )
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnostic::NotUtf8 { variable, value } => write!(
                f,
                "libkeepalive: {variable}={} is not valid: not UTF-8 text; ignoring it",
                quote_value(value)
            ),
            Diagnostic::Invalid {
                variable,
                value,
                expected,
            } => write!(
                f,
                "libkeepalive: {variable}={} is not valid: expected {expected}; ignoring it",
                quote_value(value)
            ),
            Diagnostic::Conflict {
                first,
                first_value,
                second,
                second_value,
            } => write!(
                f,
                "libkeepalive: {first}={} conflicts with {second}={} (two names for one \
                 setting); ignoring both",
                quote_value(first_value),
                quote_value(second_value)
            ),
            Diagnostic::TooManyRules {
                variable,
                first_ignored,
            } => write!(
                f,
                "libkeepalive: {variable}: more than {} rules; ignoring rule {first_ignored} \
                 and every later one",
                crate::rules::MAX_RULES
            ),
            Diagnostic::BadRule {
                variable,
                number,
                rule,
                reason,
                hint,
            } => write!(
                f,
                "libkeepalive: {variable}: rule {number} {} is not valid: {reason}; \
                 {}ignoring this rule; {}",
                quote_value_up_to(rule, SHOWN_RULE_CHARS),
                hint.unwrap_or(""),
                crate::rules::RULE_SYNTAX
            ),
        }
    }
}
