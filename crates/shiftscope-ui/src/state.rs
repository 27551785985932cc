//! What the user has chosen (selection, lead, normaliser, colour-by, search, sort) and the
//! history of views; changed only by [`UiState::apply`] with the panels' [`Intent`]s.

use std::path::PathBuf;

use shiftscope_analysis::{ClassId, ImageId, NeuronId};

/// The panels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Panel {
    /// Datasets, lead, normaliser, colour-by, search and the neuron table.
    Study,
    /// One neuron on every dataset.
    Neuron,
    /// One image: predictions, top neurons, nearest images, followers.
    Image,
    /// One class: accuracy, confusions, pairwise view.
    Category,
    /// Accuracy per dataset, layer shift profile, score histograms.
    Overview,
    /// An image from outside the store run through the model: predictions, top neurons, the
    /// selected layer's channel maps.
    Live,
    /// The neurons responsible for the selected class's mistakes, and the repair.
    Mistakes,
}

impl Panel {
    /// Every panel, in tab order.
    pub const ALL: [Panel; 7] = [
        Panel::Study,
        Panel::Neuron,
        Panel::Image,
        Panel::Category,
        Panel::Overview,
        Panel::Live,
        Panel::Mistakes,
    ];

    /// Its tab label.
    pub fn label(self) -> &'static str {
        match self {
            Panel::Study => "Study",
            Panel::Neuron => "Neuron",
            Panel::Image => "Image",
            Panel::Category => "Category",
            Panel::Overview => "Overview",
            Panel::Live => "Live",
            Panel::Mistakes => "Mistakes",
        }
    }
}

/// What the 3D map colours its cells by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Measure {
    /// Activation for the selected image (on the lead dataset).
    Activation,
    /// Class mean for the selected class.
    ClassMean,
    /// ID − OOD difference of the selected image's activations.
    Difference,
    /// Spurious score.
    Spurious,
    /// Novelty score.
    Novelty,
    /// W1 activation shift.
    Shift,
    /// Rafegas class selectivity.
    Rafegas,
    /// Morcos class selectivity.
    Morcos,
    /// Activation for the live image (normalised by the normaliser's maximum).
    Live,
    /// Colour selectivity index (Rafegas et al.), where `shiftscope features` computed it.
    ColourSelectivity,
}

impl Measure {
    /// Every measure, in menu order.
    pub const ALL: [Measure; 10] = [
        Measure::Activation,
        Measure::ClassMean,
        Measure::Difference,
        Measure::Spurious,
        Measure::Novelty,
        Measure::Shift,
        Measure::Rafegas,
        Measure::Morcos,
        Measure::Live,
        Measure::ColourSelectivity,
    ];

    /// Its menu label.
    pub fn label(self) -> &'static str {
        match self {
            Measure::Activation => "activation (image)",
            Measure::ClassMean => "class mean",
            Measure::Difference => "ID − OOD difference",
            Measure::Spurious => "spurious score",
            Measure::Novelty => "novelty score",
            Measure::Shift => "activation shift",
            Measure::Rafegas => "Rafegas selectivity",
            Measure::Morcos => "Morcos selectivity",
            Measure::Live => "activation (live image)",
            Measure::ColourSelectivity => "colour selectivity (CSI)",
        }
    }

    /// Whether values are signed (a diverging colour map) rather than sequential.
    pub fn diverging(self) -> bool {
        matches!(self, Measure::Difference | Measure::Novelty)
    }
}

/// A per-neuron score: a neuron-table column and a search field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Score {
    /// The normaliser's maximum activation.
    Max,
    /// Rafegas selectivity (reference dataset).
    Rafegas,
    /// Morcos selectivity (reference dataset).
    Morcos,
    /// Spurious score against the OOD dataset in focus.
    Spurious,
    /// Novelty score against the OOD dataset in focus.
    Novelty,
    /// W1 shift against the OOD dataset in focus.
    Shift,
}

impl Score {
    /// Every score, in column order.
    pub const ALL: [Score; 6] = [
        Score::Max,
        Score::Rafegas,
        Score::Morcos,
        Score::Spurious,
        Score::Novelty,
        Score::Shift,
    ];

    /// Its name in searches, column headers and CSV.
    pub fn name(self) -> &'static str {
        match self {
            Score::Max => "max",
            Score::Rafegas => "rafegas",
            Score::Morcos => "morcos",
            Score::Spurious => "spurious",
            Score::Novelty => "novelty",
            Score::Shift => "shift",
        }
    }

    /// The score named `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Score> {
        Score::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// A column the neuron table sorts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Column {
    /// Layer, then index: network order.
    Neuron,
    /// A score (undefined values last, whichever the direction).
    Score(Score),
}

/// The neuron table's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sort {
    /// By which column.
    pub column: Column,
    /// Largest first.
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            column: Column::Neuron,
            descending: false,
        }
    }
}

