//! What a rule is, and how a connection is decided: the first matching
//! rule, a walk over a short slice with no allocation, lock or system call.

use crate::address::{Address, Network};
use crate::timers::Timers;

/// Which way a connection was made, seen from this program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The program called `connect()`.
    Out,
    /// The program got it from `accept()`.
    In,
}

/// `KEEPALIVE_DIRECTION`: the directions that get keepalive at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Directions {
    /// Every connection (the default).
    #[default]
    Both,
    /// Only those the program makes.
    Out,
    /// Only those it accepts.
    In,
}

impl Directions {
    /// Whether connections made in `direction` get keepalive.
    pub fn includes(self, direction: Direction) -> bool {
        match self {
            Directions::Both => true,
            Directions::Out => direction == Direction::Out,
            Directions::In => direction == Direction::In,
        }
    }

    /// Its spelling in `KEEPALIVE_DIRECTION`.
    pub fn name(self) -> &'static str {
        match self {
            Directions::Both => "both",
            Directions::Out => "out",
            Directions::In => "in",
        }
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Leave the connection exactly as the kernel and the program made it.
    Off,
    /// The global settings.
    On,
    /// The global settings with some timers replaced.
    Timers(Timers),
}

/// One parsed rule. `None` conditions always hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its position in `KEEPALIVE_RULES`, from 1, for messages.
    pub number: usize,
    /// `dir=`.
    pub direction: Option<Direction>,
    /// `net=`.
    pub network: Option<Network>,
    /// `port=`, both ends included.
    pub ports: Option<(u16, u16)>,
    /// What it does.
    pub action: Action,
    /// `override=on|off`: whether its values replace the program's own
    /// (`None`: as `KEEPALIVE_OVERRIDE` says). Never given with `off`.
    pub override_program: Option<bool>,
}

/// What is known of a connection when it is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// Made or accepted.
    pub direction: Direction,
    /// The other end.
    pub remote: Address,
    /// The service port: the remote one for outbound, the local one for
    /// inbound; `None` when it was not needed (no rule asks) or not known.
    pub port: Option<u16>,
}

impl Rule {
    /// Whether every condition holds for `connection`.
    pub fn matches(&self, connection: &Connection) -> bool {
        self.matches_at(connection, connection.remote.bits())
    }

    /// `matches`, with the remote address's bits computed once for all
    /// the rules.
    #[inline]
    fn matches_at(&self, connection: &Connection, remote: u128) -> bool {
        self.direction.map_or(true, |d| d == connection.direction)
            && self
                .network
                .map_or(true, |network| network.contains_bits(remote))
            && self.ports.map_or(true, |(low, high)| {
                connection.port.is_some_and(|p| low <= p && p <= high)
            })
    }

    /// Whether deciding an inbound connection needs its local port.
    fn asks_port_of(&self, direction: Direction) -> bool {
        self.ports.is_some() && self.direction.map_or(true, |d| d == direction)
    }
}

/// Why a connection gets what it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// `KEEPALIVE_DIRECTION` excludes its direction: left alone.
    WrongDirection,
    /// No rule matched: the global settings.
    Unmatched,
    /// The rule at this index of `Selection::rules` matched.
    Matched(usize),
}

/// `KEEPALIVE_DIRECTION` and `KEEPALIVE_RULES` as understood.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// `KEEPALIVE_DIRECTION`.
    pub directions: Directions,
    /// `KEEPALIVE_RULES`, in order.
    pub rules: Vec<Rule>,
}

impl Selection {
    /// True when every TCP connection gets the global settings: the
    /// library then configures sockets at `socket()`, as it always did.
    pub fn is_everything(&self) -> bool {
        self.directions == Directions::Both && self.rules.is_empty()
    }

    /// The first matching rule, in order. Allocation- and lock-free.
    pub fn decide(&self, connection: &Connection) -> Decision {
        if !self.directions.includes(connection.direction) {
            return Decision::WrongDirection;
        }
        let remote = connection.remote.bits();
        let matching = self
            .rules
            .iter()
            .position(|rule| rule.matches_at(connection, remote));
        match matching {
            Some(index) => Decision::Matched(index),
            None => Decision::Unmatched,
        }
    }

    /// The decision for every connection in `direction`, if it does not
    /// depend on the connection's addresses or port. For inbound, it lets a
    /// listener be configured once at `listen()` (its connections inherit
    /// the options) instead of each connection at `accept()`.
    pub fn decision_without_address(&self, direction: Direction) -> Option<Decision> {
        if !self.directions.includes(direction) {
            return Some(Decision::WrongDirection);
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.direction.is_some_and(|d| d != direction) {
                continue;
            }
            if rule.network.is_some() || rule.ports.is_some() {
                return None;
            }
            return Some(Decision::Matched(index));
        }
        Some(Decision::Unmatched)
    }

    /// Whether deciding a connection in `direction` may need its service
    /// port (for inbound, a `getsockname()`).
    pub fn needs_port(&self, direction: Direction) -> bool {
        self.directions.includes(direction)
            && self.rules.iter().any(|rule| rule.asks_port_of(direction))
    }
}
