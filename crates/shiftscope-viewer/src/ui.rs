//! Hosting the panels: a top bar (navigation, history, colour-by and extrude-by menus, the
//! hovered neuron), the active panel in a fixed right side panel, and over the map the layer
//! labels, the legend, the hover tooltip, the help overlay and loading progress. The map's
//! camera gets the rectangle the panels leave free, so nothing overlaps. Every click becomes
//! an [`Intent`] for the session to apply.

use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};
use shiftscope_ui::{Intent, Measure, Panel, ViewModel, nav_bar, show_panel};

use crate::camera::{EguiWants, OrbitCamera};
use crate::colour::ColourMap;
use crate::map::{MapLayout, MapViewport};
use crate::session::{Session, Shown};

/// Width of the right side panel, logical pixels.
pub const PANEL_WIDTH: f32 = 430.0;

/// The UI's systems.
#[derive(Debug)]
pub struct UiPlugin;

impl Plugin for UiPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(EguiPrimaryContextPass, draw_ui);
    }
}

fn style(ctx: &egui::Context) {
    ctx.set_visuals(egui::Visuals::dark());
}

fn to_egui([r, g, b]: [f32; 3]) -> egui::Color32 {
    let c = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    egui::Color32::from_rgb(c(r), c(g), c(b))
}

/// What the colour measure is of, in words (the legend's title).
pub fn describe(shown: &Shown, vm: &ViewModel) -> String {
    let key = shown.values.key;
    let m = key.measure;
    match m {
        Measure::Activation => format!("{} — {}", m.label(), vm.image_name(key.image)),
        Measure::ClassMean => format!(
            "{} — {} on {}",
            m.label(),
            vm.class_name(key.class),
            vm.dataset_name(key.lead)
        ),
        Measure::Difference => format!(
            "{} — {}#{i} − {}#{i}",
            m.label(),
            vm.dataset_name(vm.reference),
            key.ood
                .map_or_else(|| "no OOD set".into(), |d| vm.dataset_name(d)),
            i = key.image.index
        ),
        Measure::Spurious | Measure::Novelty | Measure::Shift => format!(
            "{} — vs {}",
            m.label(),
            key.ood
                .map_or_else(|| "no OOD set".into(), |d| vm.dataset_name(d))
        ),
        Measure::Rafegas | Measure::Morcos => {
            format!("{} — on {}", m.label(), vm.dataset_name(vm.reference))
        }
        Measure::ColourSelectivity => format!(
            "{} — where `shiftscope features` computed it (NaN elsewhere)",
            m.label()
        ),
        Measure::Live => match vm.live.ready() {
            Some(live) => format!("{} — {}", m.label(), live.name),
            None => format!("{} — drop an image file on the window", m.label()),
        },
    }
}

fn number(v: f32) -> String {
    if !v.is_finite() {
        "—".into()
    } else if v != 0.0 && (v.abs() < 0.01 || v.abs() >= 1000.0) {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

fn top_bar(ui: &mut egui::Ui, session: &mut Session, out: &mut Vec<Intent>) {
    let (Some(vm), Some(state)) = (&session.vm, &session.ui) else {
        ui.horizontal(|ui| {
            ui.strong("shiftscope");
            ui.label("loading…");
        });
        return;
    };
    ui.horizontal(|ui| {
        ui.strong("shiftscope");
        ui.label(egui::RichText::new(format!("{} · {}", vm.store, vm.model)).weak());
        ui.separator();
        out.extend(nav_bar(ui, vm, state));
    });
    ui.horizontal(|ui| {
        ui.label("Colour by");
        egui::ComboBox::from_id_salt("colour-by")
            .selected_text(state.colour_by.label())
            .width(170.0)
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
        ui.label("Extrude by");
        let mut extrude = session.extrude;
        egui::ComboBox::from_id_salt("extrude-by")
            .selected_text(extrude.map_or("nothing", Measure::label))
            .width(150.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut extrude, None, "nothing");
                for m in Measure::ALL {
                    ui.selectable_value(&mut extrude, Some(m), m.label());
                }
            });
        if extrude != session.extrude {
            session.extrude = extrude;
            session.height = None;
            session.revision += 1;
        }
        if ui.button("Help (h)").clicked() {
            session.help = !session.help;
        }
        if let Some(id) = state.neuron() {
            ui.separator();
            ui.label(format!("selected {}", vm.neuron_name(id)));
        }
    });
}

