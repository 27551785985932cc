//! The viewer (design/viewer.md): a Bevy window with the network as a 3D map (one slab per
//! recorded layer, one cell per neuron, coloured by a measure) and shiftscope-ui's egui panels
//! around it. It owns the Bevy side only: the map (one mesh and one data texture per layer,
//! a WGSL material mapping value → colour), analytic picking, the camera controller, the
//! keyboard, hosting the panels and applying their intents, the loader thread that talks to
//! the analysis, screenshots and the scripted mode. The numbers come from
//! `shiftscope-analysis`, the panels and the state from `shiftscope-ui`.
//!
//! [`run_viewer`] only composes the plugins: [`loader`] (worker thread and replies),
//! [`session::SessionPlugin`] (state, intents, requests), [`map::MapPlugin`],
//! [`camera::CameraPlugin`], [`ui::UiPlugin`] and [`script::ScriptPlugin`]. [`headless`]
//! starts a private X server for screenshots and benchmarks where there is no display.

// Bevy systems take their parameters (`Res`, `Query`, …) by value: that is the API.
#![allow(clippy::needless_pass_by_value)]

pub mod camera;
pub mod features;
pub use shiftscope_ui::colour;
pub mod headless;
pub mod layout;
pub mod live;
pub mod loader;
pub mod map;
pub mod mistakes;
pub mod script;
pub mod session;
pub mod slab;
pub mod ui;
mod worker;

use std::path::PathBuf;

use bevy::prelude::*;
use bevy::window::{PresentMode, WindowResolution};
use bevy::winit::WinitSettings;
use shiftscope_ui::{LoadOptions, Measure, Panel};

pub use script::Action;

/// Why the viewer could not run.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    /// The store folder does not exist.
    #[error("the store {0} does not exist (record one with `shiftscope extract`)")]
    NoStore(PathBuf),
    /// The script does not read.
    #[error("reading the script {path}: {problem}")]
    Script {
        /// The script file.
        path: PathBuf,
        /// What was wrong.
        problem: String,
    },
    /// The loader thread could not start.
    #[error("starting the loader thread: {0}")]
    Thread(#[from] std::io::Error),
    /// Linux without an X or Wayland display to open the window on.
    #[error(
        "no display to open the viewer's window on (DISPLAY and WAYLAND_DISPLAY are unset): run \
         it in a desktop session, or headless with `shiftscope view {0} --screenshot view.png` \
         (rendered on a private Xvfb, which tools/setup.sh installs)"
    )]
    NoDisplay(String),
    /// The app stopped with an error (already printed: a failed load, a bad selection).
    #[error("the viewer stopped: {0}")]
    Failed(String),
}

/// What `shiftscope view` asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewerOptions {
    /// The store folder.
    pub store: PathBuf,
    /// Window size in logical pixels.
    pub size: (u32, u32),
    /// Select this neuron (`layer:index`, the layer by name or number) once loaded.
    pub select: Option<String>,
    /// Show this panel once loaded.
    pub panel: Option<Panel>,
    /// Colour the map by this measure.
    pub colour_by: Option<Measure>,
    /// Write a screenshot here once everything has loaded, then exit.
    pub screenshot: Option<PathBuf>,
    /// Run these actions (screenshots included), then exit.
    pub script: Vec<Action>,
    /// Run the model on this image file once loaded (live mode).
    pub live: Option<PathBuf>,
}

impl ViewerOptions {
    /// Options that just open `store`.
    pub fn new(store: PathBuf) -> ViewerOptions {
        ViewerOptions {
            store,
            size: (1280, 800),
            select: None,
            panel: None,
            colour_by: None,
            screenshot: None,
            script: Vec::new(),
            live: None,
        }
    }

