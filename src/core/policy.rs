//! The rules compiled for the hot path: for each decision, the options to
//! set (a `Plan`, built once at start-up) or none. Pure code.
//!
//! Without rules (and with both directions) the library configures every
//! TCP socket at `socket()`, as it always did: `eager`. With rules it
//! configures nothing there and decides at `connect()` (destination known),
//! at `listen()` (when no inbound rule looks at addresses) or at `accept()`.
//! Deferring is the only way to honour "excluded means untouched": once
//! `TCP_KEEPIDLE` and friends are set, a socket can no longer go back to
//! following the sysctls (the kernel has no "unset", 0 is EINVAL), so an
//! eager configuration could not be undone exactly.

use crate::options::OptionSet;
use crate::plan::{KernelDefaults, Plan};
use crate::rules::{Action, Decision, Direction, Selection};
use crate::settings::Settings;
use crate::timers::Timers;

/// Which of a policy's plans a socket got, small enough for its record
/// (`fd_state::Record`): none (we set nothing on it), the global plan, or
/// a rule's. Kept so that the program's later `setsockopt` knows what we
/// set: to undo it (`SO_KEEPALIVE=0`) or to set it again (override).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanId(u8);

/// Rule `i` is `PlanId(FIRST_RULE + i)`.
const FIRST_RULE: usize = 2;

/// Seven bits of the record hold a `PlanId`.
pub const PLAN_ID_BITS: u32 = 7;

const _: () = assert!(FIRST_RULE + crate::rules::MAX_RULES < 1 << PLAN_ID_BITS);

impl PlanId {
    /// We set nothing on the socket.
    pub const NONE: PlanId = PlanId(0);
    /// The global plan (no rules, or no rule matched).
    pub const GLOBAL: PlanId = PlanId(1);

    /// The id as bits, for packing into a record.
    #[inline]
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The id in `bits()` (bits above `PLAN_ID_BITS` ignored).
    #[inline]
    pub fn from_bits(bits: u8) -> PlanId {
        PlanId(bits & ((1 << PLAN_ID_BITS) - 1))
    }
}

/// The selection, and the plan of each of its outcomes.
#[derive(Debug)]
pub struct Policy {
    /// Which connections get which rule.
    pub selection: Selection,
    /// Connections no rule matches.
    pub global: Plan,
    /// Per rule (same index): the options to set, or `None` for `off`.
    rule_plans: Vec<Option<Plan>>,
    /// Configure at `socket()`, as without rules.
    pub eager: bool,
    /// The decision for every inbound connection, if addresses do not matter.
    pub inbound_fixed: Option<Decision>,
    /// An inbound decision may need the local port (one `getsockname`).
    pub inbound_needs_port: bool,
}

impl Policy {
    /// `kernel_defaults` is called only for `user_timeout=auto` (global or
    /// in a rule), and its value is reused for every plan.
    pub fn new(
        settings: &Settings,
        selection: Selection,
        kernel_defaults: impl FnOnce() -> KernelDefaults,
    ) -> Policy {
        let mut read = Some(kernel_defaults);
        let mut cached = None;
        let mut defaults = move || {
            *cached.get_or_insert_with(|| match read.take() {
                Some(read) => read(),
                None => KernelDefaults::LINUX,
            })
        };
        let global = Plan::new(settings, &mut defaults);
        let rule_plans = selection
            .rules
            .iter()
            .map(|rule| {
                let timers = match rule.action {
                    Action::Off => return None,
                    Action::On => Timers::default(),
                    Action::Timers(timers) => timers,
                };
                let settings = settings.with_rule(timers, rule.override_program);
                Some(Plan::new(&settings, &mut defaults))
            })
            .collect();
        Policy {
            eager: selection.is_everything(),
            inbound_fixed: selection.decision_without_address(Direction::In),
            inbound_needs_port: selection.needs_port(Direction::In),
            selection,
            global,
            rule_plans,
        }
    }

    /// The options for a connection decided so; `None`: leave it alone.
    #[inline]
    pub fn plan_for(&self, decision: Decision) -> Option<&Plan> {
        match decision {
            Decision::WrongDirection => None,
            Decision::Unmatched => Some(&self.global),
            Decision::Matched(index) => self.rule_plans.get(index)?.as_ref(),
        }
    }

