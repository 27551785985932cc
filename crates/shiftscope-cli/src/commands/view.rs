//! `shiftscope view <store>`: the viewer, or its screenshots and scripts.

use anyhow::{Context, bail};
use shiftscope_viewer::{ViewerOptions, run_viewer, script};

use crate::cli::ViewArgs;

pub(crate) fn run(args: &ViewArgs) -> anyhow::Result<()> {
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
            None => bail!("--panel {name}: expected study, neuron, image, category or overview"),
        },
    };
    let colour_by = match &args.colour_by {
        None => None,
        Some(name) => match script::measure_named(name) {
            Some(m) => Some(m),
            None => bail!(
                "--colour-by {name}: expected activation, class-mean, difference, spurious, \
                 novelty, shift, rafegas or morcos"
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
        ..ViewerOptions::new(args.store.clone())
    };
    run_viewer(&options)?;
    Ok(())
}
