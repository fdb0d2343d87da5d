//! Reading the small files berth is handed (an `--env-file`, config.json, a state record, a
//! container's /etc/passwd): regular files only, and no larger than a cap, so that a FIFO, a
//! device or an endless file can neither hang berth nor fill its memory.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

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
