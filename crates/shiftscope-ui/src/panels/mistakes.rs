//! The Mistakes panel: the neurons responsible for a class's mistakes (NeuroInspect), per
//! dataset, each with its votes, share, importance and a strip of its top images; and, when a
//! repair was made, its accuracies before and after side by side (per dataset and per class).
//! Its view model, [`MistakesView`], is built on a worker ([`MistakesView::load`]).

use std::collections::HashMap;

use egui::{ColorImage, Id, Image, ScrollArea, Sense, TextureHandle, TextureOptions, Ui, Vec2};
use shiftscope_analysis::mistakes::{
    DatasetMistakes, Linear, MistakeParams, RepairReport, ResponsibleNeuron,
};
use shiftscope_analysis::{Analysis, ClassId, ImageId, NeuronId};

use crate::model::{Loadable, Thumb, Thumbs, UiError};
use crate::state::Intent;
use crate::widgets::waiting;

/// Room kept at the end of a strip for the count of the thumbnails left out ("+6").
const COUNT_WIDTH: f32 = 24.0;
/// Thumbnail side in the panel's strips.
const THUMB: f32 = 28.0;

/// Everything the Mistakes panel shows.
#[derive(Clone, Debug, PartialEq)]
pub struct MistakesView {
    /// The class explained.
    pub class: usize,
    /// Class names of the store.
    pub classes: Vec<String>,
    /// The decision layer's input (index into the store's layers).
    pub layer: usize,
    /// Its name.
    pub layer_name: String,
    /// Per dataset: the responsible neurons and their top images.
    pub datasets: Vec<DatasetMistakes>,
    /// The repair's before/after accuracies, when one was made.
    pub repair: Option<RepairReport>,
    /// Thumbnails of every image listed.
    pub thumbs: Thumbs,
}

impl MistakesView {
    /// Computes the view on the caller's thread (run it on a worker): the neurons of store
    /// layer `layer` responsible for `class`'s mistakes on every dataset of `analysis`,
    /// through the decision layer `linear`, with `top_images` thumbnails per neuron.
    pub fn load(
        analysis: &Analysis,
        layer: usize,
        class: usize,
        linear: Linear<'_>,
        top_images: usize,
    ) -> Result<MistakesView, UiError> {
        let manifest = analysis.store().manifest();
        let datasets: Vec<usize> = (0..manifest.datasets.len()).collect();
        let found = analysis.explain_class(
            layer,
            class,
            &datasets,
            linear,
            &MistakeParams::default(),
            top_images,
        )?;
        let side = manifest.thumb;
        let size = side * side * 3;
        let mut thumbs = Thumbs::new();
        for d in &found {
            let all = analysis.store().thumbs(d.dataset)?;
            for id in d.top_images.iter().flat_map(|(_, ids)| ids) {
                if let Some(rgb) = all.get(id.index * size..(id.index + 1) * size) {
                    thumbs.insert(
                        *id,
                        Thumb {
                            side,
                            rgb: rgb.to_vec(),
                        },
                    );
                }
            }
        }
        Ok(MistakesView {
            class,
            classes: manifest.classes.clone(),
            layer,
            layer_name: manifest
                .layers
                .get(layer)
                .map_or_else(String::new, |l| l.name.clone()),
            datasets: found,
            repair: None,
            thumbs,
        })
    }

    /// The same view with a repair's report.
    pub fn with_repair(mut self, report: RepairReport) -> MistakesView {
        self.repair = Some(report);
        self
    }
}

/// Textures of the panel's thumbnails, by image.
#[derive(Clone, Default)]
struct Textures(HashMap<ImageId, TextureHandle>);

fn texture(ui: &Ui, view: &MistakesView, id: ImageId) -> Option<TextureHandle> {
    let key = Id::new("shiftscope-ui/mistakes-textures");
    let ctx = ui.ctx();
    if let Some(t) = ctx.data_mut(|d| {
        d.get_temp_mut_or_default::<Textures>(key)
            .0
            .get(&id)
            .cloned()
    }) {
        return Some(t);
    }
    let thumb = view.thumbs.get(&id)?;
    if thumb.side == 0 || thumb.rgb.len() != thumb.side * thumb.side * 3 {
        return None;
    }
    let handle = ctx.load_texture(
        format!("mistakes {}#{}", id.dataset, id.index),
        ColorImage::from_rgb([thumb.side, thumb.side], &thumb.rgb),
        TextureOptions::NEAREST,
    );
    ctx.data_mut(|d| {
        d.get_temp_mut_or_default::<Textures>(key)
            .0
            .insert(id, handle.clone());
    });
    Some(handle)
}

fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", 100.0 * v))
}

/// The Mistakes panel.
pub fn mistakes_panel(ui: &mut Ui, view: &Loadable<MistakesView>) -> Vec<Intent> {
    let mut out = Vec::new();
    ui.heading("Mistakes and repair");
    if waiting(ui, view, "mistakes") {
        return out;
    }
    let Loadable::Ready(view) = view else {
        return out;
    };
    let class_name = view
        .classes
        .get(view.class)
        .cloned()
        .unwrap_or_else(|| format!("class {}", view.class));
    ui.horizontal_wrapped(|ui| {
        ui.label("Class:");
        for (c, name) in view.classes.iter().enumerate() {
            if ui.selectable_label(c == view.class, name).clicked() && c != view.class {
                out.push(Intent::SelectClass(ClassId(c)));
            }
        }
    });
    ui.small(format!(
        "Neurons of {} that had to change most often to fix the mistakes on '{class_name}' \
         (share of the mistakes; importance: p(class) with the neuron / without it)",
        view.layer_name
    ));
    ScrollArea::vertical()
        .id_salt("shiftscope-ui/mistakes")
        .show(ui, |ui| {
            for d in &view.datasets {
                dataset_section(ui, view, d, &mut out);
            }
            if let Some(report) = &view.repair {
                ui.separator();
                repair_section(ui, report);
            }
        });
    out
}

