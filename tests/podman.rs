//! The node agent with a real container runtime (Debian 12's podman 4.3),
//! as root. The agent runs from its image (the `agent` stage of
//! deploy/Dockerfile) as the DaemonSet of deploy/kubernetes/node-agent.yaml
//! runs it: the host's PIDs and network, the four capabilities it names and
//! no others, a read-only root, the host's /sys/fs/cgroup read-only at
//! /host/sys/fs/cgroup. Workload containers under a cgroup parent of the
//! test's own (the agent's CGROUP_DIR) connect to a peer on the host: a
//! static client, a Go client, a glibc program, one with KEEPIDLE in its
//! environment and one with KEEPALIVE=off. Each connection is read from
//! inside (the probe's getsockopt) and with `ss` from the host.
//!
//! Where podman is the limit: 4.3 does not play a DaemonSet (`podman kube
//! play` takes Pods and Deployments only), so the pod template's settings
//! are given to `podman run` one by one (`agent_run_arguments` below, checked
//! against the manifest). No registry is reachable: the base image is Debian
//! 12 minbase from debootstrap, cached by scripts/podman-base.sh; the
//! agent's image is built from the Dockerfile's agent stage verbatim, with
//! its build stage replaced by this test's own build of the command.
//!
//! podman here needs a containers.conf of the test's own (CONTAINERS_CONF):
//! runc and cgroupfs (crun refuses this hybrid cgroup layout) and
//! default_ulimits below the host's hard NOFILE limit.

mod common;

use common::cgroups::cgroup2_mount;
use common::go::go_probe;
use common::kernel_side::peer;
use common::netns::{preflight, Process};
use common::seen::{assert_timer, Seen};
use common::wait_for;
use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const PROMPT: Duration = Duration::from_secs(30);
/// debootstrap on first use (about a minute; more on a busy machine).
const FIRST_BUILD: Duration = Duration::from_secs(900);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("podman-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// containers.conf of our own.
fn containers_conf(dir: &Path) -> PathBuf {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a live struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let nofile = limit.rlim_max.min(1 << 20);
    let path = dir.join("containers.conf");
    fs::write(
        &path,
        format!(
            "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc=32768:32768\"]\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
        ),
    )
    .unwrap();
    path
}

fn podman(conf: &Path) -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", conf).stdin(Stdio::null());
    cmd
}

fn run(cmd: Command, deadline: Duration) -> Output {
    common::run(cmd, deadline)
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        common::stdout(out),
        common::stderr(out)
    );
    common::stdout(out)
}

/// The cached base image's name.
fn base_image(conf: &Path) -> String {
    let mut cmd = Command::new(repo().join("scripts/podman-base.sh"));
    cmd.env("CONTAINERS_CONF", conf);
    ok(&run(cmd, FIRST_BUILD), "scripts/podman-base.sh")
        .trim()
        .to_string()
}

/// The agent's image: the Dockerfile's agent stage, verbatim but for its
/// FROM (our base image), after a build stage holding this build's command.
fn agent_image(conf: &Path, base: &str, dir: &Path) -> String {
    let dockerfile = fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    let stage: Vec<&str> = dockerfile
        .lines()
        .skip_while(|l| !l.ends_with(" AS agent"))
        .take_while(|l| !l.starts_with("# ---"))
        .collect();
    assert!(
        stage
            .first()
            .is_some_and(|l| l.starts_with("FROM debian:bookworm-slim AS agent")),
        "no agent stage in deploy/Dockerfile"
    );
    let context = dir.join("context");
    fs::create_dir_all(&context).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_keepalive"), context.join("keepalive")).unwrap();
    let containerfile = format!(
        "FROM {base} AS build\nCOPY keepalive /usr/local/keepalive\n{}\n{}\n",
        stage[0].replace("debian:bookworm-slim", base),
        stage[1..].join("\n")
    );
    fs::write(context.join("Containerfile"), containerfile).unwrap();
    let image = format!("localhost/keepalive-test/agent:{}", std::process::id());
    let mut cmd = podman(conf);
    cmd.args([
        "build",
        "--pull=never",
        "--target",
        "agent",
        "-t",
        &image,
        "-f",
    ])
    .arg(context.join("Containerfile"))
    .arg(&context);
    ok(&run(cmd, PROMPT * 4), "podman build --target agent");
    image
}

