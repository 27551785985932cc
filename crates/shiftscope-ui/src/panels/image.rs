//! The Image panel: the image large, its truth and top-5 predictions; the top neurons of the
//! current layer, each with a strip of its own top images; the nearest ID images; the
//! followers (the same row on the other datasets, with the lead image's neurons).

use egui::{ScrollArea, Ui};

use crate::model::{Loadable, ViewModel};
use crate::state::{Intent, UiState};
use crate::widgets::{bar, layer_picker, link, num, palette, thumb, waiting};

const LARGE: f32 = 160.0;
const SMALL: f32 = 32.0;

/// The Image panel.
pub fn image_panel(ui: &mut Ui, vm: &ViewModel, state: &UiState) -> Vec<Intent> {
    let mut out = Vec::new();
    let Some(id) = state.image() else {
        ui.heading("Image");
        ui.label("Select an image in any panel.");
        return out;
    };
    ui.heading(format!("Image {}", vm.image_name(id)));
    layer_picker(ui, vm, state, &mut out);
    let detail = match &vm.image {
        Loadable::Ready(d) if d.id == id && d.layer == state.layer => d,
        Loadable::Ready(_) => {
            waiting::<()>(ui, &Loadable::Loading(String::new()), "image");
            return out;
        }
        other => {
            waiting(ui, other, "image");
            return out;
        }
    };
    ScrollArea::vertical()
        .id_salt("shiftscope-ui/image")
        .show(ui, |ui| {
            ui.horizontal_top(|ui| {
                thumb(ui, vm, id, LARGE);
                ui.vertical(|ui| {
                    ui.horizontal(|ui| {
                        ui.label("truth");
                        match detail.truth {
                            Some(c) => {
                                if link(ui, vm.class_name(c)).clicked() {
                                    out.push(Intent::SelectClass(c));
                                }
                            }
                            None => {
                                ui.label("unlabelled");
                            }
                        }
                    });
                    ui.label("predictions");
                    for p in &detail.predictions {
                        ui.horizontal(|ui| {
                            bar(ui, p.probability, 50.0, palette(0));
                            if link(
                                ui,
                                format!("{} {:.1}%", vm.class_name(p.class), p.probability * 100.0),
                            )
                            .clicked()
                            {
                                out.push(Intent::SelectClass(p.class));
                            }
                        });
                    }
                });
            });
            ui.separator();
            ui.label(format!(
                "top neurons of {} (normalised activation)",
                vm.layers.get(detail.layer).map_or("?", |l| l.name.as_str())
            ));
            for t in &detail.top_neurons {
                ui.horizontal(|ui| {
                    if link(ui, vm.neuron_name(t.value.neuron)).clicked() {
                        out.push(Intent::SelectNeuron(t.value.neuron));
                    }
                    ui.small(num(Some(t.value.value)));
                    ui.spacing_mut().item_spacing.x = 2.0;
                    for &image in &t.strip {
                        if thumb(ui, vm, image, SMALL).clicked() {
                            out.push(Intent::SelectImage(image));
                        }
                    }
                });
            }
            ui.separator();
            ui.label(format!("nearest in {}", vm.dataset_name(vm.reference)));
            ui.horizontal_wrapped(|ui| {
                for s in &detail.nearest {
                    if thumb(ui, vm, s.image, SMALL)
                        .on_hover_text(format!("cosine {:.3}", s.score))
                        .clicked()
                    {
                        out.push(Intent::SelectImage(s.image));
                    }
                }
            });
            if let Some(c) = &detail.comparison {
                ui.separator();
                ui.label("followers: the same neurons on the same row");
                for (f, (image, values)) in c.followers.iter().enumerate() {
                    ui.horizontal(|ui| {
                        if thumb(ui, vm, *image, SMALL).clicked() {
                            out.push(Intent::SelectImage(*image));
                        }
                        ui.vertical(|ui| {
                            ui.spacing_mut().item_spacing.y = 1.0;
                            for (n, v) in c.neurons.iter().zip(values) {
                                ui.horizontal(|ui| {
                                    bar(ui, n.value, 40.0, palette(0));
                                    bar(ui, *v, 40.0, palette(f + 1));
                                    ui.small(format!(
                                        "{} {} → {}",
                                        vm.neuron_name(n.neuron),
                                        num(Some(n.value)),
                                        num(Some(*v))
                                    ));
                                });
                            }
                        });
                    });
                }
            }
        });
    out
}
