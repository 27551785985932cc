//! Every score against a separate, straightforward implementation written here, on small
//! random stores written to disk with the store crate; hand-worked selectivity examples; the
//! cache's hit, staleness and deletion; the per-image and per-class views.

// Helpers outside #[test] functions unwrap too: any failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use shiftscope_analysis::{
    Analysis, AnalysisParams, ClassId, ImageId, NeuronId, Provenance, morcos_selectivity,
    rafegas_selectivity, spearman,
};
use shiftscope_store::{LayerEntry, Manifest, ModelEntry, Precision, Role, StoreWriter};

/// A tiny deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

struct Dataset {
    name: &'static str,
    role: Role,
    labels: Vec<i32>,
    logits: Vec<f32>,
    layers: Vec<Vec<f32>>,
}

fn write_store(root: &Path, precision: Precision, neurons: &[usize], k: usize, sets: &[Dataset]) {
    let manifest = Manifest {
        schema_version: shiftscope_store::SCHEMA_VERSION,
        tool_version: "test".into(),
        created_unix: 0,
        model: ModelEntry {
            path: "m.onnx".into(),
            sha256: "00".into(),
            adapter: "test".into(),
            preprocessing: serde_json::json!({}),
            input_shape: vec![None, Some(3), Some(8), Some(8)],
        },
        layers: neurons
            .iter()
            .enumerate()
            .map(|(i, &n)| LayerEntry {
                id: String::new(),
                name: format!("layer{i}"),
                op: "Relu".into(),
                kind: "dense".into(),
                neurons: n,
                pooling: "mean".into(),
            })
            .collect(),
        classes: (0..k).map(|c| format!("class{c}")).collect(),
        thumb: 2,
        precision,
        datasets: vec![],
        shard: None,
    };
    let mut store = StoreWriter::create(root, manifest).unwrap();
    for set in sets {
        let n = set.labels.len();
        let mut writer = store
            .dataset(set.name, "test", BTreeMap::new(), set.role, n)
            .unwrap();
        let thumbs = vec![0u8; n * 2 * 2 * 3];
        let layers: Vec<&[f32]> = set.layers.iter().map(Vec::as_slice).collect();
        writer
            .write_rows(0, &set.labels, &set.logits, &thumbs, &layers)
            .unwrap();
        writer.commit(n).unwrap();
        writer.finish(&mut store).unwrap();
    }
}

/// A random dataset: values quantised to a few levels (ties), about a third exact zeros,
/// neuron 1 never positive (silent when this is the normaliser), one NaN and one +inf.
fn random_dataset(
    rng: &mut Rng,
    name: &'static str,
    role: Role,
    n: usize,
    c: usize,
    k: usize,
) -> Dataset {
    let labels: Vec<i32> = (0..n)
        .map(|i| if i == 3 { -1 } else { rng.below(k) as i32 })
        .collect();
    let logits = (0..n * k).map(|_| rng.unit() * 6.0 - 3.0).collect();
    let layer = (0..n * c)
        .map(|e| {
            let neuron = e % c;
            let level = (rng.below(12) as f32) / 4.0;
            match neuron {
                1 => -level,
                _ if rng.below(3) == 0 => 0.0,
                _ => level + (labels[e / c].max(0) as f32) * 0.25 * (neuron % 3) as f32,
            }
        })
        .collect::<Vec<f32>>();
    let mut layer = layer;
    layer[2 * c + 2] = f32::NAN;
    layer[5 * c + 3] = f32::INFINITY;
    Dataset {
        name,
        role,
        labels,
        logits,
        layers: vec![layer],
    }
}

// ---------- reference implementations: direct, quadratic where that is simplest ----------

fn ref_max(a: &[f32], n: usize, c: usize, j: usize) -> Option<f32> {
    (0..n)
        .map(|i| a[i * c + j])
        .filter(|v| v.is_finite())
        .reduce(f32::max)
}

