//! A throw-away network namespace whose own `lo` carries extra addresses (10.99.0.1, 10.99.0.2,
//! ...), for clients that refuse loopback peers: Transmission 3.00 never dials a 127.0.0.0/8
//! peer it learned from a tracker.
//!
//! Inside the namespace nothing reaches the host's network or any other namespace; two tests
//! can use the same addresses at once because each gets its own namespace, named
//! `shoal-<pid>-<n>`. Processes run in it through [`Netns::command`] (`ip netns exec`, which
//! execs the program, so killing the child kills the program). Clones share the namespace; the
//! last one dropped deletes it, so a client that holds a clone keeps its namespace alive.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use anyhow::{ensure, Context, Result};

/// A network namespace, deleted when the last clone drops.
#[derive(Debug, Clone)]
pub struct Netns {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    addrs: Vec<Ipv4Addr>,
}

impl Netns {
    /// A namespace with `lo` up and 10.99.0.1 .. 10.99.0.`hosts` (each /32) on it.
    pub fn with_hosts(hosts: u8) -> Result<Netns> {
        let addrs: Vec<Ipv4Addr> = (1..=hosts).map(|h| Ipv4Addr::new(10, 99, 0, h)).collect();
        Netns::new(&addrs)
    }

    /// A namespace with `lo` up and each of `addrs` (as /32) on it, besides 127.0.0.1.
    pub fn new(addrs: &[Ipv4Addr]) -> Result<Netns> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("shoal-{}-{n}", std::process::id());
        // A namespace left by a crashed run of the same pid would make `add` fail.
        let _ = Command::new("ip").args(["netns", "delete", &name]).output();
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns {
            inner: Arc::new(Inner {
                name: name.clone(),
                addrs: addrs.to_vec(),
            }),
        };
        run(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]))?;
        for addr in addrs {
            let cidr = format!("{addr}/32");
            run(Command::new("ip").args(["-n", &name, "addr", "add", &cidr, "dev", "lo"]))?;
        }
        Ok(ns)
    }

    /// The namespace's name (as `ip netns list` shows it).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The extra addresses on the namespace's `lo`.
    pub fn addrs(&self) -> &[Ipv4Addr] {
        &self.inner.addrs
    }

    /// The `i`th extra address (0-based); panics if the namespace has fewer.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        self.inner.addrs[i]
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.inner.name, program]);
        cmd
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

/// A command in the namespace when there is one, on the host otherwise.
pub fn command_in(netns: Option<&Netns>, program: &str) -> Command {
    match netns {
        Some(ns) => ns.command(program),
        None => Command::new(program),
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// True once something accepts TCP connections on `addr` (seen from inside `netns` when given).
pub fn tcp_accepts(netns: Option<&Netns>, addr: std::net::SocketAddr) -> bool {
    match netns {
        None => std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
            .is_ok(),
        Some(ns) => {
            let probe = format!("exec 3<>/dev/tcp/{}/{}", addr.ip(), addr.port());
            ns.command("bash")
                .args(["-c", &probe])
                .output()
                .is_ok_and(|o| o.status.success())
        }
    }
}
