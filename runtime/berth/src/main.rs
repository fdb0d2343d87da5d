//! berth: parse the command line, dispatch, and turn errors into docker's exit codes.

mod cli;
mod commands;
mod engine;
mod error;
mod fault;
mod trace;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    trace::init();
    // An empty BERTH_ROOT is no setting (as an empty DOCKER_HOST is none): the default, or
    // --root, holds. Clap would take it for a missing value, even beside --root.
    if std::env::var_os("BERTH_ROOT").is_some_and(|root| root.is_empty()) {
        std::env::remove_var("BERTH_ROOT");
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            eprint!("berth: {text}");
            return ExitCode::from(125);
        }
    };
    trace::step("parsed the command line");
    // No process of a container may read berth's memory, environment or descriptors through
    // /proc, nor open its binary there (`/proc/PID/exe`), even one that shares its PID
    // namespace: berth is not dumpable. (A workload it execs is, as usual.)
    // SAFETY: prctl(PR_SET_DUMPABLE) takes integer arguments and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // (`exec` decides for itself, once it knows the container.)
    let enters_a_root_of_its_own = match &cli.command {
        Command::Run(args) => args.rootfs.is_some() || args.bundle.is_some(),
        _ => false,
    };
    if enters_a_root_of_its_own {
        if let Err(e) = berth_container::read_only_exe::ensure() {
            eprintln!("berth: {e}");
            return ExitCode::from(125);
        }
    }
    let outcome = match cli.command {
        Command::Run(args) => commands::run::run(&cli.root, *args),
        Command::Spec(args) => crate::engine::oci::write_spec(&args).map(|()| 0),
        Command::Gc(args) => commands::gc::gc(&cli.root, args),
        Command::Ps(args) => commands::ps::ps(&cli.root, args),
        Command::Exec(args) => commands::exec::exec(&cli.root, args),
        Command::Inspect { name } => commands::ps::inspect(&cli.root, &name),
        Command::Logs { follow, name } => commands::logs::logs(&cli.root, &name, follow),
        Command::Stop { time, names } => commands::stop::stop(&cli.root, &names, time),
        Command::Kill { signal, names } => {
            commands::stop::kill_containers(&cli.root, &names, &signal)
        }
        Command::Rm { names } => commands::stop::rm(&cli.root, &names),
        Command::Network(command) => commands::network::network(&cli.root, command),
        Command::Doctor => commands::doctor::doctor(),
        Command::Completions { shell } => {
            let shell = match shell {
                cli::CompletionShell::Bash => clap_complete::Shell::Bash,
                cli::CompletionShell::Zsh => clap_complete::Shell::Zsh,
                cli::CompletionShell::Fish => clap_complete::Shell::Fish,
            };
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "berth", &mut script);
            // A reader that went away (`berth completions bash | head`) is no error.
            match std::io::Write::write_all(&mut std::io::stdout().lock(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(error::Error::system("write the completions", e))
                }
                _ => Ok(0),
            }
        }
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("berth: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
