//! The `shiftscope` binary. It owns the command line and nothing else: each subcommand
//! composes the library crates (host, and later runtime, store, analysis, viewer) and the
//! built-in plugins; no computation lives here.

mod builtins;
mod cli;
mod commands;
mod table;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command};

fn version() -> String {
    format!(
        "{} (plugin ABI {}.{})",
        env!("CARGO_PKG_VERSION"),
        shiftscope_abi::ABI_MAJOR,
        shiftscope_abi::ABI_MINOR
    )
}

fn main() -> ExitCode {
    let matches = Cli::command().version(version()).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_logging(cli.verbose, cli.quiet);
    let result = match &cli.command {
        Command::Plugins(args) => commands::plugins::run(&cli, args),
        Command::Layers(args) => commands::layers::run(&cli, args),
        Command::Datasets(args) => commands::datasets::run(&cli, args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Extract(args) => commands::extract::run(&cli, args),
        Command::Merge(args) => commands::convert::merge(args),
        Command::ImportDeephys(args) => commands::convert::import_deephys(args),
        Command::Report(args) => commands::report::run(&cli, args),
        Command::Features(args) => commands::features::run(&cli, args),
        Command::Demo(args) => commands::demo::run(&cli, args),
        Command::View(args) => commands::view::run(&cli, args),
        Command::Explain(args) => commands::explain::explain(&cli, args),
        Command::Repair(args) => commands::explain::repair(&cli, args),
        Command::Gradient(args) => commands::gradient::run(&cli, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed stdout (`shiftscope layers m.onnx | head`) is not a failure.
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr: warnings by default, `-v` info, `-vv` debug, `-vvv` trace, `-q` errors.
fn init_logging(verbose: u8, quiet: bool) {
    use std::io::IsTerminal;
    use tracing::Level;
    let level = match (quiet, verbose) {
        (true, _) => Level::ERROR,
        (false, 0) => Level::WARN,
        (false, 1) => Level::INFO,
        (false, 2) => Level::DEBUG,
        (false, _) => Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
