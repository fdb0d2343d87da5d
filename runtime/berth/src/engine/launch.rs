//! The way of one run, top to bottom, once its spec is checked: each phase is one function
//! (`record`, `attach`, `write_etc_files`, `start`, `supervise_workload`, `tear_down`), in the
//! order ARCHITECTURE.md numbers them; everything made is recorded in `Made`, which undoes it
//! on any failure and at the end.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use std::net::{IpAddr, Ipv4Addr};

use netsetup::{LeaseFile, LeaseOwner, MemberHosts, Namespace, Netlink};
use nix::unistd::getpid;
use std::os::fd::AsRawFd;

use crate::engine::container_network::{ContainerNetwork, WiredInterface};
use crate::engine::detach;
use crate::engine::host::{
    container_still_attached, warn_about_forward_drops, DYING_NAMESPACE_GRACE,
};
use crate::engine::networks;
use crate::engine::ports::{self, Reservation};
use crate::engine::spec::{Network, RunSpec};
use crate::engine::state::{claim_name, release_name, Attachment, ContainerDir, State};
use crate::error::{Error, Result};
use crate::fault;
use crate::trace;
use berth_container::child::{self, ChildPlan, NetworkHook};
use berth_container::log;
use berth_container::namespaces::namespace_inode;
use berth_container::process::clone_into_namespaces;
use berth_container::rootfs::FilesystemPlan;
use berth_container::supervise::{self, BlockedSignals};
use berth_container::terminal::{stdin_is_a_terminal, InputPipe, Relay, Terminal};
use berth_container::Lifecycle;

/// The container's interface name on a bridge network.
const CONTAINER_INTERFACE: &str = "eth0";

/// Makes the container, runs and supervises the workload, and tears down: the phases below,
/// in the order ARCHITECTURE.md numbers them. Everything a phase makes goes into `made`,
/// which undoes it if a later phase fails, and at the end.
pub fn launch(
    root: &Path,
    spec: &RunSpec,
    signals: &BlockedSignals,
    mut notifier: Option<&mut detach::Notifier>,
) -> Result<u8> {
    let owner = LeaseOwner::this_process(&spec.engine.id)?;
    let mut made = Made::default();
    // 2. The owner on record before anything is made for the container.
    let (mut state, dir) = record(root, spec, &owner, &mut made)?;
    // A detached workload writes into pipes (or its terminal); the supervisor writes the log
    // (its own messages from here on go there too).
    let log_writer = spec
        .engine
        .detached
        .then(|| log::Writer::open(dir.path(), spec.engine.log_options))
        .transpose()?;
    // 3. The lease, then 4. the network (bridge only).
    let mut attached = attach(root, spec, &owner, &mut state, &mut made)?;
    trace::step("network ready");
    // 5. The files bound read-only over /etc in the container.
    let etc_files = write_etc_files(
        &dir,
        spec,
        attached.as_ref().map(|a| a.addr),
        attached.as_mut().and_then(|a| a.member_hosts.take()),
    )?;
    trace::step("wrote the container's files");
    // 6. The clone, and 7. the veth while the child makes the container, then its exec.
    let mut started = start(
        spec, signals, &dir, &mut state, &mut made, attached, etc_files, log_writer,
    )?;
    if let Some(notifier) = notifier.as_mut() {
        notifier.started();
    }
    fault::point("after-exec");
    trace::step("the workload runs");
    // 8. Supervise; then 9. tear down.
    let code = supervise_workload(&mut started)?;
    made.child = None;
    trace::step("the workload ended");
    fault::point("before-teardown");
    tear_down(spec, state, made, started, code)
}

