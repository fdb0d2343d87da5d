//! Small helpers: temporary directories, polling with a deadline, unique tokens, the lease file
//! format, and a minimal DNS query for readiness checks.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A number unique within this test process (and very likely across processes).
pub fn unique() -> u64 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (u64::from(std::process::id()) << 32) ^ (n << 20) ^ u64::from(nanos)
}

/// An argument for `sleep` that no other process on the machine is likely to use, so that the
/// process can be found again in /proc by its exact argv. Between 100 and 999 seconds.
pub fn unique_sleep_arg() -> String {
    let u = unique();
    format!("{}.{:06}", 100 + (u % 900), (u >> 10) % 1_000_000)
}

/// A directory removed on drop, unless the thread is panicking (then it is kept and its path
/// printed, for the post-mortem).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("{prefix}-{:x}", unique()));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        set_mode(&path, 0o755);
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("berth-e2e: kept {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Call `f` until it returns `Some`, every `every`, for at most `timeout`.
pub fn poll<T>(timeout: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// A shell fragment that waits (bounded, 20 s) for `path` to exist, and exits 99 if it never
/// does: workloads that must overlap hold on such a barrier instead of sleeping forever.
pub fn sh_wait_for_file(path: &Path) -> String {
    format!(
        "i=0; while [ ! -e '{p}' ]; do i=$((i+1)); [ $i -gt 400 ] && exit 99; sleep 0.05; done",
        p = path.display()
    )
}

/// Wait until `path` exists (bounded). Returns false on timeout.
pub fn wait_for_file(path: &Path, timeout: Duration) -> bool {
    poll(timeout, Duration::from_millis(5), || path.exists().then_some(())).is_some()
}

/// One line of berth's lease file:
/// `ADDR container=<64 hex> pid=<pid> start=<ticks> boot=<boot id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub container: String,
    pub pid: u32,
    pub start: u64,
    pub boot: String,
    pub line: String,
}

impl Lease {
    /// Parse one non-comment line strictly; `Err` says what is wrong with it.
    pub fn parse(line: &str) -> Result<Lease, String> {
        let mut words = line.split_whitespace();
        let addr = words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| format!("lease line without an address: {line:?}"))?;
        let (mut container, mut pid, mut start, mut boot) = (None, None, None, None);
        for w in words {
            let (k, v) = w.split_once('=').ok_or_else(|| format!("bad field {w:?} in {line:?}"))?;
            match k {
                "container" => container = Some(v.to_string()),
                "pid" => pid = v.parse().ok(),
                "start" => start = v.parse().ok(),
                "boot" => boot = Some(v.to_string()),
                _ => return Err(format!("unknown field {k:?} in {line:?}")),
            }
        }
        let missing = |what| format!("lease line without a valid {what}: {line:?}");
        Ok(Lease {
            addr,
            container: container.ok_or_else(|| missing("container"))?,
            pid: pid.ok_or_else(|| missing("pid"))?,
            start: start.ok_or_else(|| missing("start"))?,
            boot: boot.ok_or_else(|| missing("boot"))?,
            line: line.to_string(),
        })
    }

    pub fn format(addr: Ipv4Addr, container: &str, pid: u32, start: u64, boot: &str) -> String {
        format!("{addr} container={container} pid={pid} start={start} boot={boot}")
    }
}

/// Parse a whole lease file's text (comment lines start with `#`; blank lines ignored).
pub fn parse_leases(text: &str) -> Vec<Lease> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            Lease::parse(l).unwrap_or_else(|e| panic!("lease file: {e}\n--- file ---\n{text}"))
        })
        .collect()
}

/// Ask `server` for the A record of `name` once; returns the addresses in the answer.
pub fn dns_query_a(server: SocketAddr, name: &str, timeout: Duration) -> Option<Vec<Ipv4Addr>> {
    let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.set_read_timeout(Some(timeout)).ok()?;
    let id = (unique() & 0xffff) as u16;
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]); // root, type A, class IN
    sock.send_to(&q, server).ok()?;
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).ok()?;
    let r = &buf[..n];
    if n < 12 || r[0..2] != id.to_be_bytes() {
        return None;
    }
    let ancount = u16::from_be_bytes([r[6], r[7]]);
    // Skip the header and the question (same name as ours, then type and class).
    let mut i = q.len();
    let mut out = Vec::new();
    for _ in 0..ancount {
        // Name: a pointer (2 bytes) or labels.
        if *r.get(i)? & 0xc0 == 0xc0 {
            i += 2;
        } else {
            while *r.get(i)? != 0 {
                i += 1 + usize::from(r[i]);
            }
            i += 1;
        }
        let rtype = u16::from_be_bytes([*r.get(i)?, *r.get(i + 1)?]);
        let rdlen = usize::from(u16::from_be_bytes([*r.get(i + 8)?, *r.get(i + 9)?]));
        i += 10;
        if rtype == 1 && rdlen == 4 {
            out.push(Ipv4Addr::new(*r.get(i)?, r[i + 1], r[i + 2], r[i + 3]));
        }
        i += rdlen;
    }
    Some(out)
}
