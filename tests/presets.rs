//! Path presets (KEEPALIVE_PATH / --path): each preset's timers as the
//! kernel reports them on a real program's sockets, variables overriding a
//! preset timer by timer, and --check naming where each value came from.

mod common;

use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// The documented table (README, libkeepalive(8)): name, idle, interval,
/// count. Written out here, not taken from src/core/presets.rs, so that a change
/// of the values must be a change of this test too.
const PRESETS: [(&str, &str, &str, &str); 6] = [
    ("aws-nlb", "100", "30", "5"),
    ("aws-natgw", "100", "30", "5"),
    ("aws-nitro", "100", "30", "5"),
    ("azure-lb", "60", "20", "5"),
    ("gcp", "120", "60", "5"),
    ("ipvs", "300", "30", "5"),
];

/// The options of the connection sockprobe makes and the one it accepts.
fn probe_lines(mut cmd: Command) -> (Vec<Vec<(String, String)>>, String) {
    cmd.args(["connect", "plain"]);
    let output = common::run(cmd, DEADLINE);
    assert!(output.status.success(), "{output:?}");
    let lines = common::stdout(&output)
        .lines()
        .filter(|line| line.starts_with("client ") || line.starts_with("accepted "))
        .map(common::fields)
        .collect();
    (lines, common::stderr(&output))
}

fn assert_timers(lines: &[Vec<(String, String)>], idle: &str, intvl: &str, cnt: &str) {
    assert_eq!(lines.len(), 2);
    for fields in lines {
        assert_eq!(common::field(fields, "keepalive"), "1");
        assert_eq!(common::field(fields, "idle"), idle, "{fields:?}");
        assert_eq!(common::field(fields, "intvl"), intvl, "{fields:?}");
        assert_eq!(common::field(fields, "cnt"), cnt, "{fields:?}");
        assert_eq!(common::field(fields, "user_timeout"), "0", "{fields:?}");
    }
}

#[test]
fn each_preset_sets_its_timers_on_real_sockets() {
    let probe = common::c_program("sockprobe");
    for (name, idle, intvl, cnt) in PRESETS {
        let cmd = common::command(&probe, true, &[("KEEPALIVE_PATH", name)]);
        let (lines, stderr) = probe_lines(cmd);
        assert_eq!(stderr, "", "{name}");
        assert_timers(&lines, idle, intvl, cnt);
        // The same through the command's --path.
        let mut cmd = common::command(common::keepalive_command(), false, &[]);
        cmd.args(["--path", name]).arg(&probe);
        let (lines, stderr) = probe_lines(cmd);
        assert_eq!(stderr, "", "{name}");
        assert_timers(&lines, idle, intvl, cnt);
    }
}

#[test]
fn a_variable_overrides_the_preset_timer_by_timer() {
    let probe = common::c_program("sockprobe");
    let env = [("KEEPALIVE_PATH", "gcp"), ("TCP_KEEPIDLE", "45")];
    let (lines, stderr) = probe_lines(common::command(&probe, true, &env));
    assert_eq!(stderr, "");
    assert_timers(&lines, "45", "60", "5");
    let mut cmd = common::command(common::keepalive_command(), false, &[]);
    cmd.args(["--path", "azure-lb", "--count", "3"]).arg(&probe);
    let (lines, _) = probe_lines(cmd);
    assert_timers(&lines, "60", "20", "3");
}

#[test]
fn an_unknown_preset_is_one_line_and_ignored() {
    let probe = common::c_program("sockprobe");
    let default_idle = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_keepalive_time").unwrap();
    let (lines, stderr) = probe_lines(common::command(&probe, true, &[("KEEPALIVE_PATH", "aws")]));
    assert_eq!(
        stderr,
        "libkeepalive: KEEPALIVE_PATH=\"aws\" is not valid: expected one of aws-nlb, \
         aws-natgw, aws-nitro, azure-lb, gcp, ipvs; ignoring it\n"
    );
    for fields in &lines {
        assert_eq!(common::field(fields, "keepalive"), "1");
        assert_eq!(common::field(fields, "idle"), default_idle.trim());
    }
    // The command refuses to start a program with it.
    let mut cmd = common::command(common::keepalive_command(), false, &[]);
    cmd.args(["--path", "aws", "true"]);
    let output = common::run(cmd, DEADLINE);
    assert_eq!(output.status.code(), Some(125));
    assert!(common::stderr(&output).contains("keepalive: KEEPALIVE_PATH is the value of --path"));
}

#[test]
fn check_names_the_preset_or_the_variable_behind_each_value() {
    let mut cmd = common::command(common::keepalive_command(), false, &[("KEEPCNT", "3")]);
    cmd.args(["--path", "ipvs", "--check"]);
    let output = common::run(cmd, DEADLINE);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let lines: Vec<String> = common::stdout(&output)
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        lines.contains(&"idle 300 s preset ipvs (--path)".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"interval 30 s preset ipvs (--path)".to_string()));
    assert!(lines.contains(&"count 3 KEEPCNT".to_string()));
    let path = lines.iter().find(|l| l.starts_with("path ")).unwrap();
    assert!(
        path.starts_with("path ipvs --path: Linux IPVS TCP timeout 900 s"),
        "{path}"
    );
    assert!(lines.contains(
        &"tcp sockets SO_KEEPALIVE=1 TCP_KEEPIDLE=300 TCP_KEEPINTVL=30 TCP_KEEPCNT=3".to_string()
    ));
}
