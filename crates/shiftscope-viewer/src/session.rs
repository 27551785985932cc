//! The session: the view model and the UI state as Bevy resources, the intents waiting to be
//! applied, and what has been asked of the loader. Each frame it takes the loader's replies,
//! applies intents with [`UiState::apply`], fulfils their side effects, and asks the loader
//! for whatever the state now shows and nobody has asked for yet.

use std::path::PathBuf;

use bevy::prelude::*;
use shiftscope_analysis::{ClassId, ImageId, NeuronId};
use shiftscope_ui::{Intent, Loadable, Measure, UiState, ViewModel};

use crate::colour::{self, ColourMap};
use crate::loader::{LayerValues, Loader, Reply, Request, ValuesKey};

/// The image a key names when its measure depends on no image.
pub const NO_IMAGE: ImageId = ImageId {
    dataset: 0,
    index: 0,
};

/// The dataset number live values are keyed under (no store dataset has it).
pub const LIVE_DATASET: usize = usize::MAX;

/// A measure's values as the map shows them, with the range they were scaled to.
#[derive(Clone, Debug, PartialEq)]
pub struct Shown {
    /// The values.
    pub values: LayerValues,
    /// Their colour map.
    pub map: ColourMap,
    /// The range mapped onto it (`None`: no value is defined).
    pub range: Option<(f32, f32)>,
}

impl Shown {
    /// Scales values for the map.
    pub fn new(values: LayerValues) -> Shown {
        let map = map_of(values.key.measure);
        let range = colour::range(values.layers.iter().flatten().copied(), map);
        Shown { values, map, range }
    }

    /// A neuron's value.
    pub fn value(&self, id: NeuronId) -> Option<f32> {
        self.values
            .layers
            .get(id.layer)?
            .get(id.neuron)
            .copied()
            .filter(|v| v.is_finite())
    }
}

/// The colour map a measure is drawn with.
pub fn map_of(m: Measure) -> ColourMap {
    if m.diverging() {
        ColourMap::Diverging
    } else {
        ColourMap::Sequential
    }
}

/// Everything the viewer knows and has asked for.
#[derive(Resource, Debug, Default)]
pub struct Session {
    /// The view model, once loaded.
    pub vm: Option<ViewModel>,
    /// The UI state, once loaded.
    pub ui: Option<UiState>,
    /// Loading progress: layers analysed, layers.
    pub progress: (usize, usize),
    /// Why loading failed.
    pub error: Option<String>,
    /// Intents to apply next frame (from panels, the map, the keyboard, scripts).
    pub intents: Vec<Intent>,
    /// The neuron under the pointer.
    pub hovered: Option<NeuronId>,
    /// Whether the help overlay is up.
    pub help: bool,
    /// The measure cells are extruded by (`None`: flat).
    pub extrude: Option<Measure>,
    /// The colour values shown.
    pub colour: Option<Shown>,
    /// The extrusion values shown.
    pub height: Option<Shown>,
    /// Values asked for and not yet here.
    pub waiting: Vec<ValuesKey>,
    /// The selected neuron's strongest inputs, once here.
    pub inputs: Option<(NeuronId, Vec<(usize, f32)>)>,
    /// The neuron whose inputs were asked for.
    pub inputs_asked: Option<NeuronId>,
    /// Bumped whenever the map's values or selection change (the map re-uploads).
    pub revision: u64,
    /// Screenshots asked for by the panels' export button.
    pub exports: Vec<PathBuf>,
    /// Image files to run live (from intents), for the live worker.
    pub live_requests: Vec<PathBuf>,
    /// Whether the live worker is running one.
    pub live_busy: bool,
    /// The live result shown (keys the map's live values).
    pub live_generation: u64,
    /// Colour selectivity computations asked for (layer, dataset, N), for the features worker.
    pub feature_requests: Vec<(usize, usize, usize)>,
    /// Whether the features worker is running one.
    pub features_busy: bool,
    /// Whether the mistakes worker is explaining a class.
    pub mistakes_busy: bool,
}

