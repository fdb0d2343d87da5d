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
//!
//! The order is planned apart from the doing, as bubblewrap's list of setup operations is:
//! `steps` turns the plan into a list of `Step`s (its rules unit-tested, without root), and
//! `enter` carries them out one by one.

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

use crate::mounts::{Mount, Source};
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

/// One step of making a container's filesystem. [`steps`] puts them in order, from the plan
/// alone (so that the order's rules are tested without root); [`enter`] carries them out.
/// Indexes are into the plan's `mounts` and `etc_files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Take mount `i`'s host-side tree (none for a new filesystem).
    TakeSource(usize),
    /// Take the host's device nodes, for a /dev tmpfs.
    TakeDevices,
    /// Take berth's generated file `i` for /etc (in a root filesystem: in the host's root,
    /// binding it takes it).
    TakeEtcFile(usize),
    /// Take the host's /dev/null, once for each masked file.
    TakeNulls,
    /// Pivot into the root filesystem and detach the host's root.
    PivotIntoRoot,
    /// Make every mount of the root `nodev`.
    NoDevices,
    /// Mount `i` of the plan.
    Mount(usize),
    /// Fill the /dev tmpfs with the host's device nodes.
    PopulateDev,
    /// Bind /etc file `i` read-only over its target.
    BindEtcFile(usize),
    /// Change into the working directory, made if missing.
    EnterWorkdir,
    /// Change into the working directory by its path (the host's root: it must exist).
    ChangeDirectory,
    /// Hide the masked paths and make the read-only ones so.
    MaskAndProtect,
    /// The root's own mount: `nodev`, and read-only if asked.
    SealRoot,
}

/// The steps that make `plan`'s filesystem, in order.
///
/// With a root filesystem: 1. everything that comes from the host is taken while the host's
/// root is still there; 2. into the root, where no device node opens from then on; 3. the
/// mounts, then the device nodes and the /etc files over what the mounts put there, then the
/// working directory; /proc and what goes below it come last, so that the root holds no magic
/// link (/proc/PID/root) while mount points, files and the working directory are made; the
/// masks and read-only paths once /proc and /sys are there; the root sealed last.
///
/// In the host's root: the /etc files and the mounts on existing paths, the masks, and the
/// working directory by its path.
fn steps(plan: &FilesystemPlan) -> Vec<Step> {
    let mounts = 0..plan.mounts.len();
    let etc_files = 0..plan.etc_files.len();
    if plan.rootfs.is_none() {
        // Each /etc file is taken once its target is known to be there (see BindEtcFile).
        return etc_files
            .map(Step::BindEtcFile)
            .chain(mounts.flat_map(|i| [Step::TakeSource(i), Step::Mount(i)]))
            .chain([Step::TakeNulls, Step::MaskAndProtect, Step::ChangeDirectory])
            .collect();
    }
    let makes_dev = makes_dev(plan);
    let (late, early): (Vec<usize>, Vec<usize>) = mounts
        .clone()
        .partition(|&i| plan.mounts[i].is_under_proc());
    let mut steps: Vec<Step> = mounts.map(Step::TakeSource).collect();
    steps.extend(makes_dev.then_some(Step::TakeDevices));
    steps.extend(etc_files.clone().map(Step::TakeEtcFile));
    steps.extend([Step::TakeNulls, Step::PivotIntoRoot, Step::NoDevices]);
    steps.extend(early.into_iter().map(Step::Mount));
    steps.extend(makes_dev.then_some(Step::PopulateDev));
    steps.extend(etc_files.map(Step::BindEtcFile));
    steps.push(Step::EnterWorkdir);
    steps.extend(late.into_iter().map(Step::Mount));
    steps.extend([Step::MaskAndProtect, Step::SealRoot]);
    steps
}

/// Whether the plan mounts a tmpfs at /dev, which berth fills with the host's device nodes.
fn makes_dev(plan: &FilesystemPlan) -> bool {
    plan.mounts.iter().any(|m| {
        m.destination == Path::new("/dev")
            && matches!(&m.source, Source::Filesystem { kind, .. } if kind == "tmpfs")
    })
}

/// Makes the container's filesystem (the mounts are private already) and changes to
/// `workdir` (made if missing in a root filesystem), step by step (see `steps`).
pub fn enter(plan: &FilesystemPlan, workdir: &Path) -> Result<(), String> {
    let mut making = Making {
        plan,
        workdir,
        root: match plan.rootfs {
            None => Some(Root::current(false)?),
            Some(_) => None,
        },
        sources: (0..plan.mounts.len()).map(|_| None).collect(),
        devices: Vec::new(),
        etc_files: (0..plan.etc_files.len()).map(|_| None).collect(),
        nulls: Vec::new(),
        kernel: KernelMounts::default(),
    };
    steps(plan)
        .into_iter()
        .try_for_each(|step| making.carry_out(step))
}

