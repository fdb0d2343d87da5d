//! A throwaway world per test: a "host" (own network and mount namespace), an "upstream" (own
//! network namespace) wired to it by a veth, optional servers on the upstream, and helpers to run
//! commands — berth among them — on the host.
//!
//! ```text
//!   upstream netns                      host netns + mount ns (the "machine" berth runs on)
//!   eth0 198.51.100.2/24  <== veth ==>  uplink0 198.51.100.1/24, default via 198.51.100.2
//!   nginx :80  (answers $remote_addr)   /etc/resolv.conf = a temp file: nameserver 198.51.100.2
//!   dnsmasq :53 (web.upstream.test)     /sys = a sysfs of this netns; mounts shared, like systemd
//! ```
//!
//! The host also has a UTS namespace of its own, so a launcher that sets the hostname in the
//! wrong place renames the world, not the machine.
//!
//! Nothing is created in the machine's own namespaces: the host holder unshares before it execs,
//! and every command of the world joins the holder's namespaces between fork and exec.

use std::cell::{Cell, RefCell};
use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::sys;
use crate::util::{self, parse_leases, poll, Lease, TempDir};

/// The PATH every command of the world gets (the test's own PATH may lack the sbin dirs).
pub const STD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long a foreground command may take before the harness kills it and fails the test.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an interface of a dead container may take to disappear.
pub const VETH_GONE_TIMEOUT: Duration = Duration::from_secs(10);

pub const HOST_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const UPSTREAM_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The host's IPv6 address on the link to the upstream.
pub const HOST_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// The upstream's IPv6 address.
pub const UPSTREAM_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// A name the upstream's DNS responder knows with an IPv6 address only.
pub const UPSTREAM_NAME6: &str = "six.upstream.test";
/// A name only the upstream's DNS responder knows.
pub const UPSTREAM_NAME: &str = "web.upstream.test";
/// What the upstream's HTTP server answers on `/fixed`.
pub const UPSTREAM_FIXED_BODY: &str = "upstream-fixed-body";

/// The host's /etc/resolv.conf in a new world.
pub const HOST_RESOLV_CONF: &str =
    "# resolv.conf of the berth-e2e world\nnameserver 198.51.100.2\nsearch example.test\noptions ndots:1\n";

/// The berth binary under test: `$BERTH_BIN`, else the workspace's target/release/berth, else
/// target/debug/berth.
pub fn berth_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "BERTH_BIN={} does not exist", p.display());
        return p;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace dir");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => workspace.join(t),
        None => workspace.join("target"),
    };
    let candidates = [target.join("release/berth"), target.join("debug/berth")];
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "berth binary not found (looked for {} and {}): build it with \
         `cargo build --release -p berth`, or point BERTH_BIN at it",
        candidates[0].display(),
        candidates[1].display()
    );
}

/// The CNI plugin under test: `$BERTH_CNI_BIN`, else `berth-cni` beside the berth binary under
/// test, else the workspace's target/release/berth-cni.
pub fn cni_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_CNI_BIN") {
        return PathBuf::from(p);
    }
    let beside = berth_bin().with_file_name("berth-cni");
    if beside.is_file() {
        return beside;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace dir");
    let candidate = workspace.join("target/release/berth-cni");
    assert!(
        candidate.is_file(),
        "no berth-cni at {}: build it with `cargo build --release -p berth-cni`, \
         or point BERTH_CNI_BIN at one",
        candidate.display()
    );
    candidate
}

/// berth built with the `fault-injection` feature, for the crash tests: `BERTH_FAULT_BIN`, else
/// `target/fault/release/berth` (what `scripts/test.sh` builds).
pub fn berth_fault_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_FAULT_BIN") {
        return PathBuf::from(p);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace dir");
    let candidate = workspace.join("target/fault/release/berth");
    assert!(
        candidate.is_file(),
        "no fault-injection build of berth at {}: build it with `cargo build --release -p berth \
         --features fault-injection --target-dir target/fault`, or point BERTH_FAULT_BIN at one",
        candidate.display()
    );
    candidate
}

