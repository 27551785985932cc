//! Where plugins are looked for. Never the working directory: a plugin is native code,
//! and loading one runs it.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::LoadError;

/// The environment variable holding extra plugin paths (`:`-separated, files or folders).
pub const PLUGIN_PATH_ENV: &str = "SHIFTSCOPE_PLUGIN_PATH";

/// Why a path is on the search path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Named on the command line (or in a config).
    CommandLine,
    /// From `SHIFTSCOPE_PLUGIN_PATH`.
    Environment,
    /// `<exe dir>/plugins`.
    ExeDir,
    /// `~/.local/share/shiftscope/plugins`.
    UserDir,
}

impl Origin {
    /// Whether a missing path is worth reporting (the user named it) or normal (a default).
    fn explicit(self) -> bool {
        matches!(self, Origin::CommandLine | Origin::Environment)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::CommandLine => "command line",
            Origin::Environment => PLUGIN_PATH_ENV,
            Origin::ExeDir => "exe dir",
            Origin::UserDir => "user dir",
        })
    }
}

/// The ordered list of files and folders searched for plugins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchPath {
    entries: Vec<(PathBuf, Origin)>,
}

impl SearchPath {
    /// The standard search path, in this order: `explicit` paths (command line, config),
    /// `SHIFTSCOPE_PLUGIN_PATH`, `<exe dir>/plugins`, `~/.local/share/shiftscope/plugins`.
    pub fn standard(explicit: &[PathBuf]) -> SearchPath {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        SearchPath::from_parts(
            explicit,
            std::env::var_os(PLUGIN_PATH_ENV).as_deref(),
            exe_dir.as_deref(),
            std::env::var_os("HOME").as_deref().map(Path::new),
        )
    }

    /// The search path from its parts (what [`SearchPath::standard`] reads from the process).
    pub fn from_parts(
        explicit: &[PathBuf],
        env_value: Option<&OsStr>,
        exe_dir: Option<&Path>,
        home: Option<&Path>,
    ) -> SearchPath {
        let mut entries: Vec<(PathBuf, Origin)> = explicit
            .iter()
            .map(|p| (p.clone(), Origin::CommandLine))
            .collect();
        if let Some(value) = env_value {
            entries.extend(
                std::env::split_paths(value)
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(|p| (p, Origin::Environment)),
            );
        }
        if let Some(dir) = exe_dir {
            entries.push((dir.join("plugins"), Origin::ExeDir));
        }
        if let Some(home) = home {
            entries.push((
                home.join(".local/share/shiftscope/plugins"),
                Origin::UserDir,
            ));
        }
        SearchPath { entries }
    }

    /// The entries, in search order.
    pub fn entries(&self) -> &[(PathBuf, Origin)] {
        &self.entries
    }

    /// The library files to load, in order, each once; plus the explicit entries that could
    /// not be read. A folder contributes its files ending in the platform's library suffix
    /// (sorted by name, not recursive); a file is taken as it is.
    pub fn candidates(&self) -> (Vec<(PathBuf, Origin)>, Vec<LoadError>) {
        let mut found: Vec<(PathBuf, Origin)> = Vec::new();
        let mut problems = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut push = |path: PathBuf, origin: Origin, found: &mut Vec<(PathBuf, Origin)>| {
            let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if seen.insert(key) {
                found.push((path, origin));
            }
        };
        for (path, origin) in &self.entries {
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_dir() => match library_files(path) {
                    Ok(files) => {
                        for file in files {
                            push(file, *origin, &mut found);
                        }
                    }
                    Err(reason) => problems.push(LoadError::Unreadable {
                        path: path.clone(),
                        reason,
                    }),
                },
                Ok(_) => push(path.clone(), *origin, &mut found),
                Err(e) if origin.explicit() => problems.push(LoadError::Unreadable {
                    path: path.clone(),
                    reason: format!("plugin path from the {origin} cannot be read: {e}"),
                }),
                Err(_) => {}
            }
        }
        (found, problems)
    }
}

fn library_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let suffix = OsString::from(std::env::consts::DLL_SUFFIX);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list plugin folder: {e}"))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(OsStr::to_str)
                    .zip(suffix.to_str())
                    .is_some_and(|(name, suffix)| name.ends_with(suffix))
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_explicit_env_exe_user() {
        let env = std::env::join_paths(["/a", "/b"]).unwrap();
        let path = SearchPath::from_parts(
            &[PathBuf::from("/cli/x.so")],
            Some(&env),
            Some(Path::new("/opt/shiftscope/bin")),
            Some(Path::new("/home/u")),
        );
        let expected = vec![
            (PathBuf::from("/cli/x.so"), Origin::CommandLine),
            (PathBuf::from("/a"), Origin::Environment),
            (PathBuf::from("/b"), Origin::Environment),
            (PathBuf::from("/opt/shiftscope/bin/plugins"), Origin::ExeDir),
            (
                PathBuf::from("/home/u/.local/share/shiftscope/plugins"),
                Origin::UserDir,
            ),
        ];
        assert_eq!(path.entries(), expected.as_slice());
    }

    #[test]
    fn folders_give_library_files_and_missing_explicit_paths_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir
            .path()
            .join(format!("libp{}", std::env::consts::DLL_SUFFIX));
        std::fs::write(&lib, b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let missing = dir.path().join("missing.so");
        let path = SearchPath::from_parts(
            &[dir.path().to_path_buf(), missing.clone(), lib.clone()],
            None,
            Some(&dir.path().join("no-exe-dir")),
            None,
        );
        let (found, problems) = path.candidates();
        // The library once (the folder and the explicit file are the same file), no txt.
        assert_eq!(found, vec![(lib, Origin::CommandLine)]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path(), missing);
        assert!(problems[0].to_string().contains("cannot be read"));
    }
}
