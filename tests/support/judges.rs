//! Outside judges of the VietQR codes: `zbarimg` (Debian `zbar-tools`) reads a PNG back to its
//! text, and the npm package `vietnam-qr-pay` (`tests/judges/vietqr/decode.js`, pinned in its
//! `package-lock.json`) decodes a payload. Neither shares code with the gateway or the mocks.
//!
//! A judge that is not installed makes its helper answer `None` after saying so, and the test
//! skips; under `scripts/test.sh`, which installs both and sets `HCC_REQUIRE_TOOLS=1`, a missing
//! judge fails the test instead. A judge that is installed but fails to run is a test failure.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::workspace_dir;

/// How long one run of a judge may take.
const JUDGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a judge can run; a panic when it cannot and the suite requires it.
fn available(what: &str, found: bool) -> bool {
    if !found {
        if std::env::var("HCC_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
            panic!("{what} is required (HCC_REQUIRE_TOOLS=1): scripts/test.sh installs it");
        }
        eprintln!("{what} is not installed: skipped (scripts/test.sh installs it)");
    }
    found
}

/// Runs `cmd` to completion within [`JUDGE_TIMEOUT`]: (success, stdout, stderr).
fn run(mut cmd: Command) -> (bool, Vec<u8>, String) {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    // Read both pipes on their own threads so that a full pipe cannot stall the child.
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + JUDGE_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the judge") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} took longer than {JUDGE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap_or_default();
    let err = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    (status.success(), out, err)
}

/// The text of the one QR code in `png`, exactly as `zbarimg --raw -q` reads it (its trailing
/// newline removed); `None` when zbarimg is not installed (the test then skips). Panics when
/// zbarimg finds no code or cannot read the image.
pub fn zbar_decode(png: &[u8]) -> Option<String> {
    let found = Command::new("zbarimg").arg("--version").output().is_ok_and(|o| o.status.success());
    if !available("zbarimg (Debian zbar-tools)", found) {
        return None;
    }
    let path = std::env::temp_dir().join(format!("hcc-zbar-{}.png", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let mut cmd = Command::new("zbarimg");
    cmd.args(["--raw", "-q"]).arg(&path);
    let (ok, out, err) = run(cmd);
    let _ = std::fs::remove_file(&path);
    assert!(ok, "zbarimg found no QR code in the image: {err}");
    let mut text = String::from_utf8(out).unwrap_or_else(|e| panic!("zbarimg printed something not UTF-8: {e}"));
    if text.ends_with('\n') {
        text.pop();
    }
    Some(text)
}

fn judge_dir() -> PathBuf {
    workspace_dir().join("tests/judges/vietqr")
}

/// What the npm package vietnam-qr-pay reads from `payload` (`tests/judges/vietqr/decode.js`):
/// `{"valid", "crc_ok", "crc", "version", "init_method", "provider", "guid", "service",
/// "bank_bin", "account", "amount", "currency", "nation", "merchant_name", "city", "purpose",
/// "bill_number", "reference"}`, strings or null (`amount` too is a string, as the package
/// keeps it). `None` when node or the package is not installed (the test then skips).
pub fn vietqr_judge(payload: &str) -> Option<serde_json::Value> {
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let package = judge_dir().join("node_modules/vietnam-qr-pay/package.json").is_file();
    if !available("node with vietnam-qr-pay (npm ci in tests/judges/vietqr)", node && package) {
        return None;
    }
    let mut cmd = Command::new("node");
    cmd.arg("decode.js").arg(payload).current_dir(judge_dir());
    let (ok, out, err) = run(cmd);
    assert!(ok, "the vietnam-qr-pay judge failed: {err}");
    Some(
        serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("the vietnam-qr-pay judge printed no JSON ({e}): {}", String::from_utf8_lossy(&out))),
    )
}
