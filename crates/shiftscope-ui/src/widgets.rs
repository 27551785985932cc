//! Small pieces the panels share: thumbnails through a texture cache kept in egui's memory,
//! links, histograms and bars drawn with the painter, the waiting spinner.

use std::collections::HashMap;

use egui::{
    Color32, ColorImage, Id, Image, Pos2, Rect, Response, Sense, Stroke, StrokeKind, TextureHandle,
    TextureOptions, Ui, Vec2,
};
use shiftscope_analysis::ImageId;

use crate::model::{Bins, Loadable, ViewModel};

/// Textures of thumbnails, by view model generation and image.
#[derive(Clone, Default)]
struct TextureCache(HashMap<(u64, ImageId), TextureHandle>);

fn cache_id() -> Id {
    Id::new("shiftscope-ui/thumb-textures")
}

/// The texture of an image's thumbnail, uploaded on first use; `None` without a thumbnail.
pub(crate) fn texture(ui: &Ui, vm: &ViewModel, id: ImageId) -> Option<TextureHandle> {
    let key = (vm.generation, id);
    let ctx = ui.ctx();
    if let Some(t) = ctx.data_mut(|d| {
        d.get_temp_mut_or_default::<TextureCache>(cache_id())
            .0
            .get(&key)
            .cloned()
    }) {
        return Some(t);
    }
    let thumb = vm.thumbs.get(&id)?;
    if thumb.rgb.len() != thumb.side * thumb.side * 3 || thumb.side == 0 {
        return None;
    }
    let image = ColorImage::from_rgb([thumb.side, thumb.side], &thumb.rgb);
    let handle = ctx.load_texture(
        format!("thumb {}#{}", id.dataset, id.index),
        image,
        TextureOptions::NEAREST,
    );
    ctx.data_mut(|d| {
        d.get_temp_mut_or_default::<TextureCache>(cache_id())
            .0
            .insert(key, handle.clone());
    });
    Some(handle)
}

/// A clickable thumbnail labelled with the image's name (`dataset#index`); a text button
/// of the same label where the thumbnail is missing.
pub(crate) fn thumb(ui: &mut Ui, vm: &ViewModel, id: ImageId, size: f32) -> Response {
    let label = vm.image_name(id);
    let response = match texture(ui, vm, id) {
        Some(t) => ui.add(
            Image::new((t.id(), Vec2::splat(size)))
                .sense(Sense::click())
                .alt_text(label.clone()),
        ),
        None => ui.add_sized([size, size], egui::Button::new(label.clone()).small()),
    };
    response.on_hover_text(format!("open image {label}"))
}

/// The layer chooser of the panels that show one layer at a time (Image, Live): pushes
/// [`Intent::SetLayer`] when another layer is picked.
pub(crate) fn layer_picker(
    ui: &mut Ui,
    vm: &ViewModel,
    state: &crate::state::UiState,
    out: &mut Vec<crate::state::Intent>,
) {
    egui::ComboBox::from_label("layer")
        .selected_text(
            vm.layers
                .get(state.layer)
                .map_or_else(String::new, |l| l.name.clone()),
        )
        .show_ui(ui, |ui| {
            for (l, info) in vm.layers.iter().enumerate() {
                if ui
                    .selectable_label(state.layer == l, info.name.as_str())
                    .clicked()
                    && state.layer != l
                {
                    out.push(crate::state::Intent::SetLayer(l));
                }
            }
        });
}

/// A link-styled button.
pub(crate) fn link(ui: &mut Ui, text: impl Into<String>) -> Response {
    ui.add(egui::Button::new(text.into()).small())
}

/// Shows the state of a detail that is not ready; `true` when there is nothing to show yet.
pub(crate) fn waiting<T>(ui: &mut Ui, detail: &Loadable<T>, what: &str) -> bool {
    match detail {
        Loadable::Ready(_) => false,
        Loadable::Failed(message) => {
            ui.colored_label(ui.visuals().error_fg_color, format!("{what}: {message}"));
            true
        }
        Loadable::Loading(_) | Loadable::Empty => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("loading {what}…"));
            });
            true
        }
    }
}

/// One colour per dataset (or series).
pub(crate) fn palette(i: usize) -> Color32 {
    const COLOURS: [Color32; 8] = [
        Color32::from_rgb(66, 135, 245),
        Color32::from_rgb(245, 130, 48),
        Color32::from_rgb(60, 180, 75),
        Color32::from_rgb(230, 25, 75),
        Color32::from_rgb(145, 30, 180),
        Color32::from_rgb(70, 200, 200),
        Color32::from_rgb(240, 50, 230),
        Color32::from_rgb(170, 110, 40),
    ];
    COLOURS[i % COLOURS.len()]
}

/// Overlaid histograms over one range (same bins), each outlined in its colour and filled
/// translucent; heights normalised per series so small sets stay visible.
pub(crate) fn histograms(ui: &mut Ui, series: &[(String, Color32, &Bins)], height: f32) {
    let width = ui.available_width().clamp(120.0, 600.0);
    let (response, painter) = ui.allocate_painter(Vec2::new(width, height), Sense::hover());
    let rect = response.rect.shrink(2.0);
    painter.rect_stroke(
        rect,
        0.0,
        Stroke::new(1.0, ui.visuals().weak_text_color()),
        StrokeKind::Inside,
    );
    for (_, colour, bins) in series {
        let total = bins.counts.iter().copied().max().unwrap_or(0).max(1) as f32;
        let n = bins.counts.len().max(1) as f32;
        let mut outline = Vec::with_capacity(bins.counts.len() * 2 + 2);
        outline.push(Pos2::new(rect.left(), rect.bottom()));
        for (i, &c) in bins.counts.iter().enumerate() {
            let x0 = rect.left() + rect.width() * i as f32 / n;
            let x1 = rect.left() + rect.width() * (i + 1) as f32 / n;
            let y = rect.bottom() - rect.height() * c as f32 / total;
            painter.rect_filled(
                Rect::from_min_max(Pos2::new(x0, y), Pos2::new(x1, rect.bottom())),
                0.0,
                colour.gamma_multiply(0.25),
            );
            outline.push(Pos2::new(x0, y));
            outline.push(Pos2::new(x1, y));
        }
        outline.push(Pos2::new(rect.right(), rect.bottom()));
        painter.line(outline, Stroke::new(1.5, *colour));
    }
    if let Some((_, _, first)) = series.first() {
        ui.horizontal(|ui| {
            ui.small(format!("{:.3}", first.min));
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.small(format!("{:.3}", first.max));
            });
        });
    }
    ui.horizontal_wrapped(|ui| {
        for (name, colour, bins) in series {
            let n: u64 = bins.counts.iter().sum();
            ui.colored_label(*colour, format!("■ {name} ({n})"));
        }
    });
}

/// A horizontal bar of `fraction` (0–1) of `width`.
pub(crate) fn bar(ui: &mut Ui, fraction: f32, width: f32, colour: Color32) -> Response {
    let (rect, response) = ui.allocate_exact_size(Vec2::new(width, 10.0), Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, ui.visuals().faint_bg_color);
    let f = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    painter.rect_filled(
        Rect::from_min_size(rect.min, Vec2::new(rect.width() * f, rect.height())),
        2.0,
        colour,
    );
    response
}

/// A number, or `–` when undefined.
pub(crate) fn num(v: Option<f32>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.3}"),
        _ => "–".to_string(),
    }
}

/// A fraction as a percentage, or `–`.
pub(crate) fn pct(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:.1}%", v * 100.0),
        _ => "–".to_string(),
    }
}
