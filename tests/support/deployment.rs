//! Redis deployments for the failover tests, started from the `redis-server` binary on free
//! loopback ports: a Sentinel-managed primary with two replicas and three sentinels, and a
//! Cluster of three masters with a replica each. Every
//! process is private to the test, killable with SIGKILL, and killed (its files removed) on
//! drop. Waits are bounded.

use crate::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::TypedCommands;

use crate::PrivateRedis;

/// The master's name the sentinels watch.
pub const SENTINEL_MASTER: &str = "hcc";

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not come up on port {port}");
}

/// One `redis-server --sentinel` process.
struct SentinelProcess {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl SentinelProcess {
    fn start(primary_port: u16, quorum: u32) -> SentinelProcess {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("hcc-sentinel-{port}-{}", uuid::Uuid::new_v4().simple()));
        let _ = std::fs::create_dir_all(&dir);
        // Sentinels rewrite their configuration file, so each has its own.
        let conf = dir.join("sentinel.conf");
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary_port} {quorum}\n\
             sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\nsentinel failover-timeout {SENTINEL_MASTER} 5000\n\
             sentinel parallel-syncs {SENTINEL_MASTER} 1\n",
            dir.display()
        );
        if let Err(e) = std::fs::write(&conf, text) {
            panic!("cannot write {}: {e}", conf.display());
        }
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server --sentinel: {e}"));
        wait_port(port, "sentinel");
        SentinelProcess {
            port,
            dir,
            child: Some(child),
        }
    }
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A primary, two replicas and three sentinels (quorum 2).
pub struct SentinelDeployment {
    /// The data nodes; the first started as the primary.
    pub nodes: Vec<PrivateRedis>,
    sentinels: Vec<SentinelProcess>,
}

impl SentinelDeployment {
    /// Starts everything and waits until both replicas are in sync and every sentinel knows
    /// the replicas and the other sentinels (so a failover can be agreed on).
    pub fn start() -> SentinelDeployment {
        let primary = PrivateRedis::start();
        let port = primary.port.to_string();
        let replicas: Vec<PrivateRedis> = (0..2)
            .map(|_| PrivateRedis::start_with(&["--replicaof", "127.0.0.1", &port]))
            .collect();
        let mut nodes = vec![primary];
        nodes.extend(replicas);
        let sentinels = (0..3).map(|_| SentinelProcess::start(nodes[0].port, 2)).collect();
        let d = SentinelDeployment { nodes, sentinels };
        d.wait_until("both replicas in sync", Duration::from_secs(20), |d| {
            d.primary_port().is_some_and(|p| connected_replicas(p) >= 2)
        });
        d.wait_until("sentinels see each other and the replicas", Duration::from_secs(20), |d| {
            d.sentinels.iter().all(|s| {
                let info = info(s.port, "sentinel").unwrap_or_default();
                info.contains("slaves=2") && info.contains("sentinels=3")
            })
        });
        d
    }

    /// The sentinels' URLs, for `queue.redis_nodes`.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(|s| format!("redis://127.0.0.1:{}", s.port)).collect()
    }

    /// The port of the node that says it is the primary, if one does.
    pub fn primary_port(&self) -> Option<u16> {
        self.nodes
            .iter()
            .filter(|n| info(n.port, "replication").is_some_and(|i| i.contains("role:master")))
            .map(|n| n.port)
            .next()
    }

    /// SIGKILLs the current primary; returns its port.
    pub fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port().unwrap_or_else(|| panic!("no primary to kill"));
        if let Some(n) = self.nodes.iter_mut().find(|n| n.port == port) {
            n.kill();
        }
        port
    }

    /// Asks a sentinel for a failover while the primary is up (`SENTINEL FAILOVER`): the old
    /// primary stays alive and is demoted to a replica.
    pub fn demote_primary(&self) {
        use std::io::{Read, Write};
        let port = self.sentinels[0].port;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("sentinel {port}: {e}"));
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        s.write_all(format!("SENTINEL FAILOVER {SENTINEL_MASTER}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("sentinel {port}: {e}"));
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("+OK"), "SENTINEL FAILOVER answered {answer:?}");
    }

    /// Waits until `check` holds, polling; panics naming `what` after `limit`.
    pub fn wait_until(&self, what: &str, limit: Duration, check: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if check(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for: {what}");
    }
}

/// `INFO <section>` of the server on `port`, over a plain socket (no client state to share).
pub fn info(port: u16, section: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.write_all(format!("INFO {section}\r\n").as_bytes()).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    // A bulk string: `$<len>\r\n<body>\r\n`; read until the whole body is in.
    loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if let Some((head, body)) = text.split_once("\r\n")
            && let Some(len) = head.strip_prefix('$').and_then(|l| l.parse::<usize>().ok())
            && body.len() >= len
        {
            return Some(body[..len].to_string());
        }
    }
    None
}

