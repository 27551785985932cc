//! Live mode (design/viewer.md, "Live"): an image file dropped on the window, given with
//! `--live`, or typed in the Live panel is run through the store's model on a worker thread
//! (never the render thread). Its results become the view model's [`LiveView`]: the Live
//! panel shows them, the map can be coloured by them ([`Measure::Live`]), and when the user
//! changes layer the worker is asked for that layer's channel maps.

use std::path::{Path, PathBuf};

use bevy::prelude::*;
use bevy::window::FileDragAndDrop;
use crossbeam::channel::{Receiver, Sender};
use shiftscope_runtime::{LiveModel, LiveOutput};
use shiftscope_ui::{ChannelMaps, Intent, LiveView, Loadable, Measure, Panel};

use crate::session::{Session, Step};

/// Opens the store's model, on the worker thread, the first time an image comes.
pub type LiveOpener = Box<dyn FnOnce() -> Result<LiveModel, String> + Send>;

/// One job: the image, and the layer whose channel maps to return.
type Job = (PathBuf, Option<usize>);

/// The live worker and what it has been asked.
#[derive(Resource, Debug)]
pub struct LiveWorker {
    jobs: Sender<Job>,
    results: Receiver<(Job, Result<LiveOutput, String>)>,
    /// Jobs sent and not yet answered.
    pending: usize,
    /// The image shown (the last asked for).
    current: Option<PathBuf>,
    generation: u64,
}

impl LiveWorker {
    /// Starts the worker thread `shiftscope-live`; the model is opened there, on the first
    /// image.
    pub fn spawn(opener: LiveOpener) -> std::io::Result<LiveWorker> {
        let mut opener = Some(opener);
        let mut model: Option<Result<LiveModel, String>> = None;
        let (jobs, results) = crate::worker::spawn("shiftscope-live", move |job: &Job| {
            let model = model.get_or_insert_with(|| match opener.take() {
                Some(open) => open(),
                None => Err("the model could not be opened".to_owned()),
            });
            match model {
                Ok(m) => m.run_file(&job.0, job.1).map_err(|e| e.to_string()),
                Err(e) => Err(format!("live mode needs the store's model: {e}")),
            }
        })?;
        Ok(LiveWorker {
            jobs,
            results,
            pending: 0,
            current: None,
            generation: 0,
        })
    }

    fn send(&mut self, path: PathBuf, layer: Option<usize>) {
        if self.jobs.send((path.clone(), layer)).is_ok() {
            self.pending += 1;
            self.current = Some(path);
        }
    }

    /// Whether a job is under way.
    pub fn busy(&self) -> bool {
        self.pending > 0
    }
}

/// Live mode's systems (`--live` arrives as a script action).
#[derive(Debug)]
pub struct LivePlugin;

impl Plugin for LivePlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, dropped_files.in_set(Step::Input))
            .add_systems(
                Update,
                (run_requests, follow_layer, receive_results)
                    .chain()
                    .after(Step::Apply)
                    .before(Step::Show),
            );
    }
}

fn dropped_files(mut drops: MessageReader<FileDragAndDrop>, mut session: ResMut<Session>) {
    for drop in drops.read() {
        if let FileDragAndDrop::DroppedFile { path_buf, .. } = drop {
            session.intents.push(Intent::RunLive(path_buf.clone()));
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Sends the images the session was asked to run; shows the Live panel and colours the map
/// by the live activations.
fn run_requests(mut session: ResMut<Session>, worker: Option<ResMut<LiveWorker>>) {
    if session.live_requests.is_empty() {
        return;
    }
    let requests = std::mem::take(&mut session.live_requests);
    let layer = session.ui.as_ref().map(|u| u.layer);
    let Some(path) = requests.into_iter().last() else {
        return;
    };
    let Some(vm) = session.vm.as_mut() else {
        return;
    };
    match worker {
        Some(mut worker) => {
            vm.live = Loadable::Loading(file_name(&path));
            worker.send(path, layer);
        }
        None => {
            vm.live = Loadable::Failed(
                "live mode is not available here: the viewer was opened without the store's model"
                    .to_owned(),
            );
        }
    }
    session.intents.push(Intent::ShowPanel(Panel::Live));
    session.intents.push(Intent::SetColourBy(Measure::Live));
}

/// Asks for the current layer's channel maps when the user changes layer.
fn follow_layer(session: Res<Session>, worker: Option<ResMut<LiveWorker>>) {
    let Some(mut worker) = worker else {
        return;
    };
    let (Some(vm), Some(ui)) = (&session.vm, &session.ui) else {
        return;
    };
    let Loadable::Ready(live) = &vm.live else {
        return;
    };
    let have = live.maps.as_ref().map(|m| m.layer);
    if worker.busy() || have == Some(ui.layer) {
        return;
    }
    if let Some(path) = worker.current.clone() {
        worker.send(path, Some(ui.layer));
    }
}

/// Takes the worker's results into the view model.
fn receive_results(mut session: ResMut<Session>, worker: Option<ResMut<LiveWorker>>) {
    let Some(mut worker) = worker else {
        return;
    };
    while let Ok(((path, _), result)) = worker.results.try_recv() {
        worker.pending = worker.pending.saturating_sub(1);
        // Only the image asked for last is shown.
        if worker.current.as_ref() != Some(&path) {
            continue;
        }
        worker.generation += 1;
        let generation = worker.generation;
        let Some(vm) = session.vm.as_mut() else {
            continue;
        };
        vm.live = match result {
            Ok(out) => {
                let view = view_of(out, generation);
                if let Some(&(class, p)) = view.predictions.first() {
                    tracing::info!(
                        "live: {} is {} ({:.1}%)",
                        view.name,
                        vm.class_name(class),
                        p * 100.0
                    );
                }
                Loadable::Ready(view)
            }
            Err(e) => {
                tracing::error!("live: {e}");
                Loadable::Failed(e)
            }
        };
        session.live_generation = generation;
        session.revision += 1;
    }
    session.live_busy = worker.busy();
}

/// The panel's view of a live result.
pub fn view_of(out: LiveOutput, generation: u64) -> LiveView {
    LiveView {
        generation,
        name: file_name(&out.path),
        predictions: LiveView::top5(&out.logits),
        width: out.width as usize,
        height: out.height as usize,
        rgb: out.pixels,
        layers: out.layers,
        maps: out.maps.map(|m| ChannelMaps {
            layer: m.layer,
            channels: m.channels,
            height: m.height,
            width: m.width,
            values: m.values,
        }),
    }
}