    /// The actions these options mean: the selection, panel and measure first, then the
    /// script, then the screenshot. Empty: interactive.
    pub fn actions(&self) -> Result<Vec<Action>, ViewerError> {
        let mut out = Vec::new();
        if let Some(select) = &self.select {
            let (layer, index) = select.rsplit_once(':').ok_or_else(|| {
                ViewerError::Failed(format!("--select {select}: expected layer:index"))
            })?;
            let index = index.parse().map_err(|_| {
                ViewerError::Failed(format!("--select {select}: {index} is not a neuron index"))
            })?;
            out.push(Action::Select(layer.to_string(), index));
        }
        if let Some(panel) = self.panel {
            out.push(Action::Panel(panel.label().to_lowercase()));
        }
        if let Some(path) = &self.live {
            out.push(Action::Live(path.clone()));
        }
        if let Some(m) = self.colour_by {
            out.push(Action::ColourBy(script::measure_name(m).to_string()));
        }
        out.extend(self.script.iter().cloned());
        if let Some(path) = &self.screenshot {
            out.push(Action::Screenshot(path.clone()));
        }
        Ok(out)
    }
}

/// The worker threads that need the store's model, which only the binary can open (it owns
/// the plugin registry). Each is optional: without it, its panel says what is missing.
#[derive(Default)]
pub struct Workers {
    /// Live mode: images dropped on the window (or `--live`) through the model.
    pub live: Option<live::LiveOpener>,
    /// The Neuron panel's Compute button: colour selectivity and Neuron Features.
    pub features: Option<features::FeaturesRunner>,
    /// The Mistakes panel: responsible neurons of the selected class, and the repair.
    pub mistakes: Option<mistakes::MistakesRunner>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("live", &self.live.is_some())
            .field("features", &self.features.is_some())
            .field("mistakes", &self.mistakes.is_some())
            .finish()
    }
}

/// Whether there is a display to open a window on: always off Linux; on Linux, an X or
/// Wayland display named in the environment.
pub fn has_display() -> bool {
    !cfg!(target_os = "linux")
        || ["DISPLAY", "WAYLAND_DISPLAY", "WAYLAND_SOCKET"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

/// Opens the viewer and blocks until its window closes (or, with a screenshot or a script,
/// until they are done). `workers` run what needs the model, each on its own thread.
pub fn run_viewer(options: &ViewerOptions, workers: Workers) -> Result<(), ViewerError> {
    if !options.store.is_dir() {
        return Err(ViewerError::NoStore(options.store.clone()));
    }
    // Without a display, winit's event loop would panic.
    if !has_display() {
        return Err(ViewerError::NoDisplay(options.store.display().to_string()));
    }
    let actions = options.actions()?;
    let scripted = actions.iter().any(Action::ends_app);
    // Timing frames means drawing flat out, not at the display's refresh rate.
    let timing = actions.iter().any(|a| matches!(a, Action::Frames(..)));
    let loader = loader::Loader::spawn(options.store.clone(), LoadOptions::default())?;
    let live_worker = workers.live.map(live::LiveWorker::spawn).transpose()?;
    let features_worker = workers
        .features
        .map(features::FeaturesWorker::spawn)
        .transpose()?;
    let mistakes_worker = workers
        .mistakes
        .map(mistakes::MistakesWorker::spawn)
        .transpose()?;
    let (w, h) = options.size;
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: format!("shiftscope — {}", options.store.display()),
                    resolution: WindowResolution::new(w, h).with_scale_factor_override(1.0),
                    present_mode: if timing {
                        PresentMode::AutoNoVsync
                    } else {
                        PresentMode::AutoVsync
                    },
                    ..default()
                }),
                ..default()
            })
            // The binary has set up `tracing` already.
            .disable::<bevy::log::LogPlugin>(),
    )
    .insert_resource(ClearColor(Color::srgb(0.075, 0.08, 0.095)))
    // Scripts run flat out; an interactive window still redraws continuously so the camera
    // eases and progress moves without input.
    .insert_resource(WinitSettings::continuous())
    .insert_resource(loader)
    .add_plugins((
        live::LivePlugin,
        features::FeaturesPlugin,
        mistakes::MistakesPlugin,
        bevy_egui::EguiPlugin::default(),
        session::SessionPlugin,
        camera::CameraPlugin,
        map::MapPlugin,
        ui::UiPlugin,
        script::ScriptPlugin {
            actions,
            exit_when_done: scripted,
        },
    ));
    if let Some(worker) = live_worker {
        app.insert_resource(worker);
    }
    if let Some(worker) = features_worker {
        app.insert_resource(worker);
    }
    if let Some(worker) = mistakes_worker {
        app.insert_resource(worker);
    }
    match app.run() {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => Err(ViewerError::Failed(format!("exit code {code}"))),
    }
}