fn ref_class_mean(a: &[f32], y: &[i32], c: usize, class: usize, j: usize) -> Option<f64> {
    let vals: Vec<f64> = (0..y.len())
        .filter(|&i| y[i] == class as i32)
        .map(|i| f64::from(a[i * c + j]))
        .filter(|v| v.is_finite())
        .collect();
    (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
}

/// Rank = 1 + (number smaller) + (number equal − 1) / 2: average ranks by counting.
fn ref_ranks(x: &[f64]) -> Vec<f64> {
    x.iter()
        .map(|&v| {
            let less = x.iter().filter(|&&w| w < v).count() as f64;
            let equal = x.iter().filter(|&&w| w == v).count() as f64;
            1.0 + less + (equal - 1.0) / 2.0
        })
        .collect()
}

fn ref_spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    let (rx, ry) = (ref_ranks(x), ref_ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    (vx > 0.0 && vy > 0.0).then(|| cov / (vx * vy).sqrt())
}

/// W1 as ∫ |F_a − F_b| over the union of sample points, each CDF counted directly.
fn ref_w1(a: &[f64], b: &[f64]) -> f64 {
    let mut points: Vec<f64> = a.iter().chain(b).copied().collect();
    points.sort_by(f64::total_cmp);
    let cdf = |s: &[f64], x: f64| s.iter().filter(|&&v| v <= x).count() as f64 / s.len() as f64;
    points
        .windows(2)
        .map(|w| (cdf(a, w[0]) - cdf(b, w[0])).abs() * (w[1] - w[0]))
        .sum()
}

fn ref_top_k(a: &[f32], n: usize, c: usize, j: usize, k: usize) -> Vec<(u32, f32)> {
    let mut all: Vec<(u32, f32)> = (0..n)
        .map(|i| (i as u32, a[i * c + j]))
        .filter(|(_, v)| v.is_finite() && *v != 0.0)
        .collect();
    all.sort_by(|x, y| y.1.partial_cmp(&x.1).unwrap().then(x.0.cmp(&y.0)));
    all.truncate(k);
    all
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

fn check_against_references(precision: Precision) {
    let (n_id, n_ood, c, k, top) = (61, 47, 37, 6, 9);
    let mut rng = Rng(7);
    let id = random_dataset(&mut rng, "id", Role::Id, n_id, c, k);
    let ood = random_dataset(&mut rng, "ood", Role::Ood, n_ood, c, k);
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), precision, &[c], k, &[id, ood]);
    // What the store holds (f16 rounds), read back for the references.
    let store = shiftscope_store::Store::open(dir.path()).unwrap();
    let read = |d: usize| {
        let m = store.layer(d, 0).unwrap();
        let (rows, cols) = m.shape();
        (0..rows * cols)
            .map(|e| m.get(e / cols, e % cols))
            .collect::<Vec<f32>>()
    };
    let (a_id, a_ood) = (read(0), read(1));
    let (y_id, y_ood) = (
        store.labels(0).unwrap().to_vec(),
        store.labels(1).unwrap().to_vec(),
    );
    let params = AnalysisParams {
        top_k: top,
        ..AnalysisParams::default()
    };
    let analysis = Analysis::open(dir.path(), params).unwrap().with_threads(3);
    let s = analysis.layer(0).unwrap();
    assert_eq!((s.reference, s.normaliser), (0, 0));
    let shift = s.shift(1).unwrap();
    let mut defined_spurious = 0;
    for j in 0..c {
        let max_id = ref_max(&a_id, n_id, c, j).unwrap();
        assert_eq!(s.normaliser_max[j], max_id, "max of neuron {j}");
        let silent = max_id <= 0.0;
        assert_eq!(s.silent[j], silent, "silent {j}");
        assert_eq!(silent, j == 1);
        // Class means, raw and normalised.
        for (d, (a, y)) in [(&a_id, &y_id), (&a_ood, &y_ood)].into_iter().enumerate() {
            for class in 0..k {
                let want = ref_class_mean(a, y, c, class, j);
                let got = s.datasets[d].class_means.raw(class, j).map(f64::from);
                match (want, got) {
                    (Some(w), Some(g)) => assert!(close(w, g, 1e-5), "mean {d} {class} {j}"),
                    (w, g) => assert_eq!(w.is_some(), g.is_some(), "{d} {class} {j}"),
                }
                let norm = s.class_mean(d, class, j);
                assert_eq!(norm.is_some(), want.is_some() && !silent);
                if let (Some(g), Some(w)) = (norm, want) {
                    assert!(close(f64::from(g), w / f64::from(max_id), 1e-5));
                }
            }
            // Top-k.
            let n = y.len();
            let want = ref_top_k(a, n, c, j, top);
            let (images, values) = s.datasets[d].top_k.neuron(j);
            let got: Vec<(u32, f32)> = images.iter().copied().zip(values.iter().copied()).collect();
            assert_eq!(got, want, "top-k of dataset {d} neuron {j}");
            // Top classes.
            let mut ranked: Vec<(usize, f64)> = (0..k)
                .filter_map(|cl| ref_class_mean(a, y, c, cl, j).map(|m| (cl, m)))
                .collect();
            ranked.sort_by(|x, y| y.1.partial_cmp(&x.1).unwrap().then(x.0.cmp(&y.0)));
            let want: Vec<usize> = ranked.iter().take(5).map(|p| p.0).collect();
            // Equal means computed in different orders may differ in the last bit.
            let got = s.datasets[d].top_classes(j);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                let (mg, mw) = (
                    ref_class_mean(a, y, c, *g, j).unwrap(),
                    ref_class_mean(a, y, c, *w, j).unwrap(),
                );
                assert!(
                    close(mg, mw, 1e-6),
                    "top classes {d} {j}: {got:?} vs {want:?}"
                );
            }
            // Morcos over raw class means.
            let means: Vec<f64> = (0..k)
                .filter_map(|cl| ref_class_mean(a, y, c, cl, j))
                .collect();
            let best = means.iter().cloned().fold(f64::MIN, f64::max);
            let at = means.iter().position(|&m| m == best).unwrap();
            let rest: f64 = means
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != at)
                .map(|(_, m)| m)
                .sum::<f64>()
                / (means.len() - 1) as f64;
            let want = ((best + rest) != 0.0).then(|| (best - rest) / (best + rest));
            let got = s.datasets[d].morcos[j];
            match want {
                Some(w) => assert!(close(w, f64::from(got), 1e-4), "morcos {d} {j}"),
                None => assert!(got.is_nan()),
            }
            // Rafegas over the top images: weights a_j / a_1, frequencies, M, (N − M)/(N − 1).
            let tops = ref_top_k(a, n, c, j, top);
            let pos: Vec<(u32, f32)> = tops
                .into_iter()
                .filter(|&(i, v)| v > 0.0 && y[i as usize] >= 0)
                .collect();
            let got = s.datasets[d].rafegas[j];
            if pos.len() < 2 {
                assert!(got.is_nan(), "rafegas {d} {j}");
            } else {
                let a1 = f64::from(pos[0].1);
                let total: f64 = pos.iter().map(|p| f64::from(p.1) / a1).sum();
                let mut freq: Vec<f64> = (0..k)
                    .map(|cl| {
                        pos.iter()
                            .filter(|p| y[p.0 as usize] == cl as i32)
                            .map(|p| f64::from(p.1) / a1)
                            .sum::<f64>()
                            / total
                    })
                    .filter(|&f| f > 0.0)
                    .collect();
                freq.sort_by(|x, y| y.partial_cmp(x).unwrap());
                let mut cum = 0.0;
                let mut m = freq.len();
                for (i, f) in freq.iter().enumerate() {
                    cum += f;
                    if cum >= 1.0 - 1e-9 {
                        m = i + 1;
                        break;
                    }
                }
                let npos = pos.len() as f64;
                let want = (npos - m as f64) / (npos - 1.0);
                assert!(close(want, f64::from(got), 1e-6), "rafegas {d} {j}");
            }
        }
        // Spurious, novelty, shift against OOD.
        let prof = |a: &[f32], y: &[i32]| -> Vec<Option<f64>> {
            (0..k).map(|cl| ref_class_mean(a, y, c, cl, j)).collect()
        };
        let (pi, po) = (prof(&a_id, &y_id), prof(&a_ood, &y_ood));
        let (xs, ys): (Vec<f64>, Vec<f64>) =
            pi.iter().zip(&po).filter_map(|(a, b)| a.zip(*b)).unzip();
        if silent {
            assert!(
                shift.spurious[j].is_nan() && shift.novelty[j].is_nan() && shift.shift[j].is_nan()
            );
            continue;
        }
        let m = f64::from(max_id);
        match ref_spearman(&xs, &ys) {
            Some(r) => {
                defined_spurious += 1;
                assert!(
                    close(1.0 - r.abs(), f64::from(shift.spurious[j]), 1e-5),
                    "spurious {j}"
                );
            }
            None => assert!(shift.spurious[j].is_nan(), "spurious {j} undefined"),
        }
        let mx = |p: &[Option<f64>]| p.iter().flatten().cloned().fold(f64::MIN, f64::max);
        let novelty = mx(&pi) / m - mx(&po) / m;
        assert!(
            close(novelty, f64::from(shift.novelty[j]), 1e-5),
            "novelty {j}"
        );
        let col = |a: &[f32], n: usize| -> Vec<f64> {
            (0..n)
                .map(|i| f64::from(a[i * c + j]))
                .filter(|v| v.is_finite())
                .map(|v| v / m)
                .collect()
        };
        let w = ref_w1(&col(&a_id, n_id), &col(&a_ood, n_ood));
        assert!(
            close(w, f64::from(shift.shift[j]), 1e-5),
            "w1 {j}: {w} vs {}",
            shift.shift[j]
        );
    }
    assert!(defined_spurious > c / 2);
    // NaN/Inf counted per layer and per neuron (the one NaN is where the random layer put it).
    for d in 0..2 {
        let nf = &s.datasets[d].non_finite;
        assert_eq!((nf.nan, nf.pos_inf, nf.neg_inf), (1, 1, 0), "dataset {d}");
        assert_eq!(nf.per_neuron[2], 1);
        assert_eq!(nf.per_neuron[3], 1);
        assert_eq!(nf.total(), 2);
        assert_eq!(s.datasets[d].unlabelled, 1);
    }
    // The silent neuron's scores read as undefined.
    let n1 = s.neuron(1).unwrap();
    assert!(n1.silent && n1.shifts[0].spurious.is_none() && n1.shifts[0].shift.is_none());
    assert_eq!(s.normalise(1, 0.5), None);
    // Profiles count every neuron once.
    for summary in s.profile(5) {
        let h = &summary.histogram;
        assert_eq!(h.counts.iter().sum::<u64>() + h.undefined, c as u64);
    }
}

