//! What we know about one descriptor, packed in 32 bits so that the table
//! (`fd_table`) can hold it in one atomic word. Pure code.
//!
//! - `kind`: where the socket stands (see `Kind`);
//! - `choices`: the keepalive options the program set itself, and whether
//!   its last `SO_KEEPALIVE` was 0. Those options are never set by us, and
//!   a program that switched keepalive off gets no option at all;
//! - `applied`: the plan whose options we set on it (`PlanId::NONE`: none),
//!   so that the program's later `setsockopt` can undo them (it switched
//!   keepalive off) or set ours again (override);
//! - `generation`: bumped whenever the number starts naming something else
//!   (close, a new socket, a duplicate), so that a decision made for one
//!   socket is never applied to the next one on the same number.

use crate::options::{OptionSet, SockOpt};
use crate::plan::Plan;
use crate::policy::PlanId;

/// Where a descriptor stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Never seen (inherited, made by a raw system call, a file), or closed.
    Unknown = 0,
    /// Not a TCP socket, or one we cannot follow: never touched.
    LeftAlone = 1,
    /// A TCP socket of ours not decided yet (rules are in force): decided
    /// at `connect()`, `listen()` or each `accept()`.
    Pending = 2,
    /// A TCP socket whose options are settled: configured by us, left off
    /// by a decision, or chosen by its owner. Connections accepted from it
    /// inherit its options from the kernel.
    Decided = 3,
    /// A TCP listener we did not create (systemd, inetd) with keepalive
    /// off: its connections are decided one by one at `accept()`.
    ForeignListener = 4,
}

/// The options the program chose itself on one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Choices {
    /// Options the program set (successfully) with its own `setsockopt`.
    pub set: OptionSet,
    /// Its last `SO_KEEPALIVE` was 0: keepalive stays off.
    pub keepalive_off: bool,
}

impl Choices {
    /// Whether `option` of `plan` is ours to set: the program did not set
    /// it nor switch keepalive off, or the plan overrides the program.
    #[inline]
    pub fn leaves_to_us(&self, plan: &Plan, option: &SockOpt) -> bool {
        plan.override_program || (!self.keepalive_off && !self.set.contains(option.bit))
    }

    /// The options of `plan` that are still ours to set.
    #[inline]
    pub fn leave_to_us<'a>(&self, plan: &'a Plan) -> impl Iterator<Item = &'a SockOpt> + 'a {
        let choices = *self;
        plan.options()
            .iter()
            .filter(move |option| choices.leaves_to_us(plan, option))
    }

    /// The options `leave_to_us` gives, as a set.
    #[inline]
    pub fn left_to_us(&self, plan: &Plan) -> OptionSet {
        match (plan.override_program, self.keepalive_off) {
            (true, _) => plan.set(),
            (false, true) => OptionSet::EMPTY,
            (false, false) => plan.set().without(self.set),
        }
    }

    /// Records the program's successful `setsockopt` of `option`;
    /// `value` is `None` when it could not be read as an int.
    #[inline]
    pub fn record(&mut self, option: OptionSet, value: Option<i32>) {
        self.set = self.set.union(option);
        if option == OptionSet::KEEPALIVE {
            self.keepalive_off = value == Some(0);
        }
    }

    /// Choices made on a listener and on a connection accepted from it.
    #[inline]
    pub fn union(self, other: Choices) -> Choices {
        Choices {
            set: self.set.union(other.set),
            keepalive_off: self.keepalive_off || other.keepalive_off,
        }
    }
}

/// One descriptor's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Where the descriptor stands.
    pub kind: Kind,
    /// What the program chose on it.
    pub choices: Choices,
    /// The plan whose options we set on it.
    pub applied: PlanId,
    /// Which socket on this number the record is about.
    pub generation: u16,
}

const KIND_MASK: u32 = 0b111;
const CHOICES_SHIFT: u32 = 3;
const OFF_BIT: u32 = 1 << 8;
const APPLIED_SHIFT: u32 = 9;
const GENERATION_SHIFT: u32 = 16;
const _: () = assert!(APPLIED_SHIFT + crate::policy::PLAN_ID_BITS <= GENERATION_SHIFT);

impl Record {
    /// The record of a number never seen.
    pub const UNKNOWN: Record = Record {
        kind: Kind::Unknown,
        choices: Choices {
            set: OptionSet::EMPTY,
            keepalive_off: false,
        },
        applied: PlanId::NONE,
        generation: 0,
    };

    /// The record as one word, for the table.
    #[inline]
    pub fn encode(self) -> u32 {
        self.kind as u32
            | u32::from(self.choices.set.bits()) << CHOICES_SHIFT
            | if self.choices.keepalive_off {
                OFF_BIT
            } else {
                0
            }
            | u32::from(self.applied.bits()) << APPLIED_SHIFT
            | u32::from(self.generation) << GENERATION_SHIFT
    }

    /// The record in a word made by `encode`.
    #[inline]
    pub fn decode(word: u32) -> Record {
        let kind = match word & KIND_MASK {
            1 => Kind::LeftAlone,
            2 => Kind::Pending,
            3 => Kind::Decided,
            4 => Kind::ForeignListener,
            _ => Kind::Unknown,
        };
        Record {
            kind,
            choices: Choices {
                set: OptionSet::from_bits((word >> CHOICES_SHIFT) as u8),
                keepalive_off: word & OFF_BIT != 0,
            },
            applied: PlanId::from_bits((word >> APPLIED_SHIFT) as u8),
            generation: (word >> GENERATION_SHIFT) as u16,
        }
    }

