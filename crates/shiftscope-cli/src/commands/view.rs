//! `shiftscope view <store>`: the viewer, or its screenshots and scripts.

use anyhow::{Context, bail};
use shiftscope_analysis::mistakes::RepairReport;
use shiftscope_host::SearchPath;
use shiftscope_runtime::LiveModel;
use shiftscope_store::Store;
use shiftscope_ui::MistakesView;
use shiftscope_viewer::features::FeaturesRunner;
use shiftscope_viewer::headless::HeadlessX;
use shiftscope_viewer::live::LiveOpener;
use shiftscope_viewer::mistakes::MistakesRunner;
use shiftscope_viewer::{Action, ViewerOptions, Workers, has_display, run_viewer, script};

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
    // A screenshot or a timed script needs no one at a screen: with no display, render on a
    // private X server instead of asking for `xvfb-run`.
    if !has_display() && args.store.is_dir() && options.actions()?.iter().any(Action::ends_app) {
        return on_private_display(cli);
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
        let opened = Store::open(&store).map_err(|e| format!("{}: {e}", store.display()))?;
        let (f, path) = shiftscope_features::compute_and_save(
            &store,
            &opened,
            &registry,
            None,
            layer,
            dataset,
            top,
            &mut |_, _| {},
        )
        .map_err(|e| e.to_string())?;
        Ok(format!(
            "colour selectivity and Neuron Features of {} on {}: {}",
            f.layer,
            f.dataset_id,
            path.display()
        ))
    });
    // The Mistakes panel: the selected class's responsible neurons on the viewer's mistakes
    // worker (the store and its model's decision layer opened there on first use), with the
    // repair's accuracies when `shiftscope repair` has written `<store>-repaired/repair.json`.
    let store = args.store.clone();
    let search = SearchPath::standard(&cli.plugin_paths);
    let mut decision: Option<super::explain::Decision> = None;
    let mistakes: MistakesRunner = Box::new(move |class| {
        if decision.is_none() {
            decision = Some(
                super::explain::open_decision_with(&search, &store, None, None)
                    .map_err(|e| format!("{e:#}"))?,
            );
        }
        let Some(d) = decision.as_ref() else {
            return Err("the decision layer could not be opened".into());
        };
        let view = MistakesView::load(&d.analysis, d.features, class, d.linear(), 8)
            .map_err(|e| e.to_string())?;
        let (folder, _) = super::explain::outputs(&store, None);
        let report = folder.join("repair.json");
        Ok(match std::fs::read_to_string(&report) {
            Ok(text) => view.with_repair(
                RepairReport::from_json(&text).map_err(|e| format!("{}: {e}", report.display()))?,
            ),
            Err(_) => view,
        })
    });
    run_viewer(
        &options,
        Workers {
            live: Some(opener),
            features: Some(features),
            mistakes: Some(mistakes),
        },
    )?;
    Ok(())
}

/// Runs this same `shiftscope view` again on a private Xvfb (the demo's [`HeadlessX`], with
/// Mesa's software Vulkan where there is no GPU) and waits for it.
fn on_private_display(cli: &Cli) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the shiftscope binary")?;
    let runtime = std::env::temp_dir().join(format!("shiftscope-view-{}", std::process::id()));
    let x = HeadlessX::start(&runtime, 260..320)
        .context("no display, and no private X server to render on either")?;
    if !cli.quiet {
        eprintln!(
            "no display: rendering on a private X server (Xvfb {})",
            x.display
        );
    }
    let mut command = std::process::Command::new(exe);
    command.args(std::env::args_os().skip(1));
    x.configure(&mut command);
    let status = command.status().context("starting the viewer");
    drop(x);
    let _ = std::fs::remove_dir_all(&runtime);
    let status = status?;
    anyhow::ensure!(status.success(), "the viewer ended with {status}");
    Ok(())
}
