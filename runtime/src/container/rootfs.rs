//! `run --rootfs DIR`: the child makes DIR its root, inside its own mount namespace, with
//! /proc, a read-only /sys, a /dev of its own and berth's files over /etc; the host's root is
//! detached. Runs in the child between the clone and the exec (berth is single-threaded, so
//! it may allocate).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};

use crate::container::child::{bind_read_only, remount_read_only};

/// The device nodes of the container's /dev, bound from the host's.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Makes `rootfs` the root, with `binds` (generated file, target such as `/etc/hosts`) bound
/// read-only inside it; with `read_only`, the root itself is read-only too.
pub fn enter(
    rootfs: &Path,
    binds: &[(PathBuf, &'static str)],
    read_only: bool,
) -> Result<(), String> {
    // The new root must be a mount point of its own.
    mount_at(
        Some(rootfs),
        rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    let inside = |path: &str| rootfs.join(path.trim_start_matches('/'));

    let proc = mount_point(&inside("/proc"))?;
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_at(Some(Path::new("proc")), &proc, Some("proc"), nodev, None)?;
    let sys = mount_point(&inside("/sys"))?;
    mount_at(
        Some(Path::new("sysfs")),
        &sys,
        Some("sysfs"),
        nodev | MsFlags::MS_RDONLY,
        None,
    )?;

    let dev = mount_point(&inside("/dev"))?;
    mount_at(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for device in DEVICES {
        let node = dev.join(device);
        create_file(&node)?;
        mount_at(
            Some(&Path::new("/dev").join(device)),
            &node,
            None,
            MsFlags::MS_BIND,
            None,
        )?;
    }
    let pts = mount_point(&dev.join("pts"))?;
    mount_at(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    let shm = mount_point(&dev.join("shm"))?;
    mount_at(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        nodev,
        Some("mode=1777,size=65536k"),
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))
            .map_err(|e| format!("make /dev/{link}: {e}"))?;
    }

    for (source, target) in binds {
        let file = inside(target);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("make {}: {e}", parent.display()))?;
        }
        create_file(&file)?;
        bind_read_only(source, &file)?;
    }

    // pivot_root(".", "."): the old root is stacked under the new one, then detached.
    chdir(rootfs).map_err(|e| format!("enter {}: {e}", rootfs.display()))?;
    pivot_root(".", ".").map_err(|e| format!("pivot_root into {}: {e}", rootfs.display()))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detach the host's root: {e}"))?;
    chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    if read_only {
        remount_read_only(Path::new("/")).map_err(|e| format!("make / read-only: {e}"))?;
    }
    Ok(())
}

/// A mount point in the root filesystem must not be a link: mounting on it would follow the
/// link, maybe out of the root filesystem, on the host.
fn refuse_link(path: &Path) -> Result<(), String> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(format!(
            "{} is a symbolic link: berth mounts nothing on a link in a root filesystem",
            path.display()
        )),
        _ => Ok(()),
    }
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

/// `path` as a directory to mount on, made if missing.
fn mount_point(path: &Path) -> Result<PathBuf, String> {
    refuse_link(path)?;
    fs::create_dir_all(path).map_err(|e| format!("make {}: {e}", path.display()))?;
    Ok(path.to_path_buf())
}

/// An empty file at `path` to bind a file over, unless one is there.
fn create_file(path: &Path) -> Result<(), String> {
    refuse_link(path)?;
    if path.exists() {
        return Ok(());
    }
    fs::File::create(path)
        .and_then(|file| file.set_permissions(fs::Permissions::from_mode(0o644)))
        .map_err(|e| format!("make {}: {e}", path.display()))
}
