//! `shiftscope explain <store> --class C`: the neurons responsible for a class's mistakes,
//! per dataset, and `shiftscope repair <store> ...`: the decision-layer repair, re-recorded
//! on every dataset of the store, with accuracies before and after side by side. The model's
//! decision layer comes from its adapter; the numbers from `shiftscope_analysis::mistakes`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use shiftscope_analysis::mistakes::{
    self, DatasetMistakes, Linear, MistakeParams, RepairMethod, RepairParams, RepairReport,
};
use shiftscope_analysis::{Analysis, AnalysisParams};
use shiftscope_host::SearchPath;
use shiftscope_sdk::{DecisionLayer, ModelAdapter, Tensor};

use crate::builtins::registry;
use crate::cli::{Cli, ExplainArgs, RepairArgs};
use crate::table::write_table;

/// A store opened with its model's decision layer and the store layer that feeds it.
pub(crate) struct Decision {
    pub(crate) analysis: Analysis,
    pub(crate) model_path: PathBuf,
    pub(crate) layer: DecisionLayer,
    /// Index of the features layer in the store.
    pub(crate) features: usize,
    pub(crate) model: Box<dyn ModelAdapter>,
}

impl Decision {
    pub(crate) fn linear(&self) -> Linear<'_> {
        Linear {
            weights: self.layer.weights.data(),
            bias: self.layer.bias.data(),
        }
    }

    pub(crate) fn features_name(&self) -> &str {
        &self.analysis.store().manifest().layers[self.features].name
    }
}

/// Opens `store`, its model (the manifest's, or `model`), the decision layer, and finds the
/// store layer holding the classifier's input (`layer` overrides its name).
pub(crate) fn open_decision(
    cli: &Cli,
    store: &Path,
    model: Option<&Path>,
    layer: Option<&str>,
) -> anyhow::Result<Decision> {
    open_decision_with(
        &SearchPath::standard(&cli.plugin_paths),
        store,
        model,
        layer,
    )
}

/// [`open_decision`] with the plugins of `search` (for the viewer's worker thread).
pub(crate) fn open_decision_with(
    search: &SearchPath,
    store: &Path,
    model: Option<&Path>,
    layer: Option<&str>,
) -> anyhow::Result<Decision> {
    let analysis = Analysis::open(store, AnalysisParams::default())?;
    let manifest = analysis.store().manifest();
    let registry = registry(search)?;
    let (model_path, decision, adapter) =
        shiftscope_runtime::store_decision_layer(store, manifest, &registry, model)
            .map_err(anyhow::Error::msg)?;
    let name = layer.unwrap_or(&decision.input);
    let Some(features) = analysis.layer_index(name) else {
        let recorded: Vec<&str> = manifest.layers.iter().map(|l| l.name.as_str()).collect();
        bail!(
            "{}: the store does not hold '{name}', the input of the model's decision layer ({} \
             → {}); it holds {}. Add \"{name}\" to the config's model.layers (e.g. layers: \
             [\"default\", \"{name}\"]) and extract again",
            store.display(),
            decision.op,
            decision.weights.shape()[0],
            recorded.join(", ")
        );
    };
    let (_, d) = decision.dims()?;
    let neurons = manifest.layers[features].neurons;
    anyhow::ensure!(
        neurons == d,
        "{}: layer '{name}' has {neurons} neurons but the decision layer reads {d} features",
        store.display()
    );
    Ok(Decision {
        analysis,
        model_path,
        layer: decision,
        features,
        model: adapter,
    })
}

