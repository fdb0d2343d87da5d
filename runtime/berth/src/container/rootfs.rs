//! The container's filesystem, made by the child in its own mount namespace between the clone
//! and the exec (berth had one thread at the clone, checked, so the child may allocate).
//!
//! With a root filesystem (`--rootfs`, an OCI bundle's root), every host-side source (a
//! volume, a device node, berth's /etc files) is first taken as a detached mount (open_tree);
//! then the child pivots into the root and detaches the host's. From there on, everything goes
//! through descriptors of the new root: each mount target is opened with openat2 inside it
//! (links followed inside the root, magic links never, and no link at all to or below /proc,
//! /sys and /dev), missing mount points are made one component at a time from it, and every
//! mount (fsopen/fsmount, or a detached tree) is attached onto the target's descriptor, never
//! on a path looked up again. Masked and read-only paths of /proc and /sys are opened beneath
//! the procfs or sysfs mount itself and checked to be on it. Every mount but the device binds
//! is `nodev`: berth has no device cgroup, so a device node made or shipped in the root opens
//! nothing.
//!
//! In the host's root, the mounts (volumes, a /proc for a private PID namespace) go the same
//! way on existing paths: berth makes nothing in the host's filesystem.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{umount2, MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::statfs::{PROC_SUPER_MAGIC, SYSFS_MAGIC};
use nix::unistd::{chdir, fchdir, pivot_root};

use crate::container::mounts::{Mount, Source};
use crate::sys::{self, resolve, MountAttr};

/// The device nodes of the container's /dev, bound from the host's.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// The kernel's trees in a root: no link in a root filesystem is followed to or below them.
const KERNEL_TREES: [&str; 3] = ["/proc", "/sys", "/dev"];

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
        .map(host_source)
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
    let nulls = host_nulls(plan)?;

    // 2. Into the root; from here on, paths are looked up from its descriptor only.
    let root = Root::pivot_into(rootfs)?;
    // No device node of the root, nor of a mount below it, opens from here on.
    set_attributes(root.fd.as_fd(), true, MsFlags::MS_NODEV, Path::new("/"))?;

    // 3. The mounts. /proc and what goes below it come last, so that the root holds no magic
    // link (/proc/PID/root) while mount points, files and the working directory are made.
    let (late, early): (Vec<_>, Vec<_>) = plan
        .mounts
        .iter()
        .zip(sources)
        .partition(|(mount, _)| mount.is_under_proc());
    let mut kernel = KernelMounts::default();
    for (mount, source) in early {
        kernel.note(mount, apply(&root, mount, source)?);
    }
    if makes_dev {
        populate_dev(&root, devices)?;
    }
    for (source, target) in etc_files {
        bind_read_only(&root, source, Path::new(target))?;
    }
    let dir = root
        .target(workdir, Kind::Directory)
        .map_err(|e| format!("working directory {e}"))?;
    fchdir(&dir).map_err(|e| format!("working directory {}: {e}", workdir.display()))?;
    for (mount, source) in late {
        kernel.note(mount, apply(&root, mount, source)?);
    }
    mask_and_protect(&root, plan, nulls, &kernel)?;
    let mut flags = MsFlags::MS_NODEV;
    if plan.read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    set_attributes(root.fd.as_fd(), false, flags, Path::new("/"))
        .map_err(|e| format!("the root: {e}"))
}

/// The host's root: berth's /etc files and the mounts go on existing paths.
fn in_the_hosts_root(plan: &FilesystemPlan) -> Result<(), String> {
    let root = Root::current(false)?;
    for (source, target) in &plan.etc_files {
        // A host without /etc/hostname has nothing to cover; the other two always exist.
        if *target == "/etc/hostname" && root.find(Path::new(target), Kind::File)?.is_none() {
            continue;
        }
        bind_read_only(&root, detached(source, false)?, Path::new(target))?;
    }
    let mut kernel = KernelMounts::default();
    for mount in &plan.mounts {
        let source = host_source(mount)?;
        kernel.note(mount, apply(&root, mount, source)?);
    }
    mask_and_protect(&root, plan, host_nulls(plan)?, &kernel)
}

