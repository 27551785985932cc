//! The panels in the headless egui_kittest harness over a small real store: find widgets by
//! label, click, and check the intents they emit and the state after applying them. Also
//! the view model's loading, the table's order and filter, and the CSV export.

// Helpers outside #[test] functions unwrap too: any failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use shiftscope_analysis::{Analysis, AnalysisParams, ClassId, ImageId, NeuronId};
use shiftscope_store::{LayerEntry, Manifest, ModelEntry, Precision, Role, StoreWriter};
use shiftscope_ui::{
    Column, Intent, LoadOptions, Loadable, Panel, Score, UiState, ViewModel, category_panel,
    image_panel, nav_bar, neuron_panel, overview_panel, study_panel, table,
};

const N: usize = 40;
const CLASSES: [&str; 4] = ["cat", "dog", "bird", "fish"];
const LAYERS: [(&str, usize); 2] = [("conv1", 4), ("fc1", 6)];
const THUMB: usize = 4;

/// Predicted class of image `i` of dataset `ood` (label `i % 4`): on the ID set cats are
/// right but for one taken as a dog; on the OOD set most cats are taken as birds (the planted
/// confusion), two as dogs.
fn predicted(ood: bool, i: usize) -> usize {
    let label = i % 4;
    match (ood, label) {
        (false, 0) if i == 4 => 1,
        (true, 0) if i == 0 || i == 8 => 1,
        (true, 0) => 2,
        _ => label,
    }
}

fn activation(ood: bool, layer: usize, i: usize, j: usize) -> f32 {
    let label = i % 4;
    let base = ((i * 7 + j * 3 + layer * 5) % 11) as f32;
    let class = if label == j % 4 { 5.0 } else { 0.0 };
    let shift = if ood && j.is_multiple_of(2) { 2.0 } else { 0.0 };
    base + class + shift
}

fn write_store(root: &Path) {
    let manifest = Manifest {
        schema_version: shiftscope_store::SCHEMA_VERSION,
        tool_version: "test".into(),
        created_unix: 0,
        model: ModelEntry {
            path: "models/tiny.onnx".into(),
            sha256: "00".into(),
            adapter: "test".into(),
            preprocessing: serde_json::json!({}),
            input_shape: vec![None, Some(3), Some(8), Some(8)],
        },
        layers: LAYERS
            .iter()
            .map(|&(name, neurons)| LayerEntry {
                id: String::new(),
                name: name.into(),
                op: "Relu".into(),
                kind: "dense".into(),
                neurons,
                pooling: "mean".into(),
            })
            .collect(),
        classes: CLASSES.iter().map(|c| (*c).to_string()).collect(),
        thumb: THUMB,
        precision: Precision::F32,
        datasets: vec![],
        shard: None,
    };
    let mut store = StoreWriter::create(root, manifest).unwrap();
    for (name, role, ood) in [("id", Role::Id, false), ("ood", Role::Ood, true)] {
        let labels: Vec<i32> = (0..N).map(|i| (i % 4) as i32).collect();
        let logits: Vec<f32> = (0..N)
            .flat_map(|i| {
                let p = predicted(ood, i);
                // Confidence varies with the index, so the grids have an order.
                (0..4).map(move |c| if c == p { 2.0 + (i % 5) as f32 } else { 0.0 })
            })
            .collect();
        let thumbs: Vec<u8> = (0..N)
            .flat_map(|i| (0..THUMB * THUMB * 3).map(move |p| ((i * 6 + p) % 256) as u8))
            .collect();
        let layers: Vec<Vec<f32>> = LAYERS
            .iter()
            .enumerate()
            .map(|(l, &(_, c))| {
                (0..N * c)
                    .map(|e| activation(ood, l, e / c, e % c))
                    .collect()
            })
            .collect();
        let layers: Vec<&[f32]> = layers.iter().map(Vec::as_slice).collect();
        let mut writer = store
            .dataset(name, "test", BTreeMap::new(), role, N)
            .unwrap();
        writer
            .write_rows(0, &labels, &logits, &thumbs, &layers)
            .unwrap();
        writer.commit(N).unwrap();
        writer.finish(&mut store).unwrap();
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    analysis: Analysis,
    vm: ViewModel,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tiny-store");
    write_store(&root);
    let analysis = Analysis::open(&root, AnalysisParams::default())
        .unwrap()
        .with_threads(1);
    let mut seen = Vec::new();
    let vm = ViewModel::load(&analysis, LoadOptions::default(), |done, all| {
        seen.push((done, all));
    })
    .unwrap();
    assert_eq!(seen.last(), Some(&(2, 2)));
    Fixture {
        _dir: dir,
        analysis,
        vm,
    }
}

/// What a harness keeps between frames: the state and every intent emitted.
struct Rec {
    state: UiState,
    intents: Vec<Intent>,
}

type PanelFn = fn(&mut egui::Ui, &ViewModel, &UiState) -> Vec<Intent>;

/// A side-panel-sized harness running `panel`, applying its intents after each frame.
fn harness<'a>(vm: &'a ViewModel, state: UiState, panel: PanelFn) -> Harness<'a, Rec> {
    Harness::builder().with_size([420.0, 800.0]).build_ui_state(
        move |ui, rec: &mut Rec| {
            let intents = panel(ui, vm, &rec.state);
            rec.state.apply_all(&intents);
            rec.intents.extend(intents);
        },
        Rec {
            state,
            intents: Vec::new(),
        },
    )
}