/// What a panel asks for; the host applies it with [`UiState::apply`] and fulfils the side
/// effects (loading details, exports, re-analysing with another normaliser).
#[derive(Clone, Debug, PartialEq)]
pub enum Intent {
    /// Select a neuron (opens the Neuron panel).
    SelectNeuron(NeuronId),
    /// Select an image (opens the Image panel).
    SelectImage(ImageId),
    /// Select a class (opens the Category panel).
    SelectClass(ClassId),
    /// The class confused with the selected one, for the pairwise view.
    SelectPair(ClassId),
    /// The layer whose neurons the Image and Category panels list.
    SetLayer(usize),
    /// The lead dataset (others follow its selection).
    SetLead(usize),
    /// The normaliser dataset (the host re-analyses).
    SetNormaliser(usize),
    /// What the map colours by.
    SetColourBy(Measure),
    /// The search text.
    SetSearch(String),
    /// Sort the table by a column (again: flip the direction).
    SortBy(Column),
    /// Back in history.
    Back,
    /// Forward in history.
    Forward,
    /// Show a panel.
    ShowPanel(Panel),
    /// Export the current view to PNG (the host takes the screenshot).
    ExportPng,
    /// Export the neuron table as filtered and sorted now (`None`: the host's default path).
    ExportNeuronCsv(Option<PathBuf>),
    /// Run the model on this image file (live mode).
    RunLive(PathBuf),
    /// Compute the colour selectivity and Neuron Features of a layer's neurons over their
    /// top images on a dataset (the host re-runs the model: `shiftscope features`).
    ComputeFeatures {
        /// The layer.
        layer: usize,
        /// The dataset whose top images are used.
        dataset: usize,
        /// N: top images per neuron.
        top: usize,
    },
}

/// A place in history: the panel shown and what was selected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// The panel shown (`None`: the host's default).
    pub panel: Option<Panel>,
    /// Selected neuron.
    pub neuron: Option<NeuronId>,
    /// Selected image.
    pub image: Option<ImageId>,
    /// Selected class.
    pub class: Option<ClassId>,
    /// Class compared with the selected one (pairwise view).
    pub pair: Option<ClassId>,
}

/// Views kept for going back.
pub const HISTORY: usize = 256;

/// Everything the user has chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct UiState {
    /// The current view.
    pub view: View,
    /// Earlier views, most recent last.
    pub back: Vec<View>,
    /// Views gone back from, most recent last.
    pub forward: Vec<View>,
    /// Layer listed by the Image and Category panels and the Overview's histograms.
    pub layer: usize,
    /// The lead dataset.
    pub lead: usize,
    /// The normaliser dataset.
    pub normaliser: usize,
    /// What the map colours by.
    pub colour_by: Measure,
    /// The Study panel's search text.
    pub search: String,
    /// The neuron table's order.
    pub sort: Sort,
}

impl UiState {
    /// A fresh state: nothing selected, `reference` leads and normalises, the last layer listed.
    pub fn new(reference: usize, normaliser: usize, layers: usize) -> UiState {
        UiState {
            view: View {
                panel: Some(Panel::Study),
                ..View::default()
            },
            back: Vec::new(),
            forward: Vec::new(),
            layer: layers.saturating_sub(1),
            lead: reference,
            normaliser,
            colour_by: Measure::Spurious,
            search: String::new(),
            sort: Sort::default(),
        }
    }

    /// Selected neuron.
    pub fn neuron(&self) -> Option<NeuronId> {
        self.view.neuron
    }

    /// Selected image.
    pub fn image(&self) -> Option<ImageId> {
        self.view.image
    }

    /// Selected class.
    pub fn class(&self) -> Option<ClassId> {
        self.view.class
    }

    /// The panel shown.
    pub fn panel(&self) -> Option<Panel> {
        self.view.panel
    }

    fn go(&mut self, next: View) {
        if next == self.view {
            return;
        }
        self.back.push(self.view);
        if self.back.len() > HISTORY {
            self.back.remove(0);
        }
        self.forward.clear();
        self.view = next;
    }