#[test]
fn scores_match_references_f32() {
    check_against_references(Precision::F32);
}

#[test]
fn scores_match_references_f16() {
    check_against_references(Precision::F16);
}

#[test]
fn spearman_with_ties_and_constant_profiles() {
    // Ties: average ranks.
    let x = [1.0, 2.0, 2.0, 3.0, 5.0, 5.0, 5.0];
    let y = [2.0, 1.0, 4.0, 4.0, 3.0, 9.0, 9.0];
    let xd: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let yd: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
    let want = ref_spearman(&xd, &yd).unwrap();
    assert!((spearman(&x, &y).unwrap() - want).abs() < 1e-12);
    // Hand-worked: ranks [1, 2.5, 2.5, 4] vs [1, 2, 3, 4]: ρ = 4.5 / √(4.5 · 5).
    let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert!((r - 4.5 / (4.5f64 * 5.0).sqrt()).abs() < 1e-12);
    // Random profiles with many ties.
    let mut rng = Rng(99);
    for _ in 0..200 {
        let n = 2 + rng.below(15);
        let a: Vec<f32> = (0..n).map(|_| rng.below(4) as f32).collect();
        let b: Vec<f32> = (0..n).map(|_| rng.below(4) as f32).collect();
        let ad: Vec<f64> = a.iter().map(|&v| f64::from(v)).collect();
        let bd: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
        match (spearman(&a, &b), ref_spearman(&ad, &bd)) {
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9),
            (g, w) => assert_eq!(g, w),
        }
    }
    // Constant profiles: undefined.
    assert_eq!(spearman(&[3.0, 3.0, 3.0], &[1.0, 2.0, 3.0]), None);
    assert_eq!(spearman(&[1.0, 2.0, 3.0], &[0.0, 0.0, 0.0]), None);
    // NaN entries are left out; one pair left is undefined.
    assert_eq!(spearman(&[1.0, f32::NAN], &[2.0, 3.0]), None);
}

