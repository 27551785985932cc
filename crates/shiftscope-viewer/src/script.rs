//! The scripted mode: a list of [`Action`]s (from `--select`/`--panel`/`--screenshot` or a RON
//! file) run against the same app a user drives. Each action waits until the view is idle
//! (nothing loading, the camera at rest, a few frames drawn) before it acts, so screenshots
//! show finished views however slow the renderer is. Screenshots use Bevy's `Screenshot` and
//! print where the selected cell landed on screen (for tests to look there).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured, save_to_disk};
use serde::Deserialize;
use shiftscope_analysis::{ClassId, ImageId, NeuronId};
use shiftscope_ui::{Intent, Measure, Panel};

use crate::camera::OrbitCamera;
use crate::map::{MapKey, MapLayout, press_key};
use crate::session::{Session, Step};

/// One step of a script (RON: `[Select("fc1", 3), Panel("neuron"), Screenshot("out.png")]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub enum Action {
    /// Select a neuron: layer (name or number), index.
    Select(String, usize),
    /// Select an image: dataset (name or number), index.
    SelectImage(String, usize),
    /// Select a class by number.
    SelectClass(usize),
    /// Show a panel: `study`, `neuron`, `image`, `category`, `overview`.
    Panel(String),
    /// Colour by a measure: `activation`, `class-mean`, `difference`, `spurious`, `novelty`,
    /// `shift`, `rafegas`, `morcos`.
    ColourBy(String),
    /// Extrude by a measure (`None`: flat).
    Extrude(Option<String>),
    /// Press a key: `left`, `right`, `up`, `down`, `u`, `o`, `h`, `esc`.
    Key(String),
    /// Let this many frames pass.
    Wait(u32),
    /// Write a PNG of the window.
    Screenshot(PathBuf),
    /// Time this many frames and print their mean, median and 95th percentile under a label
    /// (the frame-time benchmark).
    Frames(u32, String),
    /// Show or hide the map's slabs (hidden: the benchmark's empty scene).
    ShowMap(bool),
    /// Run the model on an image file (live mode).
    Live(PathBuf),
    /// Compute a layer's colour selectivity and Neuron Features over N top images of the
    /// lead dataset (the Neuron panel's Compute button): layer (name or number), N.
    Compute(String, usize),
}

impl Action {
    /// Whether it is a screenshot.
    pub fn is_screenshot(&self) -> bool {
        matches!(self, Action::Screenshot(_))
    }

    /// Whether the script ends the app when done (it writes or measures something).
    pub fn ends_app(&self) -> bool {
        matches!(self, Action::Screenshot(_) | Action::Frames(..))
    }
}

/// Frame times of `frames`, in milliseconds: (mean, median, 95th percentile).
pub fn frame_stats(frames: &[f64]) -> (f64, f64, f64) {
    if frames.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut sorted = frames.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
    (mean, at(0.5), at(0.95))
}

/// Reads a RON script.
pub fn read_script(path: &Path) -> Result<Vec<Action>, crate::ViewerError> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::ViewerError::Script {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    ron::from_str(&text).map_err(|e| crate::ViewerError::Script {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })
}

/// A measure's script name.
pub fn measure_name(m: Measure) -> &'static str {
    match m {
        Measure::Activation => "activation",
        Measure::ClassMean => "class-mean",
        Measure::Difference => "difference",
        Measure::Spurious => "spurious",
        Measure::Novelty => "novelty",
        Measure::Shift => "shift",
        Measure::Rafegas => "rafegas",
        Measure::Morcos => "morcos",
        Measure::Live => "live",
        Measure::ColourSelectivity => "csi",
    }
}

/// The measure called `name`.
pub fn measure_named(name: &str) -> Option<Measure> {
    Measure::ALL
        .into_iter()
        .find(|&m| measure_name(m).eq_ignore_ascii_case(name))
}

/// Every panel's script name, comma-separated (for messages).
pub fn panel_list() -> String {
    Panel::ALL.map(|p| p.label().to_lowercase()).join(", ")
}

