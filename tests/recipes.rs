//! The recipes users copy from README.md and the man pages, run or checked
//! as they are written: every systemd unit shown passes
//! `systemd-analyze verify` and names the package's path of the command;
//! the `/etc/environment` recipe gives one valid variable per line; the
//! paths of both the package and `install.sh` are given; the README's
//! 30-second check works when pasted; its `--check` sample is what the
//! command prints.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(file: &str) -> String {
    std::fs::read_to_string(repo().join(file)).unwrap()
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("recipes")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A man page's text as a reader copies it: the escapes of roff undone.
fn unroff(line: &str) -> String {
    line.replace("\\-", "-")
        .replace("\\%", "")
        .replace("\\(aq", "'")
        .replace("\\en", "\\n")
        .replace("\\e", "\\")
}

/// Every block of a document that is a unit or a drop-in: from a
/// `[Service]` or `[Unit]` line to the end of the example (a blank or
/// unindented line in Markdown, `.EE` in roff).
fn unit_blocks(text: &str, roff: bool) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for raw in text.lines() {
        let line = if roff {
            unroff(raw)
        } else {
            raw.strip_prefix("    ").unwrap_or("").to_string()
        };
        let ends = if roff {
            raw.starts_with(".EE")
        } else {
            !raw.starts_with("    ") || raw.trim().is_empty()
        };
        if let Some(block) = current.as_mut() {
            if ends {
                blocks.push(current.take().unwrap().join("\n"));
            } else {
                block.push(line);
            }
        } else if matches!(line.trim(), "[Service]" | "[Unit]") {
            current = Some(vec![line]);
        }
    }
    blocks
}

/// `systemd-analyze verify` of `unit` (named `name`) beside a sample
/// service; the package's command path stands for the built one (it is
/// not installed on the test machine). Returns the exit code and stderr.
fn verify(name: &str, unit: &str, keepalive: &Path) -> (Option<i32>, String) {
    let units = scratch(&format!("units-{}", name.replace('@', "_")));
    std::fs::write(
        units.join("sample.service"),
        "[Unit]\nDescription=sample\n\n[Service]\nExecStart=/bin/sleep infinity\n",
    )
    .unwrap();
    let unit = unit.replace("/usr/bin/keepalive", keepalive.to_str().unwrap());
    let (file, checked) = if name.ends_with("@.service") {
        (name.to_string(), name.replace("@.", "@sample."))
    } else if unit.contains("[Unit]") {
        (name.to_string(), name.to_string())
    } else {
        // A drop-in: the sample service with it.
        std::fs::create_dir_all(units.join("sample.service.d")).unwrap();
        std::fs::write(units.join("sample.service.d/recipe.conf"), &unit).unwrap();
        let (code, err) = analyze(&units, "sample.service");
        return (code, err);
    };
    std::fs::write(units.join(file), &unit).unwrap();
    analyze(&units, &checked)
}

fn analyze(units: &Path, unit: &str) -> (Option<i32>, String) {
    let output = Command::new("systemd-analyze")
        .env("SYSTEMD_UNIT_PATH", format!("{}:", units.display()))
        .args(["verify", "--man=no"])
        .arg(units.join(unit))
        .output()
        .expect("systemd-analyze: apt-get install -y systemd");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn every_unit_the_docs_show_verifies_and_names_the_packages_command() {
    let keepalive = common::keepalive_command();
    let mut units: Vec<(String, String)> = Vec::new();
    for (file, roff) in [
        ("README.md", false),
        ("man/keepalive.1", true),
        ("man/libkeepalive.8", true),
    ] {
        for (i, block) in unit_blocks(&read(file), roff).into_iter().enumerate() {
            units.push((format!("{file} example {}", i + 1), block));
        }
    }
    let shown = units.len();
    assert!(shown >= 4, "{units:?}");
    units.push((
        "keepalive-attach@.service".into(),
        read("scripts/systemd/keepalive-attach@.service"),
    ));
    for (name, unit) in &units {
        // The command as the package installs it (install.sh's
        // /usr/local/bin is named beside, in the text).
        let commands = unit
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("bin/keepalive"));
        for line in commands {
            assert!(
                line.contains("/usr/bin/keepalive") && !line.contains("/usr/local/bin"),
                "{name}: {line}"
            );
        }
        // Cgroups found by unit name, not by a path that differs between
        // pure v2, hybrid and template units.
        assert!(!unit.contains("/sys/fs/cgroup"), "{name}:\n{unit}");
        let file_name = if name.ends_with("@.service") {
            name.clone()
        } else if unit.contains("[Unit]") {
            "recipe.service".to_string()
        } else {
            "drop-in".to_string()
        };
        let (code, err) = verify(&file_name, unit, keepalive);
        assert_eq!((code, err.as_str()), (Some(0), ""), "{name}:\n{unit}");
    }
    // Control: a misspelt key in the template is reported.
    let template = read("scripts/systemd/keepalive-attach@.service");
    let broken = template.replace("RemainAfterExit=", "RemainAfterExitt=");
    let (_, err) = verify("keepalive-attach@.service", &broken, keepalive);
    assert!(err.contains("RemainAfterExitt"), "{err}");
}

