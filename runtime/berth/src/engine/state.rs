//! The state a container keeps under `--root`: a directory named by its id, holding its state
//! record (who owns it, what was made for it) and the files bound into it.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use berth_container::capabilities::SetNames;
use berth_container::namespaces::namespace_inode;
use berth_container::Lifecycle;
use berth_state::files::{self, check_real_dir};
pub use berth_state::private_dir;

/// The name of the run's kept config in its container's directory.
const CONFIG: &str = "config.json";

/// `config` with every path of its root and mounts as UTF-8 text.
fn as_text(config: &oci_spec::runtime::Spec) -> oci_spec::runtime::Spec {
    let text = |path: &Path| PathBuf::from(path.to_string_lossy().into_owned());
    let mut config = config.clone();
    if let Some(root) = config.root_mut() {
        root.set_path(text(root.path()));
    }
    for mount in config.mounts_mut().iter_mut().flatten() {
        mount.set_destination(text(mount.destination()));
        let source = mount.source().as_deref().map(text);
        mount.set_source(source);
    }
    config
}

/// What berth records of a container, before it makes anything for it: enough for `berth gc`
/// to find and remove all of it once its launcher is gone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The container's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its hostname.
    pub hostname: String,
    /// The network it joined.
    pub network: String,
    /// The command line.
    pub command: String,
    /// Seconds since the epoch when it started.
    pub created: u64,
    /// The launcher (berth's supervising process): pid, start time in clock ticks, boot id.
    pub launcher_pid: u32,
    /// See `launcher_pid`.
    pub launcher_start: u64,
    /// See `launcher_pid`.
    pub boot_id: String,
    /// Its places on bridge networks, once leased and wired (its `--net`'s is the first; a
    /// container on `host`, `none` or a joined namespace has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Of an earlier berth's record, which held its one attachment in four fields: its
    /// address (see [`State::parse`], which makes them an [`Attachment`]).
    #[serde(default, rename = "address", skip_serializing)]
    pub earlier_address: Option<String>,
    /// Of an earlier berth's record: its IPv6 address.
    #[serde(default, rename = "address6", skip_serializing)]
    pub earlier_address6: Option<String>,
    /// Of an earlier berth's record: its published ports.
    #[serde(default, rename = "ports", skip_serializing)]
    pub earlier_ports: Vec<netsetup::PortMapping>,
    /// Of an earlier berth's record: the host end of its veth.
    #[serde(default, rename = "host_interface", skip_serializing)]
    pub earlier_host_interface: Option<String>,
    /// The workload's pid, once cloned.
    pub pid: Option<i32>,
    /// The inode of its mount namespace, once cloned: every process in that namespace is the
    /// container's.
    pub mount_namespace: Option<u64>,
    /// The inode of its network namespace, once cloned, when it has one of its own: a
    /// process of the container may have left the mount namespace but not this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_namespace: Option<u64>,
    /// Whether it runs in the background (`run -d`), its output in `log`.
    #[serde(default)]
    pub detached: bool,
    /// Whether the run keeps its effective config as `config.json` (see `engine::kept`),
    /// where `berth exec` then takes the workload's process from (and refuses without it);
    /// a record of a berth that kept none has the process in the fields below.
    #[serde(default)]
    pub kept_config: bool,
    /// The capabilities the workload keeps (by name), and whether no_new_privs is set; read
    /// only where no config is kept, and written for a berth of before config.json, which may
    /// meet a running container's record (a downgrade).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// See `capabilities`.
    #[serde(default)]
    pub no_new_privs: bool,
    /// A bundle's process capability sets (as `capabilities`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability_sets: Option<SetNames>,
    /// The user the workload runs as, `-u`'s form (as `capabilities`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The workload's working directory (as `capabilities`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<std::path::PathBuf>,
    /// Whether the container runs in the host's root (as `capabilities`). A record without it
    /// (of a berth before the hardening) is taken for a container with a root of its own.
    #[serde(default)]
    pub host_root: bool,
    /// The workload's exit code, once a detached container has ended (its record is kept
    /// for `berth logs` and `berth ps -a` until `berth rm`).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Where it is in its life (OCI's creating, created, running, stopped); see
    /// [`State::lifecycle`] for a record of a berth that did not write it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
}

