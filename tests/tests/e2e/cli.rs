//! The command line itself: every command's help has examples; completions for three shells.

use berth_e2e::*;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Command;

fn berth(args: &[&str]) -> (i32, String) {
    let out = Command::new(berth_bin()).args(args).output().expect("run berth");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_command_has_help_with_examples() {
    let commands: [&[&str]; 12] = [
        &["run"],
        &["exec"],
        &["ps"],
        &["inspect"],
        &["logs"],
        &["stop"],
        &["kill"],
        &["rm"],
        &["gc"],
        &["network", "reload"],
        &["doctor"],
        &["completions"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let (code, text) = berth(&args);
        assert_eq!(code, 0, "{args:?}");
        assert!(text.contains("Examples:") || text.contains("Example:"), "{args:?}:\n{text}");
    }
}

#[test]
fn completions_for_bash_zsh_and_fish_know_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, script) = berth(&["completions", shell]);
        assert_eq!(code, 0, "{shell}");
        for word in ["run", "gc", "net", "cap-add", "privileged"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let (code, _) = berth(&["completions", "tcsh"]);
    assert_eq!(code, 125, "an unknown shell is berth's error");
    // A reader that went away (`| true`) is no error, and no panic: stdout is a pipe whose
    // reading end is closed.
    let mut ends = [0; 2];
    // SAFETY: pipe(2) writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe(ends.as_mut_ptr()) }, 0);
    // SAFETY: pipe(2) just made these descriptors; each is owned once.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    drop(read);
    let out = Command::new(berth_bin())
        .args(["completions", "bash"])
        .stdout(write)
        .output()
        .expect("run berth");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{:?}: {stderr}", out.status);
}

#[test]
fn doctor_passes_a_healthy_setup_and_changes_nothing() {
    let w = World::new();
    let out = w.run(w.berth().arg("doctor"));
    let text = out.expect_code(0).stdout.clone();
    for check in ["privileges", "nft", "network namespaces", "bridge", "veth", "nf_tables with NAT"]
    {
        assert!(text.contains(&format!("ok    {check}: ")), "{check} must pass\n{out}");
    }
    assert!(!text.contains("fail "), "{out}");
    assert_eq!(w.link_names().len(), 2, "lo and uplink0 only: {:?}", w.link_names());
    let tables = w.run(w.cmd("nft").args(["list", "tables"]));
    assert_eq!(tables.ok(), "", "the doctor's probe table was made in a throwaway namespace");
}

#[test]
fn doctor_names_what_is_broken_and_how_to_fix_it() {
    let w = World::new();
    let bin = w.path("bin-without-nft");
    std::fs::create_dir(&bin).unwrap();
    let out = w.run(w.berth().env("PATH", &bin).arg("doctor"));
    out.expect_code(1);
    assert!(out.stdout.contains("fail  nft: not found in PATH"), "{out}");
    assert!(out.stdout.contains("apt-get install nftables"), "{out}");

    w.sh("nft add table ip filter && nft add chain ip filter FORWARD \
          '{ type filter hook forward priority 0; policy drop; }'")
        .ok();
    let out = w.run(w.berth().arg("doctor"));
    assert!(out.stdout.contains("warn  forward policy: chain FORWARD of table ip filter"), "{out}");
    assert!(
        out.stdout.contains("nft insert rule ip filter FORWARD iifname berth0 accept"),
        "{out}"
    );
}