fn fc1(neuron: usize) -> NeuronId {
    NeuronId { layer: 1, neuron }
}

fn fresh(vm: &ViewModel) -> UiState {
    UiState::new(vm.reference, vm.normaliser, vm.layers.len())
}

#[test]
fn view_model_holds_datasets_layers_and_every_neuron() {
    let f = fixture();
    let vm = &f.vm;
    assert_eq!(vm.store, "tiny-store");
    assert_eq!(vm.model, "tiny.onnx");
    assert_eq!(vm.datasets.len(), 2);
    assert_eq!(
        (vm.reference, vm.normaliser, vm.ood.as_slice()),
        (0, 0, &[1][..])
    );
    assert_eq!(vm.neurons.len(), 10);
    assert_eq!(vm.layer_start, vec![0, 4]);
    assert_eq!(vm.row(fc1(3)).unwrap().id, fc1(3));
    assert!(vm.row(fc1(6)).is_none());
    // ID accuracy 39/40, OOD 40 − 10 cats = 30/40.
    assert_eq!(vm.datasets[0].accuracy, Some(39.0 / 40.0));
    assert_eq!(vm.datasets[1].accuracy, Some(30.0 / 40.0));
    assert!((vm.datasets[1].drop.unwrap() - 0.225).abs() < 1e-9);
    assert_eq!(vm.profile.len(), 2);
}

#[test]
fn missing_details_are_marked_loading_then_filled() {
    let mut f = fixture();
    let mut state = fresh(&f.vm);
    assert!(f.vm.missing(&state).is_empty());
    state.apply(&Intent::SelectNeuron(fc1(2)));
    let fills = f.vm.missing(&state);
    assert_eq!(fills, vec![shiftscope_ui::Fill::Neuron(fc1(2))]);
    assert!(matches!(f.vm.neuron, Loadable::Loading(_)));
    // Asked again while loading: nothing new.
    assert!(f.vm.missing(&state).is_empty());
    let filled = fills[0].run(&f.analysis, f.vm.options).unwrap();
    f.vm.put(filled);
    let d = f.vm.neuron.ready().unwrap();
    assert_eq!(d.columns.len(), 2);
    assert!(!d.columns[0].top.is_empty());
    assert!(
        d.columns
            .iter()
            .flat_map(|c| &c.top)
            .all(|t| f.vm.thumbs.contains_key(&t.0))
    );
    assert_eq!(d.columns[0].histogram.counts.iter().sum::<u64>(), N as u64);
    assert!(f.vm.missing(&state).is_empty());
}

#[test]
fn neuron_panel_waits_then_thumbnails_select_images() {
    let mut f = fixture();
    let mut state = fresh(&f.vm);
    state.apply(&Intent::SelectNeuron(fc1(3)));
    // Not filled yet: a spinner and a note.
    {
        let mut vm = f.vm.clone();
        vm.missing(&state);
        let h = harness(&vm, state.clone(), neuron_panel);
        h.get_by_label("loading neuron…");
    }
    f.vm.fill_now(&f.analysis, &state);
    let top = f.analysis.neuron(fc1(3)).unwrap().top_images;
    let ood_first = top[1][0].0;
    assert_eq!(ood_first.dataset, 1);
    let mut h = harness(&f.vm, state, neuron_panel);
    h.run();
    h.get_by_label("Neuron fc1:3");
    h.get_by_label("id (lead)");
    // The shift scores: a column per score, a row per shifted dataset.
    for header in ["vs", "spurious", "novelty", "shift"] {
        h.get_by_label(header);
    }
    let scores = &f.vm.neuron.ready().unwrap().scores.shifts[0];
    let spurious = format!("{:.3}", scores.spurious.expect("a spurious score"));
    assert!(
        h.query_all_by_label(&spurious).count() >= 1,
        "no {spurious} in the shift scores"
    );
    h.get_by_label(&format!("ood#{}", ood_first.index)).click();
    h.run();
    let rec = h.state();
    assert_eq!(rec.intents, vec![Intent::SelectImage(ood_first)]);
    assert_eq!(rec.state.image(), Some(ood_first));
    assert_eq!(rec.state.panel(), Some(Panel::Image));
    assert_eq!(rec.state.neuron(), Some(fc1(3)));
}