/// What the steps took and made so far.
struct Making<'a> {
    plan: &'a FilesystemPlan,
    workdir: &'a Path,
    /// The root mounts go in: the host's from the start, a root filesystem's once pivoted.
    root: Option<Root>,
    sources: Vec<Option<Option<(OwnedFd, bool)>>>,
    devices: Vec<(&'static str, OwnedFd)>,
    etc_files: Vec<Option<OwnedFd>>,
    nulls: Vec<OwnedFd>,
    kernel: KernelMounts,
}

impl Making<'_> {
    fn root(&self) -> &Root {
        self.root
            .as_ref()
            .expect("the steps pivot before they mount")
    }

    fn carry_out(&mut self, step: Step) -> Result<(), String> {
        let plan = self.plan;
        match step {
            Step::TakeSource(i) => self.sources[i] = Some(host_source(&plan.mounts[i])?),
            Step::TakeDevices => {
                self.devices = DEVICES
                    .iter()
                    .map(|name| {
                        detached(&Path::new("/dev").join(name), false).map(|fd| (*name, fd))
                    })
                    .collect::<Result<_, _>>()?
            }
            Step::TakeEtcFile(i) => {
                self.etc_files[i] = Some(detached(&plan.etc_files[i].0, false)?);
            }
            // The host's /dev/null, for each masked file (the root's own could be any device).
            Step::TakeNulls => self.nulls = host_nulls(plan)?,
            Step::PivotIntoRoot => {
                let rootfs = plan
                    .rootfs
                    .as_deref()
                    .expect("only a root filesystem pivots");
                self.root = Some(Root::pivot_into(rootfs)?);
            }
            Step::NoDevices => set_attributes(
                self.root().fd.as_fd(),
                true,
                MsFlags::MS_NODEV,
                Path::new("/"),
            )?,
            Step::Mount(i) => {
                let source = self.sources[i].take().expect("taken before it is mounted");
                let mounted = apply(self.root(), &plan.mounts[i], source)?;
                self.kernel.note(&plan.mounts[i], mounted);
            }
            Step::PopulateDev => {
                let devices = std::mem::take(&mut self.devices);
                populate_dev(self.root(), devices)?;
            }
            Step::BindEtcFile(i) => {
                let (source, target) = (&plan.etc_files[i].0, Path::new(plan.etc_files[i].1));
                // A host without /etc/hostname has nothing to cover; the other two always
                // exist.
                let hosts_root = plan.rootfs.is_none();
                if hosts_root
                    && target == Path::new("/etc/hostname")
                    && self.root().find(target, Kind::File)?.is_none()
                {
                    return Ok(());
                }
                // Taken before the pivot in a root filesystem; in the host's root, here.
                let source = match self.etc_files[i].take() {
                    Some(taken) => taken,
                    None => detached(source, false)?,
                };
                bind_read_only(self.root(), source, target)?;
            }
            Step::EnterWorkdir => {
                let dir = self
                    .root()
                    .target(self.workdir, Kind::Directory)
                    .map_err(|e| format!("working directory {e}"))?;
                fchdir(&dir)
                    .map_err(|e| format!("working directory {}: {e}", self.workdir.display()))?;
            }
            Step::ChangeDirectory => chdir(self.workdir)
                .map_err(|e| format!("working directory {}: {e}", self.workdir.display()))?,
            Step::MaskAndProtect => {
                let nulls = std::mem::take(&mut self.nulls);
                mask_and_protect(self.root(), plan, nulls, &self.kernel)?;
            }
            Step::SealRoot => {
                let mut flags = MsFlags::MS_NODEV;
                if plan.read_only {
                    flags |= MsFlags::MS_RDONLY;
                }
                set_attributes(self.root().fd.as_fd(), false, flags, Path::new("/"))
                    .map_err(|e| format!("the root: {e}"))?;
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::{proc_for_private_pids, rootfs_defaults};

    fn position(steps: &[Step], step: Step) -> usize {
        steps
            .iter()
            .position(|s| *s == step)
            .unwrap_or_else(|| panic!("{step:?} missing from {steps:?}"))
    }

    fn etc_files() -> Vec<(PathBuf, &'static str)> {
        ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
            .into_iter()
            .map(|target| (PathBuf::from("/run/berth/x").join(&target[5..]), target))
            .collect()
    }

    fn in_a_root_filesystem() -> FilesystemPlan {
        let mut mounts = rootfs_defaults();
        mounts.push(Mount::parse_volume("/tmp:/etc/app").unwrap());
        // A mount below /proc, as a bundle may ask.
        let mut below_proc = Mount::parse_volume("/tmp:/opt/x").unwrap();
        below_proc.destination = "/proc/driver/x".into();
        mounts.push(below_proc);
        FilesystemPlan {
            rootfs: Some("/srv/root".into()),
            read_only: true,
            mounts,
            etc_files: etc_files(),
            masked_paths: vec!["/proc/kcore".into()],
            read_only_paths: vec!["/proc/sys".into()],
        }
    }

    #[test]
    fn in_a_root_filesystem_everything_from_the_host_is_taken_before_the_pivot() {
        let plan = in_a_root_filesystem();
        let steps = steps(&plan);
        let pivot = position(&steps, Step::PivotIntoRoot);
        assert_eq!(
            steps[pivot + 1],
            Step::NoDevices,
            "no device opens after the pivot"
        );
        for (at, step) in steps.iter().enumerate() {
            let takes = matches!(
                step,
                Step::TakeSource(_) | Step::TakeDevices | Step::TakeEtcFile(_) | Step::TakeNulls
            );
            assert_eq!(takes, at < pivot, "{step:?} at {at}, the pivot at {pivot}");
        }
        // Each mount and /etc file is taken once, before it is used.
        for i in 0..plan.mounts.len() {
            assert!(position(&steps, Step::TakeSource(i)) < position(&steps, Step::Mount(i)));
        }
        for i in 0..plan.etc_files.len() {
            assert!(
                position(&steps, Step::TakeEtcFile(i)) < position(&steps, Step::BindEtcFile(i))
            );
        }
    }

    #[test]
    fn proc_comes_after_every_other_mount_and_the_working_directory() {
        let plan = in_a_root_filesystem();
        let steps = steps(&plan);
        let workdir = position(&steps, Step::EnterWorkdir);
        for (i, mount) in plan.mounts.iter().enumerate() {
            let at = position(&steps, Step::Mount(i));
            if mount.is_under_proc() {
                assert!(
                    at > workdir,
                    "{} before the working directory",
                    mount.destination.display()
                );
            } else {
                assert!(
                    at < workdir,
                    "{} after the working directory",
                    mount.destination.display()
                );
                // The /etc files go over what the mounts put there (a volume on /etc).
                assert!(at < position(&steps, Step::BindEtcFile(0)));
            }
        }
        assert!(position(&steps, Step::PopulateDev) < position(&steps, Step::BindEtcFile(0)));
        // The masks once /proc and /sys are there, and the root sealed last.
        let masks = position(&steps, Step::MaskAndProtect);
        assert!((0..plan.mounts.len()).all(|i| position(&steps, Step::Mount(i)) < masks));
        assert_eq!(
            steps[steps.len() - 2..],
            [Step::MaskAndProtect, Step::SealRoot]
        );
    }

    #[test]
    fn a_root_without_a_dev_tmpfs_gets_no_device_nodes() {
        let mut plan = in_a_root_filesystem();
        plan.mounts.retain(|m| m.destination != Path::new("/dev"));
        let steps = steps(&plan);
        assert!(!steps.contains(&Step::TakeDevices));
        assert!(!steps.contains(&Step::PopulateDev));
    }

    #[test]
    fn in_the_hosts_root_nothing_pivots_and_the_directory_is_changed_last() {
        let plan = FilesystemPlan {
            rootfs: None,
            mounts: vec![
                Mount::parse_volume("/tmp:/mnt").unwrap(),
                proc_for_private_pids(),
            ],
            etc_files: etc_files(),
            ..FilesystemPlan::default()
        };
        let steps = steps(&plan);
        assert!(!steps.contains(&Step::PivotIntoRoot) && !steps.contains(&Step::SealRoot));
        assert!(
            !steps.contains(&Step::EnterWorkdir),
            "nothing is made in the host's root"
        );
        assert_eq!(steps.last(), Some(&Step::ChangeDirectory));
        // An /etc file is taken only where its target is (the host may have no /etc/hostname).
        assert!(!steps.iter().any(|s| matches!(s, Step::TakeEtcFile(_))));
        for i in 0..plan.mounts.len() {
            assert_eq!(
                position(&steps, Step::TakeSource(i)) + 1,
                position(&steps, Step::Mount(i))
            );
        }
    }
}
