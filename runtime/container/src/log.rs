//! A detached container's log. The workload writes into two pipes (its stdout and its stderr);
//! its supervisor reads them and writes the log, `ROOT/containers/ID/log`, in docker's
//! json-file format (one JSON object a line: `log`, `stream`, `time`), so that the workload
//! never holds the file, the two streams stay apart, and the log is capped: past `max-size`
//! it is rotated (`log.1`, `log.2`, ... up to `max-file` files in all, the oldest dropped), so
//! that a chatty workload cannot fill the state root (a tmpfs: memory) however long it runs.
//!
//! The supervisor's own messages (a warning while it tears down, say) go into the same file as
//! plain lines; `berth logs` prints those, and any line that is not a record, to stderr.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sys;

/// The log's name in the container's directory; rotated ones are `log.1` (the newest) on.
pub const FILE_NAME: &str = "log";

/// How large the log may grow: `--log-opt max-size=SIZE` and `--log-opt max-file=N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    /// The size past which the log is rotated, in bytes.
    pub max_size: u64,
    /// How many files are kept: the log and `max_files - 1` rotated ones.
    pub max_files: u32,
}

impl Default for LogOptions {
    /// 10 MiB a file, 3 files: at most 30 MiB of a container's output in the state root.
    fn default() -> Self {
        LogOptions {
            max_size: 10 << 20,
            max_files: 3,
        }
    }
}

impl LogOptions {
    /// docker's `--log-opt` entries: `max-size=SIZE` (bytes, or with k, m or g) and
    /// `max-file=N`.
    pub fn parse(entries: &[String]) -> Result<Self> {
        let mut options = LogOptions::default();
        for entry in entries {
            let bad = |why: &str| Error::Invalid(format!("--log-opt {entry}: {why}"));
            let Some((key, value)) = entry.split_once('=') else {
                return Err(bad("use KEY=VALUE (max-size=10m, max-file=3)"));
            };
            match key {
                "max-size" => {
                    options.max_size = parse_size(value)
                        .filter(|&size| size >= 4096)
                        .ok_or_else(|| bad("the size must be 4k or more, such as 512k or 10m"))?;
                }
                "max-file" => {
                    options.max_files = value
                        .parse()
                        .ok()
                        .filter(|&n| (1..=100).contains(&n))
                        .ok_or_else(|| bad("the number of files must be 1 to 100"))?;
                }
                _ => {
                    return Err(bad(
                        "berth's log takes max-size and max-file (docker's json-file options)",
                    ))
                }
            }
        }
        Ok(options)
    }
}

/// A size in bytes, or with a unit k, m or g (powers of 1024, as docker's).
fn parse_size(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let (digits, shift) = match lower.trim_end_matches('b').chars().last()? {
        'k' => (&lower[..lower.find('k')?], 10),
        'm' => (&lower[..lower.find('m')?], 20),
        'g' => (&lower[..lower.find('g')?], 30),
        _ => (lower.as_str(), 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Which of the workload's streams a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Its standard output.
    Stdout,
    /// Its standard error.
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line of the log, as docker's json-file driver writes it.
#[derive(Debug, Serialize, Deserialize)]
struct Record<'a> {
    log: std::borrow::Cow<'a, str>,
    stream: std::borrow::Cow<'a, str>,
    time: std::borrow::Cow<'a, str>,
}

/// The workload's ends of the two pipes, to become its stdout and stderr, and the
/// supervisor's ends.
pub struct Pipes {
    /// The workload's stdout and stderr (write ends).
    pub workload: [OwnedFd; 2],
    /// The supervisor's ends (read ends, non-blocking), stdout's first.
    pub supervisor: [OwnedFd; 2],
}

impl Pipes {
    /// Two pipes, close-on-exec.
    pub fn new() -> Result<Self> {
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| Error::system("create the log's pipes", e))
        };
        let (out_read, out_write) = pipe()?;
        let (err_read, err_write) = pipe()?;
        Ok(Pipes {
            workload: [out_write, err_write],
            supervisor: [out_read, err_read],
        })
    }
}

/// The supervisor's side: what comes out of the pipes, written to the log.
pub struct Relay {
    pipes: [Option<OwnedFd>; 2],
    writer: Writer,
    buffer: Vec<u8>,
}

impl Relay {
    /// Relays what `sources` give (the workload's stdout and stderr: the supervisor's ends of
    /// [`Pipes`], or a terminal's master alone) into `writer`. Each is made non-blocking.
    pub fn new(sources: [Option<OwnedFd>; 2], writer: Writer) -> Self {
        for fd in sources.iter().flatten() {
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
        }
        Relay {
            pipes: sources,
            writer,
            buffer: vec![0; 64 * 1024],
        }
    }

