//! A report of a small real store written with the store crate: one ID and one OOD dataset,
//! the OOD set built so that one neuron's class profile is scrambled (clearly spurious), one
//! mildly scrambled, and the others unchanged; every file is checked.

// Helpers outside #[test] functions unwrap too: any failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use shiftscope_analysis::{Analysis, AnalysisParams, spearman};
use shiftscope_report::{Progress, ReportOptions, write_report, write_report_with_progress};
use shiftscope_store::{LayerEntry, Manifest, ModelEntry, Precision, Role, StoreWriter};

const CLASSES: usize = 8;
const PER_CLASS: usize = 12;
/// Neurons of the two layers.
const NEURONS: [usize; 2] = [6, 10];
/// The planted neurons: (layer, neuron, class permutation on OOD).
const SCRAMBLED: (usize, usize) = (1, 7);
const MILD: (usize, usize) = (0, 2);
/// A permutation of 8 classes whose Spearman correlation with the identity is near 0.
const SCRAMBLE: [usize; CLASSES] = [3, 7, 0, 5, 1, 6, 2, 4];
/// Two swapped neighbours: still strongly correlated.
const MILD_SWAP: [usize; CLASSES] = [1, 0, 2, 3, 4, 5, 6, 7];

/// A tiny deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Every neuron's activation on an image of class `c`: a class profile (neuron-specific,
/// strictly ordered over classes) plus a little noise; on OOD the planted neurons see the
/// profile of a permuted class.
fn activation(layer: usize, neuron: usize, class: usize, ood: bool, rng: &mut Rng) -> f32 {
    let effective = match ((layer, neuron), ood) {
        (SCRAMBLED, true) => SCRAMBLE[class],
        (MILD, true) => MILD_SWAP[class],
        _ => class,
    };
    // Rotate the profile per neuron so that top classes differ between neurons.
    let rank = (effective + neuron * 3 + layer) % CLASSES;
    1.0 + rank as f32 + 0.05 * rng.unit()
}

fn write_store(root: &Path) {
    let manifest = Manifest {
        schema_version: shiftscope_store::SCHEMA_VERSION,
        tool_version: "test".into(),
        created_unix: 0,
        model: ModelEntry {
            path: "m.onnx".into(),
            sha256: "0123456789abcdef".into(),
            adapter: "test".into(),
            preprocessing: serde_json::json!({}),
            input_shape: vec![None, Some(3), Some(8), Some(8)],
        },
        layers: NEURONS
            .iter()
            .enumerate()
            .map(|(i, &n)| LayerEntry {
                id: String::new(),
                name: format!("block{i}/relu"),
                op: "Relu".into(),
                kind: "dense".into(),
                neurons: n,
                pooling: "mean".into(),
            })
            .collect(),
        classes: (0..CLASSES).map(|c| format!("class{c}")).collect(),
        thumb: 2,
        precision: Precision::F32,
        datasets: vec![],
        shard: None,
    };
    let mut store = StoreWriter::create(root, manifest).unwrap();
    let mut rng = Rng(5);
    for (name, role) in [("toy/id", Role::Id), ("toy/shifted", Role::Ood)] {
        let ood = role == Role::Ood;
        let n = CLASSES * PER_CLASS;
        let labels: Vec<i32> = (0..n).map(|i| (i % CLASSES) as i32).collect();
        // Logits: right on ID, right on every other image on OOD.
        let logits: Vec<f32> = (0..n)
            .flat_map(|i| {
                let truth = i % CLASSES;
                let predicted = if ood && i % 2 == 1 {
                    (truth + 1) % CLASSES
                } else {
                    truth
                };
                (0..CLASSES).map(move |c| if c == predicted { 4.0 } else { 0.0 })
            })
            .collect();
        let layers: Vec<Vec<f32>> = NEURONS
            .iter()
            .enumerate()
            .map(|(l, &c)| {
                (0..n * c)
                    .map(|e| activation(l, e % c, (e / c) % CLASSES, ood, &mut rng))
                    .collect()
            })
            .collect();
        let mut writer = store
            .dataset(name, "test", BTreeMap::new(), role, n)
            .unwrap();
        let thumbs = vec![0u8; n * 2 * 2 * 3];
        let slices: Vec<&[f32]> = layers.iter().map(Vec::as_slice).collect();
        writer
            .write_rows(0, &labels, &logits, &thumbs, &slices)
            .unwrap();
        writer.commit(n).unwrap();
        writer.finish(&mut store).unwrap();
    }
}