/// Every measure's script name, comma-separated (for messages).
pub fn measure_list() -> String {
    Measure::ALL.map(measure_name).join(", ")
}

/// The panel called `name`.
pub fn panel_named(name: &str) -> Option<Panel> {
    Panel::ALL
        .into_iter()
        .find(|p| p.label().eq_ignore_ascii_case(name))
}

/// Frames drawn after the view goes idle before a screenshot (egui lays out new content one
/// frame late; thumbnails become textures the frame after).
const SETTLE_FRAMES: u32 = 4;

/// The running script.
#[derive(Resource, Debug, Default)]
pub struct Script {
    actions: VecDeque<Action>,
    exit_when_done: bool,
    idle_frames: u32,
    waited: u32,
    shot: Option<(PathBuf, Arc<AtomicBool>)>,
    timing: Option<Timing>,
}

/// A running [`Action::Frames`].
#[derive(Debug)]
struct Timing {
    label: String,
    frames: u32,
    last: std::time::Instant,
    times_ms: Vec<f64>,
}

/// The scripted mode's systems.
#[derive(Debug)]
pub struct ScriptPlugin {
    /// What to do.
    pub actions: Vec<Action>,
    /// Exit once done (otherwise the window stays, interactive).
    pub exit_when_done: bool,
}

impl Plugin for ScriptPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Script {
            actions: self.actions.iter().cloned().collect(),
            exit_when_done: self.exit_when_done,
            ..Script::default()
        })
        .add_systems(Update, (run_script, take_exports).in_set(Step::Input));
    }
}

fn fail(message: String, exit: &mut MessageWriter<AppExit>) {
    eprintln!("error: {message}");
    exit.write(AppExit::error());
}

fn resolve(names: &[&str], which: &str) -> Option<usize> {
    names
        .iter()
        .position(|n| *n == which)
        .or_else(|| which.parse().ok().filter(|&i: &usize| i < names.len()))
}

