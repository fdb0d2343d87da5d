//! `berth doctor`: checks what berth needs and prints ok / warn / fail with the fix for each.
//! The checks that make interfaces and rules do so in a throwaway network namespace of their
//! own, so the doctor never changes the machine.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use netsetup::{Netlink, NetworkSpec};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe, ForkResult};

use crate::engine::host::check_privileges;
use crate::error::Result;
use berth_container::process::exit_now;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

struct Report {
    failed: bool,
}

impl Report {
    fn say(&mut self, verdict: Verdict, what: &str, detail: &str) {
        let word = match verdict {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => {
                self.failed = true;
                "fail"
            }
        };
        println!("{word:<5} {what}: {detail}");
    }
}

/// Runs `berth doctor`; exits 1 when a check failed.
pub fn doctor() -> Result<u8> {
    let mut report = Report { failed: false };
    let root = match check_privileges("berth") {
        Ok(()) => {
            report.say(
                Verdict::Ok,
                "privileges",
                "CAP_SYS_ADMIN and CAP_NET_ADMIN held",
            );
            true
        }
        Err(e) => {
            report.say(Verdict::Fail, "privileges", &e.to_string());
            false
        }
    };

    let nft = nft_version();
    match &nft {
        Some(version) => report.say(Verdict::Ok, "nft", version),
        None => report.say(
            Verdict::Fail,
            "nft",
            "not found in PATH: the bridge network needs it; install nftables (apt-get install nftables)",
        ),
    }

    if root {
        for (verdict, what, detail) in probe_in_throwaway_namespace(nft.is_some()) {
            report.say(verdict, &what, &detail);
        }
        match netsetup::firewall::forward_drop_chains("berth0") {
            Ok(chains) if chains.is_empty() => report.say(
                Verdict::Ok,
                "forward policy",
                "no other table drops forwarded packets by default",
            ),
            Ok(chains) => {
                for chain in chains {
                    report.say(Verdict::Warn, "forward policy", &chain.warning("berth0"));
                }
            }
            Err(e) => report.say(Verdict::Warn, "forward policy", &e.to_string()),
        }
    }

    match fs::read("/proc/sys/net/ipv4/ip_forward") {
        Ok(v) if v.first() == Some(&b'1') => report.say(Verdict::Ok, "ip_forward", "on"),
        Ok(_) => report.say(
            Verdict::Warn,
            "ip_forward",
            "off; berth turns it on at the first bridge run (sysctl net.ipv4.ip_forward=1)",
        ),
        Err(e) => report.say(Verdict::Fail, "ip_forward", &e.to_string()),
    }

    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let container = netsetup::container_resolv_conf(&host, &[]);
    let servers: Vec<&str> = container
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    if host.is_empty() {
        report.say(Verdict::Warn, "resolv.conf", "/etc/resolv.conf is missing or empty; containers get docker's fallback 8.8.8.8 and 8.8.4.4 (or use --dns)");
    } else if servers == ["8.8.8.8", "8.8.4.4"] && !host.contains("8.8.8.8") {
        report.say(Verdict::Warn, "resolv.conf", "/etc/resolv.conf has only loopback nameservers, which containers cannot reach; they get docker's fallback 8.8.8.8 and 8.8.4.4 (or use --dns)");
    } else {
        report.say(
            Verdict::Ok,
            "resolv.conf",
            &format!("containers will ask {}", servers.join(", ")),
        );
    }
    Ok(if report.failed { 1 } else { 0 })
}

/// `nft --version`, when nft can be run.
fn nft_version() -> Option<String> {
    let out = std::process::Command::new("nft")
        .arg("--version")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Forks a child that makes a new network namespace and tries, inside it, a bridge, a veth on
/// it and berth's nftables table with NAT; returns one verdict per step.
fn probe_in_throwaway_namespace(with_nft: bool) -> Vec<(Verdict, String, String)> {
    let Ok((read, write)) = pipe() else {
        return vec![(Verdict::Fail, "probe".into(), "cannot create a pipe".into())];
    };
    if let Err(e) = berth_container::sys::check_single_threaded() {
        return vec![(Verdict::Fail, "probe".into(), e.to_string())];
    }
    // SAFETY: berth has one thread (checked just above), so the child may allocate; it ends
    // with _exit.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(read);
            probe(write, with_nft);
            exit_now(0)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(write);
            let mut text = String::new();
            let _ = fs::File::from(read).read_to_string(&mut text);
            let ended = waitpid(child, None);
            let mut verdicts: Vec<(Verdict, String, String)> = text
                .lines()
                .filter_map(|line| {
                    let (verdict, rest) = line.split_once(' ')?;
                    let (what, detail) = rest.split_once(": ")?;
                    let verdict = if verdict == "ok" {
                        Verdict::Ok
                    } else {
                        Verdict::Fail
                    };
                    Some((verdict, what.to_owned(), detail.to_owned()))
                })
                .collect();
            if !matches!(ended, Ok(WaitStatus::Exited(_, 0))) {
                verdicts.push((
                    Verdict::Fail,
                    "probe".into(),
                    format!("ended with {ended:?}"),
                ));
            }
            verdicts
        }
        Err(e) => vec![(Verdict::Fail, "probe".into(), format!("fork: {e}"))],
    }
}

fn probe(report: OwnedFd, with_nft: bool) {
    let mut out = fs::File::from(report);
    let mut say = |ok: bool, what: &str, detail: String| {
        let _ = writeln!(out, "{} {what}: {detail}", if ok { "ok" } else { "fail" });
    };
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
        say(
            false,
            "network namespaces",
            format!("unshare(CLONE_NEWNET): {e}; the kernel needs CONFIG_NET_NS"),
        );
        return;
    }
    say(true, "network namespaces", "a new one was made".into());
    let network = NetworkSpec::default_bridge();
    let bridge = Netlink::open().and_then(|mut netlink| {
        netlink.create_bridge(
            "doctor0",
            netsetup::mac_for(network.gateway),
            "berth:doctor",
        )?;
        let index = netlink
            .link_by_name("doctor0")?
            .map(|link| link.index)
            .unwrap_or_default();
        Ok((netlink, index))
    });
    let (mut netlink, index) = match bridge {
        Ok(made) => {
            say(
                true,
                "bridge",
                "a bridge was made in a throwaway namespace".into(),
            );
            made
        }
        Err(e) => {
            say(
                false,
                "bridge",
                format!("{e}; the kernel needs the bridge module (modprobe bridge)"),
            );
            return;
        }
    };
    let me = std::process::id();
    match netsetup::attach(
        &mut netlink,
        index,
        "doctorv0",
        "doctorv1",
        network.gateway,
        netsetup::Namespace::Pid(me),
    ) {
        Ok(()) => say(
            true,
            "veth",
            "a veth pair was made and put on the bridge".into(),
        ),
        Err(e) => say(
            false,
            "veth",
            format!("{e}; the kernel needs the veth module (modprobe veth)"),
        ),
    }
    if with_nft {
        match netsetup::firewall::install(&[&network]) {
            Ok(()) => say(
                true,
                "nf_tables with NAT",
                "berth's table with masquerade was made".into(),
            ),
            Err(e) => say(false, "nf_tables with NAT", e.to_string()),
        }
    }
}
