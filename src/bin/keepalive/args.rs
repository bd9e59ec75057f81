//! The command line: `keepalive [OPTIONS] [--] PROGRAM [ARGS...]`.
//!
//! Parsing stops at the first word that is not one of our options (or after
//! `--`), like env(1) or nice(1), so PROGRAM's own options are never ours.
//! Values stay raw bytes: they are validated by the library's own parser.

use keepalive_core::variables::Setting;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// A setting given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionValue {
    pub setting: Setting,
    /// The option as the user spelled its name, for messages: "--idle".
    pub option: &'static str,
    pub value: Vec<u8>,
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Help,
    Version,
    /// Report the effective settings; PROGRAM, if given, is only inspected.
    Check {
        program: Option<OsString>,
    },
    Run {
        program: OsString,
        args: Vec<OsString>,
    },
    /// `--bpf`: run PROGRAM under the kernel-side mode (a child cgroup).
    Bpf {
        program: OsString,
        args: Vec<OsString>,
    },
    /// `--attach DIR`: attach the kernel-side mode to a cgroup v2 (or update it).
    Attach {
        cgroup: OsString,
    },
    /// `--detach DIR`: remove it.
    Detach {
        cgroup: OsString,
    },
    /// `--agent [CGROUP_DIR]`: the node agent (agent/), in the foreground.
    Agent {
        cgroup: Option<OsString>,
        quiet: bool,
        persist: bool,
        ready: Option<OsString>,
    },
    /// `--status --all`: every established TCP connection of the host.
    StatusAll {
        json: bool,
    },
    /// Report what the library does in running processes: each target is a
    /// PID, a cgroup directory or a systemd unit.
    Status {
        targets: Vec<OsString>,
        json: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// In command-line order; a later value for a setting wins.
    pub options: Vec<OptionValue>,
    pub action: Action,
}

/// Options that take a value: name, setting.
const VALUED: [(&str, Setting); 8] = [
    ("--idle", Setting::Idle),
    ("--interval", Setting::Interval),
    ("--count", Setting::Count),
    ("--user-timeout", Setting::UserTimeout),
    ("--direction", Setting::Direction),
    ("--rule", Setting::Rules),
    ("--path", Setting::Path),
    ("--program", Setting::Programs),
];

