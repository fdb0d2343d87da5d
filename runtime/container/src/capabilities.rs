//! Capabilities: every container starts from docker's default set, changed by `--cap-add`,
//! `--cap-drop` and `--privileged`, and runs with no_new_privs unless privileged.

use caps::{CapSet, Capability, CapsHashSet};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::user::Ids;

/// docker's default capabilities.
pub const DEFAULT: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// What the workload may keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityPolicy {
    /// The capabilities left in the bounding set, and, unless `sets` says otherwise, in the
    /// permitted and effective ones (the inheritable and ambient sets are emptied).
    pub keep: CapsHashSet,
    /// An OCI config's exact process sets, kept across a change of user.
    pub sets: Option<ProcessSets>,
    /// Whether to set no_new_privs (setuid binaries and file capabilities grant nothing).
    pub no_new_privs: bool,
}

/// An OCI config's process sets by capability name, as an earlier berth's container record
/// kept them and `berth inspect` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SetNames {
    /// The effective set.
    pub effective: Vec<String>,
    /// The permitted set.
    pub permitted: Vec<String>,
    /// The inheritable set.
    pub inheritable: Vec<String>,
    /// The ambient set.
    pub ambient: Vec<String>,
}

/// `set` as an OCI config's capabilities.
pub fn to_oci(set: &CapsHashSet) -> oci_spec::runtime::Capabilities {
    set.iter()
        .map(|cap| {
            let name = cap.to_string();
            let known = name.strip_prefix("CAP_").and_then(|name| name.parse().ok());
            known.expect("oci-spec names every capability caps knows (a unit test checks)")
        })
        .collect()
}

/// An OCI config's capabilities, or the name of the first one berth does not know.
pub fn from_oci<'a>(
    set: impl IntoIterator<Item = &'a oci_spec::runtime::Capability>,
) -> std::result::Result<CapsHashSet, String> {
    set.into_iter()
        .map(|cap| {
            let name = format!("CAP_{cap}");
            name.parse().map_err(|_| name)
        })
        .collect()
}

fn names_of(set: &CapsHashSet) -> Vec<String> {
    let mut names: Vec<String> = set.iter().map(|cap| cap.to_string()).collect();
    names.sort();
    names
}

fn parse_recorded(names: &[String]) -> CapsHashSet {
    names.iter().filter_map(|name| name.parse().ok()).collect()
}

/// The capability sets of a process, as an OCI config gives them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessSets {
    /// The effective set.
    pub effective: CapsHashSet,
    /// The permitted set.
    pub permitted: CapsHashSet,
    /// The inheritable set.
    pub inheritable: CapsHashSet,
    /// The ambient set.
    pub ambient: CapsHashSet,
}

impl CapabilityPolicy {
    /// docker's rules (moby's TweakCapabilities): `--privileged` gets every capability and
    /// ignores the rest; `--cap-add ALL` gets every one but the named drops; `--cap-drop ALL`
    /// keeps only the named additions; otherwise the default set less the drops, plus the adds.
    pub fn from_args(add: &[String], drop: &[String], privileged: bool) -> Result<Self> {
        let add = parse_names(add, "--cap-add")?;
        let drop = parse_names(drop, "--cap-drop")?;
        let keep: CapsHashSet = if privileged {
            caps::all()
        } else if add.all {
            caps::all()
                .into_iter()
                .filter(|cap| !drop.named.contains(cap))
                .collect()
        } else if drop.all {
            add.named.into_iter().collect()
        } else {
            DEFAULT
                .into_iter()
                .filter(|cap| !drop.named.contains(cap))
                .chain(add.named)
                .collect()
        };
        Ok(CapabilityPolicy {
            keep,
            sets: None,
            no_new_privs: !privileged,
        })
    }

    /// The kept capabilities by name, sorted (`CAP_CHOWN`, ...).
    pub fn names(&self) -> Vec<String> {
        names_of(&self.keep)
    }

    /// The OCI config's process sets by name, if it gave them.
    pub fn set_names(&self) -> Option<SetNames> {
        self.sets.as_ref().map(|sets| SetNames {
            effective: names_of(&sets.effective),
            permitted: names_of(&sets.permitted),
            inheritable: names_of(&sets.inheritable),
            ambient: names_of(&sets.ambient),
        })
    }

