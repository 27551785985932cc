//! The command line, as clap types.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// shiftscope: deep electrophysiology for neural networks under distribution shift.
///
/// Records every neuron of an ONNX vision model on an in-distribution dataset and its
/// shifted versions, scores what changed, and shows it in a 3D viewer.
#[derive(Debug, Parser)]
#[command(name = "shiftscope", propagate_version = true)]
pub(crate) struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,

    /// A plugin library, or a folder of them, to load before the standard search path
    /// (repeatable).
    #[arg(long = "plugin", value_name = "PATH", global = true)]
    pub(crate) plugin_paths: Vec<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the built-in and discovered plugins, the search path, and every library that
    /// was refused with the reason.
    ///
    /// Search order: --plugin paths, SHIFTSCOPE_PLUGIN_PATH (':'-separated files or
    /// folders), <exe dir>/plugins, ~/.local/share/shiftscope/plugins. The working
    /// directory is never searched.
    Plugins(PluginsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PluginsArgs {
    /// Show each plugin's build information (compiler, profile).
    #[arg(long)]
    pub(crate) build_info: bool,
}
