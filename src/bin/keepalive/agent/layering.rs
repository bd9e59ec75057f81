//! A workload's variables layered over the node default: what the library
//! would read if the workload's variables were put in front of the agent's
//! own (getenv: the first entry wins), setting by setting.
//!
//! - A setting the workload spells in any way is the workload's alone: the
//!   node's spellings of it are dropped (two spellings of one setting with
//!   different values would make the library ignore both).
//! - A workload's `KEEPALIVE_PATH` also replaces the node's idle, interval
//!   and count (the timers a path sets), except those the workload sets.
//! - The node's `KEEPALIVE=off` (`--off`: no node default) is not passed
//!   down: a workload that asks for settings gets keepalive, as the library
//!   would from its own environment; its own `KEEPALIVE=off` stays off.

use super::workload::Variables;
use keepalive_core::variables::{Setting, VARIABLES};

fn setting_of(name: &str) -> Option<Setting> {
    VARIABLES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, setting)| *setting)
}

/// The node's variables that a workload setting `workload` leaves in force.
fn inherited(setting: Setting, workload: &Variables) -> bool {
    let sets = |wanted: Setting| {
        workload
            .iter()
            .any(|(name, _)| setting_of(name) == Some(wanted))
    };
    match setting {
        Setting::Enabled => false,
        Setting::Idle | Setting::Interval | Setting::Count if sets(Setting::Path) => false,
        other => !sets(other),
    }
}

/// The environment the workload's attachment is made from: its own
/// variables, and the node's that it leaves in force (`VARIABLES` order).
pub fn layered(node: &Variables, workload: &Variables) -> Variables {
    let mut merged: Variables = workload.clone();
    for (name, value) in node {
        let Some(setting) = setting_of(name) else {
            continue;
        };
        if inherited(setting, workload) {
            merged.push((name, value.clone()));
        }
    }
    merged.sort_by_key(|(name, _)| VARIABLES.iter().position(|(n, _)| n == name));
    merged
}

#[cfg(test)]
mod tests {
    use super::super::workload::describe;
    use super::*;
    use keepalive_core::load;

    fn vars(pairs: &[(&'static str, &str)]) -> Variables {
        pairs
            .iter()
            .map(|(name, value)| (*name, value.as_bytes().to_vec()))
            .collect()
    }

    fn timers(node: &[(&'static str, &str)], workload: &[(&'static str, &str)]) -> String {
        let merged = layered(&vars(node), &vars(workload));
        let loaded = load::load(|name| {
            merged
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        });
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let t = loaded.settings.timers;
        format!(
            "{} {:?} {:?} {:?} {:?}",
            loaded.settings.enabled, t.idle_secs, t.interval_secs, t.count, t.user_timeout
        )
    }

    #[test]
    fn the_workload_wins_setting_by_setting_over_the_node_path() {
        assert_eq!(
            timers(&[("KEEPALIVE_PATH", "aws-nlb")], &[("KEEPCNT", "4")]),
            "true Some(100) Some(30) Some(4) None"
        );
        // Another spelling of the same setting replaces the node's.
        assert_eq!(
            timers(
                &[("KEEPIDLE", "40"), ("KEEPCNT", "4")],
                &[("TCP_KEEPIDLE", "33")]
            ),
            "true Some(33) None Some(4) None"
        );
    }

    #[test]
    fn a_workload_path_replaces_the_node_timers_it_sets() {
        assert_eq!(
            timers(
                &[
                    ("KEEPIDLE", "40"),
                    ("KEEPCNT", "4"),
                    ("KEEPALIVE_USER_TIMEOUT", "9000")
                ],
                &[("KEEPALIVE_PATH", "azure-lb"), ("KEEPCNT", "2")]
            ),
            "true Some(60) Some(20) Some(2) Some(Millis(9000))"
        );
    }

    #[test]
    fn off_is_the_workloads_own_choice_only() {
        assert_eq!(
            timers(&[("KEEPIDLE", "40")], &[("KEEPALIVE", "off")]),
            "false Some(40) None None None"
        );
        assert_eq!(
            timers(&[("KEEPALIVE", "off")], &[("KEEPIDLE", "33")]),
            "true Some(33) None None None"
        );
    }

    #[test]
    fn rules_direction_and_override_are_replaced_whole() {
        let merged = layered(
            &vars(&[
                ("KEEPALIVE_RULES", "*:off; net=10.0.0.0/8:on"),
                ("KEEPALIVE_DIRECTION", "out"),
                ("KEEPALIVE_OVERRIDE", "on"),
            ]),
            &vars(&[("KEEPALIVE_RULES", "port=5432:on"), ("KEEPIDLE", "5")]),
        );
        assert_eq!(
            describe(&merged),
            "KEEPIDLE=5 KEEPALIVE_DIRECTION=out KEEPALIVE_RULES=port=5432:on KEEPALIVE_OVERRIDE=on"
        );
    }
}
