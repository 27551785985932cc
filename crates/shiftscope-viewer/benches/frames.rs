//! Frame time of the 3D map with 10^5 neuron cells next to an empty scene, in the same run
//! and the same window (design/viewer.md: 10^5 neurons at 60 fps on an ordinary GPU).
//!
//! ```text
//! cargo bench -p shiftscope-viewer --bench frames
//! SHIFTSCOPE_BENCH_CELLS=1000000 SHIFTSCOPE_BENCH_FRAMES=200 cargo bench -p shiftscope-viewer --bench frames
//! ```
//! A synthetic store (five layers, 10^5 neurons in all, coloured by the spurious score, 10
//! classes, an ID and an OOD set) is opened by the real viewer app; a script waits until it
//! has loaded and the camera rests, times `SHIFTSCOPE_BENCH_FRAMES` frames (default 300) with
//! the map shown, hides the slabs, and times as many frames of the empty scene (the same
//! window, camera and egui). Drawing is flat out (no vsync). With no display the viewer runs
//! on a private Xvfb, with Mesa's software Vulkan (lavapipe) where there is no GPU: those
//! figures measure the CPU rasteriser; on a GPU machine they are the absolute frame rate.
//!
//! The app runs in a child process (this binary again), since a window's event loop can
//! only be made once per process and the child needs the X server in its environment.

use std::path::PathBuf;
use std::process::Command;

use shiftscope_testkit::store::SyntheticStore;
use shiftscope_ui::Measure;
use shiftscope_viewer::headless::HeadlessX;
use shiftscope_viewer::{Action, ViewerOptions, Workers, run_viewer};

const CHILD: &str = "SHIFTSCOPE_BENCH_FRAMES_STORE";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The child: open the store, time the map, hide it, time the empty scene.
fn child(store: PathBuf) {
    let frames = env_usize("SHIFTSCOPE_BENCH_FRAMES", 300) as u32;
    let mut options = ViewerOptions::new(store);
    options.colour_by = Some(Measure::Spurious);
    options.script = vec![
        Action::Wait(30),
        Action::Frames(frames, "map".into()),
        Action::ShowMap(false),
        Action::Wait(30),
        Action::Frames(frames, "empty".into()),
    ];
    if let Err(e) = run_viewer(&options, Workers::default()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Mean frame time in ms of the `frames <label>:` line.
fn mean_ms(output: &str, label: &str) -> Option<f64> {
    let line = output
        .lines()
        .find(|l| l.starts_with(&format!("frames {label}:")))?;
    let after = line.split("mean ").nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}

fn main() {
    if let Some(store) = std::env::var_os(CHILD) {
        return child(PathBuf::from(store));
    }
    let cells = env_usize("SHIFTSCOPE_BENCH_CELLS", 100_000);
    // Five layers, growing with depth like a CNN's, summing to `cells`.
    let shares = [1usize, 2, 4, 8, 16];
    let total: usize = shares.iter().sum();
    let mut sizes: Vec<usize> = shares.iter().map(|s| cells * s / total).collect();
    sizes[4] += cells - sizes.iter().sum::<usize>();
    let names = ["conv1", "conv2", "conv3", "conv4", "fc"];
    let layers: Vec<(&str, usize)> = names.iter().copied().zip(sizes.iter().copied()).collect();
    let dir = tempfile::tempdir().expect("temporary folder");
    let store = dir.path().join("store");
    SyntheticStore::dense(&layers, 10, 100)
        .write(&store)
        .expect("write the synthetic store");
    println!("frame-time benchmark: {cells} cells in 5 layers {sizes:?}, 1280×800");

    let exe = std::env::current_exe().expect("this benchmark's path");
    let mut command = Command::new(exe);
    command.env(CHILD, &store);
    let has_display =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let _x = if has_display {
        None
    } else {
        let x = HeadlessX::start(&dir.path().join("xdg"), 200..260).expect("start Xvfb");
        x.configure(&mut command);
        println!("no display: a private Xvfb on {} (Vulkan)", x.display);
        Some(x)
    };
    let output = command.output().expect("run the viewer");
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    if !output.status.success() {
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        panic!("the viewer failed: {}", output.status);
    }
    let (Some(map), Some(empty)) = (mean_ms(&stdout, "map"), mean_ms(&stdout, "empty")) else {
        panic!("no frame times in the viewer's output");
    };
    println!(
        "\nmap with {cells} cells: {map:.2} ms/frame ({:.1} fps); empty scene: {empty:.2} ms/frame ({:.1} fps); ratio {:.2}× the empty scene's frame time",
        1000.0 / map,
        1000.0 / empty,
        map / empty
    );
}