impl Session {
    /// Whether nothing the screen shows is still on its way.
    pub fn idle(&self) -> bool {
        let Some(vm) = &self.vm else {
            return false;
        };
        let inputs_here = match self.inputs_asked {
            None => true,
            Some(id) => self.inputs.as_ref().is_some_and(|i| i.0 == id),
        };
        self.waiting.is_empty()
            && self.intents.is_empty()
            && self.live_requests.is_empty()
            && !self.live_busy
            && self.feature_requests.is_empty()
            && !self.features_busy
            && !self.mistakes_busy
            && !matches!(vm.mistakes, Loadable::Loading(_))
            && !matches!(vm.live, Loadable::Loading(_))
            && inputs_here
            && !matches!(vm.neuron, Loadable::Loading(_))
            && !matches!(vm.image, Loadable::Loading(_))
            && !matches!(vm.class, Loadable::Loading(_))
    }

    /// The values the colour measure needs given the state.
    pub fn key(&self, measure: Measure) -> Option<ValuesKey> {
        let (vm, ui) = (self.vm.as_ref()?, self.ui.as_ref()?);
        let lead = ui.lead;
        let image = ui.image().unwrap_or(ImageId {
            dataset: lead,
            index: 0,
        });
        let key = ValuesKey {
            measure,
            image,
            class: ui.class().unwrap_or(ClassId(0)),
            lead,
            ood: vm.focus(ui).and_then(|o| vm.ood.get(o).copied()),
        };
        // Only what the measure depends on, so unrelated selections do not re-ask.
        Some(match measure {
            Measure::Activation => ValuesKey {
                class: ClassId(0),
                ood: None,
                ..key
            },
            Measure::ClassMean => ValuesKey {
                image: NO_IMAGE,
                ood: None,
                ..key
            },
            Measure::Difference => ValuesKey {
                class: ClassId(0),
                lead: 0,
                ..key
            },
            Measure::Spurious | Measure::Novelty | Measure::Shift => ValuesKey {
                image: NO_IMAGE,
                class: ClassId(0),
                lead: 0,
                ..key
            },
            Measure::Rafegas | Measure::Morcos | Measure::ColourSelectivity => ValuesKey {
                image: NO_IMAGE,
                class: ClassId(0),
                lead: 0,
                ood: None,
                ..key
            },
            Measure::Live => ValuesKey {
                image: ImageId {
                    dataset: LIVE_DATASET,
                    index: self.live_generation as usize,
                },
                class: ClassId(0),
                lead: 0,
                ood: None,
                ..key
            },
        })
    }
}

/// The session's systems.
#[derive(Debug)]
pub struct SessionPlugin;

/// Ordering of the frame's work.
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Loader replies come in.
    Receive,
    /// Input turns into intents.
    Input,
    /// Intents are applied and requests go out.
    Apply,
    /// The map follows the state.
    Show,
}

impl Plugin for SessionPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Session>()
            .configure_sets(
                Update,
                (Step::Receive, Step::Input, Step::Apply, Step::Show).chain(),
            )
            .add_systems(Update, receive.in_set(Step::Receive))
            .add_systems(Update, (apply_intents, request).chain().in_set(Step::Apply));
    }
}

/// Takes the loader's replies.
pub fn receive(loader: Option<Res<Loader>>, mut session: ResMut<Session>) {
    let Some(loader) = loader else {
        return;
    };
    while let Some(reply) = loader.poll() {
        take(&mut session, reply);
    }
}