/// Parses the arguments after argv[0]. The error is a one-line message.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, String> {
    let mut args = args.into_iter().peekable();
    let mut options: Vec<OptionValue> = Vec::new();
    let mut check = false;
    let mut program = None;
    let mut bpf = false;
    let mut cgroup_action: Option<(bool, OsString)> = None;
    let mut status_targets = Vec::new();
    let mut json = false;
    let mut agent = false;
    let mut quiet = false;
    let mut persist = false;
    let mut status_all = false;
    let mut ready = None;
    while let Some(arg) = args.next() {
        let bytes = arg.as_encoded_bytes();
        if bytes == b"--" {
            program = args.next();
            break;
        }
        if !bytes.starts_with(b"-") || bytes == b"-" {
            program = Some(arg);
            break;
        }
        let (name, inline_value) = match bytes.iter().position(|&b| b == b'=') {
            Some(eq) => (&bytes[..eq], Some(bytes[eq + 1..].to_vec())),
            None => (bytes, None),
        };
        let name = String::from_utf8_lossy(name).into_owned();
        if let Some(&(option, setting)) = VALUED.iter().find(|(known, _)| *known == name) {
            let value = match inline_value {
                Some(value) => value,
                None => args
                    .next()
                    .ok_or_else(|| format!("{option} needs a value"))?
                    .into_vec(),
            };
            // Rules add up, in order (first match wins), and so do
            // programs; every other setting has one value, and a later
            // option replaces it.
            let separator: &[u8] = if setting == Setting::Programs {
                b","
            } else {
                b"; "
            };
            let adds_up = setting == Setting::Rules || setting == Setting::Programs;
            let earlier = options.iter_mut().find(|o| o.setting == setting);
            match earlier {
                Some(earlier) if adds_up => {
                    earlier.value.extend_from_slice(separator);
                    earlier.value.extend_from_slice(&value);
                }
                _ => options.push(OptionValue {
                    setting,
                    option,
                    value,
                }),
            }
            continue;
        }
        // The kernel-side mode: --attach/--detach name a cgroup directory
        // or a systemd unit.
        if name == "--attach" || name == "--detach" {
            let directory = match inline_value {
                Some(value) => OsString::from_vec(value),
                None => args
                    .next()
                    .ok_or_else(|| format!("{name} needs a cgroup directory or unit"))?,
            };
            cgroup_action = Some((name == "--attach", directory));
            continue;
        }
        if name == "--ready" {
            ready = Some(match inline_value {
                Some(value) => OsString::from_vec(value),
                None => args.next().ok_or("--ready needs a file")?,
            });
            continue;
        }
        if inline_value.is_some() {
            return Err(format!("{name} takes no value"));
        }
        if name == "--bpf" {
            bpf = true;
            continue;
        }
        // The node agent's flags, and the host-wide `--status --all`.
        let mut took_all = false;
        match name.as_str() {
            "--agent" => agent = true,
            "--quiet" => quiet = true,
            "--persist" => persist = true,
            "--status" if args.peek().is_some_and(|next| next == "--all") => {
                args.next();
                status_all = true;
                took_all = true;
            }
            _ => {}
        }
        if ["--agent", "--quiet", "--persist"].contains(&name.as_str()) || took_all {
            continue;
        }
        match name.as_str() {
            "--debug" => options.push(OptionValue {
                setting: Setting::Debug,
                option: "--debug",
                value: b"1".to_vec(),
            }),
            "--off" => options.push(OptionValue {
                setting: Setting::Enabled,
                option: "--off",
                value: b"off".to_vec(),
            }),
            // KEEPALIVE_OVERRIDE=on: our values replace the program's own.
            "--override" => options.push(OptionValue {
                setting: Setting::Override,
                option: "--override",
                value: b"on".to_vec(),
            }),
            "--check" => check = true,
            "--status" => status_targets.push(
                args.next()
                    .ok_or_else(|| "--status needs a PID, cgroup directory or unit".to_string())?,
            ),
            "--json" => json = true,
            "-h" | "--help" => {
                return Ok(Invocation {
                    options,
                    action: Action::Help,
                })
            }
            "-V" | "--version" => {
                return Ok(Invocation {
                    options,
                    action: Action::Version,
                })
            }
            _ => return Err(format!("unknown option {name}")),
        }
    }
    if agent {
        if cgroup_action.is_some() || bpf || check || status_all || !status_targets.is_empty() {
            return Err("--agent goes with no other mode".to_string());
        }
        if let Some(extra) = args.next() {
            return Err(format!(
                "--agent takes one CGROUP_DIR ({} given after it)",
                extra.to_string_lossy()
            ));
        }
        let action = Action::Agent {
            cgroup: program,
            quiet,
            persist,
            ready,
        };
        return Ok(Invocation { options, action });
    }
    if quiet || persist || ready.is_some() {
        return Err("--quiet, --persist and --ready go with --agent".to_string());
    }
    if status_all {
        if !status_targets.is_empty() {
            return Err("--status --all takes no other target".to_string());
        }
        if let Some(program) = program {
            return Err(format!(
                "--status takes no PROGRAM ({} given)",
                program.to_string_lossy()
            ));
        }
        return Ok(Invocation {
            options,
            action: Action::StatusAll { json },
        });
    }
    if let Some((attach, cgroup)) = cgroup_action {
        if let Some(program) = program {
            let option = if attach { "--attach" } else { "--detach" };
            return Err(format!(
                "{option} takes no PROGRAM ({} given); use --bpf to run one",
                program.to_string_lossy()
            ));
        }
        let action = if attach {
            Action::Attach { cgroup }
        } else {
            Action::Detach { cgroup }
        };
        return Ok(Invocation { options, action });
    }
    if !status_targets.is_empty() {
        if let Some(program) = program {
            return Err(format!(
                "--status takes no PROGRAM ({} given)",
                program.to_string_lossy()
            ));
        }
        let action = Action::Status {
            targets: status_targets,
            json,
        };
        return Ok(Invocation { options, action });
    }
    if json {
        return Err("--json goes with --status".to_string());
    }
    let action = match (check, program) {
        (true, program) => Action::Check { program },
        (false, Some(program)) => Action::Run {
            program,
            args: args.collect(),
        },
        (false, None) => return Err("no PROGRAM to run".to_string()),
    };
    let action = match action {
        Action::Run { program, args } if bpf => Action::Bpf { program, args },
        other => other,
    };
    Ok(Invocation { options, action })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Invocation, String> {
        parse(words.iter().map(OsString::from))
    }

    /// Each option given, as (setting, value text), in order.
    fn settings_of(invocation: &Invocation) -> Vec<(Setting, String)> {
        invocation
            .options
            .iter()
            .map(|o| (o.setting, String::from_utf8_lossy(&o.value).into_owned()))
            .collect()
    }

    fn run_of(invocation: &Invocation) -> (String, Vec<String>) {
        match &invocation.action {
            Action::Run { program, args } => (
                program.to_string_lossy().into_owned(),
                args.iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect(),
            ),
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn options_then_program_and_its_own_options() {
        let got = parse_words(&[
            "--idle",
            "60",
            "--count=5",
            "--debug",
            "curl",
            "--idle",
            "x",
        ])
        .unwrap();
        let settings: Vec<_> = got
            .options
            .iter()
            .map(|o| {
                (
                    o.setting,
                    o.option,
                    String::from_utf8_lossy(&o.value).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            settings,
            [
                (Setting::Idle, "--idle", "60".to_string()),
                (Setting::Count, "--count", "5".to_string()),
                (Setting::Debug, "--debug", "1".to_string()),
            ]
        );
        assert_eq!(
            run_of(&got),
            (
                "curl".to_string(),
                vec!["--idle".to_string(), "x".to_string()]
            )
        );
    }

    #[test]
    fn double_dash_ends_our_options() {
        let got = parse_words(&["--off", "--", "--weird-name", "-x"]).unwrap();
        assert_eq!(got.options[0].setting, Setting::Enabled);
        assert_eq!(got.options[0].value, b"off");
        assert_eq!(
            run_of(&got),
            ("--weird-name".to_string(), vec!["-x".to_string()])
        );
    }

    #[test]
    fn override_sets_its_variable() {
        let got = parse_words(&["--override", "--idle=5", "go-client"]).unwrap();
        assert_eq!(
            settings_of(&got),
            [
                (Setting::Override, "on".to_string()),
                (Setting::Idle, "5".to_string())
            ]
        );
        assert_eq!(got.options[0].option, "--override");
        assert_eq!(Setting::Override.variables(), ["KEEPALIVE_OVERRIDE"]);
        assert_eq!(
            parse_words(&["--override=off", "x"]).unwrap_err(),
            "--override takes no value"
        );
    }

    #[test]
    fn values_are_passed_through_unvalidated() {
        // Validation is the core's load(), so even nonsense parses here.
        let got = parse_words(&["--user-timeout", "auto", "--interval=", "p"]).unwrap();
        assert_eq!(got.options[0].value, b"auto");
        assert_eq!(got.options[1].value, b"");
    }

    #[test]
    fn check_help_version() {
        assert_eq!(
            parse_words(&["--idle", "5", "--check"]).unwrap().action,
            Action::Check { program: None }
        );
        assert_eq!(
            parse_words(&["--check", "/bin/true"]).unwrap().action,
            Action::Check {
                program: Some("/bin/true".into())
            }
        );
        assert_eq!(
            parse_words(&["--help", "--bogus"]).unwrap().action,
            Action::Help
        );
        assert_eq!(parse_words(&["-V"]).unwrap().action, Action::Version);
    }

    #[test]
    fn rules_add_up_and_direction_is_a_setting() {
        let got = parse_words(&[
            "--rule",
            "net=10.0.0.0/8:idle=60",
            "--direction=out",
            "--rule=*:off",
            "prog",
        ])
        .unwrap();
        assert_eq!(
            settings_of(&got),
            [
                (Setting::Rules, "net=10.0.0.0/8:idle=60; *:off".to_string()),
                (Setting::Direction, "out".to_string()),
            ]
        );
    }

    #[test]
    fn status_targets_and_json() {
        assert_eq!(
            parse_words(&["--status", "42", "--json", "--status=x"]).unwrap_err(),
            "--status takes no value"
        );
        assert_eq!(
            parse_words(&["--status", "42", "--json", "--status", "nginx.service"])
                .unwrap()
                .action,
            Action::Status {
                targets: vec!["42".into(), "nginx.service".into()],
                json: true
            }
        );
        assert_eq!(
            parse_words(&["--status", "42", "curl"]).unwrap_err(),
            "--status takes no PROGRAM (curl given)"
        );
        assert_eq!(
            parse_words(&["--json", "curl"]).unwrap_err(),
            "--json goes with --status"
        );
        assert_eq!(
            parse_words(&["--status"]).unwrap_err(),
            "--status needs a PID, cgroup directory or unit"
        );
    }

    #[test]
    fn agent_and_status_all() {
        assert_eq!(
            parse_words(&[
                "--agent",
                "--idle",
                "60",
                "--quiet",
                "/sys/fs/cgroup/kubepods"
            ])
            .unwrap()
            .action,
            Action::Agent {
                cgroup: Some("/sys/fs/cgroup/kubepods".into()),
                quiet: true,
                persist: false,
                ready: None
            }
        );
        assert_eq!(
            parse_words(&["--persist", "--agent", "--ready=/run/r"])
                .unwrap()
                .action,
            Action::Agent {
                cgroup: None,
                quiet: false,
                persist: true,
                ready: Some("/run/r".into())
            }
        );
        assert!(parse_words(&["--agent", "/a", "/b"])
            .unwrap_err()
            .starts_with("--agent takes one CGROUP_DIR"));
        assert_eq!(
            parse_words(&["--quiet", "curl"]).unwrap_err(),
            "--quiet, --persist and --ready go with --agent"
        );
        assert_eq!(
            parse_words(&["--status", "--all", "--path", "aws-nlb", "--json"])
                .unwrap()
                .action,
            Action::StatusAll { json: true }
        );
        assert_eq!(
            parse_words(&["--status", "--all", "--status", "1"]).unwrap_err(),
            "--status --all takes no other target"
        );
    }

    #[test]
    fn programs_add_up_and_path_is_a_setting() {
        let got =
            parse_words(&["--program", "nginx", "--path=gcp", "--program=python3", "x"]).unwrap();
        assert_eq!(
            settings_of(&got),
            [
                (Setting::Programs, "nginx,python3".to_string()),
                (Setting::Path, "gcp".to_string()),
            ]
        );
    }

    #[test]
    fn mistakes_are_reported() {
        assert_eq!(
            parse_words(&["--idle"]).unwrap_err(),
            "--idle needs a value"
        );
        assert_eq!(
            parse_words(&["--idel", "5", "x"]).unwrap_err(),
            "unknown option --idel"
        );
        assert_eq!(
            parse_words(&["--debug=1", "x"]).unwrap_err(),
            "--debug takes no value"
        );
        assert_eq!(parse_words(&["--debug"]).unwrap_err(), "no PROGRAM to run");
        assert_eq!(parse_words(&[]).unwrap_err(), "no PROGRAM to run");
    }

    #[test]
    fn kernel_side_mode() {
        let got = parse_words(&["--bpf", "--idle", "5", "curl", "--bpf"]).unwrap();
        assert_eq!(got.options[0].setting, Setting::Idle);
        assert_eq!(
            got.action,
            Action::Bpf {
                program: "curl".into(),
                args: vec!["--bpf".into()]
            }
        );
        let got = parse_words(&["--attach", "/sys/fs/cgroup/a", "--count=3"]).unwrap();
        assert_eq!(got.options[0].setting, Setting::Count);
        assert_eq!(
            got.action,
            Action::Attach {
                cgroup: "/sys/fs/cgroup/a".into()
            }
        );
        assert_eq!(
            parse_words(&["--detach=/c"]).unwrap().action,
            Action::Detach {
                cgroup: "/c".into()
            }
        );
        assert_eq!(
            parse_words(&["--attach"]).unwrap_err(),
            "--attach needs a cgroup directory or unit"
        );
        assert!(parse_words(&["--attach", "/c", "prog"])
            .unwrap_err()
            .starts_with("--attach takes no PROGRAM"));
        assert_eq!(
            parse_words(&["--bpf=1", "x"]).unwrap_err(),
            "--bpf takes no value"
        );
    }
}