/// How a command ended, with what it printed.
pub struct Outcome {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// The exit code, or 128+N for death by signal N (as a shell reports it).
    pub fn code(&self) -> i32 {
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => -1,
        }
    }

    pub fn killed_by_signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// Assert exit code 0 and return stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(self.status.success(), "expected success\n{self}");
        &self.stdout
    }

    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert!(self.status.code() == Some(code), "expected exit code {code}\n{self}");
        self
    }

    /// Assert berth's own failure: exit 125, stderr starting with `berth:`, and a message that
    /// mentions at least one of `any_of` (case-insensitive).
    #[track_caller]
    pub fn expect_berth_error(&self, any_of: &[&str]) -> &Self {
        self.expect_code(125);
        assert!(
            self.stderr.starts_with("berth:"),
            "berth's error message must start with `berth:`\n{self}"
        );
        let low = self.stderr.to_lowercase();
        assert!(
            any_of.iter().any(|k| low.contains(&k.to_lowercase())),
            "berth's error message should mention one of {any_of:?}\n{self}"
        );
        self
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match (self.status.code(), self.status.signal()) {
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(s)) => format!("was killed by signal {s}"),
            _ => format!("ended with {:?}", self.status),
        };
        write!(
            f,
            "$ {}\n{how} after {:?}\n--- stdout ---\n{}--- stderr ---\n{}--------------",
            self.what, self.elapsed, self.stdout, self.stderr
        )
    }
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Render a command line for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let s = a.to_string_lossy();
            if !s.is_empty()
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A process running in the background; killed (by pid) on drop if still running.
/// Its stdout and stderr go to files, so nothing blocks on a full pipe.
pub struct Bg {
    child: Child,
    what: String,
    out: PathBuf,
    err: PathBuf,
    started: Instant,
    done: Option<ExitStatus>,
}

impl Bg {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn what(&self) -> &str {
        &self.what
    }

    /// Send a signal to this process (only to it, by pid).
    pub fn signal(&self, sig: libc::c_int) {
        if self.done.is_none() {
            sys::kill(self.pid(), sig)
                .unwrap_or_else(|e| panic!("kill {} ({}): {e}", self.pid(), self.what));
        }
    }

