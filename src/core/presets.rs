//! Path presets (`KEEPALIVE_PATH=NAME`): keepalive timers chosen for a known
//! middlebox idle timeout. Pure data and one lookup; `load` applies a
//! preset where no variable sets the timer itself.
//!
//! How the values are chosen (the same rule for every preset):
//! - the first probe comes at about a third of the timeout or earlier, so
//!   even with two probes lost in a row an answered one refreshes the
//!   middlebox's timer long before it expires (`keeps_flow_secs` below);
//! - a dead peer is given up on within the timeout itself
//!   (`idle + interval x count`), so a broken path is noticed before the
//!   middlebox would have dropped the flow anyway.

use crate::timers::Timers;

/// One preset: the middlebox, its idle timeout and where that figure comes
/// from, and the timers it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Its `KEEPALIVE_PATH` name.
    pub name: &'static str,
    /// The middlebox's idle timeout, in seconds.
    pub timeout_secs: u32,
    /// `TCP_KEEPIDLE`, seconds.
    pub idle_secs: u32,
    /// `TCP_KEEPINTVL`, seconds.
    pub interval_secs: u32,
    /// `TCP_KEEPCNT`.
    pub count: u32,
}

impl Preset {
    /// Seconds after the last traffic by which, with `lost` probes lost in a
    /// row, an answered probe has refreshed the middlebox's timer.
    pub fn keeps_flow_secs(&self, lost: u32) -> u32 {
        self.idle_secs + self.interval_secs * lost
    }

    /// Seconds of silence after which a dead peer is given up on.
    pub fn gives_up_secs(&self) -> u32 {
        self.idle_secs + self.interval_secs * self.count
    }

    /// Its timers, as a variable would set them.
    pub fn timers(&self) -> Timers {
        Timers {
            idle_secs: Some(self.idle_secs),
            interval_secs: Some(self.interval_secs),
            count: Some(self.count),
            user_timeout: None,
        }
    }
}

/// Every preset, by name.
pub const PRESETS: [Preset; 6] = [
    Preset {
        name: "aws-nlb",
        timeout_secs: 350,
        idle_secs: 100,
        interval_secs: 30,
        count: 5,
    },
    Preset {
        name: "aws-natgw",
        timeout_secs: 350,
        idle_secs: 100,
        interval_secs: 30,
        count: 5,
    },
    Preset {
        name: "aws-nitro",
        timeout_secs: 350,
        idle_secs: 100,
        interval_secs: 30,
        count: 5,
    },
    Preset {
        name: "azure-lb",
        timeout_secs: 240,
        idle_secs: 60,
        interval_secs: 20,
        count: 5,
    },
    Preset {
        name: "gcp",
        timeout_secs: 600,
        idle_secs: 120,
        interval_secs: 60,
        count: 5,
    },
    Preset {
        name: "ipvs",
        timeout_secs: 900,
        idle_secs: 300,
        interval_secs: 30,
        count: 5,
    },
];

/// Where a preset's timeout is documented. Apart from the table so that
/// only the command, which prints it, carries the text.
pub fn source(preset: &Preset) -> &'static str {
    match preset.name {
        "aws-nlb" => "AWS Network Load Balancer: TCP idle timeout 350 s \
                 (docs.aws.amazon.com/elasticloadbalancing/latest/network/network-load-balancers.html)",
        "aws-natgw" => "AWS NAT Gateway: idle timeout 350 s \
                 (docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-troubleshooting.html)",
        "aws-nitro" => "EC2 connection tracking on Nitro v6 instances: idle TCP flows \
                 tracked for 350 s by default since 2025, 60 to 432,000 s per ENI (AWS \
                 networking blog, \"Best practices for TCP connection management on EC2\")",
        "azure-lb" => "Azure Load Balancer: TCP idle timeout 4 min by default, up to 30 \
                 (learn.microsoft.com/azure/load-balancer/load-balancer-tcp-idle-timeout)",
        "gcp" => "Google Cloud VPC firewall connection tracking: 10 min \
                 (cloud.google.com/vpc/docs/firewalls, \"Connection tracking\")",
        "ipvs" => "Linux IPVS TCP timeout 900 s, used by Docker Swarm and kube-proxy in IPVS \
                 mode (ipvsadm --list --timeout; moby/moby#31208)",
        _ => "",
    }
}

/// The preset called `name` (exactly, lower case).
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|preset| preset.name == name)
}

/// "aws-nlb, aws-natgw, ..." for messages.
pub fn names() -> String {
    let names: Vec<&str> = PRESETS.iter().map(|preset| preset.name).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_lists_these_timeouts() {
        let timeouts: Vec<(&str, u32)> = PRESETS.iter().map(|p| (p.name, p.timeout_secs)).collect();
        assert_eq!(
            timeouts,
            [
                ("aws-nlb", 350),
                ("aws-natgw", 350),
                ("aws-nitro", 350),
                ("azure-lb", 240),
                ("gcp", 600),
                ("ipvs", 900)
            ]
        );
    }

    #[test]
    fn every_preset_keeps_a_clear_margin_and_gives_up_within_the_timeout() {
        for preset in PRESETS {
            // The first probe at a third of the timeout or earlier.
            assert!(preset.idle_secs * 3 <= preset.timeout_secs, "{preset:?}");
            // Two probes lost in a row: the third still comes by half the timeout.
            assert!(
                preset.keeps_flow_secs(2) * 2 <= preset.timeout_secs,
                "{preset:?}"
            );
            // A dead peer noticed before the middlebox would drop the flow.
            assert!(preset.gives_up_secs() <= preset.timeout_secs, "{preset:?}");
            // Within the kernel's ranges, and every source cites where.
            assert!((1..=32767).contains(&preset.idle_secs));
            assert!((1..=32767).contains(&preset.interval_secs));
            assert!((1..=127).contains(&preset.count));
            assert!(source(&preset).contains('('), "{preset:?}");
        }
    }

    #[test]
    fn names_are_exact() {
        assert_eq!(find("gcp").unwrap().idle_secs, 120);
        assert_eq!(find("aws-nlb").unwrap().idle_secs, 100);
        assert!(find("GCP").is_none());
        assert!(find(" gcp").is_none());
        assert!(find("").is_none());
        assert_eq!(
            names(),
            "aws-nlb, aws-natgw, aws-nitro, azure-lb, gcp, ipvs"
        );
    }
}
