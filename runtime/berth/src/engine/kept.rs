//! What a container's run keeps of its process for the commands that come later: its
//! effective OCI config beside its state record, read back as `berth exec`'s defaults and
//! `berth inspect`'s fields.

use std::path::PathBuf;

use crate::engine::spec::process_of;
use crate::engine::state::{ContainerDir, State};
use crate::error::{Error, Result};
use berth_container::capabilities::CapabilityPolicy;
use oci_spec::runtime::Spec;

/// The process of a container's run, as it was asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct KeptProcess {
    /// The workload's user in `-u`'s form, looked up again in the container; `None`:
    /// berth's own.
    pub user: Option<String>,
    /// The workload's working directory.
    pub workdir: Option<PathBuf>,
    /// The workload's capabilities (a command that joins it gets them as
    /// [`CapabilityPolicy::for_exec`] says).
    pub capabilities: CapabilityPolicy,
    /// Whether the container runs in the host's root (no root filesystem of its own), and so
    /// shares the host's files, berth's binary among them.
    pub host_root: bool,
}

impl KeptProcess {
    /// The process of the container in `dir`: from its kept config, or, for a container of
    /// a berth that kept none, from its state record.
    pub fn of(dir: &ContainerDir, state: &State) -> Result<Self> {
        if state.kept_config {
            let Some(config) = dir.read_config()? else {
                return Err(Error::Failed(format!(
                    "{}: the record says the run kept its config, but there is none",
                    dir.path().join("config.json").display()
                )));
            };
            return Self::from_config(&config);
        }
        Ok(KeptProcess {
            user: state.user.clone(),
            workdir: state.workdir.clone(),
            capabilities: CapabilityPolicy::from_names(
                &state.capabilities,
                state.capability_sets.as_ref(),
                state.no_new_privs,
            ),
            host_root: state.host_root,
        })
    }

    /// The process of a run of `config` (a config berth kept).
    pub fn from_config(config: &Spec) -> Result<Self> {
        let (process, capabilities) = process_of(config)?;
        Ok(KeptProcess {
            user: process.user.as_ref().map(ToString::to_string),
            workdir: process.workdir,
            capabilities,
            host_root: config.root().is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::tests::planned;

    #[test]
    fn a_run_of_flags_gives_exec_its_user_directory_and_dockers_capability_rule() {
        let spec = planned(&[
            "--net",
            "none",
            "-u",
            "1000:100",
            "-w",
            "/srv",
            "--cap-add",
            "SYS_ADMIN",
            "true",
        ]);
        let kept = KeptProcess::from_config(&spec.config).unwrap();
        assert_eq!(kept.user.as_deref(), Some("1000:100"));
        assert_eq!(kept.workdir.as_deref(), Some(std::path::Path::new("/srv")));
        assert_eq!(kept.capabilities, spec.plan.capabilities);
        assert_eq!(kept.capabilities.sets, None);
        assert!(kept.host_root);
        let own_user = planned(&["--net", "none", "true"]);
        assert_eq!(
            KeptProcess::from_config(&own_user.config).unwrap().user,
            None,
            "berth's own"
        );
    }

    #[test]
    fn a_bundles_config_gives_exec_its_ids_and_the_sets_it_may_keep() {
        let config: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 1000, "gid": 100},
                        "capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN"],
                                         "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"],
                                         "ambient": ["CAP_KILL", "CAP_CHOWN"]}},
            "root": {"path": "rootfs"}
        }))
        .unwrap();
        let kept = KeptProcess::from_config(&config).unwrap();
        assert_eq!(kept.user.as_deref(), Some("1000:100"));
        assert!(!kept.host_root);
        assert_eq!(
            kept.capabilities.sets.as_ref().unwrap().ambient.len(),
            2,
            "as it says"
        );
        let for_exec = kept.capabilities.for_exec().sets.unwrap();
        assert_eq!(
            for_exec.ambient,
            [caps::Capability::CAP_KILL].into_iter().collect(),
            "allowed"
        );
    }
}
