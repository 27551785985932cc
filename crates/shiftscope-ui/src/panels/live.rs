//! The Live panel: an image from outside the store (dropped on the window, given with
//! `--live`, or typed here) run through the model: the image as the model saw it, its top-5
//! predictions, the current layer's most active neurons, and a grid of every channel map of
//! that layer, as the deep visualisation toolbox shows them. Every neuron is a link.

use std::path::PathBuf;

use egui::{ColorImage, Id, Image, ScrollArea, Sense, TextureHandle, TextureOptions, Ui, Vec2};

use crate::colour::viridis;
use crate::model::{ChannelMaps, LiveView, Loadable, ViewModel};
use crate::state::{Intent, UiState};
use crate::widgets::{bar, layer_picker, link, num, palette};

const LARGE: f32 = 160.0;
const MAP: f32 = 56.0;

/// The Live panel.
pub fn live_panel(ui: &mut Ui, vm: &ViewModel, state: &UiState) -> Vec<Intent> {
    let mut out = Vec::new();
    ui.heading("Live image");
    let path_id = Id::new("shiftscope-ui/live-path");
    let mut path: String = ui.data_mut(|d| d.get_temp(path_id).unwrap_or_default());
    ui.horizontal(|ui| {
        ui.label("image file");
        let edit = ui.add(
            egui::TextEdit::singleline(&mut path)
                .hint_text("path/to/image.png")
                .desired_width(220.0),
        );
        let entered = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if (ui.button("Run").clicked() || entered) && !path.trim().is_empty() {
            out.push(Intent::RunLive(PathBuf::from(path.trim())));
        }
    });
    ui.data_mut(|d| d.insert_temp(path_id, path));
    ui.small("or drop a PNG or JPEG file on the window");
    let live = match &vm.live {
        Loadable::Ready(live) => live,
        Loadable::Empty => return out,
        Loadable::Loading(note) => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("running the model on {note}…"));
            });
            return out;
        }
        Loadable::Failed(message) => {
            ui.colored_label(ui.visuals().error_fg_color, message);
            return out;
        }
    };
    ui.separator();
    ScrollArea::vertical()
        .id_salt("shiftscope-ui/live")
        .show(ui, |ui| {
            ui.horizontal_top(|ui| {
                if let Some(t) = image_texture(ui, live) {
                    let scale = LARGE / live.width.max(live.height).max(1) as f32;
                    ui.add(
                        Image::new((
                            t.id(),
                            Vec2::new(live.width as f32 * scale, live.height as f32 * scale),
                        ))
                        .alt_text(live.name.clone()),
                    );
                }
                ui.vertical(|ui| {
                    ui.strong(&live.name);
                    ui.label("predictions");
                    for &(class, p) in &live.predictions {
                        ui.horizontal(|ui| {
                            bar(ui, p, 50.0, palette(0));
                            if link(ui, format!("{} {:.1}%", vm.class_name(class), p * 100.0))
                                .clicked()
                            {
                                out.push(Intent::SelectClass(class));
                            }
                        });
                    }
                });
            });
            ui.separator();
            layer_picker(ui, vm, state, &mut out);
            ui.label("top neurons (activation ÷ the normaliser's maximum)");
            ui.horizontal_wrapped(|ui| {
                for (id, value) in live.top_neurons(vm, state.layer, 10) {
                    if link(ui, format!("{} {}", vm.neuron_name(id), num(Some(value)))).clicked() {
                        out.push(Intent::SelectNeuron(id));
                    }
                }
            });
            ui.separator();
            match &live.maps {
                Some(maps) if maps.layer == state.layer => {
                    channel_grid(ui, vm, state, live, maps, &mut out);
                }
                _ => {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("computing this layer's channel maps…");
                    });
                }
            }
        });
    out
}

/// Every channel map of the layer, one colour scale for all (viridis from 0 or the layer's
/// minimum to its maximum), each a link to its neuron; the selected one outlined.
fn channel_grid(
    ui: &mut Ui,
    vm: &ViewModel,
    state: &UiState,
    live: &LiveView,
    maps: &ChannelMaps,
    out: &mut Vec<Intent>,
) {
    let (low, high) = maps
        .values
        .iter()
        .filter(|v| v.is_finite())
        .fold((0.0f32, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    ui.label(format!(
        "{} channel maps of {} ({}×{}), colour from {} to {}",
        maps.channels,
        vm.layers.get(maps.layer).map_or("?", |l| l.name.as_str()),
        maps.height,
        maps.width,
        num(Some(low)),
        num(Some(high))
    ));
    let selected = state.neuron();
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing = Vec2::splat(3.0);
        for c in 0..maps.channels {
            let id = shiftscope_analysis::NeuronId {
                layer: maps.layer,
                neuron: c,
            };
            let name = vm.neuron_name(id);
            let Some(t) = map_texture(ui, live, maps, c, low, high) else {
                continue;
            };
            let response = ui
                .add(
                    Image::new((t.id(), Vec2::splat(MAP)))
                        .sense(Sense::click())
                        .alt_text(format!("map {name}")),
                )
                .on_hover_text(format!(
                    "{name}: pooled {}",
                    num(live.layers.get(maps.layer).and_then(|v| v.get(c)).copied())
                ));
            if selected == Some(id) {
                ui.painter().rect_stroke(
                    response.rect.expand(1.0),
                    0.0,
                    egui::Stroke::new(2.0, egui::Color32::from_rgb(255, 0, 255)),
                    egui::StrokeKind::Outside,
                );
            }
            if response.clicked() {
                out.push(Intent::SelectNeuron(id));
            }
        }
    });
}

/// The live image's texture (one per live result).
fn image_texture(ui: &Ui, live: &LiveView) -> Option<TextureHandle> {
    if live.rgb.len() != live.width * live.height * 3 || live.width == 0 {
        return None;
    }
    cached(ui, ("image", live.generation, 0), || {
        ColorImage::from_rgb([live.width, live.height], &live.rgb)
    })
}

/// Channel `c`'s map as a viridis texture over `[low, high]`.
fn map_texture(
    ui: &Ui,
    live: &LiveView,
    maps: &ChannelMaps,
    c: usize,
    low: f32,
    high: f32,
) -> Option<TextureHandle> {
    let map = maps.map(c);
    if map.is_empty() {
        return None;
    }
    let key = ("map", live.generation, maps.layer * 1_000_000 + c);
    cached(ui, key, || {
        let span = (high - low).max(f32::EPSILON);
        let rgb: Vec<u8> = map
            .iter()
            .flat_map(|&v| {
                let t = if v.is_finite() { (v - low) / span } else { 0.0 };
                viridis(t).map(|x| (x * 255.0).round() as u8)
            })
            .collect();
        ColorImage::from_rgb([maps.width, maps.height], &rgb)
    })
}

type Key = (&'static str, u64, usize);

/// A texture made once per key and kept in egui's memory.
fn cached(ui: &Ui, key: Key, make: impl FnOnce() -> ColorImage) -> Option<TextureHandle> {
    let id = Id::new(("shiftscope-ui/live-texture", key));
    let ctx = ui.ctx();
    if let Some(t) = ctx.data(|d| d.get_temp::<TextureHandle>(id)) {
        return Some(t);
    }
    let handle = ctx.load_texture(
        format!("live {} {} {}", key.0, key.1, key.2),
        make(),
        TextureOptions::NEAREST,
    );
    ctx.data_mut(|d| d.insert_temp(id, handle.clone()));
    Some(handle)
}
