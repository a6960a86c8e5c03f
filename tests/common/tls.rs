//! A certificate for `localhost` made at test time, as PEM files.

use std::path::{Path, PathBuf};

pub struct TestCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate, DER-encoded (for a client that trusts exactly it).
    pub der: Vec<u8>,
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written into `dir` as
/// `<name>.crt` and `<name>.key`.
pub fn self_signed(dir: &Path, name: &str) -> TestCert {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("a test certificate");
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, made.cert.pem()).expect("certificate written");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("key written");
    TestCert {
        cert,
        key,
        der: made.cert.der().to_vec(),
    }
}
