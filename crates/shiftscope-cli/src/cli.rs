//! The command line, as clap types.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// shiftscope: deep electrophysiology for neural networks under distribution shift.
///
/// Records every neuron of an ONNX vision model on an in-distribution dataset and its
/// shifted versions, scores what changed, and shows it in a 3D viewer.
#[derive(Debug, Parser)]
#[command(name = "shiftscope", propagate_version = true)]
pub(crate) struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,

    /// A plugin library, or a folder of them, to load before the standard search path
    /// (repeatable).
    #[arg(long = "plugin", value_name = "PATH", global = true)]
    pub(crate) plugin_paths: Vec<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the built-in and discovered plugins, the search path, and every library that
    /// was refused with the reason.
    ///
    /// Search order: --plugin paths, SHIFTSCOPE_PLUGIN_PATH (':'-separated files or
    /// folders), <exe dir>/plugins, ~/.local/share/shiftscope/plugins. The working
    /// directory is never searched.
    Plugins(PluginsArgs),

    /// List the candidate layers of an ONNX model: name, op, kind, per-image shape, neurons,
    /// and whether the selection records it.
    ///
    /// Kinds: conv ([C, H, W], a neuron is a channel), tokens ([T, D], a hidden unit), dense
    /// ([D]) and logits. Without --select the default selection is shown: non-linearities after
    /// convolutions, linear layers and residual additions, global pool, transformer block
    /// outputs and MLP activations, final norm, the classifier input and the logits.
    Layers(LayersArgs),

    /// List every dataset every dataset-source plugin offers: name, shift family, size,
    /// classes and where the images come from (files or procedural).
    Datasets(DatasetsArgs),

    /// Recompute the checksum of every file of an activation store and compare with the
    /// manifest; also checks every file's header and size. Exit status 1 on any mismatch.
    Verify(VerifyArgs),

    /// Record every dataset of a study config (RON) into its activation store: the ID dataset
    /// first; complete datasets are skipped and interrupted ones resume at the last committed
    /// batch. See config/ for examples.
    Extract(ExtractArgs),

    /// Join the stores of a sharded recording (`extract --shard K/N`) into one store, the same
    /// as an unsharded recording.
    Merge(MergeArgs),

    /// Convert Deephys exports (a `.model` and its `.test` files, CBOR) into a store; the
    /// first `.test` becomes the in-distribution dataset.
    ImportDeephys(ImportDeephysArgs),

    /// Write a store's analysis as files: summary.md (accuracy and drop, per-layer scores,
    /// the most spurious and most novel neurons), neurons.csv (every score of every neuron),
    /// images.csv (every image's prediction) and PNG figures (layer shift profile, score
    /// histograms, class × neuron heatmaps). The store is only read, apart from its
    /// analysis/ cache.
    Report(ReportArgs),

    /// Colour selectivity index (both variants) and Neuron Features of a layer's neurons,
    /// from their top images re-run through the store's model (grey versions; full maps for
    /// the receptive-field crops); cached under the store's analysis folder for the viewer.
    Features(crate::commands::features::FeaturesArgs),

    /// The demo, the first thing to run: records the demo models (a CNN and a small ViT
    /// trained on colored MNIST, built into the binary) on colored MNIST and its colour
    /// shifts, analyses them, writes their reports, and prints the accuracy table and the
    /// most spurious neurons with what drives them.
    Demo(DemoArgs),

    /// Open a store in the viewer: the network as a 3D map (one slab per layer, one cell per
    /// neuron, coloured by a measure) with the Study, Neuron, Image, Category and Overview
    /// panels. With --screenshot (or a --script with screenshots) it renders, writes the
    /// PNGs and exits (headless under Xvfb with Mesa's lavapipe Vulkan).
    View(ViewArgs),

    /// The neurons responsible for a class's mistakes (NeuroInspect): for every misclassified
    /// image of the class, the smallest change of the decision layer's input that fixes it;
    /// the neurons that change most often, per dataset, with their importance for the class
    /// and their top images. Needs the model file and the decision layer's input in the store.
    Explain(ExplainArgs),

    /// Repair the decision layer against chosen neurons (trained with NeuroInspect's ratio
    /// penalty, or their outgoing weights zeroed), write the repaired copy of the model (the
    /// original is never modified), re-record it on every dataset of the store into a new
    /// store, and print ID, OOD and per-class accuracy before and after.
    Repair(RepairArgs),

    /// The gradient of a neuron, a channel at one position, a class's logit or a layer's
    /// squared norm with respect to each input image (after the model's preprocessing),
    /// through a backward graph derived from the ONNX model (the file is never modified);
    /// prints the objective per image and writes the gradients as one [N, C, H, W] .npy.
    Gradient(GradientArgs),
}

