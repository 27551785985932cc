//! Colour selectivity and Neuron Features from the viewer: the Neuron panel's Compute button
//! ([`Intent::ComputeFeatures`](shiftscope_ui::Intent)) hands `(layer, dataset, N)` to a
//! [`FeaturesRunner`] on the worker thread `shiftscope-features` (it re-runs the layer's top
//! images through the store's model and writes shiftscope-features' cache); when it is done
//! the selected neuron's detail and the map's colour-selectivity values are loaded again.

use bevy::prelude::*;
use crossbeam::channel::{Receiver, Sender};
use shiftscope_ui::{Loadable, Measure};

use crate::session::{Session, Step};

/// One request: layer, dataset, N.
pub type FeaturesJob = (usize, usize, usize);

/// Computes and caches one job's features; returns a line for people.
pub type FeaturesRunner = Box<dyn FnMut(FeaturesJob) -> Result<String, String> + Send>;

/// The features worker and what it has been asked.
#[derive(Resource, Debug)]
pub struct FeaturesWorker {
    jobs: Sender<FeaturesJob>,
    results: Receiver<(FeaturesJob, Result<String, String>)>,
    pending: Vec<FeaturesJob>,
}

impl FeaturesWorker {
    /// Starts the worker thread `shiftscope-features`.
    pub fn spawn(mut runner: FeaturesRunner) -> std::io::Result<FeaturesWorker> {
        let (jobs, results) =
            crate::worker::spawn("shiftscope-features", move |job: &FeaturesJob| runner(*job))?;
        Ok(FeaturesWorker {
            jobs,
            results,
            pending: Vec::new(),
        })
    }
}

/// The worker's systems.
#[derive(Debug)]
pub struct FeaturesPlugin;

impl Plugin for FeaturesPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(
            Update,
            (send_requests, receive_results)
                .chain()
                .after(Step::Apply)
                .before(Step::Show),
        );
    }
}

fn send_requests(mut session: ResMut<Session>, worker: Option<ResMut<FeaturesWorker>>) {
    if session.feature_requests.is_empty() {
        return;
    }
    let requests = std::mem::take(&mut session.feature_requests);
    let Some(mut worker) = worker else {
        if let Some(vm) = session.vm.as_mut() {
            vm.neuron = Loadable::Failed(
                "computing colour selectivity needs the store's model: run `shiftscope \
                 features <store> --layer L`, or open the viewer with `shiftscope view`"
                    .into(),
            );
        }
        return;
    };
    for job in requests {
        if !worker.pending.contains(&job) && worker.jobs.send(job).is_ok() {
            worker.pending.push(job);
        }
    }
    session.features_busy = !worker.pending.is_empty();
}

fn receive_results(mut session: ResMut<Session>, worker: Option<ResMut<FeaturesWorker>>) {
    let Some(mut worker) = worker else {
        return;
    };
    let worker = &mut *worker;
    let mut done = false;
    while let Ok((job, result)) = worker.results.try_recv() {
        worker.pending.retain(|j| *j != job);
        done = true;
        let Some(vm) = session.vm.as_mut() else {
            continue;
        };
        match result {
            Ok(line) => {
                tracing::info!("{line}");
                // Refill the Neuron panel; the map's CSI values are asked for again.
                vm.neuron = Loadable::Empty;
                let stale = |s: &Option<crate::session::Shown>| {
                    s.as_ref()
                        .is_some_and(|s| s.values.key.measure == Measure::ColourSelectivity)
                };
                if stale(&session.colour) {
                    session.colour = None;
                }
                if stale(&session.height) {
                    session.height = None;
                }
            }
            Err(e) => vm.neuron = Loadable::Failed(e),
        }
    }
    if done {
        session.features_busy = !worker.pending.is_empty();
        session.revision += 1;
    }
}
