//! The PNG figures: drawn with plotters into an RGB buffer, encoded with `png`.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use shiftscope_store::Role;

use crate::{Progress, Report, ReportError, io_error, register_font};

/// The figures written, as paths relative to the report folder (for the markdown).
#[derive(Debug, Default)]
pub(crate) struct Figures {
    /// The layer shift profile.
    pub(crate) profile: Option<String>,
    /// One histogram grid per score: (score name, file).
    pub(crate) histograms: Vec<(&'static str, String)>,
    /// One heatmap per chosen layer: (layer, file).
    pub(crate) heatmaps: Vec<(usize, String)>,
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Line colours (Tableau 10), one per OOD dataset.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Grey for undefined heatmap cells.
const UNDEFINED: RGBColor = RGBColor(200, 200, 200);

/// Viridis, sampled at 9 points and interpolated linearly.
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 45, 123),
        (59, 82, 139),
        (44, 114, 142),
        (33, 145, 140),
        (40, 174, 128),
        (94, 201, 98),
        (173, 220, 48),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn font(size: u32) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", size).into_font()).color(&BLACK)
}

/// Turns a plotters error into text.
fn text<T, E: Display>(r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

/// Draws a `width × height` figure with `draw` and writes it as an RGB PNG.
fn png(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), String>,
) -> Result<(), ReportError> {
    let figure = |problem: String| ReportError::Figure {
        path: path.to_path_buf(),
        problem,
    };
    register_font().map_err(figure)?;
    let mut pixels = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        text(root.fill(&WHITE)).map_err(figure)?;
        draw(&root).map_err(figure)?;
        text(root.present()).map_err(figure)?;
    }
    let file = std::fs::File::create(path).map_err(io_error(path))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = text(encoder.write_header()).map_err(figure)?;
    text(writer.write_image_data(&pixels)).map_err(figure)?;
    text(writer.finish()).map_err(figure)
}

/// Writes every figure; returns their relative paths and appends them to `files`.
pub(crate) fn write_all(
    report: &Report<'_>,
    out: &Path,
    heatmap_layers: &[usize],
    progress: &mut dyn FnMut(Progress),
    files: &mut Vec<PathBuf>,
) -> Result<Figures, ReportError> {
    let mut figures = Figures::default();
    if !report.ood.is_empty() && !report.layers.is_empty() {
        let name = "layer_profile.png";
        let path = out.join(name);
        progress(Progress::Writing(path.clone()));
        profile(report, &path)?;
        files.push(path);
        figures.profile = Some(name.to_owned());
        for (score, label) in [
            (Score::Spurious, "spurious"),
            (Score::Novelty, "novelty"),
            (Score::Shift, "shift"),
        ] {
            let name = format!("hist_{label}.png");
            let path = out.join(&name);
            progress(Progress::Writing(path.clone()));
            histograms(report, score, &path)?;
            files.push(path);
            figures.histograms.push((label, name));
        }
    }
    for &layer in heatmap_layers {
        let name = format!("heatmap_layer{layer:02}.png");
        let path = out.join(&name);
        progress(Progress::Writing(path.clone()));
        heatmap(report, layer, &path)?;
        files.push(path);
        figures.heatmaps.push((layer, name));
    }
    Ok(figures)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Score {
    Spurious,
    Novelty,
    Shift,
}

impl Score {
    fn values<'a>(self, report: &'a Report<'_>, layer: usize, ood: usize) -> &'a [f32] {
        report.layers[layer].shift(ood).map_or(&[], |s| match self {
            Score::Spurious => &s.spurious,
            Score::Novelty => &s.novelty,
            Score::Shift => &s.shift,
        })
    }

    fn title(self) -> &'static str {
        match self {
            Score::Spurious => "spurious score  1 − |ρ(ID, OOD class means)|",
            Score::Novelty => "novelty score  max_c Y_ID − max_c Y_OOD",
            Score::Shift => "activation shift  W1(ID, OOD)",
        }
    }

    fn axis(self) -> &'static str {
        match self {
            Score::Spurious => "spurious",
            Score::Novelty => "novelty",
            Score::Shift => "W1 shift",
        }
    }
}

