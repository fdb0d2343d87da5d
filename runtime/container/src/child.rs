//! The child's side of a run, from the clone to the exec, in the order it happens.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, CloneFlags};
use nix::sys::resource::Resource;
use nix::sys::signal::{signal, SigHandler, SigSet, Signal};
use nix::unistd::{execve, getppid, sethostname, Pid};

use crate::capabilities::CapabilityPolicy;
use crate::namespaces::{Namespace, Namespaces};
use crate::process::{exit_now, ChildEnds, ExecFailure, Report};
use crate::rootfs::FilesystemPlan;
use crate::user::User;

/// What a caller does in the child's network namespace, in the child, before its mounts: the
/// mechanism knows no network library, so the engine brings the network up through this.
pub trait NetworkHook: std::fmt::Debug {
    /// Runs in the child once its namespaces are joined. `go` waits for berth's go-ahead (the
    /// host's side of the wiring done) and is `false` when berth gave up instead; then the
    /// hook returns `Ok(false)` and the child ends quietly.
    fn in_child(&self, go: &mut dyn FnMut() -> bool) -> Result<bool, String>;
}

/// Everything the child needs, prepared by berth before the clone.
#[derive(Debug)]
pub struct ChildPlan {
    /// berth's pid: the child dies with it.
    pub parent: Pid,
    /// The network side, in the child: none for the host's namespace or one joined by path.
    pub network: Option<Box<dyn NetworkHook>>,
    /// The hostname to set.
    pub hostname: String,
    /// The NIS domain name to set (an OCI config's `domainname`).
    pub domainname: Option<String>,
    /// The namespaces: the clone made the new ones, the child joins those given by path.
    pub namespaces: Namespaces,
    /// Namespaced sysctls to set (an OCI config's `linux.sysctl`).
    pub sysctl: Vec<(String, String)>,
    /// The root, the mounts and the files over /etc.
    pub filesystem: FilesystemPlan,
    /// The workload's process: its directory, user, limits, and whether an init runs it.
    pub process: ProcessPlan,
    /// The workload's end of its pseudo-terminal, if it has one.
    pub terminal: Option<std::os::fd::RawFd>,
    /// Descriptors to become the workload's stdin, stdout and stderr (a pipe from berth's
    /// terminal, a detached container's log); `None` keeps berth's own.
    pub stdio: [Option<std::os::fd::RawFd>; 3],
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

/// The workload's process, beyond its argv and environment.
#[derive(Debug, Clone, Default)]
pub struct ProcessPlan {
    /// The working directory (default /); made in a root filesystem if missing.
    pub workdir: Option<PathBuf>,
    /// The user to run as (default: root).
    pub user: Option<User>,
    /// Whether HOME is berth's default, to be replaced by the user's home from /etc/passwd.
    pub home_is_default: bool,
    /// The file mode creation mask.
    pub umask: Option<u32>,
    /// Resource limits: (resource, soft, hard).
    pub rlimits: Vec<(Resource, u64, u64)>,
    /// An OOM score adjustment.
    pub oom_score_adj: Option<i32>,
    /// Whether berth's init runs as PID 1 and forks the workload (`--init`).
    pub init: bool,
    /// Whether the workload gets a pseudo-terminal (an OCI config's `process.terminal`).
    pub terminal: bool,
    /// The terminal's size (rows, columns) when berth's stdin is no terminal.
    pub console_size: Option<(u16, u16)>,
}

/// Runs the child: prepares the container, then execs the workload; never returns.
pub fn run(plan: &ChildPlan, mut ends: ChildEnds) -> ! {
    match prepare(plan, &mut ends) {
        Ok(Some(env)) => exec(plan, &env, &mut ends),
        // berth gave up before the network was ready; it reports why itself.
        Ok(None) => exit_now(125),
        Err(message) => {
            ends.report(&Report::SetupFailed(message));
            exit_now(125)
        }
    }
}

/// Makes the container; returns the workload's environment, or `None` when berth gave up.
fn prepare(plan: &ChildPlan, ends: &mut ChildEnds) -> Result<Option<Vec<CString>>, String> {
    // Die with berth: a workload must never run on unsupervised. If berth is already gone,
    // the death signal was missed, so stop here.
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(format!("set the parent-death signal: {}", Errno::last()));
    }
    // A session of its own: the caller's terminal is never the container's controlling
    // terminal, so no process of the container can type into it (TIOCSTI) or take it over.
    nix::unistd::setsid().map_err(|e| format!("start a session: {e}"))?;
    for (target, fd) in plan.stdio.iter().enumerate() {
        if let Some(fd) = fd {
            // SAFETY: dup2(2) on descriptors this process owns; it touches no memory.
            if unsafe { libc::dup2(*fd, target as i32) } < 0 {
                return Err(format!(
                    "make descriptor {target} of the workload: {}",
                    Errno::last()
                ));
            }
        }
    }
    // Until the exec, this process is a copy of berth (its memory, its environment): no
    // process of a container may read it through /proc (the init never execs).
    // SAFETY: prctl(PR_SET_DUMPABLE) takes integer arguments and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // In a PID namespace of its own, the child is PID 1 and its parent is outside (pid 0):
    // then berth is gone when its end of the report pipe is.
    let parent_gone = if nix::unistd::getpid().as_raw() == 1 {
        ends.reader_gone()
    } else {
        getppid() != plan.parent
    };
    if parent_gone {
        return Ok(None);
    }

