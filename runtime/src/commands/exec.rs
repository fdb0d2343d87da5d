//! `berth exec`: runs a command in a running container. berth joins the container's network,
//! UTS and mount namespaces (it is single-threaded, so the kernel lets it join a mount
//! namespace), takes on the container's capability policy, and execs the command in its own
//! place, so the command's exit code is berth's.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{signal, SigHandler, Signal};

use crate::cli::ExecArgs;
use crate::commands::run::check_privileges;
use crate::container::capabilities::CapabilityPolicy;
use crate::container::child::exec_searching_path;
use crate::container::process::Failure;
use crate::container::spec::{c_string, environment, path_of};
use crate::container::state::{ContainerDir, Status};
use crate::error::{Error, Result};

/// Runs `berth exec`; returns only if the command could not be executed.
pub fn exec(root: &Path, args: ExecArgs) -> Result<u8> {
    check_privileges("exec")?;
    let (_, state) = ContainerDir::find(root, &args.name)?;
    if state.status() != Status::Running {
        return Err(Error::Invalid(format!("{} is not running", args.name)));
    }
    let Some(pid) = state.live_workload() else {
        return Err(Error::Invalid(format!(
            "{} is not running its workload",
            args.name
        )));
    };
    let open = |kind: &str| {
        let path = format!("/proc/{pid}/ns/{kind}");
        File::open(&path).map_err(|e| Error::file(path, e))
    };
    let (mount, network, uts, pid_namespace) =
        (open("mnt")?, open("net")?, open("uts")?, open("pid")?);
    let own_pid_namespace = |file: &File| {
        let theirs = file.metadata().map(|m| m.ino()).ok();
        let ours = std::fs::metadata("/proc/self/ns/pid").map(|m| m.ino()).ok();
        theirs != ours
    };
    let private_pids = own_pid_namespace(&pid_namespace);
    // Held open, the namespace cannot change under us: check it is still the container's.
    if mount.metadata().map(|m| m.ino()).ok() != state.mount_namespace {
        return Err(Error::Invalid(format!("{} is ending", args.name)));
    }
    // The same environment rules as `berth run`: docker's clean one, then `-e`.
    let env = environment(&args.env, &state.hostname)?;
    let argv = args
        .command
        .iter()
        .map(|arg| c_string(arg, "command argument"))
        .collect::<Result<Vec<_>>>()?;
    let path = path_of(&env).to_vec();

    for (file, kind, what) in [
        (&network, CloneFlags::CLONE_NEWNET, "network"),
        (&uts, CloneFlags::CLONE_NEWUTS, "UTS"),
        (&mount, CloneFlags::CLONE_NEWNS, "mount"),
    ] {
        setns(file, kind)
            .map_err(|e| Error::system(format!("join the container's {what} namespace"), e))?;
    }
    if private_pids {
        // A PID namespace takes in only the children of who joins it: the command is forked,
        // and berth passes its exit status on.
        setns(&pid_namespace, CloneFlags::CLONE_NEWPID)
            .map_err(|e| Error::system("join the container's PID namespace", e))?;
        // SAFETY: berth is single-threaded, so the child may go on as berth would.
        match unsafe { nix::unistd::fork() }.map_err(|e| Error::system("fork", e))? {
            nix::unistd::ForkResult::Child => {}
            nix::unistd::ForkResult::Parent { child } => {
                return Ok(match nix::sys::wait::waitpid(child, None) {
                    Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => code as u8,
                    Ok(nix::sys::wait::WaitStatus::Signaled(_, signal, _)) => 128 + signal as u8,
                    _ => 125,
                });
            }
        }
    }
    let workdir = args.workdir.as_deref().unwrap_or(Path::new("/"));
    std::env::set_current_dir(workdir).map_err(|e| Error::file(workdir, e))?;
    CapabilityPolicy::from_names(&state.capabilities, state.no_new_privs)
        .apply(None)
        .map_err(Error::Container)?;
    // SAFETY: restoring the default disposition installs no handler.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }
        .map_err(|e| Error::system("reset SIGPIPE", e))?;

    let command = args.command[0].to_string_lossy().into_owned();
    Err(match exec_searching_path(&argv, &env, &path) {
        (Failure::NotFound, _) => Error::CommandNotFound(command),
        (_, errno) => Error::NotExecutable {
            command,
            source: errno.into(),
        },
    })
}
