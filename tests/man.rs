//! The manual pages under man/ are generated from the tools' clap definitions
//! (`cmr::cli::commands()`). This test regenerates each and fails when the file differs;
//! `CMR_BLESS=1 cargo test --test man` rewrites them.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn generated_pages_are_up_to_date() {
    let bless = std::env::var_os("CMR_BLESS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for cmd in cmr::cli::commands() {
        let name = cmd.get_name().to_string();
        let page = cmr::cli::man::render(cmd);
        assert!(
            page.contains(&format!(".TH {name} 1")),
            "{name}: not a section 1 page"
        );
        let path = root().join("man").join(format!("{name}.1"));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != page {
            if bless {
                std::fs::write(&path, &page).unwrap();
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "man pages out of date (regenerate with CMR_BLESS=1 cargo test --test man): {stale:?}"
    );
}

fn binaries() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("src/bin"))
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().ok()?;
            Some(n.strip_prefix("cmr-")?.strip_suffix(".rs")?.to_string())
        })
        .map(|t| format!("cmr-{t}"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_tool_has_a_page_and_is_listed() {
    let listed: Vec<String> = cmr::cli::commands()
        .iter()
        .map(|c| c.get_name().to_string())
        .collect();
    let bins = binaries();
    assert!(bins.len() >= 2, "{bins:?}");
    for b in &bins {
        assert!(
            listed.contains(b),
            "src/bin/{b}.rs: its command() is missing from cli::commands()"
        );
        assert!(
            Path::new(&root().join("man").join(format!("{b}.1"))).is_file(),
            "man/{b}.1 missing"
        );
    }
    for l in &listed {
        assert!(
            bins.contains(l),
            "cli::commands() lists {l}, which has no src/bin/{l}.rs"
        );
    }
}

#[test]
fn the_overview_names_every_tool() {
    let overview = std::fs::read_to_string(root().join("man/cmr.7")).unwrap();
    assert!(overview.starts_with(".TH CMR 7"));
    for b in binaries() {
        let roff = b.replace('-', "\\-");
        assert!(overview.contains(&roff), "man/cmr.7 does not mention {b}");
    }
}