fn mean(values: &[f32]) -> Option<f64> {
    let (sum, n) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((0.0, 0usize), |(s, n), &v| (s + f64::from(v), n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// A layer's name, shortened from the left to `max` characters.
fn short(name: &str, max: usize) -> String {
    let count = name.chars().count();
    if count <= max {
        name.to_owned()
    } else {
        let tail: String = name.chars().skip(count - (max - 1)).collect();
        format!("…{tail}")
    }
}

/// A tick label with as many decimals as the axis span needs, never "-0".
fn tick(v: f64, span: f64) -> String {
    let decimals = if span > 0.0 && span.is_finite() {
        (1.0 - span.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        2
    };
    let text = format!("{v:.decimals$}");
    if text
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        text.trim_start_matches('-').to_owned()
    } else {
        text
    }
}

/// A value range padded so that it is never empty.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    if span <= 1e-9 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo - span * 0.05, hi + span * 0.05)
    }
}

/// The layer shift profile: mean spurious, novelty and shift per layer, one line per OOD
/// dataset, three panels sharing the x axis (layers in network order).
fn profile(report: &Report<'_>, path: &Path) -> Result<(), ReportError> {
    let layers = report.layers.len();
    let names: Vec<String> = report
        .manifest()
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{i} {}", short(&l.name, 22)))
        .collect();
    let label_chars = names.iter().map(|n| n.chars().count()).max().unwrap_or(4);
    let bottom = (label_chars as u32 * 8 + 50).min(260);
    let width = (160 + layers as u32 * 34).clamp(900, 2400);
    let panel = 260;
    // Legend entries laid out in rows that fit the width (about 7 px per character).
    let entry_w = |o: usize| 70 + report.dataset_name(o).chars().count() as u32 * 7;
    let mut legend_rows = 1u32;
    let mut row_w = 90u32;
    for &o in &report.ood {
        if row_w + entry_w(o) > width - 20 && row_w > 90 {
            legend_rows += 1;
            row_w = 90;
        }
        row_w += entry_w(o);
    }
    let legend_h = 26 * legend_rows + 10;
    let height = 50 + legend_h + 3 * panel + bottom;
    png(path, (width, height), |root| {
        let page = text(root.titled(
            "Layer shift profile: mean score over each layer's neurons, ID vs each OOD dataset",
            font(22),
        ))?;
        // One legend for the three panels, above them, so no data point hides behind it.
        let (legend, page) = page.split_vertically(legend_h);
        let (mut x, mut y) = (90i32, 14i32);
        for (i, &o) in report.ood.iter().enumerate() {
            if x as u32 + entry_w(o) > width - 20 && x > 90 {
                (x, y) = (90, y + 26);
            }
            let c = colour(i);
            text(legend.draw(&PathElement::new(
                vec![(x, y), (x + 24, y)],
                c.stroke_width(3),
            )))?;
            text(legend.draw(&Circle::new((x + 12, y), 4, c.filled())))?;
            let name = report.dataset_name(o);
            text(legend.draw_text(name, &font(15), (x + 32, y - 8)))?;
            x += entry_w(o) as i32;
        }
        // The last panel also holds the layer names under its x axis.
        let (first, rest) = page.split_vertically(panel);
        let (second, third) = rest.split_vertically(panel);
        let areas = [first, second, third];
        for (row, (area, score)) in areas
            .iter()
            .zip([Score::Spurious, Score::Novelty, Score::Shift])
            .enumerate()
        {
            let series: Vec<(usize, Vec<Option<f64>>)> = report
                .ood
                .iter()
                .map(|&o| {
                    (
                        o,
                        (0..layers)
                            .map(|l| mean(score.values(report, l, o)))
                            .collect(),
                    )
                })
                .collect();
            let all = series.iter().flat_map(|(_, v)| v.iter().flatten().copied());
            let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
            let (lo, hi) = match score {
                Score::Novelty => padded(lo.min(0.0), hi.max(0.0)),
                _ => padded(0.0, hi),
            };
            let last = row == 2;
            let mut builder = ChartBuilder::on(area);
            builder
                .margin(10)
                .margin_right(30)
                .y_label_area_size(80)
                .x_label_area_size(if last { bottom as i32 } else { 10 });
            let mut chart = text(
                builder.build_cartesian_2d((0..layers.max(1) as i32 - 1).into_segmented(), lo..hi),
            )?;
            // Layer names are drawn below (rotated), not as mesh labels.
            text(
                chart
                    .configure_mesh()
                    .x_labels(layers.max(2))
                    .x_label_formatter(&|_| String::new())
                    .y_labels(6)
                    .y_label_style(font(14))
                    .y_label_formatter(&|v| tick(*v, hi - lo))
                    .y_desc(score.axis())
                    .axis_desc_style(font(16))
                    .x_desc(if last { "layer (network order)" } else { "" })
                    .light_line_style(RGBColor(245, 245, 245))
                    .draw(),
            )?;
            for (i, (_, values)) in series.iter().enumerate() {
                let c = colour(i);
                let points: Vec<(SegmentValue<i32>, f64)> = values
                    .iter()
                    .enumerate()
                    .filter_map(|(l, v)| v.map(|v| (SegmentValue::CenterOf(l as i32), v)))
                    .collect();
                text(chart.draw_series(LineSeries::new(points.clone(), c.stroke_width(2))))?;
                text(chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, c.filled()))))?;
            }
            if last {
                let style = font(14)
                    .transform(FontTransform::Rotate90)
                    .pos(Pos::new(HPos::Left, VPos::Center));
                for (l, name) in names.iter().enumerate() {
                    let (x, y) = chart.backend_coord(&(SegmentValue::CenterOf(l as i32), lo));
                    // backend_coord is in whole-figure pixels: draw on the root.
                    text(root.draw_text(name, &style, (x, y + 12)))?;
                }
            }
        }
        Ok(())
    })
}

