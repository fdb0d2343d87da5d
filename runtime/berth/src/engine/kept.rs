//! What a container's run keeps for the commands that join it later: its effective OCI
//! config beside its state record, read back as `berth exec`'s defaults.

use std::path::PathBuf;

use crate::engine::spec::process_of;
use crate::engine::state::{ContainerDir, State};
use crate::error::Result;
use berth_container::capabilities::CapabilityPolicy;
use oci_spec::runtime::Spec;

/// What `berth exec` takes from the container's run.
#[derive(Debug, PartialEq, Eq)]
pub struct ExecDefaults {
    /// The workload's user in `-u`'s form, looked up again in the container; `None`:
    /// berth's own.
    pub user: Option<String>,
    /// The workload's working directory.
    pub workdir: Option<PathBuf>,
    /// The workload's capabilities, as a command joining it gets them.
    pub capabilities: CapabilityPolicy,
    /// Whether the container runs in the host's root (no root filesystem of its own), and so
    /// shares the host's files, berth's binary among them.
    pub host_root: bool,
}

impl ExecDefaults {
    /// The defaults of the container in `dir`: from its kept config, or, for a container of
    /// a berth that kept none, from its state record.
    pub fn of(dir: &ContainerDir, state: &State) -> Result<Self> {
        let Some(config) = dir.read_config()? else {
            return Ok(ExecDefaults {
                user: state.user.clone(),
                workdir: state.workdir.clone(),
                capabilities: CapabilityPolicy::from_names(
                    &state.capabilities,
                    state.capability_sets.as_ref(),
                    state.no_new_privs,
                ),
                host_root: state.host_root,
            });
        };
        Self::from_config(&config)
    }

    /// The defaults of a run of `config` (a config berth kept).
    pub fn from_config(config: &Spec) -> Result<Self> {
        let (process, capabilities) = process_of(config)?;
        Ok(ExecDefaults {
            user: process.user.as_ref().map(ToString::to_string),
            workdir: process.workdir,
            capabilities: capabilities.for_exec(),
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
        let defaults = ExecDefaults::from_config(&spec.config).unwrap();
        assert_eq!(defaults.user.as_deref(), Some("1000:100"));
        assert_eq!(
            defaults.workdir.as_deref(),
            Some(std::path::Path::new("/srv"))
        );
        assert_eq!(defaults.capabilities, spec.plan.capabilities);
        assert_eq!(defaults.capabilities.sets, None);
        assert!(defaults.host_root);
        let own_user = planned(&["--net", "none", "true"]);
        assert_eq!(
            ExecDefaults::from_config(&own_user.config).unwrap().user,
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
        let defaults = ExecDefaults::from_config(&config).unwrap();
        assert_eq!(defaults.user.as_deref(), Some("1000:100"));
        assert!(!defaults.host_root);
        let sets = defaults.capabilities.sets.unwrap();
        assert_eq!(
            sets.ambient,
            [caps::Capability::CAP_KILL].into_iter().collect(),
            "allowed only"
        );
    }
}
