//! The Mistakes panel in the headless egui_kittest harness: its view model loaded from a small
//! real store whose features feed a hand-made decision layer, the neurons and their top-image
//! strips found by label, clicks turning into intents, and the repair's before/after table.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use shiftscope_analysis::mistakes::{DatasetComparison, Linear, RepairMethod, RepairReport};
use shiftscope_analysis::{Analysis, AnalysisParams, ClassId, NeuronId};
use shiftscope_store::{LayerEntry, Manifest, ModelEntry, Precision, Role, StoreWriter};
use shiftscope_ui::{Intent, Loadable, MistakesView, mistakes_panel};

const N: usize = 24;
const D: usize = 3;
const CLASSES: [&str; 2] = ["cat", "dog"];

/// The decision layer: class 0 reads feature 0, class 1 reads features 1 and 2.
const W: [f32; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0];
const B: [f32; 2] = [0.0, 0.0];

/// Features of image `i` (label `i % 2`): cats have feature 0 high, except on the OOD set
/// where a third of them carry a large feature 2 (the shortcut that makes them dogs).
fn features(ood: bool, i: usize) -> [f32; D] {
    if i.is_multiple_of(2) {
        let spurious = if ood && i.is_multiple_of(3) { 3.0 } else { 0.0 };
        [2.0, 0.1, spurious]
    } else {
        [0.1, 2.0, 0.5]
    }
}

fn write_store(root: &Path) {
    let manifest = Manifest {
        schema_version: shiftscope_store::SCHEMA_VERSION,
        tool_version: "test".into(),
        created_unix: 0,
        model: ModelEntry {
            path: "tiny.onnx".into(),
            sha256: "00".into(),
            adapter: "test".into(),
            preprocessing: serde_json::json!({}),
            input_shape: vec![None, Some(3), Some(4), Some(4)],
        },
        layers: vec![LayerEntry {
            id: String::new(),
            name: "fc1".into(),
            op: "Relu".into(),
            kind: "dense".into(),
            neurons: D,
            pooling: "none".into(),
        }],
        classes: CLASSES.iter().map(|c| (*c).to_string()).collect(),
        thumb: 2,
        precision: Precision::F32,
        datasets: vec![],
        shard: None,
    };
    let mut store = StoreWriter::create(root, manifest).unwrap();
    for (name, role, ood) in [("id", Role::Id, false), ("ood", Role::Ood, true)] {
        let labels: Vec<i32> = (0..N).map(|i| (i % 2) as i32).collect();
        let feats: Vec<f32> = (0..N).flat_map(|i| features(ood, i)).collect();
        let logits: Vec<f32> = feats
            .chunks(D)
            .flat_map(|f| (0..2).map(|c| B[c] + (0..D).map(|j| W[c * D + j] * f[j]).sum::<f32>()))
            .collect();
        let thumbs: Vec<u8> = (0..N * 12).map(|p| (p % 256) as u8).collect();
        let mut writer = store
            .dataset(name, "test", BTreeMap::new(), role, N)
            .unwrap();
        writer
            .write_rows(0, &labels, &logits, &thumbs, &[&feats])
            .unwrap();
        writer.commit(N).unwrap();
        writer.finish(&mut store).unwrap();
    }
}

fn report() -> RepairReport {
    RepairReport {
        method: RepairMethod::Zero,
        layer: "fc1".into(),
        neurons: vec![2],
        store_before: "tiny".into(),
        store_after: "tiny-repaired".into(),
        model_after: "tiny-repaired.onnx".into(),
        note: "zeroed the outgoing weights".into(),
        classes: CLASSES.iter().map(|c| (*c).to_string()).collect(),
        datasets: vec![
            DatasetComparison {
                name: "id".into(),
                role: "id".into(),
                before: Some(1.0),
                after: Some(0.95),
                per_class: vec![(Some(1.0), Some(1.0)), (Some(1.0), Some(0.9))],
            },
            DatasetComparison {
                name: "ood".into(),
                role: "ood".into(),
                before: Some(0.75),
                after: Some(0.9),
                per_class: vec![(Some(0.5), Some(1.0)), (Some(1.0), Some(0.8))],
            },
        ],
    }
}

