//! Why a library was not accepted as a plugin.

use std::path::PathBuf;

use shiftscope_abi::ENTRY_SYMBOL;

/// Why a library was not accepted as a plugin. Every message names the file; once the
/// header could be read, the plugin and its version too.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A path on the search path does not exist or cannot be read.
    #[error("{}: {reason}", path.display())]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The dynamic loader refused the file.
    #[error("{}: cannot be loaded as a shared library: {reason}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The library has no entry symbol.
    #[error("{}: not a shiftscope plugin: it exports no `{ENTRY_SYMBOL}` symbol", path.display())]
    NoEntry {
        /// The file.
        path: PathBuf,
    },
    /// The entry returned no header.
    #[error(
        "{}: the plugin refused this host: its entry returned no header for plugin ABI {host_major}",
        path.display()
    )]
    Refused {
        /// The file.
        path: PathBuf,
        /// The host's ABI major.
        host_major: u32,
    },
    /// The header could not be read.
    #[error("{}: malformed plugin header: {problem}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        problem: String,
    },
    /// The plugin was built for another ABI major.
    #[error(
        "{}: plugin '{name}' {version} was built for plugin ABI {plugin_major}.{plugin_minor}, \
         but this shiftscope speaks plugin ABI {host_major}.{host_minor}; rebuild the plugin \
         against a shiftscope-sdk of ABI major {host_major}",
        path.display()
    )]
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// Plugin name.
        name: String,
        /// Plugin version.
        version: String,
        /// The plugin's ABI major.
        plugin_major: u32,
        /// The plugin's ABI minor.
        plugin_minor: u32,
        /// The host's ABI major.
        host_major: u32,
        /// The host's ABI minor.
        host_minor: u32,
    },
    /// The header was readable but the plugin breaks the contract (kind, table).
    #[error("{}: plugin '{name}' {version} (plugin ABI {abi}): {problem}", path.display())]
    BadPlugin {
        /// The file.
        path: PathBuf,
        /// Plugin name.
        name: String,
        /// Plugin version.
        version: String,
        /// The plugin's ABI version, `major.minor`.
        abi: String,
        /// What was wrong.
        problem: String,
    },
    /// Another plugin already has the name.
    #[error(
        "{}: plugin '{name}' {version} not registered: the name is already taken by {existing}",
        path.display()
    )]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// Plugin name.
        name: String,
        /// Plugin version.
        version: String,
        /// Where the plugin that has the name comes from.
        existing: String,
    },
}

impl LoadError {
    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            LoadError::Unreadable { path, .. }
            | LoadError::Open { path, .. }
            | LoadError::NoEntry { path }
            | LoadError::Refused { path, .. }
            | LoadError::BadHeader { path, .. }
            | LoadError::AbiMismatch { path, .. }
            | LoadError::BadPlugin { path, .. }
            | LoadError::Duplicate { path, .. } => path,
        }
    }
}