#[test]
fn rafegas_hand_worked() {
    // Four top images: activations 4, 2, 1, 1 of classes 0, 1, 0, 2.
    // w = 1, 0.5, 0.25, 0.25 (Σ 2); f0 = 1.25/2 = 0.625, f1 = 0.25, f2 = 0.125.
    // th = 1: M = 3, index (4 − 3)/3 = 1/3. th = 0.8: 0.625 < 0.8 ≤ 0.875 → M = 2, 2/3.
    // th = 0.5: M = 1, index 1.
    let values = [4.0, 2.0, 1.0, 1.0];
    let labels = [0, 1, 0, 2];
    let at = |th| rafegas_selectivity(&values, &labels, th).unwrap();
    assert!((at(1.0) - 1.0 / 3.0).abs() < 1e-12);
    assert!((at(0.8) - 2.0 / 3.0).abs() < 1e-12);
    assert!((at(0.5) - 1.0).abs() < 1e-12);
    // One class only: fully selective. Fewer than two positive images: undefined.
    assert_eq!(rafegas_selectivity(&[3.0, 1.0], &[5, 5], 1.0), Some(1.0));
    assert_eq!(rafegas_selectivity(&[3.0, 0.0], &[5, 4], 1.0), None);
}

#[test]
fn morcos_hand_worked() {
    // Means 4, 1, 2, 3: μ_max = 4, μ_rest = 2, index (4 − 2)/(4 + 2) = 1/3.
    let r = morcos_selectivity([4.0, 1.0, 2.0, 3.0].into_iter()).unwrap();
    assert!((r - 1.0 / 3.0).abs() < 1e-12);
    // Only one class responds: index 1. Undefined classes are left out.
    let r = morcos_selectivity([0.0, 5.0, f32::NAN, 0.0].into_iter()).unwrap();
    assert!((r - 1.0).abs() < 1e-12);
    // All zero: undefined (no division by zero); one class: undefined.
    assert_eq!(morcos_selectivity([0.0, 0.0].into_iter()), None);
    assert_eq!(morcos_selectivity([2.0].into_iter()), None);
}

