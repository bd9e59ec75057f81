//! The validated global configuration.

use crate::timers::Timers;

/// The validated configuration. A timer `None` means "not configured: the
/// kernel default applies".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `KEEPALIVE`: whether the library does anything at all.
    pub enabled: bool,
    /// `KEEPALIVE_DEBUG`: one line per socket on stderr.
    pub debug: bool,
    /// The timers every connection gets unless a rule says otherwise.
    pub timers: Timers,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            debug: false,
            timers: Timers::default(),
        }
    }
}

impl Settings {
    /// These settings with a rule's timers put in.
    pub fn with_rule_timers(&self, rule: Timers) -> Settings {
        Settings {
            timers: rule.or(self.timers),
            ..self.clone()
        }
    }
}
