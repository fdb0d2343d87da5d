//! `berth logs`: a detached container's output; `-f` follows it until the container ends.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::container::state::{ContainerDir, Status};
use crate::error::{Error, Result};

/// Runs `berth logs [-f] NAME`.
pub fn logs(root: &Path, name: &str, follow: bool) -> Result<u8> {
    let (dir, state) = ContainerDir::find(root, name)?;
    if !state.detached {
        return Err(Error::Invalid(format!(
            "{name} runs in the foreground: its output goes to the terminal that started it"
        )));
    }
    let path = dir.log_path();
    let mut log = File::open(&path).map_err(|e| Error::file(&path, e))?;
    let mut out = std::io::stdout().lock();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = log.read(&mut buffer).map_err(|e| Error::file(&path, e))?;
        if n > 0 {
            out.write_all(&buffer[..n])
                .and_then(|()| out.flush())
                .map_err(|e| Error::system("write the log", e))?;
            continue;
        }
        // At the end of what is written: done, unless following a container that still runs.
        let running = dir
            .read_state()
            .is_ok_and(|s| s.status() == Status::Running);
        if !follow || !running {
            // One last read: the workload may have written just before it ended.
            let n = log.read(&mut buffer).map_err(|e| Error::file(&path, e))?;
            let _ = out.write_all(&buffer[..n]);
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
