//! `shiftscope datasets`: every catalog entry of every dataset-source plugin.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use shiftscope_host::{PluginKindName, SearchPath};

use anyhow::Context;
use shiftscope_host::Registry;
use shiftscope_runtime::{SheetBlock, contact_sheet};
use shiftscope_sdk::Dataset;

use crate::builtins::registry;
use crate::cli::{Cli, DatasetsAction, DatasetsArgs, ExportArgs, PreviewArgs};
use crate::table::write_table;

/// Plugin configs by plugin name, from `--config PLUGIN=FILE|RON`.
type Configs = BTreeMap<String, String>;

fn plugin_configs(args: &DatasetsArgs) -> anyhow::Result<Configs> {
    let mut configs = Configs::new();
    for given in &args.configs {
        let (plugin, value) = given.split_once('=').with_context(|| {
            format!(
                "--config {given}: expected PLUGIN=FILE or PLUGIN=RON, e.g. imagenet=imagenet.ron"
            )
        })?;
        let path = Path::new(value);
        let text = if path.is_file() {
            std::fs::read_to_string(path)
                .with_context(|| format!("--config {plugin}: reading {}", path.display()))?
        } else if value.trim_start().starts_with('(') {
            value.to_owned()
        } else {
            anyhow::bail!(
                "--config {plugin}={value}: no such file, and not inline RON (which starts with '(')"
            );
        };
        configs.insert(plugin.to_owned(), text);
    }
    Ok(configs)
}

