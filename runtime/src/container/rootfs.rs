//! The container's filesystem, made by the child in its own mount namespace between the clone
//! and the exec (berth is single-threaded, so the child may allocate).
//!
//! With a root filesystem (`--rootfs`, an OCI bundle's root), every host-side source (a
//! volume, a device node, berth's /etc files) is first taken as a detached mount (open_tree);
//! then the child pivots into the root and detaches the host's; only then does it make mount
//! points and mount, by paths that now resolve inside the root alone, so no link in the root
//! filesystem can lead a mount out of it. Every mount but the device binds is `nodev`: berth
//! has no device cgroup, so a device node made or shipped in the root opens nothing.
//!
//! In the host's root, the mounts (volumes, a /proc for a private PID namespace) go on
//! existing paths: berth makes nothing in the host's filesystem.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};

use crate::container::mounts::{Mount, Source};

/// MS_NOSYMFOLLOW (linux/mount.h), which nix does not name.
pub const NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// The device nodes of the container's /dev, bound from the host's.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// open_tree(2) and move_mount(2) flags (linux/mount.h).
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// The filesystem side of a container.
#[derive(Debug, Clone, Default)]
pub struct FilesystemPlan {
    /// The root filesystem, by its canonical path; `None`: the host's.
    pub rootfs: Option<PathBuf>,
    /// Whether the root is read-only.
    pub read_only: bool,
    /// The mounts, in order.
    pub mounts: Vec<Mount>,
    /// Generated files to bind read-only over their targets in /etc.
    pub etc_files: Vec<(PathBuf, &'static str)>,
    /// Paths hidden from the container (see `mounts::MASKED_PATHS`).
    pub masked_paths: Vec<PathBuf>,
    /// Paths made read-only (see `mounts::READ_ONLY_PATHS`).
    pub read_only_paths: Vec<PathBuf>,
}

/// Makes the container's filesystem; the mounts are private already.
/// Makes the container's filesystem (the mounts are private already) and changes to
/// `workdir` (made if missing in a root filesystem).
pub fn enter(plan: &FilesystemPlan, workdir: &Path) -> Result<(), String> {
    let Some(rootfs) = &plan.rootfs else {
        in_the_hosts_root(plan)?;
        return chdir(workdir).map_err(|e| format!("working directory {}: {e}", workdir.display()));
    };
    // 1. What comes from the host, taken while the host's root is still there.
    let sources = plan
        .mounts
        .iter()
        .map(|m| match &m.source {
            Source::Bind { path, recursive } => host_tree(path, *recursive).map(Some),
            Source::Cgroup => host_tree(Path::new("/sys/fs/cgroup"), true).map(Some),
            Source::Filesystem { .. } => Ok(None),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let makes_dev = plan.mounts.iter().any(|m| {
        m.destination == Path::new("/dev")
            && matches!(&m.source, Source::Filesystem { kind, .. } if kind == "tmpfs")
    });
    let devices = if makes_dev {
        DEVICES
            .iter()
            .map(|name| detached(&Path::new("/dev").join(name), false).map(|fd| (*name, fd)))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let etc_files = plan
        .etc_files
        .iter()
        .map(|(source, target)| detached(source, false).map(|fd| (fd, *target)))
        .collect::<Result<Vec<_>, _>>()?;
    // The host's /dev/null, for each masked file (the root's own could be any device).
    let nulls = plan
        .masked_paths
        .iter()
        .map(|_| detached(Path::new("/dev/null"), false))
        .collect::<Result<Vec<_>, _>>()?;

    // 2. Into the root: it must be a mount point of its own; pivot_root(".", ".") stacks the
    // old root under the new one, and the old one is detached.
    mount_at(
        Some(rootfs),
        rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    chdir(rootfs).map_err(|e| format!("enter {}: {e}", rootfs.display()))?;
    pivot_root(".", ".").map_err(|e| format!("pivot_root into {}: {e}", rootfs.display()))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detach the host's root: {e}"))?;
    chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    // No device node of the root, nor of a mount below it, opens from here on.
    set_tree_flags(None, MsFlags::MS_NODEV, Path::new("/"))?;

    // 3. The mounts, by paths inside the root. /proc and what goes below it come last: until
    // procfs is there, the root holds no magic link (/proc/PID/root), so following the root's
    // own links to make a mount point, a file or the working directory stays inside it.
    let (late, early): (Vec<_>, Vec<_>) = plan
        .mounts
        .iter()
        .zip(sources)
        .partition(|(mount, _)| mount.destination.starts_with("/proc"));
    for (mount, source) in early {
        apply(mount, source, true)?;
    }
    if makes_dev {
        populate_dev(devices)?;
    }
    for (source, target) in etc_files {
        let target = Path::new(target);
        make_parent(target)?;
        make_file(target)?;
        attach(&source, target)?;
        remount(target, MsFlags::MS_RDONLY)?;
    }
    if let Err(e) = chdir(workdir) {
        if e != nix::errno::Errno::ENOENT {
            return Err(format!("working directory {}: {e}", workdir.display()));
        }
        fs::create_dir_all(workdir)
            .map_err(|e| format!("make working directory {}: {e}", workdir.display()))?;
        chdir(workdir).map_err(|e| format!("working directory {}: {e}", workdir.display()))?;
    }
    for (mount, source) in late {
        apply(mount, source, true)?;
    }
    mask_and_protect(plan, nulls)?;
    let mut flags = MsFlags::MS_NODEV;
    if plan.read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    remount(Path::new("/"), flags).map_err(|e| format!("the root: {e}"))
}

/// The host's root: berth's /etc files and the mounts go on existing paths.
fn in_the_hosts_root(plan: &FilesystemPlan) -> Result<(), String> {
    for (source, target) in &plan.etc_files {
        // A host without /etc/hostname has nothing to cover; the other two always exist.
        if *target == "/etc/hostname" && !Path::new(target).exists() {
            continue;
        }
        bind_read_only(source, Path::new(target))?;
    }
    for mount in &plan.mounts {
        let source = match &mount.source {
            Source::Bind { path, recursive } => Some(host_tree(path, *recursive)?),
            Source::Cgroup => Some(host_tree(Path::new("/sys/fs/cgroup"), true)?),
            Source::Filesystem { .. } => None,
        };
        apply(mount, source, false)?;
    }
    let nulls = plan
        .masked_paths
        .iter()
        .map(|_| detached(Path::new("/dev/null"), false))
        .collect::<Result<Vec<_>, _>>()?;
    mask_and_protect(plan, nulls)
}

/// Binds `source` over `target`, read-only.
pub fn bind_read_only(source: &Path, target: &Path) -> Result<(), String> {
    mount_at(Some(source), target, None, MsFlags::MS_BIND, None)?;
    remount(target, MsFlags::MS_RDONLY)
}

/// Sets a bind mount's flags (`flags`, and always MS_NODEV unless it is a device).
fn remount(target: &Path, flags: MsFlags) -> Result<(), String> {
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
        None::<&str>,
    )
    .map_err(|e| format!("set the flags of {}: {e}", target.display()))
}

/// A host path to bind: its detached tree, and whether it is a directory.
fn host_tree(path: &Path, recursive: bool) -> Result<(OwnedFd, bool), String> {
    let is_dir = fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .is_dir();
    Ok((detached(path, recursive)?, is_dir))
}

/// Mounts one `mount`; `source` is its detached tree for a bind (and whether it is a
/// directory). With `make`, missing mount points are made (inside a root filesystem); else
/// they must exist.
fn apply(mount: &Mount, source: Option<(OwnedFd, bool)>, make: bool) -> Result<(), String> {
    let target = &mount.destination;
    let is_dir = source.as_ref().is_none_or(|(_, is_dir)| *is_dir);
    if make {
        make_parent(target)?;
        if is_dir {
            fs::create_dir_all(target).map_err(|e| format!("make {}: {e}", target.display()))?;
        } else {
            make_file(target)?;
        }
    } else if !target.exists() {
        return Err(format!(
            "{} does not exist (without a root filesystem, berth makes nothing in the host's)",
            target.display()
        ));
    }
    match (&mount.source, source) {
        (Source::Filesystem { kind, source }, _) => {
            let mut flags = mount.flags;
            // devpts holds the container's terminals: device nodes it must open.
            if kind != "devpts" {
                flags |= MsFlags::MS_NODEV;
            }
            let data = (!mount.data.is_empty()).then_some(mount.data.as_str());
            mount_at(Some(Path::new(source)), target, Some(kind), flags, data)?;
        }
        (_, Some((tree, _))) => {
            // The flags go on the whole tree, the mounts below the source too.
            let mut flags = mount.flags | MsFlags::MS_NODEV;
            if mount.source == Source::Cgroup {
                flags |= MsFlags::MS_RDONLY;
            }
            set_tree_flags(Some(&tree), flags, target)?;
            attach(&tree, target)?;
        }
        (_, None) => unreachable!("a bind has its detached tree"),
    }
    if let Some(propagation) = mount.propagation {
        mount_at(None, target, None, propagation, None)?;
    }
    Ok(())
}

/// The usual devices, bound from the host's, and /dev's links.
fn populate_dev(devices: Vec<(&str, OwnedFd)>) -> Result<(), String> {
    for (name, tree) in devices {
        let node = Path::new("/dev").join(name);
        make_file(&node)?;
        attach(&tree, &node)?;
    }
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let path = Path::new("/dev").join(link);
        if fs::symlink_metadata(&path).is_err() {
            std::os::unix::fs::symlink(target, &path)
                .map_err(|e| format!("make /dev/{link}: {e}"))?;
        }
    }
    Ok(())
}

/// Hides the masked paths (/dev/null over a file, an empty read-only tmpfs over a directory)
/// and makes the read-only ones read-only; paths that do not exist are left alone.
fn mask_and_protect(plan: &FilesystemPlan, nulls: Vec<OwnedFd>) -> Result<(), String> {
    for (path, null) in plan.masked_paths.iter().zip(nulls) {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => mount_at(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
                Some("size=0"),
            )?,
            Ok(_) => attach(&null, path)?,
            Err(_) => {}
        }
    }
    for path in &plan.read_only_paths {
        if path.exists() {
            mount_at(
                Some(path),
                path,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            remount(
                path,
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            )?;
        }
    }
    Ok(())
}

/// A detached copy of the mount at `path` (recursively with `recursive`), to attach later.
fn detached(path: &Path, recursive: bool) -> Result<OwnedFd, String> {
    let c_path = c_path(path)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: open_tree(2) reads the NUL-terminated path and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c_path.as_ptr(), flags) };
    let fd = succeeded(fd, || format!("take {} to mount", path.display()))?;
    // SAFETY: the descriptor was just returned by the kernel and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Sets the read-only, nosuid, nodev, noexec, nosymfollow and atime flags that `flags` has on
/// every mount of the detached `tree` (bound at `target`), or of the tree at `target`.
fn set_tree_flags(tree: Option<&OwnedFd>, flags: MsFlags, target: &Path) -> Result<(), String> {
    /// struct mount_attr (linux/mount.h).
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let mut attr_set = 0;
    for (flag, attribute) in [
        (MsFlags::MS_RDONLY, 0x1),
        (MsFlags::MS_NOSUID, 0x2),
        (MsFlags::MS_NODEV, 0x4),
        (MsFlags::MS_NOEXEC, 0x8),
        (MsFlags::MS_NODIRATIME, 0x80),
        (NOSYMFOLLOW, 0x0020_0000),
    ] {
        if flags.contains(flag) {
            attr_set |= attribute;
        }
    }
    // The access time is one setting of three (MOUNT_ATTR__ATIME).
    let mut attr_clr = 0;
    if flags.contains(MsFlags::MS_NOATIME) {
        attr_set |= 0x10;
        attr_clr |= 0x70;
    } else if flags.contains(MsFlags::MS_STRICTATIME) {
        attr_set |= 0x20;
        attr_clr |= 0x70;
    }
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd: 0,
    };
    let (fd, path, empty) = match tree {
        Some(tree) => (
            tree.as_raw_fd(),
            c"".to_owned(),
            libc::AT_EMPTY_PATH as libc::c_uint,
        ),
        None => (libc::AT_FDCWD, c_path(target)?, 0),
    };
    // SAFETY: mount_setattr(2) reads `size` bytes of `attr` and the NUL-terminated path.
    let done = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            path.as_ptr(),
            empty | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    succeeded(done, || {
        format!("set the flags of the mount for {}", target.display())
    })?;
    Ok(())
}

/// `path` as a C string for a system call.
fn c_path(path: &Path) -> Result<std::ffi::CString, String> {
    std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: a NUL byte in the path", path.display()))
}

/// Attaches the detached mount `tree` at `target`.
fn attach(tree: &OwnedFd, target: &Path) -> Result<(), String> {
    let c_target = c_path(target)?;
    // SAFETY: move_mount(2) reads the two NUL-terminated paths (the first empty, with
    // MOVE_MOUNT_F_EMPTY_PATH: the descriptor itself) and touches no other memory.
    let done = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c_target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    succeeded(done, || format!("mount on {}", target.display()))?;
    Ok(())
}

/// What a raw system call `returned`: the value, or the error (errno) after `what` failed.
fn succeeded(
    returned: libc::c_long,
    what: impl FnOnce() -> String,
) -> Result<libc::c_long, String> {
    if returned < 0 {
        let error = std::io::Error::last_os_error();
        return Err(format!("{}: {error}", what()));
    }
    Ok(returned)
}

fn mount_at(
    source: Option<&Path>,
    target: &Path,
    kind: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    mount(source, target, kind, flags, data).map_err(|e| {
        format!(
            "mount {}{} on {}: {e}",
            kind.unwrap_or("bind of "),
            source.map_or(String::new(), |s| format!(" {}", s.display())),
            target.display()
        )
    })
}

fn make_parent(path: &Path) -> Result<(), String> {
    match path.parent() {
        Some(parent) => {
            fs::create_dir_all(parent).map_err(|e| format!("make {}: {e}", parent.display()))
        }
        None => Ok(()),
    }
}

/// An empty file at `path` to bind a file over, unless something is there.
fn make_file(path: &Path) -> Result<(), String> {
    if path.exists() {
        return Ok(());
    }
    fs::File::create(path)
        .and_then(|file| file.set_permissions(fs::Permissions::from_mode(0o644)))
        .map_err(|e| format!("make {}: {e}", path.display()))
}
