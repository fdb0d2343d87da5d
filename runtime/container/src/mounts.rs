//! What a container mounts: `-v` volumes, the default mounts of a `--rootfs`, and an OCI
//! config's mounts, all as one `Mount` that the child carries out (see `rootfs.rs`).

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::error::{Error, Result};
use crate::sys::NOSYMFOLLOW;

/// One mount in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where, as an absolute path in the container.
    pub destination: PathBuf,
    /// What is mounted there.
    pub source: Source,
    /// Flags such as MS_RDONLY, MS_NOSUID or MS_NOEXEC (`rootfs.rs` adds MS_NODEV to every
    /// mount but a devpts).
    pub flags: MsFlags,
    /// A propagation to set after the mount (MS_PRIVATE, MS_SLAVE, ...; with MS_REC).
    pub propagation: Option<MsFlags>,
    /// The filesystem's own options (`mode=755,size=65536k`).
    pub data: String,
}

/// What a mount mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host path, bound (recursively with `rbind` and for volumes).
    Bind {
        /// The host path, absolute and canonical.
        path: PathBuf,
        /// Whether the mounts below `path` come along.
        recursive: bool,
    },
    /// A new filesystem instance: proc, sysfs, tmpfs, devpts, mqueue.
    Filesystem {
        /// The filesystem type.
        kind: String,
        /// The source's name (shown in /proc/mounts).
        source: String,
    },
    /// The host's cgroup hierarchy, read-only (an OCI `cgroup` mount; berth makes no cgroups).
    Cgroup,
}

/// The filesystem types a container may mount.
const FILESYSTEMS: [&str; 6] = ["proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup"];

impl Mount {
    fn filesystem(destination: &str, kind: &str, source: &str, flags: MsFlags, data: &str) -> Self {
        Mount {
            destination: destination.into(),
            source: Source::Filesystem {
                kind: kind.into(),
                source: source.into(),
            },
            flags,
            propagation: None,
            data: data.into(),
        }
    }

    /// `-v HOSTPATH:CONTAINERPATH[:ro|rw]`: a recursive bind of an existing host path.
    pub fn parse_volume(text: &str) -> Result<Self> {
        let bad = |why: &str| Error::Invalid(format!("-v {text}: {why}"));
        let parts: Vec<&str> = text.split(':').collect();
        let (host, container, read_only) = match parts[..] {
            [host, container] => (host, container, false),
            [host, container, "ro"] => (host, container, true),
            [host, container, "rw"] => (host, container, false),
            [_, _, option] => {
                return Err(bad(&format!(
                    "unknown option {option:?} (berth knows ro and rw)"
                )))
            }
            _ => return Err(bad("use HOSTPATH:CONTAINERPATH[:ro]")),
        };
        if !host.starts_with('/') {
            return Err(bad(
                "the host path must be absolute (berth has no named volumes)",
            ));
        }
        let path = std::fs::canonicalize(host).map_err(|e| bad(&format!("{host}: {e}")))?;
        let destination = container_path(container).map_err(|why| bad(&why))?;
        Ok(Mount {
            destination,
            source: Source::Bind {
                path,
                recursive: true,
            },
            flags: if read_only {
                MsFlags::MS_RDONLY
            } else {
                MsFlags::empty()
            },
            propagation: None,
            data: String::new(),
        })
    }

    /// Whether this mount goes on /proc or below it.
    pub fn is_under_proc(&self) -> bool {
        self.destination.starts_with("/proc")
    }