    /// The policy an earlier berth recorded of a container, by name.
    pub fn from_names(names: &[String], sets: Option<&SetNames>, no_new_privs: bool) -> Self {
        CapabilityPolicy {
            keep: parse_recorded(names),
            sets: sets.map(|sets| ProcessSets {
                effective: parse_recorded(&sets.effective),
                permitted: parse_recorded(&sets.permitted),
                inheritable: parse_recorded(&sets.inheritable),
                ambient: parse_recorded(&sets.ambient),
            }),
            no_new_privs,
        }
    }

    /// A container's policy for a command `berth exec` starts in it: ambient capabilities
    /// that the inheritable and permitted sets do not allow are left out (the run skipped
    /// them for root and refused them for another user, and exec's `-u` may name another
    /// user).
    pub fn for_exec(mut self) -> Self {
        if let Some(sets) = &mut self.sets {
            let allowed =
                |cap: &Capability| sets.inheritable.contains(cap) && sets.permitted.contains(cap);
            sets.ambient = sets.ambient.iter().copied().filter(allowed).collect();
        }
        self
    }

    /// Applies the policy to the calling thread, becoming user `ids` on the way; call it last
    /// before the exec, after every step that needs privileges. A user other than root keeps
    /// no capabilities (docker's rule), unless an OCI config gives its sets.
    pub fn apply(&self, ids: Option<&Ids>) -> std::result::Result<(), String> {
        let fail = |what: &str, e: caps::errors::CapsError| format!("{what}: {e}");
        // Nothing can be kept that berth does not hold itself (a sandbox may lack some).
        let held = caps::read(None, CapSet::Permitted)
            .map_err(|e| fail("read the permitted capabilities", e))?;
        let keep: CapsHashSet = self.keep.intersection(&held).copied().collect();
        // The bounding set first (dropping from it needs CAP_SETPCAP, which may go next), by
        // number up to the kernel's last capability (EINVAL: no such capability), so that
        // none newer than this build stays. (Not from /proc/sys/kernel/cap_last_cap: in a
        // root filesystem without /proc, that file would be the root's to write.)
        let kept: u64 = keep.iter().fold(0, |mask, cap| mask | cap.bitmask());
        for index in 0..64u64 {
            if kept & (1 << index) == 0 {
                // SAFETY: prctl(PR_CAPBSET_DROP) takes integer arguments and touches no memory.
                if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, index as libc::c_ulong, 0, 0, 0) }
                    != 0
                {
                    let error = std::io::Error::last_os_error();
                    if error.raw_os_error() == Some(libc::EINVAL) {
                        break;
                    }
                    return Err(format!(
                        "drop capability {index} from the bounding set: {error}"
                    ));
                }
            }
        }
        if let Some(ids) = ids {
            if self.sets.is_some() {
                // SAFETY: prctl(PR_SET_KEEPCAPS) takes integer arguments.
                unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
            }
            ids.become_user()?;
        } else {
            // Root, without the supplementary groups of whoever started berth.
            nix::unistd::setgroups(&[])
                .map_err(|e| format!("clear the supplementary groups: {e}"))?;
        }
        let root = ids.is_none_or(|ids| ids.uid == 0);
        match &self.sets {
            // The kernel emptied the effective and permitted sets when the uid changed from
            // root; the inheritable one stays empty here too (CVE-2022-24769).
            None if !root => {
                caps::clear(None, CapSet::Inheritable)
                    .map_err(|e| fail("clear the inheritable capabilities", e))?;
                caps::clear(None, CapSet::Ambient)
                    .map_err(|e| fail("clear the ambient capabilities", e))?;
            }
            None => {
                // The inheritable set stays empty, as docker's has since CVE-2022-24769.
                caps::clear(None, CapSet::Inheritable)
                    .map_err(|e| fail("clear the inheritable capabilities", e))?;
                caps::set(None, CapSet::Effective, &keep)
                    .map_err(|e| fail("set the effective capabilities", e))?;
                caps::set(None, CapSet::Permitted, &keep)
                    .map_err(|e| fail("set the permitted capabilities", e))?;
                caps::clear(None, CapSet::Ambient)
                    .map_err(|e| fail("clear the ambient capabilities", e))?;
            }
            Some(sets) => {
                let held = |set: &CapsHashSet| -> CapsHashSet {
                    set.intersection(&held).copied().collect()
                };
                caps::set(None, CapSet::Inheritable, &held(&sets.inheritable))
                    .map_err(|e| fail("set the inheritable capabilities", e))?;
                caps::set(None, CapSet::Effective, &held(&sets.effective))
                    .map_err(|e| fail("set the effective capabilities", e))?;
                caps::set(None, CapSet::Permitted, &held(&sets.permitted))
                    .map_err(|e| fail("set the permitted capabilities", e))?;
                caps::clear(None, CapSet::Ambient)
                    .map_err(|e| fail("clear the ambient capabilities", e))?;
                for cap in held(&sets.ambient) {
                    let raisable = sets.inheritable.contains(&cap) && sets.permitted.contains(&cap);
                    // root gets its bounding set at the exec anyway, so an ambient capability
                    // that the other sets do not allow changes nothing for it (`runc spec`
                    // writes such a config); for another user it is an error.
                    if !raisable && root {
                        continue;
                    }
                    caps::raise(None, CapSet::Ambient, cap)
                        .map_err(|e| fail(&format!("raise ambient {cap}"), e))?;
                }
            }
        }
        if self.no_new_privs {
            // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integer arguments and touches no memory.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err(format!(
                    "set no_new_privs: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(())
    }
}

