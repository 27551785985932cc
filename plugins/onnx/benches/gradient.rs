//! Forward+backward steps per second of the ONNX adapter's gradient against a PyTorch
//! `torch.autograd.grad` loop of the very same network, measured in one run, and the peak
//! memory of both (design/quality.md: figures and ratios, no timed assertions).
//!
//! ```text
//! cargo bench -p shiftscope-onnx --bench gradient
//! SHIFTSCOPE_BENCH_GRADIENT_MODELS=resnet18 SHIFTSCOPE_BENCH_ROUNDS=3 cargo bench -p shiftscope-onnx --bench gradient
//! ```
//! For each architecture (`demo-cnn` at batch 64, `resnet18` at batch 8 and 224², random
//! weights) `tools/bench_pytorch_autograd.py --serve --export` builds the model in PyTorch,
//! writes it as ONNX (legacy exporter, opset 17), warms up and then times one run of
//! `SHIFTSCOPE_BENCH_STEPS` steps whenever asked; the adapter loads that ONNX file with the
//! same intra-op threads (`SHIFTSCOPE_BENCH_THREADS`, default 2) and times the same steps:
//! a logit objective, one class per image, d(objective)/d(image) of the batch. The two take
//! turns, best of `SHIFTSCOPE_BENCH_ROUNDS` (5) rounds. Peak memory is each process's
//! peak resident set while stepping (ours reset before each model with
//! `/proc/self/clear_refs`; PyTorch's includes its import). Without Python and torch the
//! demo CNN of `assets/` runs alone and ResNet-18 is skipped, with a note.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use shiftscope_onnx::{Config, OnnxModel};
use shiftscope_sdk::rng::SplitMix64;
use shiftscope_sdk::{GradientRequest, ModelAdapter, ModelAdapterPlugin, Tensor};

// The helpers the workspace's benchmarks share.
#[path = "../../../tests/benches/util/mod.rs"]
mod util;
use util::{best_of_interleaved, env_usize, field};

/// `tools/bench_pytorch_autograd.py --serve`: warmed up in its own process, timing one run
/// per request.
struct TorchReference {
    child: std::process::Child,
    requests: std::process::ChildStdin,
    replies: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    peak_kib: f64,
}

