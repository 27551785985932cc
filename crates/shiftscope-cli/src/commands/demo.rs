//! `shiftscope demo`: the first thing a newcomer runs. Records the demo models (trained on
//! colored MNIST by `tools/train_demo_models.py`, embedded in the binary) on the ID test set
//! and its colour shifts, analyses the stores, writes their reports, prints the accuracy
//! table and the most spurious neurons, and says how one can tell they follow the colour.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use shiftscope_analysis::mistakes::{RepairMethod, RepairParams, RepairReport};
use shiftscope_analysis::{Analysis, AnalysisParams};
use shiftscope_host::SearchPath;
use shiftscope_runtime::StudyConfig;
use shiftscope_viewer::headless::HeadlessX;

use crate::builtins::registry;
use crate::cli::{Cli, DemoArgs};
use crate::commands::explain;
use crate::table::write_table;

/// A demo model: its name, its ONNX bytes and what it is.
struct DemoModel {
    name: &'static str,
    onnx: &'static [u8],
    what: &'static str,
}

const MODELS: [DemoModel; 2] = [
    DemoModel {
        name: "demo-cnn",
        onnx: include_bytes!("../../../../assets/models/demo-cnn.onnx"),
        what: "the Deephys colored-MNIST CNN",
    },
    DemoModel {
        name: "demo-vit",
        onnx: include_bytes!("../../../../assets/models/demo-vit.onnx"),
        what: "a small vision transformer",
    },
];

/// The datasets every demo store records: the ID test set first, then its shifts.
const DATASETS: [(&str, &str); 5] = [
    ("colored-mnist/id", "Id"),
    ("colored-mnist/permuted", "Ood"),
    ("colored-mnist/arbitrary", "Ood"),
    ("colored-mnist/drifted", "Ood"),
    ("colored-mnist/grey", "Ood"),
];

/// The layer whose most spurious neuron the demo shows (Deephys' tutorial looks at fc1).
const FOCUS_LAYER: &str = "fc1";