/// A container's place on a bridge network: its lease, its veth, its published ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The network's name.
    pub network: String,
    /// The interface in the container (`eth0` for the first).
    pub interface: String,
    /// Its leased address.
    pub address: String,
    /// Its IPv6 address on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<String>,
    /// The host end of its veth.
    pub host_interface: String,
    /// The ports published to it on the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<netsetup::PortMapping>,
}

/// Where a container stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Its launcher runs.
    Running,
    /// A detached container whose workload ended with this code.
    Exited(i32),
    /// Its launcher is gone without a word: `berth gc` removes what it left.
    Dead,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Running => write!(f, "running"),
            Status::Exited(code) => write!(f, "exited ({code})"),
            Status::Dead => write!(f, "dead (launcher gone)"),
        }
    }
}

impl State {
    /// A state record as `state.json` holds it; an earlier berth's one attachment, in four
    /// fields of its own, becomes the first of [`State::attachments`].
    pub fn parse(json: &[u8]) -> serde_json::Result<State> {
        let mut state: State = serde_json::from_slice(json)?;
        if let (Some(address), Some(host_interface)) = (
            state.earlier_address.take(),
            state.earlier_host_interface.take(),
        ) {
            state.attachments.insert(
                0,
                Attachment {
                    network: state.network.clone(),
                    interface: "eth0".into(),
                    address,
                    address6: state.earlier_address6.take(),
                    host_interface,
                    ports: std::mem::take(&mut state.earlier_ports),
                },
            );
        }
        Ok(state)
    }

    /// Its first attachment (its `--net`'s), if it has one.
    pub fn first_attachment(&self) -> Option<&Attachment> {
        self.attachments.first()
    }

    /// Whether the launcher that owns the container still runs.
    pub fn launcher_alive(&self) -> bool {
        berth_state::process_alive(self.launcher_pid, self.launcher_start, &self.boot_id)
    }

    /// Where the container stands.
    pub fn status(&self) -> Status {
        match self.exit_code {
            Some(code) => Status::Exited(code),
            None if self.launcher_alive() => Status::Running,
            None => Status::Dead,
        }
    }

    /// Where the container is in its life. A record without it, of an older berth, was
    /// written once the workload ran: running, or stopped once it has an exit code.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.unwrap_or(match self.exit_code {
            Some(_) => Lifecycle::Stopped,
            None => Lifecycle::Running,
        })
    }

    /// Moves the container to `next`, if its lifecycle allows it; the caller writes the
    /// record.
    pub fn advance(&mut self, next: Lifecycle) -> Result<()> {
        let mut lifecycle = self.lifecycle();
        lifecycle.advance(next)?;
        self.lifecycle = Some(lifecycle);
        Ok(())
    }

    /// The workload's pid, if that pid still is the workload: its mount namespace is the
    /// container's (a pid, and a namespace's inode number, are reused once they are free).
    pub fn live_workload(&self) -> Option<i32> {
        let (pid, namespace) = (self.pid?, self.mount_namespace?);
        (namespace_inode(pid, "mnt") == Some(namespace)).then_some(pid)
    }

    /// The first 12 characters of the id, as docker shows it.
    pub fn short_id(&self) -> &str {
        berth_state::short_id(&self.id)
    }
}

/// The error for a user who may not read berth's state under `root` (it is root's, 0700).
pub fn root_only(root: &Path) -> Error {
    Error::Privileges(format!(
        "berth's state in {} is root's: run berth as root, e.g. with sudo",
        root.display()
    ))
}