impl TorchReference {
    fn start(
        root: &Path,
        arch: &str,
        batch: usize,
        steps: usize,
        threads: usize,
        export: &Path,
    ) -> Option<TorchReference> {
        if std::env::var("SHIFTSCOPE_BENCH_TORCH").is_ok_and(|v| v == "0") {
            return None;
        }
        let mut child = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
            .arg(root.join("tools/bench_pytorch_autograd.py"))
            .args(["--arch", arch, "--serve"])
            .args(["--batch", &batch.to_string()])
            .args(["--steps", &steps.to_string()])
            .args(["--threads", &threads.to_string()])
            .arg("--export")
            .arg(export)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let (requests, stdout) = (child.stdin.take()?, child.stdout.take()?);
        let mut replies = std::io::BufReader::new(stdout).lines();
        let ready = replies.next().and_then(Result::ok).unwrap_or_default();
        if !ready.starts_with("ready") || !export.exists() {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        Some(TorchReference {
            child,
            requests,
            replies,
            peak_kib: field(&ready, "peak_rss_kib").unwrap_or(0.0),
        })
    }

    /// Steps/s of one timed run, as PyTorch's process measured it.
    fn round(&mut self) -> f64 {
        writeln!(self.requests, "run").expect("ask PyTorch for a run");
        let reply = self
            .replies
            .next()
            .and_then(Result::ok)
            .expect("PyTorch's reply");
        self.peak_kib = self
            .peak_kib
            .max(field(&reply, "peak_rss_kib").unwrap_or(0.0));
        field(&reply, "steps_per_s").expect("steps_per_s in PyTorch's reply")
    }
}

impl Drop for TorchReference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This process's peak resident set in KiB (VmHWM).
fn own_peak_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let threads = env_usize("SHIFTSCOPE_BENCH_THREADS", 2);
    let rounds = env_usize("SHIFTSCOPE_BENCH_ROUNDS", 5);
    let models = std::env::var("SHIFTSCOPE_BENCH_GRADIENT_MODELS")
        .unwrap_or_else(|_| "demo-cnn,resnet18".into());
    let dir = tempfile::tempdir().expect("temp dir");
    println!(
        "forward+backward of a logit objective, d/d(image); {threads} intra-op threads, best of {rounds} rounds (the adapter and PyTorch taking turns)\n"
    );
    let mut rows = Vec::new();
    for arch in models.split(',').filter(|a| !a.is_empty()) {
        let (batch, side, default_steps) = match arch {
            "demo-cnn" => (64, 28, 40),
            "resnet18" => (8, 224, 6),
            other => panic!("unknown architecture '{other}' (demo-cnn, resnet18)"),
        };
        let steps = env_usize("SHIFTSCOPE_BENCH_STEPS", default_steps);
        let export = dir.path().join(format!("{arch}.onnx"));
        let mut torch = TorchReference::start(&root, arch, batch, steps, threads, &export);
        let model_path: PathBuf = match (&torch, arch) {
            (Some(_), _) => export.clone(),
            (None, "demo-cnn") => {
                println!(
                    "(PyTorch reference skipped: tools/bench_pytorch_autograd.py did not start; is torch installed?)"
                );
                root.join("assets/models/demo-cnn.onnx")
            }
            (None, _) => {
                println!(
                    "({arch} skipped: it is exported by tools/bench_pytorch_autograd.py, which did not start)"
                );
                continue;
            }
        };
        // Ours: the same network, threads and batch; peak memory from here on.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let mut config = Config::for_model(&model_path);
        config.threads = Some(threads);
        let mut model =
            OnnxModel::create(&config.to_ron().expect("config")).expect("open the model");
        let description = model.describe().expect("describe");
        let logits = description
            .layers
            .iter()
            .find(|l| l.kind == shiftscope_sdk::LayerKind::Logits)
            .expect("a logits layer")
            .clone();
        let mut rng = SplitMix64::new(1);
        let x = Tensor::new(
            vec![batch, 3, side, side],
            (0..batch * 3 * side * side)
                .map(|_| rng.uniform(-2.0, 2.0))
                .collect(),
        )
        .expect("batch");
        let classes = logits.neurons;
        let w = Tensor::new(
            vec![batch, classes],
            (0..batch * classes)
                .map(|i| f32::from(u8::from(i % classes == (i / classes) % classes)))
                .collect(),
        )
        .expect("weights");
        let request = GradientRequest::pooled(&logits.name, w.view());
        let mut step = || {
            let g = model.gradient(x.view(), &request).expect("gradient");
            std::hint::black_box(&g);
        };
        for _ in 0..3 {
            step();
        }
        let mut ours = || {
            let started = Instant::now();
            for _ in 0..steps {
                step();
            }
            steps as f64 / started.elapsed().as_secs_f64()
        };
        let mut theirs = torch.as_mut().map(|t| move || t.round());
        let mut runs: Vec<&mut dyn FnMut() -> f64> = vec![&mut ours];
        if let Some(round) = theirs.as_mut() {
            runs.push(round);
        }
        let rates = best_of_interleaved(rounds, &mut runs);
        drop(runs);
        let our_peak = own_peak_kib();
        let torch_peak = torch.as_ref().map(|t| t.peak_kib);
        rows.push((arch, batch, side, rates, our_peak, torch_peak));
        drop(torch);
    }

    println!(
        "\n{:<10} {:>5} {:>6} | {:>12} {:>9} | {:>12} {:>9} | {:>8} | {:>10} {:>10}",
        "model",
        "batch",
        "input",
        "ours step/s",
        "img/s",
        "torch step/s",
        "img/s",
        "ratio",
        "ours MiB",
        "torch MiB"
    );
    for (arch, batch, side, rates, our_peak, torch_peak) in rows {
        let ours = rates[0];
        let (t_rate, t_img, ratio) = match rates.get(1) {
            Some(&t) => (
                format!("{t:.2}"),
                format!("{:.1}", t * batch as f64),
                format!("{:.2}", ours / t),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{arch:<10} {batch:>5} {:>6} | {ours:>12.2} {:>9.1} | {t_rate:>12} {t_img:>9} | {ratio:>8} | {:>10.0} {:>10}",
            format!("{side}²"),
            ours * batch as f64,
            our_peak / 1024.0,
            torch_peak.map_or_else(|| "-".into(), |p| format!("{:.0}", p / 1024.0)),
        );
    }
    println!(
        "\nratio = ours / PyTorch's steps per second (goal >= 1.5); peak resident memory of each process"
    );
}
