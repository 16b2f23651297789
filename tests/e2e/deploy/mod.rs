//! The deployment files of `deploy/` (issue 29), judged by the tools operators load them with
//! and against a live gateway:
//! - the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`),
//!   and every alert has a test where it fires and one where it stays quiet;
//! - the Grafana dashboard is importable (a `DS_PROMETHEUS` input, every panel on it) and each
//!   of its queries is PromQL that promtool accepts;
//! - every metric the rules and the dashboard name, with every label they select or group by,
//!   is one a live gateway (a portal, payments, a bank, the evidence log on) exports on
//!   `/metrics`;
//! - the systemd unit passes `systemd-analyze verify` with no warning, keeps its hardening,
//!   gives the gateway time for its graceful stop, and its environment example is a valid
//!   production configuration with no secret in it.
//!
//! promtool comes with Debian's `prometheus`, systemd-analyze with `systemd`. A missing tool
//! skips its test, except under `scripts/test.sh`, which installs both and sets
//! `HCC_REQUIRE_TOOLS=1`: there it is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use hcc_tests::*;

mod promql;
mod rules;
mod systemd;

pub(super) fn deploy_dir() -> PathBuf {
    workspace_dir().join("deploy")
}

pub(super) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A folder of its own under the system's temporary folder, removed when dropped.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("hcc-deploy-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `tool` runs (`tool arg` succeeds); a panic when it does not and the suite requires it.
pub(super) fn tool_available(tool: &str, arg: &str, package: &str) -> bool {
    let found = Command::new(tool).arg(arg).output().is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("HCC_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
            panic!("{tool} is required (HCC_REQUIRE_TOOLS=1): scripts/test.sh installs it (Debian {package})");
        }
        eprintln!("{tool} is not installed (Debian {package}): skipped (scripts/test.sh installs it)");
    }
    found
}

/// Runs `cmd` to its end: (success, stdout, stderr).
pub(super) fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// alerts.yml, read line by line (the file is written in one shape: `- alert:` entries whose
// `expr:` is a block scalar or one line); the reading is checked against promtool's own count.