    /// An OCI config's mount: `kind` (`bind` or a filesystem type; `None` means bind when the
    /// options say so), `source` (a host path for binds, relative to `bundle`), and its
    /// options, as runc reads them.
    pub fn from_oci(
        destination: &Path,
        kind: Option<&str>,
        source: Option<&Path>,
        options: &[String],
        bundle: &Path,
    ) -> Result<Self> {
        let bad = |why: String| {
            Error::Invalid(format!(
                "config.json: mount on {}: {why}",
                destination.display()
            ))
        };
        let destination = container_path(&destination.to_string_lossy()).map_err(bad)?;
        let parsed = parse_options(options);
        let source = match (kind, parsed.bind) {
            (Some("bind") | None, _) | (_, Some(_)) => {
                let Some(path) = source else {
                    return Err(bad("a bind mount needs a source".into()));
                };
                let path = bundle.join(path);
                let path = std::fs::canonicalize(&path)
                    .map_err(|e| bad(format!("source {}: {e}", path.display())))?;
                // A bind takes no filesystem options, and its flags are set with
                // mount_setattr, which has no sync, dirsync or mand.
                let unsupported =
                    MsFlags::MS_SYNCHRONOUS | MsFlags::MS_DIRSYNC | MsFlags::MS_MANDLOCK;
                if !parsed.data.is_empty() || parsed.flags.intersects(unsupported) {
                    let mut names = parsed.data.clone();
                    names.extend(
                        FLAG_NAMES
                            .iter()
                            .filter(|(_, flag, set)| *set && unsupported.contains(*flag))
                            .filter(|(_, flag, _)| parsed.flags.contains(*flag))
                            .map(|(name, _, _)| (*name).to_owned()),
                    );
                    return Err(bad(format!(
                        "bind option {} is not supported by berth",
                        names.join(", ")
                    )));
                }
                Source::Bind {
                    path,
                    recursive: parsed.bind != Some(false),
                }
            }
            (Some("cgroup" | "cgroup2"), None) => Source::Cgroup,
            (Some(kind), None) if FILESYSTEMS.contains(&kind) => Source::Filesystem {
                kind: kind.into(),
                source: source.map_or(kind.into(), |s| s.to_string_lossy().into_owned()),
            },
            (Some(kind), None) => {
                return Err(bad(format!(
                    "type {kind:?} is not supported (berth mounts bind, {})",
                    FILESYSTEMS.join(", ")
                )))
            }
        };
        Ok(Mount {
            destination,
            source,
            flags: parsed.flags,
            propagation: parsed.propagation,
            data: parsed.data.join(","),
        })
    }

    /// Refuses this mount of an OCI config in a root filesystem of the container's own when
    /// it goes on /proc or below it, other than a proc filesystem at /proc itself.
    pub fn check_clear_of_proc(&self) -> Result<()> {
        let proc_at_proc = self.destination == Path::new("/proc")
            && matches!(&self.source, Source::Filesystem { kind, .. } if kind == "proc");
        if self.is_under_proc() && !proc_at_proc {
            return Err(Error::Invalid(format!(
                "config.json: mount on {}: berth mounts nothing on /proc or below it but a \
                 proc filesystem at /proc itself, so that its masked and read-only paths stay \
                 as they are (runc's exception for lxcfs's binds over a few /proc files is \
                 not made)",
                self.destination.display()
            )));
        }
        Ok(())
    }

    /// This mount as an OCI config's, its paths as they are (a config in memory holds any
    /// path; only its JSON needs UTF-8).
    pub fn to_oci_mount(&self) -> oci_spec::runtime::Mount {
        let (_, kind, source, options) = self.to_oci();
        let mut mount = oci_spec::runtime::Mount::default();
        mount.set_destination(self.destination.clone());
        mount.set_typ(Some(kind));
        mount.set_source(Some(match &self.source {
            Source::Bind { path, .. } => path.clone(),
            _ => source.into(),
        }));
        mount.set_options(Some(options));
        mount
    }

    /// The OCI form of this mount: (destination, type, source, options).
    pub fn to_oci(&self) -> (String, String, String, Vec<String>) {
        let mut named = MsFlags::empty();
        let mut options: Vec<String> = Vec::new();
        for (name, flag, set) in FLAG_NAMES {
            if set && self.flags.contains(flag) && !named.contains(flag) {
                named |= flag;
                options.push(name.to_owned());
            }
        }
        options.extend(
            self.data
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_owned),
        );
        if let Some(propagation) = self.propagation {
            let name = PROPAGATION_NAMES
                .iter()
                .find(|(_, flags)| *flags == propagation)
                .map(|(name, _)| *name);
            options.extend(name.map(str::to_owned));
        }
        let (kind, source) = match &self.source {
            Source::Bind { path, recursive } => {
                options.insert(0, if *recursive { "rbind" } else { "bind" }.into());
                ("bind".to_owned(), path.to_string_lossy().into_owned())
            }
            Source::Filesystem { kind, source } => (kind.clone(), source.clone()),
            Source::Cgroup => ("cgroup".to_owned(), "cgroup".to_owned()),
        };
        (
            self.destination.to_string_lossy().into_owned(),
            kind,
            source,
            options,
        )
    }
}