    /// The id of `plan_for(decision)`; `PlanId::NONE` when it is `None`.
    #[inline]
    pub fn plan_id(&self, decision: Decision) -> PlanId {
        self.plan_with_id(decision)
            .map_or(PlanId::NONE, |(_, id)| id)
    }

    /// `plan_for(decision)` and its id.
    #[inline]
    pub fn plan_with_id(&self, decision: Decision) -> Option<(&Plan, PlanId)> {
        match decision {
            Decision::WrongDirection => None,
            Decision::Unmatched => Some((&self.global, PlanId::GLOBAL)),
            Decision::Matched(index) => {
                let plan = self.rule_plans.get(index)?.as_ref()?;
                Some((plan, PlanId((FIRST_RULE + index) as u8)))
            }
        }
    }

    /// Whether some plan sets a keepalive timer (`TCP_KEEPIDLE`,
    /// `TCP_KEEPINTVL` or `TCP_KEEPCNT`): then undoing it may need the
    /// kernel's defaults.
    pub fn sets_a_timer(&self) -> bool {
        let timers = OptionSet::IDLE
            .union(OptionSet::INTERVAL)
            .union(OptionSet::COUNT);
        self.plans().any(|plan| plan.set().contains(timers))
    }

    /// Every plan a connection may get: the global one and each rule's.
    pub fn plans(&self) -> impl Iterator<Item = &Plan> {
        std::iter::once(&self.global).chain(self.rule_plans.iter().flatten())
    }

