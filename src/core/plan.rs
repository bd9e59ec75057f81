//! The socket options to set on every TCP socket, computed once from the
//! settings so that the hot path only walks a small fixed array.

use crate::options::{OptionSet, SockOpt};
use crate::settings::Settings;
use crate::timers::{UserTimeout, MAX_USER_TIMEOUT_MS};

/// The kernel's defaults (`net.ipv4.tcp_keepalive_{time,intvl,probes}`), needed
/// only to derive `TCP_USER_TIMEOUT=auto` for timers left unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelDefaults {
    /// `net.ipv4.tcp_keepalive_time`, seconds.
    pub idle_secs: u32,
    /// `net.ipv4.tcp_keepalive_intvl`, seconds.
    pub interval_secs: u32,
    /// `net.ipv4.tcp_keepalive_probes`.
    pub count: u32,
}

impl KernelDefaults {
    /// Linux's compiled-in values, used when the sysctls cannot be read.
    pub const LINUX: KernelDefaults = KernelDefaults {
        idle_secs: 7200,
        interval_secs: 75,
        count: 9,
    };
}

/// At most five options: SO_KEEPALIVE, three timers, the user timeout.
pub const MAX_OPTIONS: usize = 5;

/// The options to set, in order; SO_KEEPALIVE first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    options: [SockOpt; MAX_OPTIONS],
    len: usize,
    /// The options, as a set.
    set: OptionSet,
    /// Our values replace the program's own (`KEEPALIVE_OVERRIDE`, a
    /// rule's `override`); otherwise the program's own choices win.
    pub override_program: bool,
}

impl Plan {
    /// The options, in the order they are set. (`get`: no panic path on
    /// the hooks' fast paths; `len` never exceeds `MAX_OPTIONS`.)
    #[inline]
    pub fn options(&self) -> &[SockOpt] {
        self.options.get(..self.len).unwrap_or_default()
    }

    /// The options, as a set.
    #[inline]
    pub fn set(&self) -> OptionSet {
        self.set
    }

    fn push(&mut self, level: i32, name: i32, value: u32) {
        let bit = OptionSet::of(level, name).unwrap_or_default();
        self.options[self.len] = SockOpt {
            level,
            name,
            value: value as i32,
            bit,
        };
        self.len += 1;
        self.set = self.set.union(bit);
    }

    /// Builds the plan. `kernel_defaults` is consulted only for
    /// `UserTimeout::Auto`, and only for the timers the settings leave unset.
    pub fn new(settings: &Settings, kernel_defaults: impl FnOnce() -> KernelDefaults) -> Plan {
        let mut plan = Plan {
            options: [SockOpt {
                level: 0,
                name: 0,
                value: 0,
                bit: OptionSet::EMPTY,
            }; MAX_OPTIONS],
            len: 0,
            set: OptionSet::EMPTY,
            override_program: settings.override_program,
        };
        if !settings.enabled {
            return plan;
        }
        plan.push(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
        let timers = [
            (libc::TCP_KEEPIDLE, settings.timers.idle_secs),
            (libc::TCP_KEEPINTVL, settings.timers.interval_secs),
            (libc::TCP_KEEPCNT, settings.timers.count),
        ];
        for (name, value) in timers {
            if let Some(value) = value {
                plan.push(libc::IPPROTO_TCP, name, value);
            }
        }
        if let Some(timeout) = settings.timers.user_timeout {
            let millis = match timeout {
                UserTimeout::Millis(millis) => millis,
                UserTimeout::Auto => auto_user_timeout_ms(settings, kernel_defaults()),
            };
            plan.push(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, millis);
        }
        plan
    }
}

/// (idle + interval x count) seconds, in milliseconds: the time keepalive
/// itself would take to declare an idle peer dead.
pub fn auto_user_timeout_ms(settings: &Settings, defaults: KernelDefaults) -> u32 {
    let idle = u64::from(settings.timers.idle_secs.unwrap_or(defaults.idle_secs));
    let interval = u64::from(
        settings
            .timers
            .interval_secs
            .unwrap_or(defaults.interval_secs),
    );
    let count = u64::from(settings.timers.count.unwrap_or(defaults.count));
    let millis = (idle + interval * count) * 1000;
    millis.min(u64::from(MAX_USER_TIMEOUT_MS)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timers::Timers;

    fn never() -> KernelDefaults {
        panic!("kernel defaults read although not needed")
    }

    #[test]
    fn default_settings_turn_keepalive_on_only() {
        let plan = Plan::new(&Settings::default(), never);
        assert_eq!(plan.options().len(), 1);
        assert_eq!(plan.options()[0].label(), "SO_KEEPALIVE");
        assert_eq!(plan.options()[0].value, 1);
    }

    #[test]
    fn disabled_plan_is_empty() {
        let settings = Settings {
            enabled: false,
            timers: Timers {
                idle_secs: Some(5),
                ..Timers::default()
            },
            ..Settings::default()
        };
        assert!(Plan::new(&settings, never).options().is_empty());
    }

    #[test]
    fn every_configured_option_in_order() {
        let settings = Settings {
            timers: Timers {
                idle_secs: Some(60),
                interval_secs: Some(10),
                count: Some(6),
                user_timeout: Some(UserTimeout::Millis(1234)),
            },
            ..Settings::default()
        };
        let plan = Plan::new(&settings, never);
        let got: Vec<_> = plan
            .options()
            .iter()
            .map(|o| (o.label(), o.value))
            .collect();
        assert_eq!(
            got,
            [
                ("SO_KEEPALIVE", 1),
                ("TCP_KEEPIDLE", 60),
                ("TCP_KEEPINTVL", 10),
                ("TCP_KEEPCNT", 6),
                ("TCP_USER_TIMEOUT", 1234)
            ]
        );
    }

    #[test]
    fn auto_user_timeout_uses_effective_values() {
        let settings = Settings {
            timers: Timers {
                idle_secs: Some(2),
                user_timeout: Some(UserTimeout::Auto),
                ..Timers::default()
            },
            ..Settings::default()
        };
        let defaults = KernelDefaults {
            idle_secs: 7200,
            interval_secs: 1,
            count: 3,
        };
        let plan = Plan::new(&settings, || defaults);
        assert_eq!(plan.options().last().unwrap().value, 5000);
    }

    #[test]
    fn auto_user_timeout_is_clamped_to_int_max() {
        let settings = Settings {
            timers: Timers {
                idle_secs: Some(32767),
                interval_secs: Some(32767),
                count: Some(127),
                ..Timers::default()
            },
            ..Settings::default()
        };
        assert_eq!(
            auto_user_timeout_ms(&settings, KernelDefaults::LINUX),
            i32::MAX as u32
        );
    }
}
