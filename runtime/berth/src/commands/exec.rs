//! `berth exec`: runs a command in a running container. berth joins the container's network,
//! UTS and mount namespaces (it is single-threaded, so the kernel lets it join a mount
//! namespace) and its PID namespace, then forks: the child, in a session of its own, takes on
//! the container's user and capability policy and execs the command; berth forwards signals
//! to it and exits with its status.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{signal, SigHandler, Signal};

use crate::cli::ExecArgs;
use crate::engine::host::check_privileges;
use crate::engine::kept::KeptProcess;
use crate::engine::spec::{c_string, environment, path_of};
use crate::engine::state::{ContainerDir, Status};
use crate::error::{Error, Result};
use berth_container::child::exec_searching_path;
use berth_container::namespaces::namespace_inode;
use berth_container::read_only_exe;
use berth_container::supervise::{self, BlockedSignals};
use berth_container::sys;
use berth_container::terminal::{stdin_is_a_terminal, InputPipe};
use berth_container::user::User;
use berth_container::Lifecycle;

/// Changes to `dir`, resolved inside the (container's) root and through no magic link of
/// /proc: a link the container planted, such as one to /proc/1/root, must not lead the
/// command into the host's filesystem.
fn change_directory_in_root(dir: &Path) -> std::io::Result<()> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let dir = sys::open_in_root(&path, libc::O_PATH | libc::O_DIRECTORY)?;
    nix::unistd::fchdir(&dir).map_err(std::io::Error::from)
}

