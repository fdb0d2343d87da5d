//! The lease file parser on arbitrary text: it must never panic, and whatever it accepts must
//! hold only leasable addresses, each once.
#![no_main]

use std::net::Ipv4Addr;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let leases = netsetup::LeaseFile::new(
        Path::new("/nonexistent"),
        "10.9.0.0/28".parse().unwrap(),
        Ipv4Addr::new(10, 9, 0, 1),
    );
    if let Ok(parsed) = leases.parse(text) {
        for addr in parsed.keys() {
            assert!(leases.check_address(*addr).is_ok(), "{addr} accepted");
        }
    }
});
