//! `shiftscope view <store>`: the viewer, or its screenshots and scripts.

use anyhow::{Context, bail};
use shiftscope_host::SearchPath;
use shiftscope_runtime::LiveModel;
use shiftscope_viewer::features::FeaturesRunner;
use shiftscope_viewer::live::LiveOpener;
use shiftscope_viewer::{ViewerOptions, run_viewer_with, script};

use crate::builtins::registry;
use crate::cli::{Cli, ViewArgs};

pub(crate) fn run(cli: &Cli, args: &ViewArgs) -> anyhow::Result<()> {
    let (w, h) = args
        .size
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|&(w, h)| (200..=8192).contains(&w) && (200..=8192).contains(&h))
        .with_context(|| format!("--size {}: expected WIDTHxHEIGHT, e.g. 1280x800", args.size))?;
    let panel = match &args.panel {
        None => None,
        Some(name) => match script::panel_named(name) {
            Some(p) => Some(p),
            None => bail!("--panel {name}: expected one of {}", script::panel_list()),
        },
    };
    let colour_by = match &args.colour_by {
        None => None,
        Some(name) => match script::measure_named(name) {
            Some(m) => Some(m),
            None => bail!(
                "--colour-by {name}: expected one of {}",
                script::measure_list()
            ),
        },
    };
    let script = match &args.script {
        Some(path) => script::read_script(path)?,
        None => Vec::new(),
    };
    let options = ViewerOptions {
        size: (w, h),
        select: args.select.clone(),
        panel,
        colour_by,
        screenshot: args.screenshot.clone(),
        script,
        live: args.live.clone(),
        ..ViewerOptions::new(args.store.clone())
    };
    if let Some(image) = &args.live
        && !image.is_file()
    {
        bail!("--live {}: no such image file", image.display());
    }
    // Live mode opens the store's model on the viewer's live worker, on first use.
    let store = args.store.clone();
    let search = SearchPath::standard(&cli.plugin_paths);
    let opener: LiveOpener = Box::new(move || {
        let registry = registry(&search).map_err(|e| format!("{e:#}"))?;
        LiveModel::open(&store, &registry, None).map_err(|e| e.to_string())
    });
    // The Neuron panel's Compute button: colour selectivity and Neuron Features of a layer,
    // on the viewer's features worker.
    let store = args.store.clone();
    let search = SearchPath::standard(&cli.plugin_paths);
    let features: FeaturesRunner = Box::new(move |(layer, dataset, top)| {
        let registry = registry(&search).map_err(|e| format!("{e:#}"))?;
        let (f, path) =
            shiftscope_features::compute_and_save(&store, &registry, layer, dataset, top)
                .map_err(|e| e.to_string())?;
        Ok(format!(
            "colour selectivity and Neuron Features of {} on {}: {}",
            f.layer,
            f.dataset_id,
            path.display()
        ))
    });
    run_viewer_with(&options, Some(opener), Some(features))?;
    Ok(())
}