pub(crate) fn run(cli: &Cli, args: &DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let out = &args.out;
    std::fs::create_dir_all(out.join("models"))
        .with_context(|| format!("creating {}", out.display()))?;
    let registry = registry(&SearchPath::standard(&cli.plugin_paths))?;
    let models: Vec<&DemoModel> = MODELS
        .iter()
        .filter(|m| args.models.is_empty() || args.models.iter().any(|n| m.name.ends_with(n)))
        .collect();
    anyhow::ensure!(
        !models.is_empty(),
        "--models {}: the demo models are cnn and vit",
        args.models.join(",")
    );
    let repairs = models.iter().filter(|m| m.name == REPAIR_MODEL).count();
    let steps = models.len() * 2 + repairs;
    let mut step = 0;
    let mut stores = Vec::new();
    for model in &models {
        step += 1;
        println!("[{step}/{steps}] recording {} ({})", model.name, model.what);
        let config = write_study(out, model, args.limit)?;
        let study = StudyConfig::load(&config)?;
        shiftscope_runtime::extract(&study, &registry, None)?;
        step += 1;
        println!(
            "[{step}/{steps}] analysing {} and writing its report",
            model.name
        );
        let report_dir = out.join(model.name).join("report");
        let analysis = Analysis::open(&study.store, AnalysisParams::default())?;
        shiftscope_report::write_report(
            &analysis,
            &report_dir,
            &shiftscope_report::ReportOptions::default(),
        )?;
        stores.push((model, study.store.clone(), analysis, report_dir));
    }
    let mut repaired = None;
    if let Some((model, store, ..)) = stores.iter().find(|(m, ..)| m.name == REPAIR_MODEL) {
        step += 1;
        println!(
            "[{step}/{steps}] repairing {}'s {REPAIR_NEURONS} most spurious {FOCUS_LAYER} neurons \
             (both methods) and re-recording",
            model.name
        );
        repaired = Some(repair_demo(cli, store, &out.join(model.name))?);
    }

    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "\nAccuracy (the models were trained on colored-mnist/id only):"
    )?;
    let accuracies: Vec<_> = stores
        .iter()
        .map(|(_, _, analysis, _)| analysis.accuracy())
        .collect::<Result<_, _>>()?;
    writeln!(
        stdout,
        "{:<26}{}",
        "DATASET",
        stores
            .iter()
            .map(|(m, ..)| format!("{:>10}", m.name.to_uppercase()))
            .collect::<String>()
    )?;
    for (d, (name, _)) in DATASETS.iter().enumerate() {
        let cells: String = accuracies
            .iter()
            .map(|acc| {
                acc.get(d).and_then(|a| a.accuracy).map_or_else(
                    || format!("{:>10}", "-"),
                    |a| format!("{:>9.1}%", a * 100.0),
                )
            })
            .collect();
        writeln!(stdout, "{name:<26}{cells}")?;
    }

    let mut focus = None;
    for (model, store, analysis, report_dir) in &stores {
        let found = spurious_neurons(analysis, 10)?;
        let Some(found) = found else { continue };
        writeln!(
            stdout,
            "\nMost spurious neurons of {}'s {} on colored-mnist/permuted (spurious = 1 − |Spearman ρ| \
             of the class-mean profiles, ID vs OOD):",
            model.name, found.layer_name
        )?;
        let rows: Vec<[String; 5]> = found
            .neurons
            .iter()
            .map(|n| {
                [
                    format!("{}:{}", found.layer_name, n.index),
                    format!("{:.3}", n.spurious),
                    format!("{:+.2}", n.colour),
                    format!("{:+.2}", n.digit),
                    n.follows.to_owned(),
                ]
            })
            .collect();
        write_table(
            &mut stdout,
            [
                "NEURON",
                "SPURIOUS",
                "RHO BY COLOUR",
                "RHO BY DIGIT",
                "FOLLOWS",
            ],
            &rows,
        )?;
        let colour = found
            .neurons
            .iter()
            .filter(|n| n.follows == "colour")
            .count();
        writeln!(
            stdout,
            "{colour} of these {} follow the colour: their class-mean profile on permuted colours \
             matches their ID profile re-indexed by colour (class c wears the ID colour of class \
             {:?}[c]), not by digit. The layer's median spurious score is {:.3}.",
            found.neurons.len(),
            colored_mnist::PERMUTATION,
            found.median
        )?;
        writeln!(
            stdout,
            "report: {}",
            report_dir.join("summary.md").display()
        )?;
        if focus.is_none()
            && let Some(top) = found.neurons.first()
        {
            focus = Some((store.clone(), format!("{}:{}", found.layer_name, top.index)));
        }
    }
    if let Some(repair) = &repaired {
        print_repair(&mut stdout, repair)?;
    }
    writeln!(
        stdout,
        "\ndemo finished in {:.0} s; stores, reports and the study configs are under {}",
        started.elapsed().as_secs_f64(),
        out.display()
    )?;
    drop(stdout);
    if let Some((store, neuron)) = focus {
        show(&store, &neuron, out, args.headless)?;
    }
    Ok(())
}

/// The model whose spurious neurons the demo repairs, and how many of them.
const REPAIR_MODEL: &str = "demo-cnn";
const REPAIR_NEURONS: usize = 5;

/// Both repairs of the demo CNN's most spurious fc1 neurons.
struct DemoRepair {
    neurons: Vec<usize>,
    against: String,
    zeroed: RepairReport,
    trained: RepairReport,
}

/// Repairs the `REPAIR_NEURONS` most spurious `FOCUS_LAYER` neurons of `store` both ways
/// (zeroing their outgoing weights; training the decision layer with the ratio penalty),
/// writing the repaired models and stores under `dir`.
fn repair_demo(cli: &Cli, store: &Path, dir: &Path) -> anyhow::Result<DemoRepair> {
    let mut decision = explain::open_decision(cli, store, None, None)?;
    let (against, neurons) =
        explain::top_spurious(&decision.analysis, decision.features, REPAIR_NEURONS, None)?;
    let mut run = |method, name: &str| {
        explain::repair_store(
            cli,
            store,
            &neurons,
            method,
            &RepairParams::default(),
            Some(&dir.join(name)),
            true,
            &mut decision,
        )
    };
    let zeroed = run(RepairMethod::Zero, "repaired-zero")?;
    let trained = run(RepairMethod::Train, "repaired-train")?;
    Ok(DemoRepair {
        neurons,
        against,
        zeroed,
        trained,
    })
}