#[derive(Debug, Args)]
pub(crate) struct GradientArgs {
    /// The ONNX model file (read, never modified).
    pub(crate) model: PathBuf,

    /// PNG or JPEG images, or folders of them (searched recursively, sorted by path); the
    /// gradients keep this order.
    #[arg(required = true, value_name = "IMAGE|DIR")]
    pub(crate) images: Vec<PathBuf>,

    /// What the gradient is of: `logit:CLASS` (index or name), `LAYER:N` (neuron N pooled as
    /// recorded: a channel's spatial mean), `LAYER:N@Y,X` (channel N at one position),
    /// `LAYER:N@T` (unit N of token T) or `norm:LAYER` (the layer's squared norm). Layers as
    /// `shiftscope layers MODEL` lists them, by name or alias.
    #[arg(long, short)]
    pub(crate) target: String,

    /// Write the gradients here as an f32 .npy of shape [N, C, H, W].
    #[arg(long, short, value_name = "NPY")]
    pub(crate) out: Option<PathBuf>,

    /// Device: `cpu`, `cuda`, `cuda:N` or `auto`; `cuda` fails when the GPU cannot be used.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,

    /// Images per forward+backward run.
    #[arg(long, default_value_t = 8)]
    pub(crate) batch: usize,

    /// The images' preprocessing, as a RON file or inline RON (a study's `preprocessing`,
    /// e.g. `(resize: Some(32), crop: Some(32), mean: (0.5, 0.5, 0.5), std: (0.5, 0.5, 0.5))`);
    /// default: ImageNet's, sized to the model's input.
    #[arg(long, value_name = "RON|FILE")]
    pub(crate) preprocessing: Option<String>,

    /// The ONNX Runtime library (before ORT_DYLIB_PATH, the fetched copy, the system's).
    #[arg(long, value_name = "PATH")]
    pub(crate) ort_lib: Option<PathBuf>,