#[test]
fn neuron_panel_top_class_opens_the_category() {
    let mut f = fixture();
    let mut state = fresh(&f.vm);
    state.apply(&Intent::SelectNeuron(fc1(1)));
    f.vm.fill_now(&f.analysis, &state);
    let d = f.vm.neuron.ready().unwrap();
    let class = d.columns[0].top_classes[0].0;
    // fc1:1 fires for dogs (label == j % 4).
    assert_eq!(class, ClassId(1));
    let mut h = harness(&f.vm, state, neuron_panel);
    h.get_all_by_label("dog").next().unwrap().click();
    h.run();
    assert_eq!(h.state().intents, vec![Intent::SelectClass(ClassId(1))]);
    assert_eq!(h.state().state.class(), Some(ClassId(1)));
}

#[test]
fn study_search_selects_a_neuron_and_reports_bad_queries() {
    let f = fixture();
    let mut h = harness(&f.vm, fresh(&f.vm), study_panel);
    let edit = h.get_by_role(egui::accesskit::Role::TextInput);
    edit.focus();
    h.run();
    h.get_by_role(egui::accesskit::Role::TextInput)
        .type_text("fc1:3");
    h.run();
    assert_eq!(h.state().state.search, "fc1:3");
    // The table shows that neuron only.
    h.get_by_label("1 of 10 neurons");
    h.get_by_label("Go").click();
    h.run();
    assert_eq!(h.state().state.neuron(), Some(fc1(3)));
    assert!(h.state().intents.contains(&Intent::SelectNeuron(fc1(3))));

    let mut state = fresh(&f.vm);
    state.search = "spurious >> x".into();
    let mut h = harness(&f.vm, state, study_panel);
    h.run();
    h.get_by_label("search: `> x` is not a number");
    h.get_by_label("0 of 10 neurons");
    h.get_by_label("Go").click();
    h.run();
    assert!(h.state().state.neuron().is_none());
}

#[test]
fn study_table_sorts_selects_and_exports() {
    let f = fixture();
    let mut h = harness(&f.vm, fresh(&f.vm), study_panel);
    h.get_by_label("conv1:0");
    h.get_by_label("fc1:5").click();
    h.run();
    assert_eq!(h.state().state.neuron(), Some(fc1(5)));
    h.get_by_label("max").click();
    h.run();
    assert_eq!(h.state().state.sort.column, Column::Score(Score::Max));
    assert!(h.state().state.sort.descending);
    h.get_by_label("max ⏷").click();
    h.run();
    assert!(!h.state().state.sort.descending);
    h.get_by_label("Export CSV").click();
    h.run();
    assert_eq!(
        h.state().intents.last(),
        Some(&Intent::ExportNeuronCsv(None))
    );
    // Lead and normaliser radios.
    h.get_by_label("ood").click();
    h.run();
    assert_eq!(h.state().state.lead, 1);
    assert!(h.state().intents.contains(&Intent::SetLead(1)));
}

