//! No way out of a container through berth itself: its binary cannot be overwritten from inside
//! (`#!/proc/self/exe`, the CVE-2019-5736 class), the caller's terminal takes no keystrokes from
//! a container (TIOCSTI), no descriptor of the caller's reaches one (the CVE-2024-21626 class),
//! and nothing `exec` started outlives its container. Each test performs the attack.

use berth_e2e::util::set_mode;
use berth_e2e::*;
use serde_json::Value;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A copy of the berth under test, as a second installed binary (after an upgrade, say): no
/// supervisor runs its inode, so nothing but berth itself keeps it from being written.
fn berth_copy(w: &World) -> PathBuf {
    let copy = w.path("berth-copy");
    fs::copy(berth_bin(), &copy).unwrap();
    set_mode(&copy, 0o755);
    copy
}

fn berth_from(w: &World, binary: &Path) -> Command {
    let mut c = w.cmd(binary);
    c.arg("--root").arg(w.root());
    c
}

/// The container's record as `berth inspect` prints it.
fn inspect(w: &World, name: &str) -> Value {
    crate::json(w.run(w.berth().args(["inspect", name])).ok())
}

/// A record in the root's /run/berth of a "container" named `name` whose launcher is the
/// container's PID 1 (started at `start`, in clock ticks): `berth stop NAME`, run by the kernel
/// inside the container, waits on it for 20 s, long enough to be looked at.
fn record_that_keeps_stop_waiting(root: &Path, name: &str, start: u64) {
    let dir = root.join(format!("run/berth/containers/fake{}", util::unique()));
    fs::create_dir_all(&dir).unwrap();
    let record = serde_json::json!({
        "id": "fake", "name": name, "hostname": "x", "network": "none", "command": "x",
        "created": 0, "launcher_pid": 1, "launcher_start": start, "boot_id": sys::boot_id(),
        "pid": 1, "mount_namespace": 1,
    });
    fs::write(dir.join("state.json"), record.to_string()).unwrap();
}

/// The process whose command line starts with `prefix` (NUL-separated arguments).
fn process_running(prefix: &str) -> Option<u32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let line = fs::read(entry.path().join("cmdline")).ok()?;
        line.starts_with(prefix.as_bytes()).then_some(pid)
    })
}