fn dataset_section(ui: &mut Ui, view: &MistakesView, d: &DatasetMistakes, out: &mut Vec<Intent>) {
    let m = &d.mistakes;
    egui::CollapsingHeader::new(format!(
        "{}: {} of {} misclassified",
        d.name, m.mistakes, m.images
    ))
    .id_salt(("shiftscope-ui/mistakes-dataset", d.dataset))
    .default_open(true)
    .show(ui, |ui| {
        if m.mistakes == 0 {
            ui.label("No mistakes on this class.");
            return;
        }
        for (title, list) in [
            ("Insufficient (needed more)", &m.insufficient),
            ("Excessive (needed less)", &m.excessive),
        ] {
            ui.strong(title);
            if list.is_empty() {
                ui.small("none above the 3% cut");
            }
            for n in list {
                neuron_row(ui, view, d, n, out);
            }
        }
        if !m.dropped.is_empty() {
            let names: Vec<String> = m
                .dropped
                .iter()
                .map(|n| format!("{}:{n}", view.layer_name))
                .collect();
            ui.small(format!("in both lists, dropped: {}", names.join(", ")));
        }
    });
}

fn neuron_row(
    ui: &mut Ui,
    view: &MistakesView,
    d: &DatasetMistakes,
    n: &ResponsibleNeuron,
    out: &mut Vec<Intent>,
) {
    ui.horizontal(|ui| {
        let name = format!("{}:{}", view.layer_name, n.neuron);
        if ui.add(egui::Button::new(&name).small()).clicked() {
            out.push(Intent::SelectNeuron(NeuronId {
                layer: view.layer,
                neuron: n.neuron,
            }));
        }
        ui.label(format!(
            "{:.1}% ({} votes), importance {}",
            n.percent,
            n.votes,
            n.importance
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
        ));
        let images = d
            .top_images
            .iter()
            .find(|(x, _)| *x == n.neuron)
            .map(|(_, ids)| ids.as_slice())
            .unwrap_or_default();
        // As many thumbnails as the row has room for (at least one); the rest are counted.
        let room = ui.available_width() - 2.0 * ui.spacing().item_spacing.x - COUNT_WIDTH;
        let fits = ((room / (THUMB + ui.spacing().item_spacing.x)).floor() as usize).max(1);
        let shown = images.len().min(fits);
        for &id in &images[..shown] {
            let label = format!("{}#{}", d.name, id.index);
            let response = match texture(ui, view, id) {
                Some(t) => ui.add(
                    Image::new((t.id(), Vec2::splat(THUMB)))
                        .sense(Sense::click())
                        .alt_text(label.clone()),
                ),
                None => ui.add(egui::Button::new(label.clone()).small()),
            };
            if response
                .on_hover_text(format!("open image {label}"))
                .clicked()
            {
                out.push(Intent::SelectImage(id));
            }
        }
        if shown < images.len() {
            ui.small(format!("+{}", images.len() - shown))
                .on_hover_text("more top images: widen the panel to see them");
        }
    });
}

fn repair_section(ui: &mut Ui, report: &RepairReport) {
    ui.strong(format!(
        "Repair of {}: {}",
        report
            .neurons
            .iter()
            .map(|n| format!("{}:{n}", report.layer))
            .collect::<Vec<_>>()
            .join(", "),
        report.note
    ));
    egui::Grid::new("shiftscope-ui/repair-accuracy")
        .striped(true)
        .show(ui, |ui| {
            for h in ["dataset", "role", "before", "after", "change"] {
                ui.strong(h);
            }
            ui.end_row();
            for d in &report.datasets {
                ui.label(&d.name);
                ui.label(&d.role);
                ui.label(percent(d.before));
                ui.label(percent(d.after));
                ui.label(d.before.zip(d.after).map_or_else(
                    || "-".to_owned(),
                    |(b, a)| format!("{:+.2}", 100.0 * (a - b)),
                ));
                ui.end_row();
            }
        });
    egui::CollapsingHeader::new("Per class, before → after")
        .id_salt("shiftscope-ui/repair-per-class")
        .show(ui, |ui| {
            egui::Grid::new("shiftscope-ui/repair-classes")
                .striped(true)
                .show(ui, |ui| {
                    ui.strong("class");
                    for d in &report.datasets {
                        ui.strong(&d.name);
                    }
                    ui.end_row();
                    for (c, name) in report.classes.iter().enumerate() {
                        ui.label(name);
                        for d in &report.datasets {
                            let (b, a) = d.per_class.get(c).copied().unwrap_or((None, None));
                            ui.label(format!("{} → {}", percent(b), percent(a)));
                        }
                        ui.end_row();
                    }
                });
        });
}
