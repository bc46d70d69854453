//! Command-line front ends. Each tool has one module here holding its clap definition and
//! its `main`; `src/bin/cmr-*.rs` only calls that `main`. Keeping the clap definitions in
//! the library lets `man/` be generated from them and checked against `--help`.

use crate::exit::Failure;
use std::io::Read;

/// Read a whole input named on the command line: a path, or `-` for stdin.
/// A missing file is EX_NOINPUT (66); the error names the path.
pub fn read_input(path: &str) -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    if path == "-" {
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::from(e).context("reading standard input"))?;
    } else {
        buf = std::fs::read(path).map_err(|e| Failure::from(e).context(path))?;
    }
    Ok(buf)
}

pub mod recv;
pub mod send;