fn legend(ctx: &egui::Context, map: egui::Rect, session: &Session) {
    let (Some(vm), Some(shown)) = (&session.vm, &session.colour) else {
        return;
    };
    egui::Area::new(egui::Id::new("legend"))
        .fixed_pos(map.left_bottom() + egui::vec2(12.0, -84.0))
        .order(egui::Order::Foreground)
        .interactable(false)
        .show(ctx, |ui| {
            egui::Frame::popup(ui.style()).show(ui, |ui| {
                ui.set_width(300.0);
                ui.label(egui::RichText::new(describe(shown, vm)).strong());
                let (rect, _) =
                    ui.allocate_exact_size(egui::vec2(300.0, 14.0), egui::Sense::hover());
                let steps = 60;
                for i in 0..steps {
                    let t = (i as f32 + 0.5) / steps as f32;
                    let x0 = rect.left() + rect.width() * i as f32 / steps as f32;
                    let x1 = rect.left() + rect.width() * (i + 1) as f32 / steps as f32 + 0.5;
                    ui.painter().rect_filled(
                        egui::Rect::from_min_max(
                            egui::pos2(x0, rect.top()),
                            egui::pos2(x1, rect.bottom()),
                        ),
                        0.0,
                        to_egui(shown.map.at(t)),
                    );
                }
                ui.horizontal(|ui| match shown.range {
                    Some((lo, hi)) => {
                        ui.label(number(lo));
                        if shown.map == ColourMap::Diverging {
                            ui.add_space(100.0);
                            ui.label("0");
                        }
                        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                            ui.label(number(hi));
                        });
                    }
                    None => {
                        ui.label("no defined values");
                    }
                });
            });
        });
}

fn labels(
    ctx: &egui::Context,
    map: egui::Rect,
    session: &Session,
    layout: &MapLayout,
    camera: Option<(&Camera, &GlobalTransform)>,
) {
    let (Some(vm), Some((camera, transform))) = (&session.vm, camera) else {
        return;
    };
    let current = session.ui.as_ref().map(|u| u.layer);
    let painter = ctx
        .layer_painter(egui::LayerId::background())
        .with_clip_rect(map);
    for (l, slab) in layout.0.slabs.iter().enumerate() {
        let Some(info) = vm.layers.get(l) else {
            continue;
        };
        let anchor = slab.origin + Vec3::new(slab.width() / 2.0, 0.0, slab.depth() + 0.6);
        let Ok(p) = camera.world_to_viewport(transform, anchor) else {
            continue;
        };
        let pos = egui::pos2(p.x, p.y);
        let strong = current == Some(l);
        let text = format!("{}\n{} · {}", info.name, info.kind, info.neurons);
        let galley = painter.layout(
            text,
            egui::FontId::proportional(13.0),
            if strong {
                egui::Color32::WHITE
            } else {
                egui::Color32::from_gray(200)
            },
            220.0,
        );
        let rect = egui::Align2::CENTER_TOP.anchor_size(pos, galley.size());
        painter.rect_filled(rect.expand(3.0), 3.0, egui::Color32::from_black_alpha(150));
        painter.galley(rect.min, galley, egui::Color32::WHITE);
        // Logit cells carry their class names.
        if info.kind == "logits" && info.neurons == vm.classes.len() && info.neurons <= 100 {
            for (i, class) in vm.classes.iter().enumerate() {
                let Ok(p) = camera.world_to_viewport(transform, slab.centre(i)) else {
                    continue;
                };
                let galley = painter.layout_no_wrap(
                    class.clone(),
                    egui::FontId::proportional(11.0),
                    egui::Color32::WHITE,
                );
                let rect =
                    egui::Align2::CENTER_CENTER.anchor_size(egui::pos2(p.x, p.y), galley.size());
                painter.rect_filled(rect.expand(2.0), 2.0, egui::Color32::from_black_alpha(170));
                painter.galley(rect.min, galley, egui::Color32::WHITE);
            }
        }
    }
}

fn tooltip(ctx: &egui::Context, session: &Session) {
    let (Some(vm), Some(state), Some(id)) = (&session.vm, &session.ui, session.hovered) else {
        return;
    };
    let Some(pos) = ctx.pointer_hover_pos() else {
        return;
    };
    egui::Area::new(egui::Id::new("hover"))
        .fixed_pos(pos + egui::vec2(16.0, 16.0))
        .order(egui::Order::Tooltip)
        .interactable(false)
        .show(ctx, |ui| {
            egui::Frame::popup(ui.style()).show(ui, |ui| {
                ui.strong(vm.neuron_name(id));
                if let Some(shown) = &session.colour {
                    ui.label(format!(
                        "{}: {}",
                        shown.values.key.measure.label(),
                        shown.value(id).map_or("—".into(), number)
                    ));
                }
                if let Some(row) = vm.row(id) {
                    let focus = vm.focus(state);
                    ui.label(format!(
                        "spurious {} · novelty {} · shift {}",
                        number(row.score(shiftscope_ui::Score::Spurious, focus)),
                        number(row.score(shiftscope_ui::Score::Novelty, focus)),
                        number(row.score(shiftscope_ui::Score::Shift, focus)),
                    ));
                }
                ui.label(egui::RichText::new("click to select").weak());
            });
        });
}

