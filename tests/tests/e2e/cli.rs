//! The command line itself: every command's help has examples; completions for three shells.

use berth_e2e::*;
use std::process::Command;

fn berth(args: &[&str]) -> (i32, String) {
    let out = Command::new(berth_bin()).args(args).output().expect("run berth");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_command_has_help_with_examples() {
    for command in [&["run"][..], &["gc"], &["network", "reload"], &["completions"]] {
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
}
