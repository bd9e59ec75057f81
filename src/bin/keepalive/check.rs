//! `keepalive --check`: the settings the library would apply in PROGRAM's
//! environment, one per line, each with where it comes from.

use crate::environment::Overrides;
use keepalive_core::load::Loaded;
use keepalive_core::near_miss;
use keepalive_core::plan::{self, KernelDefaults, Plan};
use keepalive_core::policy::Policy;
use keepalive_core::rules::{Decision, Directions};
use keepalive_core::timers::UserTimeout;
use keepalive_core::variables::Setting;

/// The lines for environment names that are almost ours (`near_miss`),
/// in the order given: the same lines the library prints.
pub fn near_misses<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> Vec<String> {
    names
        .into_iter()
        .filter_map(near_miss::check)
        .map(|miss| miss.to_string())
        .collect()
}

/// A kernel default, read from this network namespace's sysctls.
pub type Sysctl = dyn Fn(&str) -> Result<u32, String>;

/// Reads `/proc/sys/net/ipv4/NAME`.
pub fn read_sysctl(name: &str) -> Result<u32, String> {
    let path = format!("/proc/sys/net/ipv4/{name}");
    let text = std::fs::read_to_string(&path).map_err(|err| err.to_string())?;
    text.trim()
        .parse()
        .map_err(|_| format!("{path} holds {:?}", text.trim()))
}

/// "kernel default (net.ipv4.NAME = VALUE)", and the value if it was readable.
fn kernel_default(sysctl: &Sysctl, name: &str) -> (String, Option<u32>) {
    match sysctl(name) {
        Ok(value) => (
            format!("kernel default (net.ipv4.{name} = {value})"),
            Some(value),
        ),
        Err(err) => (
            format!("kernel default (net.ipv4.{name} unreadable: {err})"),
            None,
        ),
    }
}

/// The lines of the report (without the library line).
pub fn report(
    loaded: &Loaded,
    overrides: &Overrides,
    inherited: &dyn Fn(&str) -> Option<Vec<u8>>,
    sysctl: &Sysctl,
) -> Vec<String> {
    let settings = &loaded.settings;
    let timers = [
        ("tcp_keepalive_time", KernelDefaults::LINUX.idle_secs),
        ("tcp_keepalive_intvl", KernelDefaults::LINUX.interval_secs),
        ("tcp_keepalive_probes", KernelDefaults::LINUX.count),
    ];
    let defaults: Vec<(String, u32)> = timers
        .iter()
        .map(|&(name, linux)| {
            let (text, value) = kernel_default(sysctl, name);
            (text, value.unwrap_or(linux))
        })
        .collect();
    let kernel = KernelDefaults {
        idle_secs: defaults[0].1,
        interval_secs: defaults[1].1,
        count: defaults[2].1,
    };
    let mut lines = Vec::new();
    for setting in Setting::ALL {
        let sources = loaded.sources.of(setting);
        let named: Vec<String> = sources
            .iter()
            .map(|&variable| {
                overrides
                    .option_for(variable)
                    .unwrap_or(variable)
                    .to_string()
            })
            .collect();
        let (label, value, fallback) = match setting {
            Setting::Enabled => ("keepalive", on_off(settings.enabled), "default".to_string()),
            Setting::Idle => timer("idle", settings.timers.idle_secs, " s", &defaults[0]),
            Setting::Interval => timer(
                "interval",
                settings.timers.interval_secs,
                " s",
                &defaults[1],
            ),
            Setting::Count => timer("count", settings.timers.count, "", &defaults[2]),
            Setting::UserTimeout => {
                let value = match settings.timers.user_timeout {
                    Some(UserTimeout::Millis(ms)) => format!("{ms} ms"),
                    Some(UserTimeout::Auto) => format!(
                        "{} ms (auto: idle + interval x count)",
                        plan::auto_user_timeout_ms(settings, kernel)
                    ),
                    None => "not set".to_string(),
                };
                let (retries, _) = kernel_default(sysctl, "tcp_retries2");
                let fallback =
                    format!("{retries}: unacknowledged data is retransmitted until that gives up");
                ("user-timeout", value, fallback)
            }
            Setting::Direction => (
                "direction",
                loaded.selection.directions.name().to_string(),
                "default".to_string(),
            ),
            Setting::Rules => {
                let valid = loaded.selection.rules.len();
                let bad = loaded
                    .diagnostics
                    .iter()
                    .filter(|diagnostic| diagnostic.is_about_rules())
                    .count();
                let value = match (valid, bad) {
                    (0, 0) => "none".to_string(),
                    (valid, 0) => valid.to_string(),
                    (valid, bad) => format!("{valid} ({bad} ignored)"),
                };
                (
                    "rules",
                    value,
                    "default: every connection alike".to_string(),
                )
            }
            Setting::Debug => ("debug", on_off(settings.debug), "default".to_string()),
            Setting::Path => match loaded.path {
                Some(preset) => ("path", preset.name.to_string(), String::new()),
                None => ("path", "none".to_string(), "default: no preset".to_string()),
            },
            Setting::Override => {
                let value = on_off(settings.override_program);
                (
                    "override",
                    value,
                    "default: the program wins (its own options stay its own)".to_string(),
                )
            }
            Setting::Programs => match &loaded.programs {
                Some(programs) => ("programs", programs.joined(), String::new()),
                None => (
                    "programs",
                    "all".to_string(),
                    "default: every program".to_string(),
                ),
            },
        };
        let timer = matches!(setting, Setting::Idle | Setting::Interval | Setting::Count);
        let mut source = match loaded.path {
            Some(preset) if named.is_empty() && timer => {
                let variable = "KEEPALIVE_PATH";
                let by = overrides.option_for(variable).unwrap_or(variable);
                format!("preset {} ({by})", preset.name)
            }
            _ if named.is_empty() => fallback,
            _ => named.join(", "),
        };
        if setting == Setting::Override && settings.override_program {
            source.push_str(": our values replace the program's own");
        }
        if setting == Setting::Path {
            if let Some(preset) = loaded.path {
                source.push_str(&format!(": {}", keepalive_core::presets::source(preset)));
            }
        }
        // A variable that is set but not applied was bad or conflicting.
        let ignored: Vec<&str> = setting
            .variables()
            .iter()
            .copied()
            .filter(|&v| overrides.lookup(v, inherited).is_some() && !sources.contains(&v))
            .map(|v| overrides.option_for(v).unwrap_or(v))
            .collect();
        if !ignored.is_empty() {
            source.push_str(&format!("; ignored: {}", ignored.join(", ")));
        }
        lines.push(format!("{label:<13} {value:<16} {source}"));
    }
    // The rules as the library understands them: canonical spelling, and
    // the options a connection that matches gets.
    let policy = Policy::new(settings, loaded.selection.clone(), || kernel);
    for (index, rule) in loaded.selection.rules.iter().enumerate() {
        let effect = match policy.plan_for(Decision::Matched(index)) {
            Some(plan) => applied(plan),
            None => "left alone".to_string(),
        };
        let label = format!("rule {}", rule.number);
        lines.push(format!("{label:<13} {rule} -> {effect}"));
    }
    let mut sockets = applied(&Plan::new(settings, || kernel));
    if settings.enabled && !loaded.selection.is_everything() {
        if !loaded.selection.rules.is_empty() {
            sockets.push_str(" when no rule matches");
        }
        match loaded.selection.directions {
            Directions::Both => {}
            Directions::Out => sockets.push_str("; accepted connections are left alone"),
            Directions::In => sockets.push_str("; connections it makes are left alone"),
        }
    }
    lines.push(format!("{:<13} {sockets}", "tcp sockets"));
    lines
}