/// Two datasets, 4 images, 2 neurons, 3 classes, values chosen by hand.
fn small_store(root: &Path) {
    let id = Dataset {
        name: "id",
        role: Role::Id,
        labels: vec![0, 1, 2, 1],
        // Image 0 → class 0 (p high), 1 → class 2 (wrong), 2 → class 2, 3 → class 0 (wrong).
        logits: vec![
            5.0, 0.0, 0.0, //
            0.0, 1.0, 2.0, //
            0.0, 0.0, 3.0, //
            1.0, 0.5, 0.0,
        ],
        // Neuron 0: ties at 2.0 (images 1 and 3), a zero and a NaN. Neuron 1: all ≤ 0.
        layers: vec![vec![
            2.0,
            -1.0, //
            2.0,
            0.0, //
            0.0,
            -2.0, //
            f32::NAN,
            -1.0,
        ]],
    };
    let ood = Dataset {
        name: "ood",
        role: Role::Ood,
        labels: vec![0, 1, 2, 1],
        logits: vec![
            0.0, 4.0, 0.0, //
            0.0, 3.0, 0.0, //
            2.0, 0.0, 0.0, //
            0.0, 0.0, 1.0,
        ],
        layers: vec![vec![
            1.0, 1.0, //
            3.0, 2.0, //
            1.0, 0.0, //
            1.0, 4.0,
        ]],
    };
    write_store(root, Precision::F32, &[2], 3, &[id, ood]);
}

#[test]
fn top_k_skips_zero_and_nan_and_breaks_ties_by_index() {
    let dir = tempfile::tempdir().unwrap();
    small_store(dir.path());
    let a = Analysis::open(dir.path(), AnalysisParams::default()).unwrap();
    let s = a.layer(0).unwrap();
    let (images, values) = s.datasets[0].top_k.neuron(0);
    assert_eq!(images, &[0, 1]);
    assert_eq!(values, &[2.0, 2.0]);
    // Neuron 1 on ID: negatives are ranked, zero skipped; silent on the normaliser.
    let (images, _) = s.datasets[0].top_k.neuron(1);
    assert_eq!(images, &[0, 3, 2]);
    assert!(s.silent[1] && !s.silent[0]);
    assert_eq!(s.datasets[0].non_finite.nan, 1);
    // The neuron view: top images with normalised values (1.0 for the ID maximum).
    let view = a
        .neuron(NeuronId {
            layer: 0,
            neuron: 0,
        })
        .unwrap();
    assert_eq!(
        view.top_images[0][0],
        (
            ImageId {
                dataset: 0,
                index: 0
            },
            2.0,
            Some(1.0)
        )
    );
    assert_eq!(
        view.top_images[1][0],
        (
            ImageId {
                dataset: 1,
                index: 1
            },
            3.0,
            Some(1.5)
        )
    );
    let silent = a
        .neuron(NeuronId {
            layer: 0,
            neuron: 1,
        })
        .unwrap();
    assert_eq!(silent.top_images[1][0].2, None);
    assert!(
        a.neuron(NeuronId {
            layer: 0,
            neuron: 2
        })
        .is_err()
    );
    assert!(
        a.neuron(NeuronId {
            layer: 1,
            neuron: 0
        })
        .is_err()
    );
}

