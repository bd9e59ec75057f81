//! The cgroups under CGROUP_DIR at start (and again if process events were
//! lost): every directory of the tree, parents before children.

use std::path::{Path, PathBuf};

/// Every cgroup below `top` (not `top` itself), parents first.
pub fn below(top: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![top.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue; // removed meanwhile
        };
        let mut children: Vec<PathBuf> = entries
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .map(|entry| entry.path())
            .collect();
        children.sort();
        found.extend(children.iter().cloned());
        pending.extend(children.into_iter().rev());
    }
    found
}

/// The processes in one cgroup (its own, not its children's).
pub fn processes(cgroup: &Path) -> Vec<i32> {
    std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .map(|text| text.lines().filter_map(|l| l.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_parents_before_children() {
        let top = std::env::temp_dir().join(format!("ka-tree-{}", std::process::id()));
        for dir in ["b/c", "a", "b/d/e"] {
            std::fs::create_dir_all(top.join(dir)).unwrap();
        }
        std::fs::write(top.join("a/cgroup.procs"), "1\n22\n").unwrap();
        let found: Vec<String> = below(&top)
            .iter()
            .map(|p| p.strip_prefix(&top).unwrap().display().to_string())
            .collect();
        let at = |name: &str| found.iter().position(|f| f == name).unwrap();
        assert_eq!(found.len(), 5, "{found:?}");
        assert!(at("b") < at("b/c") && at("b/d") < at("b/d/e"));
        assert_eq!(processes(&top.join("a")), [1, 22]);
        assert!(processes(&top.join("b")).is_empty());
        std::fs::remove_dir_all(&top).unwrap();
    }
}
