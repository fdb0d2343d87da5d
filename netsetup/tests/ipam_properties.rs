//! Properties of the lease file and the allocator, over random inputs: never the network,
//! gateway or broadcast address; never one address twice; a freed address comes back (lowest
//! free first); what is written parses back to the same leases; no text makes the parser panic.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use netsetup::{Ipv4Net, LeaseFile, LeaseOwner};
use proptest::prelude::*;

/// A /28: 14 host addresses, 13 of them leasable (the gateway is .1).
fn small_network(dir: &std::path::Path) -> LeaseFile {
    LeaseFile::new(
        dir,
        "10.9.0.0/28".parse().unwrap(),
        Ipv4Addr::new(10, 9, 0, 1),
    )
}

fn owner(container: &str) -> LeaseOwner {
    let mut owner = LeaseOwner::this_process(container).expect("this process's identity");
    owner.container = container.into();
    owner
}

#[derive(Debug, Clone)]
enum Step {
    Allocate,
    Release(usize),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![3 => Just(Step::Allocate), 2 => (0usize..20).prop_map(Step::Release)],
        1..60,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_allocator_hands_out_the_lowest_free_address_and_never_a_reserved_one(steps in steps()) {
        let dir = tempfile::tempdir().unwrap();
        let leases = small_network(dir.path());
        let subnet: Ipv4Net = "10.9.0.0/28".parse().unwrap();
        let mut held: Vec<(String, Ipv4Addr)> = Vec::new();
        for (n, step) in steps.iter().enumerate() {
            match step {
                Step::Allocate => {
                    let container = format!("c{n}");
                    let model_free: Option<Ipv4Addr> = (2..15)
                        .map(|i| Ipv4Addr::new(10, 9, 0, i))
                        .find(|a| !held.iter().any(|(_, h)| h == a));
                    match leases.allocate(&owner(&container), None, |_| false) {
                        Ok(addr) => {
                            prop_assert_eq!(Some(addr), model_free, "lowest free first");
                            prop_assert!(addr != subnet.network() && addr != subnet.broadcast());
                            prop_assert!(addr != Ipv4Addr::new(10, 9, 0, 1), "never the gateway");
                            held.push((container, addr));
                        }
                        Err(netsetup::Error::SubnetExhausted { .. }) => {
                            prop_assert_eq!(model_free, None, "exhausted only when full");
                        }
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    }
                }
                Step::Release(i) if !held.is_empty() => {
                    let (container, addr) = held.remove(i % held.len());
                    prop_assert_eq!(leases.release(&container).unwrap(), vec![addr]);
                }
                Step::Release(_) => {}
            }
            let on_file: BTreeSet<Ipv4Addr> = leases.leases().unwrap().into_keys().collect();
            let model: BTreeSet<Ipv4Addr> = held.iter().map(|(_, a)| *a).collect();
            prop_assert_eq!(&on_file, &model, "the file holds exactly the live leases");
            prop_assert_eq!(on_file.len(), held.len(), "no address twice");
        }
    }

    #[test]
    fn a_requested_address_is_given_once(requests in prop::collection::vec(0u8..16, 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let leases = small_network(dir.path());
        let mut given = BTreeSet::new();
        for (n, last) in requests.iter().enumerate() {
            let addr = Ipv4Addr::new(10, 9, 0, *last);
            let result = leases.allocate(&owner(&format!("c{n}")), Some(addr), |_| false);
            let reserved = matches!(last, 0 | 1 | 15);
            match result {
                Ok(got) => {
                    prop_assert_eq!(got, addr);
                    prop_assert!(!reserved, "{} is reserved", addr);
                    prop_assert!(given.insert(addr), "{} given twice", addr);
                }
                Err(_) => prop_assert!(reserved || given.contains(&addr)),
            }
        }
    }

    #[test]
    fn written_leases_parse_back(
        entries in prop::collection::btree_map(2u8..15, ("[0-9a-f]{64}", 1u32..4_000_000, any::<u64>(), "[0-9a-f-]{36}"), 0..13)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let leases = small_network(dir.path());
        let mut text = String::from("# a comment\n\n");
        for (last, (container, pid, start, boot)) in &entries {
            text += &format!("10.9.0.{last} container={container} pid={pid} start={start} boot={boot}\n");
        }
        let parsed = leases.parse(&text).unwrap();
        prop_assert_eq!(parsed.len(), entries.len());
        for (last, (container, pid, start, boot)) in &entries {
            let lease = &parsed[&Ipv4Addr::new(10, 9, 0, *last)];
            prop_assert_eq!(&lease.container, container);
            prop_assert_eq!((lease.pid, lease.start), (*pid, *start));
            prop_assert_eq!(&lease.boot, boot);
        }
    }

    #[test]
    fn no_text_makes_the_parser_panic(text in "\\PC*") {
        let dir = tempfile::tempdir().unwrap();
        let _ = small_network(dir.path()).parse(&text);
    }
}