/// Claims `name` for container `id`: `ROOT/names/NAME` holds the id. A claim whose container
/// is gone (no directory, or a dead launcher) is taken over. Claims are checked and made
/// under one lock (`ROOT/names.lock`), so that two containers never both take a name. Call it
/// once the container's directory exists, so that a claim always points at a directory.
pub fn claim_name(root: &Path, name: &str, id: &str) -> Result<()> {
    let names = private_dir(root, &["names"])?;
    let _lock = berth_state::lock(&root.join("names.lock"))?;
    let path = names.join(name);
    if let Some(holder) = name_holder(&path) {
        let dir = ContainerDir {
            path: root.join("containers").join(&holder),
        };
        if dir
            .read_settled_state()
            .is_ok_and(|state| state.status() != Status::Dead)
        {
            return Err(Error::Invalid(format!(
                "the name {name:?} is already in use by container {}: stop and remove it \
                 (berth stop {name}; berth rm {name}), or choose another name",
                berth_state::short_id(&holder)
            )));
        }
    }
    // A claim of a container that is gone is replaced.
    Ok(berth_state::write_atomically(&path, id.as_bytes(), 0o600)?)
}

/// The id that claim `path` holds, if it is a claim.
fn name_holder(path: &Path) -> Option<String> {
    let bytes = files::read_regular(path, 256, files::Links::Refuse).ok()?;
    let holder = String::from_utf8(bytes).ok()?.trim().to_owned();
    (!holder.is_empty() && !holder.contains('/')).then_some(holder)
}

/// Releases `name`, if container `id` holds it.
pub fn release_name(root: &Path, name: &str, id: &str) {
    let Ok(_lock) = berth_state::lock(&root.join("names.lock")) else {
        return;
    };
    let path = root.join("names").join(name);
    if name_holder(&path).is_some_and(|holder| holder == id) {
        let _ = fs::remove_file(&path);
    }
}

/// A container's directory under `ROOT/containers/`.
#[derive(Debug, Clone)]
pub struct ContainerDir {
    path: PathBuf,
}

impl ContainerDir {
    /// Creates `ROOT/containers/ID` (0700) with its state record already in it: it is made as
    /// `.ID` and renamed into place, so a container directory always has its owner on record.
    pub fn create(root: &Path, state: &State) -> Result<Self> {
        let containers = private_dir(root, &["containers"])?;
        let making = containers.join(format!(".{}", state.id));
        DirBuilder::new()
            .mode(0o700)
            .create(&making)
            .map_err(|e| Error::file(&making, e))?;
        let dir = ContainerDir { path: making };
        dir.write_state(state)?;
        let path = containers.join(&state.id);
        fs::rename(&dir.path, &path).map_err(|e| Error::file(&path, e))?;
        Ok(ContainerDir { path })
    }