/// Runs `berth exec`; returns only if the command could not be executed.
pub fn exec(root: &Path, args: ExecArgs) -> Result<u8> {
    check_privileges("exec")?;
    // Nothing the caller has open may reach the container (the CVE-2024-21626 class: an open
    // directory of the host's is a way out of the container's root).
    sys::cloexec_from(3).map_err(|e| Error::system("mark descriptors close-on-exec", e))?;
    let (dir, state) = ContainerDir::find(root, &args.name)?;
    if state.status() != Status::Running {
        return Err(Error::Invalid(format!("{} is not running", args.name)));
    }
    if state.lifecycle() != Lifecycle::Running {
        return Err(Error::Invalid(format!(
            "{} is still being created",
            args.name
        )));
    }
    let Some(pid) = state.live_workload() else {
        return Err(Error::Invalid(format!(
            "{} is not running its workload",
            args.name
        )));
    };
    // A container with a root of its own must not reach berth's binary (see read_only_exe);
    // one in the host's root shares the host's files anyway. Its kept config (an earlier
    // berth's record) says which: nothing the container can change (its processes may
    // chroot, say).
    let kept = KeptProcess::of(&dir, &state)?;
    if !kept.host_root {
        read_only_exe::ensure()?;
    }
    // From before it looks at the workload until its command runs, an exec holds the
    // container's teardown back (which then finds the command among the container's
    // processes); one that comes after the teardown finds the workload gone.
    let exec_hold = dir.hold_for_exec()?;
    if state.live_workload() != Some(pid) {
        return Err(Error::Invalid(format!("{} is ending", args.name)));
    }
    let open = |kind: &str| {
        let path = format!("/proc/{pid}/ns/{kind}");
        File::open(&path).map_err(|e| Error::file(path, e))
    };
    let (mount, network, uts, pid_namespace) =
        (open("mnt")?, open("net")?, open("uts")?, open("pid")?);
    // A namespace of the container's own, unlike berth's (a bundle's IPC and cgroup ones).
    let own = |file: &File, kind: &str| {
        file.metadata().map(|m| m.ino()).ok() != namespace_inode("self", kind)
    };
    let private_pids = own(&pid_namespace, "pid");
    let mut more = Vec::new();
    for (kind, flag) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ] {
        let file = open(kind)?;
        if own(&file, kind) {
            more.push((file, flag));
        }
    }
    // Held open, the namespaces cannot change under us: check they are still the
    // container's, and that the pid was the workload's all along (not reused meanwhile).
    if mount.metadata().map(|m| m.ino()).ok() != state.mount_namespace
        || state.live_workload() != Some(pid)
    {
        return Err(Error::Invalid(format!("{} is ending", args.name)));
    }
    // The same environment rules as `berth run`: docker's clean one, then `-e`.
    let mut env = environment(&args.env, &state.hostname)?;
    let home_is_default = !args
        .env
        .iter()
        .any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == "HOME");
    let user = args
        .user
        .as_deref()
        .or(kept.user.as_deref())
        .map(User::parse)
        .transpose()?;
    let argv = args
        .command
        .iter()
        .map(|arg| c_string(arg, "command argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let path = path_of(&env).to_vec();

    // A terminal as stdin is berth's to read, never the container's (see InputPipe).
    let input = stdin_is_a_terminal().then(InputPipe::new).transpose()?;
    let signals = BlockedSignals::block()?;
    let signal_fd = signals.listen()?;
    berth_container::sys::check_single_threaded().map_err(|e| Error::system("fork", e))?;
    for (file, kind, what) in [
        (&network, CloneFlags::CLONE_NEWNET, "network"),
        (&uts, CloneFlags::CLONE_NEWUTS, "UTS"),
        (&mount, CloneFlags::CLONE_NEWNS, "mount"),
    ] {
        setns(file, kind)
            .map_err(|e| Error::system(format!("join the container's {what} namespace"), e))?;
    }
    for (file, kind) in &more {
        setns(file, *kind).map_err(|e| Error::system("join the container's namespaces", e))?;
    }
    if private_pids {
        // A PID namespace takes in only the children of who joins it.
        setns(&pid_namespace, CloneFlags::CLONE_NEWPID)
            .map_err(|e| Error::system("join the container's PID namespace", e))?;
    }
    // The command is forked, in a session of its own (so that it cannot type into the
    // caller's terminal), and berth passes on signals and its exit status.
    // SAFETY: berth has one thread (checked before the namespaces were joined, where /proc
    // is still the host's; the input's relay starts after the fork), so the child may go on
    // as berth would.
    match unsafe { nix::unistd::fork() }.map_err(|e| Error::system("fork", e))? {
        nix::unistd::ForkResult::Child => {
            // The command ends with `berth exec`.
            // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
            nix::unistd::setsid().map_err(|e| Error::system("start a session", e))?;
            if let Some(input) = &input {
                berth_container::sys::redirect(input.workload.as_fd(), 0)
                    .map_err(|e| Error::system("take the input pipe", e))?;
            }
            signals
                .original
                .thread_set_mask()
                .map_err(|e| Error::system("restore the signal mask", e))?;
        }
        nix::unistd::ForkResult::Parent { child } => {
            // The child holds the container's teardown back until its exec.
            drop(exec_hold);
            // The caller's line holds the `-e` values, readable by every user.
            // SAFETY: the arguments were parsed, and the process has one thread (checked
            // before the fork).
            unsafe {
                berth_container::sys::hide_command_line(&format!("berth exec {}", args.name))
            };
            if let Some(input) = input {
                input.start();
            }
            return Ok(supervise::supervise(child, &signal_fd, None)? as u8);
        }
    }
    let workdir = args
        .workdir
        .as_deref()
        .or(kept.workdir.as_deref())
        .unwrap_or(Path::new("/"));
    change_directory_in_root(workdir).map_err(|e| Error::file(workdir, e))?;
    // The user is looked up in the container's own /etc/passwd, as the run did.
    let ids = user
        .map(|user| user.resolve().map_err(Error::Invalid))
        .transpose()?;
    if let Some(home) = ids.as_ref().and_then(|ids| ids.home.as_deref()) {
        if home_is_default {
            env.retain(|entry| !entry.as_bytes().starts_with(b"HOME="));
            env.push(c_string(format!("HOME={home}").as_ref(), "HOME")?);
        }
    }
    kept.capabilities
        .for_exec()
        .apply(ids.as_ref())
        .map_err(Error::Failed)?;
    // SAFETY: restoring the default disposition installs no handler.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }
        .map_err(|e| Error::system("reset SIGPIPE", e))?;

    let command = args.command[0].to_string_lossy().into_owned();
    Err(exec_searching_path(&argv, &env, &path)
        .error(&command)
        .into())
}