#[allow(clippy::too_many_arguments)]
fn run_script(
    mut commands: Commands,
    mut script: ResMut<Script>,
    mut session: ResMut<Session>,
    layout: Res<MapLayout>,
    mut cameras: Query<(&mut OrbitCamera, &Camera, &GlobalTransform)>,
    mut slabs: Query<&mut Visibility, With<crate::map::SlabOf>>,
    mut exit: MessageWriter<AppExit>,
) {
    if let Some(timing) = &mut script.timing {
        let now = std::time::Instant::now();
        timing
            .times_ms
            .push((now - timing.last).as_secs_f64() * 1000.0);
        timing.last = now;
        if timing.times_ms.len() >= timing.frames as usize {
            let (mean, median, p95) = frame_stats(&timing.times_ms);
            println!(
                "frames {}: {} frames, mean {mean:.2} ms ({:.1} fps), median {median:.2} ms, p95 {p95:.2} ms",
                timing.label,
                timing.times_ms.len(),
                1000.0 / mean
            );
            script.timing = None;
            script.actions.pop_front();
            script.idle_frames = 0;
        }
        return;
    }
    if script.actions.is_empty() && script.shot.is_none() {
        if script.exit_when_done {
            script.exit_when_done = false;
            exit.write(AppExit::Success);
        }
        return;
    }
    if let Some(e) = &session.error {
        let e = e.clone();
        script.actions.clear();
        fail(e, &mut exit);
        return;
    }
    let settled = cameras.iter().all(|(c, _, _)| c.settled());
    if session.idle() && settled && !layout.0.slabs.is_empty() {
        script.idle_frames += 1;
    } else {
        script.idle_frames = 0;
        return;
    }
    if let Some((path, done)) = &script.shot {
        if done.load(Ordering::Acquire) {
            let path = path.clone();
            script.shot = None;
            report_selected(&path, &session, &layout, &cameras);
        }
        return;
    }
    let Some(action) = script.actions.front().cloned() else {
        return;
    };
    let Some(vm) = &session.vm else {
        return;
    };
    match action {
        Action::Frames(n, label) => {
            script.timing = Some(Timing {
                label,
                frames: n.max(1),
                last: std::time::Instant::now(),
                times_ms: Vec::with_capacity(n as usize),
            });
            return; // popped when the frames are timed
        }
        Action::Live(path) => session.intents.push(Intent::RunLive(path)),
        Action::ShowMap(show) => {
            for mut visibility in &mut slabs {
                *visibility = if show {
                    Visibility::Inherited
                } else {
                    Visibility::Hidden
                };
            }
        }
        Action::Wait(n) => {
            script.waited += 1;
            if script.waited < n {
                return;
            }
            script.waited = 0;
        }
        Action::Screenshot(path) => {
            if script.idle_frames < SETTLE_FRAMES {
                return;
            }
            let done = Arc::new(AtomicBool::new(false));
            let flag = done.clone();
            let mut save = save_to_disk(path.clone());
            commands.spawn(Screenshot::primary_window()).observe(
                move |captured: On<ScreenshotCaptured>| {
                    save(captured);
                    flag.store(true, Ordering::Release);
                },
            );
            script.shot = Some((path, done));
        }
        Action::Select(layer, index) => {
            let names: Vec<&str> = vm.layers.iter().map(|l| l.name.as_str()).collect();
            let Some(l) = resolve(&names, &layer) else {
                return fail(
                    format!(
                        "select {layer}:{index}: no layer {layer} (the store has {})",
                        names.join(", ")
                    ),
                    &mut exit,
                );
            };
            if index >= vm.layers[l].neurons {
                return fail(
                    format!(
                        "select {layer}:{index}: {layer} has {} neurons",
                        vm.layers[l].neurons
                    ),
                    &mut exit,
                );
            }
            session.intents.push(Intent::SelectNeuron(NeuronId {
                layer: l,
                neuron: index,
            }));
        }
        Action::Compute(layer, top) => {
            let names: Vec<&str> = vm.layers.iter().map(|l| l.name.as_str()).collect();
            let Some(l) = resolve(&names, &layer) else {
                return fail(
                    format!(
                        "compute {layer}: no layer {layer} (the store has {})",
                        names.join(", ")
                    ),
                    &mut exit,
                );
            };
            let dataset = session.ui.as_ref().map_or(vm.reference, |u| u.lead);
            session.intents.push(Intent::ComputeFeatures {
                layer: l,
                dataset,
                top,
            });
        }
        Action::SelectImage(dataset, index) => {
            let names: Vec<&str> = vm.datasets.iter().map(|d| d.name.as_str()).collect();
            let Some(d) = resolve(&names, &dataset) else {
                return fail(
                    format!(
                        "select image {dataset}#{index}: no dataset {dataset} (the store has {})",
                        names.join(", ")
                    ),
                    &mut exit,
                );
            };
            if index >= vm.datasets[d].images {
                return fail(
                    format!(
                        "select image {dataset}#{index}: {dataset} has {} images",
                        vm.datasets[d].images
                    ),
                    &mut exit,
                );
            }
            session
                .intents
                .push(Intent::SelectImage(ImageId { dataset: d, index }));
        }
        Action::SelectClass(c) => {
            if c >= vm.classes.len() {
                return fail(
                    format!(
                        "select class {c}: the store has {} classes",
                        vm.classes.len()
                    ),
                    &mut exit,
                );
            }
            session.intents.push(Intent::SelectClass(ClassId(c)));
        }
        Action::Panel(name) => {
            let Some(p) = panel_named(&name) else {
                return fail(
                    format!("panel {name}: expected one of {}", panel_list()),
                    &mut exit,
                );
            };
            session.intents.push(Intent::ShowPanel(p));
        }
        Action::ColourBy(name) => {
            let Some(m) = measure_named(&name) else {
                return fail(
                    format!("colour by {name}: expected one of {}", measure_list()),
                    &mut exit,
                );
            };
            session.intents.push(Intent::SetColourBy(m));
        }
        Action::Extrude(name) => {
            let m = match name.as_deref().map(measure_named) {
                None => None,
                Some(Some(m)) => Some(m),
                Some(None) => {
                    return fail(format!("extrude by {name:?}: unknown measure"), &mut exit);
                }
            };
            session.extrude = m;
            session.height = None;
            session.revision += 1;
        }
        Action::Key(name) => {
            let Some(key) = MapKey::from_name(&name) else {
                return fail(
                    format!("key {name}: expected left, right, up, down, u, o, h or esc"),
                    &mut exit,
                );
            };
            if press_key(&mut session, &layout.0, key) {
                for (mut cam, _, _) in &mut cameras {
                    cam.target = cam.home;
                }
            }
        }
    }
    script.actions.pop_front();
    script.idle_frames = 0;
}

