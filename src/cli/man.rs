//! Manual pages rendered from the tools' clap definitions (`man/<tool>.1`).
//! `tests/man.rs` regenerates every page and fails when one differs from the file;
//! `CMR_BLESS=1 cargo test --test man` rewrites them.

/// The roff source of a section 1 page for `cmd`.
pub fn render(cmd: clap::Command) -> String {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .expect("rendering to memory cannot fail");
    String::from_utf8_lossy(&out).into_owned()
}