#[test]
fn the_etc_environment_recipe_gives_one_valid_variable_per_line() {
    let page = read("man/libkeepalive.8");
    let section = page
        .split(".SS Only the daemon, with /etc/ld.so.preload")
        .nth(1)
        .expect("libkeepalive.8 has the /etc/ld.so.preload recipe");
    let recipe: Vec<String> = section
        .lines()
        .skip_while(|l| !l.starts_with(".EX"))
        .skip(1)
        .take_while(|l| !l.starts_with(".EE"))
        .map(unroff)
        .collect();
    assert!(!recipe.is_empty(), "{section}");
    let dir = scratch("environment");
    let script = recipe
        .join("\n")
        .replace(
            "/etc/environment",
            dir.join("environment").to_str().unwrap(),
        )
        .replace(
            "/etc/ld.so.preload",
            dir.join("ld.so.preload").to_str().unwrap(),
        );
    let status = Command::new("sh").args(["-c", &script]).status().unwrap();
    assert!(status.success(), "{script}");
    let environment = std::fs::read_to_string(dir.join("environment")).unwrap();
    // pam_env reads NAME=VALUE per line; the value is the rest of the line.
    let lines: Vec<&str> = environment.lines().collect();
    assert_eq!(lines.len(), 2, "{environment}");
    for line in lines {
        let (name, value) = line.split_once('=').unwrap();
        let mut cmd = common::command(common::keepalive_command(), false, &[(name, value)]);
        cmd.arg("--check");
        let output = common::run(cmd, DEADLINE);
        assert_eq!(output.status.code(), Some(0), "{line}: {output:?}");
    }
    let preload = std::fs::read_to_string(dir.join("ld.so.preload")).unwrap();
    assert_eq!(preload, "/usr/lib/libkeepalive.so\n");
}

#[test]
fn the_docs_give_the_paths_of_the_package_and_of_install_sh() {
    for file in ["README.md", "man/keepalive.1", "man/libkeepalive.8"] {
        let text = unroff(&read(file));
        for path in ["/usr/bin/keepalive", "/usr/local/bin/keepalive"] {
            assert!(text.contains(path), "{file} lacks {path}");
        }
    }
    for file in ["README.md", "man/libkeepalive.8"] {
        let text = unroff(&read(file));
        for path in ["/usr/lib/libkeepalive.so", "/usr/local/lib/libkeepalive.so"] {
            assert!(text.contains(path), "{file} lacks {path}");
        }
    }
    // Debian 11 and 12 use the unified hierarchy, not a hybrid one.
    let readme = read("README.md");
    assert!(!readme.contains("Hybrid hosts\n(Debian 11/12 by default)"));
    assert!(!readme.contains("(Debian 11/12 by default)"), "README");
}

/// The README's `--check` sample is what the command prints (the library's
/// path and the kernel's defaults aside, which differ by machine).
#[test]
fn the_readmes_check_sample_is_current() {
    let readme = read("README.md");
    let sample: Vec<&str> = readme
        .split("    $ KEEPINTVL=10 keepalive --idle 1m --check\n")
        .nth(1)
        .expect("README has the --check sample")
        .lines()
        .take_while(|l| l.starts_with("    "))
        .map(|l| l.trim_start())
        .collect();
    let mut cmd = common::command(common::keepalive_command(), false, &[("KEEPINTVL", "10")]);
    cmd.args(["--idle", "1m", "--check"]);
    let output = common::run(cmd, DEADLINE);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let printed = common::stdout(&output);
    let label = |line: &str| line.split("  ").next().unwrap().to_string();
    let labels = |lines: &mut dyn Iterator<Item = &str>| lines.map(label).collect::<Vec<_>>();
    assert_eq!(
        labels(&mut sample.iter().copied()),
        labels(&mut printed.lines())
    );
    let machine_specific = ["library", "systemd", "count", "user-timeout", "loads"];
    for (shown, real) in sample.iter().zip(printed.lines()) {
        if !machine_specific.contains(&label(shown).as_str()) {
            assert_eq!(*shown, real);
        }
    }
}

/// The README's 30-second check, pasted into a shell as it is: in a network
/// namespace of its own (its port is then free), with the library's and the
/// command's paths as built here. The client's connection shows the timer.
#[test]
fn the_readmes_30_second_check_works_when_pasted() {
    let readme = read("README.md");
    let block: Vec<&str> = readme
        .split("## Check that it works (30 seconds)\n\n")
        .nth(1)
        .expect("README has the 30-second check")
        .lines()
        .take_while(|l| l.starts_with("    "))
        .map(|l| l.trim_start())
        .collect();
    assert!(block.iter().any(|l| l.starts_with("nc -l")), "{block:?}");
    let library = common::library();
    let command = common::keepalive_command();
    let script = format!(
        "ip link set lo up\nexport PATH={}:$PATH KEEPALIVE_LIB={}\n{}\n",
        command.parent().unwrap().display(),
        library.display(),
        block.join("\n").replace(
            "LD_PRELOAD=libkeepalive.so",
            &format!("LD_PRELOAD={}", library.display())
        )
    );
    // Five times: the race it had (the client before the listener) lost
    // now and then.
    for _ in 0..5 {
        let mut cmd = common::command("unshare", false, &[]);
        // bash, as a user's shell: it knows %1 without job control.
        cmd.args(["--net", "bash", "-c", &script]);
        let output: Output = common::run(cmd, DEADLINE);
        let out = common::stdout(&output);
        assert!(
            out.contains("timer:(keepalive,"),
            "{out}\n{}",
            common::stderr(&output)
        );
    }
}