pub(crate) fn run(cli: &Cli, args: &DatasetsArgs) -> anyhow::Result<()> {
    let registry = registry(&SearchPath::standard(&cli.plugin_paths))?;
    let configs = plugin_configs(args)?;
    match &args.action {
        Some(DatasetsAction::Preview(preview_args)) => {
            return preview(&registry, &configs, preview_args);
        }
        Some(DatasetsAction::Export(export_args)) => {
            return export(&registry, &configs, export_args);
        }
        None => {}
    }
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut problems = Vec::new();
    let mut empty = Vec::new();
    for plugin in registry.plugins() {
        let info = plugin.info();
        if info.kind != PluginKindName::DatasetSource
            || args.only.as_ref().is_some_and(|only| *only != info.name)
        {
            continue;
        }
        // Each plugin with its config (default: none); one that needs a config says why.
        let config = configs.get(&info.name).map_or("", String::as_str);
        let listed = plugin.create_dataset_source(config).and_then(|source| {
            let catalog = source.catalog()?;
            if catalog.is_empty() {
                empty.push(info.name.clone());
            }
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
    // The footer belongs to the whole listing, not to one plugin's (`--only`).
    if args.only.is_none() {
        writeln!(
            out,
            "\nOn the fly, the built-in colored-mnist, cifar10 and imagenet datasets take a \
         corruption: NAME+<corruption>/<severity 1-5>, e.g. cifar10/test+fog/3. Corruptions \
         (Hendrycks & Dietterich): {}.",
            shiftscope_corrupt::Corruption::valid_names()
        )?;
    }
    for plugin in empty {
        writeln!(
            out,
            "\n{plugin}: no datasets with this config{}",
            if configs.contains_key(&plugin) {
                String::new()
            } else {
                format!(" (none given: --config {plugin}=FILE names its data)")
            }
        )?;
    }
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
fn open(
    registry: &Registry,
    configs: &Configs,
    name: &str,
) -> anyhow::Result<(Box<dyn Dataset>, String)> {
    let prefix = name.split('/').next().unwrap_or(name);
    let mut candidates: Vec<_> = registry
        .plugins()
        .iter()
        .filter(|p| p.info().kind == PluginKindName::DatasetSource)
        .collect();
    candidates.sort_by_key(|p| p.info().name != prefix);
    let mut reasons = Vec::new();
    for plugin in candidates {
        let config = configs.get(&plugin.info().name).map_or("", String::as_str);
        let opened = plugin.create_dataset_source(config).and_then(|source| {
            // An on-the-fly shift (`base+fog/3`) is described by its base's entry.
            let (base, shift) = name.split_once('+').unwrap_or((name, ""));
            let catalog = source.catalog()?;
            let description = match catalog.iter().find(|entry| entry.name == name) {
                Some(entry) => entry.description.clone(),
                None => catalog
                    .iter()
                    .find(|entry| entry.name == base)
                    .map(|entry| format!("{}; {shift} on the fly", entry.description))
                    .unwrap_or_default(),
            };
            Ok((source.open(name)?, description))
        });
        match opened {
            Ok(found) => return Ok(found),
            // The plugin the name belongs to has the only reason worth reading.
            Err(e) if plugin.info().name == prefix => {
                anyhow::bail!("cannot open '{name}': {e}")
            }
            Err(e) => reasons.push(e.to_string()),
        }
    }
    anyhow::bail!("no dataset plugin opens '{name}': {}", reasons.join("; "))
}

fn preview(registry: &Registry, configs: &Configs, args: &PreviewArgs) -> anyhow::Result<()> {
    let mut blocks = Vec::new();
    for name in &args.names {
        let (dataset, description) = open(registry, configs, name)?;
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
        // Brief titles still say when the images are not the real data.
        let title = if args.brief && description.contains("procedural") {
            format!("{name} (procedural)")
        } else if description.is_empty() || args.brief {
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

/// Samples `range` of `dataset` on every core, in index order.
fn read_range(
    dataset: &dyn Dataset,
    range: std::ops::Range<usize>,
) -> Result<Vec<shiftscope_sdk::Sample>, shiftscope_sdk::PluginError> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let per_thread = range.len().div_ceil(threads).max(1);
    let parts: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (range.start..range.end)
            .step_by(per_thread)
            .map(|start| {
                let end = (start + per_thread).min(range.end);
                std::thread::Builder::new()
                    .name(format!("export-{start}"))
                    .spawn_scoped(scope, move || {
                        (start..end)
                            .map(|i| dataset.get(i))
                            .collect::<Result<Vec<_>, _>>()
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    Err(shiftscope_sdk::PluginError::failed(
                        "a reader thread panicked",
                    ))
                }),
                Err(e) => Err(shiftscope_sdk::PluginError::failed(format!(
                    "cannot start a reader thread: {e}"
                ))),
            })
            .collect()
    });
    let mut samples = Vec::with_capacity(range.len());
    for part in parts {
        samples.extend(part?);
    }
    Ok(samples)
}

fn export(registry: &Registry, configs: &Configs, args: &ExportArgs) -> anyhow::Result<()> {
    use npyz::WriterBuilder;

    let (dataset, description) = open(registry, configs, &args.name)?;
    let n = args.limit.unwrap_or(usize::MAX).min(dataset.len());
    anyhow::ensure!(n > 0, "{} holds no images", args.name);
    let first = dataset
        .get(0)
        .with_context(|| format!("reading {} image 0", args.name))?;
    let (width, height) = (first.width, first.height);
    let tmp = args.out.with_extension("npz.partial");
    let write = || -> anyhow::Result<()> {
        let mut npz = npyz::npz::NpzWriter::create(&tmp)?;
        let mut labels = Vec::with_capacity(n);
        {
            // Buffered: the npy writer writes element by element, and each small write into
            // the zip's deflate stream is costly.
            let zip = npz.zip_writer();
            zip.start_file("images.npy", Default::default())?;
            let mut images = npyz::WriteOptions::<u8>::new()
                .writer(std::io::BufWriter::with_capacity(1 << 20, &mut *zip))
                .default_dtype()
                .shape(&[n as u64, u64::from(height), u64::from(width), 3])
                .begin_nd()?;
            const CHUNK: usize = 4096;
            for start in (0..n).step_by(CHUNK) {
                let range = start..(start + CHUNK).min(n);
                let samples = read_range(dataset.as_ref(), range.clone()).with_context(|| {
                    format!(
                        "reading {} images {}..{}",
                        args.name, range.start, range.end
                    )
                })?;
                for (i, sample) in range.zip(samples) {
                    anyhow::ensure!(
                        (sample.width, sample.height) == (width, height),
                        "{} image {i} is {}x{} but image 0 is {width}x{height}: an .npz \
                         array needs one size",
                        args.name,
                        sample.width,
                        sample.height
                    );
                    images.extend(sample.pixels.iter().copied())?;
                    labels.push(i64::from(sample.label));
                }
            }
            images.finish()?;
        }
        let mut out = npz
            .array::<i64>("labels", Default::default())?
            .default_dtype()
            .shape(&[n as u64])
            .begin_nd()?;
        out.extend(labels)?;
        out.finish()?;
        let classes = dataset.classes();
        let longest = classes
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(1)
            .max(1);
        let mut out = npz
            .array::<str>("classes", Default::default())?
            .dtype(npyz::DType::Plain(
                format!("<U{longest}")
                    .parse::<npyz::TypeStr>()
                    .map_err(|e| anyhow::anyhow!("class name dtype: {e}"))?,
            ))
            .shape(&[classes.len() as u64])
            .begin_nd()?;
        for class in classes {
            out.push(class.as_str())?;
        }
        out.finish()?;
        drop(npz);
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", args.out.display())));
    }
    std::fs::rename(&tmp, &args.out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), args.out.display()))?;
    println!(
        "wrote {}: {n} images of {width}x{height}, {} classes ({})",
        args.out.display(),
        dataset.classes().len(),
        if description.is_empty() {
            args.name.as_str()
        } else {
            description.as_str()
        }
    );
    Ok(())
}