/// The repair's accuracies on every dataset, before and after each method, and what they say.
fn print_repair(out: &mut impl Write, repair: &DemoRepair) -> anyhow::Result<()> {
    let names: Vec<String> = repair
        .neurons
        .iter()
        .map(|n| format!("{FOCUS_LAYER}:{n}"))
        .collect();
    writeln!(
        out,
        "\nRepair of {REPAIR_MODEL}'s {} (its {} most spurious {FOCUS_LAYER} neurons against {}): \
         the decision layer edited, the model copy re-recorded on every dataset:",
        names.join(", "),
        repair.neurons.len(),
        repair.against
    )?;
    let pct = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", 100.0 * v));
    let rows: Vec<[String; 4]> = repair
        .zeroed
        .datasets
        .iter()
        .zip(&repair.trained.datasets)
        .map(|(z, t)| [z.name.clone(), pct(z.before), pct(z.after), pct(t.after)])
        .collect();
    write_table(
        out,
        [
            "DATASET",
            "BEFORE",
            "ZEROED WEIGHTS",
            "TRAINED (RATIO PENALTY)",
        ],
        &rows,
    )?;
    let change = |r: &RepairReport, role: &str| -> Option<f64> {
        let d = r
            .datasets
            .iter()
            .find(|d| d.role == role && (role == "id" || d.name.ends_with("/permuted")))?;
        Some(100.0 * (d.after? - d.before?))
    };
    let show = |x: Option<f64>| x.map_or_else(|| "?".to_owned(), |v| format!("{v:+.2}"));
    let best = [
        change(&repair.zeroed, "ood"),
        change(&repair.trained, "ood"),
    ]
    .into_iter()
    .flatten()
    .fold(f64::NEG_INFINITY, f64::max);
    writeln!(
        out,
        "Permuted accuracy changes by {} points when their weights are zeroed and by {} after \
         training (ID: {} and {}).{}",
        show(change(&repair.zeroed, "ood")),
        show(change(&repair.trained, "ood")),
        show(change(&repair.zeroed, "id")),
        show(change(&repair.trained, "id")),
        if best < 20.0 {
            " Editing a few neurons does not undo the colour shortcut: the network reads the \
             colour through many fc1 neurons, and the ID training set offers no example that \
             separates colour from digit."
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "repaired models and stores: {} and {}",
        repair.zeroed.store_after, repair.trained.store_after
    )?;
    Ok(())
}

/// Writes the model file (when missing or different) and the study config; returns the
/// config's path. The store goes next to it, so `shiftscope extract` can re-run it.
fn write_study(out: &Path, model: &DemoModel, limit: Option<usize>) -> anyhow::Result<PathBuf> {
    let model_path = out.join("models").join(format!("{}.onnx", model.name));
    if std::fs::read(&model_path).ok().as_deref() != Some(model.onnx) {
        std::fs::write(&model_path, model.onnx)
            .with_context(|| format!("writing {}", model_path.display()))?;
    }
    let limit = limit.map_or_else(String::new, |n| format!(", limit: {n}"));
    let datasets: Vec<String> = DATASETS
        .iter()
        .map(|(name, role)| format!("        (name: \"{name}\", role: {role}{limit}),"))
        .collect();
    let text = format!(
        "// Written by `shiftscope demo`: {what} on colored MNIST and its colour shifts.\n\
         // Re-run with `shiftscope extract {name}.ron`.\n\
         (\n    store: \"{name}/store\",\n    model: (\n        adapter: \"onnx\",\n        \
         path: \"models/{name}.onnx\",\n        \
         // Trained on 28×28 images in [0, 1], unnormalised.\n        \
         preprocessing: (resize: None, crop: None, mean: (0.0, 0.0, 0.0), std: (1.0, 1.0, 1.0)),\n    \
         ),\n    datasets: [\n{datasets}\n    ],\n    \
         // The demo models were trained and scored on procedural digits.\n    \
         plugins: {{\"colored-mnist\": \"(procedural: true)\"}},\n    \
         recording: (batch_size: 256, thumb: 28),\n)\n",
        what = model.what,
        name = model.name,
        datasets = datasets.join("\n"),
    );
    let path = out.join(format!("{}.ron", model.name));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// One of the most spurious neurons and what drives it.
struct SpuriousNeuron {
    index: usize,
    spurious: f32,
    /// Spearman ρ of the permuted profile with the ID profile re-indexed by colour.
    colour: f64,
    /// Spearman ρ of the permuted profile with the ID profile as it is (by digit).
    digit: f64,
    /// `colour`, `digit` or `neither` (ρ > 0.5 and above the other).
    follows: &'static str,
}

struct Spurious {
    layer_name: String,
    neurons: Vec<SpuriousNeuron>,
    median: f32,
}

/// The `n` most spurious neurons of the focus layer (else the last non-logit layer) on
/// `colored-mnist/permuted`, with whether their top class follows the colour or the digit.
fn spurious_neurons(analysis: &Analysis, n: usize) -> anyhow::Result<Option<Spurious>> {
    let manifest = analysis.store().manifest();
    let Some(permuted) = manifest
        .datasets
        .iter()
        .position(|d| d.name == "colored-mnist/permuted")
    else {
        return Ok(None);
    };
    let layers = &manifest.layers;
    let Some(layer) = layers
        .iter()
        .position(|l| l.name == FOCUS_LAYER)
        .or_else(|| layers.iter().rposition(|l| l.kind != "logits"))
    else {
        return Ok(None);
    };
    let scores = analysis.layer(layer)?;
    let Some(shift) = scores.shift(permuted) else {
        return Ok(None);
    };
    let reference = scores.reference;
    let ranked = shiftscope_analysis::ranked(&shift.spurious);
    let mut sorted: Vec<f32> = ranked.iter().map(|r| r.1).collect();
    sorted.sort_by(f32::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f32::NAN);
    let (Some(id_layer), Some(ood_layer)) = (
        scores.datasets.get(reference),
        scores.datasets.get(permuted),
    ) else {
        return Ok(None);
    };
    let neurons = ranked
        .iter()
        .take(n)
        .map(|&(index, spurious)| {
            let id: Vec<f32> = id_layer.class_means.profile(index).collect();
            let ood: Vec<f32> = ood_layer.class_means.profile(index).collect();
            // Class c of the permuted set wears the ID colour of class PERMUTATION[c]: a
            // colour-driven neuron's OOD profile is its ID profile re-indexed that way.
            let by_colour: Vec<f32> = colored_mnist::PERMUTATION
                .iter()
                .map(|&p| id.get(p).copied().unwrap_or(f32::NAN))
                .collect();
            let colour = shiftscope_analysis::spearman(&ood, &by_colour).unwrap_or(f64::NAN);
            let digit = shiftscope_analysis::spearman(&ood, &id).unwrap_or(f64::NAN);
            let follows = if colour > 0.5 && colour > digit {
                "colour"
            } else if digit > 0.5 && digit > colour {
                "digit"
            } else {
                "neither"
            };
            SpuriousNeuron {
                index,
                spurious,
                colour,
                digit,
                follows,
            }
        })
        .collect();
    Ok(Some(Spurious {
        layer_name: layers[layer].name.clone(),
        neurons,
        median,
    }))
}

/// Opens the viewer on `neuron` of `store` (a child process, so the demo's own process never
/// links a window to its recording); headless, writes its screenshots under `out` instead,
/// on an X server of its own when none is set (Xvfb, which `tools/setup.sh` installs).
fn show(store: &Path, neuron: &str, out: &Path, headless: bool) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the shiftscope binary")?;
    let has_display = shiftscope_viewer::has_display();
    let view = |extra: &[&str], x: Option<&HeadlessX>| {
        let mut command = Command::new(&exe);
        command
            .arg("view")
            .arg(store)
            .args(["--select", neuron, "--colour-by", "spurious"])
            .args(extra);
        if let Some(x) = x {
            x.configure(&mut command);
        }
        command.status()
    };
    if !headless {
        if !has_display {
            println!(
                "no display to open the viewer on: run `shiftscope demo --headless` for \
                 screenshots, or `shiftscope view {} --select {neuron}` where there is one",
                store.display()
            );
            return Ok(());
        }
        println!("opening the viewer on {neuron} (close the window to end the demo)");
        let status = view(&["--panel", "neuron"], None).context("starting the viewer")?;
        anyhow::ensure!(status.success(), "the viewer ended with {status}");
        return Ok(());
    }
    let x = if has_display {
        None
    } else {
        match HeadlessX::start(&out.join(".xdg-runtime"), 90..140) {
            Ok(x) => Some(x),
            Err(e) => {
                println!("no screenshots: {e}");
                return Ok(());
            }
        }
    };
    let shots = out.join("screenshots");
    std::fs::create_dir_all(&shots).with_context(|| format!("creating {}", shots.display()))?;
    for panel in ["neuron", "overview", "category"] {
        let path = shots.join(format!("viewer-{panel}.png"));
        let path_text = path.to_string_lossy().into_owned();
        let status = view(&["--panel", panel, "--screenshot", &path_text], x.as_ref())
            .context("starting the viewer")?;
        if status.success() {
            println!("screenshot: {}", path.display());
        } else {
            println!("no screenshot of the {panel} panel: the viewer ended with {status}");
        }
    }
    Ok(())
}
