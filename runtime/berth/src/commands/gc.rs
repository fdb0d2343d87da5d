//! `berth gc`: removes everything whose owner is gone (`engine::gc`), one line per thing
//! removed.

use std::path::Path;

use crate::cli::GcArgs;
use crate::engine::gc;
use crate::engine::host::{canonical_root, check_privileges};
use crate::error::Result;

/// Runs `berth gc`.
pub fn gc(root: &Path, args: GcArgs) -> Result<u8> {
    check_privileges("gc")?;
    let root = &canonical_root(root)?;
    gc::collect(root, args.repair, &mut |swept| {
        if swept.is_warning() {
            eprintln!("{swept}");
        } else {
            println!("{swept}");
        }
    })?;
    Ok(0)
}