/// The DaemonSet's pod template as `podman run` arguments; every one is
/// checked against deploy/kubernetes/node-agent.yaml.
fn agent_run_arguments() -> Vec<String> {
    let manifest = fs::read_to_string(repo().join("deploy/kubernetes/node-agent.yaml")).unwrap();
    let pairs = [
        ("hostPID: true", "--pid=host"),
        ("hostNetwork: true", "--network=host"),
        ("drop: [\"ALL\"]", "--cap-drop=all"),
        ("- BPF\n", "--cap-add=CAP_BPF"),
        ("- NET_ADMIN\n", "--cap-add=CAP_NET_ADMIN"),
        ("- SYS_ADMIN\n", "--cap-add=CAP_SYS_ADMIN"),
        ("- SYS_PTRACE\n", "--cap-add=CAP_SYS_PTRACE"),
        ("readOnlyRootFilesystem: true", "--read-only"),
        (
            "allowPrivilegeEscalation: false",
            "--security-opt=no-new-privileges",
        ),
        (
            "mountPath: /host/sys/fs/cgroup\n              readOnly: true",
            "--volume=/sys/fs/cgroup:/host/sys/fs/cgroup:ro",
        ),
        (
            "mountPath: /run/keepalive-agent\n",
            "--tmpfs=/run/keepalive-agent",
        ),
        (
            "mountPath: /sys/fs/bpf\n",
            "--volume=/sys/fs/bpf:/sys/fs/bpf",
        ),
        ("runAsUser: 0", "--user=0"),
    ];
    pairs
        .iter()
        .map(|(yaml, argument)| {
            assert!(manifest.contains(yaml), "node-agent.yaml lacks {yaml:?}");
            argument.to_string()
        })
        .collect()
}

/// Everything the test made, removed on drop (also when it fails).
struct Cleanup {
    conf: PathBuf,
    containers: RefCell<Vec<String>>,
    images: Vec<String>,
    cgroup_name: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Workloads first, the agent last (it detaches on SIGTERM).
        for name in self.containers.borrow().iter().rev() {
            let _ = podman(&self.conf)
                .args(["rm", "-f", "-t", "10", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for image in &self.images {
            let _ = podman(&self.conf)
                .args(["rmi", "-f", image])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // The cgroup parent, in every hierarchy podman made it in.
        if let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") {
            for hierarchy in hierarchies.flatten() {
                let dir = hierarchy.path().join(&self.cgroup_name);
                if dir.is_dir() {
                    let _ = Command::new(env!("CARGO_BIN_EXE_keepalive"))
                        .arg("--detach")
                        .arg(&dir)
                        .stderr(Stdio::null())
                        .status();
                    remove_tree(&dir);
                }
            }
        }
        let _ = fs::remove_dir(Path::new("/sys/fs/cgroup").join(&self.cgroup_name));
    }
}

/// A cgroup and the children podman left in it (conmon's), deepest first;
/// a process that just ended leaves its cgroup a moment later.
fn remove_tree(dir: &Path) {
    if let Ok(children) = fs::read_dir(dir) {
        for child in children.flatten() {
            if child.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&child.path());
            }
        }
    }
    if wait_for(PROMPT, || fs::remove_dir(dir).ok()).is_none() && dir.exists() {
        eprintln!("could not remove cgroup {}", dir.display());
    }
}