/// Applies one reply to the session.
pub fn take(session: &mut Session, reply: Reply) {
    match reply {
        Reply::Progress(done, all) => session.progress = (done, all),
        Reply::Loaded(vm) => {
            let ui = match session.ui.take() {
                // A re-analysis keeps the user's state.
                Some(ui) => ui,
                None => UiState::new(vm.reference, vm.normaliser, vm.layers.len()),
            };
            session.ui = Some(ui);
            session.vm = Some(*vm);
            session.colour = None;
            session.height = None;
            session.waiting.clear();
            session.revision += 1;
        }
        Reply::Failed(message) => {
            tracing::error!("{message}");
            session.error = Some(message);
        }
        Reply::Filled(fill, result) => {
            if let Some(vm) = &mut session.vm {
                match result {
                    Ok(filled) => vm.put(filled),
                    Err(e) => vm.fail(fill, &e),
                }
            }
        }
        Reply::Values(Ok(values)) => {
            session.waiting.retain(|k| *k != values.key);
            let measure = values.key.measure;
            let ui_colour = session.ui.as_ref().map(|u| u.colour_by);
            let shown = Shown::new(values);
            if ui_colour == Some(measure) && session.key(measure) == Some(shown.values.key) {
                session.colour = Some(shown.clone());
            }
            if session.extrude == Some(measure) && session.key(measure) == Some(shown.values.key) {
                session.height = Some(shown);
            }
            session.revision += 1;
        }
        Reply::Values(Err(message)) => {
            tracing::error!("map values: {message}");
            session.waiting.clear();
        }
        Reply::Inputs(id, inputs) => {
            if session.inputs_asked == Some(id) {
                session.inputs = Some((id, inputs));
                session.revision += 1;
            }
        }
    }
}

fn apply_intents(mut session: ResMut<Session>, loader: Option<Res<Loader>>) {
    if session.intents.is_empty() {
        return;
    }
    let intents = std::mem::take(&mut session.intents);
    let Some(before) = session.ui.as_ref().map(UiState::neuron) else {
        return;
    };
    for intent in &intents {
        if let Some(ui) = session.ui.as_mut() {
            ui.apply(intent);
        }
        match intent {
            Intent::SetNormaliser(d) => {
                if let Some(loader) = &loader {
                    loader.send(Request::Normaliser(*d));
                }
            }
            Intent::ExportPng => {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                session_exports(&mut session.exports, secs);
            }
            Intent::ExportNeuronCsv(path) => export_csv(&session, path.clone()),
            Intent::RunLive(path) => session.live_requests.push(path.clone()),
            Intent::ComputeFeatures {
                layer,
                dataset,
                top,
            } => session.feature_requests.push((*layer, *dataset, *top)),
            _ => {}
        }
    }
    if session.ui.as_ref().map(UiState::neuron) != Some(before) {
        session.revision += 1;
    }
}

/// The live image's activations, each divided by the neuron's normaliser maximum (NaN for
/// silent neurons and before any live image).
pub fn live_values(vm: &ViewModel) -> Vec<Vec<f32>> {
    vm.layers
        .iter()
        .enumerate()
        .map(|(l, info)| {
            let start = vm.layer_start.get(l).copied().unwrap_or(0);
            let live = vm.live.ready().and_then(|v| v.layers.get(l));
            (0..info.neurons)
                .map(|i| {
                    let value = live.and_then(|v| v.get(i)).copied().unwrap_or(f32::NAN);
                    let max = vm.neurons.get(start + i).map_or(f32::NAN, |r| r.max);
                    if max > 0.0 { value / max } else { f32::NAN }
                })
                .collect()
        })
        .collect()
}

fn session_exports(exports: &mut Vec<PathBuf>, secs: u64) {
    exports.push(PathBuf::from(format!("shiftscope-{secs}.png")));
}

fn export_csv(session: &Session, path: Option<PathBuf>) {
    let (Some(vm), Some(ui)) = (&session.vm, &session.ui) else {
        return;
    };
    let path = path.unwrap_or_else(|| PathBuf::from(format!("{}-neurons.csv", vm.store)));
    let result = std::fs::File::create(&path)
        .map_err(shiftscope_ui::UiError::from)
        .and_then(|f| shiftscope_ui::table::write_neuron_csv(vm, ui, std::io::BufWriter::new(f)));
    match result {
        Ok(rows) => tracing::info!("wrote {rows} neurons to {}", path.display()),
        Err(e) => tracing::error!("writing {}: {e}", path.display()),
    }
}

