//! `shiftscope datasets`: every catalog entry of every dataset-source plugin.

use std::io::Write;

use shiftscope_host::{PluginKindName, SearchPath};

use crate::builtins::registry;
use crate::cli::{Cli, DatasetsArgs};
use crate::table::write_table;

pub(crate) fn run(cli: &Cli, args: &DatasetsArgs) -> anyhow::Result<()> {
    let registry = registry(&SearchPath::standard(&cli.plugin_paths))?;
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut problems = Vec::new();
    for plugin in registry.plugins() {
        let info = plugin.info();
        if info.kind != PluginKindName::DatasetSource
            || args.only.as_ref().is_some_and(|only| *only != info.name)
        {
            continue;
        }
        // Each plugin with its default config; one that needs a config says why.
        let listed = plugin.create_dataset_source("").and_then(|source| {
            let catalog = source.catalog()?;
            let mut listed = Vec::new();
            for entry in catalog {
                let dataset = source.open(&entry.name)?;
                listed.push([
                    entry.name,
                    entry.family,
                    dataset.len().to_string(),
                    dataset.classes().len().to_string(),
                    entry.description,
                ]);
            }
            Ok(listed)
        });
        match listed {
            Ok(listed) => rows.extend(listed),
            Err(e) => problems.push(e.to_string()),
        }
    }
    let mut out = std::io::stdout().lock();
    write_table(
        &mut out,
        ["NAME", "FAMILY", "SIZE", "CLASSES", "SOURCE"],
        &rows,
    )?;
    for problem in problems {
        writeln!(out, "\nnot listed: {problem}")?;
    }
    if let Some(only) = &args.only
        && rows.is_empty()
    {
        anyhow::bail!("no dataset-source plugin named '{only}' offered any dataset");
    }
    Ok(())
}
