//! The Category panel: a class's accuracy per dataset and the drop, its top neurons by class
//! mean, false negatives and positives on the lead dataset grouped by the confused class
//! (bars; a click picks the pair), image grids most confident first, the pairwise view.

use egui::{ScrollArea, Ui};
use shiftscope_analysis::{ClassId, ConfusionGroup};

use crate::model::{Loadable, ViewModel};
use crate::state::{Intent, UiState};
use crate::widgets::{bar, link, num, palette, pct, thumb, waiting};

const SMALL: f32 = 32.0;

fn groups(
    ui: &mut Ui,
    vm: &ViewModel,
    title: &str,
    groups: &[ConfusionGroup],
    pair: Option<ClassId>,
    out: &mut Vec<Intent>,
) {
    ui.label(title);
    if groups.is_empty() {
        ui.small("none");
        return;
    }
    let most = groups
        .iter()
        .map(|g| g.images.len())
        .max()
        .unwrap_or(1)
        .max(1);
    for g in groups {
        ui.horizontal(|ui| {
            bar(ui, g.images.len() as f32 / most as f32, 60.0, palette(3));
            let selected = pair == Some(g.confused_with);
            if ui
                .add(
                    egui::Button::selectable(
                        selected,
                        format!("{} ({})", vm.class_name(g.confused_with), g.images.len()),
                    )
                    .small(),
                )
                .clicked()
            {
                out.push(Intent::SelectPair(g.confused_with));
            }
        });
    }
    // The grid of the chosen pair's group, else the largest.
    let shown = groups
        .iter()
        .find(|g| Some(g.confused_with) == pair)
        .or(groups.first());
    if let Some(g) = shown {
        ui.horizontal_wrapped(|ui| {
            ui.spacing_mut().item_spacing = egui::vec2(2.0, 2.0);
            for s in &g.images {
                if thumb(ui, vm, s.image, SMALL)
                    .on_hover_text(format!("confidence {:.1}%", s.score * 100.0))
                    .clicked()
                {
                    out.push(Intent::SelectImage(s.image));
                }
            }
        });
    }
}

/// The Category panel.
pub fn category_panel(ui: &mut Ui, vm: &ViewModel, state: &UiState) -> Vec<Intent> {
    let mut out = Vec::new();
    let title = state.class().map_or_else(
        || "Category".to_string(),
        |c| format!("Category {}", vm.class_name(c)),
    );
    ui.heading(title);
    egui::ComboBox::from_label("class")
        .selected_text(state.class().map_or_else(String::new, |c| vm.class_name(c)))
        .show_ui(ui, |ui| {
            for (c, name) in vm.classes.iter().enumerate() {
                let class = ClassId(c);
                if ui
                    .selectable_label(state.class() == Some(class), name.as_str())
                    .clicked()
                    && state.class() != Some(class)
                {
                    out.push(Intent::SelectClass(class));
                }
            }
        });
    let Some(class) = state.class() else {
        ui.label("Select a class here or in any panel.");
        return out;
    };
    let detail = match &vm.class {
        Loadable::Ready(d) if d.view.class == class => d,
        Loadable::Ready(_) => {
            waiting::<()>(ui, &Loadable::Loading(String::new()), "class");
            return out;
        }
        other => {
            waiting(ui, other, "class");
            return out;
        }
    };
    ScrollArea::vertical()
        .id_salt("shiftscope-ui/category")
        .show(ui, |ui| {
            egui::Grid::new("shiftscope-ui/class-accuracy")
                .striped(true)
                .show(ui, |ui| {
                    ui.strong("dataset");
                    ui.strong("accuracy");
                    ui.strong("drop");
                    ui.end_row();
                    for d in &detail.view.datasets {
                        ui.label(vm.dataset_name(d.accuracy.dataset));
                        ui.label(format!(
                            "{} of {}",
                            pct(d.accuracy.accuracy),
                            d.accuracy.images
                        ));
                        ui.label(pct(d.accuracy.drop_from_reference));
                        ui.end_row();
                    }
                });
            ui.separator();
            ui.label(format!(
                "top neurons of {} by class mean on {}",
                vm.layers.get(detail.layer).map_or("?", |l| l.name.as_str()),
                vm.dataset_name(vm.reference)
            ));
            ui.horizontal_wrapped(|ui| {
                for n in &detail.top_neurons {
                    if link(
                        ui,
                        format!("{} {}", vm.neuron_name(n.neuron), num(Some(n.value))),
                    )
                    .clicked()
                    {
                        out.push(Intent::SelectNeuron(n.neuron));
                    }
                }
            });
            ui.separator();
            let pair = state
                .view
                .pair
                .or_else(|| detail.pairwise.as_ref().map(|p| p.b));
            if let Some(d) = detail.view.datasets.get(detail.lead) {
                ui.strong(format!("on {}", vm.dataset_name(detail.lead)));
                groups(
                    ui,
                    vm,
                    "false negatives, by predicted class",
                    &d.false_negatives,
                    pair,
                    &mut out,
                );
                groups(
                    ui,
                    vm,
                    "false positives, by true class",
                    &d.false_positives,
                    pair,
                    &mut out,
                );
            }
            if let Some(p) = &detail.pairwise {
                ui.separator();
                let (a, b) = (vm.class_name(p.a), vm.class_name(p.b));
                ui.strong(format!("pairwise: {a} vs {b}"));
                egui::Grid::new("shiftscope-ui/pairwise").show(ui, |ui| {
                    ui.label("");
                    ui.label(format!("as {a}"));
                    ui.label(format!("as {b}"));
                    ui.end_row();
                    ui.label(a.as_str());
                    ui.label(p.counts[0].to_string());
                    ui.label(p.counts[1].to_string());
                    ui.end_row();
                    ui.label(b.as_str());
                    ui.label(p.counts[3].to_string());
                    ui.label(p.counts[2].to_string());
                    ui.end_row();
                });
                for (title, images) in [
                    (format!("{a} seen as {b}"), &p.a_as_b),
                    (format!("{b} seen as {a}"), &p.b_as_a),
                ] {
                    ui.small(title);
                    ui.horizontal_wrapped(|ui| {
                        ui.spacing_mut().item_spacing = egui::vec2(2.0, 2.0);
                        for s in images {
                            if thumb(ui, vm, s.image, SMALL).clicked() {
                                out.push(Intent::SelectImage(s.image));
                            }
                        }
                    });
                }
            }
        });
    out
}
