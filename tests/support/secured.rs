//! Redis deployments as a data centre runs them, for the tests of `queue.redis_username`,
//! `queue.redis_password`, `queue.sentinel_password` and `queue.redis_ca`: `redis-server`
//! processes on free loopback ports that admit only an ACL user (the default user off), or
//! speak only TLS with certificates from a private CA made here with the `openssl` CLI. One
//! server, a primary with one sentinel, or a cluster of three masters. Every process is private
//! to the test and killed (its files removed) on drop; waits are bounded.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// The ACL user the data nodes admit, and its password.
pub const USER: &str = "hcc-gateway";
pub const PASSWORD: &str = "data-node-s3cret-9f2c";
/// The sentinels' own `requirepass`.
pub const SENTINEL_PASSWORD: &str = "sentinel-s3cret-41d7";
/// The master's name the sentinel watches.
pub const MASTER: &str = "hcc";

/// How the nodes are secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Only [`USER`] with [`PASSWORD`] (sentinels: [`SENTINEL_PASSWORD`]); plain TCP.
    Acl,
    /// TLS only, certificates from [`Pki::ca`]; no password.
    Tls,
}

/// A private CA, a server certificate it signed for `127.0.0.1`, and an unrelated CA that
/// signed nothing here (the "untrusted" one).
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn generate() -> Pki {
        let dir = std::env::temp_dir().join(format!("hcc-redis-pki-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let pki = Pki { dir };
        std::fs::write(pki.path("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap_or_else(|e| panic!("{e}"));
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for ca in ["ca", "other-ca"] {
            pki.openssl(&["req", "-x509", "-days", "2", "-subj", &format!("/CN=hcc test {ca}")], &ec, ca);
        }
        pki.openssl(&["req", "-subj", "/CN=127.0.0.1"], &ec, "server-csr");
        let status = Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(pki.path("server-csr.crt"))
            .arg("-CA")
            .arg(pki.ca())
            .arg("-CAkey")
            .arg(pki.path("ca.key"))
            .arg("-extfile")
            .arg(pki.path("server.ext"))
            .arg("-out")
            .arg(pki.path("server.crt"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
        assert!(status.success(), "openssl x509 -req failed");
        pki
    }

    /// `openssl <args> <key args> -keyout <name>.key -out <name>.crt`.
    fn openssl(&self, args: &[&str], key: &[&str], name: &str) {
        let status = Command::new("openssl")
            .args(args)
            .args(key)
            .arg("-keyout")
            .arg(self.path(&format!("{name}.key")))
            .arg("-out")
            .arg(self.path(&format!("{name}.crt")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
        assert!(status.success(), "openssl {args:?} failed");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The CA that signed the servers' certificate, for `queue.redis_ca`.
    pub fn ca(&self) -> PathBuf {
        self.path("ca.crt")
    }

    /// A CA that signed nothing here.
    pub fn other_ca(&self) -> PathBuf {
        self.path("other-ca.crt")
    }

    /// The `redis-server` options of a TLS-only server on `port` (no client certificates).
    fn server_args(&self, port: u16) -> Vec<String> {
        let p = |n: &str| self.path(n).display().to_string();
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &p("server.crt"),
            "--tls-key-file",
            &p("server-csr.key"),
            "--tls-ca-cert-file",
            &p("ca.crt"),
            "--tls-auth-clients",
            "no",
            "--tls-replication",
            "yes",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `redis-server` process.
struct Node {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// Starts `redis-server` with `conf` written as its configuration file (sentinels rewrite
    /// theirs, so each node has its own) plus `args`, and waits until its port takes
    /// connections.
    fn start(port: u16, conf: &str, args: &[String]) -> Node {
        let dir = std::env::temp_dir().join(format!("hcc-secured-{port}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let file = dir.join("redis.conf");
        std::fs::write(&file, format!("bind 127.0.0.1\ndir {}\n{conf}", dir.display())).unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new("redis-server")
            .arg(&file)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        let node = Node {
            port,
            dir,
            child: Some(child),
        };
        wait_port(port);
        node
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server did not come up on port {port}");
}

/// A secured deployment: data nodes, sentinels (sentinel mode), and the PKI (TLS).
pub struct Secured {
    nodes: Vec<Node>,
    sentinels: Vec<Node>,
    pub pki: Option<Pki>,
    guard: Guard,
}

/// A data node's configuration: the ACL user with the default user off, or TLS.
fn data_node(guard: Guard, pki: Option<&Pki>, port: u16, extra: &[&str]) -> Node {
    let (conf, mut args) = match (guard, pki) {
        (Guard::Tls, Some(pki)) => (String::new(), pki.server_args(port)),
        _ => (
            format!("port {port}\nuser default off\nuser {USER} on >{PASSWORD} ~* &* +@all\n"),
            Vec::new(),
        ),
    };
    args.extend(extra.iter().map(|s| s.to_string()));
    Node::start(port, &conf, &args)
}

impl Secured {
    fn new(guard: Guard) -> Secured {
        Secured {
            nodes: Vec::new(),
            sentinels: Vec::new(),
            pki: (guard == Guard::Tls).then(Pki::generate),
            guard,
        }
    }

    /// One server.
    pub fn standalone(guard: Guard) -> Secured {
        let mut s = Secured::new(guard);
        s.nodes.push(data_node(guard, s.pki.as_ref(), free_port(), &[]));
        s
    }

    /// A primary watched by one sentinel (quorum 1), which logs in to the primary as
    /// [`USER`] (`sentinel auth-user`/`auth-pass`) and has its own [`SENTINEL_PASSWORD`], or
    /// speaks TLS to clients and to the primary.
    pub fn sentinel(guard: Guard) -> Secured {
        let mut s = Secured::new(guard);
        let primary = free_port();
        s.nodes.push(data_node(guard, s.pki.as_ref(), primary, &[]));
        let port = free_port();
        let watch = format!("sentinel monitor {MASTER} 127.0.0.1 {primary} 1\nsentinel down-after-milliseconds {MASTER} 5000\n");
        let (conf, args) = match (guard, s.pki.as_ref()) {
            (Guard::Tls, Some(pki)) => (watch, pki.server_args(port)),
            _ => (
                format!(
                    "port {port}\n{watch}sentinel auth-user {MASTER} {USER}\nsentinel auth-pass {MASTER} {PASSWORD}\nrequirepass {SENTINEL_PASSWORD}\n"
                ),
                Vec::new(),
            ),
        };
        let mut args = args;
        args.push("--sentinel".into());
        s.sentinels.push(Node::start(port, &conf, &args));
        s
    }

    /// Three masters, no replicas, the slots spread by `redis-cli --cluster create`.
    pub fn cluster(guard: Guard) -> Secured {
        let mut s = Secured::new(guard);
        for _ in 0..3 {
            // The bus port is given: the default (port + 10000) may not exist for a high port.
            let bus = free_port().to_string();
            let mut extra = vec!["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"];
            extra.extend(["--cluster-node-timeout", "2000", "--cluster-port", &bus]);
            if guard == Guard::Tls {
                extra.extend(["--tls-cluster", "yes"]);
            }
            s.nodes.push(data_node(guard, s.pki.as_ref(), free_port(), &extra));
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        create.args(s.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        s.cli_access(&mut create);
        let status = create
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run redis-cli --cluster create: {e}"));
        assert!(status.success(), "redis-cli --cluster create failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s
            .nodes
            .iter()
            .all(|n| s.cli(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "the cluster did not form");
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// `redis-cli`'s options to log in or to speak TLS.
    fn cli_access(&self, cmd: &mut Command) {
        match (self.guard, self.pki.as_ref()) {
            (Guard::Tls, Some(pki)) => {
                cmd.arg("--tls").arg("--cacert").arg(pki.ca());
            }
            _ => {
                cmd.args(["--user", USER, "--pass", PASSWORD, "--no-auth-warning"]);
            }
        }
    }

    /// A command's output from `redis-cli` on the node at `port` (empty on failure).
    fn cli(&self, port: u16, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
        self.cli_access(&mut cmd);
        cmd.args(args)
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn scheme(&self) -> &'static str {
        match self.guard {
            Guard::Tls => "rediss",
            Guard::Acl => "redis",
        }
    }

    fn urls(&self, nodes: &[Node]) -> String {
        nodes
            .iter()
            .map(|n| format!("{}://127.0.0.1:{}", self.scheme(), n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The `HCC__QUEUE__...` settings that point a gateway at this deployment, without any
    /// credential or CA (the tests add those).
    pub fn queue_vars(&self) -> Vec<(&'static str, String)> {
        if !self.sentinels.is_empty() {
            vec![
                ("HCC__QUEUE__REDIS_MODE", "sentinel".into()),
                ("HCC__QUEUE__REDIS_NODES", self.urls(&self.sentinels)),
                ("HCC__QUEUE__SENTINEL_MASTER", MASTER.into()),
            ]
        } else if self.nodes.len() > 1 {
            vec![
                ("HCC__QUEUE__REDIS_MODE", "cluster".into()),
                ("HCC__QUEUE__REDIS_NODES", self.urls(&self.nodes)),
            ]
        } else {
            vec![
                ("HCC__QUEUE__REDIS_MODE", "standalone".into()),
                ("HCC__QUEUE__REDIS_URL", format!("{}/0", self.urls(&self.nodes))),
            ]
        }
    }

    /// Keys under `prefix` on every data node, read with `redis-cli` as the user or over TLS.
    pub fn count_keys(&self, prefix: &str) -> usize {
        self.nodes
            .iter()
            .map(|n| self.cli(n.port, &["--scan", "--pattern", &format!("{prefix}:*")]).lines().count())
            .sum()
    }
}
