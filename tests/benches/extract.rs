//! Recording throughput against bare ONNX Runtime, measured in the same run, and peak memory
//! of extraction at 5k vs 50k images. Prints figures and ratios (design/quality.md).
//!
//! ```text
//! cargo bench -p shiftscope-tests --bench extract
//! SHIFTSCOPE_BENCH_MODEL=resnet18.onnx SHIFTSCOPE_BENCH_IMAGES=256 cargo bench -p shiftscope-tests --bench extract
//! ```
//! Without a model the demo CNN (`assets/models/demo-cnn.onnx`, 28×28) is used. The three throughputs, on the same
//! inputs: ONNX Runtime alone with the model's own outputs (the limit); the ONNX adapter
//! recording every default layer with in-graph pooling; and the whole `extract` pipeline
//! (colored MNIST generated, preprocessed, recorded, written to a store).
//!
//! For the demo CNN and ResNet-18 (recognised by file name, or named by
//! `SHIFTSCOPE_BENCH_TORCH_ARCH=demo-cnn|resnet18`) it also runs the reference a PyTorch user
//! has, `tools/bench_pytorch_hooks.py`: the same architecture in PyTorch with forward hooks on
//! the same layers, pooled the same way and written to memory-mapped `.npy` files, with the
//! same image count, batch size and threads. The three take turns, one timed run each per
//! round, best of `SHIFTSCOPE_BENCH_ROUNDS` (5) rounds, so that a slow spell of a shared
//! machine falls on every side of a ratio. `SHIFTSCOPE_BENCH_TORCH=0` skips it; without
//! Python and torch it is skipped with a note. With PyTorch's count of the model's operations
//! it then prints the compute roof: the CPU's fp32 multiply-add peak, measured here, divided
//! by the operations per image, and how close each side runs to it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef as OrtTensorRef;
use shiftscope_onnx::{Config, OnnxModel};
use shiftscope_sdk::rng::SplitMix64;
use shiftscope_sdk::{ModelAdapter, ModelAdapterPlugin, Pooling, TensorRef, select_layers};

mod util;
use util::{best_of_interleaved, env_usize, field};

/// Images/s of `run`, which returns how many images it ran.
fn rate(run: &mut dyn FnMut() -> usize) -> f64 {
    let started = Instant::now();
    let images = run();
    images as f64 / started.elapsed().as_secs_f64()
}

/// The CPU's fp32 multiply-add peak in GFLOP/s on `threads` threads (AVX2 + FMA, twelve
/// independent 8-lane chains per thread: enough to keep both FMA pipes of a core busy), or
/// `None` on a CPU without them.
fn fma_peak_gflops(threads: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn chains(iters: u64) -> f32 {
            let mut acc = [[0_f32; 8]; 12];
            for _ in 0..iters {
                for lanes in &mut acc {
                    for v in lanes.iter_mut() {
                        *v = v.mul_add(0.999_999, 1e-7);
                    }
                }
            }
            acc.iter().flatten().sum()
        }
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            return None;
        }
        let iters = std::hint::black_box(200_000_000_u64);
        let started = Instant::now();
        let sum: f32 = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                // SAFETY: the CPU has AVX2 and FMA, checked above; `chains` needs nothing else.
                .map(|_| scope.spawn(move || unsafe { chains(iters) }))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("FMA worker"))
                .sum()
        });
        std::hint::black_box(sum);
        let flops = threads as f64 * iters as f64 * 12.0 * 8.0 * 2.0;
        Some(flops / started.elapsed().as_secs_f64() / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        None
    }
}

