//! The Study panel: store and model, datasets with role and accuracy, lead and normaliser,
//! colour-by, search, and the sortable, virtualised neuron table.

use std::sync::Arc;

use egui::{Id, RichText, ScrollArea, TextEdit, Ui};

use crate::model::ViewModel;
use crate::search::{self, Query};
use crate::state::{Column, Intent, Measure, Score, UiState};
use crate::table::table_rows;
use crate::widgets::{num, pct};

/// The table rows of the last frame, recomputed when the search, order or data change.
#[derive(Clone)]
struct TableCache {
    key: (u64, String, crate::state::Sort, Option<usize>),
    rows: Arc<Result<Vec<usize>, String>>,
}

fn rows(ui: &Ui, vm: &ViewModel, state: &UiState) -> Arc<Result<Vec<usize>, String>> {
    let key = (
        vm.generation,
        state.search.clone(),
        state.sort,
        vm.focus(state),
    );
    let id = Id::new("shiftscope-ui/table-rows");
    if let Some(c) = ui.ctx().data(|d| d.get_temp::<TableCache>(id))
        && c.key == key
    {
        return c.rows;
    }
    let rows = Arc::new(table_rows(vm, state).map_err(|e| e.to_string()));
    ui.ctx().data_mut(|d| {
        d.insert_temp(
            id,
            TableCache {
                key,
                rows: Arc::clone(&rows),
            },
        );
    });
    rows
}

const NAME_WIDTH: f32 = 130.0;
const CELL_WIDTH: f32 = 58.0;

fn header_text(state: &UiState, column: Column, name: &str) -> String {
    if state.sort.column == column {
        format!("{name} {}", if state.sort.descending { "⏷" } else { "⏶" })
    } else {
        name.to_string()
    }
}

/// The Study panel.
pub fn study_panel(ui: &mut Ui, vm: &ViewModel, state: &UiState) -> Vec<Intent> {
    let mut out = Vec::new();
    ui.heading("Study");
    ui.label(format!("store {} · model {}", vm.store, vm.model));
    ui.add_space(4.0);

    egui::Grid::new("shiftscope-ui/datasets")
        .striped(true)
        .num_columns(5)
        .show(ui, |ui| {
            ui.strong("lead");
            ui.strong("role");
            ui.strong("accuracy");
            ui.strong("drop");
            ui.strong("norm.");
            ui.end_row();
            for (d, info) in vm.datasets.iter().enumerate() {
                if ui
                    .radio(state.lead == d, info.name.as_str())
                    .on_hover_text(format!(
                        "{} images; others follow its selection",
                        info.images
                    ))
                    .clicked()
                    && state.lead != d
                {
                    out.push(Intent::SetLead(d));
                }
                ui.label(match info.role {
                    shiftscope_store::Role::Id => "ID",
                    shiftscope_store::Role::Ood => "OOD",
                });
                ui.label(pct(info.accuracy));
                ui.label(pct(info.drop));
                if ui
                    .radio(state.normaliser == d, "")
                    .on_hover_text(format!("normalise by {}'s maxima", info.name))
                    .clicked()
                    && state.normaliser != d
                {
                    out.push(Intent::SetNormaliser(d));
                }
                ui.end_row();
            }
        });
    if state.normaliser != vm.normaliser {
        ui.small(format!(
            "re-analysing with normaliser {}…",
            vm.dataset_name(state.normaliser)
        ));
    }

    egui::ComboBox::from_label("colour by")
        .selected_text(state.colour_by.label())
        .show_ui(ui, |ui| {
            for m in Measure::ALL {
                if ui
                    .selectable_label(state.colour_by == m, m.label())
                    .clicked()
                    && state.colour_by != m
                {
                    out.push(Intent::SetColourBy(m));
                }
            }
        });

    let mut text = state.search.clone();
    let mut go = false;
    ui.horizontal(|ui| {
        let edit = ui.add(
            TextEdit::singleline(&mut text)
                .hint_text("fc1:12  or  spurious > 0.6 && layer == fc1")
                .desired_width(ui.available_width() - 40.0),
        );
        if edit.changed() {
            out.push(Intent::SetSearch(text.clone()));
        }
        go = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        go |= ui.button("Go").clicked();
    });
    let query = search::parse(&text, &vm.layer_names());
    match &query {
        Err(e) => {
            ui.colored_label(ui.visuals().error_fg_color, format!("search: {e}"));
        }
        Ok(Query::Neuron(id)) if go => out.push(Intent::SelectNeuron(*id)),
        Ok(_) => {}
    }

    let rows = rows(ui, vm, state);
    let rows: &[usize] = match rows.as_ref() {
        Ok(r) => r,
        Err(_) => &[],
    };
    let focus = vm.focus(state);
    ui.horizontal(|ui| {
        ui.label(format!("{} of {} neurons", rows.len(), vm.neurons.len()));
        if let Some(f) = focus {
            ui.small(format!("shift scores vs {}", vm.dataset_name(vm.ood[f])));
        }
        if ui.button("Export CSV").clicked() {
            out.push(Intent::ExportNeuronCsv(None));
        }
    });

    let row_height = ui.spacing().interact_size.y;
    ScrollArea::horizontal()
        .id_salt("shiftscope-ui/table-h")
        .show(ui, |ui| {
            ui.vertical(|ui| {
                ui.horizontal(|ui| {
                    let h = ui.add_sized(
                        [NAME_WIDTH, row_height],
                        egui::Button::new(header_text(state, Column::Neuron, "neuron")),
                    );
                    if h.clicked() {
                        out.push(Intent::SortBy(Column::Neuron));
                    }
                    for s in Score::ALL {
                        let column = Column::Score(s);
                        if ui
                            .add_sized(
                                [CELL_WIDTH, row_height],
                                egui::Button::new(header_text(state, column, s.name())),
                            )
                            .clicked()
                        {
                            out.push(Intent::SortBy(column));
                        }
                    }
                });
                ScrollArea::vertical()
                    .id_salt("shiftscope-ui/table-v")
                    .auto_shrink([false, false])
                    .show_rows(ui, row_height, rows.len(), |ui, range| {
                        for &i in &rows[range] {
                            let row = &vm.neurons[i];
                            ui.horizontal(|ui| {
                                let selected = state.neuron() == Some(row.id);
                                if ui
                                    .add_sized(
                                        [NAME_WIDTH, row_height],
                                        egui::Button::selectable(selected, vm.neuron_name(row.id)),
                                    )
                                    .clicked()
                                {
                                    out.push(Intent::SelectNeuron(row.id));
                                }
                                for s in Score::ALL {
                                    let v = row.score(s, focus);
                                    ui.add_sized(
                                        [CELL_WIDTH, row_height],
                                        egui::Label::new(
                                            RichText::new(num(v.is_finite().then_some(v)))
                                                .monospace(),
                                        ),
                                    );
                                }
                            });
                        }
                    });
            });
        });
    out
}
