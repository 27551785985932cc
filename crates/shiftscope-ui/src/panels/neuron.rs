//! The Neuron panel: the neuron's scores, then one column per dataset side by side (max and
//! % of the normaliser's, top classes, top-k thumbnails), and its activation histograms
//! overlaid.

use egui::{ScrollArea, Ui};

use crate::model::{Loadable, ViewModel};
use crate::state::{Intent, UiState};
use crate::widgets::{histograms, link, num, palette, thumb, waiting};

/// Thumbnail side in the Neuron panel's grids.
const THUMB: f32 = 40.0;

/// The Neuron panel.
pub fn neuron_panel(ui: &mut Ui, vm: &ViewModel, state: &UiState) -> Vec<Intent> {
    let mut out = Vec::new();
    let Some(id) = state.neuron() else {
        ui.heading("Neuron");
        ui.label("Select a neuron in the table, the map or any panel.");
        return out;
    };
    ui.heading(format!("Neuron {}", vm.neuron_name(id)));
    let detail = match &vm.neuron {
        Loadable::Ready(d) if d.id == id => d,
        Loadable::Ready(_) => {
            waiting::<()>(ui, &Loadable::Loading(String::new()), "neuron");
            return out;
        }
        other => {
            waiting(ui, other, "neuron");
            return out;
        }
    };
    ScrollArea::vertical()
        .id_salt("shiftscope-ui/neuron")
        .show(ui, |ui| {
            let s = &detail.scores;
            egui::Grid::new("shiftscope-ui/neuron-scores")
                .striped(true)
                .show(ui, |ui| {
                    ui.label(format!("max on {}", vm.dataset_name(vm.normaliser)));
                    ui.label(if s.silent {
                        "silent".to_string()
                    } else {
                        num(Some(s.max_normaliser))
                    });
                    ui.end_row();
                    ui.label("selectivity (Rafegas / Morcos)");
                    ui.label(format!("{} / {}", num(s.rafegas), num(s.morcos)));
                    ui.end_row();
                    for shift in &s.shifts {
                        ui.label(format!(
                            "vs {}: spurious / novelty / shift",
                            vm.dataset_name(shift.dataset)
                        ));
                        ui.label(format!(
                            "{} / {} / {}",
                            num(shift.spurious),
                            num(shift.novelty),
                            num(shift.shift)
                        ));
                        ui.end_row();
                    }
                });
            ui.small("Neuron Feature image: not computed yet.");
            ui.separator();

            let n = detail.columns.len().max(1);
            ScrollArea::horizontal()
                .id_salt("shiftscope-ui/neuron-columns")
                .show(ui, |ui| {
                    let width = (ui.available_width() / n as f32).max(3.0 * (THUMB + 4.0));
                    ui.horizontal_top(|ui| {
                        for (i, c) in detail.columns.iter().enumerate() {
                            ui.allocate_ui(egui::vec2(width, 0.0), |ui| {
                                ui.vertical(|ui| {
                                    ui.set_width(width - 6.0);
                                    let lead = if c.dataset == state.lead {
                                        " (lead)"
                                    } else {
                                        ""
                                    };
                                    ui.colored_label(
                                        palette(i),
                                        format!("{}{lead}", vm.dataset_name(c.dataset)),
                                    );
                                    ui.small(format!(
                                        "max {} ({})",
                                        num(Some(c.max)),
                                        c.of_normaliser.map_or("–".to_string(), |f| format!(
                                            "{:.0}% of normaliser",
                                            f * 100.0
                                        ))
                                    ));
                                    for (class, mean) in &c.top_classes {
                                        ui.horizontal(|ui| {
                                            if link(ui, vm.class_name(*class)).clicked() {
                                                out.push(Intent::SelectClass(*class));
                                            }
                                            ui.small(num(*mean));
                                        });
                                    }
                                    ui.horizontal_wrapped(|ui| {
                                        ui.spacing_mut().item_spacing = egui::vec2(2.0, 2.0);
                                        for (image, _, _) in &c.top {
                                            if thumb(ui, vm, *image, THUMB).clicked() {
                                                out.push(Intent::SelectImage(*image));
                                            }
                                        }
                                    });
                                });
                            });
                        }
                    });
                });
            ui.separator();
            ui.label("activations");
            let series: Vec<_> = detail
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| (vm.dataset_name(c.dataset), palette(i), &c.histogram))
                .collect();
            histograms(ui, &series, 90.0);
        });
    out
}
