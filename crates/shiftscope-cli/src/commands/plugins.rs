//! `shiftscope plugins`: what is loaded, from where, and what was refused and why.

use std::io::Write;

use shiftscope_host::{PluginSource, SearchPath};

use crate::builtins::registry;
use crate::cli::{Cli, PluginsArgs};
use crate::table::write_table;

pub(crate) fn run(cli: &Cli, args: &PluginsArgs) -> anyhow::Result<()> {
    let search = SearchPath::standard(&cli.plugin_paths);
    let registry = registry(&search)?;
    let mut out = std::io::stdout().lock();

    let rows: Vec<[String; 5]> = registry
        .plugins()
        .iter()
        .map(|p| {
            let info = p.info();
            [
                info.kind.to_string(),
                info.name.clone(),
                info.version.clone(),
                format!("{}.{}", info.abi_major, info.abi_minor),
                match &info.source {
                    PluginSource::Builtin => "built-in".to_owned(),
                    PluginSource::Library { path, origin } => {
                        format!("{} (from {origin})", path.display())
                    }
                },
            ]
        })
        .collect();
    write_table(
        &mut out,
        ["KIND", "NAME", "VERSION", "ABI", "SOURCE"],
        &rows,
    )?;
    if args.build_info {
        writeln!(out, "\nBuild information:")?;
        for p in registry.plugins() {
            writeln!(out, "  {}: {}", p.info().name, p.info().build_info)?;
        }
    }

    writeln!(out, "\nSearch path (in order):")?;
    for (path, origin) in search.entries() {
        let state = if path.exists() { "" } else { "  (absent)" };
        writeln!(
            out,
            "  {:<22} {}{state}",
            origin.to_string(),
            path.display()
        )?;
    }

    let failures = registry.failures();
    if failures.is_empty() {
        writeln!(out, "\nRefused: none")?;
    } else {
        writeln!(out, "\nRefused ({}):", failures.len())?;
        for failure in failures {
            writeln!(out, "  {}", failure.error)?;
        }
    }
    Ok(())
}
