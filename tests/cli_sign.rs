//! cmr-sign as a user runs it: sign, verify, strip, keys, exit codes.

mod common;
use common::*;

fn spec_path() -> String {
    conformance()
        .join("valid/appendix-a-spec-signed.msg")
        .to_str()
        .unwrap()
        .to_string()
}

fn wrong_path() -> String {
    conformance()
        .join("invalid/wrong-signature.msg")
        .to_str()
        .unwrap()
        .to_string()
}

const FOO: [&str; 4] = ["--scheme", "sha256", "--key-hex", "666f6f"];

#[test]
fn verify_spec_vector_and_wrong_signature() {
    let mut a = vec!["--verify"];
    a.extend(FOO);
    let spec = spec_path();
    let o = run(SIGN, &[&a[..], &[spec.as_str()]].concat(), b"");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());

    let wrong = wrong_path();
    let o = run(SIGN, &[&a[..], &[wrong.as_str()]].concat(), b"");
    assert_eq!(code(&o), 77);
    assert_eq!(
        stderr(&o),
        format!(
            "cmr-sign: {wrong}: signature refused (sha256): signature does not match: \
             wrong key, wrong scheme, or the message was altered\n"
        )
    );
    // The right key under the other scheme fails too.
    let o = run(SIGN, &["--verify", "--key-hex", "666f6f", &spec], b"");
    assert_eq!(code(&o), 77);
    assert!(stderr(&o).contains("(hmac-sha256)"));
}

#[test]
fn strip_then_sign_reproduces_the_spec_signature_line() {
    let o = run(SIGN, &["--strip", &spec_path()], b"");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let unsigned = o.stdout;
    assert!(unsigned.starts_with(b"0\r\n2008/09/01 00:00:53.42 http://alice.com/cmr\r\n"));
    assert_eq!(&unsigned[3..], &spec_signed()[67..]);

    let o = run(SIGN, &FOO, &unsigned);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        &o.stdout[..67],
        b"101c1ad32d6fe646a56edba43bd342ee11e45ba188c59aeec91a5590a0ea114d5\r\n"
    );
    assert_eq!(o.stdout, spec_signed());
}

#[test]
fn printf_composed_appendix_message_signs_to_the_spec_bytes() {
    let unsigned = b"0\r\n2008/09/01 00:00:53.42 http://alice.com/cmr\r\n2008/09/01 00:00:53 udp://192.168.0.102:53/dns-tunnel\r\n2008/08/31 23:59:01.0955 https://www.charlie.com/messages.pl\r\n\r\n14\r\nHello World!\r\n";
    let o = run(SIGN, &FOO, unsigned);
    assert_eq!(o.stdout, spec_signed());
}

#[test]
fn default_scheme_is_hmac_and_resigning_replaces_the_line() {
    let hmac = std::fs::read(conformance().join("valid/appendix-a-hmac-signed.msg")).unwrap();
    // Re-sign the spec-signed message with HMAC (the default).
    let o = run(SIGN, &["--key-hex", "666f6f"], &spec_signed());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(o.stdout, hmac);
    let o = run(SIGN, &["--verify", "--key-hex", "666f6f", "-"], &hmac);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn key_file_hex_or_raw() {
    let dir = tempfile::tempdir().unwrap();
    let k = |name: &str, content: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_string()
    };
    let spec = spec_path();
    for (name, content) in [
        ("hex", &b"666f6f"[..]),
        ("hexlf", b"666F6F\n"),
        ("hexcrlf", b"666f6f\r\n"),
        ("raw", b"foo"),
    ] {
        let f = k(name, content);
        let o = run(
            SIGN,
            &["--verify", "--scheme", "sha256", "--key-file", &f, &spec],
            b"",
        );
        assert_eq!(code(&o), 0, "{name}: {}", stderr(&o));
    }
    // "foo\n" is not hex, so it is the raw 4-byte key "foo\n": a different key.
    let f = k("rawlf", b"foo\n");
    let o = run(
        SIGN,
        &["--verify", "--scheme", "sha256", "--key-file", &f, &spec],
        b"",
    );
    assert_eq!(code(&o), 77);
    let f = k("odd", b"666f6\n");
    let o = run(SIGN, &["--key-file", &f, &spec], b"");
    assert_eq!(code(&o), 64);
    assert!(
        stderr(&o).contains("odd number of hex digits"),
        "{}",
        stderr(&o)
    );
    let o = run(SIGN, &["--key-file", "/nonexistent/key", &spec], b"");
    assert_eq!(code(&o), 66);
    assert!(
        stderr(&o).starts_with("cmr-sign: /nonexistent/key: "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn usage_errors_are_64() {
    let spec = spec_path();
    for args in [
        &[spec.as_str()][..],                                       // no key
        &["--verify", spec.as_str()],                               // no key
        &["--key-hex", "zz", spec.as_str()],                        // not hex
        &["--key-hex", "", spec.as_str()],                          // empty key
        &["--key-hex", "666f6f", "--scheme", "md5", spec.as_str()], // unknown scheme
        &["--verify", "--strip", spec.as_str()],                    // conflict
        &["--key-hex", "66", "--key-file", "/x", spec.as_str()],    // conflict
    ] {
        let o = run(SIGN, args, b"");
        assert_eq!(code(&o), 64, "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty());
        assert!(!o.stderr.is_empty());
    }
    let o = run(SIGN, &[&spec], b"");
    assert_eq!(
        stderr(&o),
        "cmr-sign: a key is required: --key-hex HEX or --key-file PATH (or use --strip)\n"
    );
}

#[test]
fn malformed_and_missing_input() {
    let o = run(
        SIGN,
        &["--key-hex", "666f6f"],
        b"0\r\n2010/02/30 00:00:00 x\r\n\r\n0\r\n",
    );
    assert_eq!(code(&o), 65);
    assert_eq!(
        stderr(&o),
        "cmr-sign: stdin: line 2, byte 11: timestamp is not a valid date\n"
    );
    let o = run(SIGN, &["--strip"], b"");
    assert_eq!(code(&o), 66);
    let o = run(SIGN, &["--strip", "/nonexistent/m"], b"");
    assert_eq!(code(&o), 66);
}

#[test]
fn verify_unsigned_is_77() {
    let o = run(SIGN, &["--strip", &spec_path()], b"");
    let o = run(SIGN, &["--verify", "--key-hex", "666f6f"], &o.stdout);
    assert_eq!(code(&o), 77);
    assert!(stderr(&o).contains("message is unsigned"), "{}", stderr(&o));
}