    /// The pipes still open, to poll: (index, descriptor).
    pub fn open_pipes(&self) -> impl Iterator<Item = (usize, BorrowedFd<'_>)> {
        self.pipes
            .iter()
            .enumerate()
            .filter_map(|(i, fd)| fd.as_ref().map(|fd| (i, fd.as_fd())))
    }

    /// Moves what pipe `index` holds now into the log (one read); a pipe whose writers are all
    /// gone is closed.
    pub fn pump(&mut self, index: usize) {
        let stream = if index == 0 {
            Stream::Stdout
        } else {
            Stream::Stderr
        };
        let Some(fd) = &self.pipes[index] else {
            return;
        };
        match nix::unistd::read(fd, &mut self.buffer) {
            Ok(0) => self.pipes[index] = None,
            Ok(n) => {
                if let Err(e) = self.writer.write(stream, &self.buffer[..n]) {
                    eprintln!("berth: writing the log: {e}");
                }
            }
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            Err(_) => self.pipes[index] = None,
        }
    }

    /// Moves everything left in the pipes into the log, once the workload and what it left
    /// running are gone: until each pipe's end, or until it is empty (a descriptor passed on
    /// to a process outside the container would keep it open).
    pub fn drain(&mut self) {
        for index in 0..2 {
            while let Some(fd) = &self.pipes[index] {
                match nix::unistd::read(fd, &mut self.buffer) {
                    Ok(0) | Err(nix::errno::Errno::EAGAIN) => self.pipes[index] = None,
                    Ok(n) => {
                        let stream = [Stream::Stdout, Stream::Stderr][index];
                        if let Err(e) = self.writer.write(stream, &self.buffer[..n]) {
                            eprintln!("berth: writing the log: {e}");
                        }
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => self.pipes[index] = None,
                }
            }
        }
    }
}

/// Writes records into the log and rotates it.
pub struct Writer {
    dir: PathBuf,
    options: LogOptions,
    file: File,
    size: u64,
    line: Vec<u8>,
}

impl Writer {
    /// Opens (creates, 0600) the log in container directory `dir`, and points this process's
    /// own stdout and stderr at it.
    pub fn open(dir: &Path, options: LogOptions) -> Result<Self> {
        let file = open_log(dir)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let writer = Writer {
            dir: dir.to_path_buf(),
            options,
            file,
            size,
            line: Vec::new(),
        };
        writer.take_own_output()?;
        Ok(writer)
    }

    /// berth's own messages go into the log too, as plain lines.
    fn take_own_output(&self) -> Result<()> {
        for fd in [1, 2] {
            sys::redirect(self.file.as_fd(), fd)
                .map_err(|e| Error::system("redirect output", e))?;
        }
        Ok(())
    }

    /// Writes `bytes` of `stream`, a record per line (a last piece without its newline is a
    /// record too, as docker's), rotating first when the log is full.
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) -> Result<()> {
        let time = rfc3339_nanos(SystemTime::now());
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            self.line.clear();
            let record = Record {
                log: String::from_utf8_lossy(piece),
                stream: stream.name().into(),
                time: time.as_str().into(),
            };
            serde_json::to_writer(&mut self.line, &record)
                .map_err(|e| Error::Failed(format!("encode a log record: {e}")))?;
            self.line.push(b'\n');
            if self.size > 0 && self.size + self.line.len() as u64 > self.options.max_size {
                self.rotate()?;
            }
            let path = self.dir.join(FILE_NAME);
            self.file
                .write_all(&self.line)
                .map_err(|e| Error::file(&path, e))?;
            self.size += self.line.len() as u64;
        }
        Ok(())
    }

    /// `log.N-1` is dropped, `log.K` becomes `log.K+1`, `log` becomes `log.1`, and a new `log`
    /// starts; with one file only, the log starts again empty.
    fn rotate(&mut self) -> Result<()> {
        let path = |n: u32| match n {
            0 => self.dir.join(FILE_NAME),
            n => self.dir.join(format!("{FILE_NAME}.{n}")),
        };
        // A new file each time (never one truncated in place), so that `logs -f`, holding
        // the old one, sees it replaced.
        if self.options.max_files == 1 {
            fs::remove_file(path(0)).map_err(|e| Error::file(path(0), e))?;
        }
        for n in (0..self.options.max_files - 1).rev() {
            match fs::rename(path(n), path(n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(Error::file(path(n), e))
                }
                _ => {}
            }
        }
        self.file = open_log(&self.dir)?;
        self.take_own_output()?;
        self.size = 0;
        Ok(())
    }
}

fn open_log(dir: &Path) -> Result<File> {
    let path = dir.join(FILE_NAME);
    File::options()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::file(&path, e))
}

/// `time` as RFC 3339 in UTC with nanoseconds, as docker's records have it.
fn rfc3339_nanos(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_nanos()
    )
}