    /// The plan `id` names; `None` for `PlanId::NONE`.
    #[inline]
    pub fn plan(&self, id: PlanId) -> Option<&Plan> {
        match usize::from(id.0) {
            0 => None,
            1 => Some(&self.global),
            rule => self.rule_plans.get(rule - FIRST_RULE)?.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{parse_rules, Directions};
    use crate::timers::{Timers, UserTimeout};

    fn policy(settings: &Settings, directions: Directions, text: &str) -> Policy {
        let (rules, diagnostics) = parse_rules("KEEPALIVE_RULES", text);
        assert!(diagnostics.is_empty());
        let selection = Selection { directions, rules };
        Policy::new(settings, selection, || KernelDefaults {
            idle_secs: 100,
            interval_secs: 10,
            count: 2,
        })
    }

    fn labels(plan: Option<&Plan>) -> Vec<(&'static str, i32)> {
        plan.map(|p| p.options().iter().map(|o| (o.label(), o.value)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn no_rules_is_eager_and_the_global_plan() {
        let p = policy(&Settings::default(), Directions::Both, "");
        assert!(p.eager);
        assert_eq!(
            labels(p.plan_for(Decision::Unmatched)),
            [("SO_KEEPALIVE", 1)]
        );
        let p = policy(&Settings::default(), Directions::Out, "");
        assert!(!p.eager);
        assert_eq!(p.inbound_fixed, Some(Decision::WrongDirection));
        assert!(p.plan_for(Decision::WrongDirection).is_none());
    }

    #[test]
    fn a_timer_in_any_plan_is_seen() {
        let none = Settings::default();
        assert!(!policy(&none, Directions::Both, "").sets_a_timer());
        assert!(!policy(&none, Directions::Both, "net=::1:off; *:on").sets_a_timer());
        assert!(policy(&none, Directions::Both, "net=::1:cnt=3; *:on").sets_a_timer());
        let idle = Settings {
            timers: Timers {
                idle_secs: Some(60),
                ..Timers::default()
            },
            ..Settings::default()
        };
        assert!(policy(&idle, Directions::Both, "").sets_a_timer());
        let user_timeout_only = Settings {
            timers: Timers {
                user_timeout: Some(UserTimeout::Millis(5000)),
                ..Timers::default()
            },
            ..Settings::default()
        };
        assert!(!policy(&user_timeout_only, Directions::Both, "").sets_a_timer());
    }

    #[test]
    fn per_rule_timers_fall_back_to_the_global_ones() {
        let settings = Settings {
            timers: Timers {
                idle_secs: Some(60),
                interval_secs: Some(5),
                ..Timers::default()
            },
            ..Settings::default()
        };
        let p = policy(
            &settings,
            Directions::Both,
            "net=10.0.0.0/8:idle=200,user_timeout=auto; net=::1:off; dir=in:on",
        );
        assert_eq!(
            labels(p.plan_for(Decision::Matched(0))),
            [
                ("SO_KEEPALIVE", 1),
                ("TCP_KEEPIDLE", 200),
                ("TCP_KEEPINTVL", 5),
                ("TCP_USER_TIMEOUT", 210_000)
            ]
        );
        assert!(p.plan_for(Decision::Matched(1)).is_none());
        assert_eq!(
            labels(p.plan_for(Decision::Matched(2))),
            labels(p.plan_for(Decision::Unmatched))
        );
        assert!(p.plan_for(Decision::Matched(9)).is_none());
        assert_eq!(p.inbound_fixed, None);
        assert!(!p.inbound_needs_port);
    }

    #[test]
    fn a_rule_s_override_replaces_the_global_one_for_its_connections() {
        let overrides = |p: &Policy, decision| p.plan_for(decision).map(|p| p.override_program);
        let text = "port=1:on,override=on; port=2:idle=5,override=off; port=3:on; port=4:off";
        let p = policy(&Settings::default(), Directions::Both, text);
        assert_eq!(overrides(&p, Decision::Unmatched), Some(false));
        assert_eq!(overrides(&p, Decision::Matched(0)), Some(true));
        assert_eq!(overrides(&p, Decision::Matched(1)), Some(false));
        assert_eq!(overrides(&p, Decision::Matched(2)), Some(false));
        assert_eq!(overrides(&p, Decision::Matched(3)), None);
        // The same options with and without override.
        assert_eq!(
            labels(p.plan_for(Decision::Matched(0))),
            labels(p.plan_for(Decision::Unmatched))
        );
        let settings = Settings {
            override_program: true,
            ..Settings::default()
        };
        let p = policy(&settings, Directions::Both, text);
        assert_eq!(overrides(&p, Decision::Unmatched), Some(true));
        assert_eq!(overrides(&p, Decision::Matched(1)), Some(false));
        assert_eq!(overrides(&p, Decision::Matched(2)), Some(true));
    }

    #[test]
    fn a_plan_id_names_the_plan_of_its_decision() {
        let p = policy(
            &Settings::default(),
            Directions::Out,
            "port=1:idle=5; port=2:off",
        );
        let decisions = [
            Decision::Unmatched,
            Decision::Matched(0),
            Decision::Matched(1),
            Decision::WrongDirection,
        ];
        for decision in decisions {
            let id = p.plan_id(decision);
            assert_eq!(p.plan(id), p.plan_for(decision), "{decision:?}");
            assert_eq!(PlanId::from_bits(id.bits()), id);
        }
        assert_eq!(p.plan_id(Decision::Unmatched), PlanId::GLOBAL);
        assert_eq!(p.plan_id(Decision::Matched(1)), PlanId::NONE);
        assert_eq!(p.plan(PlanId::NONE), None);
        assert_eq!(p.plan(PlanId::from_bits(100)), None);
    }

    #[test]
    fn kernel_defaults_are_read_at_most_once() {
        let settings = Settings {
            timers: Timers {
                user_timeout: Some(UserTimeout::Auto),
                ..Timers::default()
            },
            ..Settings::default()
        };
        let (rules, _) = parse_rules("R", "port=1:idle=1; port=2:idle=2");
        let mut reads = 0;
        let p = Policy::new(
            &settings,
            Selection {
                directions: Directions::Both,
                rules,
            },
            || {
                reads += 1;
                KernelDefaults::LINUX
            },
        );
        assert_eq!(reads, 1);
        assert!(p.inbound_needs_port);
        assert_eq!(
            labels(p.plan_for(Decision::Matched(1))).last(),
            Some(&("TCP_USER_TIMEOUT", (2 + 75 * 9) * 1000))
        );
    }
}
