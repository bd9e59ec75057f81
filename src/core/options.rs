//! The five socket options keepalive is made of, as the kernel sees them.
//!
//! All five are per socket, and a socket returned by `accept()` inherits
//! them from its listener (the kernel copies the listener's socket), so a
//! listener configured once configures every connection it accepts. Any of
//! them can be set at any time, before or after `connect()`; the timers
//! apply from the next idle period.

/// A set of the five keepalive options, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OptionSet(u8);

impl OptionSet {
    /// No option.
    pub const EMPTY: OptionSet = OptionSet(0);
    /// `SO_KEEPALIVE` (level `SOL_SOCKET`), an int 0 or 1: whether the
    /// kernel sends keepalive probes on an idle connection at all. Off by
    /// default; without it the three timers below are stored but unused.
    pub const KEEPALIVE: OptionSet = OptionSet(1);
    /// `TCP_KEEPIDLE` (level `IPPROTO_TCP`), seconds 1..32767: how long a
    /// connection is idle before the first probe. Default
    /// `net.ipv4.tcp_keepalive_time` (7200).
    pub const IDLE: OptionSet = OptionSet(2);
    /// `TCP_KEEPINTVL`, seconds 1..32767: the time between unanswered
    /// probes. Default `net.ipv4.tcp_keepalive_intvl` (75).
    pub const INTERVAL: OptionSet = OptionSet(4);
    /// `TCP_KEEPCNT`, 1..127: unanswered probes after which the kernel
    /// drops the connection (`ETIMEDOUT`). Default
    /// `net.ipv4.tcp_keepalive_probes` (9).
    pub const COUNT: OptionSet = OptionSet(8);
    /// `TCP_USER_TIMEOUT`, milliseconds 0..INT_MAX (0: the kernel's own
    /// retransmission limits): how long sent data may stay unacknowledged
    /// before the connection is dropped. With keepalive on it also
    /// replaces `TCP_KEEPCNT`: the connection is dropped at the first probe
    /// after this much time without an answer, whatever the count.
    pub const USER_TIMEOUT: OptionSet = OptionSet(16);

    /// The keepalive option `(level, name)`, or `None` for any other option
    /// (SO_KEEPALIVE's number means another option at the TCP level).
    #[inline]
    pub fn of(level: i32, name: i32) -> Option<OptionSet> {
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => Some(OptionSet::KEEPALIVE),
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => Some(OptionSet::IDLE),
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => Some(OptionSet::INTERVAL),
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => Some(OptionSet::COUNT),
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => Some(OptionSet::USER_TIMEOUT),
            _ => None,
        }
    }

    /// The set as bits, for packing into a descriptor's record.
    #[inline]
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set from `bits()` (other bits ignored).
    #[inline]
    pub fn from_bits(bits: u8) -> OptionSet {
        OptionSet(bits & 0b1_1111)
    }

    /// Both sets.
    #[inline]
    pub fn union(self, other: OptionSet) -> OptionSet {
        OptionSet(self.0 | other.0)
    }

    /// This set without the options of `other`.
    #[inline]
    pub fn without(self, other: OptionSet) -> OptionSet {
        OptionSet(self.0 & !other.0)
    }

    /// Whether any option of `other` is in this set (for one option: it
    /// is). One AND: it runs for every option of every configured socket.
    #[inline]
    pub fn contains(self, other: OptionSet) -> bool {
        self.0 & other.0 != 0
    }
}

/// One `setsockopt(fd, level, name, &value, sizeof(int))` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockOpt {
    /// `SOL_SOCKET` or `IPPROTO_TCP`.
    pub level: i32,
    /// The option's number at that level.
    pub name: i32,
    /// The int value.
    pub value: i32,
    /// Which of the five options this is.
    pub bit: OptionSet,
}

/// An option's name as in C, for debug lines: `TCP_USER_TIMEOUT`, or
/// `level 6, option 99` for one that is not ours.
pub fn option_label(level: i32, name: i32) -> Option<&'static str> {
    Some(match OptionSet::of(level, name)? {
        OptionSet::KEEPALIVE => "SO_KEEPALIVE",
        OptionSet::IDLE => "TCP_KEEPIDLE",
        OptionSet::INTERVAL => "TCP_KEEPINTVL",
        OptionSet::COUNT => "TCP_KEEPCNT",
        _ => "TCP_USER_TIMEOUT",
    })
}

impl SockOpt {
    /// The option's name as in C, for debug lines.
    pub fn label(&self) -> &'static str {
        option_label(self.level, self.name).unwrap_or("?")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::*;

    #[test]
    fn the_five_keepalive_options_and_no_other() {
        assert_eq!(
            OptionSet::of(SOL_SOCKET, SO_KEEPALIVE),
            Some(OptionSet::KEEPALIVE)
        );
        assert_eq!(
            OptionSet::of(IPPROTO_TCP, TCP_KEEPIDLE),
            Some(OptionSet::IDLE)
        );
        assert_eq!(
            OptionSet::of(IPPROTO_TCP, TCP_KEEPINTVL),
            Some(OptionSet::INTERVAL)
        );
        assert_eq!(
            OptionSet::of(IPPROTO_TCP, TCP_KEEPCNT),
            Some(OptionSet::COUNT)
        );
        assert_eq!(
            OptionSet::of(IPPROTO_TCP, TCP_USER_TIMEOUT),
            Some(OptionSet::USER_TIMEOUT)
        );
        assert_eq!(OptionSet::of(IPPROTO_TCP, TCP_NODELAY), None);
        assert_eq!(OptionSet::of(SOL_SOCKET, SO_REUSEADDR), None);
        // SO_KEEPALIVE's number (9) means TCP_DEFER_ACCEPT at the TCP level and
        // IP_PKTOPTIONS at the IP level: levels must not be confused.
        assert_eq!(OptionSet::of(IPPROTO_TCP, SO_KEEPALIVE), None);
        assert_eq!(OptionSet::of(IPPROTO_IP, SO_KEEPALIVE), None);
    }
}