/// Prints the log in container directory `dir`: the rotated files oldest first, then the
/// log; stdout records to `out`, the rest to `err`. With `follow`, goes on printing what is
/// written until `still_running` says the container ended, through every rotation.
pub fn print(
    dir: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
    follow: bool,
    still_running: impl Fn() -> bool,
) -> Result<()> {
    let mut printer = Printer { out, err };
    let path = dir.join(FILE_NAME);
    let mut pending = Vec::new();
    // The file being read, and those newer than it, oldest first.
    let mut file: Option<File> = None;
    loop {
        let newer = match &file {
            None => files_oldest_first(dir)?,
            Some(current) => {
                let ino = file_ino(current);
                let chain = files_oldest_first(dir)?;
                match chain.iter().position(|(_, i)| *i == ino) {
                    Some(at) if at + 1 == chain.len() => Vec::new(),
                    Some(at) => chain[at + 1..].to_vec(),
                    // Ours went past the last file kept: all there is is newer.
                    None => chain,
                }
            }
        };
        if let Some(((newest, _), between)) = newer.split_last() {
            // What is left of the file we read, and the files between, are complete.
            if let Some(current) = file.take() {
                printer.print_complete(&mut BufReader::new(&current), &mut pending, &path)?;
                printer.line(&std::mem::take(&mut pending))?;
            }
            for (older, _) in between {
                // A file rotated away meanwhile is gone from under us: skip it.
                if let Ok(opened) = File::open(older) {
                    printer.print_all(BufReader::new(opened), older)?;
                }
            }
            file = Some(File::open(newest).map_err(|e| Error::file(newest, e))?);
        }
        let Some(current) = &file else {
            return Err(Error::file(&path, io::ErrorKind::NotFound.into()));
        };
        printer.print_complete(&mut BufReader::new(current), &mut pending, &path)?;
        if !follow {
            break;
        }
        if !still_running() {
            // What the supervisor wrote last, before it said the container ended.
            printer.print_complete(&mut BufReader::new(current), &mut pending, &path)?;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    printer.line(&pending)
}

/// The log's files, oldest first (`log.N` ... `log.1`, `log`), with their inodes.
fn files_oldest_first(dir: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let mut files: Vec<(u32, PathBuf, u64)> = fs::read_dir(dir)
        .map_err(|e| Error::file(dir, e))?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let n = match name.as_str() {
                FILE_NAME => 0,
                other => other.strip_prefix("log.")?.parse().ok()?,
            };
            Some((n, entry.path(), entry.metadata().ok()?.ino()))
        })
        .collect();
    files.sort_by_key(|(n, _, _)| std::cmp::Reverse(*n));
    Ok(files
        .into_iter()
        .map(|(_, path, ino)| (path, ino))
        .collect())
}

fn file_ino(file: &File) -> u64 {
    file.metadata().map(|m| m.ino()).unwrap_or(0)
}

struct Printer<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl Printer<'_> {
    fn print_all(&mut self, reader: impl Read, path: &Path) -> Result<()> {
        let mut pending = Vec::new();
        self.print_complete(&mut BufReader::new(reader), &mut pending, path)?;
        self.line(&pending)
    }

    /// Prints every complete line `reader` has; an incomplete last one (being written) stays
    /// in `pending`.
    fn print_complete(
        &mut self,
        reader: &mut dyn BufRead,
        pending: &mut Vec<u8>,
        path: &Path,
    ) -> Result<()> {
        loop {
            let n = reader
                .read_until(b'\n', pending)
                .map_err(|e| Error::file(path, e))?;
            if n == 0 || pending.last() != Some(&b'\n') {
                return Ok(());
            }
            let line = std::mem::take(pending);
            self.line(&line)?;
        }
    }

    /// One line of the log: a record's text to its stream, anything else to stderr as it is.
    fn line(&mut self, line: &[u8]) -> Result<()> {
        if line.is_empty() {
            return Ok(());
        }
        let written = match serde_json::from_slice::<Record>(line) {
            Ok(record) if record.stream == "stdout" => self.out.write_all(record.log.as_bytes()),
            Ok(record) => self.err.write_all(record.log.as_bytes()),
            Err(_) => self.err.write_all(line),
        };
        written
            .and_then(|()| self.out.flush())
            .map_err(|e| Error::system("write the log", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_options_are_dockers() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("x"), None);
        let options = LogOptions::parse(&["max-size=1m".into(), "max-file=2".into()]).unwrap();
        assert_eq!((options.max_size, options.max_files), (1 << 20, 2));
        for bad in ["max-size=1", "max-file=0", "mode=non-blocking", "max-size"] {
            assert!(LogOptions::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_rfc_3339_in_utc() {
        let t = UNIX_EPOCH + Duration::new(1_764_705_600, 5);
        assert_eq!(rfc3339_nanos(t), "2025-12-02T20:00:00.000000005Z");
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_nanos(leap), "2000-02-29T00:00:00.000000000Z");
    }
}