#[test]
fn a_container_cannot_overwrite_berths_binary_through_proc_self_exe() {
    let w = World::new();
    let root = w.busybox_root("busybox");
    let rootfs = root.to_str().unwrap();
    let copy = berth_copy(&w);
    let original = fs::read(&copy).unwrap();
    // Two containers run by the installed berth: a plain one, and one whose workload chroots
    // into a read-only bind of the host's / (so that its root looks like the host's).
    for (name, extra, command) in [
        ("plain", vec![], vec!["sleep", "1000"]),
        ("chrooted", vec!["-v", "/:/host:ro"], vec!["chroot", "/host", "sleep", "1000"]),
    ] {
        let mut args = vec!["run", "-d", "--name", name, "--net", "none", "--rootfs", rootfs];
        args.extend(extra);
        args.extend(command);
        let id = w.run(w.berth().args(&args)).ok().trim().to_owned();
        let workload = inspect(&w, &id)["pid"].as_u64().unwrap() as u32;
        // The container's command that makes the kernel run berth's own binary inside it.
        let script = format!("/bin/evil-{name}-{}", util::unique());
        fs::write(root.join(&script[1..]), "#!/proc/self/exe stop\n").unwrap();
        set_mode(&root.join(&script[1..]), 0o755);
        record_that_keeps_stop_waiting(&root, &script, sys::start_time(workload).unwrap());
        // The administrator runs it with the copy (no supervisor runs its inode).
        let mut exec = w.spawn(berth_from(&w, &copy).args(["exec", name, &script]));
        let inside = util::poll(Duration::from_secs(10), Duration::from_millis(5), || {
            process_running(&format!("/proc/self/exe\0stop\0{script}\0"))
        })
        .unwrap_or_else(|| panic!("{name}: berth never ran inside\n{}", exec.stderr_so_far()));
        // What a process of the container gets when it wins the race to /proc/PID/exe (before
        // berth makes itself non-dumpable): a descriptor of the binary berth runs from.
        let held = fs::File::open(format!("/proc/{inside}/exe")).unwrap();
        sys::kill(inside, libc::SIGKILL).unwrap();
        exec.wait(Duration::from_secs(10));
        // Once nothing runs it, writing through that descriptor is what rewrites berth.
        let reopened =
            fs::OpenOptions::new().write(true).open(format!("/proc/self/fd/{}", held.as_raw_fd()));
        let error = reopened.expect_err("the container can write berth's binary");
        assert_eq!(error.raw_os_error(), Some(libc::EROFS), "{name}: {error}");
    }
    // A run with a root of its own likewise: its supervisor, which its child was cloned from,
    // runs from a read-only view of the binary.
    let id = w
        .run(
            berth_from(&w, &copy)
                .args(["run", "-d", "--name", "d", "--rootfs", rootfs, "sleep", "100"]),
        )
        .ok()
        .trim()
        .to_owned();
    let supervisor = inspect(&w, &id)["launcher_pid"].as_u64().unwrap();
    let held = fs::File::open(format!("/proc/{supervisor}/exe")).unwrap();
    for name in ["plain", "chrooted", "d"] {
        w.run(w.berth().args(["stop", "-t", "0", name])).ok();
        w.run(w.berth().args(["rm", name])).ok();
    }
    let reopened =
        fs::OpenOptions::new().write(true).open(format!("/proc/self/fd/{}", held.as_raw_fd()));
    let error = reopened.expect_err("berth's binary is writable through /proc/PID/exe");
    assert_eq!(error.raw_os_error(), Some(libc::EROFS), "{error}");
    assert!(fs::read(&copy).unwrap() == original);
    w.assert_clean();
}

