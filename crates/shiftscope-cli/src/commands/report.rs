//! `shiftscope report <store> --out <dir>`: the store's analysis written out as files.

use std::io::IsTerminal;
use std::time::Instant;

use shiftscope_analysis::{Analysis, AnalysisParams};
use shiftscope_report::{Progress, ReportOptions};

use crate::cli::{Cli, ReportArgs};

pub(crate) fn run(cli: &Cli, args: &ReportArgs) -> anyhow::Result<()> {
    let params = AnalysisParams {
        top_k: args.top_k,
        ..AnalysisParams::default()
    };
    let analysis = Analysis::open(&args.store, params)?;
    let options = ReportOptions {
        top: args.top,
        bins: args.bins,
        heatmap_layers: (!args.heatmap_layers.is_empty()).then(|| args.heatmap_layers.clone()),
        figures: !args.no_figures,
        ..ReportOptions::default()
    };
    let started = Instant::now();
    let show = !cli.quiet;
    let terminal = std::io::stderr().is_terminal();
    let mut progress = |step: Progress| {
        if !show {
            return;
        }
        match step {
            Progress::Layer { index, of, name } => {
                let line = format!("analysing layer {}/{of} {name}", index + 1);
                if terminal {
                    eprint!("\r\x1b[K{line}");
                } else {
                    eprintln!("{line}");
                }
            }
            Progress::Writing(path) => {
                if terminal {
                    eprint!("\r\x1b[K");
                }
                eprintln!("writing {}", path.display());
            }
        }
    };
    let summary = shiftscope_report::write_report_with_progress(
        &analysis,
        &args.out,
        &options,
        &mut progress,
    )?;
    if show && terminal {
        eprint!("\r\x1b[K");
    }
    println!(
        "report of {} ({} layers, {} neurons, {} images) in {:.1} s:",
        args.store.display(),
        summary.layers,
        summary.neurons,
        summary.images,
        started.elapsed().as_secs_f64()
    );
    for file in &summary.files {
        println!("  {}", file.display());
    }
    println!("open {}", args.out.join("summary.md").display());
    Ok(())
}