/// Writes the screenshots the panels' "Export PNG" asked for.
fn take_exports(mut commands: Commands, mut session: ResMut<Session>) {
    if session.exports.is_empty() {
        return;
    }
    for path in std::mem::take(&mut session.exports) {
        println!("exporting the view to {}", path.display());
        commands
            .spawn(Screenshot::primary_window())
            .observe(save_to_disk(path));
    }
}

/// Prints where the selected cell is in the screenshot (window pixels), for tests.
fn report_selected(
    path: &Path,
    session: &Session,
    layout: &MapLayout,
    cameras: &Query<(&mut OrbitCamera, &Camera, &GlobalTransform)>,
) {
    let selected = session.ui.as_ref().and_then(shiftscope_ui::UiState::neuron);
    let place = selected.and_then(|id| {
        let slab = layout.0.slabs.get(id.layer)?;
        let (_, camera, transform) = cameras.iter().next()?;
        let p = camera
            .world_to_viewport(
                transform,
                slab.centre(id.neuron) + Vec3::Y * crate::slab::lift(session.height.as_ref(), id),
            )
            .ok()?;
        Some((id, p))
    });
    match (place, &session.vm) {
        (Some((id, p)), Some(vm)) => println!(
            "screenshot {}: selected {} at {:.0},{:.0}",
            path.display(),
            vm.neuron_name(id),
            p.x,
            p.y
        ),
        _ => println!("screenshot {}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_statistics_by_hand() {
        let (mean, median, p95) = frame_stats(&[4.0, 1.0, 3.0, 2.0, 10.0]);
        assert!((mean - 4.0).abs() < 1e-12);
        assert_eq!(median, 3.0);
        assert_eq!(p95, 10.0);
        assert!(frame_stats(&[]).0.is_nan());
    }

    #[test]
    fn scripts_read_from_ron() {
        let text = r#"[
            Select("fc1", 3),
            Panel("neuron"),
            ColourBy("class-mean"),
            Extrude(Some("spurious")),
            Key("u"),
            Wait(5),
            SelectImage("mnist", 2),
            SelectClass(7),
            Screenshot("out.png"),
            ShowMap(false),
            Frames(100, "empty"),
        ]"#;
        let actions: Vec<Action> = ron::from_str(text).expect("script");
        assert_eq!(actions.len(), 11);
        assert_eq!(actions[0], Action::Select("fc1".into(), 3));
        assert!(actions[8].is_screenshot());
        assert_eq!(actions[9], Action::ShowMap(false));
        assert!(actions[10].ends_app() && !actions[9].ends_app());
        assert_eq!(measure_named("class-mean"), Some(Measure::ClassMean));
        for m in Measure::ALL {
            assert_eq!(measure_named(measure_name(m)), Some(m));
        }
        assert_eq!(panel_named("Neuron"), Some(Panel::Neuron));
        assert_eq!(resolve(&["conv1", "fc1"], "fc1"), Some(1));
        assert_eq!(resolve(&["conv1", "fc1"], "0"), Some(0));
        assert_eq!(resolve(&["conv1", "fc1"], "7"), None);
    }
}