#[test]
fn the_panel_lists_the_neurons_behind_the_mistakes_and_the_repair() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tiny");
    write_store(&root);
    let analysis = Analysis::open(&root, AnalysisParams::default())
        .unwrap()
        .with_threads(1);
    let linear = Linear {
        weights: &W,
        bias: &B,
    };
    let view = MistakesView::load(&analysis, 0, 0, linear, 3).unwrap();
    // ID: no cat mistakes. OOD: the cats with the shortcut (i = 0, 6, 12, 18) are dogs.
    assert_eq!(view.datasets.len(), 2);
    assert_eq!(view.datasets[0].mistakes.mistakes, 0);
    let ood = &view.datasets[1].mistakes;
    assert_eq!((ood.images, ood.mistakes), (12, 4));
    // Fixing them needs more of feature 0 and less of features 1 and 2.
    assert_eq!(
        ood.insufficient
            .iter()
            .map(|n| n.neuron)
            .collect::<Vec<_>>(),
        vec![0]
    );
    let excessive: Vec<usize> = ood.excessive.iter().map(|n| n.neuron).collect();
    assert!(excessive.contains(&2), "{excessive:?}");
    assert_eq!(view.datasets[1].agreement, Some(1.0));
    // Every listed neuron has its top images, with thumbnails.
    for (_, ids) in &view.datasets[1].top_images {
        assert!(!ids.is_empty());
        assert!(ids.iter().all(|id| view.thumbs.contains_key(id)));
    }
    let view = Loadable::Ready(view.with_repair(report()));

    let mut harness = Harness::builder().with_size([520.0, 900.0]).build_ui_state(
        |ui, intents: &mut Vec<Intent>| {
            intents.extend(mistakes_panel(ui, &view));
        },
        Vec::new(),
    );
    harness.run();
    harness.get_by_label("id: 0 of 12 misclassified");
    harness.get_by_label("ood: 4 of 12 misclassified");
    harness.get_by_label("No mistakes on this class.");
    harness.get_by_label("fc1:2").click();
    harness.run();
    assert_eq!(
        harness.state().last(),
        Some(&Intent::SelectNeuron(NeuronId {
            layer: 0,
            neuron: 2
        }))
    );
    harness.get_by_label("dog").click();
    harness.run();
    assert_eq!(
        harness.state().last(),
        Some(&Intent::SelectClass(ClassId(1)))
    );
    // A top image of the first insufficient neuron opens that image.
    let first = view_first_image(&view);
    clicking_opens(&mut harness, first);
    // The repair: both accuracies side by side and the change.
    harness.get_by_label("Repair of fc1:2: zeroed the outgoing weights");
    harness.get_by_label("75.0%");
    harness.get_by_label("90.0%");
    harness.get_by_label("+15.00");
    harness.get_by_label("-5.00");

    // In a narrow panel each strip shows what fits, at least one image, and counts the
    // rest, instead of running past the panel's edge.
    let mut narrow = Harness::builder().with_size([300.0, 900.0]).build_ui_state(
        |ui, intents: &mut Vec<Intent>| {
            intents.extend(mistakes_panel(ui, &view));
        },
        Vec::new(),
    );
    narrow.run();
    let counted = (1..=10).any(|k| narrow.query_all_by_label(&format!("+{k}")).next().is_some());
    assert!(counted, "no '+N' for the top images left out");
    clicking_opens(&mut narrow, first);

    // While it loads, the panel says so and emits nothing.
    let loading: Loadable<MistakesView> = Loadable::Loading("explaining".into());
    let mut h = Harness::builder().with_size([520.0, 300.0]).build_ui_state(
        |ui, intents: &mut Vec<Intent>| {
            intents.extend(mistakes_panel(ui, &loading));
        },
        Vec::new(),
    );
    h.step();
    h.get_by_label("loading mistakes…");
    assert!(h.state().is_empty());
}

/// Clicking the thumbnail of `image` (the first, as the same image may top several neurons'
/// strips) asks for that image.
fn clicking_opens(harness: &mut Harness<'_, Vec<Intent>>, image: shiftscope_analysis::ImageId) {
    harness
        .get_all_by_label(&format!("ood#{}", image.index))
        .next()
        .unwrap()
        .click();
    harness.run();
    assert_eq!(harness.state().last(), Some(&Intent::SelectImage(image)));
}

fn view_first_image(view: &Loadable<MistakesView>) -> shiftscope_analysis::ImageId {
    let Loadable::Ready(v) = view else {
        panic!("not ready")
    };
    let d = &v.datasets[1];
    let n = d.mistakes.insufficient[0].neuron;
    d.top_images.iter().find(|(x, _)| *x == n).unwrap().1[0]
}
