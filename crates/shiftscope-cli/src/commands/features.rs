//! `shiftscope features <store> --layer L`: the colour selectivity index and Neuron Features
//! of one layer's neurons on one dataset (computed with the store's model, or read from the
//! cache), as a table of the most and least colour-selective neurons and, with `--png`, a
//! grid of the Neuron Features.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use shiftscope_features::{DEFAULT_TOP, LayerFeatures, compute_and_save};
use shiftscope_host::SearchPath;
use shiftscope_store::{Role, Store};

use crate::builtins::registry;
use crate::cli::Cli;
use crate::table::write_table;

#[derive(Debug, Args)]
pub(crate) struct FeaturesArgs {
    /// The store folder.
    pub(crate) store: PathBuf,

    /// The layer: its name in the model or its id in the store.
    #[arg(long)]
    pub(crate) layer: String,

    /// The dataset whose top images are used: its id or name in the store (default: the
    /// in-distribution one).
    #[arg(long)]
    pub(crate) dataset: Option<String>,

    /// N: top images per neuron.
    #[arg(long, default_value_t = DEFAULT_TOP)]
    pub(crate) top: usize,

    /// Neurons listed at each end of the colour-selectivity order.
    #[arg(long, default_value_t = 8)]
    pub(crate) rows: usize,

    /// Write every Neuron Feature as one PNG grid here.
    #[arg(long, value_name = "FILE")]
    pub(crate) png: Option<PathBuf>,

    /// The model file, when the manifest's is not found (or to use another copy).
    #[arg(long, value_name = "FILE")]
    pub(crate) model: Option<PathBuf>,

    /// Compute again even when the cache holds the result.
    #[arg(long)]
    pub(crate) force: bool,
}

fn show(v: Option<f32>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

pub(crate) fn run(cli: &Cli, args: &FeaturesArgs) -> anyhow::Result<()> {
    let root = &args.store;
    let store = Store::open(root)?;
    let manifest = store.manifest();
    let layer = manifest
        .layers
        .iter()
        .position(|l| l.name == args.layer || l.id == args.layer)
        .ok_or_else(|| {
            let names: Vec<&str> = manifest.layers.iter().map(|l| l.name.as_str()).collect();
            anyhow::anyhow!(
                "{}: no layer '{}' (it holds {})",
                root.display(),
                args.layer,
                names.join(", ")
            )
        })?;
    let dataset = match &args.dataset {
        Some(d) => manifest
            .datasets
            .iter()
            .position(|e| &e.id == d || &e.name == d)
            .ok_or_else(|| {
                let names: Vec<&str> = manifest.datasets.iter().map(|e| e.name.as_str()).collect();
                anyhow::anyhow!(
                    "{}: no dataset '{d}' (it holds {})",
                    root.display(),
                    names.join(", ")
                )
            })?,
        None => manifest
            .datasets
            .iter()
            .position(|e| e.role == Role::Id)
            .unwrap_or(0),
    };
    if args.top == 0 {
        anyhow::bail!("--top must be at least 1");
    }
    let cached = if args.force {
        None
    } else {
        LayerFeatures::load(&store, root, layer, dataset, args.top)
    };
    let mut out = std::io::stdout().lock();
    let features = match cached {
        Some(f) => {
            writeln!(out, "from the cache (--force computes again)")?;
            f
        }
        None => {
            let registry = registry(&SearchPath::standard(&cli.plugin_paths))?;
            let terminal = std::io::stderr().is_terminal() && !cli.quiet;
            let mut progress = |done: usize, total: usize| {
                if terminal && (done.is_multiple_of(16) || done == total) {
                    eprint!("\r\x1b[Kre-running top images {done}/{total}");
                }
            };
            let (f, path) = compute_and_save(
                root,
                &store,
                &registry,
                args.model.as_deref(),
                layer,
                dataset,
                args.top,
                &mut progress,
            )?;
            if terminal {
                eprintln!();
            }
            writeln!(out, "cached: {}", path.display())?;
            f
        }
    };
    let entry = &manifest.datasets[dataset];
    writeln!(
        out,
        "layer {} ({} neurons), dataset {}, top {} images per neuron",
        features.layer,
        features.neurons(),
        entry.name,
        features.top
    )?;
    for note in &features.notes {
        writeln!(out, "note: {note}")?;
    }
    let mut order: Vec<usize> = (0..features.neurons())
        .filter(|&n| features.csi[n].is_some())
        .collect();
    order.sort_by(|&a, &b| {
        let key = |n: usize| features.csi[n].unwrap_or(f32::NAN);
        key(b).total_cmp(&key(a)).then(a.cmp(&b))
    });
    let row = |n: usize| -> [String; 4] {
        [
            format!("{}:{n}", features.layer),
            show(features.csi[n]),
            show(features.csi_clipped[n]),
            features.images[n].to_string(),
        ]
    };
    let header = ["NEURON", "CSI", "CSI CLIPPED", "IMAGES"];
    let k = args.rows.min(order.len());
    writeln!(out, "\nmost colour-selective")?;
    let most: Vec<[String; 4]> = order.iter().take(k).map(|&n| row(n)).collect();
    write_table(&mut out, header, &most)?;
    writeln!(out, "\nleast colour-selective")?;
    let least: Vec<[String; 4]> = order.iter().rev().take(k).map(|&n| row(n)).collect();
    write_table(&mut out, header, &least)?;
    let defined: Vec<f32> = order.iter().filter_map(|&n| features.csi[n]).collect();
    if !defined.is_empty() {
        let mean = defined.iter().sum::<f32>() / defined.len() as f32;
        let mut sorted = defined.clone();
        sorted.sort_by(f32::total_cmp);
        writeln!(
            out,
            "\nCSI over {} neurons: mean {mean:.3}, median {:.3}; {} above 0.5; {} without a \
             positive response",
            defined.len(),
            sorted[sorted.len() / 2],
            defined.iter().filter(|&&v| v > 0.5).count(),
            features.neurons() - defined.len()
        )?;
    }
    if let Some(png) = &args.png {
        let columns = (features.neurons() as f64).sqrt().ceil() as usize;
        let scale = (48 / features.nf_size[0].max(features.nf_size[1]).max(1)).max(1);
        let (width, height, pixels) = features.grid(columns, scale);
        shiftscope_runtime::RgbImage {
            width,
            height,
            pixels,
        }
        .write_png(png)
        .map_err(anyhow::Error::msg)?;
        writeln!(out, "Neuron Features: {}", png.display())?;
    }
    Ok(())
}
