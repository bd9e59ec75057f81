//! Which connections get keepalive, and with which timers: the
//! `KEEPALIVE_DIRECTION` and `KEEPALIVE_RULES` settings. Pure code: the
//! grammar (parsed once, at start-up) and the matching (once per connection:
//! a walk over a short slice, no allocation, no lock, no system call).
//!
//! ```text
//! KEEPALIVE_DIRECTION = out | in | both
//! KEEPALIVE_RULES     = RULE [; RULE]...        first match wins
//! RULE                = MATCH : ACTION          (split at the last ':')
//! MATCH               = * | CONDITION [, CONDITION]...   (all must hold)
//! CONDITION           = dir=in | dir=out | net=ADDRESS[/LENGTH] | port=N[-M]
//! ACTION              = off | on [, OVERRIDE] | TIMER [, TIMER]... [, OVERRIDE]
//! TIMER               = idle=S | intvl=S | cnt=N | user_timeout=MS|auto
//! OVERRIDE            = override=on | override=off    (in any place of the list)
//! ```
//!
//! `net` is the other end (the destination of an outbound connection, the
//! peer of an inbound one); `port` is the service port (the one connected to,
//! or the one accepted on). An IPv4 peer and its IPv4-mapped IPv6 form
//! (`::ffff:a.b.c.d`, as Java uses) are one peer: IPv4 networks match both,
//! and so does any IPv6 network that holds `::ffff:a.b.c.d` (`::/0`,
//! `::ffff:0:0/96`); a real IPv6 peer is never in an IPv4 network. Connections
//! that no rule matches get the global settings, so an exclusion is one rule
//! and "only these" ends with `*:off`. `override=on` makes the rule's values
//! replace the program's own for its connections, `override=off` lets the
//! program's own choices win there; without it, `KEEPALIVE_OVERRIDE` says.
//!
//! Files: `selection` (what a rule is and how a connection is decided),
//! `grammar` (parsing, with diagnostics), `display` (the canonical
//! spelling). Addresses and networks are in `crate::address`, the timers
//! in `crate::timers`.

mod display;
mod grammar;
mod selection;
#[cfg(test)]
mod tests;

pub use crate::address::{Address, Network};
pub use crate::timers::Timers;
pub use grammar::{parse_directions, parse_rules};
pub use selection::{Action, Connection, Decision, Direction, Directions, Rule, Selection};

/// More rules than this are a mistake (and would make every connection walk
/// a long list); the rest are ignored with one line.
pub const MAX_RULES: usize = 64;

/// The grammar, for diagnostics: what a valid rule looks like.
pub const RULE_SYNTAX: &str = "expected MATCH:ACTION, MATCH being * or conditions \
     dir=in|out, net=ADDRESS[/LENGTH], port=N[-M] joined by commas, ACTION being off, on, \
     or idle=S, intvl=S, cnt=N, user_timeout=MS|auto joined by commas, with \
     ,override=on|off allowed after on or timers";