#[test]
fn the_agent_from_its_image_covers_workload_containers() {
    preflight();
    for (tool, package) in [
        ("podman", "podman"),
        ("runc", "runc"),
        ("debootstrap", "debootstrap"),
    ] {
        common::require(tool, package);
    }
    let dir = scratch();
    let conf = containers_conf(&dir);
    let pid = std::process::id();
    let mut cleanup = Cleanup {
        conf: conf.clone(),
        containers: RefCell::new(Vec::new()),
        images: Vec::new(),
        cgroup_name: format!("katest20-{pid}-podman"),
    };
    let base = base_image(&conf);
    let image = agent_image(&conf, &base, &dir);
    cleanup.images.push(image.clone());

    // The agent's CGROUP_DIR: the cgroup parent of the workload containers.
    let mount = cgroup2_mount();
    let node = mount.join(&cleanup.cgroup_name);
    fs::create_dir_all(&node).unwrap();
    let in_pod = Path::new("/host/sys/fs/cgroup")
        .join(mount.strip_prefix("/sys/fs/cgroup").unwrap())
        .join(&cleanup.cgroup_name);
    let agent_name = format!("katest20-{pid}-agent");
    cleanup.containers.borrow_mut().push(agent_name.clone());
    let mut cmd = podman(&conf);
    cmd.args(["run", "--rm", "--name", &agent_name])
        .args(agent_run_arguments())
        .args([
            "--env",
            "KEEPIDLE=40",
            &image,
            "--ready",
            "/run/keepalive-agent/ready",
        ])
        .arg(&in_pod);
    let agent = Process::spawn_with(cmd, "agent container", false);
    let agent_log = || agent.stderr();
    wait_for(PROMPT, || agent_log().contains("ready:").then_some(()))
        .unwrap_or_else(|| panic!("agent not ready: {}{}", agent.stdout(), agent_log()));
    assert!(
        agent_log().contains("configured") && agent_log().contains("node default: KEEPIDLE=40"),
        "{}",
        agent_log()
    );
    // The readiness probe's command, in the container.
    let manifest = fs::read_to_string(repo().join("deploy/kubernetes/node-agent.yaml")).unwrap();
    assert!(manifest.contains(r#"command: ["cat", "/run/keepalive-agent/ready"]"#));
    let mut probe = podman(&conf);
    probe.args(["exec", &agent_name, "cat", "/run/keepalive-agent/ready"]);
    assert_eq!(
        ok(&run(probe, PROMPT), "readiness probe"),
        "attachments 1\n"
    );

    let probes = dir.join("probes");
    fs::create_dir_all(&probes).unwrap();
    for (name, built) in [
        (
            "static",
            common::build_c("bpfprobe", "bpfprobe-static", &["-static"]),
        ),
        (
            "glibc",
            common::build_c("bpfprobe", "bpfprobe-dynamic", &[]),
        ),
        ("go", go_probe(false)),
    ] {
        fs::copy(built, probes.join(name)).unwrap();
    }
    // One workload container: waits on stdin until its attachment is made
    // (when it has our variables), then connects.
    let workload = |label: &str, env: &[&str], command: String| {
        let port = peer("127.0.0.1");
        let name = format!("katest20-{pid}-{label}");
        cleanup.containers.borrow_mut().push(name.clone());
        let mut cmd = podman(&conf);
        cmd.args(["run", "--rm", "-i", "--name", &name, "--network=host"])
            .arg(format!("--cgroup-parent=/{}", cleanup.cgroup_name))
            .arg(format!("--volume={}:/probes:ro", probes.display()));
        for variable in env {
            cmd.args(["--env", variable]);
        }
        let script = format!(
            "read go; exec {}",
            command.replace("PORT", &port.to_string())
        );
        cmd.args([&base, "sh", "-c", &script]);
        let configured = agent_log().matches("configured").count();
        let mut container = Process::spawn(cmd, label);
        if !env.is_empty() {
            wait_for(PROMPT, || {
                (agent_log().matches("configured").count() > configured).then_some(())
            })
            .unwrap_or_else(|| panic!("{label}: no attachment: {}", agent_log()));
        } else {
            // The container is running (its shell waits on stdin).
            wait_for(PROMPT, || {
                let out = podman(&conf)
                    .args(["inspect", "-f", "{{.State.Running}}", &name])
                    .output()
                    .ok()?;
                (String::from_utf8_lossy(&out.stdout).trim() == "true").then_some(())
            })
            .unwrap_or_else(|| panic!("{label}: not running: {}", container.stderr()));
        }
        container.write("go\n");
        Seen::of(&container, port, PROMPT)
    };
    let check = |label: &str, seen: Seen, expected: &str| {
        assert_eq!(
            seen.options,
            expected,
            "{label}: getsockopt inside\n{}",
            agent_log()
        );
        // Containers start slower: 5 s of slack on the timer.
        assert_timer(&seen, expected, label, 5.0);
    };
    let node_default = "keepalive=1 idle=40 intvl=75 cnt=9 user_timeout=0";
    let hold = "hold=4000";
    check(
        "static client",
        workload(
            "static",
            &[],
            format!("/probes/static connect 127.0.0.1 PORT {hold}"),
        ),
        node_default,
    );
    check(
        "glibc program",
        workload(
            "glibc",
            &[],
            format!("/probes/glibc connect 127.0.0.1 PORT {hold}"),
        ),
        node_default,
    );
    check(
        "Go client (its own keepalive off)",
        workload("go", &[], "/probes/go 127.0.0.1:PORT off 4000".to_string()),
        node_default,
    );
    check(
        "KEEPIDLE in its environment",
        workload(
            "keepidle",
            &["KEEPIDLE=30"],
            format!("/probes/static connect 127.0.0.1 PORT {hold}"),
        ),
        "keepalive=1 idle=30 intvl=75 cnt=9 user_timeout=0",
    );
    let line = agent_log()
        .lines()
        .find(|l| l.contains("KEEPIDLE=30"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("/libpod-") && line.contains("(pid "),
        "{line}"
    );
    check(
        "KEEPALIVE=off (needs issue 19's inner opt-out)",
        workload(
            "off",
            &["KEEPALIVE=off"],
            format!("/probes/static connect 127.0.0.1 PORT {hold}"),
        ),
        "keepalive=0 idle=7200 intvl=75 cnt=9 user_timeout=0",
    );
    // Stopped as Kubernetes stops a pod: SIGTERM, everything detached, exit 0.
    let mut stop = podman(&conf);
    stop.args(["stop", "-t", "20", &agent_name]);
    ok(&run(stop, PROMPT), "podman stop");
    let mut agent = agent;
    let (status, _) = agent
        .wait_exit(PROMPT)
        .expect("agent container did not end");
    assert_eq!(status.code(), Some(0), "{}", agent.stderr());
    assert!(
        agent.stderr().contains("everything detached"),
        "{}",
        agent.stderr()
    );
    let out = Command::new("bpftool")
        .args(["cgroup", "tree"])
        .arg(&node)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("keepalive_"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