/// Whether a mount target is a directory or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Directory,
    File,
}

/// A root to mount in, by a descriptor of its `/`.
struct Root {
    fd: OwnedFd,
    /// Whether missing mount points are made (in a root filesystem, never in the host's).
    make: bool,
}

impl Root {
    /// The calling process's root.
    fn current(make: bool) -> Result<Self, String> {
        let fd = open_directory(Path::new("/"))?;
        Ok(Root { fd, make })
    }

    /// Pivots into `rootfs`, bound on itself (pivot_root wants a mount point), and detaches
    /// the host's root; the new root, in which missing mount points are made.
    fn pivot_into(rootfs: &Path) -> Result<Self, String> {
        let dir = open_directory(rootfs)?;
        let tree = sys::clone_tree(Some(dir.as_fd()), c"", true)
            .map_err(|e| format!("take {} to mount: {}", rootfs.display(), errno(&e)))?;
        sys::move_mount(tree.as_fd(), dir.as_fd())
            .map_err(|e| format!("mount {} on itself: {}", rootfs.display(), errno(&e)))?;
        fchdir(&tree).map_err(|e| format!("enter {}: {e}", rootfs.display()))?;
        // pivot_root(".", ".") stacks the old root over the new one; it is detached.
        pivot_root(".", ".").map_err(|e| format!("pivot_root into {}: {e}", rootfs.display()))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detach the host's root: {e}"))?;
        chdir("/").map_err(|e| format!("chdir /: {e}"))?;
        Root::current(true)
    }

    /// The mount target `path`, made if missing and this root makes mount points (else
    /// it must exist).
    fn target(&self, path: &Path, kind: Kind) -> Result<OwnedFd, String> {
        if !self.make {
            return self.find(path, kind)?.ok_or_else(|| {
                format!(
                    "{} does not exist (without a root filesystem, berth makes nothing in the \
                     host's)",
                    path.display()
                )
            });
        }
        if let Some(found) = self.find(path, kind)? {
            return Ok(found);
        }
        // Made one component at a time in the directory reached so far, each prefix looked
        // up again from the root, inside it.
        let names = names(path);
        let mut at = self.fd.try_clone().map_err(|e| e.to_string())?;
        for end in 1..=names.len() {
            let last = end == names.len();
            let kind = if last { kind } else { Kind::Directory };
            if let Some(found) = self.lookup(path, &names[..end], kind)? {
                at = found;
                continue;
            }
            let name = c_string(names[end - 1], path)?;
            let made = match kind {
                Kind::Directory => nix::sys::stat::mkdirat(
                    at.as_fd(),
                    name.as_c_str(),
                    Mode::from_bits_truncate(0o755),
                ),
                Kind::File => make_file(at.as_fd(), &name),
            };
            match made {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => {
                    let made: PathBuf = names[..end].iter().collect();
                    return Err(format!("make /{}: {e}", made.display()));
                }
            }
            at = self
                .lookup(path, &names[..end], kind)?
                .ok_or_else(|| format!("{}: {}", path.display(), Errno::ENOENT.desc()))?;
        }
        Ok(at)
    }

    /// The existing `path` in this root, or `None`.
    fn find(&self, path: &Path, kind: Kind) -> Result<Option<OwnedFd>, String> {
        self.lookup(path, &names(path), kind)
    }

    /// `names`, the first components of `path`, looked up from the root inside it: no magic
    /// link, and no link at all to or below /proc, /sys and /dev; `None` if missing.
    fn lookup(&self, path: &Path, names: &[&OsStr], kind: Kind) -> Result<Option<OwnedFd>, String> {
        let kernel = KERNEL_TREES.iter().any(|tree| path.starts_with(tree));
        let mut how = resolve::IN_ROOT | resolve::NO_MAGICLINKS;
        if kernel {
            how |= resolve::NO_SYMLINKS;
        }
        let relative = c_string(join(names), path)?;
        let mut flags = libc::O_PATH;
        if kind == Kind::Directory {
            flags |= libc::O_DIRECTORY;
        }
        match sys::openat2(self.fd.as_fd(), &relative, flags, how) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) && kernel => Err(format!(
                "{} is, or passes through, a symbolic link in the root filesystem: berth \
                 follows no link to or below /proc, /sys and /dev (make them directories)",
                path.display()
            )),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(format!(
                "{}: a magic link (/proc/PID/...) or too many links on the way, which berth \
                 does not follow",
                path.display()
            )),
            Err(e) => Err(format!("{}: {}", path.display(), errno(&e))),
        }
    }
}