/// Colour and extrusion by the same measure share one set of values: whichever of the two
/// wants `key` and lacks it takes it from the other, instead of waiting for a reply that was
/// never asked for (the loader is asked once per key).
fn share(session: &mut Session, colour_by: Measure, measure: Measure, key: ValuesKey) {
    let holds = |s: &Option<Shown>| s.as_ref().is_some_and(|s| s.values.key == key);
    if session.extrude == Some(measure) && holds(&session.colour) && !holds(&session.height) {
        session.height = session.colour.clone();
        session.revision += 1;
    }
    if colour_by == measure && holds(&session.height) && !holds(&session.colour) {
        session.colour = session.height.clone();
        session.revision += 1;
    }
}

/// Asks the loader for the details, values and inputs the state shows and nobody has asked
/// for.
pub fn request(mut session: ResMut<Session>, loader: Option<Res<Loader>>) {
    let Some(loader) = loader else {
        return;
    };
    let session = &mut *session;
    let (Some(vm), Some(ui)) = (session.vm.as_mut(), session.ui.as_ref()) else {
        return;
    };
    for fill in vm.missing(ui) {
        loader.send(Request::Fill(fill));
    }
    let colour_by = ui.colour_by;
    let selected = ui.neuron();
    for measure in std::iter::once(colour_by).chain(session.extrude) {
        let Some(key) = session.key(measure) else {
            continue;
        };
        share(session, colour_by, measure, key);
        let have = [&session.colour, &session.height]
            .iter()
            .any(|s| s.as_ref().is_some_and(|s| s.values.key == key));
        if !have && measure == Measure::Live {
            // The live values are here already: no loader round trip.
            let shown = Shown::new(LayerValues {
                key,
                layers: session.vm.as_ref().map(live_values).unwrap_or_default(),
            });
            if colour_by == Measure::Live {
                session.colour = Some(shown.clone());
            }
            if session.extrude == Some(Measure::Live) {
                session.height = Some(shown);
            }
            session.revision += 1;
            continue;
        }
        if !have && !session.waiting.contains(&key) {
            session.waiting.push(key);
            loader.send(Request::Values(key));
        }
        // What is shown for another key goes stale once the right one arrives.
    }
    if selected != session.inputs_asked {
        session.inputs_asked = selected;
        session.inputs = None;
        if let Some(id) = selected {
            loader.send(Request::Inputs(id));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::loader::LayerValues;

    /// Spurious scores per layer, shown (shared with the map's tests).
    pub(crate) fn spurious(layers: Vec<Vec<f32>>) -> Shown {
        Shown::new(LayerValues {
            key: ValuesKey {
                measure: Measure::Spurious,
                image: NO_IMAGE,
                class: ClassId(0),
                lead: 0,
                ood: Some(1),
            },
            layers,
        })
    }

    #[test]
    fn extruding_by_the_colour_measure_reuses_its_values() {
        let shown = spurious(vec![vec![0.1, 0.9]]);
        let key = shown.values.key;
        let mut session = Session {
            colour: Some(shown),
            extrude: Some(Measure::Spurious),
            ..Session::default()
        };
        share(&mut session, Measure::Spurious, Measure::Spurious, key);
        let height = session.height.as_ref().map(|h| h.values.key);
        assert_eq!(height, Some(key));

        // And the other way round: colouring by the measure that extrudes.
        session.colour = None;
        share(&mut session, Measure::Spurious, Measure::Spurious, key);
        assert_eq!(session.colour.as_ref().map(|c| c.values.key), Some(key));

        // A different measure takes nothing.
        let mut other = Session {
            colour: Some(spurious(vec![vec![0.5]])),
            extrude: Some(Measure::Novelty),
            ..Session::default()
        };
        let novelty_key = ValuesKey {
            measure: Measure::Novelty,
            ..key
        };
        share(&mut other, Measure::Spurious, Measure::Novelty, novelty_key);
        assert!(other.height.is_none());
    }
}
