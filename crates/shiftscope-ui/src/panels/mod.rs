//! The panels: each a plain function of the view model and the state, returning intents.
//! They never call each other and never change anything themselves.

mod category;
mod image;
mod live;
mod mistakes;
mod neuron;
mod overview;
mod study;

pub use category::category_panel;
pub use image::image_panel;
pub use live::live_panel;
pub use mistakes::{MistakesView, mistakes_panel};
pub use neuron::neuron_panel;
pub use overview::overview_panel;
pub use study::study_panel;

use egui::Ui;

use crate::model::ViewModel;
use crate::state::{Intent, Panel, UiState};

/// The navigation bar: back, forward, a tab per panel, export to PNG.
pub fn nav_bar(ui: &mut Ui, _vm: &ViewModel, state: &UiState) -> Vec<Intent> {
    let mut out = Vec::new();
    ui.horizontal_wrapped(|ui| {
        if ui
            .add_enabled(!state.back.is_empty(), egui::Button::new("◀ Back"))
            .clicked()
        {
            out.push(Intent::Back);
        }
        if ui
            .add_enabled(!state.forward.is_empty(), egui::Button::new("Forward ▶"))
            .clicked()
        {
            out.push(Intent::Forward);
        }
        ui.separator();
        for p in Panel::ALL {
            if ui
                .selectable_label(state.panel() == Some(p), p.label())
                .clicked()
                && state.panel() != Some(p)
            {
                out.push(Intent::ShowPanel(p));
            }
        }
        ui.separator();
        if ui.button("Export PNG").clicked() {
            out.push(Intent::ExportPng);
        }
    });
    out
}

/// Shows one panel (the host's dispatch; panels themselves never call each other).
pub fn show_panel(ui: &mut Ui, vm: &ViewModel, state: &UiState, panel: Panel) -> Vec<Intent> {
    match panel {
        Panel::Study => study_panel(ui, vm, state),
        Panel::Neuron => neuron_panel(ui, vm, state),
        Panel::Image => image_panel(ui, vm, state),
        Panel::Category => category_panel(ui, vm, state),
        Panel::Overview => overview_panel(ui, vm, state),
        Panel::Live => live_panel(ui, vm, state),
        Panel::Mistakes => mistakes_panel(ui, &vm.mistakes),
    }
}
