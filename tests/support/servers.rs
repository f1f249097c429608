//! Storage emulators for the tests: moto (S3) and Azurite (Azure Blob), each started on a
//! free loopback port and killed when its guard drops, panics included.
//!
//! The tools come from `make venv` (moto in `.venv`) and `make tools` (Azurite in
//! `.tools`); a missing tool fails the test with the command to run, never skips it.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Azurite's well-known development account and key (public, documented by Microsoft).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Credentials moto accepts (it checks none).
pub const MOTO_KEY_ID: &str = "testing-key-id";
pub const MOTO_SECRET: &str = "testing-secret";
pub const MOTO_REGION: &str = "eu-west-1";

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running emulator; dropping it kills the process and removes its data.
pub struct Server {
    child: Child,
    port: u16,
    name: &'static str,
    log: PathBuf,
    // Dropped after `child` is killed (fields drop after `Drop::drop`).
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Azurite's blob endpoint for the dev account (path-style).
    pub fn azurite_blob_endpoint(&self) -> String {
        format!("{}/{AZURITE_ACCOUNT}", self.endpoint())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Creates an S3 bucket on moto (moto takes unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = http(self.port, "PUT", &format!("/{bucket}"), &[]);
        assert_eq!(status, 200, "create bucket {bucket}: {body}");
    }

    /// Creates a blob container on Azurite, signed with the dev account's shared key.
    pub fn create_container(&self, container: &str) {
        let path = format!("/{AZURITE_ACCOUNT}/{container}");
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let version = "2021-08-06";
        // Shared Key string-to-sign: verb, 11 empty standard headers, x-ms-* headers, then
        // the canonical resource (account + URL path) and the query parameters.
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
             /{AZURITE_ACCOUNT}{path}\nrestype:container"
        );
        let key = base64_decode(AZURITE_KEY);
        let sig = base64_encode(&hmac_sha256(&key, to_sign.as_bytes()));
        let auth = format!("SharedKey {AZURITE_ACCOUNT}:{sig}");
        let (status, body) = http(
            self.port,
            "PUT",
            &format!("{path}?restype=container"),
            &[
                ("x-ms-date", &date),
                ("x-ms-version", version),
                ("Authorization", &auth),
            ],
        );
        assert_eq!(status, 201, "create container {container}: {body}");
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require(exe: &Path, make_target: &str) {
    assert!(
        exe.exists(),
        "{} is missing: run `make {make_target}` first (make test does)",
        exe.display()
    );
}

/// moto's S3 server (`moto[server]` from `.venv`).
pub fn moto() -> Server {
    let exe = repo().join(".venv/bin/moto_server");
    require(&exe, "venv");
    start("moto", "ListAllMyBucketsResult", |port, _dir| {
        let mut c = Command::new(&exe);
        c.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        c
    })
}

/// Azurite's blob service (`azurite` from npm, in `.tools`).
pub fn azurite() -> Server {
    let exe = repo().join(".tools/node_modules/.bin/azurite-blob");
    require(&exe, "tools");
    start("azurite", "Azurite-Blob", |port, _dir| {
        let mut c = Command::new(&exe);
        c.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--skipApiVersionCheck", "--loose"]);
        c
    })
}

/// Starts `make(port, scratch_dir)` until it answers with `marker` in a `GET /` response. A
/// port taken between probing and binding makes the server exit; then another port is tried.
fn start(name: &'static str, marker: &str, make: impl Fn(u16, &Path) -> Command) -> Server {
    let mut last = String::new();
    for _attempt in 0..3 {
        let dir = tempfile::tempdir().expect("temp dir for the emulator");
        let log = dir.path().join("server.log");
        let out = File::create(&log).expect("emulator log file");
        let port = free_port();
        let child = make(port, dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut server = Server {
            child,
            port,
            name,
            log,
            _dir: dir,
        };
        match server.wait_ready(marker) {
            Ok(()) => return server,
            Err(why) => last = format!("{why}\n--- {name} log ---\n{}", server.log_text()),
        }
    }
    panic!("{name} did not start: {last}");
}

impl Server {
    fn wait_ready(&mut self, marker: &str) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{} exited with {status}", self.name));
            }
            if let Ok((_, text)) = try_http(self.port, "GET", "/", &[])
                && text.contains(marker)
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "{} did not answer within {START_TIMEOUT:?}",
            self.name
        ))
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("an ephemeral loopback port")
        .port()
}

fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    try_http(port, method, path, headers)
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

/// One HTTP/1.0 request with an empty body; returns the status and the whole response.
fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req =
        format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, text))
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |x: u8| block.iter().map(|b| b ^ x).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&b| b == c).expect("base64 alphabet") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_and_hmac_match_known_values() {
    assert_eq!(base64_encode(&base64_decode(AZURITE_KEY)), AZURITE_KEY);
    assert_eq!(base64_decode(AZURITE_KEY).len(), 64);
    assert_eq!(base64_encode(b"ab"), "YWI=");
    assert_eq!(base64_encode(b"abc"), "YWJj");
    // RFC 4231, test case 2.
    assert_eq!(
        hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