/// One score's distribution in every layer: a grid of small histograms on a common x range,
/// y the fraction of the layer's defined neurons, the OOD datasets overlaid.
fn histograms(report: &Report<'_>, score: Score, path: &Path) -> Result<(), ReportError> {
    let layers = report.layers.len();
    let bins = report.options.bins.max(2);
    let finite = || {
        (0..layers).flat_map(move |l| {
            report
                .ood
                .iter()
                .flat_map(move |&o| score.values(report, l, o).iter().copied())
                .filter(|v| v.is_finite())
        })
    };
    let (lo, hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(f64::from(v)), b.max(f64::from(v)))
    });
    let (lo, hi) = match score {
        Score::Spurious => (0.0, 1.0),
        Score::Shift if hi.is_finite() => (0.0, if hi > 0.0 { hi } else { 1.0 }),
        _ if lo.is_finite() && hi > lo => (lo, hi),
        _ if lo.is_finite() => (lo - 0.5, lo + 0.5),
        _ => (0.0, 1.0),
    };
    let width_bin = (hi - lo) / bins as f64;
    let histogram = |values: &[f32]| -> (Vec<f64>, usize) {
        let mut counts = vec![0usize; bins];
        let mut defined = 0;
        for &v in values.iter().filter(|v| v.is_finite()) {
            let b = (((f64::from(v) - lo) / width_bin).floor().max(0.0) as usize).min(bins - 1);
            counts[b] += 1;
            defined += 1;
        }
        let total = defined.max(1) as f64;
        (counts.iter().map(|&c| c as f64 / total).collect(), defined)
    };
    let cols = layers.clamp(1, 4);
    let rows = layers.div_ceil(cols).max(1);
    let (cell_w, cell_h) = (420u32, 270u32);
    let legend_h = 40u32;
    let width = cols as u32 * cell_w;
    let height = 50 + legend_h + rows as u32 * cell_h;
    png(path, (width, height), |root| {
        let root = text(root.titled(
            &format!("Distribution of the {} per layer", score.title()),
            font(22),
        ))?;
        let (legend, grid) = root.split_vertically(legend_h);
        let mut x = 20;
        text(legend.draw_text(
            "fraction of the layer's neurons with a defined score;  OOD dataset:",
            &font(15),
            (x, 12),
        ))?;
        x += 500;
        for (i, &o) in report.ood.iter().enumerate() {
            text(legend.draw(&Rectangle::new(
                [(x, 12), (x + 16, 28)],
                colour(i).mix(0.6).filled(),
            )))?;
            let name = report.dataset_name(o);
            text(legend.draw_text(name, &font(15), (x + 22, 12)))?;
            x += 40 + name.chars().count() as i32 * 9;
        }
        let cells = grid.split_evenly((rows, cols));
        for (l, area) in cells.iter().enumerate().take(layers) {
            let per_ood: Vec<(Vec<f64>, usize)> = report
                .ood
                .iter()
                .map(|&o| histogram(score.values(report, l, o)))
                .collect();
            let top = per_ood
                .iter()
                .flat_map(|(f, _)| f.iter().copied())
                .fold(0.0f64, f64::max)
                .max(0.01)
                * 1.1;
            let entry = &report.manifest().layers[l];
            let defined = per_ood.first().map_or(0, |p| p.1);
            let caption = format!(
                "{l} {} ({defined}/{} defined)",
                short(&entry.name, 26),
                report.layers[l].neurons
            );
            let mut chart = text(
                ChartBuilder::on(area)
                    .caption(caption, font(14))
                    .margin(8)
                    .margin_right(16)
                    .x_label_area_size(36)
                    .y_label_area_size(48)
                    .build_cartesian_2d(lo..hi, 0.0..top),
            )?;
            text(
                chart
                    .configure_mesh()
                    .x_labels(5)
                    .y_labels(4)
                    .x_label_style(font(12))
                    .y_label_style(font(12))
                    .x_label_formatter(&|v| tick(*v, hi - lo))
                    .y_label_formatter(&|v| tick(*v, top))
                    .x_desc(score.axis())
                    .axis_desc_style(font(13))
                    .light_line_style(RGBColor(240, 240, 240))
                    .draw(),
            )?;
            for (i, (fractions, _)) in per_ood.iter().enumerate() {
                let c = colour(i);
                let alpha = if report.ood.len() > 1 { 0.45 } else { 0.7 };
                text(
                    chart.draw_series(fractions.iter().enumerate().map(|(b, &f)| {
                        let x0 = lo + b as f64 * width_bin;
                        Rectangle::new([(x0, 0.0), (x0 + width_bin, f)], c.mix(alpha).filled())
                    })),
                )?;
                // The outline keeps overlaid datasets apart.
                let mut outline = vec![(lo, 0.0)];
                for (b, &f) in fractions.iter().enumerate() {
                    let x0 = lo + b as f64 * width_bin;
                    outline.push((x0, f));
                    outline.push((x0 + width_bin, f));
                }
                outline.push((hi, 0.0));
                text(chart.draw_series(std::iter::once(PathElement::new(
                    outline,
                    c.stroke_width(1),
                ))))?;
            }
        }
        Ok(())
    })
}