#[test]
fn table_order_filter_and_csv() {
    let f = fixture();
    let vm = &f.vm;
    let mut state = fresh(vm);
    state.apply(&Intent::SortBy(Column::Score(Score::Max)));
    let rows = table::table_rows(vm, &state).unwrap();
    assert_eq!(rows.len(), 10);
    let maxes: Vec<f32> = rows.iter().map(|&i| vm.neurons[i].max).collect();
    assert!(maxes.windows(2).all(|w| w[0] >= w[1]), "{maxes:?}");

    state.search = "layer == fc1 && max > 0".into();
    let rows = table::table_rows(vm, &state).unwrap();
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|&i| vm.neurons[i].id.layer == 1));

    let mut csv = Vec::new();
    let written = table::write_neuron_csv(vm, &state, &mut csv).unwrap();
    assert_eq!(written, 6);
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "layer,layer_name,neuron,max,rafegas,morcos,spurious[ood],novelty[ood],shift[ood]"
    );
    assert_eq!(lines.len(), 7);
    // Same order as the table.
    for (line, &i) in lines[1..].iter().zip(&rows) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), 9);
        assert_eq!(cells[1], "fc1");
        assert_eq!(cells[2], vm.neurons[i].id.neuron.to_string());
        assert_eq!(cells[3].parse::<f32>().unwrap(), vm.neurons[i].max);
    }
    state.search = "bogus > 1".into();
    assert!(table::write_neuron_csv(vm, &state, Vec::new()).is_err());
}

#[test]
fn image_panel_links_neurons_images_and_classes() {
    let mut f = fixture();
    let mut state = fresh(&f.vm);
    let image = ImageId {
        dataset: 0,
        index: 5,
    };
    state.apply(&Intent::SelectImage(image));
    f.vm.fill_now(&f.analysis, &state);
    let d = f.vm.image.ready().unwrap();
    assert_eq!(d.truth, Some(ClassId(1)));
    // Five asked for, four classes.
    assert_eq!(d.predictions.len(), 4);
    assert_eq!(d.predictions[0].class, ClassId(1));
    assert!(d.comparison.is_some(), "the OOD set follows row 5");
    let top = d.top_neurons[0].value.neuron;
    assert_eq!(top.layer, 1);
    let mut h = harness(&f.vm, state, image_panel);
    h.run();
    h.get_by_label("Image id#5");
    h.get_by_label("truth");
    h.get_by_label(&f.vm.neuron_name(top)).click();
    h.run();
    assert_eq!(h.state().intents, vec![Intent::SelectNeuron(top)]);
    assert_eq!(h.state().state.neuron(), Some(top));
    // The follower: the same row on the OOD set.
    h.get_all_by_label("ood#5").next().unwrap().click();
    // The new image's detail is not filled here: the panel spins (and keeps repainting).
    h.run_steps(2);
    h.get_by_label("loading image…");
    assert_eq!(
        h.state().state.image(),
        Some(ImageId {
            dataset: 1,
            index: 5
        })
    );
    // History: back to id#5, then forward again.
    h.state_mut().state.apply(&Intent::Back);
    assert_eq!(h.state().state.image(), Some(image));
    h.state_mut().state.apply(&Intent::Back);
    assert_eq!(h.state().state.image(), Some(image));
    assert_eq!(h.state().state.neuron(), None);
}

#[test]
fn category_shows_the_planted_confusion_first() {
    let mut f = fixture();
    let mut state = fresh(&f.vm);
    state.apply(&Intent::SetLead(1));
    state.apply(&Intent::SelectClass(ClassId(0)));
    f.vm.fill_now(&f.analysis, &state);
    let d = f.vm.class.ready().unwrap();
    let groups = &d.view.datasets[1].false_negatives;
    assert_eq!(groups[0].confused_with, ClassId(2));
    assert_eq!(d.pairwise.as_ref().unwrap().b, ClassId(2));
    let mut h = harness(&f.vm, state, category_panel);
    h.run();
    h.get_by_label("Category cat");
    h.get_by_label("on ood");
    let bird = h.get_by_label("bird (8)").rect();
    let dog = h.get_by_label("dog (2)").rect();
    assert!(bird.top() < dog.top(), "largest confusion first");
    h.get_by_label("pairwise: cat vs bird");
    h.get_by_label("dog (2)").click();
    h.run();
    assert_eq!(h.state().intents, vec![Intent::SelectPair(ClassId(1))]);
    assert_eq!(h.state().state.view.pair, Some(ClassId(1)));
    // The pair changed: the detail is asked for again.
    let st = h.state().state.clone();
    drop(h);
    assert_eq!(f.vm.missing(&st).len(), 1);
}

