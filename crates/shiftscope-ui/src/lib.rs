//! The viewer's panels, Bevy-free: plain egui functions over a [`ViewModel`] and a
//! [`UiState`] that return [`Intent`]s (design/viewer.md). It owns the view model (built from
//! an `Analysis` on a worker: [`ViewModel::load`], then on-demand [`Fill`]s for the selected
//! neuron, image and class), the state with its history ([`UiState::apply`]), the search
//! language ([`search`]), the neuron table's filter, order and CSV export ([`table`]), and
//! the panels (Study, Neuron, Image, Category, Overview, Live, Mistakes) plus a navigation bar, and the
//! colour maps ([`colour`]) the map, its legend and the live channel maps share.
//!
//! Panels never call each other and never mutate anything: the host applies their intents
//! and fulfils the side effects (loading details, the PNG screenshot, writing the CSV,
//! re-analysing with another normaliser). Thumbnails become textures through a small cache
//! in egui's memory, so the same code runs in the viewer and in the headless egui_kittest
//! harness. No Bevy, no GPU.

pub mod colour;
mod model;
mod panels;
pub mod search;
mod state;
pub mod table;
mod widgets;

pub use model::{
    Bins, ChannelMaps, ClassDetail, DatasetInfo, Fill, Filled, ImageDetail, LayerInfo, LiveView,
    LoadOptions, Loadable, NeuronColumn, NeuronDetail, NeuronFeature, NeuronRow, Thumb, Thumbs,
    TopNeuron, UiError, ViewModel,
};
pub use panels::{
    MistakesView, category_panel, image_panel, live_panel, mistakes_panel, nav_bar, neuron_panel,
    overview_panel, show_panel, study_panel,
};
pub use state::{Column, HISTORY, Intent, Measure, Panel, Score, Sort, UiState, View};