/// Step 2, the owner on record: the container's directory appears with its state in it,
/// before anything is made for it, then its kept config; then its name is claimed. Returns
/// the record and the directory.
fn record(
    root: &Path,
    spec: &RunSpec,
    owner: &LeaseOwner,
    made: &mut Made,
) -> Result<(State, ContainerDir)> {
    let state = State {
        id: spec.engine.id.clone(),
        name: spec.engine.name.clone(),
        hostname: spec.hostname.clone(),
        network: spec.engine.network.name().into(),
        command: spec.command_line(),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        launcher_pid: owner.pid,
        launcher_start: owner.start,
        boot_id: owner.boot.clone(),
        attachments: Vec::new(),
        earlier_address: None,
        earlier_address6: None,
        earlier_ports: Vec::new(),
        earlier_host_interface: None,
        pid: None,
        mount_namespace: None,
        network_namespace: None,
        detached: spec.engine.detached,
        kept_config: true,
        capabilities: spec.plan.capabilities.names(),
        no_new_privs: spec.plan.capabilities.no_new_privs,
        capability_sets: spec.plan.capabilities.set_names(),
        user: spec.plan.process.user.as_ref().map(|user| user.to_string()),
        workdir: spec.plan.process.workdir.clone(),
        host_root: spec.plan.filesystem.rootfs.is_none(),
        exit_code: None,
        lifecycle: Some(Lifecycle::Creating),
    };
    let dir = made
        .container_dir
        .insert(ContainerDir::create(root, &state)?)
        .clone();
    // Beside it, what the run was asked: `berth exec` takes the workload's process from it.
    dir.write_config(&spec.config)?;
    fault::point("after-state");
    if spec.engine.named {
        claim_name(root, &spec.engine.name, &spec.engine.id)?;
        made.name = Some(NameClaim {
            root: root.to_path_buf(),
            name: spec.engine.name.clone(),
            id: spec.engine.id.clone(),
        });
    }
    Ok((state, dir))
}

/// A container's place on a bridge network, once leased and ready.
struct Attached<'a> {
    network: &'a netsetup::NetworkSpec,
    addr: Ipv4Addr,
    bridge_index: u32,
    netlink: Netlink,
    /// A created network's shared hosts file, which the container's /etc/hosts is.
    member_hosts: Option<PathBuf>,
    /// The container's addresses with their prefixes: IPv4, and IPv6 on a dual-stack network.
    addresses: Vec<netsetup::IpNet>,
}