    pub fn stdout_so_far(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.out).unwrap_or_default()).into_owned()
    }

    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.err).unwrap_or_default()).into_owned()
    }

    fn outcome(&self, status: ExitStatus) -> Outcome {
        Outcome {
            what: self.what.clone(),
            status,
            stdout: self.stdout_so_far(),
            stderr: self.stderr_so_far(),
            elapsed: self.started.elapsed(),
        }
    }

    /// The outcome if the process has ended, without blocking.
    pub fn try_outcome(&mut self) -> Option<Outcome> {
        if self.done.is_none() {
            self.done = self.child.try_wait().expect("try_wait");
        }
        self.done.map(|s| self.outcome(s))
    }

    /// Wait for the end, at most `timeout`; on timeout the process is killed and the test fails.
    #[track_caller]
    pub fn wait(&mut self, timeout: Duration) -> Outcome {
        if self.done.is_none() {
            self.done = sys::wait_timeout(&mut self.child, timeout).expect("wait");
        }
        match self.done {
            Some(s) => self.outcome(s),
            None => {
                let _ = self.child.kill();
                let status = self.child.wait().expect("wait after kill");
                self.done = Some(status);
                panic!("still running after {timeout:?}, killed\n{}", self.outcome(status));
            }
        }
    }

    /// Wait up to `timeout`; `None` (and the process left running) if it has not ended.
    pub fn wait_for_end(&mut self, timeout: Duration) -> Option<Outcome> {
        if self.done.is_none() {
            self.done = sys::wait_timeout(&mut self.child, timeout).expect("wait");
        }
        self.done.map(|s| self.outcome(s))
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if self.done.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// See the module documentation.
pub struct World {
    dir: TempDir,
    root: PathBuf,
    host: Child,
    upstream: Child,
    servers: RefCell<Vec<(String, Child)>>,
    upstream_up: Cell<bool>,
    baseline_mounts: Vec<String>,
    seq: Cell<u64>,
}

fn cstr(p: impl AsRef<OsStr>) -> CString {
    CString::new(p.as_ref().as_bytes()).expect("no NUL in path")
}

fn open_ns(pid: u32, ns: &str) -> File {
    let p = format!("/proc/{pid}/ns/{ns}");
    File::open(&p).unwrap_or_else(|e| panic!("open {p}: {e}"))
}

impl World {
    /// A host and an upstream namespace wired together; no servers yet (see
    /// [`World::start_upstream`]).
    pub fn new() -> World {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "berth's end-to-end tests must run as root");
        let dir = TempDir::new("berth-e2e");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("mkdir root");
        std::fs::create_dir(dir.path().join("io")).expect("mkdir io");
        let resolv = dir.path().join("host-resolv.conf");
        std::fs::write(&resolv, HOST_RESOLV_CONF).expect("write resolv.conf");

        let parent = std::process::id() as libc::pid_t;
        let (slash, sys_dir, sysfs, etc_resolv, resolv_c) =
            (cstr("/"), cstr("/sys"), cstr("sysfs"), cstr("/etc/resolv.conf"), cstr(&resolv));
        let mut holder = Command::new("sleep");
        holder.arg("infinity").stdin(Stdio::null()).env("PATH", STD_PATH);
        // SAFETY: the closure only makes system calls (no allocation, no locks).
        unsafe {
            holder.pre_exec(move || {
                sys::die_with_parent(parent)?;
                sys::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWNS | libc::CLONE_NEWUTS)?;
                // Cut propagation with the machine's mount namespace first.
                sys::mount(None, &slash, None, libc::MS_REC | libc::MS_PRIVATE)?;
                // A sysfs that shows this network namespace, as `ip netns exec` does.
                sys::mount(
                    Some(&sysfs),
                    &sys_dir,
                    Some(&sysfs),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                )?;
                sys::mount(Some(&resolv_c), &etc_resolv, None, libc::MS_BIND)?;
                // Mounts shared again (new peer groups, only within this world), as on a
                // systemd machine: a launcher that forgets to make its mounts private leaks
                // them into this world's mount table, where the tests look for them.
                sys::mount(None, &slash, None, libc::MS_REC | libc::MS_SHARED)?;
                sys::loopback_up()
            });
        }
        let host = holder.spawn().expect("spawn the host namespace holder");
        let host_pid = host.id();

        let host_mnt = open_ns(host_pid, "mnt");
        let mut up = Command::new("sleep");
        up.arg("infinity").stdin(Stdio::null()).env("PATH", STD_PATH);
        // SAFETY: the closure only makes system calls.
        unsafe {
            up.pre_exec(move || {
                sys::die_with_parent(parent)?;
                sys::setns(host_mnt.as_raw_fd(), libc::CLONE_NEWNS)?;
                sys::unshare(libc::CLONE_NEWNET)?;
                sys::loopback_up()
            });
        }
        let upstream = up.spawn().expect("spawn the upstream namespace holder");

        let mut world = World {
            dir,
            root,
            host,
            upstream,
            servers: RefCell::new(Vec::new()),
            upstream_up: Cell::new(false),
            baseline_mounts: Vec::new(),
            seq: Cell::new(0),
        };

        let up_batch = world.dir.path().join("upstream.ip");
        std::fs::write(
            &up_batch,
            format!(
                "link add eth0 type veth peer name uplink0 netns {host_pid}\n\
                 addr add {UPSTREAM_ADDR}/24 dev eth0\n\
                 link set eth0 addrgenmode none\n\
                 addr add {UPSTREAM_ADDR6}/64 dev eth0 nodad\n\
                 link set eth0 up\n"
            ),
        )
        .expect("write batch");
        let host_batch = world.dir.path().join("host.ip");
        std::fs::write(
            &host_batch,
            format!(
                "addr add {HOST_ADDR}/24 dev uplink0\n\
                 link set uplink0 addrgenmode none\n\
                 addr add {HOST_ADDR6}/64 dev uplink0 nodad\n\
                 link set uplink0 up\n\
                 route add default via {UPSTREAM_ADDR}\n\
                 route add default via {UPSTREAM_ADDR6}\n"
            ),
        )
        .expect("write batch");
        world.run(world.upstream_cmd("ip").arg("-batch").arg(&up_batch)).ok();
        world.run(world.cmd("ip").arg("-batch").arg(&host_batch)).ok();
        world.baseline_mounts = world.mounts();
        world
    }

    /// A world whose upstream already runs its HTTP and DNS servers.
    pub fn with_upstream() -> World {
        let w = World::new();
        w.start_upstream();
        w
    }

    /// Start nginx and dnsmasq on the upstream (once) and wait until both answer.
    pub fn start_upstream(&self) {
        if self.upstream_up.replace(true) {
            return;
        }
        let d = self.dir.path().join("upstream");
        for sub in ["", "tmp"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir upstream");
        }
        let conf = d.join("nginx.conf");
        let p = d.display();
        std::fs::write(
            &conf,
            format!(
                "master_process off;\n\
                 pid {p}/nginx.pid;\n\
                 error_log {p}/nginx-error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n\
                   access_log off;\n\
                   client_body_temp_path {p}/tmp/body;\n\
                   proxy_temp_path {p}/tmp/proxy;\n\
                   fastcgi_temp_path {p}/tmp/fastcgi;\n\
                   uwsgi_temp_path {p}/tmp/uwsgi;\n\
                   scgi_temp_path {p}/tmp/scgi;\n\
                   server {{\n\
                     listen {UPSTREAM_ADDR}:80;\n\
                     listen [{UPSTREAM_ADDR6}]:80;\n\
                     default_type text/plain;\n\
                     location = /fixed {{ return 200 \"{UPSTREAM_FIXED_BODY}\\n\"; }}\n\
                     location / {{ return 200 \"$remote_addr\\n\"; }}\n\
                   }}\n\
                 }}\n"
            ),
        )
        .expect("write nginx.conf");
        let mut nginx = self.upstream_cmd("nginx");
        nginx
            .arg("-p")
            .arg(&d)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(d.join("nginx-error.log"))
            .args(["-g", "daemon off;"]);
        self.start_server("nginx", &mut nginx);

        let mut dnsmasq = self.upstream_cmd("dnsmasq");
        dnsmasq.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            &format!("--listen-address={UPSTREAM_ADDR}"),
            &format!("--listen-address={UPSTREAM_ADDR6}"),
            &format!("--host-record={UPSTREAM_NAME},{UPSTREAM_ADDR}"),
            &format!("--host-record={UPSTREAM_NAME6},{UPSTREAM_ADDR6}"),
            &format!("--pid-file={}", d.join("dnsmasq.pid").display()),
            &format!("--log-facility={}", d.join("dnsmasq.log").display()),
        ]);
        self.start_server("dnsmasq", &mut dnsmasq);

        let ready = self.in_host_net(|| {
            let http = SocketAddr::from((UPSTREAM_ADDR, 80));
            let dns = SocketAddr::from((UPSTREAM_ADDR, 53));
            let (mut http_ok, mut dns_ok) = (false, false);
            poll(Duration::from_secs(10), Duration::from_millis(5), || {
                http_ok = http_ok
                    || TcpStream::connect_timeout(&http, Duration::from_millis(200)).is_ok();
                dns_ok = dns_ok
                    || util::dns_query_a(dns, UPSTREAM_NAME, Duration::from_millis(100))
                        .is_some_and(|a| a == [UPSTREAM_ADDR]);
                (http_ok && dns_ok).then_some(())
            })
            .ok_or(format!("http ready: {http_ok}, dns ready: {dns_ok}"))
        });
        if let Err(e) = ready {
            let logs: String = ["nginx-error.log", "dnsmasq.log"]
                .iter()
                .map(|f| {
                    format!(
                        "--- {f} ---\n{}",
                        std::fs::read_to_string(d.join(f)).unwrap_or_default()
                    )
                })
                .collect();
            panic!("upstream servers did not come up within 10 s ({e})\n{logs}");
        }
    }

    fn start_server(&self, name: &str, cmd: &mut Command) {
        let log = self.dir.path().join("upstream").join(format!("{name}.out"));
        let f = File::create(&log).expect("create server log");
        cmd.stdout(f.try_clone().expect("dup")).stderr(f);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", describe(cmd)));
        self.servers.borrow_mut().push((name.to_string(), child));
    }

    /// The world's scratch directory (a temp dir, removed with the world when the test passes).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh path inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// berth's `--root` for this world.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn leases_path(&self) -> PathBuf {
        self.root.join("networks/bridge/leases")
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// The pid of the process holding the host namespaces (alive as long as the world).
    pub fn host_pid(&self) -> u32 {
        self.host.id()
    }

    /// The host's /etc/resolv.conf, as a file outside the world (rewrite it in place to change
    /// what the world sees).
    pub fn host_resolv_conf(&self) -> PathBuf {
        self.dir.path().join("host-resolv.conf")
    }

    fn ns_cmd(&self, program: impl AsRef<OsStr>, net_pid: u32) -> Command {
        let net = open_ns(net_pid, "net");
        let uts = open_ns(self.host.id(), "uts");
        let mnt = open_ns(self.host.id(), "mnt");
        let parent = std::process::id() as libc::pid_t;
        let mut c = Command::new(program);
        c.env("PATH", STD_PATH).stdin(Stdio::null());
        // SAFETY: the closure only makes system calls. It owns the three descriptors (opened
        // close-on-exec), so they live until the command is dropped.
        unsafe {
            c.pre_exec(move || {
                sys::die_with_parent(parent)?;
                sys::setns(net.as_raw_fd(), libc::CLONE_NEWNET)?;
                sys::setns(uts.as_raw_fd(), libc::CLONE_NEWUTS)?;
                // Joining a mount namespace resets the working directory to its root.
                sys::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS)
            });
        }
        c
    }

    /// A command that runs on the world's host (its network, UTS and mount namespaces). Further
    /// `pre_exec` hooks run after it has joined them. It dies with the test's thread.
    pub fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        self.ns_cmd(program, self.host.id())
    }

    /// A command that runs on the upstream (its network namespace, the host's UTS and mount
    /// namespaces).
    pub fn upstream_cmd(&self, program: impl AsRef<OsStr>) -> Command {
        self.ns_cmd(program, self.upstream.id())
    }

    /// Writes a config for an nginx that keeps all its files in the directory `name` of this
    /// world, listens on port 80 and answers every request with "hello from HOSTNAME to
    /// CLIENT"; returns the command line that runs it in the foreground.
    pub fn nginx_command(&self, name: &str) -> Vec<String> {
        let d = self.path(name);
        std::fs::create_dir_all(&d).expect("mkdir nginx");
        let p = d.display();
        let conf = d.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  \
                 proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  \
                 uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n  \
                 server {{ listen 80; listen [::]:80; default_type text/plain; \
                 location / {{ return 200 \"hello from $hostname to $remote_addr\\n\"; }} }}\n}}\n"
            ),
        )
        .expect("write nginx.conf");
        ["nginx", "-p", &p.to_string(), "-c", &conf.display().to_string()]
            .into_iter()
            .map(String::from)
            .chain(["-e", &format!("{p}/error.log"), "-g", "daemon off;"].map(String::from))
            .collect()
    }

    /// A busybox root filesystem made by rootfs-examples/busybox.sh in `name` of this world.
    pub fn busybox_root(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        self.make_busybox_root(&dir);
        dir
    }

    /// Makes a busybox root filesystem in `dir` with rootfs-examples/busybox.sh.
    pub fn make_busybox_root(&self, dir: &Path) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../rootfs-examples/busybox.sh");
        self.run(self.cmd("bash").arg(script).arg(dir)).ok();
    }

    /// `berth --root ROOT` on the host.
    pub fn berth(&self) -> Command {
        let mut c = self.cmd(berth_bin());
        c.arg("--root").arg(&self.root);
        c
    }

    /// `berth --root ROOT run ARGS...` on the host, in the foreground.
    pub fn berth_run(&self, args: &[&str]) -> Outcome {
        self.run(self.berth().arg("run").args(args))
    }

    /// `sh -c SCRIPT` on the host, in the foreground.
    pub fn sh(&self, script: &str) -> Outcome {
        self.run(self.cmd("sh").arg("-c").arg(script))
    }

    /// Run in the background, output to files.
    #[track_caller]
    pub fn spawn(&self, cmd: &mut Command) -> Bg {
        let n = self.seq.get();
        self.seq.set(n + 1);
        let out = self.dir.path().join(format!("io/{n}.out"));
        let err = self.dir.path().join(format!("io/{n}.err"));
        cmd.stdout(File::create(&out).expect("create stdout file"));
        cmd.stderr(File::create(&err).expect("create stderr file"));
        let what = describe(cmd);
        let started = Instant::now();
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn `{what}`: {e}"));
        Bg { child, what, out, err, started, done: None }
    }

    /// Run in the foreground with [`DEFAULT_TIMEOUT`].
    #[track_caller]
    pub fn run(&self, cmd: &mut Command) -> Outcome {
        self.spawn(cmd).wait(DEFAULT_TIMEOUT)
    }

    /// Run `f` on a thread that has joined the host's network namespace (sockets made there
    /// belong to the world).
    pub fn in_host_net<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let net = open_ns(self.host.id(), "net");
        std::thread::scope(|s| {
            s.spawn(move || {
                sys::setns(net.as_raw_fd(), libc::CLONE_NEWNET).expect("setns into the host netns");
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Wait until something on the host accepts TCP connections at `addr` (bounded).
    #[track_caller]
    pub fn wait_tcp(&self, addr: SocketAddr, timeout: Duration) -> bool {
        self.in_host_net(|| {
            poll(timeout, Duration::from_millis(10), || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok().map(|_| ())
            })
            .is_some()
        })
    }

    /// `ip -j -d link show` on the host, parsed.
    pub fn links(&self) -> Vec<Value> {
        let out = self.run(self.cmd("ip").args(["-j", "-d", "link", "show"]));
        serde_json::from_str(out.ok()).expect("ip -j link: JSON")
    }

    pub fn link(&self, name: &str) -> Option<Value> {
        self.links().into_iter().find(|l| l["ifname"] == name)
    }

    pub fn link_names(&self) -> Vec<String> {
        self.links().iter().filter_map(|l| l["ifname"].as_str().map(String::from)).collect()
    }

    /// Host-side veth ends of containers (`bth...`).
    pub fn veths(&self) -> Vec<String> {
        self.link_names().into_iter().filter(|n| n.starts_with("bth")).collect()
    }

    /// Poll until no `bth*` interface is left; returns those still there after `timeout`.
    pub fn wait_veths_gone(&self, timeout: Duration) -> Vec<String> {
        let mut left = Vec::new();
        poll(timeout, Duration::from_millis(20), || {
            left = self.veths();
            left.is_empty().then_some(())
        });
        left
    }

    /// The world's mount table (/proc/HOLDER/mountinfo lines).
    pub fn mounts(&self) -> Vec<String> {
        let p = format!("/proc/{}/mountinfo", self.host.id());
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("read {p}: {e}"))
            .lines()
            .map(String::from)
            .collect()
    }

    /// Leases in the lease file (none if there is no file).
    pub fn leases(&self) -> Vec<Lease> {
        match std::fs::read_to_string(self.leases_path()) {
            Ok(text) => parse_leases(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("read {}: {e}", self.leases_path().display()),
        }
    }

    /// Ids of the per-container directories under the root.
    pub fn container_dirs(&self) -> Vec<String> {
        match std::fs::read_dir(self.containers_dir()) {
            Ok(d) => d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Every regular file under the root, relative to it.
    pub fn root_files(&self) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() && !p.is_symlink() {
                    walk(base, &p, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap_or(&p).display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.sort();
        out
    }

    /// Assert that no container of this world is left: no `bth*` interface (after polling), no
    /// lease, no container directory, no file under the root but the lease file and locks, and
    /// the host's mount table as it was when the world was made.
    #[track_caller]
    pub fn assert_clean(&self) {
        let leases = self.leases();
        assert!(leases.is_empty(), "leases left behind: {leases:#?}");
        self.assert_no_container_left();
    }

    /// [`World::assert_clean`] without looking at the lease file's contents (for tests that
    /// wrote leases of their own, or an unparsable file).
    #[track_caller]
    pub fn assert_no_container_left(&self) {
        let veths = self.wait_veths_gone(VETH_GONE_TIMEOUT);
        assert!(
            veths.is_empty(),
            "container interfaces left on the host after {VETH_GONE_TIMEOUT:?}: {veths:?}"
        );
        let dirs = self.container_dirs();
        assert!(
            dirs.is_empty(),
            "container directories left under {}: {dirs:?}",
            self.containers_dir().display()
        );
        let stray: Vec<String> = self
            .root_files()
            .into_iter()
            .filter(|f| f != "networks/bridge/leases" && !f.to_lowercase().contains("lock"))
            .collect();
        assert!(stray.is_empty(), "files left under the root {}: {stray:?}", self.root.display());
        // No port left published (the maps are empty, or there is no table at all).
        for map in ["ports_any", "ports_at", "ports6_any", "ports6_at"] {
            let out = self.run(self.cmd("nft").args(["list", "map", "inet", "berth", map]));
            assert!(!out.stdout.contains("elements"), "ports left published:\n{out}");
        }
        let now = self.mounts();
        let added: Vec<&String> =
            now.iter().filter(|m| !self.baseline_mounts.contains(m)).collect();
        let removed: Vec<&String> =
            self.baseline_mounts.iter().filter(|m| !now.contains(m)).collect();
        assert!(
            added.is_empty() && removed.is_empty(),
            "the host's mount table changed\nadded: {added:#?}\nremoved: {removed:#?}"
        );
    }
}

impl Default for World {
    fn default() -> World {
        World::new()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for (_, mut child) in self.servers.borrow_mut().drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        for child in [&mut self.upstream, &mut self.host] {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Whatever a test started and nobody ended (a workload that outlived its launcher, the
        // worker of a server whose master was killed) still holds the output files the world
        // gave it: end those processes, by pid.
        for _ in 0..3 {
            let stray = sys::pids_using(self.dir.path());
            if stray.is_empty() {
                break;
            }
            eprintln!("berth-e2e: killing processes left by the test: {stray:?}");
            for pid in stray {
                let _ = sys::kill(pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
