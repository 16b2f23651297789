//! SoftHSM2 for the tests: a private configuration and token folder in a scratch directory,
//! tokens initialised and keys imported with `softhsm2-util`, keys generated inside a token and
//! inspected with `pkcs11-tool` (OpenSC), the outside tools. Nothing here sets this process's
//! environment: SoftHSM reads `SOFTHSM2_CONF` once, in `C_Initialize`, and the variable is
//! process-wide, so every process that opens these tokens (the tools, a gateway, a test run
//! again as a child) is started with [`SoftHsm::command`], which gives it the variable.
//!
//! This file uses only `std`, so the signing crate's tests take it by `#[path]` too. A missing
//! tool or module fails the test that needs it (see `scripts/test.sh`), it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The user PIN of every test token (not a secret: a test fixture).
pub const USER_PIN: &str = "246810";
/// The security officer's PIN of every test token.
pub const SO_PIN: &str = "97531-so";

/// A private SoftHSM: its `softhsm2.conf` and token folder under `dir`, removed on drop by
/// the one that made it.
pub struct SoftHsm {
    pub dir: PathBuf,
    pub conf: PathBuf,
    tokens: PathBuf,
    owned: bool,
}

/// Where Debian and other distributions put the SoftHSM2 module; `HCC_SOFTHSM_MODULE` first.
pub fn module_path() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("HCC_SOFTHSM_MODULE").map(PathBuf::from).into_iter().collect();
    candidates.extend(
        [
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
            "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
            "/usr/local/lib/softhsm/libsofthsm2.so",
            "/usr/lib64/pkcs11/libsofthsm2.so",
        ]
        .map(PathBuf::from),
    );
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("libsofthsm2.so not found: install softhsm2 (scripts/test.sh) or set HCC_SOFTHSM_MODULE"))
}

