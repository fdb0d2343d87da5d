//! berth: parse the command line, dispatch, and turn errors into docker's exit codes.

mod cli;
mod commands;
mod container;
mod error;
mod fault;
mod files;
mod networks;
mod ports;
mod sys;
mod trace;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    trace::init();
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
    let outcome = match cli.command {
        Command::Run(args) => commands::run::run(&cli.root, *args),
        Command::Spec(args) => crate::container::oci::write_spec(&args).map(|()| 0),
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
            clap_complete::generate(shell, &mut command, "berth", &mut std::io::stdout());
            Ok(0)
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
