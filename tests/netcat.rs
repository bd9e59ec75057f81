//! OpenBSD netcat, unmodified, on loopback: with the library both ends of
//! the connection show a keepalive timer near KEEPIDLE in `ss -tno`; without
//! it, neither does.

mod common;

use common::process::Process;
use common::*;
use std::process::Stdio;
use std::time::Duration;

fn require_nc() {
    let ok = std::process::Command::new("nc")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "OpenBSD netcat missing: apt-get install -y netcat-openbsd"
    );
}

/// Starts `nc -l` and an `nc` client on 127.0.0.1 (both under the library when
/// `preload`), and returns the `ss` lines of the established connection.
fn connection_lines(preload: bool, idle: &str) -> Vec<String> {
    require_nc();
    let port = free_port();
    let env = [("KEEPIDLE", idle)];
    let mut server = command("nc", preload, &env);
    server.args(["-l", "127.0.0.1", &port.to_string()]);
    let _server = Process::spawn(server, "nc -l");
    let listening = wait_for(Duration::from_secs(5), || {
        let out = std::process::Command::new("ss")
            .args(["-tlnH"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("127.0.0.1:{port} "))
            .then_some(())
    });
    assert!(listening.is_some(), "nc -l did not listen on {port}");
    let mut client = command("nc", preload, &env);
    client.args(["127.0.0.1", &port.to_string()]);
    // Its stdin stays open and unwritten: the connection stays idle.
    let _client = Process::spawn(client, "nc");
    let lines = wait_for(Duration::from_secs(5), || {
        let lines = ss_lines(port);
        (lines.len() == 2).then_some(lines)
    });
    lines.unwrap_or_else(|| {
        panic!(
            "no established connection on port {port}: {:?}",
            ss_lines(port)
        )
    })
}

#[test]
fn netcat_both_ends_get_the_keepalive_timer() {
    let lines = connection_lines(true, "60");
    for line in &lines {
        let secs =
            keepalive_timer_secs(line).unwrap_or_else(|| panic!("no keepalive timer: {line}"));
        assert!(
            (50.0..=60.0).contains(&secs),
            "timer {secs} s not near KEEPIDLE=60: {line}"
        );
        println!("with library: {line}");
    }
}

#[test]
fn netcat_without_the_library_has_no_keepalive_timer() {
    let lines = connection_lines(false, "60");
    for line in &lines {
        assert!(
            !line.contains("keepalive"),
            "unexpected keepalive timer: {line}"
        );
        println!("without library: {line}");
    }
}

#[test]
fn timer_parser_reads_ss_formats() {
    assert_eq!(
        keepalive_timer_secs("x timer:(keepalive,43sec,0)"),
        Some(43.0)
    );
    assert_eq!(
        keepalive_timer_secs("timer:(keepalive,1min2sec,0)"),
        Some(62.0)
    );
    assert_eq!(
        keepalive_timer_secs("timer:(keepalive,5.992ms,0)"),
        Some(5.992)
    );
    assert_eq!(keepalive_timer_secs("timer:(on,200ms,0)"), None);
}