#[test]
fn overview_and_nav_bar() {
    let f = fixture();
    let mut h = harness(&f.vm, fresh(&f.vm), overview_panel);
    h.run();
    h.get_by_label("layer shift profile vs ood (each line on its own scale)");
    h.get_by_label("score histograms of fc1");
    h.get_by_label("conv1").click();
    h.run();
    assert_eq!(h.state().state.layer, 0);
    h.get_by_label("score histograms of conv1");

    let mut state = fresh(&f.vm);
    for n in 0..3 {
        state.apply(&Intent::SelectNeuron(fc1(n)));
    }
    let mut h = harness(&f.vm, state, nav_bar);
    h.get_by_label("◀ Back").click();
    h.run();
    h.get_by_label("◀ Back").click();
    h.run();
    assert_eq!(h.state().state.neuron(), Some(fc1(0)));
    h.get_by_label("Forward ▶").click();
    h.run();
    assert_eq!(h.state().state.neuron(), Some(fc1(1)));
    h.get_by_label("Overview").click();
    h.run();
    assert_eq!(h.state().state.panel(), Some(Panel::Overview));
    h.get_by_label("Export PNG").click();
    h.run();
    assert_eq!(
        h.state().intents,
        vec![
            Intent::Back,
            Intent::Back,
            Intent::Forward,
            Intent::ShowPanel(Panel::Overview),
            Intent::ExportPng
        ]
    );
}

