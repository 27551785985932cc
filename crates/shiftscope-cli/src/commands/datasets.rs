//! `shiftscope datasets`: every catalog entry of every dataset-source plugin.

use std::io::Write;

use shiftscope_host::{PluginKindName, SearchPath};

use anyhow::Context;
use shiftscope_host::Registry;
use shiftscope_runtime::{SheetBlock, contact_sheet};
use shiftscope_sdk::Dataset;

use crate::builtins::registry;
use crate::cli::{Cli, DatasetsAction, DatasetsArgs, PreviewArgs};
use crate::table::write_table;

pub(crate) fn run(cli: &Cli, args: &DatasetsArgs) -> anyhow::Result<()> {
    let registry = registry(&SearchPath::standard(&cli.plugin_paths))?;
    if let Some(DatasetsAction::Preview(preview_args)) = &args.action {
        return preview(&registry, preview_args);
    }
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

/// Opens `name` from the dataset plugin whose name is its first segment (any plugin that
/// accepts it otherwise), with the plugin's default config; returns it with its catalog line.
fn open(registry: &Registry, name: &str) -> anyhow::Result<(Box<dyn Dataset>, String)> {
    let prefix = name.split('/').next().unwrap_or(name);
    let mut candidates: Vec<_> = registry
        .plugins()
        .iter()
        .filter(|p| p.info().kind == PluginKindName::DatasetSource)
        .collect();
    candidates.sort_by_key(|p| p.info().name != prefix);
    let mut reasons = Vec::new();
    for plugin in candidates {
        let opened = plugin.create_dataset_source("").and_then(|source| {
            let description = source
                .catalog()?
                .into_iter()
                .find(|entry| entry.name == name)
                .map(|entry| entry.description)
                .unwrap_or_default();
            Ok((source.open(name)?, description))
        });
        match opened {
            Ok(found) => return Ok(found),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    anyhow::bail!("no dataset plugin opens '{name}': {}", reasons.join("; "))
}

fn preview(registry: &Registry, args: &PreviewArgs) -> anyhow::Result<()> {
    let mut blocks = Vec::new();
    for name in &args.names {
        let (dataset, description) = open(registry, name)?;
        let samples = (0..args.count.min(dataset.len()))
            .map(|i| {
                let sample = dataset.get(i)?;
                let caption = dataset
                    .classes()
                    .get(sample.label as usize)
                    .cloned()
                    .unwrap_or_else(|| sample.label.to_string());
                Ok((sample, caption))
            })
            .collect::<Result<Vec<_>, shiftscope_sdk::PluginError>>()
            .with_context(|| format!("reading {name}"))?;
        let title = if description.is_empty() {
            name.clone()
        } else {
            format!("{name}: {description}")
        };
        blocks.push(SheetBlock { title, samples });
    }
    let sheet = contact_sheet(&blocks, args.columns).map_err(anyhow::Error::msg)?;
    sheet.write_png(&args.out).map_err(anyhow::Error::msg)?;
    println!(
        "wrote {} ({}x{} pixels, {} datasets)",
        args.out.display(),
        sheet.width,
        sheet.height,
        blocks.len()
    );
    Ok(())
}