/// A class by index or by name.
fn parse_class(classes: &[String], text: &str) -> anyhow::Result<usize> {
    if let Some(i) = classes.iter().position(|c| c == text) {
        return Ok(i);
    }
    match text.parse::<usize>() {
        Ok(i) if i < classes.len() => Ok(i),
        _ => bail!(
            "--class '{text}': not a class of the store (0..{} or one of {})",
            classes.len().saturating_sub(1),
            classes.join(", ")
        ),
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", 100.0 * v))
}

pub(crate) fn explain(cli: &Cli, args: &ExplainArgs) -> anyhow::Result<()> {
    let decision = open_decision(
        cli,
        &args.store,
        args.model.as_deref(),
        args.layer.as_deref(),
    )?;
    let manifest = decision.analysis.store().manifest();
    let class = parse_class(&manifest.classes, &args.class)?;
    let datasets: Vec<usize> = match &args.dataset {
        Some(name) => vec![manifest.dataset(name).map(|(i, _)| i).with_context(|| {
            format!(
                "--dataset '{name}': not in the store ({})",
                manifest
                    .datasets
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?],
        None => (0..manifest.datasets.len()).collect(),
    };
    let found = decision.analysis.explain_class(
        decision.features,
        class,
        &datasets,
        decision.linear(),
        &MistakeParams::default(),
        args.top_images,
    )?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Neurons of {} responsible for the mistakes on class {class} ('{}'), through the decision \
         layer {} [{} × {}] of {}",
        decision.features_name(),
        manifest.classes[class],
        decision.layer.op,
        decision.layer.weights.shape()[0],
        decision.layer.weights.shape()[1],
        decision.model_path.display()
    )?;
    for d in &found {
        print_dataset(&mut out, decision.features_name(), d)?;
    }
    Ok(())
}

fn print_dataset(out: &mut impl Write, layer: &str, d: &DatasetMistakes) -> anyhow::Result<()> {
    let m = &d.mistakes;
    writeln!(
        out,
        "\n{}: {} of {} images of the class misclassified; {} counterfactuals reached the class; \
         the decision layer reproduces {} of the stored predictions",
        d.name,
        m.mistakes,
        m.images,
        m.flipped,
        percent(d.agreement)
    )?;
    if m.mistakes == 0 {
        writeln!(out, "  no mistakes: nothing to explain")?;
        return Ok(());
    }
    let tops = |n: usize| -> String {
        d.top_images
            .iter()
            .find(|(x, _)| *x == n)
            .map(|(_, ids)| {
                ids.iter()
                    .map(|i| format!("#{}", i.index))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    for (title, list) in [
        ("insufficient (needed more activation)", &m.insufficient),
        ("excessive (needed less activation)", &m.excessive),
    ] {
        writeln!(out, "  {title}:")?;
        if list.is_empty() {
            writeln!(out, "    none above the 3% cut")?;
            continue;
        }
        let rows: Vec<[String; 5]> = list
            .iter()
            .map(|n| {
                [
                    format!("    {layer}:{}", n.neuron),
                    n.votes.to_string(),
                    format!("{:.1}%", n.percent),
                    n.importance
                        .map_or_else(|| "-".to_owned(), |v| format!("{v:.3}")),
                    tops(n.neuron),
                ]
            })
            .collect();
        write_table(
            out,
            ["    NEURON", "VOTES", "SHARE", "IMPORTANCE", "TOP IMAGES"],
            &rows,
        )?;
    }
    if !m.dropped.is_empty() {
        let names: Vec<String> = m.dropped.iter().map(|n| format!("{layer}:{n}")).collect();
        writeln!(out, "  in both lists, dropped: {}", names.join(", "))?;
    }
    Ok(())
}

/// `fc1:3,fc1:17` (or bare indices) as neurons of `layer`.
fn parse_neurons(layer: &str, text: &str, count: usize) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, index) = part.rsplit_once(':').unwrap_or((layer, part));
        anyhow::ensure!(
            name == layer,
            "--neurons '{part}': the repair edits the decision layer, whose input is '{layer}'; \
             name neurons of {layer}"
        );
        let index: usize = index
            .parse()
            .with_context(|| format!("--neurons '{part}': not a neuron index"))?;
        anyhow::ensure!(
            index < count,
            "--neurons '{part}': {layer} has {count} neurons"
        );
        if !out.contains(&index) {
            out.push(index);
        }
    }
    anyhow::ensure!(!out.is_empty(), "--neurons '{text}': no neuron named");
    Ok(out)
}

/// The `n` most spurious neurons of `layer` against the OOD dataset `against` (the first OOD
/// dataset when `None`).
pub(crate) fn top_spurious(
    analysis: &Analysis,
    layer: usize,
    n: usize,
    against: Option<&str>,
) -> anyhow::Result<(String, Vec<usize>)> {
    let manifest = analysis.store().manifest();
    let ood = match against {
        Some(name) => manifest
            .dataset(name)
            .map(|(i, _)| i)
            .with_context(|| format!("--against '{name}': not in the store"))?,
        None => *analysis
            .ood_datasets()
            .first()
            .context("the store has no OOD dataset to rank spurious neurons against")?,
    };
    let scores = analysis.layer(layer)?;
    let shift = scores
        .shift(ood)
        .with_context(|| format!("no shift scores against dataset {ood}"))?;
    let ranked = shiftscope_analysis::ranked(&shift.spurious);
    Ok((
        manifest.datasets[ood].name.clone(),
        ranked.iter().take(n).map(|r| r.0).collect(),
    ))
}

/// The folder and model file of a repair's output: `--out` (else `<store>-repaired`) and the
/// model next to it as `<folder>.onnx`.
pub(crate) fn outputs(store: &Path, out: Option<&Path>) -> (PathBuf, PathBuf) {
    let folder = out.map_or_else(
        || {
            let name = store
                .file_name()
                .map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
            store.with_file_name(format!("{name}-repaired"))
        },
        Path::to_path_buf,
    );
    let model = folder.with_extension("onnx");
    (folder, model)
}

/// Runs a repair: edits the decision layer, writes the repaired model, re-records it on
/// every dataset of the store, and compares the accuracies.
#[allow(clippy::too_many_arguments)]
pub(crate) fn repair_store(
    cli: &Cli,
    store: &Path,
    neurons: &[usize],
    method: RepairMethod,
    params: &RepairParams,
    out: Option<&Path>,
    force: bool,
    decision: &mut Decision,
) -> anyhow::Result<RepairReport> {
    let (folder, model_out) = outputs(store, out);
    if folder.exists() || model_out.exists() {
        anyhow::ensure!(
            force,
            "{} or {} exists already; pass --force to replace them, or --out elsewhere",
            folder.display(),
            model_out.display()
        );
        if folder.exists() {
            anyhow::ensure!(
                folder.join("manifest.json").exists(),
                "{}: exists and is not a store; refusing to delete it",
                folder.display()
            );
            std::fs::remove_dir_all(&folder)
                .with_context(|| format!("removing {}", folder.display()))?;
        }
    }
    let analysis = &decision.analysis;
    let id = analysis.reference();
    let (features, labels, _) = analysis.features(id, decision.features)?;
    let linear = decision.linear();
    let repaired = match method {
        RepairMethod::Zero => mistakes::zero_outgoing(linear, neurons),
        RepairMethod::Train => mistakes::train_repair(linear, &features, &labels, neurons, params),
    }
    .map_err(anyhow::Error::msg)?;
    let (k, d) = decision.layer.dims()?;
    let layer = DecisionLayer {
        weights: Tensor::new(vec![k, d], repaired.weights.clone())?,
        bias: Tensor::new(vec![k], repaired.bias.clone())?,
        ..decision.layer.clone()
    };
    if let Some(parent) = model_out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    decision
        .model
        .export_with_decision_layer(&layer, &model_out, force)?;
    let manifest = analysis.store().manifest();
    let model_abs = std::path::absolute(&model_out).unwrap_or_else(|_| model_out.clone());
    let study = shiftscope_runtime::study_from_store(store, manifest, &model_abs, &folder)
        .map_err(anyhow::Error::msg)?;
    let registry = registry(&SearchPath::standard(&cli.plugin_paths))?;
    shiftscope_runtime::extract(&study, &registry, None)?;
    let after = Analysis::open(&folder, AnalysisParams::default())?;
    let datasets = mistakes::compare_accuracy(analysis, &after)?;
    let note = match method {
        RepairMethod::Zero => repaired.stopped.clone(),
        RepairMethod::Train => format!(
            "trained on {} ({} images): {}; training accuracy by epoch {}",
            manifest.datasets[id].name,
            labels.len(),
            repaired.stopped,
            repaired
                .train_accuracy
                .iter()
                .map(|a| format!("{:.2}", 100.0 * a))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    };
    let report = RepairReport {
        method,
        layer: decision.features_name().to_owned(),
        neurons: neurons.to_vec(),
        store_before: store.display().to_string(),
        store_after: folder.display().to_string(),
        model_after: model_out.display().to_string(),
        note,
        classes: manifest.classes.clone(),
        datasets,
    };
    std::fs::write(folder.join("repair.json"), report.to_json())
        .with_context(|| format!("writing {}", folder.join("repair.json").display()))?;
    Ok(report)
}

/// Prints a repair's accuracies before and after, per dataset and per class.
pub(crate) fn print_report(out: &mut impl Write, report: &RepairReport) -> anyhow::Result<()> {
    let names: Vec<String> = report
        .neurons
        .iter()
        .map(|n| format!("{}:{n}", report.layer))
        .collect();
    writeln!(
        out,
        "Repair ({}) of {}: {}",
        match report.method {
            RepairMethod::Train => "decision layer trained with the ratio penalty",
            RepairMethod::Zero => "outgoing weights zeroed",
        },
        names.join(", "),
        report.note
    )?;
    writeln!(
        out,
        "repaired model: {}\nre-recorded store: {}\n",
        report.model_after, report.store_after
    )?;
    let change = |b: Option<f64>, a: Option<f64>| {
        b.zip(a).map_or_else(
            || "-".to_owned(),
            |(b, a)| format!("{:+.2}", 100.0 * (a - b)),
        )
    };
    let rows: Vec<[String; 5]> = report
        .datasets
        .iter()
        .map(|d| {
            [
                d.name.clone(),
                d.role.clone(),
                percent(d.before),
                percent(d.after),
                change(d.before, d.after),
            ]
        })
        .collect();
    write_table(out, ["DATASET", "ROLE", "BEFORE", "AFTER", "CHANGE"], &rows)?;
    writeln!(out, "\nPer class, accuracy before → after:")?;
    let header: String = report
        .datasets
        .iter()
        .map(|d| format!("  {:>17}", d.name.rsplit('/').next().unwrap_or(&d.name)))
        .collect();
    writeln!(out, "{:<10}{header}", "CLASS")?;
    for (c, name) in report.classes.iter().enumerate() {
        let cells: String = report
            .datasets
            .iter()
            .map(|d| {
                let (b, a) = d.per_class.get(c).copied().unwrap_or((None, None));
                let f = |x: Option<f64>| {
                    x.map_or_else(|| "-".to_owned(), |v| format!("{:.1}", 100.0 * v))
                };
                format!("  {:>17}", format!("{} → {}", f(b), f(a)))
            })
            .collect();
        writeln!(out, "{name:<10}{cells}")?;
    }
    Ok(())
}

pub(crate) fn repair(cli: &Cli, args: &RepairArgs) -> anyhow::Result<()> {
    let mut decision = open_decision(cli, &args.store, args.model.as_deref(), None)?;
    let layer_name = decision.features_name().to_owned();
    let count = decision.layer.dims()?.1;
    let neurons = match (&args.neurons, args.top_spurious) {
        (Some(text), None) => parse_neurons(&layer_name, text, count)?,
        (None, Some(n)) => {
            let (against, found) = top_spurious(
                &decision.analysis,
                decision.features,
                n,
                args.against.as_deref(),
            )?;
            println!(
                "the {} most spurious neurons of {layer_name} against {against}: {}",
                found.len(),
                found
                    .iter()
                    .map(|i| format!("{layer_name}:{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            found
        }
        _ => bail!("name the neurons to repair with --neurons or --top-spurious N (one of them)"),
    };
    let params = RepairParams {
        lambda: args.lambda,
        gamma: args.gamma,
        epochs: args.epochs,
        ..RepairParams::default()
    };
    let method = match args.method.as_str() {
        "train" => RepairMethod::Train,
        "zero" => RepairMethod::Zero,
        other => bail!("--method '{other}': train or zero"),
    };
    let report = repair_store(
        cli,
        &args.store,
        &neurons,
        method,
        &params,
        args.out.as_deref(),
        args.force,
        &mut decision,
    )?;
    print_report(&mut std::io::stdout().lock(), &report)?;
    Ok(())
}
