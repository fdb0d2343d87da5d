use netsetup::{LeaseFile, LeaseOwner};
use std::time::Instant;
fn main() {
    let dir = std::path::Path::new("/dev/shm/leasebench");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let leases = LeaseFile::new(
        dir,
        "10.201.0.0/16".parse().unwrap(),
        "10.201.0.1".parse().unwrap(),
    );
    let me = LeaseOwner::this_process("x").unwrap();
    for i in 0..1000 {
        let mut o = me.clone();
        o.container = format!("{:064}", i);
        leases.allocate(&o, None, |_| true).unwrap();
    }
    for _ in 0..3 {
        let t = Instant::now();
        let mut o = me.clone();
        o.container = "y".repeat(64);
        leases.allocate(&o, None, |_| true).unwrap();
        let a = t.elapsed();
        let t = Instant::now();
        leases.release(&o.container).unwrap();
        let r = t.elapsed();
        let t = Instant::now();
        let m = leases.leases().unwrap();
        let p = t.elapsed();
        let t = Instant::now();
        let alive = m.values().filter(|o| o.may_be_alive()).count();
        let k = t.elapsed();
        println!("allocate {a:?} release {r:?} read+parse {p:?} kill-check {k:?} ({alive})");
    }
}
