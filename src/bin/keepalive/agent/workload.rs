//! What the agent learns about a process: its cgroup, its executable's
//! name, its pod (`HOSTNAME`) and our variables from its environment.
//! Nothing else of the environment is kept: the entries are filtered as
//! they are read, and the buffer is cleared before it is freed.

use keepalive_core::variables::{Setting, VARIABLES};

/// One process, as far as the agent cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub pid: i32,
    /// Its cgroup v2 path (the `0::` line of /proc/PID/cgroup).
    pub cgroup: String,
    /// Its executable's base name.
    pub executable: String,
    /// `HOSTNAME`: a Kubernetes pod's name.
    pub pod: Option<String>,
    /// Our variables, first entry of a name winning as in getenv.
    pub variables: Variables,
}

/// Our variables as a process has them, in the order of `VARIABLES`.
pub type Variables = Vec<(&'static str, Vec<u8>)>;

/// Reads what the agent needs of `pid` if its cgroup is `wanted`; None if
/// not, or if it is gone or unreadable. The environment is read last.
pub fn read(pid: i32, wanted: impl Fn(&str) -> bool) -> Option<Workload> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let cgroup = crate::bpf::cgroup::own_path(&cgroup)?;
    if !wanted(&cgroup) {
        return None;
    }
    let executable = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
        .or_else(|| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            Some(comm.trim_end().to_string())
        })?;
    let mut environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let (variables, pod) = ours(&environ);
    environ.fill(0);
    Some(Workload {
        pid,
        cgroup,
        executable,
        pod,
        variables,
    })
}

/// Our variables and `HOSTNAME` out of an environ block (NUL-separated
/// NAME=VALUE entries); every other entry is skipped unread.
pub fn ours(environ: &[u8]) -> (Variables, Option<String>) {
    let mut variables: Variables = Vec::new();
    let mut pod = None;
    for entry in environ.split(|&b| b == 0) {
        let Some(eq) = entry.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (&entry[..eq], &entry[eq + 1..]);
        if name == b"HOSTNAME" {
            pod.get_or_insert_with(|| String::from_utf8_lossy(value).into_owned());
            continue;
        }
        if let Some(&(known, _)) = VARIABLES.iter().find(|(n, _)| n.as_bytes() == name) {
            if !variables.iter().any(|(n, _)| *n == known) {
                variables.push((known, value.to_vec()));
            }
        }
    }
    variables.sort_by_key(|(name, _)| VARIABLES.iter().position(|(n, _)| n == name));
    (variables, pod)
}

/// Whether the variables ask for anything: debug switches and the program
/// list (which the kernel-side mode does not use) alone do not.
pub fn has_settings(variables: &Variables) -> bool {
    variables.iter().any(|(name, _)| {
        VARIABLES
            .iter()
            .find(|(n, _)| n == name)
            .is_some_and(|(_, setting)| !matches!(setting, Setting::Debug | Setting::Programs))
    })
}

/// `KEEPIDLE=60 KEEPALIVE=off`: the variables as the log shows them.
pub fn describe(variables: &Variables) -> String {
    if variables.is_empty() {
        return "the library's defaults".to_string();
    }
    let words: Vec<String> = variables
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value);
            if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '"') {
                format!("{name}={value:?}")
            } else {
                format!("{name}={value}")
            }
        })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_variables_and_the_pod_are_kept() {
        let environ = b"PATH=/bin\0SECRET_TOKEN=abc\0KEEPCNT=3\0HOSTNAME=web-7d9\0\
KEEPIDLE=60\0KEEPIDLE=99\0NOEQUALS\0KEEPALIVE_RULES=*:off; net=10.0.0.0/8:on\0";
        let (variables, pod) = ours(environ);
        assert_eq!(pod.as_deref(), Some("web-7d9"));
        assert_eq!(
            describe(&variables),
            "KEEPIDLE=60 KEEPCNT=3 KEEPALIVE_RULES=\"*:off; net=10.0.0.0/8:on\""
        );
        assert!(has_settings(&variables));
        let (none, pod) = ours(b"PATH=/bin\0KEEPALIVE_DEBUG=1\0");
        assert_eq!(pod, None);
        assert!(!has_settings(&none));
        assert_eq!(describe(&Vec::new()), "the library's defaults");
    }
}
