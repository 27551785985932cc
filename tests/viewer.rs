//! `shiftscope view` end to end: a small colored-MNIST store recorded with the real binary on
//! the demo CNN, then the viewer run headless under Xvfb with Mesa's software Vulkan
//! (lavapipe): `--screenshot out.png --select fc1:3 --panel neuron`, and the picture checked:
//! its size, that it is not blank, the selected cell's highlight where the viewer's camera put
//! it, and the Neuron panel on the right. Without a display, `view --screenshot` starts its
//! own Xvfb.

#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use shiftscope_viewer::headless::HeadlessX;

/// The selected cell's outline colour (shiftscope-viewer's `slab::HIGHLIGHT`).
const HIGHLIGHT: [u8; 3] = [255, 0, 255];

/// The viewer tests run one at a time (each holds this while its X server lives): two
/// software renderers on 2 cores only slow each other down.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// An X server of our own (the viewer's `HeadlessX`), stopped on drop, then the lock let go.
struct Xvfb {
    x: HeadlessX,
    _runtime: tempfile::TempDir,
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// `None` where Xvfb is not installed.
fn xvfb() -> Option<Xvfb> {
    if Command::new("Xvfb").arg("-help").output().is_err() {
        return None;
    }
    let serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtime = tempfile::tempdir().unwrap();
    let x = HeadlessX::start(runtime.path(), 140..200).unwrap();
    Some(Xvfb {
        x,
        _runtime: runtime,
        _serial: serial,
    })
}

impl Xvfb {
    /// Runs `shiftscope ARGS` on this display; its stdout and stderr, once it has succeeded.
    fn run<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> (String, String) {
        let mut command = Command::new(common::binary());
        command.args(args);
        self.x.configure(&mut command);
        let out = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "view failed:\n{stdout}\n{stderr}");
        (stdout, stderr)
    }

    /// Runs `shiftscope FLAGS view STORE --script actions.ron` at 1280×800, the file (beside the
    /// store) holding `actions` (RON); its stdout and stderr.
    fn script(&self, flags: &[&str], store: &Path, actions: &str) -> (String, String) {
        let script = store.with_file_name("actions.ron");
        std::fs::write(&script, actions).unwrap();
        let mut args: Vec<&OsStr> = flags.iter().map(OsStr::new).collect();
        args.extend([OsStr::new("view"), store.as_os_str()]);
        args.extend([OsStr::new("--script"), script.as_os_str()]);
        args.extend([OsStr::new("--size"), OsStr::new("1280x800")]);
        self.run(args)
    }
}