    /// Applies one intent. Selections push the current view onto history (clearing what was
    /// forward); `Back`/`Forward` move through it; side effects (exports, loading) are the
    /// host's and leave the state alone. Returns whether anything changed.
    pub fn apply(&mut self, intent: &Intent) -> bool {
        let before = self.clone();
        match intent {
            Intent::SelectNeuron(id) => {
                self.layer = id.layer;
                self.go(View {
                    panel: Some(Panel::Neuron),
                    neuron: Some(*id),
                    ..self.view
                });
            }
            Intent::SelectImage(id) => self.go(View {
                panel: Some(Panel::Image),
                image: Some(*id),
                ..self.view
            }),
            Intent::SelectClass(class) => self.go(View {
                panel: Some(Panel::Category),
                class: Some(*class),
                pair: None,
                ..self.view
            }),
            Intent::SelectPair(class) => self.go(View {
                panel: Some(Panel::Category),
                pair: Some(*class),
                ..self.view
            }),
            Intent::SetLayer(layer) => self.layer = *layer,
            Intent::SetLead(d) => self.lead = *d,
            Intent::SetNormaliser(d) => self.normaliser = *d,
            Intent::SetColourBy(m) => self.colour_by = *m,
            Intent::SetSearch(text) => self.search.clone_from(text),
            Intent::SortBy(column) => {
                self.sort = if self.sort.column == *column {
                    Sort {
                        column: *column,
                        descending: !self.sort.descending,
                    }
                } else {
                    Sort {
                        column: *column,
                        // Scores read best largest first; network order reads first to last.
                        descending: matches!(column, Column::Score(_)),
                    }
                };
            }
            Intent::Back => {
                if let Some(view) = self.back.pop() {
                    self.forward.push(self.view);
                    self.view = view;
                }
            }
            Intent::Forward => {
                if let Some(view) = self.forward.pop() {
                    self.back.push(self.view);
                    self.view = view;
                }
            }
            Intent::ShowPanel(panel) => self.view.panel = Some(*panel),
            Intent::ExportPng
            | Intent::ExportNeuronCsv(_)
            | Intent::RunLive(_)
            | Intent::ComputeFeatures { .. } => {}
        }
        *self != before
    }

    /// Applies every intent in order.
    pub fn apply_all<'a>(&mut self, intents: impl IntoIterator<Item = &'a Intent>) -> bool {
        intents
            .into_iter()
            .fold(false, |changed, i| self.apply(i) | changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(neuron: usize) -> NeuronId {
        NeuronId { layer: 0, neuron }
    }

    #[test]
    fn history_back_and_forward() {
        let mut s = UiState::new(0, 0, 2);
        assert_eq!(s.layer, 1);
        for i in 0..3 {
            s.apply(&Intent::SelectNeuron(n(i)));
        }
        s.apply(&Intent::SelectImage(ImageId {
            dataset: 1,
            index: 4,
        }));
        assert_eq!(s.panel(), Some(Panel::Image));
        assert_eq!(s.neuron(), Some(n(2)));
        assert_eq!(s.layer, 0);
        s.apply(&Intent::Back);
        assert_eq!((s.neuron(), s.image()), (Some(n(2)), None));
        assert_eq!(s.panel(), Some(Panel::Neuron));
        s.apply(&Intent::Back);
        s.apply(&Intent::Back);
        assert_eq!(s.neuron(), Some(n(0)));
        s.apply(&Intent::Forward);
        assert_eq!(s.neuron(), Some(n(1)));
        // A new selection drops what was forward.
        s.apply(&Intent::SelectNeuron(n(7)));
        assert!(s.forward.is_empty());
        assert!(!s.apply(&Intent::Forward));
        s.apply(&Intent::Back);
        assert_eq!(s.neuron(), Some(n(1)));
        // Back past the start does nothing.
        while s.apply(&Intent::Back) {}
        assert_eq!(s.neuron(), None);
        assert_eq!(s.panel(), Some(Panel::Study));
    }

    #[test]
    fn same_selection_twice_is_one_step() {
        let mut s = UiState::new(0, 0, 1);
        s.apply(&Intent::SelectNeuron(n(1)));
        assert!(!s.apply(&Intent::SelectNeuron(n(1))));
        assert_eq!(s.back.len(), 1);
    }

    #[test]
    fn history_is_bounded() {
        let mut s = UiState::new(0, 0, 1);
        for i in 0..HISTORY + 10 {
            s.apply(&Intent::SelectNeuron(n(i)));
        }
        assert_eq!(s.back.len(), HISTORY);
    }

    #[test]
    fn sort_toggles_and_scores_start_descending() {
        let mut s = UiState::new(0, 0, 1);
        s.apply(&Intent::SortBy(Column::Score(Score::Spurious)));
        assert!(s.sort.descending);
        s.apply(&Intent::SortBy(Column::Score(Score::Spurious)));
        assert!(!s.sort.descending);
        s.apply(&Intent::SortBy(Column::Neuron));
        assert_eq!(
            s.sort,
            Sort {
                column: Column::Neuron,
                descending: false
            }
        );
    }

    #[test]
    fn settings_and_exports() {
        let mut s = UiState::new(0, 0, 1);
        assert!(s.apply(&Intent::SetLead(2)));
        assert!(s.apply(&Intent::SetNormaliser(1)));
        assert!(s.apply(&Intent::SetColourBy(Measure::Morcos)));
        assert!(s.apply(&Intent::SetSearch("fc1:3".into())));
        assert!(!s.apply(&Intent::ExportPng));
        assert!(!s.apply(&Intent::ExportNeuronCsv(None)));
        assert_eq!(
            (s.lead, s.normaliser, s.colour_by, s.search.as_str()),
            (2, 1, Measure::Morcos, "fc1:3")
        );
        assert!(s.back.is_empty());
    }
}