struct Names {
    all: bool,
    named: Vec<Capability>,
}

/// Parses capability names as docker takes them: `NET_ADMIN`, `cap_net_admin`, or `ALL`.
fn parse_names(names: &[String], flag: &str) -> Result<Names> {
    let mut parsed = Names {
        all: false,
        named: Vec::new(),
    };
    for name in names {
        if name.eq_ignore_ascii_case("all") {
            parsed.all = true;
            continue;
        }
        let cap = caps::to_canonical(name).parse().map_err(|_| {
            Error::Invalid(format!(
                "{flag} {name:?}: no such capability (use a name such as NET_ADMIN, or ALL)"
            ))
        })?;
        parsed.named.push(cap);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_capability_round_trips_through_the_oci_form() {
        let all = caps::all();
        let oci = to_oci(&all);
        assert_eq!(oci.len(), all.len());
        assert_eq!(from_oci(&oci).unwrap(), all);
    }

    fn policy(add: &[&str], drop: &[&str]) -> CapabilityPolicy {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        CapabilityPolicy::from_args(&strings(add), &strings(drop), false).unwrap()
    }

    #[test]
    fn default_is_dockers_set_with_no_new_privs() {
        let p = policy(&[], &[]);
        assert_eq!(p.keep.len(), 14);
        assert!(!p.keep.contains(&Capability::CAP_NET_ADMIN));
        assert!(p.no_new_privs);
    }

    #[test]
    fn add_and_drop_follow_docker() {
        let p = policy(&["net_admin"], &["CAP_CHOWN"]);
        assert!(p.keep.contains(&Capability::CAP_NET_ADMIN));
        assert!(!p.keep.contains(&Capability::CAP_CHOWN));
        let only = policy(&["NET_ADMIN"], &["ALL"]);
        assert_eq!(only.keep, [Capability::CAP_NET_ADMIN].into_iter().collect());
        let added_after_dropped = policy(&["NET_ADMIN"], &["NET_ADMIN"]);
        assert!(added_after_dropped
            .keep
            .contains(&Capability::CAP_NET_ADMIN));
        let all_but = policy(&["ALL"], &["SYS_ADMIN"]);
        assert!(all_but.keep.contains(&Capability::CAP_SYS_MODULE));
        assert!(!all_but.keep.contains(&Capability::CAP_SYS_ADMIN));
        assert!(CapabilityPolicy::from_args(&["NOPE".into()], &[], false).is_err());
    }

    #[test]
    fn privileged_keeps_everything_and_allows_new_privileges() {
        let p = CapabilityPolicy::from_args(&[], &["SYS_ADMIN".into()], true).unwrap();
        assert_eq!(p.keep, caps::all());
        assert!(!p.no_new_privs);
    }
}
