//! `neurons.csv` and `images.csv`.

use std::collections::BTreeSet;
use std::path::Path;

use shiftscope_features::LayerFeatures;

use crate::{Out, Report, ReportError, number};

/// Per layer, the colour selectivity cached by `shiftscope features` (the largest N per
/// dataset), and the datasets any layer has it for.
fn cached_features(report: &Report<'_>) -> (Vec<Vec<LayerFeatures>>, BTreeSet<usize>) {
    let (root, store) = (&report.store, report.analysis.store());
    let per_layer: Vec<Vec<LayerFeatures>> = (0..store.manifest().layers.len())
        .map(|l| {
            let mut all = LayerFeatures::cached(store, root, l);
            // Ordered by dataset then N: keep the last (largest N) of each dataset.
            let mut kept: Vec<LayerFeatures> = Vec::new();
            for f in all.drain(..) {
                if kept.last().is_some_and(|k| k.dataset == f.dataset) {
                    kept.pop();
                }
                kept.push(f);
            }
            kept
        })
        .collect();
    let datasets = per_layer.iter().flatten().map(|f| f.dataset).collect();
    (per_layer, datasets)
}

/// One row per (layer, neuron): every score; returns the rows written.
pub(crate) fn write_neurons(report: &Report<'_>, path: &Path) -> Result<usize, ReportError> {
    let manifest = report.manifest();
    let datasets = manifest.datasets.len();
    let mut out = Out::create(path)?;
    let mut header: Vec<String> = ["layer", "layer_name", "neuron", "normaliser_max", "silent"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for &o in &report.ood {
        let name = report.dataset_name(o);
        for score in ["spurious", "novelty", "shift"] {
            header.push(format!("{score}[{name}]"));
        }
    }
    for d in 0..datasets {
        let name = report.dataset_name(d);
        header.push(format!("rafegas[{name}]"));
        header.push(format!("morcos[{name}]"));
    }
    let (features, csi_datasets) = cached_features(report);
    for &d in &csi_datasets {
        let name = report.dataset_name(d);
        header.push(format!("csi[{name}]"));
        header.push(format!("csi_clipped[{name}]"));
    }
    header.push("top_classes".into());
    out.line(&header)?;
    let mut rows = 0;
    for (l, scores) in report.layers.iter().enumerate() {
        let name = manifest.layers.get(l).map_or("", |e| e.name.as_str());
        for n in 0..scores.neurons {
            let mut row = vec![
                l.to_string(),
                name.to_owned(),
                n.to_string(),
                number(scores.normaliser_max.get(n).copied()),
                scores.silent.get(n).copied().unwrap_or(true).to_string(),
            ];
            for &o in &report.ood {
                match scores.shift(o) {
                    Some(s) => {
                        for values in [&s.spurious, &s.novelty, &s.shift] {
                            row.push(number(values.get(n).copied()));
                        }
                    }
                    None => row.extend(std::iter::repeat_n(String::new(), 3)),
                }
            }
            for d in 0..datasets {
                let layer = scores.datasets.get(d);
                row.push(number(layer.and_then(|x| x.rafegas.get(n).copied())));
                row.push(number(layer.and_then(|x| x.morcos.get(n).copied())));
            }
            for &d in &csi_datasets {
                let f = features
                    .get(l)
                    .and_then(|fs| fs.iter().find(|f| f.dataset == d));
                row.push(number(f.and_then(|f| f.csi.get(n).copied().flatten())));
                row.push(number(
                    f.and_then(|f| f.csi_clipped.get(n).copied().flatten()),
                ));
            }
            let top = scores
                .datasets
                .get(report.reference)
                .map(|x| x.top_classes(n))
                .unwrap_or_default();
            row.push(
                top.iter()
                    .map(|&c| report.class_name(c))
                    .collect::<Vec<_>>()
                    .join(";"),
            );
            out.line(&row)?;
            rows += 1;
        }
    }
    out.finish()?;
    Ok(rows)
}

/// One row per recorded image of every dataset; returns the rows written.
pub(crate) fn write_images(report: &Report<'_>, path: &Path) -> Result<usize, ReportError> {
    let classes = report.manifest().classes.len();
    let mut out = Out::create(path)?;
    out.line(
        &[
            "dataset",
            "index",
            "label",
            "label_name",
            "prediction",
            "prediction_name",
            "confidence",
            "correct",
        ]
        .map(str::to_owned),
    )?;
    let mut rows = 0;
    for d in 0..report.manifest().datasets.len() {
        let p = report.analysis.predictions(d)?;
        let name = report.dataset_name(d).to_owned();
        for (i, ((&label, &predicted), &probability)) in p
            .labels
            .iter()
            .zip(&p.predicted)
            .zip(&p.probability)
            .enumerate()
        {
            let label = usize::try_from(label).ok().filter(|&c| c < classes);
            let predicted = Some(predicted as usize).filter(|&c| c < classes);
            let correct = match (label, predicted) {
                (Some(a), Some(b)) => (a == b).to_string(),
                (Some(_), None) => "false".into(),
                (None, _) => String::new(),
            };
            out.line(&[
                name.clone(),
                i.to_string(),
                label.map(|c| c.to_string()).unwrap_or_default(),
                label.map(|c| report.class_name(c)).unwrap_or_default(),
                predicted.map(|c| c.to_string()).unwrap_or_default(),
                predicted.map(|c| report.class_name(c)).unwrap_or_default(),
                predicted
                    .map(|_| number(Some(probability)))
                    .unwrap_or_default(),
                correct,
            ])?;
            rows += 1;
        }
    }
    out.finish()?;
    Ok(rows)
}
