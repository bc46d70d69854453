//! Manual pages rendered from the tools' clap definitions (`man/<tool>.1`).
//! `tests/man.rs` regenerates every page and fails when one differs from the file;
//! `CMR_BLESS=1 cargo test --test man` rewrites them.

/// The roff source of a section 1 page for `cmd`: clap_mangen's page, with the examples
/// (the command's `after_help`) kept as written and a SEE ALSO section naming cmr(7) and
/// the other tools.
pub fn render(cmd: clap::Command) -> String {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .expect("rendering to memory cannot fail");
    let page = String::from_utf8_lossy(&out).into_owned();

    // The after_help text is preformatted (aligned examples): no filling.
    let page = match page.split_once(".SH EXTRA\n") {
        Some((head, rest)) => {
            let (extra, tail) = match rest.find("\n.SH ") {
                Some(i) => (&rest[..=i], &rest[i + 1..]),
                None => (rest, ""),
            };
            let extra = extra.strip_prefix("Examples:\n").unwrap_or(extra);
            format!("{head}.SH EXAMPLES\n.nf\n{extra}.fi\n{tail}")
        }
        None => page,
    };

    let mut see = vec![r"\fBcmr\fR(7)".to_string()];
    for c in super::commands() {
        if c.get_name() != name {
            see.push(format!(r"\fB{}\fR(1)", c.get_name().replace('-', r"\-")));
        }
    }
    format!("{page}.SH \"SEE ALSO\"\n{}\n", see.join(", "))
}
