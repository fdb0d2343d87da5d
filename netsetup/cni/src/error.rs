//! The CNI error: a code from the specification, a message and details, printed as its JSON.

use serde_json::json;

/// Incompatible CNI version.
pub const INCOMPATIBLE_VERSION: u32 = 1;
/// Invalid necessary environment variables.
pub const INVALID_ENV: u32 = 4;
/// Failed to decode content.
pub const DECODE: u32 = 6;
/// Invalid network configuration.
pub const INVALID_CONFIG: u32 = 7;
/// Try again later.
pub const TRY_AGAIN: u32 = 11;
/// The plugin is not available (STATUS).
pub const NOT_AVAILABLE: u32 = 50;
/// berth-cni's own: a netsetup step failed.
pub const NETSETUP: u32 = 100;
/// berth-cni's own: CHECK found the attachment not as ADD made it.
pub const CHECK_FAILED: u32 = 101;
/// berth-cni's own: no free address is left in the subnet.
pub const NO_ADDRESS: u32 = 102;

/// An error as the specification's JSON gives it.
#[derive(Debug)]
pub struct CniError {
    /// The code.
    pub code: u32,
    /// What failed, for a person.
    pub msg: String,
    /// More about it.
    pub details: String,
}

impl CniError {
    /// An error with `code`.
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The JSON printed on stdout, for a caller of `version`.
    pub fn to_json(&self, version: &str) -> String {
        let mut error = json!({
            "cniVersion": version,
            "code": self.code,
            "msg": self.msg,
        });
        if !self.details.is_empty() {
            error["details"] = self.details.clone().into();
        }
        error.to_string()
    }
}

impl From<netsetup::Error> for CniError {
    fn from(error: netsetup::Error) -> Self {
        use netsetup::Error as E;
        if let E::BridgeOwnedElsewhere { bridge, root } = &error {
            // netsetup speaks of berth's --root; a CNI network has a data directory.
            return CniError::new(
                NETSETUP,
                format!(
                    "bridge {bridge} hands out the addresses of another lease file ({root}): \
                     give this network a bridge of its own, or the same dataDir and name"
                ),
                "",
            );
        }
        let code = match &error {
            E::AttachmentWrong { .. } => CHECK_FAILED,
            E::SubnetExhausted { .. } => NO_ADDRESS,
            // Something busy for the moment: the runtime may try again.
            E::File { source, .. } | E::Netlink { source, .. }
                if matches!(source.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY)) =>
            {
                TRY_AGAIN
            }
            _ => NETSETUP,
        };
        CniError::new(code, error.to_string(), "")
    }
}
