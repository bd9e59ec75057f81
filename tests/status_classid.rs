//! `keepalive --status` changes nothing in the process it looks at. Copying
//! a socket with `pidfd_getfd` makes the kernel re-tag the target's socket
//! with the caller's cgroup v1 net_cls classid (`__receive_sock`): a
//! firewall counter on `meta cgroup` then stops counting the service's
//! traffic. Here a Python target runs in a net_cls cgroup with a classid of
//! its own, an nft counter counts its packets by that classid, and the
//! counter must go on counting after `--status` read the target's sockets.
//! Root, nft and a mountable net_cls controller (this hybrid host has one).

mod common;

use common::process::Process;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// A listener, a connection to it and the accepted end; on each line of
/// stdin, 10 small writes on the connection, then "sent".
const TARGET: &str = r#"
import socket, sys
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen()
c = socket.create_connection(l.getsockname())
a, _ = l.accept()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print("ready", flush=True)
for line in sys.stdin:
    for _ in range(10):
        c.send(b"x")
        a.recv(1)
    print("sent", flush=True)
"#;

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (apt-get install -y nftables)"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The net_cls hierarchy: an existing mount, or one of our own (unmounted
/// on drop), and our cgroup in it (removed on drop).
struct NetCls {
    mounted_here: Option<PathBuf>,
    cgroup: PathBuf,
}

impl NetCls {
    fn new(name: &str, classid: u32) -> NetCls {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let existing = mountinfo.lines().find_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            let options = fs.split(' ').nth(2)?;
            (fs.starts_with("cgroup ") && options.split(',').any(|o| o == "net_cls"))
                .then(|| PathBuf::from(mount.split(' ').nth(4).unwrap()))
        });
        let (root, mounted_here) = match existing {
            Some(root) => (root, None),
            None => {
                let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("net_cls-{}", std::process::id()));
                std::fs::create_dir_all(&root).unwrap();
                run_ok(
                    "mount",
                    &[
                        "-t",
                        "cgroup",
                        "-o",
                        "net_cls",
                        "none",
                        root.to_str().unwrap(),
                    ],
                );
                (root.clone(), Some(root))
            }
        };
        let cgroup = root.join(name);
        let net_cls = NetCls {
            mounted_here,
            cgroup,
        };
        std::fs::create_dir_all(&net_cls.cgroup).unwrap();
        std::fs::write(net_cls.cgroup.join("net_cls.classid"), classid.to_string()).unwrap();
        net_cls
    }
}

impl Drop for NetCls {
    fn drop(&mut self) {
        for _ in 0..100 {
            if std::fs::remove_dir(&self.cgroup).is_ok() || !self.cgroup.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(root) = &self.mounted_here {
            let _ = Command::new("umount").arg(root).status();
            let _ = std::fs::remove_dir(root);
        }
    }
}

/// An nft table counting output packets of one classid; deleted on drop.
struct Counter(String);

impl Counter {
    fn new(table: &str, classid: u32) -> Counter {
        let rules = format!(
            "table inet {table} {{\n chain out {{\n type filter hook output priority 0;\n \
             meta cgroup {classid:#010x} counter\n }}\n}}\n"
        );
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("nft: apt-get install -y nftables");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft {rules}");
        Counter(table.to_string())
    }

    fn packets(&self) -> u64 {
        let text = run_ok("nft", &["list", "table", "inet", &self.0]);
        let after = text.split("counter packets ").nth(1).expect(&text);
        after.split(' ').next().unwrap().parse().unwrap()
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.0])
            .status();
    }
}

fn send_round(target: &mut Process, round: usize) {
    target.write("go\n");
    let sent = common::wait_for(DEADLINE, || {
        (target.stdout().matches("sent").count() >= round).then_some(())
    });
    assert!(sent.is_some(), "{}", target.stderr());
}

#[test]
fn status_leaves_the_targets_net_cls_classid_alone() {
    let classid: u32 = 0x0022_0000 | (std::process::id() & 0xffff);
    let name = format!("keepalive-22-{}", std::process::id());
    let net_cls = NetCls::new(&name, classid);
    let counter = Counter::new(&format!("keepalive22_{}", std::process::id()), classid);
    let script = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-classid.py");
    std::fs::write(&script, TARGET).unwrap();
    common::keepalive_command();
    // Joins the cgroup before python3 makes its sockets, so they carry its classid.
    let mut cmd = common::command("/bin/sh", false, &[]);
    cmd.arg("-c")
        .arg(r#"echo $$ > "$1/cgroup.procs" && exec python3 "$2""#)
        .arg("sh")
        .arg(&net_cls.cgroup)
        .arg(&script);
    let mut target = Process::spawn(cmd, "python3 in a net_cls cgroup");
    assert!(
        target.wait_stdout("ready", DEADLINE).is_some(),
        "{}",
        target.stderr()
    );
    let start = counter.packets();
    send_round(&mut target, 1);
    let first = counter.packets() - start;
    assert!(first >= 10, "the target's packets are not counted: {first}");

    let output = common::run(
        {
            let mut cmd = Command::new(common::keepalive_command());
            cmd.args(["--status", &target.id().to_string(), "--json"]);
            cmd
        },
        DEADLINE,
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let report = common::stdout(&output);
    // The options were read from the sockets themselves (copies taken).
    assert_eq!(
        report.matches("\"source\":\"getsockopt\"").count(),
        3,
        "{report}"
    );

    let before = counter.packets();
    send_round(&mut target, 2);
    let second = counter.packets() - before;
    assert!(
        second >= first,
        "after --status the target's traffic no longer matches its classid: \
         {second} packets counted, {first} before"
    );
    drop(target);
}