/// Steps 3 and 4, the lease and then the network, on a bridge network (none otherwise): the
/// lease first, so that a bad lease file or a taken address stops the run before any
/// interface is touched; then the bridge and berth's table, the shared hosts file's line, the
/// published ports. The record gains the addresses, ports and host interface name.
fn attach<'a>(
    root: &Path,
    spec: &'a RunSpec,
    owner: &LeaseOwner,
    state: &mut State,
    made: &mut Made,
) -> Result<Option<Attached<'a>>> {
    let Network::Bridge {
        network,
        requested,
        publish,
        ..
    } = &spec.engine.network
    else {
        return Ok(None);
    };
    made.network = Some(networks::InUse::hold(root, network)?);
    let state_dir = networks::state_dir(root, &network.name)?;
    let leases = network.lease_file(&state_dir);
    let mut netlink = Netlink::open()?;
    let deadline = Instant::now() + DYING_NAMESPACE_GRACE;
    let mut taken_over = Vec::new();
    let addr = leases
        .allocate(owner, *requested, |container| {
            let attached = container_still_attached(&mut netlink, container, deadline);
            if !attached {
                taken_over.push(container.to_owned());
            }
            attached
        })
        .map_err(crate::engine::host::with_repair_hint)?;
    made.lease = Some(Lease {
        file: leases,
        container: spec.engine.id.clone(),
    });
    fault::point("after-lease");
    trace::step("leased an address");
    // 4. The network.
    let bridge =
        netsetup::ensure_network(&mut netlink, network, &state_dir, || networks::specs(root))?;
    if !taken_over.is_empty() {
        // The address may have been a dead container's: nothing it published may lead here
        // any more.
        let _lock = ports::lock(root)?;
        netsetup::firewall::ports::unpublish_owned_by(&taken_over)?;
    }
    if bridge.freshly_installed {
        // The table was flushed: the running containers' ports go back in with it.
        if let Err(e) = ports::republish_running(root) {
            eprintln!("berth: warning: publishing the ports of running containers again: {e}");
        }
    }
    if !network.internal {
        warn_about_forward_drops(&network.bridge);
    }
    let mut member_hosts = None;
    if network.name != networks::DEFAULT {
        // Members of a created network find each other by name in a shared hosts file.
        let hosts = networks::member_hosts(&state_dir);
        let mut names = vec![spec.engine.name.as_str()];
        if spec.hostname != spec.engine.name {
            names.push(&spec.hostname);
        }
        hosts.add(addr, &names)?;
        member_hosts = Some(hosts.path().to_path_buf());
        made.member = Some(MemberLine { hosts, addr });
    }
    let addresses = network.container_addresses(addr);
    let mut published = Vec::new();
    if !publish.is_empty() {
        let _lock = ports::lock(root)?;
        let ips: Vec<IpAddr> = addresses.iter().map(|net| net.addr()).collect();
        let reservation = ports::reserve(publish, &ips, &network.name, root)?;
        ports::publish(root, &spec.engine.id, &reservation.mappings)?;
        published = reservation.mappings.clone();
        made.ports = Some(PublishedPorts {
            reservation,
            root: root.to_path_buf(),
        });
        trace::step("published its ports");
    }
    fault::point("after-network");
    state.attachments.push(Attachment {
        network: network.name.clone(),
        interface: CONTAINER_INTERFACE.into(),
        address: addr.to_string(),
        address6: addresses
            .iter()
            .find(|net| matches!(net, netsetup::IpNet::V6(_)))
            .map(|net| net.addr().to_string()),
        host_interface: netsetup::host_interface_name(&spec.engine.id),
        ports: published,
    });
    Ok(Some(Attached {
        network,
        addr,
        bridge_index: bridge.index,
        netlink,
        member_hosts,
        addresses,
    }))
}

/// The running workload, as supervision and teardown need it.
struct Started {
    pid: nix::unistd::Pid,
    signal_fd: nix::sys::signalfd::SignalFd,
    log_relay: Option<log::Relay>,
    terminal_master: Option<std::os::fd::OwnedFd>,
    input: Option<InputPipe>,
    /// The terminal's relay, from the start of supervision until teardown has ended what
    /// the workload left (its last output then reaches berth's terminal).
    relay: Option<Relay>,
    /// The host's netlink socket of a bridge run, kept until the run's end.
    _host_netlink: Option<Netlink>,
}