    /// The containers under `root` (including ones still being made, named `.ID`), each with
    /// its state or the error reading it (also for an entry that is no directory), oldest
    /// first.
    pub fn list(root: &Path) -> Result<Vec<(ContainerDir, Result<State>)>> {
        let containers = root.join("containers");
        let entries = match fs::read_dir(&containers) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(root_only(root))
            }
            Err(e) => return Err(Error::file(&containers, e)),
        };
        let mut list = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::file(&containers, e))?;
            let dir = ContainerDir { path: entry.path() };
            let state = match check_real_dir(&dir.path).map_err(Error::from) {
                Ok(()) => dir.read_state(),
                // Its container ended (and removed it) since the listing.
                Err(Error::File { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue
                }
                // A stray file or link: listed as what it is, for the caller to skip and say.
                Err(e) => Err(e),
            };
            list.push((dir, state));
        }
        list.sort_by_key(|(_, state)| state.as_ref().map_or(0, |s| s.created));
        Ok(list)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The container named `name`, or whose id starts with `name` (one only).
    pub fn find(root: &Path, name: &str) -> Result<(ContainerDir, State)> {
        let mut found: Vec<(ContainerDir, State)> = Vec::new();
        for (dir, state) in ContainerDir::list(root)? {
            let Ok(state) = state else { continue };
            if state.name == name {
                return Ok((dir, state));
            }
            if !name.is_empty() && state.id.starts_with(name) {
                found.push((dir, state));
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(Error::Invalid(format!("no such container: {name}"))),
            _ => Err(Error::Invalid(format!(
                "{name:?} is the start of more than one container id: give more of it"
            ))),
        }
    }

    /// Writes `name` in the directory, atomically, with `mode`; returns its path.
    pub fn write(&self, name: &str, contents: &[u8], mode: u32) -> Result<PathBuf> {
        let path = self.path.join(name);
        berth_state::write_atomically(&path, contents, mode)?;
        Ok(path)
    }

    /// Notes that `berth exec` starts something in the container (the file `execs`) and holds
    /// the container's teardown back (a shared flock on it) until the returned hold and every
    /// copy of it a child inherited are gone (it is close-on-exec: a child's goes with its
    /// exec). The teardown then looks for every process in the container's namespaces.
    pub fn hold_for_exec(&self) -> Result<Flock<fs::File>> {
        let path = self.exec_marker();
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::file(&path, e))?;
        Flock::lock(file, FlockArg::LockShared)
            .map_err(|(_, errno)| Error::file(&path, errno.into()))
    }

    /// For the teardown: `None` if no `berth exec` ever ran in the container; else waits until
    /// none is on its way in (see [`Self::hold_for_exec`]), and holds the next ones back while
    /// the returned lock lives.
    pub fn wait_for_execs(&self) -> Option<Flock<fs::File>> {
        let file = fs::File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.exec_marker())
            .ok()?;
        Flock::lock(file, FlockArg::LockExclusive).ok()
    }

    /// The file [`Self::hold_for_exec`] makes.
    pub fn exec_marker(&self) -> PathBuf {
        self.path.join("execs")
    }

    /// Writes the state record.
    pub fn write_state(&self, state: &State) -> Result<()> {
        let json = serde_json::to_vec_pretty(state)
            .map_err(|e| Error::Failed(format!("encode state: {e}")))?;
        self.write("state.json", &json, 0o600).map(drop)
    }

    /// Keeps the run's effective OCI config (`config.json`, as runc keeps its bundle's). JSON
    /// holds only UTF-8: a root or a mount's host path that is not is kept as text with its
    /// stray bytes replaced (what is read back of it is only whether there is a root).
    pub fn write_config(&self, config: &oci_spec::runtime::Spec) -> Result<()> {
        let encoded = serde_json::to_vec(config).or_else(|_| serde_json::to_vec(&as_text(config)));
        let json = encoded.map_err(|e| Error::Failed(format!("encode config.json: {e}")))?;
        self.write(CONFIG, &json, 0o600).map(drop)
    }

    /// Reads the run's kept config; `None` for a container of a berth that kept none.
    pub fn read_config(&self) -> Result<Option<oci_spec::runtime::Spec>> {
        let path = self.path.join(CONFIG);
        let text = match files::read_regular(&path, files::CONFIG_LIMIT, files::Links::Refuse) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::file(&path, e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| Error::Invalid(format!("{} is not a valid config: {e}", path.display())))
    }

    /// Reads the state record.
    pub fn read_state(&self) -> Result<State> {
        let path = self.path.join("state.json");
        let text = files::read_regular(&path, files::CONFIG_LIMIT, files::Links::Refuse)
            .map_err(|e| Error::file(&path, e))?;
        State::parse(&text).map_err(|e| {
            Error::Invalid(format!(
                "{} is not a valid state record: {e}",
                path.display()
            ))
        })
    }

    /// Reads the state record, and reads it once more if its launcher looks dead: a launcher
    /// writes a detached container's exit code and then ends, so one that ended between the
    /// first read and the look at it left its last word in the record.
    pub fn read_settled_state(&self) -> Result<State> {
        let state = self.read_state()?;
        if state.status() == Status::Dead {
            return self.read_state();
        }
        Ok(state)
    }

    /// Removes the directory and everything in it.
    pub fn remove(&self) -> Result<()> {
        fs::remove_dir_all(&self.path).map_err(|e| Error::file(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> State {
        State::parse(text.as_bytes()).expect("an earlier release's record parses")
    }

    #[test]
    fn records_of_earlier_releases_are_read() {
        // tests/fixtures/: written by those builds, as they are (see the README there).
        let before_hardening = record(include_str!(
            "../../../../tests/fixtures/a93e1a0/state-web.json"
        ));
        assert_eq!(before_hardening.name, "web");
        let first = before_hardening
            .first_attachment()
            .expect("its one attachment");
        assert_eq!(first.ports[0].host_port, 18080);
        assert_eq!(first.address, "10.201.0.2");
        assert_eq!(
            (first.network.as_str(), first.interface.as_str()),
            ("bridge", "eth0")
        );
        // A record without host_root is taken for a container with a root of its own (exec
        // then takes the read-only view of berth's binary): the safe side.
        assert!(!before_hardening.host_root);
        assert_eq!(before_hardening.network_namespace, None);

        let web = record(include_str!(
            "../../../../tests/fixtures/9563353/state-web.json"
        ));
        assert!(web.host_root && web.detached);
        assert!(web.network_namespace.is_some());
        assert_eq!(web.short_id(), "d232337070d6");
        assert_eq!(web.attachments[0].host_interface, "bthd232337070d6");
        // Its launcher is gone (it ran in another boot, or long ended).
        assert_eq!(web.status(), Status::Dead);

        let db = record(include_str!(
            "../../../../tests/fixtures/9563353/state-db.json"
        ));
        assert_eq!(db.network, "appnet");
        let worker = record(include_str!(
            "../../../../tests/fixtures/9563353/state-worker.json"
        ));
        assert_eq!(worker.user.as_deref(), Some("1000:1000"));
        assert_eq!(worker.workdir.as_deref(), Some(Path::new("/tmp")));
        assert_eq!(worker.capabilities, ["CAP_NET_RAW"]);
        assert_eq!(worker.network, "none");
        assert!(worker.attachments.is_empty());

        // The release before config.json and attachments: a lifecycle, the process's fields.
        let web_e16 = record(include_str!(
            "../../../../tests/fixtures/e16d442/state-web.json"
        ));
        assert_eq!(web_e16.lifecycle(), Lifecycle::Running);
        assert!(
            !web_e16.kept_config,
            "exec takes the process from the record"
        );
        let first = web_e16.first_attachment().expect("its one attachment");
        assert_eq!(
            (first.address.as_str(), first.ports[0].host_port),
            ("10.201.0.2", 18080)
        );
        assert_eq!(first.host_interface, "bth5154ca2c9d73");
        let worker_e16 = record(include_str!(
            "../../../../tests/fixtures/e16d442/state-worker.json"
        ));
        assert_eq!(worker_e16.user.as_deref(), Some("1000:1000"));
        assert_eq!(worker_e16.capabilities, ["CAP_NET_RAW"]);
        assert!(worker_e16.attachments.is_empty() && worker_e16.host_root);

        // They were written once the workload ran: running, none with a lifecycle of its own.
        for state in [&before_hardening, &web, &db, &worker] {
            assert_eq!(state.lifecycle, None);
            assert_eq!(state.lifecycle(), Lifecycle::Running, "{}", state.name);
        }
        // One that a detached run's end rewrote with its exit code: stopped.
        let text = include_str!("../../../../tests/fixtures/9563353/state-web.json");
        let mut ended: serde_json::Value = serde_json::from_str(text).unwrap();
        ended["exit_code"] = serde_json::json!(3);
        let ended = record(&ended.to_string());
        assert_eq!(
            (ended.exit_code, ended.lifecycle()),
            (Some(3), Lifecycle::Stopped)
        );
    }

    #[test]
    fn a_record_moves_through_its_lifecycle_and_keeps_it() {
        let mut state = record(include_str!(
            "../../../../tests/fixtures/9563353/state-web.json"
        ));
        state.lifecycle = Some(Lifecycle::Creating);
        state.advance(Lifecycle::Created).unwrap();
        state.advance(Lifecycle::Running).unwrap();
        let text = serde_json::to_string(&state).unwrap();
        assert!(text.contains(r#""lifecycle":"running""#), "{text}");
        let mut read = record(&text);
        assert_eq!(read.lifecycle(), Lifecycle::Running);
        assert!(read.advance(Lifecycle::Created).is_err());
        assert_eq!(read.lifecycle(), Lifecycle::Running);
        read.advance(Lifecycle::Stopped).unwrap();
        assert_eq!(read.lifecycle(), Lifecycle::Stopped);
    }
}