#[test]
fn image_and_class_views() {
    let dir = tempfile::tempdir().unwrap();
    small_store(dir.path());
    let a = Analysis::open(dir.path(), AnalysisParams::default()).unwrap();
    // Predictions: softmax of [0, 1, 2].
    let p = a
        .image_predictions(
            ImageId {
                dataset: 0,
                index: 1,
            },
            5,
        )
        .unwrap();
    let z: f64 = [0.0f64, 1.0, 2.0].iter().map(|v| v.exp()).sum();
    assert_eq!(
        p.iter().map(|c| c.class.0).collect::<Vec<_>>(),
        vec![2, 1, 0]
    );
    assert!((f64::from(p[0].probability) - 2f64.exp() / z).abs() < 1e-6);
    assert!(
        a.image_predictions(
            ImageId {
                dataset: 0,
                index: 4
            },
            5
        )
        .is_err()
    );
    assert!(
        a.image_predictions(
            ImageId {
                dataset: 2,
                index: 0
            },
            5
        )
        .is_err()
    );
    // Top neurons, raw and normalised.
    let img = ImageId {
        dataset: 1,
        index: 3,
    };
    let raw = a.image_top_neurons(img, 0, 25, false).unwrap();
    assert_eq!((raw[0].neuron.neuron, raw[0].value), (1, 4.0));
    let norm = a.image_top_neurons(img, 0, 25, true).unwrap();
    assert_eq!(norm.len(), 1, "the silent neuron has no normalised value");
    assert_eq!((norm[0].neuron.neuron, norm[0].value), (0, 0.5));
    // Comparison: the lead's neurons on the same row of the other dataset.
    let cmp = a.comparison(img, 0, 2, false).unwrap();
    assert_eq!(cmp.followers.len(), 1);
    assert_eq!(
        cmp.followers[0].0,
        ImageId {
            dataset: 0,
            index: 3
        }
    );
    assert!(cmp.followers[0].1[1].is_nan() && cmp.followers[0].1[0] == -1.0);
    // Nearest images: only neuron 0 counts (neuron 1 is silent), so every image with a
    // positive neuron 0 has cosine 1; images with zero norm are left out.
    let near = a
        .nearest_images(
            ImageId {
                dataset: 0,
                index: 0,
            },
            0,
            &[0, 1],
            10,
        )
        .unwrap();
    let ids: Vec<ImageId> = near.iter().map(|s| s.image).collect();
    assert!(!ids.contains(&ImageId {
        dataset: 0,
        index: 0
    }));
    assert!(!ids.contains(&ImageId {
        dataset: 0,
        index: 2
    }));
    assert_eq!(ids.len(), 5);
    assert!(near.iter().all(|s| (s.score - 1.0).abs() < 1e-6));
    // Accuracy and drop: ID 2/4 correct, OOD 2/4 (images 1 and 0? 0 → class 1 wrong;
    // 1 → class 1 right; 2 → class 0 wrong; 3 → class 2 wrong) = 1/4.
    let acc = a.accuracy().unwrap();
    assert_eq!((acc[0].correct, acc[0].images), (2, 4));
    assert_eq!((acc[1].correct, acc[1].images), (1, 4));
    assert!((acc[1].drop_from_reference.unwrap() - 0.25).abs() < 1e-12);
    // Class 1 on ID: both images wrong (1 → 2, 3 → 0): two false-negative groups.
    let view = a.class_view(ClassId(1)).unwrap();
    let id = &view.datasets[0];
    assert_eq!(id.accuracy.accuracy, Some(0.0));
    let groups: Vec<usize> = id
        .false_negatives
        .iter()
        .map(|g| g.confused_with.0)
        .collect();
    assert_eq!(groups, vec![0, 2]);
    // Class 1 on OOD: image 1 right, image 3 → 2; image 0 (class 0) predicted 1: a false positive.
    let ood = &view.datasets[1];
    assert_eq!(ood.accuracy.accuracy, Some(0.5));
    assert_eq!(ood.accuracy.drop_from_reference, Some(-0.5));
    assert_eq!(ood.false_positives.len(), 1);
    assert_eq!(ood.false_positives[0].confused_with, ClassId(0));
    assert_eq!(
        ood.false_positives[0].images[0].image,
        ImageId {
            dataset: 1,
            index: 0
        }
    );
    assert!(a.class_view(ClassId(3)).is_err());
    // Pairwise 1 vs 2 on ID: image 1 (class 1) predicted 2.
    let pair = a.pairwise(ClassId(1), ClassId(2), 0).unwrap();
    assert_eq!(pair.counts, [0, 1, 1, 0]);
    assert_eq!(pair.a_as_b[0].image.index, 1);
    // Top neurons of class 1 by normalised mean on OOD: only neuron 0 is defined.
    let top = a.class_top_neurons(ClassId(1), 0, 1, 25).unwrap();
    assert_eq!(top.len(), 1);
    assert!(
        (top[0].value - 1.0).abs() < 1e-6,
        "mean of 3 and 1 over the ID max 2"
    );
}

