//! The deployment files outside the code: the GitHub Actions workflow
//! (against the workflow schema, with check-jsonschema), the Kubernetes
//! manifests in deploy/kubernetes/ (kubernetes-validate, offline), the
//! Dockerfile, and the systemd drop-in's ExecPaths= line for hardened units
//! (systemd-analyze verify). Each validator is first shown a broken file, so
//! a validator that accepts anything fails the test.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("deploy")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `program args`, failing with the install command if it is missing.
fn run(program: &str, install: &str, args: &[&Path]) -> Output {
    let mut cmd = Command::new(program);
    for arg in args {
        cmd.arg(arg);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("{program}: {e}; install it with: {install}"))
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr)
}

fn read(path: &str) -> String {
    fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ----------------------------------------------------------- GitHub Actions

fn check_workflow(path: &Path) -> Output {
    let mut cmd = Command::new("check-jsonschema");
    cmd.args(["--builtin-schema", "vendor.github-workflows"])
        .arg(path);
    cmd.output().unwrap_or_else(|e| {
        panic!("check-jsonschema: {e}; install it with: pip3 install check-jsonschema")
    })
}

#[test]
fn workflow_is_valid_and_runs_the_test_script_as_root() {
    let workflow = repo().join(".github/workflows/ci.yml");
    let output = check_workflow(&workflow);
    assert!(output.status.success(), "{}", text(&output));

    // Control: a job without runs-on or steps is rejected.
    let broken = scratch("workflow").join("broken.yml");
    fs::write(
        &broken,
        "name: x\non: push\njobs:\n  test:\n    timeout-minutes: 5\n",
    )
    .unwrap();
    assert!(!check_workflow(&broken).status.success());

    let text = read(".github/workflows/ci.yml");
    assert!(text.contains("runs-on: ubuntu-"), "not on Ubuntu");
    assert!(text.contains("rust-toolchain"), "no Rust toolchain step");
    assert!(
        text.contains(r#"sudo -E env "PATH=$PATH" scripts/test.sh"#),
        "scripts/test.sh not run as root with the user's PATH"
    );
}

// --------------------------------------------------------------- Kubernetes

fn kubernetes_validate(files: &[&Path]) -> Output {
    let mut args: Vec<&Path> = vec![Path::new("--strict")];
    args.extend_from_slice(files);
    run(
        "kubernetes-validate",
        "pip3 install kubernetes-validate",
        &args,
    )
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(repo().join("deploy/kubernetes"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn kubernetes_manifests_are_valid() {
    let files = manifests();
    assert!(files.len() >= 2, "{files:?}");
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let output = kubernetes_validate(&paths);
    assert!(output.status.success(), "{}", text(&output));

    // Control: a misspelt field (strict mode) and a value of the wrong type.
    let dir = scratch("kubernetes");
    let deployment = read("deploy/kubernetes/deployment.yaml");
    let misspelt = dir.join("misspelt.yaml");
    fs::write(
        &misspelt,
        deployment.replace("volumeMounts:", "volumeMount:"),
    )
    .unwrap();
    assert!(!kubernetes_validate(&[&misspelt]).status.success());
    let mistyped = dir.join("mistyped.yaml");
    fs::write(
        &mistyped,
        deployment.replace("replicas: 1", "replicas: one"),
    )
    .unwrap();
    assert!(!kubernetes_validate(&[&mistyped]).status.success());
}

#[test]
fn kubernetes_pattern_copies_the_library_into_the_preloaded_path() {
    let deployment = read("deploy/kubernetes/deployment.yaml");
    let config = read("deploy/kubernetes/keepalive-config.yaml");
    // The initContainer copies the library into the emptyDir ...
    assert!(deployment.contains("initContainers:"));
    assert!(deployment.contains("emptyDir:"));
    assert!(deployment.contains(r#"command: ["cp", "/keepalive/libkeepalive.so""#));
    // ... mounted at the same place in both containers ...
    assert_eq!(deployment.matches("mountPath: /opt/keepalive").count(), 2);
    // ... where the pod's LD_PRELOAD looks for it.
    assert!(config.contains("LD_PRELOAD: /opt/keepalive/libkeepalive.so"));
    assert!(
        deployment.contains("name: keepalive\n"),
        "ConfigMap not used"
    );
    // The image the initContainer uses is the Dockerfile's library stage.
    let dockerfile = read("deploy/Dockerfile");
    assert!(dockerfile.contains("COPY --from=build /usr/local/libkeepalive.so /keepalive/"));
}

// --------------------------------------------------------------- Dockerfile

#[test]
fn dockerfile_builds_the_shipped_library_with_a_new_enough_rust() {
    let manifest = read("Cargo.toml");
    let rust_version = manifest
        .lines()
        .find_map(|line| line.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let dockerfile = read("deploy/Dockerfile");
    let image_version = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .and_then(|rest| rest.strip_suffix("-bookworm AS build"))
        .expect("a build stage FROM rust:VERSION-bookworm AS build");
    let numbers =
        |version: &str| -> Vec<u32> { version.split('.').map(|n| n.parse().unwrap()).collect() };
    assert!(
        numbers(image_version) >= numbers(rust_version),
        "deploy/Dockerfile's Rust {image_version} is older than the crate's {rust_version}"
    );
    // The images carry the shipped build (glibc 2.17 floor), not the
    // developer's (this machine's glibc): an initContainer copies the
    // library into application images of any glibc.
    assert!(
        dockerfile.contains("RUN scripts/build-portable.sh")
            && dockerfile.contains("target/portable/libkeepalive.so"),
        "deploy/Dockerfile does not build the shipped (portable) library"
    );
    // The library stage is the default target: the last FROM.
    let last_from = dockerfile
        .lines()
        .rfind(|l| l.starts_with("FROM "))
        .unwrap();
    assert!(last_from.ends_with("AS library"), "{last_from}");
    // .dockerignore keeps build output out of the context.
    assert!(read(".dockerignore").lines().any(|l| l == "target"));
}

// ------------------------------------------------------------------ systemd

/// The drop-in with its `#ExecPaths=` line switched on verifies, and names
/// the same library as its LD_PRELOAD.
#[test]
fn drop_in_exec_paths_line_is_valid_systemd() {
    let dropin = read("scripts/systemd/keepalive.conf");
    let commented = dropin
        .lines()
        .find(|l| l.starts_with("#ExecPaths="))
        .expect("the drop-in has no #ExecPaths= line");
    assert_eq!(commented, "#ExecPaths=/usr/local/lib/libkeepalive.so");
    assert!(dropin.contains("\nEnvironment=LD_PRELOAD=/usr/local/lib/libkeepalive.so\n"));

    let units = scratch("systemd");
    fs::write(
        units.join("hardened.service"),
        "[Unit]\nDescription=hardened sample\n\n[Service]\nExecStart=/bin/sleep infinity\n\
         NoExecPaths=/\nExecPaths=/bin /usr/bin /lib /usr/lib\n",
    )
    .unwrap();
    fs::create_dir_all(units.join("hardened.service.d")).unwrap();
    let verify = |dropin: &str| {
        fs::write(units.join("hardened.service.d/keepalive.conf"), dropin).unwrap();
        let output = Command::new("systemd-analyze")
            .env("SYSTEMD_UNIT_PATH", format!("{}:", units.display()))
            .arg("verify")
            .arg(units.join("hardened.service"))
            .output()
            .expect("systemd-analyze: install it with: apt-get install -y systemd");
        (output.status.code(), text(&output))
    };
    let enabled = dropin.replace(commented, &commented[1..]);
    assert_eq!(verify(&enabled), (Some(0), String::new()));
    // Control: a misspelt key in the same place is reported.
    let misspelt = dropin.replace(commented, "ExecPath=/usr/local/lib/libkeepalive.so");
    let (_, err) = verify(&misspelt);
    assert!(err.contains("ExecPath"), "{err}");
}

// --------------------------------------------------------------- node agent

/// The DaemonSet's pod template asks for what the agent needs and no more,
/// each capability and mount with a comment saying why; its ConfigMap holds
/// only our variables, valid as the library reads them.
#[test]
fn node_agent_manifest_asks_for_least_privilege_and_valid_settings() {
    let manifest = read("deploy/kubernetes/node-agent.yaml");
    assert!(manifest.contains("kind: DaemonSet"));
    assert!(manifest.contains("kind: ConfigMap"));
    // Validated strictly on its own too, with a control that must fail.
    let path = repo().join("deploy/kubernetes/node-agent.yaml");
    let output = kubernetes_validate(&[&path]);
    assert!(output.status.success(), "{}", text(&output));
    let broken = scratch("node-agent").join("broken.yaml");
    fs::write(&broken, manifest.replace("tolerations:", "toleration:")).unwrap();
    assert!(!kubernetes_validate(&[&broken]).status.success());

    for needed in [
        "hostPID: true",
        "hostNetwork: true",
        "- operator: Exists",
        "readinessProbe:",
        "requests:",
        "privileged: false",
        "readOnlyRootFilesystem: true",
        "drop: [\"ALL\"]",
        "automountServiceAccountToken: false",
    ] {
        assert!(manifest.contains(needed), "node-agent.yaml lacks {needed}");
    }
    // Exactly these capabilities, each after a comment saying why.
    let lines: Vec<&str> = manifest.lines().collect();
    let added: Vec<&str> = lines
        .iter()
        .skip_while(|l| !l.trim().starts_with("add:"))
        .skip(1)
        .take_while(|l| l.trim().starts_with('-') || l.trim().starts_with('#'))
        .filter_map(|l| l.trim().strip_prefix("- "))
        .collect();
    assert_eq!(added, ["BPF", "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"]);
    for (i, line) in lines.iter().enumerate() {
        let item = line.trim();
        if ["- BPF", "- NET_ADMIN", "- SYS_ADMIN", "- SYS_PTRACE"].contains(&item)
            || item.starts_with("- name: ") && lines[i + 1].trim().starts_with("mountPath:")
        {
            assert!(
                lines[i - 1].trim().starts_with('#'),
                "no comment says why: {item}"
            );
        }
    }
    // The ready file the agent writes is the one the probe reads.
    assert!(manifest.contains("- --ready\n            - /run/keepalive-agent/ready\n"));
    assert!(manifest.contains("command: [\"cat\", \"/run/keepalive-agent/ready\"]"));
    assert!(manifest.contains("mountPath: /run/keepalive-agent\n"));
    // The ConfigMap's keys are our variables, and the library accepts them.
    let data: Vec<(String, String)> = manifest
        .split("kind: ConfigMap")
        .nth(1)
        .unwrap()
        .split("---")
        .next()
        .unwrap()
        .split("\ndata:\n")
        .nth(1)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("  ") && !l.trim_start().starts_with('#'))
        .map(|l| {
            let (k, v) = l.trim().split_once(": ").unwrap();
            (k.to_string(), v.trim_matches('"').to_string())
        })
        .collect();
    assert!(!data.is_empty());
    // The command that ships, beside its library: --check also says
    // whether the library loads, and fails when it is not found.
    let mut check = Command::new(common::keepalive_command());
    check.arg("--check");
    for (name, value) in &data {
        assert!(
            keepalive_core::variables::NAMES.contains(&name.as_str()),
            "{name} is not one of our variables"
        );
        check.env(name, value);
    }
    let output = check.output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    // Its image is the agent target of the Dockerfile.
    let dockerfile = read("deploy/Dockerfile");
    assert!(dockerfile.contains("FROM debian:bookworm-slim AS agent"));
    assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/keepalive", "--agent"]"#));
}

/// The plain-host unit verifies (with this build's command in its
/// ExecStart=), and a misspelt key in it is reported.
#[test]
fn agent_service_is_valid_systemd() {
    let unit = read("scripts/systemd/keepalive-agent.service");
    assert!(unit.contains("ExecStart=/usr/bin/keepalive --agent "));
    let units = scratch("agent-unit");
    let verify = |unit: &str| {
        let path = units.join("keepalive-agent.service");
        fs::write(
            &path,
            unit.replace("/usr/bin/keepalive", env!("CARGO_BIN_EXE_keepalive")),
        )
        .unwrap();
        let output = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .expect("systemd-analyze: install it with: apt-get install -y systemd");
        (output.status.code(), text(&output))
    };
    assert_eq!(verify(&unit), (Some(0), String::new()));
    let (_, err) = verify(&unit.replace("NoNewPrivileges=", "NoNewPrivilege="));
    assert!(err.contains("NoNewPrivilege"), "{err}");
    // It goes in the package, beside the drop-in.
    let manifest = read("Cargo.toml");
    assert!(manifest.contains(
        r#"["scripts/systemd/keepalive-agent.service", "usr/share/doc/keepalive/", "644"]"#
    ));
}