/// Peak resident memory (VmHWM) of a child process, polled until it exits.
fn peak_rss_kib(mut command: Command) -> (u64, bool) {
    let mut child = command
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn shiftscope");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        let kib = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
            });
        peak = peak.max(kib.unwrap_or(0));
        if let Ok(Some(status)) = child.try_wait() {
            return (peak, status.success());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `tools/bench_pytorch_hooks.py --serve`: the PyTorch reference, warmed up in its own
/// process and timing one run whenever asked, so that it takes turns with ours.
struct TorchReference {
    child: std::process::Child,
    requests: std::process::ChildStdin,
    replies: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    /// PyTorch's count of floating-point operations for one image (0: not counted).
    flops_per_image: f64,
}

impl TorchReference {
    /// Started on the architecture of `model`, or `None` (with a note) where it does not
    /// apply or Python with torch is missing.
    fn start(
        root: &Path,
        model: &Path,
        images: usize,
        batch: usize,
        threads: usize,
    ) -> Option<TorchReference> {
        use std::io::BufRead;
        use std::process::Stdio;
        if std::env::var("SHIFTSCOPE_BENCH_TORCH").is_ok_and(|v| v == "0") {
            return None;
        }
        let file = model.file_name()?.to_string_lossy().to_lowercase();
        let arch = std::env::var("SHIFTSCOPE_BENCH_TORCH_ARCH")
            .ok()
            .or_else(|| {
                ["demo-cnn", "resnet18"]
                    .into_iter()
                    .find(|a| file.contains(a))
                    .map(str::to_owned)
            });
        let Some(arch) = arch else {
            println!(
                "(PyTorch reference skipped: no PyTorch twin of {file}; set SHIFTSCOPE_BENCH_TORCH_ARCH)"
            );
            return None;
        };
        let missing = || {
            println!(
                "(PyTorch reference skipped: tools/bench_pytorch_hooks.py did not start; is torch installed?)"
            );
        };
        let Ok(mut child) =
            Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
                .arg(root.join("tools/bench_pytorch_hooks.py"))
                .args(["--arch", &arch, "--serve"])
                .args(["--images", &images.to_string()])
                .args(["--batch", &batch.to_string()])
                .args(["--threads", &threads.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
        else {
            missing();
            return None;
        };
        let (Some(requests), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            missing();
            return None;
        };
        let mut replies = std::io::BufReader::new(stdout).lines();
        let ready = replies.next().and_then(Result::ok).unwrap_or_default();
        if !ready.starts_with("ready") {
            let _ = child.kill();
            let _ = child.wait();
            missing();
            return None;
        }
        Some(TorchReference {
            child,
            requests,
            replies,
            flops_per_image: field(&ready, "flops_per_image").unwrap_or(0.0),
        })
    }

    /// Images/s of one timed run, as PyTorch's process measured it.
    fn round(&mut self) -> f64 {
        use std::io::Write;
        writeln!(self.requests, "run").expect("ask PyTorch for a run");
        let reply = self
            .replies
            .next()
            .and_then(Result::ok)
            .expect("PyTorch's reply");
        field(&reply, "images_per_s").expect("images_per_s in PyTorch's reply")
    }
}

impl Drop for TorchReference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prints how close each throughput runs to the CPU's limit: its measured multiply-add peak
/// divided by the model's operations per image (dense fp32 compute can go no faster).
fn compute_roof(peak: Option<f64>, threads: usize, flops_per_image: f64, rates: &[(&str, f64)]) {
    let Some(peak) = peak else {
        println!("(compute roof skipped: this CPU has no AVX2 + FMA)");
        return;
    };
    if flops_per_image <= 0.0 {
        println!("(compute roof skipped: PyTorch did not count the model's operations)");
        return;
    }
    let roof = peak * 1e9 / flops_per_image;
    println!(
        "\ncompute roof: fp32 multiply-add peak {peak:.0} GFLOP/s on {threads} threads, the model {:.3} GFLOP per image (PyTorch's count): at most {roof:.0} img/s",
        flops_per_image / 1e9
    );
    for (name, rate) in rates {
        println!(
            "  {name:<20} {rate:>10.0} img/s  {:>5.0}% of the roof",
            100.0 * rate / roof
        );
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model_path = std::env::var_os("SHIFTSCOPE_BENCH_MODEL")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("assets/models/demo-cnn.onnx"));
    let threads = env_usize(
        "SHIFTSCOPE_BENCH_THREADS",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    );
    let mut config = Config::for_model(&model_path);
    config.threads = Some(threads);
    let mut model = OnnxModel::create(&config.to_ron().expect("config")).expect("open the model");
    let description = model.describe().expect("describe");
    let layers = select_layers(&description, &[]).expect("default layers");
    let [_, c, h, w] = description.inputs[0].shape[..] else {
        panic!("image input")
    };
    let (c, h, w) = (c.expect("C"), h.expect("H"), w.expect("W"));
    let images = env_usize("SHIFTSCOPE_BENCH_IMAGES", if h >= 128 { 256 } else { 4096 });
    let rounds = env_usize("SHIFTSCOPE_BENCH_ROUNDS", 5);
    let batch = env_usize("SHIFTSCOPE_BENCH_BATCH", if h >= 128 { 32 } else { 64 });
    // Before anything else starts threads that could still be spinning: best of three.
    let peak = (0..3)
        .filter_map(|_| fma_peak_gflops(threads))
        .reduce(f64::max);
    let mut rng = SplitMix64::new(1);
    let inputs: Vec<f32> = (0..images * c * h * w)
        .map(|_| rng.uniform(-2.0, 2.0))
        .collect();
    let per_image = c * h * w;
    println!(
        "model: {} ({} default layers, {} neurons per image), input {c}x{h}x{w}",
        model_path.display(),
        layers.len(),
        description
            .layers
            .iter()
            .filter(|l| layers.contains(&l.name))
            .map(|l| l.neurons)
            .sum::<usize>()
    );
    println!(
        "{images} images, batch {batch}, {threads} intra-op threads, best of {rounds} rounds (ONNX Runtime, the adapter and PyTorch taking turns)"
    );

    // 1. ONNX Runtime alone: the model's own outputs only.
    let env = shiftscope_onnx::environment(None).expect("ONNX Runtime");
    let bytes = std::fs::read(&model_path).expect("model bytes");
    let build = || -> Result<Session, Box<dyn std::error::Error>> {
        Ok(Session::builder(&env)?
            .with_intra_threads(threads)?
            .with_optimization_level(GraphOptimizationLevel::All)?
            .commit_from_memory(&bytes)?)
    };
    let mut bare = build().expect("bare session");
    let input_name = bare.inputs()[0].name().to_owned();
    let mut run_bare = || {
        for chunk in inputs.chunks(batch * per_image) {
            let n = chunk.len() / per_image;
            let tensor = OrtTensorRef::from_array_view(([n, c, h, w], chunk)).expect("tensor");
            let outputs = bare
                .run(ort::inputs![input_name.as_str() => tensor])
                .expect("run");
            std::hint::black_box(&outputs);
        }
        images
    };
    run_bare();

    // 2. The adapter recording every default layer (pooled in the graph).
    let mut run_adapter = || {
        for chunk in inputs.chunks(batch * per_image) {
            let n = chunk.len() / per_image;
            let shape = [n, c, h, w];
            let set = model
                .run(
                    TensorRef::new(&shape, chunk).expect("tensor"),
                    &layers,
                    Pooling::default(),
                )
                .expect("run");
            std::hint::black_box(&set);
        }
        images
    };
    run_adapter();

    // 2b. PyTorch forward hooks + numpy export, the same architecture and sizes, taking turns.
    let mut torch = TorchReference::start(&root, &model_path, images, batch, threads);
    let mut bare_round = || rate(&mut run_bare);
    let mut adapter_round = || rate(&mut run_adapter);
    let mut runs: Vec<&mut dyn FnMut() -> f64> = vec![&mut bare_round, &mut adapter_round];
    let mut torch_round = torch.as_mut().map(|t| move || t.round());
    if let Some(round) = torch_round.as_mut() {
        runs.push(round);
    }
    let rates = best_of_interleaved(rounds, &mut runs);
    drop(runs);
    let (bare_rate, adapter_rate) = (rates[0], rates[1]);

    println!("\n{:<58} {:>10}  {:>6}", "throughput", "images/s", "ratio");
    println!(
        "{:<58} {:>10.0}  {:>6}",
        "ONNX Runtime alone (model outputs only)", bare_rate, "1.00"
    );
    println!(
        "{:<58} {:>10.0}  {:>6.2}",
        "shiftscope adapter, all default layers recorded",
        adapter_rate,
        adapter_rate / bare_rate
    );
    if let (Some(torch), Some(&torch_rate)) = (&torch, rates.get(2)) {
        println!(
            "{:<58} {:>10.0}  {:>6.2}",
            "PyTorch forward hooks + numpy export (same layers)",
            torch_rate,
            torch_rate / bare_rate
        );
        println!(
            "{:<58} {:>10}  {:>6.2}",
            "  shiftscope adapter / PyTorch hooks (target >= 2)",
            "",
            adapter_rate / torch_rate
        );
        compute_roof(
            peak,
            threads,
            torch.flops_per_image,
            &[
                ("ONNX Runtime alone", bare_rate),
                ("the adapter", adapter_rate),
                ("PyTorch", torch_rate),
                ("twice PyTorch", 2.0 * torch_rate),
            ],
        );
    }
    drop(torch);

    // 3. The whole pipeline and its memory: the real binary on colored MNIST.
    let bin = shiftscope_testkit::cargo::build_release(&["shiftscope-cli"])
        .expect("build shiftscope")
        .binaries["shiftscope"]
        .clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let study = |n: usize, store: &str| {
        let text = format!(
            r#"(store: "{store}", model: (path: {model:?}, threads: {threads}, preprocessing: (resize: {h}, crop: {h}, mean: (0.5, 0.5, 0.5), std: (0.5, 0.5, 0.5))),
                datasets: [(name: "colored-mnist/id/train", limit: {n})], plugins: {{"colored-mnist": "(procedural: true)"}},
                recording: (batch_size: {batch}))"#,
            model = model_path
        );
        let path = dir.path().join(format!("{store}.ron"));
        std::fs::write(&path, text).expect("config");
        path
    };
    let small = env_usize("SHIFTSCOPE_BENCH_RSS_SMALL", 5_000);
    let large = env_usize("SHIFTSCOPE_BENCH_RSS_LARGE", 50_000);
    let timed = |n: usize, store: &str| {
        let mut command = Command::new(&bin);
        command.args(["-q", "extract"]).arg(study(n, store));
        let started = Instant::now();
        let (peak, ok) = peak_rss_kib(command);
        assert!(ok, "extract failed");
        (n as f64 / started.elapsed().as_secs_f64(), peak)
    };
    let (pipeline_rate, small_rss) = timed(small, "small");
    println!(
        "{:<58} {:>10.0}  {:>6.2}",
        "shiftscope extract (data generated, preprocessed, stored)",
        pipeline_rate,
        pipeline_rate / bare_rate
    );
    let (_, large_rss) = timed(large, "large");
    println!(
        "\npeak RSS of extract: {small} images {:.1} MiB, {large} images {:.1} MiB, ratio {:.2} (target <= 1.10)",
        small_rss as f64 / 1024.0,
        large_rss as f64 / 1024.0,
        large_rss as f64 / small_rss.max(1) as f64
    );
}