#[test]
fn false_positives_and_negatives_sorted_by_confidence() {
    // Six images of class 0, predicted 1 with various confidence, and 2 predicted 2.
    let logits: Vec<f32> = [1.0, 3.0, 2.0, 0.5, 5.0, 4.0]
        .iter()
        .flat_map(|&m| [0.0, m, 0.0])
        .chain([0.0, 0.0, 9.0, 0.0, 0.0, 1.0])
        .collect();
    let id = Dataset {
        name: "id",
        role: Role::Id,
        labels: vec![0, 0, 0, 0, 0, 0, 0, 0],
        logits,
        layers: vec![vec![1.0; 8]],
    };
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), Precision::F32, &[1], 3, &[id]);
    let a = Analysis::open(dir.path(), AnalysisParams::default()).unwrap();
    let view = a.class_view(ClassId(0)).unwrap();
    let fnn = &view.datasets[0].false_negatives;
    assert_eq!(fnn[0].confused_with, ClassId(1));
    let order: Vec<usize> = fnn[0].images.iter().map(|s| s.image.index).collect();
    assert_eq!(order, vec![4, 5, 1, 2, 0, 3]);
    assert!(fnn[0].images.windows(2).all(|w| w[0].score >= w[1].score));
    assert_eq!(
        fnn[1]
            .images
            .iter()
            .map(|s| s.image.index)
            .collect::<Vec<_>>(),
        vec![6, 7]
    );
    // No OOD dataset: no shift scores, still every per-dataset number.
    assert!(a.layer(0).unwrap().shifts.is_empty());
}

#[test]
fn cache_hit_stale_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(3);
    let mut sets = [
        random_dataset(&mut rng, "id", Role::Id, 30, 20, 4),
        random_dataset(&mut rng, "ood", Role::Ood, 25, 20, 4),
    ];
    for set in &mut sets {
        let again: Vec<f32> = set.layers[0].iter().map(|v| v * 2.0).collect();
        set.layers.push(again);
    }
    write_store(dir.path(), Precision::F32, &[20, 20], 4, &sets);
    let open = |top_k| {
        Analysis::open(
            dir.path(),
            AnalysisParams {
                top_k,
                ..AnalysisParams::default()
            },
        )
        .unwrap()
    };
    let a = open(5);
    let (first, how) = a.layer_with_provenance(1).unwrap();
    assert_eq!(how, Provenance::Computed);
    assert_eq!(a.layer_with_provenance(1).unwrap().1, Provenance::Memory);
    let file = a
        .cache_dir()
        .join(format!("{}.bin", a.store().manifest().layers[1].id));
    assert!(file.exists());
    // A new analysis reads the cache and gets the same numbers.
    let b = open(5);
    let (cached, how) = b.layer_with_provenance(1).unwrap();
    assert_eq!(how, Provenance::Cache);
    assert_eq!(
        format!("{:?}", cached.datasets),
        format!("{:?}", first.datasets)
    );
    assert_eq!(cached.normaliser_max, first.normaliser_max);
    // NaN-aware equality (NaN marks undefined scores; Debug prints them alike).
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&cached.shifts[0].spurious),
        bits(&first.shifts[0].spurious)
    );
    assert_eq!(bits(&cached.shifts[0].shift), bits(&first.shifts[0].shift));
    // Other parameters: the key differs, recomputed.
    assert_eq!(
        open(7).layer_with_provenance(1).unwrap().1,
        Provenance::Computed
    );
    assert_eq!(
        open(5).layer_with_provenance(1).unwrap().1,
        Provenance::Computed
    );
    // A damaged file is not trusted.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&file, &bytes).unwrap();
    assert_eq!(
        open(5).layer_with_provenance(1).unwrap().1,
        Provenance::Computed
    );
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&[0xff; 4]); // a top class index out of range
    std::fs::write(&file, &bytes).unwrap();
    let (again, how) = open(5).layer_with_provenance(1).unwrap();
    assert!(
        how == Provenance::Computed
            || format!("{:?}", again.datasets) == format!("{:?}", first.datasets)
    );
    // A changed manifest (a new dataset) is another key: the old folder is ignored.
    let old_dir = a.cache_dir();
    let mut writer = StoreWriter::open(dir.path()).unwrap();
    let extra = random_dataset(&mut rng, "ood2", Role::Ood, 9, 20, 4);
    let mut w = writer
        .dataset("ood2", "test", BTreeMap::new(), Role::Ood, 9)
        .unwrap();
    let l: Vec<&[f32]> = vec![&extra.layers[0], &extra.layers[0]];
    w.write_rows(0, &extra.labels, &extra.logits, &[0u8; 9 * 12], &l)
        .unwrap();
    w.commit(9).unwrap();
    w.finish(&mut writer).unwrap();
    let c = open(5);
    assert_ne!(c.cache_dir(), old_dir);
    let (fresh, how) = c.layer_with_provenance(1).unwrap();
    assert_eq!(how, Provenance::Computed);
    assert_eq!(fresh.shifts.len(), 2);
    // Deleting the cache is safe.
    std::fs::remove_dir_all(dir.path().join("analysis")).unwrap();
    let (after, how) = open(5).layer_with_provenance(1).unwrap();
    assert_eq!(how, Provenance::Computed);
    assert_eq!(
        format!("{:?}", after.datasets),
        format!("{:?}", fresh.datasets)
    );
    // Layer profile over both layers.
    let profile = c.layer_profile(4).unwrap();
    assert_eq!(profile.len(), 2);
    assert_eq!(profile[0].len(), 6);
}

