//! `summary.md`.

use std::fmt::Write as _;

use shiftscope_analysis::ScoreKind;
use shiftscope_store::Role;

use crate::figures::Figures;
use crate::{Report, ReportError};

/// One line per score: what it means (design/analyses.md).
const MEANINGS: [(&str, &str); 6] = [
    (
        "spurious",
        "`1 − |Spearman ρ|` between the neuron's class-mean profiles on ID and OOD: 0 = the same classes drive it, 1 = its class preference is scrambled under the shift.",
    ),
    (
        "novelty",
        "`max_c Y_ID − max_c Y_OOD` on normalised class means: how much of its strongest class response the neuron loses under the shift (negative: it fires more).",
    ),
    (
        "shift",
        "Wasserstein-1 distance between the neuron's normalised per-image activations on ID and OOD: how far its whole distribution moves.",
    ),
    (
        "normalised",
        "activations divided by the neuron's maximum on the normaliser (ID) set; a neuron whose maximum is ≤ 0 is *silent* and its scores are undefined.",
    ),
    (
        "Rafegas CSI",
        "class selectivity over the top-100 images weighted by activation: 1 = all from one class, 0 = spread over every class.",
    ),
    (
        "Morcos CSI",
        "`(μ_max − μ_rest) / (μ_max + μ_rest)` over raw class means: how much more the best class drives the neuron than the rest.",
    ),
];

fn fmt(v: Option<f32>) -> String {
    v.filter(|v| v.is_finite())
        .map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"))
}

fn fmt64(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "—".to_owned()
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{:.1} %", v * 100.0))
}

/// Markdown table cells must not hold `|` or line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// One ranked neuron.
struct Ranked {
    layer: usize,
    neuron: usize,
    score: f32,
}

