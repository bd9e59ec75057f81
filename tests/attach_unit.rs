//! `keepalive --attach UNIT` and `--detach UNIT`: the kernel-side mode on a
//! running systemd unit's cgroup, found as `--status` finds it (through
//! `systemctl show -p ControlGroup`). This machine runs no systemd, so a
//! stand-in `systemctl` first in PATH answers for one unit, whose control
//! group is a cgroup v2 directory the test creates. Root.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

fn cgroup2_root() -> PathBuf {
    for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        if Path::new(root).join("cgroup.controllers").exists() {
            return PathBuf::from(root);
        }
    }
    panic!("no cgroup2 hierarchy: mount -t cgroup2 none /sys/fs/cgroup/unified");
}

/// Our cgroup, detached and removed on drop.
struct Cgroup(PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = Command::new(common::keepalive_command())
            .arg("--detach")
            .arg(&self.0)
            .output();
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `keepalive ARGS` with the stand-in systemctl first in PATH.
fn keepalive(stub_dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = common::command(common::keepalive_command(), false, &[]);
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{}:{path}", stub_dir.display()))
        .args(args);
    common::run(cmd, DEADLINE)
}

/// The idle time and SO_KEEPALIVE of a connection made by a process in
/// `cgroup`.
fn connection_in(cgroup: &Path) -> String {
    let script = r#"
import socket
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
c = socket.create_connection(l.getsockname())
print("keepalive=%d idle=%d" % (c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
      c.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)))
"#;
    let mut cmd = common::command("/bin/sh", false, &[]);
    cmd.arg("-c")
        .arg(r#"echo $$ > "$1/cgroup.procs" && exec python3 -c "$2""#)
        .arg("sh")
        .arg(cgroup)
        .arg(script);
    let output = common::run(cmd, DEADLINE);
    assert!(output.status.success(), "{output:?}");
    common::stdout(&output).trim().to_string()
}

#[test]
fn attach_and_detach_take_a_systemd_unit() {
    let name = format!("keepalive-22-unit-{}", std::process::id());
    let cgroup = Cgroup(cgroup2_root().join(&name));
    std::fs::create_dir_all(&cgroup.0).unwrap();
    let unit = format!("{name}.service");
    let stub_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("stub-{name}"));
    std::fs::create_dir_all(&stub_dir).unwrap();
    let stub = stub_dir.join("systemctl");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\n# show --property=ControlGroup --value -- UNIT\n\
             [ \"$1 $2 $3 $4 $5\" = \"show --property=ControlGroup --value -- {unit}\" ] \
             && echo /{name} && exit 0\nexit 1\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();

    assert_eq!(connection_in(&cgroup.0), "keepalive=0 idle=7200");
    let output = keepalive(&stub_dir, &["--attach", &unit, "--idle", "61"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        common::stderr(&output),
        format!("keepalive: attached on {}\n", cgroup.0.display())
    );
    assert_eq!(connection_in(&cgroup.0), "keepalive=1 idle=61");

    let output = keepalive(&stub_dir, &["--detach", &unit]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(connection_in(&cgroup.0), "keepalive=0 idle=7200");

    let output = keepalive(&stub_dir, &["--attach", "no-such-unit.service"]);
    assert_eq!(output.status.code(), Some(125), "{output:?}");
    assert_eq!(
        common::stderr(&output),
        "keepalive: no-such-unit.service: no such running unit\n"
    );
    let _ = std::fs::remove_dir_all(&stub_dir);
}
