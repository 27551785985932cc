//! The report of one store (`shiftscope report <store> --out <dir>`): everything the analysis
//! computes, written out as files a person reads without the viewer. It owns the layout of
//! those files and nothing numeric: every number comes from `shiftscope-analysis`.
//!
//! - `summary.md`: model, datasets, accuracy and its drop from ID, per-layer mean spurious /
//!   novelty / shift per OOD dataset, the most spurious and most novel neurons with their top
//!   classes, silent/undefined and NaN/Inf counts, and the figures linked by relative path;
//! - `neurons.csv`: one row per (layer, neuron) with every score (empty cell: undefined),
//!   and the colour selectivity index (both variants) where `shiftscope features` cached it;
//! - `images.csv`: one row per image: dataset, index, label, prediction, confidence, correct;
//! - PNG figures drawn with `plotters` into memory and encoded with `png`: the layer shift
//!   profile, score histograms per layer, and Deephys-style class × neuron heatmaps of class
//!   means for each dataset, neurons in the same order in every dataset.
//!
//! Text is drawn with DejaVu Sans embedded in the crate (`assets/fonts/`), so no system font
//! is looked up. The store is never written to, except the analysis cache that
//! `shiftscope-analysis` keeps under its `analysis/` folder.

mod figures;
mod summary;
mod tables;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use shiftscope_analysis::{Analysis, AnalysisError, LayerScores};

/// What goes into a report.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportOptions {
    /// How many of the most spurious and most novel neurons `summary.md` lists (per OOD
    /// dataset).
    pub top: usize,
    /// Bins of the score histograms.
    pub bins: usize,
    /// Layers (manifest indices) to draw class × neuron heatmaps for; `None`: every
    /// non-logit layer with at most `heatmap_max_neurons` neurons, else the last non-logit
    /// layer.
    pub heatmap_layers: Option<Vec<usize>>,
    /// The neuron limit of the default heatmap choice.
    pub heatmap_max_neurons: usize,
    /// Draw the PNG figures (off: only the markdown and the CSVs).
    pub figures: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            top: 20,
            bins: 30,
            heatmap_layers: None,
            heatmap_max_neurons: 256,
            figures: true,
        }
    }
}

/// What a report wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportSummary {
    /// The output folder.
    pub out: PathBuf,
    /// Every file written, in the order written.
    pub files: Vec<PathBuf>,
    /// Layers reported.
    pub layers: usize,
    /// Neurons (rows of `neurons.csv`).
    pub neurons: usize,
    /// Images (rows of `images.csv`).
    pub images: usize,
}

/// What can go wrong while writing a report; each names the store or the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The analysis failed (it names the store).
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    /// A file or folder of the report could not be written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The system's error.
        error: std::io::Error,
    },
    /// A figure could not be drawn or encoded.
    #[error("{}: {problem}", path.display())]
    Figure {
        /// The PNG file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// The request does not fit the store (e.g. a heatmap layer it does not have).
    #[error("{}: {problem}", store.display())]
    Invalid {
        /// The store folder.
        store: PathBuf,
        /// What was wrong.
        problem: String,
    },
}

/// Progress of a report, for a caller that shows it (the slow step is the per-layer
/// analysis, which is computed or read from the cache).
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Layer `index` of `of` (named `name`) is being analysed.
    Layer {
        /// Manifest index.
        index: usize,
        /// Layers in all.
        of: usize,
        /// The layer's name.
        name: String,
    },
    /// A file is being written.
    Writing(PathBuf),
}

/// Writes the report of `analysis` into `out` (created when missing; existing report files
/// are replaced).
pub fn write_report(
    analysis: &Analysis,
    out: &Path,
    options: &ReportOptions,
) -> Result<ReportSummary, ReportError> {
    write_report_with_progress(analysis, out, options, &mut |_| {})
}