impl SoftHsm {
    /// A fresh SoftHSM with no token yet.
    pub fn fresh() -> SoftHsm {
        let mut tag = [0u8; 8];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut tag))
            .unwrap();
        let dir = std::env::temp_dir().join(format!("hcc-softhsm-{:016x}", u64::from_le_bytes(tag)));
        let mut hsm = SoftHsm::at(&dir);
        hsm.owned = true;
        hsm
    }

    /// The SoftHSM in `dir`, made there if it is not yet (a child process finds its parent's),
    /// left in place on drop.
    pub fn at(dir: &Path) -> SoftHsm {
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        if !conf.is_file() {
            std::fs::write(
                &conf,
                format!(
                    "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                    tokens.display()
                ),
            )
            .unwrap();
        }
        SoftHsm {
            dir: dir.to_path_buf(),
            conf,
            tokens,
            owned: false,
        }
    }

    /// `program` with this SoftHSM's configuration in its environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("SOFTHSM2_CONF", &self.conf);
        c
    }

    /// Runs a tool against this SoftHSM: whether it succeeded, and what it printed.
    pub fn run(&self, program: &str, args: &[&str]) -> (bool, String) {
        let out = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} (install softhsm2 and opensc: scripts/test.sh): {e}"));
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    fn must(&self, program: &str, args: &[&str]) -> String {
        let (ok, log) = self.run(program, args);
        assert!(ok, "{program} {args:?} failed: {log}");
        log
    }

    /// Initialises a token labelled `label` in the free slot, with [`USER_PIN`] and [`SO_PIN`].
    pub fn init_token(&self, label: &str) {
        self.must(
            "softhsm2-util",
            &["--init-token", "--free", "--label", label, "--pin", USER_PIN, "--so-pin", SO_PIN],
        );
    }

    /// Imports a PKCS#8 PEM private key into `token` under `label` and `id` (hex).
    /// `softhsm2-util` stores it sensitive and not extractable.
    pub fn import_key(&self, token: &str, key_pem: &Path, label: &str, id: &str) {
        self.must(
            "softhsm2-util",
            &[
                "--import",
                key_pem.to_str().unwrap(),
                "--token",
                token,
                "--label",
                label,
                "--id",
                id,
                "--pin",
                USER_PIN,
            ],
        );
    }

    fn tool(&self, token: &str, args: &[&str]) -> (bool, String) {
        let module = module_path();
        let mut all = vec!["--module", module.to_str().unwrap(), "--token-label", token];
        all.extend_from_slice(args);
        self.run("pkcs11-tool", &all)
    }

    /// Generates a key pair inside `token` with `pkcs11-tool` (`EC:prime256v1`, `rsa:2048`...),
    /// private half sensitive, and extractable only if asked; returns its public key, DER.
    pub fn generate_key(&self, token: &str, key_type: &str, label: &str, id: &str, extractable: bool) -> Vec<u8> {
        let mut args = vec![
            "--login",
            "--pin",
            USER_PIN,
            "--keypairgen",
            "--key-type",
            key_type,
            "--label",
            label,
            "--id",
            id,
            "--usage-sign",
            "--sensitive",
        ];
        if extractable {
            args.push("--extractable");
        }
        let (ok, log) = self.tool(token, &args);
        assert!(ok, "pkcs11-tool --keypairgen failed: {log}");
        let out = self.dir.join(format!("{label}.pub.der"));
        let (ok, log) = self.tool(
            token,
            &[
                "--read-object",
                "--type",
                "pubkey",
                "--label",
                label,
                "--output-file",
                out.to_str().unwrap(),
            ],
        );
        assert!(ok, "pkcs11-tool --read-object failed: {log}");
        std::fs::read(out).unwrap()
    }

    /// `pkcs11-tool`'s `Access:` line for the private key `label` in `token` (for example
    /// `sensitive, always sensitive, never extractable, local`).
    pub fn private_key_access(&self, token: &str, label: &str) -> String {
        let (ok, log) = self.tool(token, &["--login", "--pin", USER_PIN, "--list-objects", "--type", "privkey"]);
        assert!(ok, "pkcs11-tool --list-objects failed: {log}");
        let mut in_key = false;
        for line in log.lines() {
            let t = line.trim();
            if t.starts_with("Private Key Object") {
                in_key = false;
            } else if let Some(l) = t.strip_prefix("label:") {
                in_key = l.trim() == label;
            } else if let Some(access) = t.strip_prefix("Access:")
                && in_key
            {
                return access.trim().to_string();
            }
        }
        panic!("no private key labelled {label} in {log}")
    }

    /// The folder holding `token`'s files (SoftHSM names it by a UUID; its `token.object` holds
    /// the label).
    pub fn token_dir(&self, token: &str) -> PathBuf {
        let padded = format!("{token:<32}");
        std::fs::read_dir(&self.tokens)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|d| {
                std::fs::read(d.join("token.object"))
                    .map(|b| b.windows(32).any(|w| w == padded.as_bytes()))
                    .unwrap_or(false)
            })
            .unwrap_or_else(|| panic!("no folder for token {token} in {}", self.tokens.display()))
    }

    /// Marks `token`'s user PIN locked, as a token does after too many wrong PINs. SoftHSM
    /// counts no failures, so the flag is set where SoftHSM keeps it: the `CKA_OS_TOKENFLAGS`
    /// attribute (vendor 0x8000534B, an unsigned long) in `token.object`, whose records are
    /// 8-byte big-endian type, kind (2: unsigned long) and value. `C_GetTokenInfo` then reports
    /// `CKF_USER_PIN_LOCKED`, which `pkcs11-tool -L` confirms here.
    pub fn lock_user_pin(&self, token: &str) {
        const CKF_USER_PIN_LOCKED: u64 = 1 << 18;
        let file = self.token_dir(token).join("token.object");
        let mut bytes = std::fs::read(&file).unwrap();
        let mut record = 0x8000_534Bu64.to_be_bytes().to_vec();
        record.extend_from_slice(&2u64.to_be_bytes());
        let at = bytes
            .windows(16)
            .position(|w| w == record.as_slice())
            .unwrap_or_else(|| panic!("no token flags in {}", file.display()))
            + 16;
        let flags = u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap()) | CKF_USER_PIN_LOCKED;
        bytes[at..at + 8].copy_from_slice(&flags.to_be_bytes());
        std::fs::write(&file, bytes).unwrap();
        let module = module_path();
        let log = self.must("pkcs11-tool", &["--module", module.to_str().unwrap(), "--list-token-slots"]);
        assert!(log.contains("user PIN locked"), "the token does not report a locked PIN: {log}");
    }
}

impl Drop for SoftHsm {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