#[test]
fn study_table_is_virtualised_for_a_hundred_thousand_neurons() {
    let f = fixture();
    let mut vm = f.vm.clone();
    let big = 100_000;
    vm.layers[1].neurons = big;
    let template = vm.neurons[4].clone();
    vm.neurons.truncate(4);
    vm.neurons
        .extend((0..big).map(|n| shiftscope_ui::NeuronRow {
            id: fc1(n),
            max: (n % 977) as f32,
            ..template.clone()
        }));
    let mut state = fresh(&vm);
    state.apply(&Intent::SortBy(Column::Score(Score::Max)));
    let mut h = harness(&vm, state, study_panel);
    let start = std::time::Instant::now();
    h.run();
    h.step();
    h.get_by_label(&format!("{} of {} neurons", big + 4, big + 4));
    // Only the visible rows are widgets; the largest max comes first.
    h.get_by_label("fc1:976");
    assert!(h.query_by_label("fc1:50000").is_none());
    assert!(h.get_all_by_role(egui::accesskit::Role::Button).count() < 200);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn live_panel_runs_a_file_and_links_neurons_and_channel_maps() {
    use shiftscope_ui::{ChannelMaps, LiveView, live_panel};
    let mut f = fixture();
    let mut state = fresh(&f.vm);
    state.apply(&Intent::SetLayer(1));
    // Nothing run yet: a path typed and Run asks for it.
    {
        let mut h = harness(&f.vm, state.clone(), live_panel);
        h.run();
        h.get_by_label("Run").click();
        h.run();
        assert!(h.state().intents.is_empty(), "no path, nothing to run");
        h.get_by_role(egui::accesskit::Role::TextInput).focus();
        h.run();
        h.get_by_role(egui::accesskit::Role::TextInput)
            .type_text("digits/seven.png");
        h.run();
        h.get_by_label("Run").click();
        h.run();
        assert_eq!(
            h.state().intents,
            vec![Intent::RunLive("digits/seven.png".into())]
        );
    }
    // A result: fc1's neuron 4 fires most (relative to its ID maximum).
    let maxima: Vec<f32> = (0..6).map(|i| f.vm.neurons[4 + i].max).collect();
    let fc1_values: Vec<f32> = (0..6)
        .map(|i| {
            if i == 4 {
                maxima[i] * 0.9
            } else {
                maxima[i] * 0.1
            }
        })
        .collect();
    let live = LiveView {
        generation: 1,
        name: "seven.png".into(),
        rgb: vec![128; 8 * 8 * 3],
        width: 8,
        height: 8,
        predictions: LiveView::top5(&[0.1, 3.0, 0.2, 1.0]),
        layers: vec![vec![1.0; 4], fc1_values],
        maps: Some(ChannelMaps {
            layer: 1,
            channels: 6,
            height: 2,
            width: 2,
            values: (0..24).map(|v| v as f32).collect(),
        }),
    };
    // Softmax by hand: dog first.
    let e: Vec<f32> = [0.1f32, 3.0, 0.2, 1.0].iter().map(|v| v.exp()).collect();
    let p_dog = e[1] / e.iter().sum::<f32>();
    assert_eq!(live.predictions[0].0, ClassId(1));
    assert!((live.predictions[0].1 - p_dog).abs() < 1e-6);
    assert_eq!(live.top_neurons(&f.vm, 1, 3)[0].0, fc1(4));
    assert!((live.top_neurons(&f.vm, 1, 3)[0].1 - 0.9).abs() < 1e-5);
    f.vm.live = Loadable::Ready(live);
    let mut h = harness(&f.vm, state, live_panel);
    h.run();
    // The image (its alt text) and its name.
    assert_eq!(h.get_all_by_label("seven.png").count(), 2);
    h.get_by_label(&format!("dog {:.1}%", p_dog * 100.0));
    h.get_by_label_contains("6 channel maps of fc1 (2×2)");
    // The top neuron is a link.
    h.get_by_label_contains(&format!("{} ", f.vm.neuron_name(fc1(4))))
        .click();
    h.run();
    assert_eq!(h.state().intents, vec![Intent::SelectNeuron(fc1(4))]);
    // So is every channel map.
    h.get_by_label(&format!("map {}", f.vm.neuron_name(fc1(2))))
        .click();
    h.run();
    assert_eq!(h.state().state.neuron(), Some(fc1(2)));
    // Another layer's maps are not here yet: the panel says it is computing them.
    h.state_mut().state.apply(&Intent::SetLayer(0));
    h.run_steps(2);
    h.get_by_label("computing this layer's channel maps…");
}

#[test]
fn neuron_panel_shows_cached_colour_selectivity_and_nf_else_asks_to_compute() {
    let mut f = fixture();
    let store = f.analysis.store();
    let root = f
        .analysis
        .cache_dir()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let (layer, dataset) = (&store.manifest().layers[1], &store.manifest().datasets[0]);
    // fc1's features on the ID set as `shiftscope features` would cache them: neuron 3 has
    // CSI 0.75 (clipped 0.7) and a 2×1 Neuron Feature, red over blue; neuron 5 none.
    let neurons = 6;
    let mut nf = vec![0u8; neurons * 2 * 3];
    nf[3 * 6..4 * 6].copy_from_slice(&[255, 0, 0, 0, 0, 255]);
    let features = shiftscope_features::LayerFeatures {
        layer_id: layer.id.clone(),
        layer: layer.name.clone(),
        dataset_id: dataset.id.clone(),
        dataset: 0,
        top: 100,
        rows: N,
        csi: (0..neurons).map(|n| (n == 3).then_some(0.75)).collect(),
        csi_clipped: (0..neurons).map(|n| (n == 3).then_some(0.7)).collect(),
        images: vec![10; neurons],
        receptive_field: None,
        nf_size: [2, 1],
        has_nf: (0..neurons).map(|n| n == 3).collect(),
        notes: vec!["fc1 is a dense layer: Neuron Features average whole images".into()],
        nf,
    };
    features.save(&root).unwrap();

    let mut state = fresh(&f.vm);
    state.apply(&Intent::SelectNeuron(fc1(3)));
    f.vm.fill_now(&f.analysis, &state);
    let d = f.vm.neuron.ready().unwrap();
    assert_eq!(d.features.len(), 1);
    assert_eq!(d.features[0].csi, Some(0.75));
    assert_eq!(
        d.features[0].image,
        Some((2, 1, vec![255, 0, 0, 0, 0, 255]))
    );
    {
        let mut h = harness(&f.vm, state, neuron_panel);
        h.run();
        h.get_by_label("id · top 100");
        h.get_by_label("CSI 0.750");
        h.get_by_label("clipped 0.700");
        h.get_by_label("Neuron Feature of fc1:3 on id");
        h.get_by_label("fc1 is a dense layer: Neuron Features average whole images");
        assert!(h.query_by_label("Compute on id (top 100)").is_none());
    }

    // conv1 has none: the panel asks the host to compute them on the lead dataset.
    let mut state = fresh(&f.vm);
    let conv = NeuronId {
        layer: 0,
        neuron: 2,
    };
    state.apply(&Intent::SelectNeuron(conv));
    f.vm.fill_now(&f.analysis, &state);
    assert!(f.vm.neuron.ready().unwrap().features.is_empty());
    let mut h = harness(&f.vm, state, neuron_panel);
    h.run();
    h.get_by_label("not computed for this layer yet");
    h.get_by_label("Compute on id (top 100)").click();
    h.run();
    assert_eq!(
        h.state().intents,
        vec![Intent::ComputeFeatures {
            layer: 0,
            dataset: 0,
            top: 100
        }]
    );
    // Colour selectivity is a colour-by measure.
    assert!(shiftscope_ui::Measure::ALL.contains(&shiftscope_ui::Measure::ColourSelectivity));
}
