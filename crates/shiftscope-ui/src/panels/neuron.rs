//! The Neuron panel: the neuron's scores, its colour selectivity and Neuron Feature per
//! dataset where computed (else a button asking the host to compute them), then one column
//! per dataset side by side (max and % of the normaliser's, top classes, top-k thumbnails),
//! and its activation histograms overlaid.

use egui::{ColorImage, Id, Image, ScrollArea, TextureHandle, TextureOptions, Ui, Vec2};
use shiftscope_features::DEFAULT_TOP;

use crate::model::{Loadable, NeuronDetail, NeuronFeature, ViewModel};
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
                });
            // One row per shifted dataset, one column per score: long dataset names stay
            // readable and the numbers line up.
            if !s.shifts.is_empty() {
                egui::Grid::new("shiftscope-ui/neuron-shifts")
                    .striped(true)
                    .show(ui, |ui| {
                        ui.strong("vs");
                        for name in ["spurious", "novelty", "shift"] {
                            ui.strong(name);
                        }
                        ui.end_row();
                        for shift in &s.shifts {
                            ui.label(vm.dataset_name(shift.dataset));
                            for v in [shift.spurious, shift.novelty, shift.shift] {
                                ui.monospace(num(v));
                            }
                            ui.end_row();
                        }
                    });
            }
            features(ui, vm, state, detail, &mut out);
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

/// Side of a Neuron Feature on screen.
const NF_SIDE: f32 = 72.0;

/// The colour selectivity and Neuron Feature of the neuron on each dataset computed, or a
/// button asking for them on the lead dataset.
fn features(
    ui: &mut Ui,
    vm: &ViewModel,
    state: &UiState,
    detail: &NeuronDetail,
    out: &mut Vec<Intent>,
) {
    ui.separator();
    ui.label("colour selectivity and Neuron Feature");
    if detail.features.is_empty() {
        ui.small("not computed for this layer yet");
        let dataset = state.lead;
        let label = format!(
            "Compute on {} (top {DEFAULT_TOP})",
            vm.dataset_name(dataset)
        );
        if ui
            .button(label)
            .on_hover_text("re-runs the layer's top images through the model")
            .clicked()
        {
            out.push(Intent::ComputeFeatures {
                layer: detail.id.layer,
                dataset,
                top: DEFAULT_TOP,
            });
        }
        return;
    }
    let name = vm.neuron_name(detail.id);
    ui.horizontal_wrapped(|ui| {
        for f in &detail.features {
            ui.vertical(|ui| {
                let dataset = vm.dataset_name(f.dataset);
                ui.small(format!("{dataset} · top {}", f.top));
                match nf_texture(ui, vm, detail, f) {
                    Some((t, [h, w])) => {
                        let scale = NF_SIDE / h.max(w).max(1) as f32;
                        ui.add(
                            Image::new((t.id(), Vec2::new(w as f32 * scale, h as f32 * scale)))
                                .alt_text(format!("Neuron Feature of {name} on {dataset}")),
                        );
                    }
                    None => {
                        ui.small("no Neuron Feature (no positive response)");
                    }
                }
                ui.label(format!("CSI {}", num(f.csi))).on_hover_text(
                    "1 − Σ a'/Σ a: the response lost on grey versions of its top images",
                );
                ui.small(format!("clipped {}", num(f.csi_clipped)));
                ui.small(format!("{} images", f.images));
            });
        }
    });
    let mut notes: Vec<&String> = detail.features.iter().flat_map(|f| &f.notes).collect();
    notes.dedup();
    for note in notes {
        ui.small(note);
    }
}

/// The texture of one Neuron Feature, made once per view model, neuron, dataset and N.
fn nf_texture(
    ui: &Ui,
    vm: &ViewModel,
    detail: &NeuronDetail,
    f: &NeuronFeature,
) -> Option<(TextureHandle, [usize; 2])> {
    let (h, w, rgb) = f.image.as_ref()?;
    if rgb.len() != h * w * 3 || *h == 0 || *w == 0 {
        return None;
    }
    let key = (
        vm.generation,
        detail.id.layer,
        detail.id.neuron,
        f.dataset,
        f.top,
    );
    let id = Id::new(("shiftscope-ui/neuron-feature", key));
    let ctx = ui.ctx();
    if let Some(t) = ctx.data(|d| d.get_temp::<TextureHandle>(id)) {
        return Some((t, [*h, *w]));
    }
    let handle = ctx.load_texture(
        format!("nf {key:?}"),
        ColorImage::from_rgb([*w, *h], rgb),
        TextureOptions::NEAREST,
    );
    ctx.data_mut(|d| d.insert_temp(id, handle.clone()));
    Some((handle, [*h, *w]))
}