/// The proc and sys filesystems (or whatever is mounted at /proc and /sys), beneath which
/// their masked and read-only paths are opened.
#[derive(Default)]
struct KernelMounts {
    proc: Option<OwnedFd>,
    sys: Option<OwnedFd>,
}

impl KernelMounts {
    /// Keeps `mounted` if it is `mount`'s, at /proc or /sys.
    fn note(&mut self, mount: &Mount, mounted: OwnedFd) {
        if mount.destination == Path::new("/proc") {
            self.proc = Some(mounted);
        } else if mount.destination == Path::new("/sys") {
            self.sys = Some(mounted);
        }
    }
}

/// A bind's host-side tree (and whether it is a directory); `None` for a new filesystem.
fn host_source(mount: &Mount) -> Result<Option<(OwnedFd, bool)>, String> {
    let (path, recursive) = match &mount.source {
        Source::Bind { path, recursive } => (path.as_path(), *recursive),
        Source::Cgroup => (Path::new("/sys/fs/cgroup"), true),
        Source::Filesystem { .. } => return Ok(None),
    };
    let tree = detached(path, recursive)?;
    let mode = nix::sys::stat::fstat(&tree).map_err(|e| format!("{}: {e}", path.display()))?;
    let is_dir = SFlag::from_bits_truncate(mode.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    Ok(Some((tree, is_dir)))
}

/// The host's /dev/null, once for each masked path.
fn host_nulls(plan: &FilesystemPlan) -> Result<Vec<OwnedFd>, String> {
    plan.masked_paths
        .iter()
        .map(|_| detached(Path::new("/dev/null"), false))
        .collect()
}

/// Mounts one `mount` in `root`; `source` is its detached tree for a bind (and whether it is
/// a directory). Returns the mount, attached.
fn apply(root: &Root, mount: &Mount, source: Option<(OwnedFd, bool)>) -> Result<OwnedFd, String> {
    let path = &mount.destination;
    let kind = match &source {
        Some((_, false)) => Kind::File,
        _ => Kind::Directory,
    };
    let target = root.target(path, kind)?;
    let mounted = match (&mount.source, source) {
        (Source::Filesystem { kind, source }, _) => {
            let mut flags = mount.flags;
            // devpts holds the container's terminals: device nodes it must open.
            if kind != "devpts" {
                flags |= MsFlags::MS_NODEV;
            }
            new_filesystem(kind, source, &mount.data, flags, path)?
        }
        (_, Some((tree, _))) => {
            // The flags go on the whole tree, the mounts below the source too.
            let mut flags = mount.flags | MsFlags::MS_NODEV;
            if mount.source == Source::Cgroup {
                flags |= MsFlags::MS_RDONLY;
            }
            set_attributes(tree.as_fd(), true, flags, path)?;
            tree
        }
        (_, None) => unreachable!("a bind has its detached tree"),
    };
    attach(&mounted, &target, path)?;
    if let Some(propagation) = mount.propagation {
        let recursive = propagation.contains(MsFlags::MS_REC);
        sys::mount_setattr(
            mounted.as_fd(),
            recursive,
            &MountAttr::propagation(propagation),
        )
        .map_err(|e| format!("set the propagation of {}: {}", path.display(), errno(&e)))?;
    }
    Ok(mounted)
}

/// A new, detached filesystem of type `kind` (fsopen, fsconfig, fsmount): `source` its name,
/// `data` its own comma-separated options, `flags` the mount's.
fn new_filesystem(
    kind: &str,
    source: &str,
    data: &str,
    flags: MsFlags,
    target: &Path,
) -> Result<OwnedFd, String> {
    let failed = |what: &str, error: io::Error, fs: Option<BorrowedFd<'_>>| {
        let said = fs.map(sys::fs_messages).unwrap_or_default();
        let said = if said.is_empty() {
            said
        } else {
            format!(" ({said})")
        };
        format!(
            "mount {kind} on {}: {what}{}{said}",
            target.display(),
            errno(&error)
        )
    };
    let fs = sys::fsopen(&c_string(kind, target)?).map_err(|e| failed("", e, None))?;
    let set = |key: &str, value: Option<&str>| {
        let key_c = c_string(key, target)?;
        let value_c = value.map(|v| c_string(v, target)).transpose()?;
        sys::fsconfig_set(fs.as_fd(), &key_c, value_c.as_deref()).map_err(|e| {
            let option = value.map_or(key.to_owned(), |v| format!("{key}={v}"));
            failed(&format!("option {option}: "), e, Some(fs.as_fd()))
        })
    };
    set("source", Some(source))?;
    for option in data.split(',').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some((key, value)) => set(key, Some(value))?,
            None => set(option, None)?,
        }
    }
    // The superblock's own flags; the others are the mount's attributes.
    for (flag, name) in [
        (MsFlags::MS_SYNCHRONOUS, "sync"),
        (MsFlags::MS_DIRSYNC, "dirsync"),
        (MsFlags::MS_MANDLOCK, "mand"),
    ] {
        if flags.contains(flag) {
            set(name, None)?;
        }
    }
    sys::fsconfig_create(fs.as_fd()).map_err(|e| failed("", e, Some(fs.as_fd())))?;
    sys::fsmount(fs.as_fd(), &MountAttr::from_flags(flags)).map_err(|e| failed("", e, None))
}