pub(crate) fn render(report: &Report<'_>, figures: &Figures) -> Result<String, ReportError> {
    let mut s = String::new();
    // Writing into a String cannot fail; the results are ignored on purpose.
    let manifest = report.manifest();
    let _ = writeln!(s, "# shiftscope report\n");
    let _ = writeln!(s, "- **Store:** `{}`", report.store.display());
    if manifest.model.path.is_empty() {
        let _ = writeln!(
            s,
            "- **Model:** adapter `{}` (no model file)",
            manifest.model.adapter
        );
    } else {
        let sha = &manifest.model.sha256;
        let _ = writeln!(
            s,
            "- **Model:** `{}` (adapter `{}`, sha256 `{}…`)",
            manifest.model.path,
            manifest.model.adapter,
            sha.get(..12).unwrap_or(sha)
        );
    }
    let neurons: usize = report.layers.iter().map(|l| l.neurons).sum();
    let _ = writeln!(
        s,
        "- **Recorded:** {} layers, {neurons} neurons, {} classes, precision {:?}",
        manifest.layers.len(),
        manifest.classes.len(),
        manifest.precision
    );
    let _ = writeln!(
        s,
        "- **Reference (ID):** `{}`; normaliser: `{}`\n",
        report.dataset_name(report.reference),
        report.dataset_name(report.analysis.normaliser())
    );

    // Datasets and accuracy.
    let accuracy = report.analysis.accuracy()?;
    let _ = writeln!(s, "## Datasets and accuracy\n");
    let _ = writeln!(
        s,
        "| # | dataset | role | plugin | images | correct | accuracy | drop from ID |"
    );
    let _ = writeln!(s, "|---|---|---|---|---:|---:|---:|---:|");
    for (d, entry) in manifest.datasets.iter().enumerate() {
        let a = accuracy.iter().find(|a| a.dataset == d);
        let role = match entry.role {
            Role::Id => "ID",
            Role::Ood => "OOD",
        };
        let images = report.analysis.store().committed(d).unwrap_or(0);
        let complete = if entry.complete {
            String::new()
        } else {
            format!(" (of {}, incomplete)", entry.len)
        };
        let drop = if d == report.reference {
            "—".to_owned()
        } else {
            a.and_then(|a| a.drop_from_reference)
                .map_or_else(|| "—".to_owned(), |v| format!("{:+.1} pt", v * 100.0))
        };
        let _ = writeln!(
            s,
            "| {d} | `{}` | {role} | {} | {images}{complete} | {} | {} | {drop} |",
            cell(&entry.name),
            cell(&entry.plugin),
            a.map_or(0, |a| a.correct),
            percent(a.and_then(|a| a.accuracy)),
        );
    }
    let _ = writeln!(
        s,
        "\nAccuracy counts labelled images only; the drop is ID accuracy minus the dataset's, in percentage points. Per image: `images.csv`.\n"
    );

    // What the scores mean.
    let _ = writeln!(s, "## What the scores mean\n");
    for (name, meaning) in MEANINGS {
        let _ = writeln!(s, "- **{name}**: {meaning}");
    }
    let _ = writeln!(
        s,
        "\nEvery score of every neuron is in `neurons.csv` (an empty cell: undefined).\n"
    );

    // Per layer.
    let _ = writeln!(s, "## Per layer\n");
    if report.ood.is_empty() {
        let _ = writeln!(
            s,
            "The store holds no OOD dataset: there are no shift scores to summarise.\n"
        );
    }
    let mut header = "| layer | name | kind | neurons | silent |".to_owned();
    let mut rule = "|---:|---|---|---:|---:|".to_owned();
    let ood_label = |o: usize| {
        if report.ood.len() > 1 {
            format!(" ({})", report.dataset_name(o))
        } else {
            String::new()
        }
    };
    for &o in &report.ood {
        let label = cell(&ood_label(o));
        let _ = write!(
            header,
            " mean spurious{label} | mean novelty{label} | mean shift{label} |"
        );
        rule.push_str("---:|---:|---:|");
    }
    let _ = writeln!(s, "{header}\n{rule}");
    let mut undefined = vec![[0usize; 3]; report.ood.len()];
    for (l, scores) in report.layers.iter().enumerate() {
        let entry = &manifest.layers[l];
        let silent = scores.silent.iter().filter(|&&x| x).count();
        let _ = write!(
            s,
            "| {l} | `{}` | {} | {} | {silent} |",
            cell(&entry.name),
            cell(&entry.kind),
            scores.neurons
        );
        let profile = scores.profile(1);
        for (i, &o) in report.ood.iter().enumerate() {
            for (k, kind) in [ScoreKind::Spurious, ScoreKind::Novelty, ScoreKind::Shift]
                .into_iter()
                .enumerate()
            {
                let summary = profile.iter().find(|p| p.dataset == o && p.kind == kind);
                let _ = write!(s, " {} |", fmt64(summary.map_or(f64::NAN, |p| p.mean)));
                undefined[i][k] += summary.map_or(0, |p| p.histogram.undefined as usize);
            }
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "\nMeans are over the neurons whose score is defined (silent neurons and constant class profiles are left out).\n"
    );
    if let Some(profile) = &figures.profile {
        let _ = writeln!(s, "![Layer shift profile]({profile})\n");
    }
    for (kind, file) in &figures.histograms {
        let _ = writeln!(s, "![{kind} per layer]({file})\n");
    }

    // Ranked neurons.
    for &o in &report.ood {
        for (title, kind) in [
            ("most spurious", ScoreKind::Spurious),
            ("most novel", ScoreKind::Novelty),
        ] {
            let ranked = rank(report, o, kind);
            let _ = writeln!(
                s,
                "## The {} {title} neurons{}\n",
                ranked.len(),
                if report.ood.len() > 1 {
                    format!(" on `{}`", report.dataset_name(o))
                } else {
                    String::new()
                }
            );
            if ranked.is_empty() {
                let _ = writeln!(s, "No neuron has a defined score.\n");
                continue;
            }
            let _ = writeln!(
                s,
                "| rank | neuron | layer | spurious | novelty | shift | top classes (ID) | top classes (OOD) |"
            );
            let _ = writeln!(s, "|---:|---|---|---:|---:|---:|---|---|");
            for (i, r) in ranked.iter().enumerate() {
                let scores = &report.layers[r.layer];
                let shift = scores.shift(o);
                let get = |v: Option<&Vec<f32>>| v.and_then(|v| v.get(r.neuron).copied());
                let names = |d: usize| {
                    scores
                        .datasets
                        .get(d)
                        .map(|x| x.top_classes(r.neuron))
                        .unwrap_or_default()
                        .iter()
                        .map(|&c| cell(&report.class_name(c)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let _ = writeln!(
                    s,
                    "| {} | `{}:{}` | `{}` | {} | {} | {} | {} | {} |",
                    i + 1,
                    r.layer,
                    r.neuron,
                    cell(&manifest.layers[r.layer].name),
                    fmt(get(shift.map(|x| &x.spurious))),
                    fmt(get(shift.map(|x| &x.novelty))),
                    fmt(get(shift.map(|x| &x.shift))),
                    names(report.reference),
                    names(o),
                );
            }
            let _ = writeln!(s);
        }
    }

    // Heatmaps.
    if !figures.heatmaps.is_empty() {
        let _ = writeln!(s, "## Class × neuron heatmaps\n");
        let _ = writeln!(
            s,
            "Normalised class means `Y[c, n]` per dataset, one panel per dataset with the neurons in the same order (grouped by their ID argmax class), so ID and OOD compare column by column; grey: undefined (silent neuron or a class without images).\n"
        );
        for (layer, file) in &figures.heatmaps {
            let _ = writeln!(
                s,
                "![Class × neuron heatmap of layer {layer} `{}`]({file})\n",
                manifest.layers[*layer].name
            );
        }
    }

    // Undefined and non-finite.
    let _ = writeln!(s, "## Undefined and non-finite values\n");
    let silent: usize = report
        .layers
        .iter()
        .map(|l| l.silent.iter().filter(|&&x| x).count())
        .sum();
    let _ = writeln!(
        s,
        "- Silent neurons (maximum ≤ 0 on the normaliser): {silent} of {neurons}."
    );
    for (i, &o) in report.ood.iter().enumerate() {
        let [sp, nv, sh] = undefined[i];
        let _ = writeln!(
            s,
            "- Undefined scores against `{}`: spurious {sp}, novelty {nv}, shift {sh} (of {neurons}).",
            report.dataset_name(o)
        );
    }
    let mut any = false;
    for (l, scores) in report.layers.iter().enumerate() {
        for d in &scores.datasets {
            let nf = &d.non_finite;
            if nf.total() > 0 {
                any = true;
                let _ = writeln!(
                    s,
                    "- Layer {l} `{}` on `{}`: {} NaN, {} +Inf, {} −Inf (left out of every number).",
                    manifest.layers[l].name,
                    report.dataset_name(d.dataset),
                    nf.nan,
                    nf.pos_inf,
                    nf.neg_inf
                );
            }
        }
    }
    if !any {
        let _ = writeln!(s, "- No NaN or Inf activation in any layer of any dataset.");
    }
    Ok(s)
}

/// The `report.options.top` neurons of every layer with the highest score against `ood`
/// (ties: lower layer, then lower index first).
fn rank(report: &Report<'_>, ood: usize, kind: ScoreKind) -> Vec<Ranked> {
    let mut all = Vec::new();
    for (l, scores) in report.layers.iter().enumerate() {
        let Some(shift) = scores.shift(ood) else {
            continue;
        };
        let values = match kind {
            ScoreKind::Spurious => &shift.spurious,
            ScoreKind::Novelty => &shift.novelty,
            ScoreKind::Shift => &shift.shift,
        };
        all.extend(
            values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(n, &score)| Ranked {
                    layer: l,
                    neuron: n,
                    score,
                }),
        );
    }
    all.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.layer.cmp(&b.layer))
            .then(a.neuron.cmp(&b.neuron))
    });
    all.truncate(report.options.top);
    all
}