fn help(ctx: &egui::Context, map: egui::Rect, session: &mut Session) {
    if !session.help {
        return;
    }
    let mut open = true;
    egui::Window::new("Help")
        .open(&mut open)
        .collapsible(false)
        .resizable(false)
        .default_pos(map.center() - egui::vec2(170.0, 140.0))
        .show(ctx, |ui| {
            egui::Grid::new("keys")
                .num_columns(2)
                .striped(true)
                .show(ui, |ui| {
                    for (k, what) in [
                        ("left drag", "orbit"),
                        ("right / middle drag", "pan"),
                        ("wheel", "zoom"),
                        ("W A S D, Q E", "fly"),
                        ("click a cell", "select the neuron"),
                        ("arrow keys", "move within the layer"),
                        ("u / o", "previous / next layer"),
                        ("h", "this help"),
                        ("Esc", "reset the camera"),
                    ] {
                        ui.strong(k);
                        ui.label(what);
                        ui.end_row();
                    }
                });
            ui.label("Lines join the selected neuron to its most correlated");
            ui.label("neurons in the previous layer (orange +, blue −).");
        });
    if !open {
        session.help = false;
    }
}

fn progress(ctx: &egui::Context, map: egui::Rect, session: &Session) {
    if session.vm.is_some() {
        return;
    }
    egui::Area::new(egui::Id::new("progress"))
        .fixed_pos(map.center() - egui::vec2(160.0, 40.0))
        .order(egui::Order::Foreground)
        .show(ctx, |ui| {
            egui::Frame::popup(ui.style()).show(ui, |ui| {
                ui.set_width(320.0);
                if let Some(e) = &session.error {
                    ui.colored_label(egui::Color32::from_rgb(255, 120, 110), e);
                    return;
                }
                let (done, all) = session.progress;
                ui.label(if all == 0 {
                    "Opening the store…".to_string()
                } else {
                    format!("Analysing layer {} of {all}…", (done + 1).min(all))
                });
                let f = if all == 0 {
                    0.0
                } else {
                    done as f32 / all as f32
                };
                ui.add(egui::ProgressBar::new(f).show_percentage().animate(true));
            });
        });
}

fn draw_ui(
    mut contexts: EguiContexts,
    mut session: ResMut<Session>,
    mut view: ResMut<MapViewport>,
    mut wants: ResMut<EguiWants>,
    layout: Res<MapLayout>,
    cameras: Query<(&Camera, &GlobalTransform), With<OrbitCamera>>,
    mut styled: Local<bool>,
) -> Result {
    let ctx = contexts.ctx_mut()?.clone();
    if !*styled {
        style(&ctx);
        *styled = true;
    }
    let session = &mut *session;
    let mut intents = Vec::new();
    let mut root = egui::Ui::new(
        ctx.clone(),
        "shiftscope-root".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.content_rect()),
    );
    egui::Panel::top("top-bar").show(&mut root, |ui| {
        ui.add_space(2.0);
        top_bar(ui, session, &mut intents);
        ui.add_space(2.0);
    });
    egui::Panel::right("panel")
        .resizable(false)
        .exact_size(PANEL_WIDTH)
        .show(&mut root, |ui| {
            // Wide panels (a column per dataset) scroll sideways rather than spill.
            egui::ScrollArea::both()
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    if let (Some(vm), Some(state)) = (&session.vm, &session.ui) {
                        let panel = state.panel().unwrap_or(Panel::Study);
                        intents.extend(show_panel(ui, vm, state, panel));
                    } else {
                        ui.label("Waiting for the analysis…");
                        ui.spinner();
                    }
                });
        });
    let map = root.available_rect_before_wrap();
    *view = MapViewport {
        min: Vec2::new(map.min.x, map.min.y),
        max: Vec2::new(map.max.x, map.max.y),
    };
    labels(&ctx, map, session, &layout, cameras.single().ok());
    legend(&ctx, map, session);
    tooltip(&ctx, session);
    help(&ctx, map, session);
    progress(&ctx, map, session);
    let over_window = ctx.pointer_hover_pos().is_some_and(|p| {
        !map.contains(p)
            || ctx.layer_id_at(p).is_some_and(|l| {
                !matches!(l.order, egui::Order::Background | egui::Order::Tooltip)
                    && l.id != egui::Id::new("legend")
            })
    });
    *wants = EguiWants {
        pointer: over_window || ctx.egui_is_using_pointer(),
        keyboard: ctx.egui_wants_keyboard_input(),
    };
    session.intents.extend(intents);
    Ok(())
}