/// The usual devices, bound from the host's, and /dev's links.
fn populate_dev(root: &Root, devices: Vec<(&str, OwnedFd)>) -> Result<(), String> {
    for (name, tree) in devices {
        let node = Path::new("/dev").join(name);
        attach(&tree, &root.target(&node, Kind::File)?, &node)?;
    }
    let dev = root.target(Path::new("/dev"), Kind::Directory)?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        match nix::unistd::symlinkat(target, dev.as_fd(), link) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(format!("make /dev/{link}: {e}")),
        }
    }
    Ok(())
}

/// Binds the detached file `source` over `target` in `root`, read-only.
fn bind_read_only(root: &Root, source: OwnedFd, target: &Path) -> Result<(), String> {
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    set_attributes(source.as_fd(), false, flags, target)?;
    attach(&source, &root.target(target, Kind::File)?, target)
}

/// Hides the masked paths (/dev/null over a file, an empty read-only tmpfs over a directory)
/// and makes the read-only ones read-only; paths that do not exist are left alone.
fn mask_and_protect(
    root: &Root,
    plan: &FilesystemPlan,
    nulls: Vec<OwnedFd>,
    kernel: &KernelMounts,
) -> Result<(), String> {
    let protected = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    for (path, null) in plan.masked_paths.iter().zip(nulls) {
        let Some(target) = kernel_path(root, kernel, path)? else {
            continue;
        };
        let meta =
            nix::sys::stat::fstat(&target).map_err(|e| format!("{}: {e}", path.display()))?;
        let mask = if SFlag::from_bits_truncate(meta.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            new_filesystem("tmpfs", "tmpfs", "size=0", protected, path)?
        } else {
            null
        };
        attach(&mask, &target, path)?;
    }
    for path in &plan.read_only_paths {
        let Some(target) = kernel_path(root, kernel, path)? else {
            continue;
        };
        let tree = sys::clone_tree(Some(target.as_fd()), c"", true)
            .map_err(|e| format!("take {} to mount: {}", path.display(), errno(&e)))?;
        set_attributes(tree.as_fd(), true, protected | MsFlags::MS_NOEXEC, path)?;
        attach(&tree, &target, path)?;
    }
    Ok(())
}