/// A pseudo-terminal: (master, slave).
fn pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty(3) writes two descriptors; the name, termios and size may be null.
    let done = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(done, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty just returned these descriptors, owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// `cmd` as a shell at a terminal would run it: in a session whose controlling terminal is
/// `slave`, with the terminal as stdin, stdout and stderr.
fn at_terminal(cmd: &mut Command, slave: &OwnedFd) {
    let slave = slave.as_raw_fd();
    // SAFETY: the hook only makes system calls on descriptors the child inherited.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for fd in 0..=2 {
                if libc::dup2(slave, fd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// What is waiting to be read on the terminal's input side (what was "typed").
fn typed(slave: &OwnedFd) -> String {
    // SAFETY: fcntl(2) on a descriptor this test owns.
    unsafe { libc::fcntl(slave.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut buffer = [0u8; 4096];
    // SAFETY: read(2) into a buffer of the given length.
    let n = unsafe { libc::read(slave.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
    String::from_utf8_lossy(&buffer[..n.max(0) as usize]).into_owned()
}

/// Types "echo INJECTED" with TIOCSTI through each of its stdin, stdout and stderr (whichever
/// is the terminal), and writes to FILE whether that worked and its controlling terminal
/// (field 7 of /proc/self/stat: 0 for none).
const TIOCSTI: &str = r#"
my ($ok, @why) = (0);
for my $fh (*STDIN, *STDOUT, *STDERR) {
    my $all = 1;
    for my $c (split //, "echo INJECTED\n") { ioctl($fh, 0x5412, $c) or do { $all = 0; last } }
    if ($all) { $ok = 1 } else { push @why, "$!" }
}
open(my $stat, "<", "/proc/self/stat"); my @fields = split / /, <$stat>;
open(my $out, ">", $ARGV[0]);
print $out ($ok ? "typed" : "refused: " . join(", ", @why)), "\ntty=$fields[6]\n";
"#;

#[test]
fn a_container_cannot_type_into_the_callers_terminal() {
    let w = World::new();
    let legacy = fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti").unwrap_or_default();
    w.run(w.berth().args(["run", "-d", "--name", "c", "--net", "none", "sleep", "100"])).ok();
    for (how, args) in [("run", vec!["run", "--net", "none"]), ("exec", vec!["exec", "c"])] {
        let (_master, slave) = pty();
        let report = w.path(&format!("tiocsti-{how}"));
        let mut cmd = w.berth();
        cmd.args(&args).args(["perl", "-e", TIOCSTI, report.to_str().unwrap()]);
        at_terminal(&mut cmd, &slave);
        let out = w.run(&mut cmd);
        let report =
            fs::read_to_string(&report).unwrap_or_else(|e| panic!("{how}: no report ({e})\n{out}"));
        assert!(
            !typed(&slave).contains("INJECTED"),
            "{how}: the container typed into the terminal\n{report}"
        );
        assert!(report.starts_with("refused"), "{how}: {report}");
        if legacy.trim() == "1" {
            // Refused because the terminal is not the container's (else: EIO for everyone).
            assert!(report.contains("Operation not permitted"), "{how}: {report}");
        }
        assert!(report.contains("tty=0\n"), "{how}: it has a controlling terminal\n{report}");
    }
    w.run(w.berth().args(["stop", "-t", "0", "c"])).ok();
    w.run(w.berth().args(["rm", "c"])).ok();
    w.assert_clean();
}

/// Opens `path` (a directory) as descriptor 7 of `cmd`, without close-on-exec, as a caller's
/// shell might have it open (`exec 7</some/dir`).
fn with_directory_open(cmd: &mut Command, path: &Path) {
    let dir = fs::File::open(path).unwrap();
    // SAFETY: the hook only makes system calls; `dir` is moved in and lives as long as `cmd`.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(dir.as_raw_fd(), 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn no_descriptor_of_the_caller_reaches_a_container_or_its_supervisor() {
    let w = World::new();
    let root = w.busybox_root("busybox");
    let secret = w.path("host-secret");
    fs::write(&secret, "host-only\n").unwrap();
    let rootfs = root.to_str().unwrap();
    // The caller holds a directory of the host's while it starts a detached container...
    let mut cmd = w.berth();
    cmd.args(["run", "-d", "--name", "c", "--net", "none", "--rootfs", rootfs, "sleep", "100"]);
    with_directory_open(&mut cmd, w.dir());
    let id = w.run(&mut cmd).ok().trim().to_owned();
    let supervisor = inspect(&w, &id)["launcher_pid"].as_u64().unwrap();
    let held: Vec<String> = fs::read_dir(format!("/proc/{supervisor}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .map(|target| target.display().to_string())
        .collect();
    let world_dir = w.dir().display().to_string();
    assert!(!held.contains(&world_dir), "the supervisor kept the caller's directory: {held:?}");
    // ... and while it execs a command in it: the command cannot leave the root through it.
    let mut cmd = w.berth();
    cmd.args(["exec", "c", "sh", "-c", "ls /proc/self/fd; cat /proc/self/fd/7/host-secret"]);
    with_directory_open(&mut cmd, w.dir());
    let out = w.run(&mut cmd);
    assert!(!out.stdout.contains("host-only"), "the container read the host's file\n{out}");
    let fds: Vec<&str> = out.stdout.lines().collect();
    assert!(!fds.contains(&"7"), "descriptor 7 reached the container\n{out}");
    w.run(w.berth().args(["stop", "-t", "0", "c"])).ok();
    w.run(w.berth().args(["rm", "c"])).ok();
    w.assert_clean();
}

#[test]
fn what_exec_started_ends_with_its_container() {
    let w = World::new();
    w.run(w.berth().args(["run", "-d", "--name", "c", "sleep", "100"])).ok();
    let pid_file = w.path("left");
    let script = format!("sleep 1000 & echo $! > {}", pid_file.display());
    w.run(w.berth().args(["exec", "c", "sh", "-c", &script])).ok();
    let left: u32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert!(sys::alive(left), "the exec'd process runs on after exec returned");
    w.run(w.berth().args(["stop", "c"])).ok();
    assert!(!sys::alive(left), "process {left}, started by exec, outlived its container");
    w.run(w.berth().args(["rm", "c"])).ok();
    // The address is free again, and the next container gets it.
    let out = crate::run_showing_eth0(&w, &[]);
    assert_eq!(crate::eth0_address(&out), "10.201.0.2/16");
    w.assert_clean();
}

#[test]
fn a_detached_containers_environment_is_not_on_its_supervisors_command_line() {
    let w = World::new();
    let id = w
        .run(w.berth().args(["run", "-d", "--net", "none", "-e", "TOKEN=s3cr3t", "sleep", "100"]))
        .ok()
        .trim()
        .to_owned();
    let supervisor = inspect(&w, &id)["launcher_pid"].as_u64().unwrap();
    let line = fs::read(format!("/proc/{supervisor}/cmdline")).unwrap();
    let line = String::from_utf8_lossy(&line).replace('\0', " ");
    assert!(!line.contains("s3cr3t"), "every user reads this: {line}");
    assert!(line.starts_with("berth supervisor "), "{line}");
    w.run(w.berth().args(["stop", "-t", "0", &id])).ok();
    w.run(w.berth().args(["rm", &id])).ok();
    w.assert_clean();
}

/// Writes `bytes` to the terminal's master, as if typed.
fn type_into(master: &OwnedFd, bytes: &[u8]) {
    // SAFETY: write(2) from a buffer of the given length.
    let n = unsafe { libc::write(master.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    assert_eq!(n, bytes.len() as isize, "{}", std::io::Error::last_os_error());
}

#[test]
fn a_terminals_ctrl_c_reaches_the_whole_foreground_of_the_container() {
    let w = World::new();
    let (master, slave) = pty();
    // The shell traps SIGINT and waits for sleep: only a Ctrl-C that reaches sleep too (the
    // whole foreground process group, as a terminal sends it) lets it go on at once.
    let ready = w.path("ready");
    let script =
        format!("trap 'echo trapped' INT; touch {}; sleep 100; echo after-sleep", ready.display());
    let mut cmd = w.berth();
    cmd.args(["run", "--net", "none", "sh", "-c", &script]);
    at_terminal(&mut cmd, &slave);
    let mut berth = w.spawn(&mut cmd);
    assert!(util::wait_for_file(&ready, Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(100)); // until sleep runs
    type_into(&master, b"\x03");
    let out = berth.wait_for_end(Duration::from_secs(10));
    assert!(out.is_some(), "Ctrl-C did not reach the container's sleep");
    w.assert_clean();
}

#[test]
fn a_container_in_the_background_gets_no_keystroke_meant_for_the_shell() {
    let w = World::new();
    let (master, slave) = pty();
    let stolen = w.path("stolen");
    // A shell with job control at the terminal starts berth in the background, then waits for
    // what is typed, as an interactive shell would read its next command.
    let typed_file = w.path("typed");
    let script = format!(
        "set -m; {} --root {} run --net none sh -c 'cat > {}' & \
         sleep 0.5; read line; echo \"$line\" > {}; kill -9 $!",
        berth_bin().display(),
        w.root().display(),
        stolen.display(),
        typed_file.display()
    );
    let mut cmd = w.cmd("bash");
    cmd.args(["-c", &script]);
    at_terminal(&mut cmd, &slave);
    let mut shell = w.spawn(&mut cmd);
    std::thread::sleep(Duration::from_millis(800));
    type_into(&master, b"echo secret-password\n");
    shell.wait(Duration::from_secs(10));
    let stolen = fs::read_to_string(&stolen).unwrap_or_default();
    assert!(!stolen.contains("secret"), "the container read what was typed: {stolen:?}");
    let typed = fs::read_to_string(&typed_file).unwrap_or_default();
    assert_eq!(typed, "echo secret-password\n", "the shell got what was typed");
    w.run(w.berth().arg("gc")).ok();
    w.assert_clean();
}
