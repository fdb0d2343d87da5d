//! The network configuration on stdin, checked whole before anything is touched.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use netsetup::{Ipv4Net, NetworkSpec, PortMapping, Protocol};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{CniError, DECODE, INCOMPATIBLE_VERSION, INVALID_CONFIG};

/// The CNI versions whose configurations berth-cni takes, and whose results it gives.
pub const SUPPORTED_VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

/// Where the lease files live unless the configuration says `dataDir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/berth";

/// The bridge unless the configuration names one.
pub const DEFAULT_BRIDGE: &str = "berth-cni0";

/// One plugin configuration of type `berth-cni`: the keys of the CNI specification and
/// berth-cni's own. Any other key is refused, by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// The version of the specification the configuration follows.
    pub cni_version: String,
    /// The versions a configuration list declares (copied into each plugin's by some
    /// runtimes): taken, not used.
    #[serde(default, rename = "cniVersions")]
    _cni_versions: Option<IgnoredAny>,
    /// The network's name.
    pub name: String,
    /// `berth-cni`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The bridge interface (at most 15 bytes).
    #[serde(default)]
    pub bridge: Option<String>,
    /// The containers' subnet.
    pub subnet: Option<Ipv4Net>,
    /// The bridge's address; the subnet's first host address unless given.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// Masquerade what leaves the subnet for elsewhere (the default); `false`: routed as it
    /// is.
    #[serde(default)]
    pub ip_masq: Option<bool>,
    /// The bridge holds the gateway address and is the containers' default route (default
    /// `true`); `false`: the containers reach only each other.
    #[serde(default)]
    pub is_gateway: Option<bool>,
    /// The MTU of both ends of the veth.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Where the lease file lives (`DIR/NAME/leases`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The capabilities the plugin takes from the runtime (`portMappings`): for the runtime,
    /// which passes their values in `runtimeConfig`.
    #[serde(default, rename = "capabilities")]
    _capabilities: Option<IgnoredAny>,
    /// What the runtime passes for those capabilities.
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    /// The result of the plugins before this one in a chain.
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// Arguments from the runtime (`args` of the specification's conventions): taken, not
    /// used.
    #[serde(default, rename = "args")]
    _args: Option<IgnoredAny>,
    /// DNS settings, passed on in the result as they are.
    #[serde(default)]
    pub dns: Option<Value>,
    /// The attachments a GC keeps.
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// The part of `runtimeConfig` that berth-cni reads; other capabilities' entries are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// `portMappings`: the ports to publish.
    #[serde(default)]
    pub port_mappings: Vec<PortMap>,
}

/// One entry of `runtimeConfig.portMappings`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMap {
    /// The host's port.
    pub host_port: u16,
    /// The container's port.
    pub container_port: u16,
    /// `tcp` (the default) or `udp`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The host address; empty or absent: every IPv4 address.
    #[serde(default, rename = "hostIP")]
    pub host_ip: Option<String>,
}

/// An attachment the runtime still uses (`cni.dev/valid-attachments`).
#[derive(Debug, Deserialize, PartialEq, Eq, Hash)]
pub struct Attachment {
    /// The container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface name in the container.
    pub ifname: String,
}

/// The `cniVersion` of a configuration's text, checked: 6 when it is not JSON, 1 when the
/// version is not supported.
pub fn version_of(text: &str) -> Result<(Value, String), CniError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        CniError::new(
            DECODE,
            "the network configuration is not JSON",
            e.to_string(),
        )
    })?;
    let version = match value.get("cniVersion") {
        None => String::from("0.1.0"),
        Some(Value::String(version)) => version.clone(),
        Some(other) => {
            return Err(CniError::new(
                INVALID_CONFIG,
                "cniVersion must be a string",
                other.to_string(),
            ))
        }
    };
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return Err(CniError::new(
            INCOMPATIBLE_VERSION,
            format!(
                "cniVersion {version} is not supported: berth-cni supports {}",
                SUPPORTED_VERSIONS.join(", ")
            ),
            "",
        ));
    }
    Ok((value, version))
}

