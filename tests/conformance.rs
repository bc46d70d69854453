//! Every vector in conformance/MANIFEST.tsv, through the library and through the tools.
//! Expectations come from the manifest; nothing here restates them.

mod common;
use cmr::sign::{self, Key, Scheme};
use cmr::wire::{self, Rules};
use common::*;

/// Words of the note and of the file name that an error naming the defect should use:
/// words of four letters or more, and upper-case abbreviations (CR, LF).
fn significant_words(v: &Vector) -> Vec<String> {
    const STOP: &[&str] = &[
        "must", "with", "than", "that", "this", "have", "only", "from", "after", "says", "fewer",
        "still", "same", "line", "lines", "byte", "bytes", "input", "single", "message", "invalid",
        "valid", "includes", "another",
    ];
    let stem = v.file.rsplit('/').next().unwrap().trim_end_matches(".msg");
    let mut words: Vec<String> = Vec::new();
    for w in format!("{stem} {}", v.note).split(|c: char| !c.is_ascii_alphanumeric()) {
        let acronym = w.len() >= 2 && w.chars().all(|c| c.is_ascii_uppercase());
        let l = w.to_ascii_lowercase();
        if (acronym || w.len() >= 4) && !STOP.contains(&l.as_str()) && !words.contains(&l) {
            words.push(l);
        }
    }
    words
}

fn names_the_defect(v: &Vector, error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    let tokens: Vec<&str> = e.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    significant_words(v).iter().any(|w| {
        if w.len() < 4 {
            tokens.contains(&w.as_str())
        } else {
            e.contains(w.as_str())
                || (w.len() > 4 && w.ends_with('s') && e.contains(&w[..w.len() - 1]))
        }
    })
}

fn scheme_key(v: &Vector) -> Option<(Scheme, Key)> {
    let s: Scheme = v.scheme.as_ref()?.parse().unwrap();
    let k = Key::from_hex(v.key_hex.as_deref().expect("a scheme needs a key")).unwrap();
    Some((s, k))
}

#[test]
fn manifest_is_complete() {
    let m = manifest();
    assert!(m.iter().filter(|v| v.valid).count() >= 5);
    assert!(m.iter().filter(|v| !v.valid).count() >= 10);
    for v in &m {
        assert!(v.path().is_file(), "{} listed but missing", v.file);
        if !v.valid {
            assert!(
                !significant_words(v).is_empty(),
                "{}: nothing to check the error against",
                v.file
            );
        }
    }
}

#[test]
fn library_accepts_valid_and_rejects_invalid_naming_the_defect() {
    for v in manifest() {
        let bytes = v.bytes();
        let parsed = wire::parse(&bytes, &Rules::default());
        if v.valid {
            let m = parsed.unwrap_or_else(|e| panic!("{}: {e}", v.file));
            assert_eq!(m.encode(), bytes, "{}: encode(parse(x)) != x", v.file);
            if let Some((s, k)) = scheme_key(&v) {
                sign::verify(&m, s, &k).unwrap_or_else(|e| panic!("{}: {e}", v.file));
            }
            continue;
        }
        let error = match (parsed, scheme_key(&v)) {
            (Err(e), _) => {
                // Errors carry a position inside the input.
                assert!(e.offset <= bytes.len() && e.line >= 1, "{}: {e:?}", v.file);
                e.defect.to_string()
            }
            (Ok(m), Some((s, k))) => match sign::verify(&m, s, &k) {
                Err(e) => e.to_string(),
                Ok(()) => panic!("{}: parsed and verified, but is listed invalid", v.file),
            },
            (Ok(_), None) => panic!("{}: parsed, but is listed invalid", v.file),
        };
        assert!(
            names_the_defect(&v, &error),
            "{}: error {error:?} names none of {:?}",
            v.file,
            significant_words(&v)
        );
    }
}

#[test]
fn stream_reader_agrees_on_every_vector() {
    // Each file alone as a stream: the same verdict as parse (trailing bytes aside, which
    // a stream reads as the start of a next message).
    for v in manifest() {
        let bytes = v.bytes();
        let items: Vec<_> = wire::Reader::new(&bytes[..], Rules::default()).collect();
        if v.valid {
            assert_eq!(items.len(), 1, "{}", v.file);
            assert_eq!(items[0].as_ref().unwrap().encode(), bytes, "{}", v.file);
        } else if wire::parse_prefix(&bytes, &Rules::default()).is_err() {
            assert!(items.iter().any(|i| i.is_err()), "{}", v.file);
        }
    }
}

#[test]
fn cmr_parse_exit_codes_and_errors() {
    for v in manifest() {
        let path = v.path();
        let p = path.to_str().unwrap();
        let out = run(PARSE, &[p], b"");
        let lib = wire::parse(&v.bytes(), &Rules::default());
        match lib {
            Ok(_) => {
                assert_eq!(code(&out), 0, "{}: {}", v.file, stderr(&out));
                assert!(stdout(&out).contains("valid A2"), "{}", v.file);
            }
            Err(e) => {
                assert_eq!(code(&out), 65, "{}: {}", v.file, stderr(&out));
                let err = stderr(&out);
                assert_eq!(err.lines().count(), 1, "{}: {err}", v.file);
                let want = format!("cmr-parse: {p}: line {}, byte {}: ", e.line, e.offset);
                assert!(err.starts_with(&want), "{}: {err:?} vs {want:?}", v.file);
                assert!(names_the_defect(&v, &err), "{}: {err}", v.file);
                assert!(out.stdout.is_empty(), "{}", v.file);
            }
        }
    }
}

#[test]
fn cmr_sign_verify_on_every_signed_vector() {
    let mut checked = 0;
    for v in manifest() {
        let (Some(scheme), Some(key)) = (&v.scheme, &v.key_hex) else {
            continue;
        };
        let path = v.path();
        let args = [
            "--verify",
            "--scheme",
            scheme,
            "--key-hex",
            key,
            path.to_str().unwrap(),
        ];
        let out = run(SIGN, &args, b"");
        let want = if v.valid {
            0
        } else if wire::parse(&v.bytes(), &Rules::default()).is_err() {
            65
        } else {
            77
        };
        assert_eq!(code(&out), want, "{}: {}", v.file, stderr(&out));
        if want != 0 {
            assert!(
                names_the_defect(&v, &stderr(&out)),
                "{}: {}",
                v.file,
                stderr(&out)
            );
        }
        checked += 1;
    }
    assert!(checked >= 3);
}