/// The options of `plan`, as `setsockopt` names them, and whether they
/// replace the program's own.
fn applied(plan: &Plan) -> String {
    let applied: Vec<String> = plan
        .options()
        .iter()
        .map(|option| format!("{}={}", option.label(), option.value))
        .collect();
    if applied.is_empty() {
        "nothing: every socket is left alone".to_string()
    } else if plan.override_program {
        format!("{}, replacing the program's own", applied.join(" "))
    } else {
        applied.join(" ")
    }
}

fn on_off(on: bool) -> String {
    if on { "on" } else { "off" }.to_string()
}

fn timer(
    label: &'static str,
    value: Option<u32>,
    unit: &str,
    default: &(String, u32),
) -> (&'static str, String, String) {
    let shown = value.unwrap_or(default.1);
    (label, format!("{shown}{unit}"), default.0.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::OptionValue;

    fn sysctl(name: &str) -> Result<u32, String> {
        match name {
            "tcp_keepalive_time" => Ok(7200),
            "tcp_keepalive_intvl" => Ok(75),
            "tcp_keepalive_probes" => Err("No such file or directory".to_string()),
            "tcp_retries2" => Ok(15),
            _ => panic!("{name}"),
        }
    }

    fn report_for(
        options: &[OptionValue],
        vars: &'static [(&'static str, &'static str)],
    ) -> Vec<String> {
        let overrides = Overrides::from_options(options);
        let inherited = move |name: &str| {
            vars.iter()
                .find(|(set, _)| *set == name)
                .map(|(_, value)| value.as_bytes().to_vec())
        };
        let loaded = crate::environment::load(&overrides, inherited);
        let lines = report(&loaded, &overrides, &inherited, &sysctl);
        lines
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    #[test]
    fn defaults_name_the_sysctl_and_its_value() {
        let lines = report_for(&[], &[]);
        assert_eq!(
            lines,
            [
                "keepalive on default",
                "idle 7200 s kernel default (net.ipv4.tcp_keepalive_time = 7200)",
                "interval 75 s kernel default (net.ipv4.tcp_keepalive_intvl = 75)",
                "count 9 kernel default (net.ipv4.tcp_keepalive_probes unreadable: No such file or directory)",
                "user-timeout not set kernel default (net.ipv4.tcp_retries2 = 15): unacknowledged data is retransmitted until that gives up",
                "direction both default",
                "rules none default: every connection alike",
                "debug off default",
                "path none default: no preset",
                "programs all default: every program",
                "override off default: the program wins (its own options stay its own)",
                "tcp sockets SO_KEEPALIVE=1",
            ]
        );
    }

    #[test]
    fn options_variables_and_ignored_values() {
        let options = [OptionValue {
            setting: Setting::Idle,
            option: "--idle",
            value: b"1m".to_vec(),
        }];
        let vars = &[
            ("TCP_KEEPIDLE", "5"),
            ("KEEPCNT", "4"),
            ("TCP_KEEPCNT", "4"),
            ("KEEPINTVL", "0"),
            ("KEEPALIVE_USER_TIMEOUT", "auto"),
        ];
        let lines = report_for(&options, vars);
        assert_eq!(lines[1], "idle 60 s --idle");
        assert_eq!(
            lines[2],
            "interval 75 s kernel default (net.ipv4.tcp_keepalive_intvl = 75); ignored: KEEPINTVL"
        );
        assert_eq!(lines[3], "count 4 KEEPCNT, TCP_KEEPCNT");
        // 60 + 75 x 4 seconds.
        assert_eq!(
            lines[4],
            "user-timeout 360000 ms (auto: idle + interval x count) KEEPALIVE_USER_TIMEOUT"
        );
        assert_eq!(
            lines[11],
            "tcp sockets SO_KEEPALIVE=1 TCP_KEEPIDLE=60 TCP_KEEPCNT=4 TCP_USER_TIMEOUT=360000"
        );
    }

    #[test]
    fn a_preset_is_named_where_it_sets_a_timer() {
        let options = [OptionValue {
            setting: Setting::Path,
            option: "--path",
            value: b"aws-nlb".to_vec(),
        }];
        let lines = report_for(
            &options,
            &[("KEEPCNT", "3"), ("KEEPALIVE_PROGRAMS", "nginx,java")],
        );
        assert_eq!(lines[1], "idle 100 s preset aws-nlb (--path)");
        assert_eq!(lines[2], "interval 30 s preset aws-nlb (--path)");
        assert_eq!(lines[3], "count 3 KEEPCNT");
        assert!(
            lines[8].starts_with(
                "path aws-nlb --path: AWS Network Load Balancer: TCP idle timeout 350 s"
            ),
            "{}",
            lines[8]
        );
        assert_eq!(lines[9], "programs nginx, java KEEPALIVE_PROGRAMS");
        let lines = report_for(&[], &[("KEEPALIVE_PATH", "ipvs")]);
        assert_eq!(lines[1], "idle 300 s preset ipvs (KEEPALIVE_PATH)");
    }

    #[test]
    fn off_sets_nothing() {
        let lines = report_for(&[], &[("KEEPALIVE", "off")]);
        assert_eq!(lines[0], "keepalive off KEEPALIVE");
        assert_eq!(lines[11], "tcp sockets nothing: every socket is left alone");
    }

    #[test]
    fn rules_are_shown_as_understood() {
        let options = [
            OptionValue {
                setting: Setting::Direction,
                option: "--direction",
                value: b"out".to_vec(),
            },
            OptionValue {
                setting: Setting::Rules,
                option: "--rule",
                value: b"net=10.1.2.3/8 , port=5432:idle=1m; dst=x:off; net=::ffff:127.0.0.2:off"
                    .to_vec(),
            },
        ];
        let lines = report_for(&options, &[("KEEPINTVL", "10")]);
        assert_eq!(lines[5], "direction out --direction");
        assert_eq!(lines[6], "rules 2 (1 ignored) --rule");
        assert_eq!(
            lines[11],
            "rule 1 net=10.0.0.0/8,port=5432:idle=60 -> SO_KEEPALIVE=1 TCP_KEEPIDLE=60 TCP_KEEPINTVL=10"
        );
        assert_eq!(lines[12], "rule 3 net=127.0.0.2/32:off -> left alone");
        assert_eq!(
            lines[13],
            "tcp sockets SO_KEEPALIVE=1 TCP_KEEPINTVL=10 when no rule matches; \
             accepted connections are left alone"
        );
    }

    #[test]
    fn the_mode_in_force_is_said() {
        let options = [OptionValue {
            setting: Setting::Override,
            option: "--override",
            value: b"on".to_vec(),
        }];
        let lines = report_for(&options, &[("KEEPALIVE_RULES", "port=22:on,override=off")]);
        assert_eq!(
            lines[10],
            "override on --override: our values replace the program's own"
        );
        assert_eq!(
            lines[11],
            "rule 1 port=22:on,override=off -> SO_KEEPALIVE=1"
        );
        assert_eq!(
            lines[12],
            "tcp sockets SO_KEEPALIVE=1, replacing the program's own when no rule matches"
        );
        let lines = report_for(&[], &[("KEEPALIVE_OVERRIDE", "on")]);
        assert_eq!(
            lines[10],
            "override on KEEPALIVE_OVERRIDE: our values replace the program's own"
        );
        let lines = report_for(&[], &[("KEEPALIVE_RULES", "*:idle=5,override=on")]);
        assert_eq!(
            lines[11],
            "rule 1 *:idle=5,override=on -> SO_KEEPALIVE=1 TCP_KEEPIDLE=5, replacing the program's own"
        );
    }
}