    /// The graph output holding the logits, for a model with several outputs.
    #[arg(long, value_name = "NAME")]
    pub(crate) output: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ViewArgs {
    /// The store folder.
    pub(crate) store: PathBuf,

    /// Write a PNG of the window once everything has loaded, then exit.
    #[arg(long, value_name = "PNG")]
    pub(crate) screenshot: Option<PathBuf>,

    /// Select a neuron once loaded: `layer:index`, the layer by name or number (e.g. fc1:3).
    #[arg(long, value_name = "LAYER:INDEX")]
    pub(crate) select: Option<String>,

    /// The panel to show: study, neuron, image, category, overview, live (and any panel added
    /// since: the error lists them).
    #[arg(long)]
    pub(crate) panel: Option<String>,

    /// What the map colours by: activation, class-mean, difference, spurious, novelty, shift,
    /// rafegas, morcos, live (the error lists them all).
    #[arg(long, value_name = "MEASURE")]
    pub(crate) colour_by: Option<String>,

    /// Window size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x800")]
    pub(crate) size: String,

    /// Run a RON list of actions: Select("fc1", 3), SelectImage("mnist", 0), SelectClass(2),
    /// Panel("neuron"), ColourBy("spurious"), Extrude(Some("shift")), Key("u"), Wait(10),
    /// Screenshot("out.png"), Live("image.png"). With any screenshot in it, the viewer exits
    /// at its end.
    #[arg(long, value_name = "RON")]
    pub(crate) script: Option<PathBuf>,

    /// Live mode: run the store's model on this PNG or JPEG once loaded (or drop image files
    /// on the window): the map colours by its activations, the Live panel shows its
    /// predictions, top neurons and the selected layer's channel maps.
    #[arg(long, value_name = "IMAGE")]
    pub(crate) live: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Folder for the demo's study configs, models, stores and reports.
    #[arg(long, short, default_value = "demo")]
    pub(crate) out: PathBuf,

    /// Only these demo models (`cnn`, `vit`; comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub(crate) models: Vec<String>,

    /// Record only the first N images of each dataset (default: all 10,000).
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<usize>,

    /// Write the reports and viewer screenshots (under Xvfb when no display is set) instead
    /// of opening a window.
    #[arg(long)]
    pub(crate) headless: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The store folder.
    pub(crate) store: PathBuf,

    /// The folder to write the report into (created when missing).
    #[arg(long, short)]
    pub(crate) out: PathBuf,

    /// How many of the most spurious and most novel neurons summary.md lists.
    #[arg(long, default_value_t = 20)]
    pub(crate) top: usize,

    /// Bins of the score histograms.
    #[arg(long, default_value_t = 30)]
    pub(crate) bins: usize,

    /// Layers (indices, comma-separated or repeated) to draw class × neuron heatmaps for;
    /// default: every non-logit layer with at most 256 neurons, else the last non-logit one.
    #[arg(long = "heatmap-layer", value_name = "LAYER", value_delimiter = ',')]
    pub(crate) heatmap_layers: Vec<usize>,

    /// Top images kept per neuron (Rafegas selectivity uses them).
    #[arg(long, default_value_t = 100)]
    pub(crate) top_k: usize,

    /// Only summary.md and the CSVs, no PNG figures.
    #[arg(long)]
    pub(crate) no_figures: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ImportDeephysArgs {
    /// The Deephys `.model` file.
    pub(crate) model: PathBuf,

    /// The `.test` files, the in-distribution one first.
    #[arg(required = true)]
    pub(crate) tests: Vec<PathBuf>,

    /// The new store.
    #[arg(long, short)]
    pub(crate) out: PathBuf,

    /// Thumbnail side in pixels.
    #[arg(long, default_value_t = 64)]
    pub(crate) thumb: usize,
}

#[derive(Debug, Args)]
pub(crate) struct ExtractArgs {
    /// The study config.
    pub(crate) config: PathBuf,

    /// Record only shard K of N (0-based) of every dataset, into `<store>.shard-K-of-N`;
    /// `shiftscope merge` joins the N shard stores.
    #[arg(long, value_name = "K/N")]
    pub(crate) shard: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct MergeArgs {
    /// The new store to write.
    #[arg(long, short)]
    pub(crate) out: PathBuf,

    /// Every shard store of one recording (`<store>.shard-K-of-N`), in any order.
    #[arg(required = true, value_name = "SHARD_STORE")]
    pub(crate) shards: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The store folder.
    pub(crate) store: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct DatasetsArgs {
    #[command(subcommand)]
    pub(crate) action: Option<DatasetsAction>,

    /// Only the datasets of this plugin.
    #[arg(long, value_name = "PLUGIN")]
    pub(crate) only: Option<String>,

    /// A plugin's config: `PLUGIN=FILE` (a RON file) or `PLUGIN=RON` inline, e.g.
    /// `--config imagenet=imagenet.ron` naming the ImageNet roots; repeatable. Applies to the
    /// listing, `preview` and `export`; plugins not named get their default config.
    #[arg(long = "config", value_name = "PLUGIN=FILE|RON", global = true)]
    pub(crate) configs: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DatasetsAction {
    /// Write a contact sheet (PNG) of the first images of one or more datasets, each image
    /// with its label: what a dataset or a shift looks like.
    Preview(PreviewArgs),
    /// Write a dataset's images and labels to an `.npz` file (`images`: (N, H, W, 3) uint8,
    /// `labels`: (N,) int64, `classes`: (K,) unicode), e.g. to train a model in PyTorch on
    /// exactly the pixels shiftscope generates.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The dataset name, as `shiftscope datasets` lists it.
    #[arg(value_name = "NAME")]
    pub(crate) name: String,

    /// The `.npz` file to write (written to a temporary name, renamed when complete).
    #[arg(long, short)]
    pub(crate) out: PathBuf,

    /// Export only the first N images.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<usize>,
}

#[derive(Debug, Args)]
pub(crate) struct PreviewArgs {
    /// Dataset names, as `shiftscope datasets` lists them (one block each).
    #[arg(required = true, value_name = "NAME")]
    pub(crate) names: Vec<String>,

    /// The PNG file to write.
    #[arg(long, short)]
    pub(crate) out: PathBuf,

    /// Images per dataset.
    #[arg(long, default_value_t = 16)]
    pub(crate) count: usize,

    /// Images per row.
    #[arg(long, default_value_t = 16)]
    pub(crate) columns: usize,

    /// Title each block with the dataset name only (and "procedural" where the images are),
    /// not its whole catalog description.
    #[arg(long)]
    pub(crate) brief: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LayersArgs {
    /// The ONNX model file (read, never modified).
    pub(crate) model: PathBuf,

    /// Layers to select: `default`, `all`, `all-relu`, `blocks`, `kind:conv|tokens|dense|logits`,
    /// `role:NAME`, `re:REGEX`, or exact names; comma-separated or repeated.
    #[arg(long, short = 's', value_name = "SELECTOR")]
    pub(crate) select: Vec<String>,

    /// Device: `cpu`, `cuda`, `cuda:N` or `auto`.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,

    /// The ONNX Runtime library (before ORT_DYLIB_PATH, the fetched copy, the system's).
    #[arg(long, value_name = "PATH")]
    pub(crate) ort_lib: Option<PathBuf>,

    /// Show only the selected layers.
    #[arg(long)]
    pub(crate) selected_only: bool,

    /// The graph output holding the logits, for a model with several outputs (by default the
    /// only one, else the one named `logits`).
    #[arg(long, value_name = "NAME")]
    pub(crate) output: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PluginsArgs {
    /// Show each plugin's build information (compiler, profile).
    #[arg(long)]
    pub(crate) build_info: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// The store folder.
    pub(crate) store: PathBuf,

    /// The class: its index or its name.
    #[arg(long)]
    pub(crate) class: String,

    /// Only this dataset (default: every dataset of the store).
    #[arg(long)]
    pub(crate) dataset: Option<String>,

    /// The store layer holding the decision layer's input (default: the layer the model
    /// names).
    #[arg(long)]
    pub(crate) layer: Option<String>,

    /// The model file (default: the one the store was recorded from).
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,

    /// Top images listed per neuron.
    #[arg(long, default_value_t = 5)]
    pub(crate) top_images: usize,
}

#[derive(Debug, Args)]
pub(crate) struct RepairArgs {
    /// The store folder.
    pub(crate) store: PathBuf,

    /// The neurons to repair, e.g. `fc1:3,fc1:17` (neurons of the decision layer's input).
    #[arg(long, conflicts_with = "top_spurious")]
    pub(crate) neurons: Option<String>,

    /// Repair the N most spurious neurons of the decision layer's input.
    #[arg(long, value_name = "N")]
    pub(crate) top_spurious: Option<usize>,

    /// The OOD dataset --top-spurious ranks against (default: the first OOD dataset).
    #[arg(long)]
    pub(crate) against: Option<String>,

    /// `train` (the decision layer trained with the ratio penalty) or `zero` (the neurons'
    /// outgoing weights set to 0).
    #[arg(long, default_value = "train")]
    pub(crate) method: String,

    /// The new store (default: `<store>-repaired`); the repaired model goes next to it as
    /// `<out>.onnx`.
    #[arg(long, short)]
    pub(crate) out: Option<PathBuf>,

    /// Replace an existing output store and model.
    #[arg(long)]
    pub(crate) force: bool,

    /// The model file (default: the one the store was recorded from).
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,

    /// Weight λ of the ratio penalty.
    #[arg(long, default_value_t = 0.01)]
    pub(crate) lambda: f64,

    /// Target γ of the ratio.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) gamma: f64,

    /// Most training epochs.
    #[arg(long, default_value_t = 20)]
    pub(crate) epochs: usize,
}
