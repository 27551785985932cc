//! One layer's analysis against numpy doing the same on the same data, in the same run
//! (design/quality.md: N = 50,000, C = 2,048, K = 1,000; an ID and an OOD dataset). Prints
//! both times, the ratio, and checksums from both sides so the numbers can be seen to agree.
//!
//! ```text
//! cargo bench -p shiftscope-analysis --bench analysis
//! SHIFTSCOPE_BENCH_N=5000 SHIFTSCOPE_BENCH_C=256 SHIFTSCOPE_BENCH_K=100 cargo bench -p shiftscope-analysis --bench analysis
//! ```
//! The synthetic store (`shiftscope_testkit::store::SyntheticStore`: ReLU-like activations
//! with a class effect, about half zeros; the OOD set with a different class effect and an
//! offset) is written to a temporary folder as a real store
//! (`.npy` files), which numpy reads with `np.load(mmap_mode="r")`. The Rust side times
//! `Analysis::compute_layer` (every per-neuron number: max, class means, top-100, top classes,
//! NaN/Inf counts, spurious, novelty, W1 shift, both selectivity indexes) plus the per-class
//! numbers from the logits (predictions, accuracy per class); numpy the same
//! (`tools/bench_analysis_numpy.py`). Best of `SHIFTSCOPE_BENCH_REPEATS` (default 3).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use shiftscope_analysis::{Analysis, AnalysisParams};
use shiftscope_testkit::store::SyntheticStore;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
    SyntheticStore::dense(&[("features", c)], k, n)
        .write(root)
        .expect("write the synthetic store");
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