/// Step 6, the clone: the child waits for the go-ahead while berth wires its network; then
/// step 7, child and parent in parallel: the veth (one netlink message, the peer born in the
/// child's namespace as eth0) while the child sets its hostname, mounts and capabilities and
/// execs. Returns once the exec is reported, the record saying the container runs.
#[allow(clippy::too_many_arguments)]
fn start(
    spec: &RunSpec,
    signals: &BlockedSignals,
    dir: &ContainerDir,
    state: &mut State,
    made: &mut Made,
    attached: Option<Attached>,
    etc_files: Vec<(PathBuf, &'static str)>,
    log_writer: Option<log::Writer>,
) -> Result<Started> {
    supervise::become_subreaper()?;
    let signal_fd = signals.listen()?;
    let terminal = spec
        .plan
        .process
        .terminal
        .then(|| Terminal::open(spec.plan.process.console_size))
        .transpose()?;
    let log_pipes = (spec.engine.detached && terminal.is_none())
        .then(log::Pipes::new)
        .transpose()?;
    // A terminal as stdin is berth's to read, never the container's (see InputPipe).
    let input = (!spec.engine.detached && terminal.is_none() && stdin_is_a_terminal())
        .then(InputPipe::new)
        .transpose()?;
    let mut stdio = [None; 3];
    if let Some(pipes) = &log_pipes {
        stdio[1] = Some(pipes.workload[0].as_raw_fd());
        stdio[2] = Some(pipes.workload[1].as_raw_fd());
    }
    stdio[0] = input.as_ref().map(|pipe| pipe.workload.as_raw_fd());
    let (wired, network_hook) = match attached {
        Some(attached) => {
            let hook = ContainerNetwork {
                interface: Some(WiredInterface {
                    name: CONTAINER_INTERFACE,
                    addresses: attached.addresses.clone(),
                    gateways: attached.network.container_gateways(),
                }),
            };
            (Some(attached), Some(Box::new(hook) as Box<dyn NetworkHook>))
        }
        None => match &spec.engine.network {
            Network::Host | Network::Join => (None, None),
            _ => (
                None,
                Some(Box::new(ContainerNetwork { interface: None }) as Box<dyn NetworkHook>),
            ),
        },
    };
    let plan = ChildPlan {
        parent: getpid(),
        network: network_hook,
        hostname: spec.hostname.clone(),
        domainname: spec.plan.domainname.clone(),
        namespaces: spec.plan.namespaces.clone(),
        sysctl: spec.plan.sysctl.clone(),
        filesystem: FilesystemPlan {
            etc_files,
            ..spec.plan.filesystem.clone()
        },
        process: spec.plan.process.clone(),
        terminal: terminal.as_ref().map(|t| t.slave.as_raw_fd()),
        stdio,
        argv: spec.plan.argv.clone(),
        env: spec.plan.env.clone(),
        path: spec.path().to_vec(),
        signal_mask: signals.original,
        capabilities: spec.plan.capabilities.clone(),
    };
    let flags = spec.plan.namespaces.clone_flags();
    let container = made
        .child
        .insert(clone_into_namespaces(flags, wired.is_some(), |ends| {
            child::run(&plan, ends)
        })?);
    // berth keeps only its end of the terminal, and of the log's pipes: the output ends when
    // the workload's ends do. A detached container's terminal goes to its log.
    let mut terminal_master = terminal.map(|terminal| terminal.master);
    let log_relay = match (log_writer, log_pipes, terminal_master.take()) {
        (Some(writer), Some(pipes), _) => {
            let [out, err] = pipes.supervisor;
            Some(log::Relay::new([Some(out), Some(err)], writer))
        }
        (Some(writer), None, Some(master)) => Some(log::Relay::new([Some(master), None], writer)),
        (_, _, master) => {
            terminal_master = master;
            None
        }
    };
    fault::point("after-clone");
    // On record before the veth: the workload's pid and its mount namespace, by which
    // `berth gc` finds every process of the container.
    state.pid = Some(container.pid.as_raw());
    state.mount_namespace = namespace_inode(container.pid.as_raw(), "mnt");
    // Its own network namespace, where a process of the container could outlive it.
    state.network_namespace = match spec.engine.network {
        Network::Host | Network::Join => None,
        _ => namespace_inode(container.pid.as_raw(), "net"),
    };

    dir.write_state(state)?;
    trace::step("cloned the child");

    // 7. The veth.
    let mut host_netlink = None;
    let host_interface = state.first_attachment().map(|a| a.host_interface.clone());
    if let (Some(mut attached), Some(host_name)) = (wired, &host_interface) {
        let wired = netsetup::attach(
            &mut attached.netlink,
            attached.bridge_index,
            host_name,
            CONTAINER_INTERFACE,
            attached.addr,
            Namespace::Pid(container.pid.as_raw() as u32),
        )
        .map_err(Error::from)
        .and_then(|()| container.go().map_err(Error::from));
        if let Err(error) = wired {
            // If the child failed first (and so vanished), its own report says why.
            return Err(match container.wait_for_exec(&spec.command_name()) {
                Err(child_error @ berth_container::Error::ChildSetup(_)) => child_error.into(),
                _ => error,
            });
        }
        fault::point("after-veth");
        host_netlink = Some(attached.netlink);
    }
    trace::step("created the veth");

    // Still 7: the child sets its hostname, mounts and capabilities and execs; wait for that.
    container.wait_for_exec(&spec.command_name())?;
    // Made, and its workload executed: from here `berth exec` may enter it (not before: its
    // filesystem may still be the host's, its capabilities not yet dropped).
    state.advance(Lifecycle::Created)?;
    state.advance(Lifecycle::Running)?;
    dir.write_state(state)?;
    Ok(Started {
        pid: container.pid,
        signal_fd,
        log_relay,
        terminal_master,
        input,
        relay: None,
        _host_netlink: host_netlink,
    })
}

/// Step 8, supervision: berth's terminal relayed, its stdin copied in, signals forwarded, the log
/// written, until the workload ends; returns its exit code.
fn supervise_workload(started: &mut Started) -> Result<i32> {
    let relay = started
        .terminal_master
        .take()
        .map(Relay::start)
        .transpose()?;
    if let Some(input) = started.input.take() {
        input.start();
    }
    started.relay = relay;
    Ok(supervise::supervise(
        started.pid,
        &started.signal_fd,
        started.log_relay.as_mut(),
    )?)
}

/// Step 9, teardown: what the workload left running (and what `berth exec` started, once any
/// exec on its way in has run), the log's last lines, the terminal; then what `made` holds, in
/// its order. A detached container's record stays, saying it exited.
fn tear_down(
    spec: &RunSpec,
    mut state: State,
    mut made: Made,
    mut started: Started,
    code: i32,
) -> Result<u8> {
    supervise::kill_leftovers();
    let execs = made
        .container_dir
        .as_ref()
        .and_then(ContainerDir::wait_for_execs);
    if let (Some(mount_namespace), Some(_execs)) = (state.mount_namespace, execs) {
        if !supervise::kill_container_processes(
            mount_namespace,
            state.network_namespace,
            &spec.engine.id,
        ) {
            // Its address must not go to another container while they run: the lease and the
            // record stay, for berth gc.
            eprintln!(
                "berth: processes of container {} are still running after SIGKILL; berth gc \
                 ends them later",
                spec.engine.name
            );
            made.keep_for_gc();
        }
    }
    if let Some(relay) = started.log_relay.as_mut() {
        relay.drain();
    }
    // The workload's last output (no process holds its terminal any more), then berth's
    // terminal as it was.
    drop(started.relay.take());
    // A detached container's record stays for `berth logs` and `berth ps -a`, and its name
    // with it until `berth rm`; it says the container exited once everything else is undone,
    // so that `berth stop` returns when the network is free.
    let kept = if spec.engine.detached {
        made.name = None;
        made.container_dir.take()
    } else {
        None
    };
    drop(made);
    if let Some(dir) = kept {
        state.exit_code = Some(code);
        state.advance(Lifecycle::Stopped)?;
        dir.write_state(&state)?;
    }
    trace::step("tore down");
    Ok(code as u8)
}

/// Step 5: writes the container's hostname, hosts file (so its own name resolves; on a
/// created network the members' shared one, `member_hosts`, is bound instead) and
/// resolv.conf; returns them with the paths they are bound over. They are copies: the host's files stay untouched.
fn write_etc_files(
    dir: &ContainerDir,
    spec: &RunSpec,
    addr: Option<std::net::Ipv4Addr>,
    member_hosts: Option<PathBuf>,
) -> Result<Vec<(PathBuf, &'static str)>> {
    let host_resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (hosts, resolv_conf) = match &spec.engine.network {
        Network::Host => {
            let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            let own = format!("127.0.1.1\t{}\n", spec.hostname);
            (
                format!("{}\n{own}", host_hosts.trim_end()),
                host_resolv_conf,
            )
        }
        Network::None | Network::Join => (
            netsetup::hosts_file(&spec.hostname, &spec.engine.name, None),
            netsetup::container_resolv_conf(&host_resolv_conf, &[]),
        ),
        Network::Bridge { network, dns, .. } => (
            netsetup::hosts_file(&spec.hostname, &spec.engine.name, addr),
            if network.internal && dns.is_empty() {
                netsetup::internal_resolv_conf(&host_resolv_conf)
            } else {
                netsetup::container_resolv_conf(&host_resolv_conf, dns)
            },
        ),
    };
    let hostname = format!("{}\n", spec.hostname);
    Ok(vec![
        (
            dir.write("hostname", hostname.as_bytes(), 0o644)?,
            "/etc/hostname",
        ),
        (
            match member_hosts {
                Some(shared) => shared,
                None => dir.write("hosts", hosts.as_bytes(), 0o644)?,
            },
            "/etc/hosts",
        ),
        (
            dir.write("resolv.conf", resolv_conf.as_bytes(), 0o644)?,
            "/etc/resolv.conf",
        ),
    ])
}

/// What a run has made so far, undone when the run ends or fails, in the one order that
/// `Drop` writes down: the workload and what it left running; its line in the network's
/// hosts file; its published ports (their elements, then the host ports); its lease; its name;
/// its directory; last the hold on the network, once nothing of the container is on it (and
/// then the netfilter socket's release, whose child inherits what is open). The host's veth
/// end is not here: it goes with the container's network namespace when its last process ends.
#[derive(Default)]
struct Made {
    child: Option<berth_container::process::Child>,
    member: Option<MemberLine>,
    ports: Option<PublishedPorts>,
    lease: Option<Lease>,
    name: Option<NameClaim>,
    container_dir: Option<ContainerDir>,
    network: Option<networks::InUse>,
}

/// The container's address, leased on a network.
struct Lease {
    file: LeaseFile,
    container: String,
}

/// The container's line in a created network's shared hosts file.
struct MemberLine {
    hosts: MemberHosts,
    addr: Ipv4Addr,
}

/// The container's published ports: the host ports held and the firewall's elements.
struct PublishedPorts {
    reservation: Reservation,
    root: PathBuf,
}

/// The container's claim on its name.
struct NameClaim {
    root: PathBuf,
    name: String,
    id: String,
}

impl Made {
    /// Leaves the lease, the name and the record in place for `berth gc`: something of the
    /// container (a port's element, a process) may still use its address.
    fn keep_for_gc(&mut self) {
        self.lease = None;
        self.name = None;
        self.container_dir = None;
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            child.kill_and_reap();
            supervise::kill_leftovers();
        }
        if let Some(MemberLine { hosts, addr }) = self.member.take() {
            if let Err(e) = hosts.remove(addr) {
                eprintln!("berth: {e}");
            }
        }
        let mut unpublished_any = false;
        if let Some(PublishedPorts { reservation, root }) = self.ports.take() {
            // The elements first, then the host ports (when the reservation drops).
            let unpublished = ports::lock(&root)
                .and_then(|_lock| Ok(netsetup::firewall::ports::unpublish(&reservation.mappings)?));
            drop(reservation);
            unpublished_any = unpublished.is_ok();
            if let Err(e) = unpublished {
                // Its address must not go to another container while ports lead to it.
                eprintln!("berth: {e}; berth gc removes what is left");
                self.keep_for_gc();
            }
            trace::step("unpublished its ports");
        }
        if let Some(Lease { file, container }) = self.lease.take() {
            if let Err(e) = file.release(&container) {
                eprintln!("berth: releasing the lease of {container}: {e}");
            }
        }
        fault::point("during-teardown");
        if let Some(NameClaim { root, name, id }) = self.name.take() {
            release_name(&root, &name, &id);
        }
        if let Some(dir) = self.container_dir.take() {
            if let Err(e) = dir.remove() {
                eprintln!("berth: {e}");
            }
        }
        drop(self.network.take());
        if unpublished_any {
            ports::release_netfilter_socket();
        }
    }
}
