//! The layering rules, checked from the sources (no root, no build): which crate may depend on
//! which, and which files import each other in a cycle.
//!
//! The crate rules are ARCHITECTURE.md's: berth-state depends on nothing of berth's, netsetup
//! only on berth-state, berth-cni on those two, the mechanism (berth-container) only on
//! berth-state and never on a command-line parser. No two files may import each other, directly or
//! through others (found over `crate::` and `super::` paths).
//!
//! What it does not see: a path into a crate's root module (`crate::Error`, a re-export), which
//! nearly every file names, so that an item defined in `lib.rs` or `main.rs` and the files
//! it calls can form a cycle unseen; cycles of more than four files; `self::` paths and groups
//! nested in groups; anything after a file's first `#[cfg(test)]`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The workspace's crates: package name and directory.
const CRATES: &[(&str, &str)] = &[
    ("berth", "runtime/berth"),
    ("berth-container", "runtime/container"),
    ("berth-state", "runtime/state"),
    ("netsetup", "netsetup"),
    ("berth-cni", "netsetup/cni"),
];

/// For each crate, the crates of berth's it may depend on (its `[dependencies]`).
const MAY_DEPEND_ON: &[(&str, &[&str])] = &[
    ("berth", &["berth-container", "berth-state", "netsetup"]),
    ("berth-container", &["berth-state"]),
    ("berth-state", &[]),
    ("netsetup", &["berth-state"]),
    ("berth-cni", &["berth-state", "netsetup"]),
];

/// Crates from outside that a crate of berth's must not use: the mechanism takes a plan, never
/// a command line.
const MUST_NOT_USE: &[(&str, &[&str])] = &[("berth-container", &["clap", "clap_complete"])];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The names in `[dependencies]` of the manifest in `dir`.
fn dependencies(dir: &str) -> BTreeSet<String> {
    let manifest = fs::read_to_string(workspace().join(dir).join("Cargo.toml")).unwrap();
    let mut names = BTreeSet::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[dependencies]";
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap();
            names.insert(name.to_owned());
        }
    }
    names
}

#[test]
fn crates_depend_only_as_the_architecture_allows() {
    let ours: BTreeSet<&str> = CRATES.iter().map(|(name, _)| *name).collect();
    let mut broken = Vec::new();
    for (name, dir) in CRATES {
        let allowed = MAY_DEPEND_ON.iter().find(|(n, _)| n == name).unwrap().1;
        for dependency in dependencies(dir) {
            if ours.contains(dependency.as_str()) && !allowed.contains(&dependency.as_str()) {
                broken.push(format!("{name} depends on {dependency}"));
            }
        }
    }
    for (name, forbidden) in MUST_NOT_USE {
        let dir = CRATES.iter().find(|(n, _)| n == name).unwrap().1;
        for dependency in dependencies(dir) {
            if forbidden.contains(&dependency.as_str()) {
                broken.push(format!("{name} depends on {dependency}"));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken: {broken:?}");
}

/// Every `.rs` file under `dir/src` by its module path (`a::b`; the root is "").
fn modules(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.join("src")];
    while let Some(at) = pending.pop() {
        for entry in fs::read_dir(&at).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(dir.join("src")).unwrap();
                let mut parts: Vec<String> = relative
                    .with_extension("")
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    parts.pop();
                }
                found.insert(parts.join("::"), path);
            }
        }
    }
    found
}

/// The module paths that `source` names after `crate::` or `super::` (with `use crate::{a, b}`
/// groups opened one level), relative to the crate root.
fn named_paths(source: &str, module: &str) -> Vec<String> {
    let parent: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
    let mut paths = Vec::new();
    for (prefix, base) in
        [("crate::", Vec::new()), ("super::", parent[..parent.len().saturating_sub(1)].to_vec())]
    {
        let mut rest = source;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let take = |text: &str| -> String {
                text.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect()
            };
            let head = take(rest);
            let joined = |tail: &str| {
                let mut parts = base.clone();
                parts.extend(tail.split("::").filter(|p| !p.is_empty()));
                parts.join("::")
            };
            if head.ends_with("::") || head.is_empty() {
                // A group: `crate::a::{b, c::d}`.
                let after = &rest[head.len()..];
                if let Some(group) = after.strip_prefix('{') {
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    for item in group.split(',') {
                        paths.push(joined(&format!("{head}{}", take(item.trim()))));
                    }
                    continue;
                }
            }
            paths.push(joined(&head));
        }
    }
    paths
}

/// The module of `modules` that `path` lands in: its longest prefix that is one.
fn resolve<'a>(path: &str, modules: &'a BTreeMap<String, PathBuf>) -> Option<&'a str> {
    let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find_map(|prefix| modules.get_key_value(&prefix).map(|(k, _)| k.as_str()))
}

/// The elementary cycles of `graph` up to `longest` files, each from its smallest member.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>, longest: usize) -> BTreeSet<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        longest: usize,
        found: &mut BTreeSet<Vec<String>>,
    ) {
        let start = path[0].clone();
        let last = path.last().unwrap().clone();
        for next in graph.get(&last).into_iter().flatten() {
            if *next == start && path.len() > 1 {
                found.insert(path.clone());
            } else if *next > start && !path.contains(next) && path.len() < longest {
                path.push(next.clone());
                walk(graph, path, longest, found);
                path.pop();
            }
        }
    }
    let mut found = BTreeSet::new();
    for start in graph.keys() {
        walk(graph, &mut vec![start.clone()], longest, &mut found);
    }
    found
}

/// Which file imports which: `crate::module` names, over every crate of `CRATES`.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, dir) in CRATES {
        let modules = modules(&workspace().join(dir));
        for (module, path) in &modules {
            let source = fs::read_to_string(path).unwrap();
            // Tests may reach anywhere.
            let source = source.split("#[cfg(test)]").next().unwrap();
            for named in named_paths(source, module) {
                match resolve(&named, &modules) {
                    // A module's own items, or its parent's `mod` list: no edge.
                    Some(to) if to != module && !to.is_empty() => {
                        graph
                            .entry(format!("{name}::{module}"))
                            .or_default()
                            .insert(format!("{name}::{to}"));
                    }
                    _ => {}
                }
            }
        }
    }
    graph
}

#[test]
fn no_command_imports_another() {
    let graph = import_graph();
    let commands = "berth::commands::";
    let mut broken = Vec::new();
    for (from, to) in graph.iter().flat_map(|(from, tos)| tos.iter().map(move |to| (from, to))) {
        // The table printer is the commands' own, not a command.
        if from.starts_with(commands) && to.starts_with(commands) && to != "berth::commands::table"
        {
            broken.push(format!("{from} -> {to}"));
        }
    }
    assert!(broken.is_empty(), "commands import each other: {broken:?}");
}

#[test]
fn no_files_import_each_other_in_a_cycle() {
    let found = cycles(&import_graph(), 4);
    assert!(found.is_empty(), "files import each other in a cycle: {found:?}");
}
