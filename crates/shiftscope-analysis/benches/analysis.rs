//! One layer's analysis against numpy doing the same on the same data, in the same run
//! (design/quality.md: N = 50,000, C = 2,048, K = 1,000; an ID and an OOD dataset). Prints
//! both times, the ratio, and checksums from both sides so the numbers can be seen to agree.
//!
//! ```text
//! cargo bench -p shiftscope-analysis --bench analysis
//! SHIFTSCOPE_BENCH_N=5000 SHIFTSCOPE_BENCH_C=256 SHIFTSCOPE_BENCH_K=100 cargo bench -p shiftscope-analysis --bench analysis
//! ```
//! The synthetic store (ReLU-like activations with a class effect, about a third zeros; the
//! OOD set with a different class effect) is written to a temporary folder as a real store
//! (`.npy` files), which numpy reads with `np.load(mmap_mode="r")`. The Rust side times
//! `Analysis::compute_layer` (every per-neuron number: max, class means, top-100, top classes,
//! NaN/Inf counts, spurious, novelty, W1 shift, both selectivity indexes) plus the per-class
//! numbers from the logits (predictions, accuracy per class); numpy the same
//! (`tools/bench_analysis_numpy.py`). Best of `SHIFTSCOPE_BENCH_REPEATS` (default 3).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use shiftscope_analysis::{Analysis, AnalysisParams};
use shiftscope_store::{LayerEntry, Manifest, ModelEntry, Precision, Role, StoreWriter};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: fast and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn write_store(root: &Path, n: usize, c: usize, k: usize) {
    let manifest = Manifest {
        schema_version: shiftscope_store::SCHEMA_VERSION,
        tool_version: "bench".into(),
        created_unix: 0,
        model: ModelEntry {
            path: "synthetic".into(),
            sha256: "00".into(),
            adapter: "synthetic".into(),
            preprocessing: serde_json::json!({}),
            input_shape: vec![None],
        },
        layers: vec![LayerEntry {
            id: String::new(),
            name: "features".into(),
            op: "Relu".into(),
            kind: "dense".into(),
            neurons: c,
            pooling: "mean".into(),
        }],
        classes: (0..k).map(|i| format!("c{i}")).collect(),
        thumb: 1,
        precision: Precision::F32,
        datasets: vec![],
        shard: None,
    };
    let mut store = StoreWriter::create(root, manifest).expect("create the store");
    for (d, (name, role)) in [("id", Role::Id), ("ood", Role::Ood)]
        .into_iter()
        .enumerate()
    {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (d as u64 + 1));
        let effect: Vec<f32> = (0..k * c).map(|_| rng.unit() * 2.0 - 1.0).collect();
        let mut writer = store
            .dataset(name, "synthetic", BTreeMap::new(), role, n)
            .expect("dataset");
        let chunk = 4096;
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let rows = end - start;
            let labels: Vec<i32> = (0..rows).map(|_| (rng.next() % k as u64) as i32).collect();
            let mut layer = Vec::with_capacity(rows * c);
            let mut logits = Vec::with_capacity(rows * k);
            for &y in &labels {
                let e = &effect[y as usize * c..(y as usize + 1) * c];
                for &ej in e {
                    let noise = rng.unit() + rng.unit() - 1.0;
                    layer.push((noise + 0.4 * ej + 0.2 * d as f32).max(0.0));
                }
                for j in 0..k {
                    let bonus = if j == y as usize { 3.0 } else { 0.0 };
                    logits.push(rng.unit() * 4.0 + bonus - d as f32 * rng.unit());
                }
            }
            writer
                .write_rows(start, &labels, &logits, &vec![0u8; rows * 3], &[&layer])
                .expect("write rows");
            start = end;
        }
        writer.commit(n).expect("commit");
        writer.finish(&mut store).expect("finish");
    }
}

fn sum_finite(v: &[f32]) -> f64 {
    v.iter()
        .filter(|x| x.is_finite())
        .map(|&x| f64::from(x))
        .sum()
}

fn main() {
    let n = env_usize("SHIFTSCOPE_BENCH_N", 50_000);
    let c = env_usize("SHIFTSCOPE_BENCH_C", 2_048);
    let k = env_usize("SHIFTSCOPE_BENCH_K", 1_000);
    let repeats = env_usize("SHIFTSCOPE_BENCH_REPEATS", 3).max(1);
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let dir = tempfile::tempdir().expect("temporary folder");
    let root = dir.path();
    println!(
        "analysis benchmark: N = {n} per dataset (ID + OOD), C = {c}, K = {k}, top-100, {threads} threads"
    );
    let started = Instant::now();
    write_store(root, n, c, k);
    println!(
        "  synthetic store written in {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        root.display()
    );

    let mut best_layer = f64::INFINITY;
    let mut best_classes = f64::INFINITY;
    let mut checksums = String::new();
    for _ in 0..repeats {
        let analysis = Analysis::open(root, AnalysisParams::default()).expect("open");
        let t = Instant::now();
        let scores = analysis.compute_layer(0).expect("analyse the layer");
        best_layer = best_layer.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let accuracy = analysis.accuracy().expect("accuracy");
        let per_class: Vec<f64> = analysis.class_accuracy().expect("class accuracy")[1]
            .iter()
            .map(|a| a.accuracy.unwrap_or(f64::NAN))
            .collect();
        best_classes = best_classes.min(t.elapsed().as_secs_f64());
        let id = &scores.datasets[0];
        let shift = &scores.shifts[0];
        checksums = format!(
            "class_means_id={:.6e} max_id={:.6e} topk_values_id={:.6e} spurious={:.6e} novelty={:.6e} w1={:.6e} rafegas={:.6e} morcos={:.6e} acc_id={:.6} acc_ood={:.6} class_acc_ood={:.6e}",
            sum_finite(&id.class_means.means),
            sum_finite(&id.max),
            sum_finite(&id.top_k.values),
            sum_finite(&shift.spurious),
            sum_finite(&shift.novelty),
            sum_finite(&shift.shift),
            sum_finite(&id.rafegas),
            sum_finite(&id.morcos),
            accuracy[0].accuracy.unwrap_or(f64::NAN),
            accuracy[1].accuracy.unwrap_or(f64::NAN),
            per_class.iter().filter(|v| v.is_finite()).sum::<f64>(),
        );
    }
    let rust = best_layer + best_classes;
    println!(
        "  rust:  {rust:.3} s  (layer: every per-neuron number {best_layer:.3} s; per-class from logits {best_classes:.3} s)"
    );
    println!("  rust checksums:  {checksums}");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/bench_analysis_numpy.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(root)
        .arg(repeats.to_string())
        .output();
    match output {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut numpy = None;
            for line in text.lines() {
                if let Some(t) = line.strip_prefix("numpy_seconds ") {
                    numpy = t.trim().parse::<f64>().ok();
                }
                println!("  {line}");
            }
            match numpy {
                Some(numpy) => println!(
                    "  ratio: numpy / rust = {:.1}x (target ≥ 10x, rust under 1 s)",
                    numpy / rust
                ),
                None => println!("  numpy printed no time; no ratio"),
            }
        }
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("No module named 'numpy'") {
                println!("  numpy is not installed: no comparison");
            } else {
                println!("  the numpy script failed: {err}");
            }
        }
        Err(e) => println!("  python3 could not be run ({e}): no comparison"),
    }
}