    /// What the number holds next: a new socket or a duplicate of `kind`,
    /// with `choices`, nothing of ours on it yet; a new generation, so
    /// older decisions miss it.
    #[inline]
    pub fn next(self, kind: Kind, choices: Choices) -> Record {
        Record {
            kind,
            choices,
            applied: PlanId::NONE,
            generation: self.generation.wrapping_add(1),
        }
    }

    /// The same socket in another kind (a decision), same generation.
    #[inline]
    pub fn with_kind(self, kind: Kind) -> Record {
        Record { kind, ..self }
    }

    /// The same socket with the options of `applied` set by us.
    #[inline]
    pub fn with_applied(self, applied: PlanId) -> Record {
        Record { applied, ..self }
    }

    /// After a close: nothing known, a new generation.
    #[inline]
    pub fn closed(self) -> Record {
        self.next(Kind::Unknown, Choices::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::KernelDefaults;
    use crate::settings::Settings;
    use crate::timers::Timers;

    fn every_option_plan() -> Plan {
        let settings = Settings {
            timers: Timers {
                idle_secs: Some(60),
                interval_secs: Some(10),
                count: Some(6),
                user_timeout: Some(crate::timers::UserTimeout::Millis(1500)),
            },
            ..Settings::default()
        };
        Plan::new(&settings, || KernelDefaults::LINUX)
    }

    fn labels<'a>(options: impl Iterator<Item = &'a SockOpt>) -> Vec<&'static str> {
        options.map(|option| option.label()).collect()
    }

    #[test]
    fn records_round_trip_through_their_word() {
        let kinds = [
            Kind::Unknown,
            Kind::LeftAlone,
            Kind::Pending,
            Kind::Decided,
            Kind::ForeignListener,
        ];
        for kind in kinds {
            for bits in 0..32u8 {
                for keepalive_off in [false, true] {
                    for generation in [0, 1, 0x1234, u16::MAX] {
                        for applied in [0, 1, 2, 65, 127] {
                            let record = Record {
                                kind,
                                choices: Choices {
                                    set: OptionSet::from_bits(bits),
                                    keepalive_off,
                                },
                                applied: PlanId::from_bits(applied),
                                generation,
                            };
                            assert_eq!(Record::decode(record.encode()), record);
                        }
                    }
                }
            }
        }
        assert_eq!(Record::decode(0), Record::UNKNOWN);
    }

    #[test]
    fn the_program_s_options_are_never_ours_to_set() {
        let plan = every_option_plan();
        let mut choices = Choices::default();
        assert_eq!(labels(choices.leave_to_us(&plan)).len(), 5);
        choices.record(OptionSet::USER_TIMEOUT, Some(0));
        choices.record(OptionSet::IDLE, Some(30));
        assert_eq!(
            labels(choices.leave_to_us(&plan)),
            ["SO_KEEPALIVE", "TCP_KEEPINTVL", "TCP_KEEPCNT"]
        );
        choices.record(OptionSet::KEEPALIVE, Some(1));
        assert_eq!(
            labels(choices.leave_to_us(&plan)),
            ["TCP_KEEPINTVL", "TCP_KEEPCNT"]
        );
        // Keepalive switched off by the program: nothing at all.
        choices.record(OptionSet::KEEPALIVE, Some(0));
        assert_eq!(labels(choices.leave_to_us(&plan)).len(), 0);
        // ... and on again: the others are ours once more.
        choices.record(OptionSet::KEEPALIVE, Some(7));
        assert_eq!(labels(choices.leave_to_us(&plan)).len(), 2);
    }

    #[test]
    fn under_override_every_option_is_ours() {
        let mut plan = every_option_plan();
        plan.override_program = true;
        let mut choices = Choices::default();
        choices.record(OptionSet::IDLE, Some(15));
        choices.record(OptionSet::KEEPALIVE, Some(0));
        assert_eq!(labels(choices.leave_to_us(&plan)).len(), 5);
        assert_eq!(choices.left_to_us(&plan), OptionSet::from_bits(0b1_1111));
        plan.override_program = false;
        assert_eq!(choices.left_to_us(&plan), OptionSet::EMPTY);
        // The set is the options leave_to_us walks, in every case.
        for bits in 0..32 {
            for keepalive_off in [false, true] {
                for override_program in [false, true] {
                    plan.override_program = override_program;
                    let choices = Choices {
                        set: OptionSet::from_bits(bits),
                        keepalive_off,
                    };
                    let walked = choices
                        .leave_to_us(&plan)
                        .fold(OptionSet::EMPTY, |set, option| set.union(option.bit));
                    assert_eq!(choices.left_to_us(&plan), walked);
                }
            }
        }
    }

    #[test]
    fn a_listener_s_choices_carry_to_its_connections() {
        let mut listener = Choices::default();
        listener.record(OptionSet::KEEPALIVE, Some(0));
        let connection = Choices::default();
        assert!(listener.union(connection).keepalive_off);
        let mut listener = Choices::default();
        listener.record(OptionSet::USER_TIMEOUT, Some(0));
        let plan = every_option_plan();
        assert_eq!(
            labels(listener.union(connection).leave_to_us(&plan)),
            [
                "SO_KEEPALIVE",
                "TCP_KEEPIDLE",
                "TCP_KEEPINTVL",
                "TCP_KEEPCNT"
            ]
        );
    }

    #[test]
    fn every_new_use_of_a_number_is_a_new_generation() {
        let first = Record::UNKNOWN.next(Kind::Pending, Choices::default());
        let decided = first.with_kind(Kind::Decided);
        assert_eq!(decided.generation, first.generation);
        let closed = decided.closed();
        assert_ne!(closed.generation, first.generation);
        assert_eq!(closed.kind, Kind::Unknown);
        let wrapped = Record {
            generation: u16::MAX,
            ..Record::UNKNOWN
        };
        assert_eq!(wrapped.closed().generation, 0);
    }
}
