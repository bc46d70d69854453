//! The library's top-level modules stand on each other in one direction (the layering at
//! the top of src/lib.rs): no import cycle between them. Reads the sources; a `crate::X`
//! path (or `crate::{X, ...}`) in module A outside its tests is an edge A -> X.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Module names a line refers to through `crate::`.
fn crate_refs(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + 7..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.push(name);
            }
        } else {
            out.push(
                after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
        rest = after;
    }
    out
}

/// Edges between top-level modules, each with one place that makes it.
fn graph(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut modules = BTreeSet::new();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        if name != "lib" && name != "bin" && name != "main" {
            modules.insert(name);
        }
    }
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if !modules.contains(&top) {
            continue; // lib.rs, src/bin
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (n, line) in code.lines().enumerate() {
            let t = line.trim_start();
            if t.starts_with("//") {
                continue;
            }
            for m in crate_refs(t) {
                if m != top && modules.contains(&m) {
                    g.entry(top.clone())
                        .or_default()
                        .entry(m)
                        .or_insert_with(|| format!("{}:{}", rel.display(), n + 1));
                }
            }
        }
        g.entry(top).or_default();
    }
    g
}

/// A cycle through `start`, if there is one (depth-first search).
fn cycle_from(
    g: &BTreeMap<String, BTreeMap<String, String>>,
    start: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    let here = path.last().unwrap().clone();
    for next in g.get(&here).map(|m| m.keys()).into_iter().flatten() {
        if next == start {
            let mut c = path.clone();
            c.push(next.clone());
            return Some(c);
        }
        if !path.contains(next) {
            path.push(next.clone());
            if let Some(c) = cycle_from(g, start, path) {
                return Some(c);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    assert!(g.len() > 5, "read the modules: {g:?}");
    for m in g.keys() {
        if let Some(c) = cycle_from(&g, m, &mut vec![m.clone()]) {
            let steps: Vec<String> = c
                .windows(2)
                .map(|w| format!("{} -> {} ({})", w[0], w[1], g[&w[0]][&w[1]]))
                .collect();
            panic!(
                "import cycle between top-level modules:\n  {}\nsee the layering at the top of src/lib.rs",
                steps.join("\n  ")
            );
        }
    }
}

#[test]
fn the_checker_sees_grouped_imports_and_cycles() {
    assert_eq!(
        crate_refs("use crate::{exit::Failure, state, wire::Message};"),
        ["exit", "state", "wire"]
    );
    assert_eq!(
        crate_refs("x = crate::route::f(crate::wire::g)"),
        ["route", "wire"]
    );
    let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    g.entry("a".into())
        .or_default()
        .insert("b".into(), "a.rs:1".into());
    g.entry("b".into())
        .or_default()
        .insert("a".into(), "b.rs:1".into());
    assert!(cycle_from(&g, "a", &mut vec!["a".into()]).is_some());
    g.get_mut("b").unwrap().clear();
    assert!(cycle_from(&g, "a", &mut vec!["a".into()]).is_none());
}
