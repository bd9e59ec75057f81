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
    /// `KEEPALIVE_OVERRIDE`: our values replace the program's own for the
    /// options we set (`true`), or the program's own choices win (`false`,
    /// the default). A rule may say otherwise for its connections.
    pub override_program: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            debug: false,
            timers: Timers::default(),
            override_program: false,
        }
    }
}

impl Settings {
    /// These settings with a rule's timers put in, and its override if it
    /// gives one.
    pub fn with_rule(&self, timers: Timers, override_program: Option<bool>) -> Settings {
        Settings {
            timers: timers.or(self.timers),
            override_program: override_program.unwrap_or(self.override_program),
            ..self.clone()
        }
    }
}
