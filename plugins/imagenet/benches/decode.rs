//! Decode + resize + centre crop to 224×224 (+ normalise) on one core: the imagenet plugin's
//! JPEG decoding (DCT-scaled when the resize allows) and the runtime's preprocessing, against
//! Pillow + torchvision-style transforms (`tools/bench_decode_pillow.py`) on the same files in
//! the same run. Prints images/s and the ratio (target ≥ 2× Pillow).
//!
//! ```text
//! cargo bench -p imagenet --features testdata --bench decode
//! SHIFTSCOPE_BENCH_SMALL=400 SHIFTSCOPE_BENCH_LARGE=80 cargo bench -p imagenet --features testdata --bench decode
//! ```
//! The images are generated here (photo-like gradients, blobs and grain, JPEG quality 90,
//! 4:2:0): ImageNet-like 500×375 and camera-like 1600×1200. Without Python and Pillow the
//! reference is skipped with a note.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use imagenet::ImageNet;
use imagenet::testdata::write_jpeg;
use shiftscope_runtime::Preprocessing;
use shiftscope_sdk::{Dataset, DatasetSource, DatasetSourcePlugin};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Best images/s over `repeats` passes of decode + preprocess on this thread.
fn rust_rate(dataset: &dyn Dataset, repeats: usize) -> f64 {
    let preprocessing = Preprocessing::imagenet();
    let mut best = 0f64;
    for _ in 0..repeats {
        let started = Instant::now();
        for i in 0..dataset.len() {
            let sample = dataset.get(i).expect("decode");
            let prepared = preprocessing.apply(&sample).expect("preprocess");
            assert_eq!(prepared.input.len(), 3 * 224 * 224);
        }
        best = best.max(dataset.len() as f64 / started.elapsed().as_secs_f64());
    }
    best
}

fn pillow_rates(groups: &[(&str, &Path)], repeats: usize) -> Option<Vec<(String, f64, String)>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/bench_decode_pillow.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg("--repeat")
        .arg(repeats.to_string())
        .env("OMP_NUM_THREADS", "1");
    for (name, dir) in groups {
        command.arg(format!("{name}={}", dir.display()));
    }
    let output = match command.output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!(
                "(Pillow reference skipped: {})",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return None;
        }
        Err(e) => {
            println!("(Pillow reference skipped: python3: {e})");
            return None;
        }
    };
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        out.push((
            v["name"].as_str()?.to_owned(),
            v["images_per_second"].as_f64()?,
            v["how"].as_str().unwrap_or("").to_owned(),
        ));
    }
    Some(out)
}

/// Runs this benchmark again pinned to one core (`taskset -c 0`), so that neither side can
/// spread over cores (jpeg-decoder starts a thread per colour component on larger images);
/// the Python reference inherits the pinning. `false` when it could not (then runs here).
fn rerun_pinned() -> bool {
    if std::env::var_os("SHIFTSCOPE_BENCH_PINNED").is_some() {
        return false;
    }
    let Ok(exe) = std::env::current_exe() else {
        return false;
    };
    let status = Command::new("taskset")
        .arg("-c")
        .arg("0")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env("SHIFTSCOPE_BENCH_PINNED", "1")
        .status();
    match status {
        Ok(s) if s.success() => true,
        Ok(s) => {
            println!("(taskset run failed: {s}; running unpinned)");
            false
        }
        Err(e) => {
            println!("(no taskset: {e}; running unpinned)");
            false
        }
    }
}

fn main() {
    if rerun_pinned() {
        return;
    }
    let small = env_usize("SHIFTSCOPE_BENCH_SMALL", 200);
    let large = env_usize("SHIFTSCOPE_BENCH_LARGE", 40);
    let repeats = env_usize("SHIFTSCOPE_BENCH_REPEATS", 3);
    let dir = tempfile::tempdir().expect("temp dir");
    let groups: [(&str, u32, u32, usize); 2] = [
        ("500x375", 500, 375, small),
        ("1600x1200", 1600, 1200, large),
    ];
    for (name, w, h, n) in groups {
        for i in 0..n {
            let path = dir.path().join(name).join("c").join(format!("{i:05}.JPEG"));
            write_jpeg(&path, w, h, i as u64 + u64::from(w)).expect("write JPEG");
        }
    }
    let bytes: u64 = groups
        .iter()
        .flat_map(|(name, ..)| std::fs::read_dir(dir.path().join(name).join("c")).expect("ls"))
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "decode + resize 256 + centre crop 224 + normalise, one core{}: {small} images of 500x375 \
         and {large} of 1600x1200 (JPEG q90, {:.1} MB), best of {repeats}",
        if std::env::var_os("SHIFTSCOPE_BENCH_PINNED").is_some() {
            " (taskset -c 0)"
        } else {
            ""
        },
        bytes as f64 / 1e6
    );
    let config = |min_side: &str| {
        format!(
            "(roots: {{\"folder/a\": {:?}, \"folder/b\": {:?}}}, decode_min_side: {min_side})",
            dir.path().join(groups[0].0).display().to_string(),
            dir.path().join(groups[1].0).display().to_string(),
        )
    };
    let scaled = ImageNet::create(&config("Some(256)")).expect("plugin");
    let full = ImageNet::create(&config("None")).expect("plugin");
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    for ((name, ..), entry) in groups.iter().zip(["folder/a", "folder/b"]) {
        let with_scale = rust_rate(scaled.open(entry).expect("open").as_ref(), repeats);
        let without = rust_rate(full.open(entry).expect("open").as_ref(), repeats);
        rows.push(((*name).to_owned(), with_scale, without));
    }
    let pillow = pillow_rates(
        &[
            (groups[0].0, &dir.path().join(groups[0].0)),
            (groups[1].0, &dir.path().join(groups[1].0)),
        ],
        repeats,
    );
    let how = pillow
        .as_ref()
        .and_then(|p| p.first().map(|r| r.2.clone()))
        .unwrap_or_default();
    println!(
        "\n{:<12} {:>14} {:>18} {:>14} {:>10}",
        "images", "shiftscope/s", "(no DCT scaling)", "Pillow/s", "ratio"
    );
    let mut total = [0f64; 3];
    for (name, with_scale, without) in &rows {
        let reference = pillow
            .as_ref()
            .and_then(|p| p.iter().find(|r| &r.0 == name).map(|r| r.1));
        let n = groups.iter().find(|g| g.0 == name).map_or(0, |g| g.3) as f64;
        total[0] += n / with_scale;
        total[1] += n / without;
        if let Some(r) = reference {
            total[2] += n / r;
        }
        println!(
            "{name:<12} {with_scale:>14.1} {without:>18.1} {:>14} {:>10}",
            reference.map_or("-".to_owned(), |r| format!("{r:.1}")),
            reference.map_or("-".to_owned(), |r| format!("{:.2}x", with_scale / r)),
        );
    }
    let n = (small + large) as f64;
    let pillow_total = (total[2] > 0.0).then(|| n / total[2]);
    println!(
        "{:<12} {:>14.1} {:>18.1} {:>14} {:>10}",
        "all",
        n / total[0],
        n / total[1],
        pillow_total.map_or("-".to_owned(), |r| format!("{r:.1}")),
        pillow_total.map_or("-".to_owned(), |r| format!("{:.2}x", n / total[0] / r)),
    );
    if !how.is_empty() {
        println!(
            "reference: {how}, Resize(256) bilinear antialias, CenterCrop(224), ToTensor, Normalize"
        );
    }
}
