//! The host resolv.conf reader on arbitrary text: it must never panic, and the container's
//! file never names a loopback server (which a container cannot reach).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let out = netsetup::container_resolv_conf(text, &[]);
    for line in out.lines() {
        if let Some(server) = line.strip_prefix("nameserver ") {
            let addr: std::net::IpAddr =
                server.parse().expect("a nameserver line holds an address");
            assert!(!addr.is_loopback(), "{line}");
        }
    }
});