/// [`write_report`], calling `progress` before each slow step.
pub fn write_report_with_progress(
    analysis: &Analysis,
    out: &Path,
    options: &ReportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ReportSummary, ReportError> {
    std::fs::create_dir_all(out).map_err(|error| ReportError::Io {
        path: out.to_path_buf(),
        error,
    })?;
    let manifest = analysis.store().manifest();
    let count = manifest.layers.len();
    let mut layers = Vec::with_capacity(count);
    for (index, entry) in manifest.layers.iter().enumerate() {
        progress(Progress::Layer {
            index,
            of: count,
            name: entry.name.clone(),
        });
        layers.push(analysis.layer(index)?);
    }
    let report = Report {
        analysis,
        store: store_root(analysis),
        layers,
        ood: analysis.ood_datasets(),
        reference: analysis.reference(),
        options,
    };
    let heatmap_layers = report.heatmap_layers()?;
    let mut files = Vec::new();
    let mut figures = figures::Figures::default();
    if options.figures {
        figures = figures::write_all(&report, out, &heatmap_layers, progress, &mut files)?;
    }
    let path = out.join("neurons.csv");
    progress(Progress::Writing(path.clone()));
    let neurons = tables::write_neurons(&report, &path)?;
    files.push(path);
    let path = out.join("images.csv");
    progress(Progress::Writing(path.clone()));
    let images = tables::write_images(&report, &path)?;
    files.push(path);
    let path = out.join("summary.md");
    progress(Progress::Writing(path.clone()));
    let text = summary::render(&report, &figures)?;
    write_file(&path, text.as_bytes())?;
    files.push(path);
    Ok(ReportSummary {
        out: out.to_path_buf(),
        files,
        layers: count,
        neurons,
        images,
    })
}

/// The store folder: the analysis cache lives at `<store>/analysis/<sha256>`.
fn store_root(analysis: &Analysis) -> PathBuf {
    let cache = analysis.cache_dir();
    cache
        .parent()
        .and_then(Path::parent)
        .map_or(cache.clone(), Path::to_path_buf)
}

/// Everything the writers share.
struct Report<'a> {
    analysis: &'a Analysis,
    store: PathBuf,
    layers: Vec<Arc<LayerScores>>,
    ood: Vec<usize>,
    reference: usize,
    options: &'a ReportOptions,
}

impl Report<'_> {
    fn manifest(&self) -> &shiftscope_store::Manifest {
        self.analysis.store().manifest()
    }

    fn dataset_name(&self, d: usize) -> &str {
        self.manifest()
            .datasets
            .get(d)
            .map_or("?", |e| e.name.as_str())
    }

    fn class_name(&self, c: usize) -> String {
        self.manifest()
            .classes
            .get(c)
            .cloned()
            .unwrap_or_else(|| c.to_string())
    }

    fn is_logits(&self, layer: usize) -> bool {
        self.manifest()
            .layers
            .get(layer)
            .is_some_and(|l| l.kind == "logits")
    }

    fn invalid(&self, problem: String) -> ReportError {
        ReportError::Invalid {
            store: self.store.clone(),
            problem,
        }
    }

    /// The layers that get class × neuron heatmaps.
    fn heatmap_layers(&self) -> Result<Vec<usize>, ReportError> {
        let count = self.layers.len();
        if let Some(chosen) = &self.options.heatmap_layers {
            if let Some(&bad) = chosen.iter().find(|&&l| l >= count) {
                return Err(self.invalid(format!(
                    "no layer {bad} for a heatmap (the store has {count})"
                )));
            }
            return Ok(chosen.clone());
        }
        let candidates: Vec<usize> = (0..count).filter(|&l| !self.is_logits(l)).collect();
        let small: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&l| self.layers[l].neurons <= self.options.heatmap_max_neurons)
            .collect();
        Ok(if small.is_empty() {
            candidates.last().copied().into_iter().collect()
        } else {
            small
        })
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |error| ReportError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, bytes).map_err(io_error(path))
}

/// A buffered file writer whose errors name the file.
struct Out {
    path: PathBuf,
    writer: BufWriter<File>,
}

impl Out {
    fn create(path: &Path) -> Result<Out, ReportError> {
        let file = File::create(path).map_err(io_error(path))?;
        Ok(Out {
            path: path.to_path_buf(),
            writer: BufWriter::new(file),
        })
    }

    fn line(&mut self, cells: &[String]) -> Result<(), ReportError> {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&csv_cell(cell));
        }
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .map_err(io_error(&self.path))
    }

    fn finish(mut self) -> Result<(), ReportError> {
        self.writer.flush().map_err(io_error(&self.path))
    }
}

/// A CSV cell, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// A score as text: empty when undefined.
fn number(value: Option<f32>) -> String {
    value
        .filter(|v| v.is_finite())
        .map(|v| format!("{v}"))
        .unwrap_or_default()
}

/// The embedded font, registered with plotters once.
const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

fn register_font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT)
            .map_err(|_| "the embedded DejaVu Sans font does not parse".to_owned())
    })
    .clone()
}