/// Splits a CSV line (the report quotes no cell of this store).
fn cells(line: &str) -> Vec<&str> {
    line.split(',').collect()
}

/// Decodes a PNG: (width, height, RGB pixels).
fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    pixels.truncate(info.buffer_size());
    (info.width, info.height, pixels)
}

#[test]
fn the_planted_permutations_are_what_the_test_says() {
    let identity: Vec<f32> = (0..CLASSES).map(|c| c as f32).collect();
    let scrambled: Vec<f32> = SCRAMBLE.iter().map(|&c| c as f32).collect();
    let mild: Vec<f32> = MILD_SWAP.iter().map(|&c| c as f32).collect();
    let strong = 1.0 - spearman(&identity, &scrambled).unwrap().abs();
    let weak = 1.0 - spearman(&identity, &mild).unwrap().abs();
    assert!(strong > 0.7, "{strong}");
    assert!(weak < 0.1, "{weak}");
}

#[test]
fn the_report_writes_every_file_and_finds_the_planted_neuron() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    write_store(&store);
    let analysis = Analysis::open(&store, AnalysisParams::default()).unwrap();
    // SHIFTSCOPE_REPORT_OUT=<dir> keeps this report, to look at its figures.
    let out = std::env::var_os("SHIFTSCOPE_REPORT_OUT")
        .map_or_else(|| dir.path().join("report"), std::path::PathBuf::from);
    let mut steps = Vec::new();
    let summary =
        write_report_with_progress(&analysis, &out, &ReportOptions::default(), &mut |p| {
            steps.push(p);
        })
        .unwrap();
    let layers_announced = steps
        .iter()
        .filter(|p| matches!(p, Progress::Layer { .. }))
        .count();
    assert_eq!(layers_announced, NEURONS.len());

    let total: usize = NEURONS.iter().sum();
    assert_eq!(summary.layers, 2);
    assert_eq!(summary.neurons, total);
    assert_eq!(summary.images, 2 * CLASSES * PER_CLASS);
    for name in [
        "summary.md",
        "neurons.csv",
        "images.csv",
        "layer_profile.png",
        "hist_spurious.png",
        "hist_novelty.png",
        "hist_shift.png",
        "heatmap_layer00.png",
        "heatmap_layer01.png",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
        assert!(summary.files.contains(&out.join(name)), "{name} not listed");
    }

    // neurons.csv: a header and one row per neuron; the planted neuron is the most spurious.
    let neurons = std::fs::read_to_string(out.join("neurons.csv")).unwrap();
    let mut lines = neurons.lines();
    let header = cells(lines.next().unwrap());
    assert_eq!(
        header,
        [
            "layer",
            "layer_name",
            "neuron",
            "normaliser_max",
            "silent",
            "spurious[toy/shifted]",
            "novelty[toy/shifted]",
            "shift[toy/shifted]",
            "rafegas[toy/id]",
            "morcos[toy/id]",
            "rafegas[toy/shifted]",
            "morcos[toy/shifted]",
            "top_classes",
        ]
    );
    let rows: Vec<Vec<&str>> = lines.map(cells).collect();
    assert_eq!(rows.len(), total);
    assert!(rows.iter().all(|r| r.len() == header.len()));
    let spurious = |r: &Vec<&str>| r[5].parse::<f32>().unwrap();
    let best = rows
        .iter()
        .max_by(|a, b| spurious(a).total_cmp(&spurious(b)))
        .unwrap();
    assert_eq!(
        (best[0], best[2]),
        ("1", "7"),
        "most spurious row: {best:?}"
    );
    for r in &rows {
        let planted = (r[0], r[2]) == ("1", "7") || (r[0], r[2]) == ("0", "2");
        if !planted {
            assert!(spurious(r) < 1e-6, "unplanted neuron spurious: {r:?}");
        }
        assert_eq!(r[4], "false");
        assert_eq!(r[12].split(';').count(), 5, "{r:?}");
    }

    // images.csv: every image of both datasets, half of the OOD ones wrong.
    let images = std::fs::read_to_string(out.join("images.csv")).unwrap();
    let mut lines = images.lines();
    assert_eq!(
        lines.next().unwrap(),
        "dataset,index,label,label_name,prediction,prediction_name,confidence,correct"
    );
    let rows: Vec<Vec<&str>> = lines.map(cells).collect();
    assert_eq!(rows.len(), 2 * CLASSES * PER_CLASS);
    let wrong = |set: &str| {
        rows.iter()
            .filter(|r| r[0] == set && r[7] == "false")
            .count()
    };
    assert_eq!(wrong("toy/id"), 0);
    assert_eq!(wrong("toy/shifted"), CLASSES * PER_CLASS / 2);
    assert!(rows.iter().all(|r| r[6].parse::<f32>().unwrap() > 0.5));

    // summary.md: accuracy and drop, the planted neuron first among the most spurious.
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("| 100.0 %"), "{md}");
    assert!(md.contains("| 50.0 %"), "{md}");
    assert!(md.contains("+50.0 pt"), "{md}");
    let section = md
        .split("most spurious neurons")
        .nth(1)
        .expect("a most-spurious section");
    let first = section
        .lines()
        .find(|l| l.starts_with("| 1 |"))
        .expect("a first row");
    assert!(first.contains("`1:7`"), "{first}");
    assert!(md.contains("most novel neurons"), "{md}");
    assert!(
        md.contains("![Layer shift profile](layer_profile.png)"),
        "{md}"
    );
    assert!(md.contains("(heatmap_layer01.png)"), "{md}");
    assert!(md.contains("Silent neurons"), "{md}");

    // The figures decode, have a sensible size and are not blank.
    for name in [
        "layer_profile.png",
        "hist_spurious.png",
        "hist_novelty.png",
        "hist_shift.png",
        "heatmap_layer00.png",
        "heatmap_layer01.png",
    ] {
        let (w, h, pixels) = decode(&out.join(name));
        assert!(w >= 400 && h >= 300, "{name}: {w}×{h}");
        let first = &pixels[..3];
        let differing = pixels.chunks(3).filter(|p| p != &first).count();
        assert!(
            differing > (w * h / 50) as usize,
            "{name}: almost a single colour"
        );
    }
}

#[test]
fn a_second_report_replaces_the_first_and_options_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    write_store(&store);
    let analysis = Analysis::open(&store, AnalysisParams::default()).unwrap();
    let out = dir.path().join("nested/report");
    let options = ReportOptions {
        top: 3,
        heatmap_layers: Some(vec![1]),
        figures: false,
        ..ReportOptions::default()
    };
    write_report(&analysis, &out, &options).unwrap();
    write_report(&analysis, &out, &options).unwrap();
    assert!(!out.join("layer_profile.png").exists());
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("## The 3 most spurious neurons"), "{md}");

    let bad = ReportOptions {
        heatmap_layers: Some(vec![9]),
        ..ReportOptions::default()
    };
    let error = write_report(&analysis, &out, &bad).unwrap_err().to_string();
    assert!(
        error.contains("no layer 9") && error.contains("store"),
        "{error}"
    );
}
