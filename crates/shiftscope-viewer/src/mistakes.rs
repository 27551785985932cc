//! The Mistakes panel's numbers (design/viewer.md, "Mistakes and repair"): when the panel is
//! shown, the selected class (class 0 until one is chosen) goes to a [`MistakesRunner`] on the
//! worker thread `shiftscope-mistakes` (NeuroInspect's counterfactual search over every
//! misclassified image needs the model's decision layer, and takes seconds on a large set);
//! its [`MistakesView`] comes back into the view model.

use bevy::prelude::*;
use crossbeam::channel::{Receiver, Sender};
use shiftscope_analysis::ClassId;
use shiftscope_ui::{Loadable, MistakesView, Panel};

use crate::session::{Session, Step};

/// Explains one class: the neurons responsible for its mistakes per dataset, and the repair's
/// accuracies when a repair of the store exists.
pub type MistakesRunner = Box<dyn FnMut(usize) -> Result<MistakesView, String> + Send>;

/// The mistakes worker and what it has been asked.
#[derive(Resource, Debug)]
pub struct MistakesWorker {
    jobs: Sender<usize>,
    results: Receiver<(usize, Result<MistakesView, String>)>,
    /// The class asked for last.
    asked: Option<usize>,
    pending: usize,
}

impl MistakesWorker {
    /// Starts the worker thread `shiftscope-mistakes`.
    pub fn spawn(mut runner: MistakesRunner) -> std::io::Result<MistakesWorker> {
        let (jobs, results) =
            crate::worker::spawn("shiftscope-mistakes", move |&class: &usize| runner(class))?;
        Ok(MistakesWorker {
            jobs,
            results,
            asked: None,
            pending: 0,
        })
    }
}

/// The worker's systems.
#[derive(Debug)]
pub struct MistakesPlugin;

impl Plugin for MistakesPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(
            Update,
            (ask, receive).chain().after(Step::Apply).before(Step::Show),
        );
    }
}

/// Asks for the selected class while the Mistakes panel is shown.
fn ask(mut session: ResMut<Session>, worker: Option<ResMut<MistakesWorker>>) {
    let Some(ui) = &session.ui else {
        return;
    };
    if ui.panel() != Some(Panel::Mistakes) {
        return;
    }
    let class = ui.class().unwrap_or(ClassId(0)).0;
    let Some(vm) = session.vm.as_mut() else {
        return;
    };
    let Some(mut worker) = worker else {
        if matches!(vm.mistakes, Loadable::Empty) {
            vm.mistakes = Loadable::Failed(
                "explaining mistakes needs the store's model: open the store with `shiftscope \
                 view`, or run `shiftscope explain <store> --class C`"
                    .into(),
            );
        }
        return;
    };
    if worker.asked == Some(class) {
        return;
    }
    if worker.jobs.send(class).is_ok() {
        worker.asked = Some(class);
        worker.pending += 1;
        vm.mistakes = Loadable::Loading(format!("class {}", vm.class_name(ClassId(class))));
        session.mistakes_busy = true;
    }
}

fn receive(mut session: ResMut<Session>, worker: Option<ResMut<MistakesWorker>>) {
    let Some(mut worker) = worker else {
        return;
    };
    while let Ok((class, result)) = worker.results.try_recv() {
        worker.pending = worker.pending.saturating_sub(1);
        if worker.asked != Some(class) {
            continue; // the user moved on to another class
        }
        if let Some(vm) = session.vm.as_mut() {
            vm.mistakes = match result {
                Ok(view) => {
                    tracing::info!(
                        "mistakes of class {} explained on {} datasets through {}",
                        view.classes.get(class).map_or("?", String::as_str),
                        view.datasets.len(),
                        view.layer_name
                    );
                    Loadable::Ready(view)
                }
                Err(e) => {
                    tracing::error!("explaining class {class}: {e}");
                    Loadable::Failed(e)
                }
            };
        }
    }
    session.mistakes_busy = worker.pending > 0;
}
