//! `berth logs`: a detached container's output, stdout to stdout and stderr to stderr; `-f`
//! follows it until the container ends.

use std::path::Path;

use crate::engine::state::{ContainerDir, Status};
use crate::error::{Error, Result};
use berth_container::log;

/// Runs `berth logs [-f] NAME`.
pub fn logs(root: &Path, name: &str, follow: bool) -> Result<u8> {
    let (dir, state) = ContainerDir::find(root, name)?;
    if !state.detached {
        return Err(Error::Invalid(format!(
            "{name} runs in the foreground: its output goes to the terminal that started it"
        )));
    }
    let running = || {
        dir.read_state()
            .is_ok_and(|s| s.status() == Status::Running)
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    log::print(dir.path(), &mut out, &mut err, follow, running)?;
    Ok(0)
}