impl Config {
    /// Parses and checks a configuration: 6 when it is not JSON, 1 for an unsupported
    /// version, 7 for anything else wrong (an unknown key, by name).
    pub fn parse(text: &str) -> Result<Config, CniError> {
        let (value, _) = version_of(text)?;
        let config: Config = serde_json::from_value(value).map_err(|e| {
            CniError::new(
                INVALID_CONFIG,
                format!("invalid network configuration: {e}"),
                "",
            )
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), CniError> {
        let invalid = |msg: String| Err(CniError::new(INVALID_CONFIG, msg, ""));
        if self.kind != "berth-cni" {
            return invalid(format!("type is {:?}, not \"berth-cni\"", self.kind));
        }
        let plain = |text: &str| {
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        };
        if self.name.is_empty()
            || self.name.len() > 100
            || !plain(&self.name)
            || self.name.starts_with('.')
        {
            return invalid(format!(
                "name {:?}: a network needs a name of 1 to 100 letters, digits, '_', '.' or \
                 '-', not starting with '.'",
                self.name
            ));
        }
        let Some(subnet) = self.subnet else {
            return invalid("subnet is required (e.g. \"subnet\": \"10.88.0.0/16\")".into());
        };
        if subnet.prefix_len() > 30 {
            return invalid(format!("subnet {subnet} is too small: at most /30"));
        }
        let bridge = self.bridge();
        if bridge.is_empty() || bridge.len() > 15 || !plain(bridge) || bridge.starts_with('.') {
            return invalid(format!(
                "bridge {bridge:?} is not an interface name (1 to 15 letters, digits, '_', '.' \
                 or '-')"
            ));
        }
        // Names that berth itself uses: its veths (which `berth gc` removes when no container
        // accounts for them) and its networks' bridges.
        let berths = bridge
            .strip_prefix("berth")
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
        if bridge.starts_with("bth") || bridge.starts_with("bcni") || berths {
            return invalid(format!(
                "bridge {bridge:?} is a name berth uses for its own interfaces; name another"
            ));
        }
        if let Some(mtu) = self.mtu {
            if !(68..=65535).contains(&mtu) {
                return invalid(format!("mtu {mtu} is out of range (68 to 65535)"));
            }
        }
        let gateway = self.gateway();
        if gateway == subnet.network()
            || gateway == subnet.broadcast()
            || !subnet.contains(&gateway)
        {
            return invalid(format!(
                "gateway {gateway} is not a host address of {subnet}"
            ));
        }
        for port in &self.runtime_config.port_mappings {
            self.mapping(port, gateway)?;
        }
        Ok(())
    }

    /// The bridge's name.
    pub fn bridge(&self) -> &str {
        self.bridge.as_deref().unwrap_or(DEFAULT_BRIDGE)
    }

    fn subnet(&self) -> Ipv4Net {
        self.subnet.expect("checked by parse").trunc()
    }

    fn gateway(&self) -> Ipv4Addr {
        let subnet = self.subnet.map(|s| s.trunc()).unwrap_or_default();
        self.gateway
            .unwrap_or_else(|| subnet.hosts().next().unwrap_or(subnet.network()))
    }

    /// The network as netsetup knows it.
    pub fn network(&self) -> NetworkSpec {
        NetworkSpec {
            name: self.name.clone(),
            bridge: self.bridge().into(),
            subnet: self.subnet(),
            gateway: self.gateway(),
            internal: false,
            masquerade: self.ip_masq.unwrap_or(true),
            subnet6: None,
            bridge_is_gateway: self.is_gateway.unwrap_or(true),
        }
    }

    /// The directory of this network's lease file.
    pub fn state_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
            .join(&self.name)
    }

    /// The port mappings to publish for a container at `addr`.
    pub fn mappings(&self, addr: Ipv4Addr) -> Result<Vec<PortMapping>, CniError> {
        let mut mappings = Vec::new();
        for port in &self.runtime_config.port_mappings {
            mappings.extend(self.mapping(port, addr)?);
        }
        Ok(mappings)
    }

    /// One `portMappings` entry as a mapping to `addr`; `None` for an IPv6 host address (the
    /// containers have IPv4 only).
    fn mapping(&self, port: &PortMap, addr: Ipv4Addr) -> Result<Option<PortMapping>, CniError> {
        let invalid = |msg: String| CniError::new(INVALID_CONFIG, msg, "");
        let protocol = match port
            .protocol
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("" | "tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            Some(other) => {
                return Err(invalid(format!(
                    "portMappings: protocol {other:?} is not supported (tcp or udp)"
                )))
            }
        };
        let host_ip = match port.host_ip.as_deref() {
            None | Some("" | "0.0.0.0") => None,
            Some(text) => match text.parse::<IpAddr>() {
                Ok(IpAddr::V6(_)) => return Ok(None),
                Ok(ip) => Some(ip),
                Err(_) => {
                    return Err(invalid(format!(
                        "portMappings: hostIP {text:?} is not an address"
                    )))
                }
            },
        };
        if port.host_port == 0 || port.container_port == 0 {
            return Err(invalid("portMappings: ports must be 1 to 65535".into()));
        }
        Ok(Some(PortMapping {
            protocol,
            host_ip,
            host_port: port.host_port,
            container_ip: IpAddr::V4(addr),
            container_port: port.container_port,
        }))
    }
}
