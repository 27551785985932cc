//! The Overview panel: accuracy per dataset, the layer shift profile (mean spurious, novelty
//! and shift per layer along depth, against the OOD dataset in focus), and the score
//! histograms of the current layer.

use egui::{Pos2, Sense, Stroke, Ui, Vec2};
use shiftscope_analysis::ScoreKind;

use crate::model::{Bins, ViewModel};
use crate::state::{Intent, UiState};
use crate::widgets::{bar, histograms, palette, pct};

const KINDS: [(ScoreKind, &str); 3] = [
    (ScoreKind::Spurious, "spurious"),
    (ScoreKind::Novelty, "novelty"),
    (ScoreKind::Shift, "shift"),
];

/// Draws each series (one value per layer, NaN: gap) scaled to its own range.
fn profile_plot(ui: &mut Ui, series: &[(&str, Vec<f64>)], layer: usize) {
    let width = ui.available_width().clamp(120.0, 600.0);
    let (response, painter) = ui.allocate_painter(Vec2::new(width, 110.0), Sense::hover());
    let rect = response.rect.shrink(4.0);
    painter.rect_stroke(
        response.rect,
        0.0,
        Stroke::new(1.0, ui.visuals().weak_text_color()),
        egui::StrokeKind::Inside,
    );
    let layers = series.first().map_or(0, |s| s.1.len());
    let x = |l: usize| {
        if layers <= 1 {
            rect.center().x
        } else {
            rect.left() + rect.width() * l as f32 / (layers - 1) as f32
        }
    };
    if layers > 0 {
        painter.line_segment(
            [
                Pos2::new(x(layer), rect.top()),
                Pos2::new(x(layer), rect.bottom()),
            ],
            Stroke::new(1.0, ui.visuals().weak_text_color()),
        );
    }
    for (i, (_, values)) in series.iter().enumerate() {
        let finite = values.iter().filter(|v| v.is_finite());
        let lo = finite.clone().fold(f64::INFINITY, |a, &b| a.min(b));
        let hi = finite.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let span = if hi > lo { hi - lo } else { 1.0 };
        let y = |v: f64| rect.bottom() - rect.height() * ((v - lo) / span) as f32;
        let mut run: Vec<Pos2> = Vec::new();
        let colour = palette(i);
        for (l, &v) in values.iter().enumerate() {
            if v.is_finite() {
                let p = Pos2::new(x(l), y(v));
                painter.circle_filled(p, 2.5, colour);
                run.push(p);
            } else if !run.is_empty() {
                painter.line(std::mem::take(&mut run), Stroke::new(1.5, colour));
            }
        }
        if run.len() > 1 {
            painter.line(run, Stroke::new(1.5, colour));
        }
    }
}

/// The Overview panel.
pub fn overview_panel(ui: &mut Ui, vm: &ViewModel, state: &UiState) -> Vec<Intent> {
    let mut out = Vec::new();
    ui.heading("Overview");
    egui::ScrollArea::vertical()
        .id_salt("shiftscope-ui/overview")
        .show(ui, |ui| {
            ui.label("accuracy");
            egui::Grid::new("shiftscope-ui/overview-accuracy").show(ui, |ui| {
                for (d, info) in vm.datasets.iter().enumerate() {
                    ui.label(info.name.as_str());
                    bar(ui, info.accuracy.unwrap_or(0.0) as f32, 120.0, palette(d));
                    ui.label(pct(info.accuracy));
                    ui.small(format!("drop {}", pct(info.drop)));
                    ui.end_row();
                }
            });
            ui.separator();
            let Some(focus) = vm.focus(state).and_then(|f| vm.ood.get(f).copied()) else {
                ui.label("No OOD dataset: no shift scores.");
                return;
            };
            ui.label(format!(
                "layer shift profile vs {} (each line on its own scale)",
                vm.dataset_name(focus)
            ));
            let series: Vec<(&str, Vec<f64>)> = KINDS
                .iter()
                .map(|&(kind, name)| {
                    (
                        name,
                        (0..vm.layers.len())
                            .map(|l| vm.profile_mean(l, kind, focus))
                            .collect(),
                    )
                })
                .collect();
            profile_plot(ui, &series, state.layer);
            ui.horizontal_wrapped(|ui| {
                for (i, (name, _)) in series.iter().enumerate() {
                    ui.colored_label(palette(i), format!("■ mean {name}"));
                }
            });
            ui.horizontal_wrapped(|ui| {
                ui.label("layer:");
                for (l, info) in vm.layers.iter().enumerate() {
                    if ui
                        .add(egui::Button::selectable(state.layer == l, info.name.as_str()).small())
                        .clicked()
                        && state.layer != l
                    {
                        out.push(Intent::SetLayer(l));
                    }
                }
            });
            ui.separator();
            let name = vm.layers.get(state.layer).map_or("?", |l| l.name.as_str());
            ui.label(format!("score histograms of {name}"));
            if let Some(summaries) = vm.profile.get(state.layer) {
                for (i, &(kind, label)) in KINDS.iter().enumerate() {
                    if let Some(s) = summaries
                        .iter()
                        .find(|s| s.kind == kind && s.dataset == focus)
                    {
                        let bins = Bins {
                            min: s.histogram.min as f32,
                            max: s.histogram.max as f32,
                            counts: s.histogram.counts.clone(),
                        };
                        ui.small(format!(
                            "{label}: mean {:.3}, median {:.3}, {} undefined",
                            s.mean, s.median, s.histogram.undefined
                        ));
                        histograms(ui, &[(label.to_string(), palette(i), &bins)], 50.0);
                    }
                }
            }
        });
    out
}