/// Replicas the primary on `port` sees as online.
pub fn connected_replicas(port: u16) -> usize {
    info(port, "replication")
        .map(|i| i.lines().filter(|l| l.starts_with("slave") && l.contains("state=online")).count())
        .unwrap_or(0)
}

/// A Redis Cluster of three masters with one replica each.
pub struct ClusterDeployment {
    pub nodes: Vec<PrivateRedis>,
}

impl ClusterDeployment {
    pub fn start() -> ClusterDeployment {
        Self::start_with_node_timeout(2000)
    }

    /// A cluster whose nodes call a silent peer failed after `node_timeout_ms`
    /// (`cluster-node-timeout`), which bounds how soon a replica takes over.
    pub fn start_with_node_timeout(node_timeout_ms: u32) -> ClusterDeployment {
        let timeout = node_timeout_ms.to_string();
        let nodes: Vec<PrivateRedis> = (0..6)
            .map(|_| {
                PrivateRedis::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    &timeout,
                ])
            })
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run redis-cli --cluster create: {e}"));
        assert!(status.success(), "redis-cli --cluster create failed");
        let d = ClusterDeployment { nodes };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = d.nodes.iter().all(|n| info(n.port, "").is_some())
                && d.nodes.iter().all(|n| cluster_state_ok(n.port))
                && d.masters().len() == 3
                && d.masters().iter().all(|m| connected_replicas(*m) == 1);
            if ok {
                return d;
            }
            assert!(Instant::now() < deadline, "the cluster did not form");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Seed URLs, for `queue.redis_nodes`.
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes.iter().take(3).map(|n| format!("redis://127.0.0.1:{}", n.port)).collect()
    }

    /// The ports of the nodes that say they are masters.
    pub fn masters(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| info(n.port, "replication").is_some_and(|i| i.contains("role:master")))
            .map(|n| n.port)
            .collect()
    }

    /// The port of the (first) replica of the master on `port`.
    pub fn replica_of(&self, port: u16) -> Option<u16> {
        let i = info(port, "replication")?;
        let line = i.lines().find(|l| l.starts_with("slave0:"))?;
        line.split(',').find_map(|f| f.strip_prefix("port=")).and_then(|p| p.parse().ok())
    }

    /// SIGKILLs the node on `port`.
    pub fn kill(&mut self, port: u16) {
        if let Some(n) = self.nodes.iter_mut().find(|n| n.port == port) {
            n.kill();
        }
    }

    /// Starts the (killed) node on `port` again from its own files, as a supervisor would: it
    /// rejoins the cluster, as a replica if another node took its slots over.
    pub fn restart(&mut self, port: u16) {
        if let Some(n) = self.nodes.iter_mut().find(|n| n.port == port) {
            n.restart();
        }
    }

    /// The master serving the slot of hash tag `tag` (`{tag}`): the one that answers a read of
    /// a key in that slot instead of redirecting it (`MOVED`).
    pub fn owner_of(&self, tag: &str) -> Option<u16> {
        self.masters().into_iter().find(|m| {
            let Ok(mut c) = redis::Client::open(format!("redis://127.0.0.1:{m}")).and_then(|c| c.get_connection()) else {
                return false;
            };
            c.exists(format!("{{{tag}}}")).is_ok()
        })
    }

    /// Keys matching `pattern` on the node on `port` (`SCAN ... MATCH`).
    pub fn count_keys(&self, port: u16, pattern: &str) -> usize {
        let Ok(mut c) = redis::Client::open(format!("redis://127.0.0.1:{port}")).and_then(|c| c.get_connection()) else {
            return 0;
        };
        let keys: Vec<String> = c
            .scan_match(pattern)
            .map(|it| it.filter_map(Result::ok).collect())
            .unwrap_or_default();
        keys.len()
    }

    /// The masters holding a key that matches `pattern` (`SCAN ... MATCH`).
    pub fn masters_holding(&self, pattern: &str) -> Vec<u16> {
        self.masters()
            .into_iter()
            .filter(|m| {
                let Ok(mut c) = redis::Client::open(format!("redis://127.0.0.1:{m}")).and_then(|c| c.get_connection()) else {
                    return false;
                };
                let keys: Vec<String> = c
                    .scan_match(pattern)
                    .map(|it| it.filter_map(Result::ok).collect())
                    .unwrap_or_default();
                !keys.is_empty()
            })
            .collect()
    }
}

fn cluster_state_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"CLUSTER INFO\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).contains("cluster_state:ok")
}
