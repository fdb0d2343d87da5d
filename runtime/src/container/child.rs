//! The child's side of a run, from the clone to the exec, in the order it happens.

use std::ffi::CString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use netsetup::{IpNet, Netlink};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::signal::{signal, SigHandler, SigSet, Signal};
use nix::unistd::{execve, getppid, sethostname, Pid};

use crate::container::capabilities::CapabilityPolicy;
use crate::container::process::{exit_now, ChildEnds, Failure};

/// How the child configures its network namespace.
#[derive(Debug)]
pub enum ChildNetwork {
    /// The host's namespace: nothing to do.
    Host,
    /// A new namespace: bring up `lo`.
    Loopback,
    /// A new namespace that berth wires to a bridge: bring up `lo`, wait for the veth peer,
    /// then give it its address and default route.
    Bridge {
        /// The peer's name inside the container.
        interface: &'static str,
        /// The container's addresses with their subnets' prefixes.
        addresses: Vec<IpNet>,
        /// The default routes' gateways (none on an internal network).
        gateways: Vec<IpAddr>,
    },
}

/// Everything the child needs, prepared by berth before the clone.
#[derive(Debug)]
pub struct ChildPlan {
    /// berth's pid: the child dies with it.
    pub parent: Pid,
    /// The network side.
    pub network: ChildNetwork,
    /// The hostname to set.
    pub hostname: String,
    /// Generated files to bind read-only over their targets in /etc.
    pub binds: Vec<(PathBuf, &'static str)>,
    /// The root filesystem to enter (`--rootfs`), if not the host's.
    pub rootfs: Option<PathBuf>,
    /// Whether that root is read-only (`--read-only`).
    pub read_only: bool,
    /// The workload's argv.
    pub argv: Vec<CString>,
    /// The workload's environment.
    pub env: Vec<CString>,
    /// Where the command is looked up when it has no '/'.
    pub path: Vec<u8>,
    /// The signal mask to restore before the exec.
    pub signal_mask: SigSet,
    /// The capabilities the workload keeps.
    pub capabilities: CapabilityPolicy,
}

/// Runs the child: prepares the container, then execs the workload; never returns.
pub fn run(plan: &ChildPlan, mut ends: ChildEnds) -> ! {
    match prepare(plan, &mut ends) {
        Ok(true) => exec(plan, &mut ends),
        // berth gave up before the network was ready; it reports why itself.
        Ok(false) => exit_now(125),
        Err(message) => {
            ends.report(Failure::Setup, 0, &message);
            exit_now(125)
        }
    }
}

fn prepare(plan: &ChildPlan, ends: &mut ChildEnds) -> Result<bool, String> {
    // Die with berth: a workload must never run on unsupervised. If berth is already gone,
    // the death signal was missed, so stop here.
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(format!("set the parent-death signal: {}", Errno::last()));
    }
    if getppid() != plan.parent {
        return Ok(false);
    }

    // The network. `lo` comes up while berth creates the veth; then the peer is configured
    // from in here, through a netlink socket opened in the new namespace.
    if !matches!(plan.network, ChildNetwork::Host) {
        let mut netlink = Netlink::open().map_err(|e| e.to_string())?;
        netsetup::loopback_up(&mut netlink).map_err(|e| e.to_string())?;
        if let ChildNetwork::Bridge {
            interface,
            addresses,
            gateways,
        } = &plan.network
        {
            if !ends.wait_for_go() {
                return Ok(false);
            }
            netsetup::configure_container_interface(&mut netlink, interface, addresses, gateways)
                .map_err(|e| e.to_string())?;
        }
    }

    sethostname(&plan.hostname).map_err(|e| format!("set hostname {:?}: {e}", plan.hostname))?;

    // Mounts: first make every mount private (systemd mounts / shared), so nothing below
    // propagates back to the host; then bind the generated files read-only.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("make the container's mounts private: {e}"))?;
    match &plan.rootfs {
        Some(rootfs) => crate::container::rootfs::enter(rootfs, &plan.binds, plan.read_only)?,
        None => {
            for (source, target) in &plan.binds {
                // A host without /etc/hostname has nothing to cover; the other two always
                // exist.
                if *target == "/etc/hostname" && !Path::new(target).exists() {
                    continue;
                }
                bind_read_only(source, Path::new(target))?;
            }
        }
    }

    // Privileges last: everything above needed them.
    plan.capabilities.apply()?;

    // Restore what berth changed for itself: the signal mask, and SIGPIPE (ignored by Rust's
    // runtime; an ignored signal would stay ignored across the exec).
    plan.signal_mask
        .thread_set_mask()
        .map_err(|e| format!("restore the signal mask: {e}"))?;
    // SAFETY: restoring the default disposition installs no handler.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }
        .map_err(|e| format!("reset SIGPIPE: {e}"))?;

    // The workload gets stdin, stdout and stderr, nothing else its caller had open (docker).
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only flags descriptors; berth's own are
    // close-on-exec already, and the report pipe must stay open until the exec.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
    Ok(true)
}

/// Binds `source` over `target`, read-only.
pub fn bind_read_only(source: &Path, target: &Path) -> Result<(), String> {
    let fail = |e: Errno| format!("bind {} over {}: {e}", source.display(), target.display());
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(fail)?;
    remount_read_only(target).map_err(fail)
}

/// Makes the bind mount at `target` read-only.
pub fn remount_read_only(target: &Path) -> nix::Result<()> {
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
}

/// Execs the workload, searching PATH like execvp(3); reports and exits 126 or 127 on failure.
fn exec(plan: &ChildPlan, ends: &mut ChildEnds) -> ! {
    let (failure, errno) = exec_searching_path(&plan.argv, &plan.env, &plan.path);
    ends.report(failure, errno as i32, "");
    exit_now(if failure == Failure::NotFound {
        127
    } else {
        126
    })
}

/// Execs `argv` with `env`, looking the command up in `path` (a PATH value) when it has no '/',
/// as execvp(3) does; returns only on failure, with what failed.
pub fn exec_searching_path(argv: &[CString], env: &[CString], path: &[u8]) -> (Failure, Errno) {
    let command = &argv[0];
    if command.as_bytes().contains(&b'/') {
        return classify(execve(command, argv, env).unwrap_err());
    }
    let mut denied = None;
    for dir in path.split(|&b| b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let mut candidate = dir.to_vec();
        candidate.push(b'/');
        candidate.extend_from_slice(command.as_bytes());
        let Ok(candidate) = CString::new(candidate) else {
            continue;
        };
        match execve(&candidate, argv, env).unwrap_err() {
            Errno::ENOENT | Errno::ENOTDIR => {}
            Errno::EACCES => denied = Some(Errno::EACCES),
            errno => return (Failure::NotExecutable, errno),
        }
    }
    match denied {
        Some(errno) => (Failure::NotExecutable, errno),
        None => (Failure::NotFound, Errno::ENOENT),
    }
}

fn classify(errno: Errno) -> (Failure, Errno) {
    match errno {
        Errno::ENOENT | Errno::ENOTDIR => (Failure::NotFound, errno),
        errno => (Failure::NotExecutable, errno),
    }
}