/// An X server (the lock held) and, in a temporary folder, [`store`]; `None` (with a note)
/// where Xvfb is not installed.
fn viewer_store() -> Option<(Xvfb, tempfile::TempDir, PathBuf)> {
    let Some(x) = xvfb() else {
        println!("SKIPPED: Xvfb is not installed (tools/setup.sh installs it)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    Some((x, dir, store))
}

/// A store of 64 images of colored MNIST and its permuted shift on the demo CNN.
fn store(dir: &Path) -> PathBuf {
    common::demo_cnn_store(
        dir,
        &[
            ("colored-mnist/id", "Id", 64),
            ("colored-mnist/permuted", "Ood", 64),
        ],
        32,
    )
}

struct Picture {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Picture {
    fn read(path: &Path) -> Picture {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let channels = info.color_type.samples();
        let (width, height) = (info.width as usize, info.height as usize);
        let rgb = buf[..width * height * channels]
            .chunks(channels)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        Picture { width, height, rgb }
    }

    fn at(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Pixels of the selection's colour within 40 pixels of `(cx, cy)`.
    fn highlight_near(&self, cx: i64, cy: i64) -> usize {
        let mut highlighted = 0;
        for y in (cy - 40).max(0)..(cy + 40).min(self.height as i64) {
            for x in (cx - 40).max(0)..(cx + 40).min(self.width as i64) {
                let [r, g, b] = self.at(x as usize, y as usize);
                if r > 200 && g < 80 && b > 200 {
                    highlighted += 1;
                }
            }
        }
        highlighted
    }

    fn distinct(&self, x0: usize, x1: usize) -> usize {
        let mut seen = std::collections::HashSet::new();
        for y in 0..self.height {
            for x in x0..x1 {
                seen.insert(self.at(x, y));
            }
        }
        seen.len()
    }
}

#[test]
fn view_screenshot_shows_the_selected_neuron() {
    let Some((x, dir, store)) = viewer_store() else {
        return;
    };
    let shot = dir.path().join("out.png");
    let (stdout, _) = x.run([
        "view",
        store.to_str().unwrap(),
        "--screenshot",
        shot.to_str().unwrap(),
        "--select",
        "fc1:3",
        "--panel",
        "neuron",
        "--size",
        "1280x800",
    ]);

    let pic = Picture::read(&shot);
    assert_eq!((pic.width, pic.height), (1280, 800));

    // Not blank: the map and the panels make many colours.
    let colours = pic.distinct(0, pic.width);
    assert!(colours > 200, "only {colours} distinct colours");

    // The viewer says where the selected cell is; its highlight is there.
    let (cx, cy) = reported(&stdout, "out.png", "fc1:3");
    let highlighted = pic.highlight_near(cx, cy);
    assert!(
        highlighted >= 20,
        "only {highlighted} highlight pixels {HIGHLIGHT:?} near ({cx}, {cy})"
    );
    // And not everywhere: it marks one cell.
    let everywhere = (0..pic.height)
        .flat_map(|y| (0..pic.width - 430).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let [r, g, b] = pic.at(x, y);
            r > 200 && g < 80 && b > 200
        })
        .count();
    assert!(
        everywhere < highlighted * 3,
        "{everywhere} highlight pixels in all"
    );

    // The right side holds the Neuron panel: text and thumbnails on a panel background,
    // unlike the map's plain background.
    let background = pic.at(pic.width - 500, pic.height / 2);
    let panel_colours = pic.distinct(pic.width - 420, pic.width);
    assert!(
        panel_colours > 50,
        "panel region has {panel_colours} colours"
    );
    let differing = (100..pic.height - 20)
        .step_by(7)
        .flat_map(|y| (pic.width - 420..pic.width).step_by(7).map(move |x| (x, y)))
        .filter(|&(x, y)| pic.at(x, y) != background)
        .count();
    assert!(
        differing > 100,
        "the panel region looks like the map background"
    );
}

/// Where the viewer said the selected `neuron` is in the screenshot whose path ends with
/// `file` (its line `screenshot PATH: selected NEURON at X,Y`).
fn reported(stdout: &str, file: &str, neuron: &str) -> (i64, i64) {
    let line = stdout
        .lines()
        .find(|l| l.contains(&format!("{file}: selected {neuron} at ")))
        .unwrap_or_else(|| panic!("no report of {neuron} in {file} in:\n{stdout}"));
    let (px, py) = line.rsplit_once(" at ").unwrap().1.split_once(',').unwrap();
    let (px, py): (f32, f32) = (px.trim().parse().unwrap(), py.trim().parse().unwrap());
    (px.round() as i64, py.round() as i64)
}

#[test]
fn extruding_by_the_colour_measure_raises_the_cells_and_the_selection() {
    let Some((x, dir, store)) = viewer_store() else {
        return;
    };
    let (flat, raised) = (dir.path().join("flat.png"), dir.path().join("raised.png"));
    // The same view twice, flat then extruded by the measure it is coloured by.
    let (stdout, _) = x.script(
        &[],
        &store,
        &format!(
            "[ColourBy(\"spurious\"), Select(\"conv2\", 5), Panel(\"study\"), Wait(5), \
             Screenshot({flat:?}), Extrude(Some(\"spurious\")), Wait(5), Screenshot({raised:?})]"
        ),
    );
    let (a, b) = (Picture::read(&flat), Picture::read(&raised));
    // The map (left of the panel) changed: cells rose and grew walls.
    let changed = (60..a.height)
        .step_by(2)
        .flat_map(|y| (0..a.width - 440).step_by(2).map(move |x| (x, y)))
        .filter(|&(x, y)| a.at(x, y) != b.at(x, y))
        .count();
    assert!(
        changed > 2000,
        "only {changed} map pixels changed on extruding"
    );
    // The selected cell is reported at its raised top (never below its foot), and its
    // highlight is there.
    let (fx, fy) = reported(&stdout, "flat.png", "conv2:5");
    let (rx, ry) = reported(&stdout, "raised.png", "conv2:5");
    assert!(
        ry <= fy + 1 && (rx - fx).abs() < 40,
        "flat ({fx}, {fy}), raised ({rx}, {ry})"
    );
    let highlighted = b.highlight_near(rx, ry);
    assert!(
        highlighted >= 20,
        "only {highlighted} highlight pixels near ({rx}, {ry})"
    );
}

#[test]
fn the_neuron_panels_compute_runs_the_model_and_the_map_colours_by_csi() {
    let Some((x, dir, store)) = viewer_store() else {
        return;
    };
    let shot = dir.path().join("out.png");
    // What the Neuron panel's Compute button sends, from a script; the screenshot waits
    // until the features worker is done and the panel has reloaded.
    let (_, stderr) = x.script(
        &[],
        &store,
        &format!(
            "[Select(\"conv1\", 6), Panel(\"neuron\"), Compute(\"conv1\", 20), \
             ColourBy(\"csi\"), Screenshot({shot:?})]"
        ),
    );
    assert!(shot.is_file());
    // The worker wrote the cache that `shiftscope features` reads back.
    let again = Command::new(common::binary())
        .args([
            "features",
            store.to_str().unwrap(),
            "--layer",
            "conv1",
            "--top",
            "20",
        ])
        .output()
        .unwrap();
    let again = String::from_utf8_lossy(&again.stdout);
    assert!(again.contains("from the cache"), "{again}\n{stderr}");
    assert!(again.contains("most colour-selective"), "{again}");
}

#[test]
fn live_mode_and_the_mistakes_panel_run_their_workers() {
    let Some((x, dir, store)) = viewer_store() else {
        return;
    };
    // A live image: a 28×28 red square on black, as a PNG.
    let image = dir.path().join("square.png");
    let mut rgb = vec![0u8; 28 * 28 * 3];
    for y in 8..20 {
        for x in 8..20 {
            rgb[(y * 28 + x) * 3] = 230;
        }
    }
    common::write_png(&image, 28, 28, &rgb);
    let live_shot = dir.path().join("live.png");
    let mistakes_shot = dir.path().join("mistakes.png");
    // Each screenshot waits until its worker has answered.
    let (_, stderr) = x.script(
        &["-v"],
        &store,
        &format!(
            "[Live({image:?}), Select(\"conv2\", 1), Screenshot({live_shot:?}), \
             SelectClass(3), Panel(\"mistakes\"), Screenshot({mistakes_shot:?})]"
        ),
    );
    assert!(live_shot.is_file() && mistakes_shot.is_file());
    // The live worker ran the model on the file; the mistakes worker explained class 3 on
    // both datasets through fc1 (the demo CNN's decision-layer input).
    assert!(stderr.contains("live: square.png is "), "{stderr}");
    assert!(
        stderr.contains("mistakes of class 3 explained on 2 datasets through fc1"),
        "{stderr}"
    );
    assert!(!stderr.contains("ERROR"), "{stderr}");
}

/// Without a display, `view` says so and how to run it headless, instead of winit's panic.
#[test]
fn view_without_a_display_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::binary())
        .arg("view")
        .arg(dir.path())
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no display to open the viewer's window on")
            && stderr.contains("--screenshot view.png"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// With no display, `view --screenshot` renders on an X server of its own: no `xvfb-run`.
#[test]
fn view_screenshot_without_a_display_starts_its_own_x_server() {
    // Holds the lock and checks Xvfb is there; the viewer below starts its own server.
    let Some((_x, dir, store)) = viewer_store() else {
        return;
    };
    let shot = dir.path().join("headless.png");
    let out = Command::new(common::binary())
        .arg("view")
        .arg(&store)
        .arg("--screenshot")
        .arg(&shot)
        .args(["--select", "fc1:3", "--size", "640x400"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "view failed:\n{stderr}");
    assert!(
        stderr.contains("rendering on a private X server"),
        "{stderr}"
    );
    let pic = Picture::read(&shot);
    assert_eq!((pic.width, pic.height), (640, 400));
    let colours = pic.distinct(0, pic.width);
    assert!(colours > 100, "only {colours} distinct colours");
}