    // The namespaces joined by path, then the network: the hook brings `lo` up while berth
    // creates the veth, then configures the peer from in here.
    for (kind, path) in plan.namespaces.joined() {
        join(kind, path)?;
    }
    if let Some(network) = &plan.network {
        if !network.in_child(&mut || ends.wait_for_go())? {
            return Ok(None);
        }
    }

    // A joined UTS namespace keeps its names.
    if plan.namespaces.uts == Namespace::New {
        sethostname(&plan.hostname)
            .map_err(|e| format!("set hostname {:?}: {e}", plan.hostname))?;
    }
    if let Some(domain) = &plan.domainname {
        // SAFETY: setdomainname(2) reads `len` bytes of the string.
        if unsafe { libc::setdomainname(domain.as_ptr().cast(), domain.len()) } != 0 {
            return Err(format!("set domain name {domain:?}: {}", Errno::last()));
        }
    }
    for (key, value) in &plan.sysctl {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|e| format!("set sysctl {key}={value}: {e}"))?;
    }

    // Mounts: first make every mount private (systemd mounts / shared), so nothing below
    // propagates back to the host; then the container's filesystem, step by step (its root,
    // mounts, /etc files, working directory and masks: see `rootfs::enter`).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("make the container's mounts private: {e}"))?;
    let process = &plan.process;
    let workdir = process.workdir.as_deref().unwrap_or(Path::new("/"));
    crate::rootfs::enter(&plan.filesystem, workdir)?;

    // The process: limits and user, in the container's own root.
    for (resource, soft, hard) in &process.rlimits {
        nix::sys::resource::setrlimit(*resource, *soft, *hard)
            .map_err(|e| format!("set {resource:?}: {e}"))?;
    }
    if let Some(score) = process.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", score.to_string())
            .map_err(|e| format!("set oom_score_adj {score}: {e}"))?;
    }
    if let Some(mask) = process.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    let ids = process.user.as_ref().map(User::resolve).transpose()?;
    if let Some(slave) = plan.terminal {
        crate::terminal::take_as_controlling(slave)?;
    }
    let mut env = plan.env.clone();
    if let Some(home) = ids.as_ref().and_then(|ids| ids.home.as_deref()) {
        if process.home_is_default {
            env.retain(|entry| !entry.as_bytes().starts_with(b"HOME="));
            env.push(CString::new(format!("HOME={home}")).map_err(|e| e.to_string())?);
        }
    }

    // Privileges last: everything above needed them.
    plan.capabilities.apply(ids.as_ref())?;

    // Restore what berth changed for itself: the signal mask, and SIGPIPE (ignored by Rust's
    // runtime; an ignored signal would stay ignored across the exec).
    plan.signal_mask
        .thread_set_mask()
        .map_err(|e| format!("restore the signal mask: {e}"))?;
    // SAFETY: restoring the default disposition installs no handler.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }
        .map_err(|e| format!("reset SIGPIPE: {e}"))?;

    // The workload gets stdin, stdout and stderr, nothing else its caller had open (docker).
    // berth's own are close-on-exec already, and the report pipe must stay open until the exec.
    crate::sys::cloexec_from(3).map_err(|e| format!("mark descriptors close-on-exec: {e}"))?;
    Ok(Some(env))
}

/// Joins the namespace of `kind` at `path`.
fn join(kind: CloneFlags, path: &Path) -> Result<(), String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("open namespace {}: {e}", path.display()))?;
    setns(file, kind).map_err(|e| format!("join namespace {}: {e}", path.display()))
}

/// Execs the workload, searching PATH like execvp(3); reports and exits 126 or 127 on failure.
/// With an init, the workload is forked first and the init stays behind as PID 1.
fn exec(plan: &ChildPlan, env: &[CString], ends: &mut ChildEnds) -> ! {
    if plan.process.init {
        // The init takes every signal with sigwaitinfo; the workload gets the mask back.
        if SigSet::all().thread_block().is_err() {
            exit_now(125);
        }
        crate::init::fork_workload(ends);
        if plan.signal_mask.thread_set_mask().is_err() {
            exit_now(125);
        }
    }
    let failure = exec_searching_path(&plan.argv, env, &plan.path);
    ends.report(&Report::Exec(failure));
    exit_now(if failure == ExecFailure::NotFound {
        127
    } else {
        126
    })
}

/// Execs `argv` with `env`, looking the command up in `path` (a PATH value) when it has no '/',
/// as execvp(3) does; returns only on failure, with what failed.
pub fn exec_searching_path(argv: &[CString], env: &[CString], path: &[u8]) -> ExecFailure {
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
            errno => return ExecFailure::NotExecutable(errno),
        }
    }
    match denied {
        Some(errno) => ExecFailure::NotExecutable(errno),
        None => ExecFailure::NotFound,
    }
}

fn classify(errno: Errno) -> ExecFailure {
    match errno {
        Errno::ENOENT | Errno::ENOTDIR => ExecFailure::NotFound,
        errno => ExecFailure::NotExecutable(errno),
    }
}
