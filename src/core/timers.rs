//! The keepalive timers and `TCP_USER_TIMEOUT`: one type, set globally by
//! the variables (in `Settings`) and per rule by `KEEPALIVE_RULES`.

/// Kernel limit of `TCP_KEEPIDLE` (`MAX_TCP_KEEPIDLE` in include/net/tcp.h).
pub const MAX_KEEPIDLE_SECS: u32 = 32767;
/// Kernel limit of `TCP_KEEPINTVL` (`MAX_TCP_KEEPINTVL`).
pub const MAX_KEEPINTVL_SECS: u32 = 32767;
/// Kernel limit of `TCP_KEEPCNT` (`MAX_TCP_KEEPCNT`).
pub const MAX_KEEPCNT: u32 = 127;
/// `TCP_USER_TIMEOUT` takes a non-negative C int of milliseconds.
pub const MAX_USER_TIMEOUT_MS: u32 = i32::MAX as u32;

/// `TCP_USER_TIMEOUT` as configured: a fixed value, or derived from the
/// effective keepalive timers once the kernel defaults are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserTimeout {
    /// This many milliseconds.
    Millis(u32),
    /// idle + interval x count of the effective timers.
    Auto,
}

/// The timers, each `None` when not configured (the kernel default, or for
/// a rule: the global setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timers {
    /// `TCP_KEEPIDLE`, seconds.
    pub idle_secs: Option<u32>,
    /// `TCP_KEEPINTVL`, seconds.
    pub interval_secs: Option<u32>,
    /// `TCP_KEEPCNT`.
    pub count: Option<u32>,
    /// `TCP_USER_TIMEOUT`.
    pub user_timeout: Option<UserTimeout>,
}

impl Timers {
    /// These timers, with `fallback`'s where these have none.
    pub fn or(self, fallback: Timers) -> Timers {
        Timers {
            idle_secs: self.idle_secs.or(fallback.idle_secs),
            interval_secs: self.interval_secs.or(fallback.interval_secs),
            count: self.count.or(fallback.count),
            user_timeout: self.user_timeout.or(fallback.user_timeout),
        }
    }
}