/// A masked or read-only `path`, or `None` if it does not exist. Below /proc or /sys it is
/// opened beneath the mount there (no link, no other mount on the way) and must be on a proc
/// or sys filesystem; anywhere else, in the root.
fn kernel_path(root: &Root, kernel: &KernelMounts, path: &Path) -> Result<Option<OwnedFd>, String> {
    for (mount, at, magic, name) in [
        (&kernel.proc, "/proc", PROC_SUPER_MAGIC, "proc"),
        (&kernel.sys, "/sys", SYSFS_MAGIC, "sysfs"),
    ] {
        let (Some(mount), Ok(rest)) = (mount, path.strip_prefix(at)) else {
            continue;
        };
        let relative = c_string(join(&names(rest)), path)?;
        let how = resolve::BENEATH | resolve::NO_SYMLINKS | resolve::NO_XDEV;
        let target = match sys::openat2(mount.as_fd(), &relative, libc::O_PATH, how) {
            Ok(target) => target,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => {
                let why = match e.raw_os_error() {
                    Some(libc::ELOOP) => "a symbolic link on the way".to_owned(),
                    Some(libc::EXDEV) => format!("it leads out of the {name} filesystem"),
                    _ => errno(&e),
                };
                return Err(format!(
                    "{}: {why}, which berth does not follow",
                    path.display()
                ));
            }
        };
        let on = nix::sys::statfs::fstatfs(&target)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filesystem_type();
        if on != magic {
            return Err(format!(
                "{} is not on the container's {name} filesystem: berth masks and protects it there only",
                path.display()
            ));
        }
        return Ok(Some(target));
    }
    root.find(path, Kind::File)
}

/// A detached copy of the host's mount at `path` (recursively with `recursive`).
fn detached(path: &Path, recursive: bool) -> Result<OwnedFd, String> {
    sys::clone_tree(None, &c_string(path.as_os_str(), path)?, recursive)
        .map_err(|e| format!("take {} to mount: {}", path.display(), errno(&e)))
}

/// Sets the read-only, nosuid, nodev, noexec, nosymfollow and atime flags that `flags` has on
/// the mount `mount` (and every mount below it if `recursive`), for `path`.
fn set_attributes(
    mount: BorrowedFd<'_>,
    recursive: bool,
    flags: MsFlags,
    path: &Path,
) -> Result<(), String> {
    sys::mount_setattr(mount, recursive, &MountAttr::from_flags(flags)).map_err(|e| {
        format!(
            "set the flags of the mount for {}: {}",
            path.display(),
            errno(&e)
        )
    })
}

/// Attaches the mount `mount` on the opened `target` (at `path`).
fn attach(mount: &OwnedFd, target: &OwnedFd, path: &Path) -> Result<(), String> {
    sys::move_mount(mount.as_fd(), target.as_fd())
        .map_err(|e| format!("mount on {}: {}", path.display(), errno(&e)))
}

/// An empty file `name` in `dir`, to bind a file over; never through a link.
fn make_file(dir: BorrowedFd<'_>, name: &CString) -> nix::Result<()> {
    let flags = OFlag::O_CREAT
        | OFlag::O_EXCL
        | OFlag::O_WRONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let file = nix::fcntl::openat(dir, name.as_c_str(), flags, Mode::from_bits_truncate(0o644))?;
    nix::sys::stat::fchmod(&file, Mode::from_bits_truncate(0o644))
}

/// A host directory (`/`, a root filesystem), opened as a path.
fn open_directory(path: &Path) -> Result<OwnedFd, String> {
    std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// `path`'s components after its root, `..` included (a lookup keeps it in the root).
fn names(path: &Path) -> Vec<&OsStr> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            Component::ParentDir => Some(OsStr::new("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// `names` joined into a relative path; `.` when there are none.
fn join(names: &[&OsStr]) -> std::ffi::OsString {
    if names.is_empty() {
        return ".".into();
    }
    let joined: PathBuf = names.iter().collect();
    joined.into_os_string()
}

/// `text` as a C string for a system call about `path`.
fn c_string(text: impl AsRef<OsStr>, path: &Path) -> Result<CString, String> {
    CString::new(text.as_ref().as_encoded_bytes())
        .map_err(|_| format!("{}: a NUL byte in the path", path.display()))
}

/// An error as nix shows it (`ENOENT: No such file or directory`).
fn errno(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => Errno::from_raw(code).to_string(),
        None => error.to_string(),
    }
}