/// A path in the container: absolute, normalized, not `/` itself, no `..`.
fn container_path(text: &str) -> std::result::Result<PathBuf, String> {
    let path = Path::new(text);
    if !path.is_absolute() {
        return Err(format!("{text}: the container path must be absolute"));
    }
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("{text}: the container path may not contain '..'"));
    }
    let normal: PathBuf = path.components().collect();
    if normal == Path::new("/") {
        return Err("a mount on / itself: use --rootfs (or root.path) instead".into());
    }
    Ok(normal)
}

/// The mounts of every `--rootfs` container, the ones docker and `runc spec` make: /proc, a
/// /dev of its own (berth binds the usual devices into it), its devpts and shm, and a
/// read-only /sys.
pub fn rootfs_defaults() -> Vec<Mount> {
    let nosuid_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    vec![
        Mount::filesystem("/proc", "proc", "proc", nosuid_noexec, ""),
        Mount::filesystem(
            "/dev",
            "tmpfs",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
            "mode=755,size=65536k",
        ),
        Mount::filesystem(
            "/dev/pts",
            "devpts",
            "devpts",
            nosuid_noexec,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
        Mount::filesystem(
            "/dev/shm",
            "tmpfs",
            "shm",
            nosuid_noexec,
            "mode=1777,size=65536k",
        ),
        Mount::filesystem(
            "/sys",
            "sysfs",
            "sysfs",
            nosuid_noexec | MsFlags::MS_RDONLY,
            "",
        ),
    ]
}

/// A fresh /proc over the host's, for a private PID namespace in the host's root.
pub fn proc_for_private_pids() -> Mount {
    Mount::filesystem(
        "/proc",
        "proc",
        "proc",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        "",
    )
}

/// Paths of /proc and /sys that docker hides in a container (a file gets /dev/null bound
/// over it, a directory an empty read-only tmpfs).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths of /proc that docker makes read-only in a container.
pub const READ_ONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Mount options by name: (name, flag, whether the option sets the flag or clears it).
const FLAG_NAMES: [(&str, MsFlags, bool); 23] = [
    ("ro", MsFlags::MS_RDONLY, true),
    // A bind's flags go on its whole tree, so read-only is recursive anyway.
    ("rro", MsFlags::MS_RDONLY, true),
    ("nosymfollow", NOSYMFOLLOW, true),
    ("symfollow", NOSYMFOLLOW, false),
    ("rw", MsFlags::MS_RDONLY, false),
    ("nosuid", MsFlags::MS_NOSUID, true),
    ("suid", MsFlags::MS_NOSUID, false),
    ("nodev", MsFlags::MS_NODEV, true),
    ("dev", MsFlags::MS_NODEV, false),
    ("noexec", MsFlags::MS_NOEXEC, true),
    ("exec", MsFlags::MS_NOEXEC, false),
    ("sync", MsFlags::MS_SYNCHRONOUS, true),
    ("async", MsFlags::MS_SYNCHRONOUS, false),
    ("dirsync", MsFlags::MS_DIRSYNC, true),
    ("noatime", MsFlags::MS_NOATIME, true),
    ("atime", MsFlags::MS_NOATIME, false),
    ("nodiratime", MsFlags::MS_NODIRATIME, true),
    ("diratime", MsFlags::MS_NODIRATIME, false),
    ("relatime", MsFlags::MS_RELATIME, true),
    ("norelatime", MsFlags::MS_RELATIME, false),
    ("strictatime", MsFlags::MS_STRICTATIME, true),
    ("nostrictatime", MsFlags::MS_STRICTATIME, false),
    ("mand", MsFlags::MS_MANDLOCK, true),
];

/// Propagations by name.
const PROPAGATION_NAMES: [(&str, MsFlags); 8] = [
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

struct Options {
    flags: MsFlags,
    propagation: Option<MsFlags>,
    /// `Some(true)`: rbind, `Some(false)`: bind.
    bind: Option<bool>,
    data: Vec<String>,
}

/// Splits OCI mount options into flags, a propagation, bind or rbind, and the filesystem's own
/// options (passed to the kernel as they are, so an unknown one fails the mount, by name).
fn parse_options(options: &[String]) -> Options {
    let mut parsed = Options {
        flags: MsFlags::empty(),
        propagation: None,
        bind: None,
        data: Vec::new(),
    };
    for option in options {
        if let Some((_, flag, set)) = FLAG_NAMES.iter().find(|(name, _, _)| name == option) {
            parsed.flags.set(*flag, *set);
            continue;
        }
        match option.as_str() {
            "bind" => parsed.bind = Some(false),
            "rbind" => parsed.bind = Some(true),
            _ => match PROPAGATION_NAMES.iter().find(|(name, _)| name == option) {
                Some((_, propagation)) => parsed.propagation = Some(*propagation),
                None => parsed.data.push(option.clone()),
            },
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_are_absolute_existing_paths_with_ro_or_rw() {
        let mount = Mount::parse_volume("/tmp:/data:ro").unwrap();
        assert_eq!(mount.destination, Path::new("/data"));
        assert!(mount.flags.contains(MsFlags::MS_RDONLY));
        assert!(Mount::parse_volume("/tmp:/data").unwrap().flags.is_empty());
        for bad in [
            "tmp:/data",
            "/tmp:data",
            "/tmp:/",
            "/tmp:/a/../b",
            "/tmp:/data:z",
            "/tmp",
            "/no/such/path/here:/data",
        ] {
            assert!(Mount::parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn oci_options_become_flags_propagation_and_data() {
        let options: Vec<String> = ["nosuid", "rw", "ro", "rprivate", "mode=755", "size=1k"]
            .map(String::from)
            .to_vec();
        let mount = Mount::from_oci(
            Path::new("/dev"),
            Some("tmpfs"),
            None,
            &options,
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(mount.flags, MsFlags::MS_NOSUID | MsFlags::MS_RDONLY);
        assert_eq!(
            mount.propagation,
            Some(MsFlags::MS_PRIVATE | MsFlags::MS_REC)
        );
        assert_eq!(mount.data, "mode=755,size=1k");
        let err = Mount::from_oci(Path::new("/x"), Some("nfs"), None, &[], Path::new("/"));
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("\"nfs\" is not supported"));
    }

    #[test]
    fn every_mount_berth_makes_round_trips_through_the_oci_form() {
        use std::os::unix::ffi::OsStrExt;
        let mut propagated = Mount::parse_volume("/tmp:/data:ro").unwrap();
        propagated.propagation = Some(MsFlags::MS_SLAVE | MsFlags::MS_REC);
        // A host path that is no UTF-8, reached through a link that is.
        let scratch = std::env::temp_dir().join(format!("berth-mounts-{}", std::process::id()));
        let latin1 = scratch.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
        std::fs::create_dir_all(&latin1).unwrap();
        let link = scratch.join("link");
        std::os::unix::fs::symlink(&latin1, &link).unwrap();
        let not_utf8 = Mount::parse_volume(&format!("{}:/data", link.display())).unwrap();
        let made = rootfs_defaults().into_iter().chain([
            proc_for_private_pids(),
            Mount::parse_volume("/tmp:/data").unwrap(),
            Mount::parse_volume("/tmp:/data:ro").unwrap(),
            propagated,
            not_utf8,
        ]);
        for mount in made {
            let oci = mount.to_oci_mount();
            let back = Mount::from_oci(
                oci.destination(),
                oci.typ().as_deref(),
                oci.source().as_deref(),
                oci.options().as_deref().unwrap_or_default(),
                Path::new("/"),
            )
            .unwrap();
            assert_eq!(back, mount);
        }
        std::fs::remove_dir_all(&scratch).unwrap();
    }
}
