//! The container's namespaces, each kind in one place: new, joined by path, or the host's.
//! The clone's flags and the order of the joins come from here alone.

use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

/// How a container has a namespace of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// One of its own, made by the clone.
    New,
    /// An existing one, joined by its path (an OCI bundle's) after the clone.
    Join(PathBuf),
    /// The host's (berth's own), shared.
    Host,
}

/// The namespaces of a container; its mount namespace is always a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    /// Network.
    pub network: Namespace,
    /// Hostname and NIS domain name.
    pub uts: Namespace,
    /// System V IPC and POSIX message queues.
    pub ipc: Namespace,
    /// Process ids.
    pub pid: Namespace,
    /// The cgroup root.
    pub cgroup: Namespace,
    /// The order in which the namespaces other than the network one are joined (an OCI
    /// config's order); a kind joined by path but missing here comes after these.
    pub join_order: Vec<CloneFlags>,
}

impl Namespaces {
    /// `berth run`'s: a network namespace of its own unless `host_network`, a UTS one, a PID
    /// one when `private_pids`; the host's IPC and cgroup namespaces.
    pub fn for_run(host_network: bool, private_pids: bool) -> Self {
        let new_or_host = |new: bool| if new { Namespace::New } else { Namespace::Host };
        Namespaces {
            network: new_or_host(!host_network),
            uts: Namespace::New,
            ipc: Namespace::Host,
            pid: new_or_host(private_pids),
            cgroup: Namespace::Host,
            join_order: Vec::new(),
        }
    }

    /// The clone's flags: CLONE_NEWNS and one CLONE_NEW* for each new namespace.
    pub fn clone_flags(&self) -> libc::c_int {
        self.kinds()
            .into_iter()
            .filter(|(_, namespace)| **namespace == Namespace::New)
            .fold(libc::CLONE_NEWNS, |flags, (kind, _)| flags | kind.bits())
    }

    /// The namespaces to join after the clone, in the order they are joined: the network
    /// first, then the others in `join_order`.
    pub fn joined(&self) -> Vec<(CloneFlags, &Path)> {
        let mut joined: Vec<(CloneFlags, &Path)> = self
            .kinds()
            .into_iter()
            .filter_map(|(kind, namespace)| match namespace {
                Namespace::Join(path) => Some((kind, path.as_path())),
                _ => None,
            })
            .collect();
        let rank = |kind: CloneFlags| match kind {
            CloneFlags::CLONE_NEWNET => 0,
            kind => {
                1 + self
                    .join_order
                    .iter()
                    .position(|k| *k == kind)
                    .unwrap_or(usize::MAX - 1)
            }
        };
        joined.sort_by_key(|(kind, _)| rank(*kind));
        joined
    }

    /// These namespaces as an OCI config lists them: the mount namespace and each other new
    /// one without a path, then each joined one with its path in the order it is joined; the
    /// host's are left out.
    pub fn to_oci(&self) -> Vec<LinuxNamespace> {
        let entry = |kind: CloneFlags, path: Option<&Path>| {
            let typ = match kind {
                CloneFlags::CLONE_NEWNET => LinuxNamespaceType::Network,
                CloneFlags::CLONE_NEWUTS => LinuxNamespaceType::Uts,
                CloneFlags::CLONE_NEWIPC => LinuxNamespaceType::Ipc,
                CloneFlags::CLONE_NEWPID => LinuxNamespaceType::Pid,
                CloneFlags::CLONE_NEWCGROUP => LinuxNamespaceType::Cgroup,
                CloneFlags::CLONE_NEWNS => LinuxNamespaceType::Mount,
                _ => unreachable!("a container's namespaces are the mount one and `kinds`"),
            };
            let mut namespace = LinuxNamespace::default();
            namespace.set_typ(typ);
            namespace.set_path(path.map(Path::to_path_buf));
            namespace
        };
        let new = self
            .kinds()
            .into_iter()
            .filter(|(_, namespace)| **namespace == Namespace::New)
            .map(|(kind, _)| entry(kind, None));
        let joined = self
            .joined()
            .into_iter()
            .map(|(kind, path)| entry(kind, Some(path)));
        std::iter::once(entry(CloneFlags::CLONE_NEWNS, None))
            .chain(new)
            .chain(joined)
            .collect()
    }

    fn kinds(&self) -> [(CloneFlags, &Namespace); 5] {
        [
            (CloneFlags::CLONE_NEWNET, &self.network),
            (CloneFlags::CLONE_NEWUTS, &self.uts),
            (CloneFlags::CLONE_NEWIPC, &self.ipc),
            (CloneFlags::CLONE_NEWPID, &self.pid),
            (CloneFlags::CLONE_NEWCGROUP, &self.cgroup),
        ]
    }
}

/// The inode of the namespace of `kind` (`mnt`, `net`, ...) that `process` (a pid, or `self`)
/// is in; `None` once it has ended.
pub fn namespace_inode(process: impl std::fmt::Display, kind: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{process}/ns/{kind}"))
        .ok()
        .map(|m| m.ino())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_run_clones_its_namespaces_and_joins_none() {
        let run = Namespaces::for_run(false, false);
        assert_eq!(
            run.clone_flags(),
            libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWUTS
        );
        assert!(run.joined().is_empty());
        let host_network_private_pids = Namespaces::for_run(true, true);
        assert_eq!(
            host_network_private_pids.clone_flags(),
            libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWPID
        );
    }

    /// A bundle's namespaces: some joined, some new, some the host's.
    pub(crate) fn a_bundles() -> Namespaces {
        Namespaces {
            network: Namespace::Join("/run/netns/a".into()),
            uts: Namespace::Join("/proc/7/ns/uts".into()),
            ipc: Namespace::New,
            pid: Namespace::Host,
            cgroup: Namespace::Join("/proc/7/ns/cgroup".into()),
            // As config.json lists them: cgroup before uts.
            join_order: vec![CloneFlags::CLONE_NEWCGROUP, CloneFlags::CLONE_NEWUTS],
        }
    }

    #[test]
    fn joined_namespaces_are_not_cloned_and_the_network_is_joined_first() {
        let bundle = a_bundles();
        assert_eq!(bundle.clone_flags(), libc::CLONE_NEWNS | libc::CLONE_NEWIPC);
        let kinds: Vec<CloneFlags> = bundle.joined().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            [
                CloneFlags::CLONE_NEWNET,
                CloneFlags::CLONE_NEWCGROUP,
                CloneFlags::CLONE_NEWUTS
            ]
        );
    }
}