/// The normalised class means of a layer in every dataset, as class × neuron heatmaps with
/// the neurons in one order (by the ID argmax class, then by that mean, descending), on one
/// colour scale with a colour bar.
fn heatmap(report: &Report<'_>, layer: usize, path: &Path) -> Result<(), ReportError> {
    let scores = &report.layers[layer];
    let classes = scores.classes;
    let neurons = scores.neurons;
    let datasets = scores.datasets.len();
    let mut order_sets: Vec<usize> = vec![report.reference];
    order_sets.extend((0..datasets).filter(|&d| d != report.reference));
    let value = |d: usize, c: usize, n: usize| scores.class_mean(d, c, n);
    // Neuron order: ID argmax class (undefined last), then the mean at that class.
    let argmax = |n: usize| {
        (0..classes)
            .filter_map(|c| value(report.reference, c, n).map(|v| (c, v)))
            .fold(None, |best: Option<(usize, f32)>, (c, v)| match best {
                Some((_, b)) if b >= v => best,
                _ => Some((c, v)),
            })
    };
    let mut order: Vec<(usize, Option<(usize, f32)>)> =
        (0..neurons).map(|n| (n, argmax(n))).collect();
    order.sort_by(|a, b| match (a.1, b.1) {
        (Some((ca, va)), Some((cb, vb))) => ca.cmp(&cb).then(vb.total_cmp(&va)).then(a.0.cmp(&b.0)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.0.cmp(&b.0),
    });
    let (mut lo, mut hi) = (0.0f64, f64::NEG_INFINITY);
    for &d in &order_sets {
        for c in 0..classes {
            for n in 0..neurons {
                if let Some(v) = value(d, c, n) {
                    lo = lo.min(f64::from(v));
                    hi = hi.max(f64::from(v));
                }
            }
        }
    }
    if !hi.is_finite() || hi <= lo {
        hi = lo + 1.0;
    }
    let cell_w = (1000 / neurons.max(1)).clamp(1, 28) as u32;
    let row_h = (360 / classes.max(1)).clamp(2, 26) as u32;
    let class_names: Vec<String> = (0..classes)
        .map(|c| short(&report.class_name(c), 16))
        .collect();
    let left = 20
        + class_names
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(1) as u32
            * 9;
    let heat_w = neurons.max(1) as u32 * cell_w;
    let heat_h = classes.max(1) as u32 * row_h;
    let label_neurons = cell_w >= 14;
    let panel_title = 34u32;
    let below = if label_neurons { 44 } else { 24 };
    let panel_h = panel_title + heat_h + below;
    let bar_w = 150u32;
    let titles = order_sets
        .iter()
        .map(|&d| report.dataset_name(d).chars().count() + 26)
        .max()
        .unwrap_or(0) as u32;
    let width = (left + heat_w.max(titles * 9) + 40 + bar_w).max(760);
    let top = 92u32;
    let height = top + panel_h * order_sets.len() as u32 + 40;
    let entry = &report.manifest().layers[layer];
    let accuracy = report.analysis.accuracy()?;
    png(path, (width, height), |root| {
        text(root.draw_text(
            &format!(
                "Class × neuron mean activations (normalised), layer {layer} {}",
                short(&entry.name, 40)
            ),
            &font(22),
            (20, 14),
        ))?;
        let grey = font(14).color(&RGBColor(80, 80, 80));
        text(root.draw_text(
            &format!(
                "rows: classes; columns: the {neurons} neurons in the same order in every panel,"
            ),
            &grey,
            (20, 44),
        ))?;
        text(root.draw_text(
            "grouped by their ID argmax class (white lines); grey cells: undefined",
            &grey,
            (20, 62),
        ))?;
        for (p, &d) in order_sets.iter().enumerate() {
            let y0 = (top + p as u32 * panel_h) as i32;
            let e = &report.manifest().datasets[d];
            let role = match e.role {
                Role::Id => "ID",
                Role::Ood => "OOD",
            };
            let acc = accuracy
                .iter()
                .find(|a| a.dataset == d)
                .and_then(|a| a.accuracy)
                .map_or_else(String::new, |a| format!(", accuracy {:.1} %", a * 100.0));
            text(root.draw_text(
                &format!("{} ({role}{acc})", e.name),
                &font(17),
                (left as i32, y0 + 6),
            ))?;
            let hy = y0 + panel_title as i32;
            let lx = left as i32;
            for (col, &(n, _)) in order.iter().enumerate() {
                let x = lx + (col as u32 * cell_w) as i32;
                for c in 0..classes {
                    let y = hy + (c as u32 * row_h) as i32;
                    let fill = value(d, c, n)
                        .map_or(UNDEFINED, |v| viridis((f64::from(v) - lo) / (hi - lo)));
                    text(root.draw(&Rectangle::new(
                        [(x, y), (x + cell_w as i32, y + row_h as i32)],
                        fill.filled(),
                    )))?;
                }
                if label_neurons {
                    text(
                        root.draw_text(
                            &n.to_string(),
                            &font(11)
                                .transform(FontTransform::Rotate90)
                                .pos(Pos::new(HPos::Left, VPos::Center)),
                            (x + cell_w as i32 / 2, hy + heat_h as i32 + 4),
                        ),
                    )?;
                }
            }
            // Boundaries between the ID argmax-class groups.
            for col in 1..order.len() {
                let group = |i: usize| order[i].1.map(|(c, _)| c);
                if group(col) != group(col - 1) {
                    let x = lx + (col as u32 * cell_w) as i32;
                    text(root.draw(&PathElement::new(
                        vec![(x, hy), (x, hy + heat_h as i32)],
                        WHITE.stroke_width(1),
                    )))?;
                }
            }
            text(root.draw(&Rectangle::new(
                [(lx, hy), (lx + heat_w as i32, hy + heat_h as i32)],
                BLACK.stroke_width(1),
            )))?;
            let every = (14 / row_h.max(1)).max(1) as usize;
            for (c, name) in class_names.iter().enumerate() {
                if c % every == 0 {
                    text(root.draw_text(
                        name,
                        &font(13).pos(Pos::new(HPos::Right, VPos::Center)),
                        (lx - 6, hy + (c as u32 * row_h + row_h / 2) as i32),
                    ))?;
                }
            }
            if !label_neurons {
                text(root.draw_text("neurons →", &font(13), (lx, hy + heat_h as i32 + 4)))?;
            }
        }
        // Colour bar.
        // Right of the heatmaps and of the longest panel title.
        let titles = order_sets
            .iter()
            .map(|&d| report.dataset_name(d).chars().count() + 26)
            .max()
            .unwrap_or(0) as u32;
        let bx = (left + heat_w.max(titles * 9) + 40) as i32;
        let by = top as i32 + panel_title as i32;
        let bh = heat_h.max(2) as i32;
        for i in 0..bh {
            let t = 1.0 - f64::from(i) / f64::from(bh - 1);
            text(root.draw(&Rectangle::new(
                [(bx, by + i), (bx + 22, by + i + 1)],
                viridis(t).filled(),
            )))?;
        }
        text(root.draw(&Rectangle::new(
            [(bx, by), (bx + 22, by + bh)],
            BLACK.stroke_width(1),
        )))?;
        for k in 0..=4 {
            let t = f64::from(k) / 4.0;
            let y = by + ((1.0 - t) * f64::from(bh - 1)) as i32;
            text(root.draw(&PathElement::new(
                vec![(bx + 22, y), (bx + 27, y)],
                BLACK.stroke_width(1),
            )))?;
            text(root.draw_text(
                &format!("{:.2}", lo + t * (hi - lo)),
                &font(12).pos(Pos::new(HPos::Left, VPos::Center)),
                (bx + 30, y),
            ))?;
        }
        // Above the bar: below it, the next panel's title would run into it.
        text(root.draw_text("class mean / ID max", &font(12), (bx - 10, top as i32 + 8)))?;
        Ok(())
    })
}
