//! `berth network`: the networks berth manages.

use std::path::Path;

use netsetup::NetworkSpec;

use crate::cli::NetworkCommand;
use crate::commands::run::{canonical_root, check_privileges};
use crate::container::state::private_dir;
use crate::error::Result;

/// Runs a `berth network` subcommand.
pub fn network(root: &Path, command: NetworkCommand) -> Result<u8> {
    match command {
        NetworkCommand::Reload => {
            check_privileges("network reload")?;
            let root = canonical_root(root)?;
            let network = NetworkSpec::default_bridge();
            let state_dir = private_dir(&root, &["networks", &network.name])?;
            netsetup::reload_firewall(&network, &state_dir)?;
            println!("restored nftables table inet {}", netsetup::firewall::TABLE);
            Ok(0)
        }
    }
}
