//! Files of berth's state, and the small files berth is handed.
//!
//! Records are changed under an exclusive lock and replaced by an atomic rename, so a crash
//! never leaves one torn; directories of the state are made 0700 and no link in them is
//! followed. The small files berth reads (an `--env-file`, config.json, a state record, a
//! container's /etc/passwd) are read as regular files only, and no larger than a cap, so that a
//! FIFO, a device or an endless file can neither hang berth nor fill its memory.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::{Error, Result};

/// Takes an exclusive lock on the file at `path`, creating it (0600) if needed; the lock lasts
/// as long as the returned guard.
pub fn lock(path: &Path) -> Result<Flock<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::file(path, e))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| Error::file(path, errno.into()))
}

/// Replaces `path` with `contents` (file mode `mode`) by writing a temporary file beside it and
/// renaming it over, so readers and crashes see the old file or the new one, never a part. Links
/// are never followed: a link at `path` is replaced, not written through.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temporary)
        .and_then(|mut file| file.write_all(contents))
        .and_then(|()| fs::rename(&temporary, path));
    written.map_err(|e| {
        let _ = fs::remove_file(&temporary);
        Error::file(path, e)
    })
}

/// Makes `ROOT/a/b/...` for `parts` = `[a, b, ...]`: ROOT with its parents if missing (ROOT
/// itself may be a link), then each part below it, 0700, refusing any part that exists as a
/// symbolic link or as something other than a directory: berth never follows a link planted
/// under its root.
pub fn private_dir(root: &Path, parts: &[&str]) -> Result<PathBuf> {
    if !root.is_dir() {
        let mut parents = DirBuilder::new();
        parents.recursive(true).mode(0o700);
        parents.create(root).map_err(|e| file_error(root, e))?;
    }
    let mut path = root.to_path_buf();
    for part in parts {
        path.push(part);
        match DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => check_real_dir(&path)?,
            Err(e) => return Err(file_error(&path, e)),
        }
    }
    Ok(path)
}

/// Checks that `path` is a directory itself, not a link to one nor another kind of file.
pub fn check_real_dir(path: &Path) -> Result<()> {
    let kind = fs::symlink_metadata(path)
        .map_err(|e| file_error(path, e))?
        .file_type();
    if kind.is_dir() {
        return Ok(());
    }
    let what = if kind.is_symlink() {
        "a symbolic link"
    } else {
        "not a directory"
    };
    Err(Error::NotADirectory {
        path: path.into(),
        what,
    })
}

/// A failed operation on a file, as it is (no O_NOFOLLOW was asked, so ELOOP is not a link).
fn file_error(path: &Path, source: io::Error) -> Error {
    Error::File {
        path: path.into(),
        source,
    }
}

/// The cap for a configuration file or record: far above any real one.
pub const CONFIG_LIMIT: u64 = 4 << 20;

/// Whether a link at the path's end is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Followed (a path the user gave).
    Follow,
    /// Refused (berth's own state, where no link belongs).
    Refuse,
}

/// Reads the regular file at `path`, refusing anything else or more than `limit` bytes.
pub fn read_regular(path: &Path, limit: u64, links: Links) -> io::Result<Vec<u8>> {
    let file = match links {
        // Berth's own state, root's alone: nothing but berth puts a file there.
        Links::Refuse => File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => {
                    io::Error::other("a symbolic link, which berth does not follow here")
                }
                _ => e,
            })?,
        // A path the user gave may lead anywhere (a link a container planted in a bundle it
        // shares): looked at first through O_PATH, which opens nothing, so that no device is
        // opened (some do something when opened) and no FIFO waited on, and opened for
        // reading only once it is a regular file.
        Links::Follow => {
            let handle = File::options()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
                .open(path)?;
            check_regular(&handle)?;
            File::open(format!("/proc/self/fd/{}", handle.as_raw_fd()))?
        }
    };
    read_regular_file(file, limit)
}

/// Reads `file` whole, if it is a regular file of at most `limit` bytes.
pub fn read_regular_file(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let metadata = check_regular(&file)?;
    // Room for what the file holds now (one read, and one to see its end).
    let mut contents = Vec::with_capacity(metadata.len().min(limit) as usize + 1);
    file.take(limit + 1).read_to_end(&mut contents)?;
    if contents.len() as u64 > limit {
        return Err(io::Error::other(format!(
            "larger than {} MiB: berth reads no more",
            limit >> 20
        )));
    }
    Ok(contents)
}

/// `file`'s metadata, if it is a regular file, and not one of /proc or /sys (whose files are
/// the kernel's: reading /proc/kmsg, say, takes messages from the kernel's log).
fn check_regular(file: &File) -> io::Result<std::fs::Metadata> {
    use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC, SYSFS_MAGIC};
    let metadata = file.metadata()?;
    let kind = metadata.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(io::Error::other(format!(
            "{what}: berth reads regular files only"
        )));
    }
    let filesystem = fstatfs(file)?.filesystem_type();
    if filesystem == PROC_SUPER_MAGIC || filesystem == SYSFS_MAGIC {
        return Err(io::Error::other(
            "a file of /proc or /sys, the kernel's: berth reads none of them",
        ));
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = std::env::temp_dir().join(format!("berth-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        std::fs::write(&file, b"KEY=value\n").unwrap();
        assert_eq!(
            read_regular(&file, 100, Links::Refuse).unwrap(),
            b"KEY=value\n"
        );
        let err = read_regular(&file, 4, Links::Follow).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = read_regular(&fifo, 100, Links::Follow).unwrap_err();
        assert!(err.to_string().contains("a FIFO"), "{err}");
        let err = read_regular(Path::new("/dev/zero"), 100, Links::Follow).unwrap_err();
        assert!(err.to_string().contains("a device"), "{err}");
        let err = read_regular(Path::new("/proc/self/status"), 1 << 20, Links::Follow).unwrap_err();
        assert!(err.to_string().contains("/proc or /sys"), "{err}");
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(read_regular(&link, 100, Links::Follow).is_ok());
        let err = read_regular(&link, 100, Links::Refuse).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
