//! `hcc-demo --once` (the tools crate), the newcomer's first command, on both backends.

use std::process::Command;
use std::time::{Duration, Instant};

use hcc_tests::{binary, redis_url, workspace_dir};

fn demo(args: &[&str]) -> (bool, String) {
    let bin = binary("hcc-demo");
    assert!(
        bin.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        bin.display()
    );
    let started = Instant::now();
    let out = Command::new(bin)
        .args(["--once", "--dossiers", "60"])
        .args(args)
        .env("HCC_CONFIG_DIR", workspace_dir().join("config"))
        .env("HCC__SERVER__BIND", "127.0.0.1:0")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the demo: {e}"));
    assert!(started.elapsed() < Duration::from_secs(320));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn demo_once_passes_on_the_embedded_queue() {
    let (ok, out) = demo(&[]);
    assert!(ok, "demo failed:\n{out}");
    assert!(out.contains("memory (embedded, not durable)"));
    assert!(out.contains("kept (no status went backwards)"), "{out}");
}

#[test]
fn demo_once_passes_on_redis() {
    let (ok, out) = demo(&["--redis", &redis_url()]);
    assert!(ok, "demo failed:\n{out}");
    assert!(out.contains("queue backend : redis"));
}