#[test]
fn errors_name_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let e = Analysis::open(dir.path(), AnalysisParams::default()).unwrap_err();
    assert!(
        e.to_string().contains(&dir.path().display().to_string()),
        "{e}"
    );
    small_store(dir.path());
    let e = Analysis::open(
        dir.path(),
        AnalysisParams {
            normaliser: Some(5),
            ..AnalysisParams::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("normaliser dataset 5"), "{e}");
    // Normalising by the OOD dataset instead: neuron 1 is no longer silent.
    let a = Analysis::open(
        dir.path(),
        AnalysisParams {
            normaliser: Some(1),
            ..AnalysisParams::default()
        },
    )
    .unwrap();
    let s = a.layer(0).unwrap();
    assert_eq!(s.normaliser_max, vec![3.0, 4.0]);
    assert!(!s.silent[1]);
}

#[test]
fn a_declared_class_subset_restricts_predictions_and_accuracy_to_its_logits() {
    // Four classes; the OOD set declares the subset {0, 2} (as ImageNet-R declares its 200 of
    // 1,000). Class 1 has the largest logit in every row, so over all logits nothing is
    // right; over the subset, rows 0 and 1 are right (labels 0 and 2) and row 2 is not.
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), Precision::F32, &[1], 4, &[]);
    let manifest = shiftscope_store::Store::open(dir.path())
        .unwrap()
        .manifest()
        .clone();
    std::fs::remove_dir_all(dir.path()).unwrap();
    let mut store = StoreWriter::create(dir.path(), manifest).unwrap();
    let logits = vec![
        2.0, 9.0, 1.0, 0.0, // label 0: subset argmax 0
        0.0, 9.0, 3.0, 5.0, // label 2: subset argmax 2 (3 is outside the subset)
        4.0, 9.0, 1.0, 0.0, // label 2: subset argmax 0, wrong
    ];
    let labels = vec![0, 2, 2];
    for (name, params, role) in [
        ("full", BTreeMap::new(), Role::Id),
        (
            "subset",
            BTreeMap::from([("class_subset".to_owned(), "0,2".to_owned())]),
            Role::Ood,
        ),
    ] {
        let mut writer = store.dataset(name, "test", params, role, 3).unwrap();
        let layer = [0.0f32; 3];
        writer
            .write_rows(0, &labels, &logits, &[0u8; 3 * 2 * 2 * 3], &[&layer])
            .unwrap();
        writer.commit(3).unwrap();
        writer.finish(&mut store).unwrap();
    }
    let a = Analysis::open(dir.path(), AnalysisParams::default()).unwrap();
    assert_eq!(a.class_subset(0, 4).unwrap(), None);
    assert_eq!(a.class_subset(1, 4).unwrap(), Some(vec![0, 2]));
    let full = a.predictions(0).unwrap();
    assert_eq!(full.predicted, vec![1, 1, 1]);
    let sub = a.predictions(1).unwrap();
    assert_eq!(sub.predicted, vec![0, 2, 0]);
    // The softmax is over the subset: row 0 is softmax([2, 1])[0].
    let p0 = 1.0 / (1.0 + (-1.0f32).exp());
    assert!(
        (sub.probability[0] - p0).abs() < 1e-6,
        "{}",
        sub.probability[0]
    );
    let acc = a.accuracy().unwrap();
    assert_eq!((acc[0].correct, acc[0].images), (0, 3));
    assert_eq!((acc[1].correct, acc[1].images), (2, 3));
}
