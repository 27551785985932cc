//! Recording: every dataset of a study through the model into the store.
//!
//! ```text
//!  dispatcher ─blocks─▶ readers ×R (get, preprocess, thumbnail) ─▶ adapter (in order, run) ─▶ writer (write, commit)
//!      ▲                                                                │
//!      └──────────────────────────── credits ◀──────────────────────────┘
//! ```
//! A block is one batch of consecutive indices. Channels are bounded and the dispatcher
//! needs a credit per block, so at most `window` blocks are in flight whatever the dataset's
//! size: memory stays flat. Blocks are run in index order, and every batch is committed to the
//! store after it is written, so an interrupted run resumes at the last committed batch and
//! produces the same bytes as an uninterrupted one.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, bounded};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shiftscope_host::checked::CheckedModel;
use shiftscope_host::{PluginKindName, Registry};
use shiftscope_sdk::{
    Dataset, ModelAdapter, ModelDescription, PluginError, Pooling, TensorRef, select_layers,
};
use shiftscope_store::{
    DatasetWriter, LayerEntry, Manifest, ModelEntry, Part, Role, Shard, StoreWriter,
};

use crate::{Preprocessing, StudyConfig};

/// Why recording stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// A plugin failed (the message names it).
    #[error("{0}")]
    Plugin(#[from] PluginError),
    /// The store refused (the message names the file).
    #[error("{0}")]
    Store(#[from] shiftscope_store::StoreError),
    /// The study does not fit the model or the store.
    #[error("{0}")]
    Study(String),
}

/// What one dataset's recording did.
#[derive(Debug, Clone)]
pub struct DatasetReport {
    /// Dataset name.
    pub name: String,
    /// Rows of the dataset in the store.
    pub rows: usize,
    /// Rows recorded by this run (0 when it was complete already).
    pub recorded: usize,
    /// Images per second of this run.
    pub images_per_second: f64,
}

/// What a recording did.
#[derive(Debug, Clone, Default)]
pub struct ExtractReport {
    /// Per dataset, in recording order.
    pub datasets: Vec<DatasetReport>,
    /// NaN or infinite values per layer over the run.
    pub non_finite: Vec<(String, u64)>,
}

/// One prepared batch.
struct Block {
    index: usize,
    start: usize,
    shape: [usize; 3],
    inputs: Vec<f32>,
    thumbs: Vec<u8>,
    labels: Vec<i32>,
}

/// One batch ready to be written.
struct Rows {
    start: usize,
    end: usize,
    labels: Vec<i32>,
    logits: Vec<f32>,
    thumbs: Vec<u8>,
    layers: Vec<Vec<f32>>,
}

/// Resizes what the model saw to the thumbnail size.
pub(crate) fn thumbnail(
    pixels: &[u8],
    width: u32,
    height: u32,
    side: usize,
) -> Result<Vec<u8>, String> {
    crate::preprocess::resize_rgb(pixels, (width, height), (side as u32, side as u32))
}

/// Prepares rows `start..end` of the store's dataset, which are dataset images from
/// `first_row + start` on.
fn prepare_block(
    dataset: &dyn Dataset,
    preprocessing: &Preprocessing,
    (thumb, classes, first_row): (usize, usize, usize),
    (index, start, end): (usize, usize, usize),
) -> Result<Block, ExtractError> {
    let mut block = Block {
        index,
        start,
        shape: [0; 3],
        inputs: Vec::new(),
        thumbs: Vec::with_capacity((end - start) * thumb * thumb * 3),
        labels: Vec::with_capacity(end - start),
    };
    for row in start..end {
        let i = first_row + row;
        let sample = dataset.get(i)?;
        if sample.label as usize >= classes {
            return Err(ExtractError::Study(format!(
                "image {i} has label {} but the model has {classes} classes",
                sample.label
            )));
        }
        let prepared = preprocessing
            .apply(&sample)
            .map_err(|e| ExtractError::Study(format!("image {i}: {e}")))?;
        let shape = [
            preprocessing.channels.count(),
            prepared.height as usize,
            prepared.width as usize,
        ];
        if row == start {
            block.shape = shape;
            block.inputs.reserve((end - start) * prepared.input.len());
        } else if shape != block.shape {
            return Err(ExtractError::Study(format!(
                "image {i} comes out {shape:?} after preprocessing, image {} {:?}; declare a crop",
                first_row + start,
                block.shape
            )));
        }
        block.inputs.extend_from_slice(&prepared.input);
        block.thumbs.extend(
            thumbnail(&prepared.pixels, prepared.width, prepared.height, thumb)
                .map_err(|e| ExtractError::Study(format!("image {i}: thumbnail: {e}")))?,
        );
        block.labels.push(sample.label as i32);
    }
    Ok(block)
}

/// Progress of one dataset: a bar on a terminal, a log line every few seconds otherwise.
struct Progress {
    bar: ProgressBar,
    name: String,
    total: usize,
    done: usize,
    last_log: Instant,
    started: Instant,
    start_rows: usize,
}

impl Progress {
    fn new(name: &str, done: usize, total: usize) -> Progress {
        let bar = ProgressBar::with_draw_target(
            Some(total as u64),
            if std::io::stderr().is_terminal() {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(name.to_owned());
        bar.set_position(done as u64);
        Progress {
            bar,
            name: name.to_owned(),
            total,
            done,
            last_log: Instant::now(),
            started: Instant::now(),
            start_rows: done,
        }
    }

    fn rate(&self) -> f64 {
        (self.done - self.start_rows) as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    fn advance(&mut self, rows: usize) {
        self.done = rows;
        self.bar.set_position(rows as u64);
        if self.bar.is_hidden() && self.last_log.elapsed() > Duration::from_secs(2) {
            self.last_log = Instant::now();
            tracing::info!(
                "{}: {}/{} images, {:.0} images/s",
                self.name,
                self.done,
                self.total,
                self.rate()
            );
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
        tracing::info!(
            "{}: {}/{} images recorded, {:.0} images/s",
            self.name,
            self.done,
            self.total,
            self.rate()
        );
    }
}

/// Records one dataset from its committed rows to `rows`.
#[allow(clippy::too_many_arguments)]
fn record_dataset(
    model: &mut CheckedModel,
    layers: &[String],
    pooling: Pooling,
    dataset: &dyn Dataset,
    preprocessing: &Preprocessing,
    config: &StudyConfig,
    classes: usize,
    mut writer: DatasetWriter,
    (name, first_row): (&str, usize),
) -> Result<(DatasetWriter, usize, f64), ExtractError> {
    let rows = writer.len();
    let batch = config.recording.batch_size;
    let thumb = config.recording.thumb;
    let first = writer.committed();
    let blocks: Vec<(usize, usize, usize)> = (first..rows)
        .step_by(batch)
        .enumerate()
        .map(|(i, s)| (i, s, (s + batch).min(rows)))
        .collect();
    let readers = config
        .recording
        .readers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(2)))
        .max(1);
    let window = readers * 2;
    let mut progress = Progress::new(name, first, rows);

    let result = std::thread::scope(|scope| -> Result<DatasetWriter, ExtractError> {
        let (credit_tx, credit_rx): (Sender<()>, Receiver<()>) = bounded(window);
        let (work_tx, work_rx) = bounded::<(usize, usize, usize)>(window);
        let (done_tx, done_rx) = bounded::<Result<Block, ExtractError>>(window);
        let (write_tx, write_rx) = bounded::<Rows>(2);
        for _ in 0..window {
            let _ = credit_tx.send(());
        }
        let dispatch = blocks.clone();
        std::thread::Builder::new()
            .name("dispatch".to_owned())
            .spawn_scoped(scope, move || {
                for block in dispatch {
                    if credit_rx.recv().is_err() || work_tx.send(block).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| ExtractError::Study(format!("starting the dispatcher: {e}")))?;
        for r in 0..readers {
            let (work_rx, done_tx) = (work_rx.clone(), done_tx.clone());
            std::thread::Builder::new()
                .name(format!("reader-{r}"))
                .spawn_scoped(scope, move || {
                    for block in work_rx {
                        let prepared = prepare_block(
                            dataset,
                            preprocessing,
                            (thumb, classes, first_row),
                            block,
                        );
                        let failed = prepared.is_err();
                        if done_tx.send(prepared).is_err() || failed {
                            break;
                        }
                    }
                })
                .map_err(|e| ExtractError::Study(format!("starting a reader: {e}")))?;
        }
        drop((work_rx, done_tx));
        let commit_every = Duration::from_secs_f64(config.recording.commit_seconds);
        let writer_thread = std::thread::Builder::new()
            .name("writer".to_owned())
            .spawn_scoped(
                scope,
                move || -> Result<(DatasetWriter, usize), ExtractError> {
                    let mut last_commit = Instant::now();
                    let mut written = writer.committed();
                    for job in write_rx {
                        let refs: Vec<&[f32]> = job.layers.iter().map(Vec::as_slice).collect();
                        writer.write_rows(
                            job.start,
                            &job.labels,
                            &job.logits,
                            &job.thumbs,
                            &refs,
                        )?;
                        written = job.end;
                        if last_commit.elapsed() >= commit_every {
                            writer.commit(written)?;
                            last_commit = Instant::now();
                        }
                    }
                    // Rows written since the last commit are committed only if every batch
                    // arrived (the adapter stops sending on an error).
                    Ok((writer, written))
                },
            )
            .map_err(|e| ExtractError::Study(format!("starting the writer: {e}")))?;

        // The adapter runs here, blocks in index order.
        let mut pending: BTreeMap<usize, Block> = BTreeMap::new();
        let mut next = 0;
        let mut outcome = Ok(());
        'run: while next < blocks.len() {
            let Ok(received) = done_rx.recv() else {
                outcome = Err(ExtractError::Study("the readers stopped early".to_owned()));
                break;
            };
            match received {
                Ok(block) => {
                    pending.insert(block.index, block);
                }
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
            while let Some(block) = pending.remove(&next) {
                let n = block.labels.len();
                let shape = [n, block.shape[0], block.shape[1], block.shape[2]];
                let set = match TensorRef::new(&shape, &block.inputs)
                    .and_then(|input| model.run(input, layers, pooling))
                {
                    Ok(set) => set,
                    Err(e) => {
                        outcome = Err(e.into());
                        break 'run;
                    }
                };
                let end = block.start + n;
                let job = Rows {
                    start: block.start,
                    end,
                    labels: block.labels,
                    logits: set.logits.into_data(),
                    thumbs: block.thumbs,
                    layers: set
                        .layers
                        .into_iter()
                        .map(|l| l.tensor.into_data())
                        .collect(),
                };
                if write_tx.send(job).is_err() {
                    break 'run; // the writer failed: its error is reported below
                }
                progress.advance(end);
                next += 1;
                let _ = credit_tx.send(());
            }
        }
        drop(write_tx);
        drop(credit_tx);
        drop(done_rx);
        let written = writer_thread
            .join()
            .map_err(|_| ExtractError::Study("the writer thread panicked".to_owned()))?;
        outcome?;
        let (mut writer, rows_written) = written?;
        writer.commit(rows_written)?;
        Ok(writer)
    });
    let writer = result?;
    progress.done = writer.committed();
    progress.finish();
    Ok((writer, rows - first, progress.rate()))
}

/// The model's identity in a manifest: the SHA-256 of its file, or, for a model whose weights
/// are in side files, the SHA-256 of the file's hash and each side file's name and hash (two
/// exports with one graph and other weights are other models).
fn model_identity(path: &Path, data_files: &[String]) -> Result<String, ExtractError> {
    let model = shiftscope_store::sha256_file(path)?;
    if data_files.is_empty() {
        return Ok(model);
    }
    let mut text = model;
    for file in data_files {
        let file = Path::new(file);
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        text.push_str(&format!(
            "\n{}:{}",
            name.unwrap_or_default(),
            shiftscope_store::sha256_file(file)?
        ));
    }
    Ok(shiftscope_store::sha256_bytes(text.as_bytes()))
}

fn manifest_for(
    config: &StudyConfig,
    description: &ModelDescription,
    layers: &[String],
    classes: Vec<String>,
) -> Result<Manifest, ExtractError> {
    let pooling = config.model.pooling;
    let sha256 = match &config.model.path {
        Some(path) => model_identity(path, &description.data_files)?,
        None => String::new(),
    };
    Ok(Manifest {
        schema_version: shiftscope_store::SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_unix: shiftscope_store::now_unix(),
        model: ModelEntry {
            path: config
                .model
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            sha256,
            adapter: config.model.adapter.clone(),
            preprocessing: serde_json::to_value(config.model.preprocessing_for(None))
                .map_err(|e| ExtractError::Study(format!("preprocessing: {e}")))?,
            input_shape: description
                .inputs
                .first()
                .map(|i| i.shape.clone())
                .unwrap_or_default(),
        },
        layers: layers
            .iter()
            .filter_map(|name| description.layer(name))
            .map(|l| LayerEntry {
                id: String::new(),
                name: l.name.clone(),
                op: l.op.clone(),
                kind: l.kind.as_str().to_owned(),
                neurons: l.neurons,
                pooling: match l.kind {
                    shiftscope_sdk::LayerKind::Conv => format!("{:?}", pooling.conv).to_lowercase(),
                    shiftscope_sdk::LayerKind::Tokens => {
                        format!("{:?}", pooling.tokens).to_lowercase()
                    }
                    _ => "none".to_owned(),
                },
            })
            .collect(),
        classes,
        thumb: config.recording.thumb,
        precision: config.recording.precision,
        datasets: Vec::new(),
        shard: None,
    })
}

/// The store folder of shard `shard` of a study whose store is `store`.
pub fn shard_store(store: &Path, shard: Shard) -> std::path::PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(format!(".shard-{}-of-{}", shard.index, shard.count));
    name.into()
}

/// The rows of a dataset of `total` rows that `shard` records: whole batches, contiguous.
pub fn shard_rows(total: usize, batch: usize, shard: Shard) -> (usize, usize) {
    let blocks = total.div_ceil(batch.max(1));
    let first = shard.index * blocks / shard.count.max(1) * batch;
    let end = ((shard.index + 1) * blocks / shard.count.max(1) * batch).min(total);
    (first.min(total), end)
}

/// The plugin offering a dataset: the one the config names; else the name's first segment
/// when a dataset source is called that; else the first dataset source whose catalog lists
/// the name or its base before `+` (e.g. `imagenet-r` and `folder/waterbirds`, offered by the
/// imagenet plugin from its configured roots).
fn dataset_plugin(
    config: &StudyConfig,
    registry: &Registry,
    entry: &crate::DatasetConfig,
) -> Result<String, ExtractError> {
    let first = entry.plugin();
    let is_source = |name: &str| {
        registry
            .get(name)
            .is_some_and(|p| p.info().kind == PluginKindName::DatasetSource)
    };
    if entry.plugin.is_some() || is_source(first) {
        return Ok(first.to_owned());
    }
    let base = entry.name.split('+').next().unwrap_or(&entry.name);
    for plugin in registry.plugins() {
        let info = plugin.info();
        if info.kind != PluginKindName::DatasetSource {
            continue;
        }
        let plugin_config = config.plugins.get(&info.name).map_or("", String::as_str);
        let Ok(source) = plugin.create_dataset_source(plugin_config) else {
            continue;
        };
        if source
            .catalog()
            .is_ok_and(|catalog| catalog.iter().any(|e| e.name == base))
        {
            return Ok(info.name.clone());
        }
    }
    // The registry's own error names the plugins it knows.
    Ok(first.to_owned())
}

/// Records every dataset of `config` (the ID one first) into its store, skipping complete
/// datasets and resuming incomplete ones. With `shard`, records only that shard's slice of
/// every dataset, into the shard's own store (see [`shard_store`]).
pub fn extract(
    config: &StudyConfig,
    registry: &Registry,
    shard: Option<Shard>,
) -> Result<ExtractReport, ExtractError> {
    if let Some(s) = shard
        && (s.count == 0 || s.index >= s.count)
    {
        return Err(ExtractError::Study(format!(
            "shard {}/{}: the index must be below the count",
            s.index, s.count
        )));
    }
    let store_path = match shard {
        Some(s) => shard_store(&config.store, s),
        None => config.store.clone(),
    };
    let adapter_config = config.adapter_config().map_err(ExtractError::Study)?;
    let mut model = registry.create_model(&config.model.adapter, &adapter_config)?;
    let description = model.describe()?;
    // The study's preprocessing, or the default for the model's input size: what the
    // manifest records and every reader applies.
    let mut resolved = config.clone();
    resolved.model.preprocessing = Some(config.model.preprocessing_for(description.inputs.first()));
    let config = &resolved;
    let mut layers = select_layers(&description, &config.model.layers)?;
    let pooling = config.model.pooling.to_pooling();

    // Open every dataset first: a wrong name fails before any work.
    let roles = config.roles();
    let mut order: Vec<usize> = (0..config.datasets.len()).collect();
    order.sort_by_key(|&i| roles[i] != Role::Id);
    let mut sources = Vec::new();
    let mut opened = Vec::new();
    // The plugin each dataset came from, by config index.
    let mut plugins = vec![String::new(); config.datasets.len()];
    for &i in &order {
        let entry = &config.datasets[i];
        let plugin = dataset_plugin(config, registry, entry)?;
        plugins[i].clone_from(&plugin);
        let plugin_config = config.plugins.get(&plugin).map_or("", String::as_str);
        let source = registry.create_dataset_source(&plugin, plugin_config)?;
        let dataset = source.open(&entry.name)?;
        // The shift's parameters as the catalog gives them (for an on-the-fly shift
        // `base+fog/3`, the base's and the shift), and the plugin config used.
        let catalog = source.catalog()?;
        let (base, on_the_fly) = match entry.name.split_once('+') {
            Some((base, shift)) => (base, Some(shift)),
            None => (entry.name.as_str(), None),
        };
        let mut params: BTreeMap<String, String> = catalog
            .iter()
            .find(|info| info.name == entry.name)
            .or_else(|| catalog.iter().find(|info| info.name == base))
            .map(|info| info.params.iter().cloned().collect())
            .unwrap_or_default();
        if let Some(shift) = on_the_fly {
            params.insert("on_the_fly".to_owned(), shift.to_owned());
        }
        if !plugin_config.is_empty() {
            params.insert("plugin_config".to_owned(), plugin_config.to_owned());
        }
        let limit = [entry.limit, config.recording.limit]
            .into_iter()
            .flatten()
            .min();
        let rows = limit.map_or(dataset.len(), |l| l.min(dataset.len()));
        opened.push((i, dataset, rows, params));
        sources.push(source);
    }

    // The preprocessing must produce the model's input: checked before any work.
    let input = description
        .inputs
        .first()
        .ok_or_else(|| ExtractError::Study("the model has no input".to_owned()))?;
    let first_size = match opened.first() {
        Some((_, dataset, rows, _)) if *rows > 0 => {
            let sample = dataset.get(0)?;
            Some((sample.width, sample.height))
        }
        _ => None,
    };
    let preprocessing = config.model.preprocessing_for(Some(input));
    preprocessing
        .check_model_input(input, first_size)
        .map_err(|e| ExtractError::Study(e.to_string()))?;

    let classes = if description.class_names.len() == description.num_classes {
        description.class_names.clone()
    } else {
        match opened.first() {
            Some((_, d, _, _)) if d.classes().len() == description.num_classes => {
                d.classes().to_vec()
            }
            _ => (0..description.num_classes)
                .map(|k| k.to_string())
                .collect(),
        }
    };
    let mut wanted = manifest_for(config, &description, &layers, classes)?;
    wanted.shard = shard;
    let mut store = if store_path.join("manifest.json").exists() {
        let store = StoreWriter::open(&store_path)?;
        let have = store.manifest();
        // A store may name its layers by another name of the same layer (an ONNX tensor
        // name, from before layers were named by module path): the same layers all the same.
        let canonical = |name: &str| {
            description
                .layer(name)
                .map_or_else(|| name.to_owned(), |l| l.name.clone())
        };
        let have_layers: HashSet<(String, usize)> = have
            .layers
            .iter()
            .map(|l| (canonical(&l.name), l.neurons))
            .collect();
        let want_layers: HashSet<(String, usize)> = wanted
            .layers
            .iter()
            .map(|l| (l.name.clone(), l.neurons))
            .collect();
        if have.model.sha256 != wanted.model.sha256
            || have_layers != want_layers
            || have.classes != wanted.classes
            || have.thumb != wanted.thumb
            || have.precision != wanted.precision
            || have.shard != wanted.shard
        {
            return Err(ExtractError::Study(format!(
                "{} holds a store of another model, layer selection, format or shard; a different model is a different store",
                store_path.display()
            )));
        }
        // Record under the names the store has.
        layers = have.layers.iter().map(|l| l.name.clone()).collect();
        store
    } else {
        StoreWriter::create(&store_path, wanted)?
    };

    let mut report = ExtractReport::default();
    for (i, dataset, rows, params) in opened {
        let entry = &config.datasets[i];
        if let Some((_, existing)) = store.manifest().dataset(&entry.name)
            && existing.complete
        {
            tracing::info!("{}: complete in the store, skipped", entry.name);
            report.datasets.push(DatasetReport {
                name: entry.name.clone(),
                rows: existing.len,
                recorded: 0,
                images_per_second: 0.0,
            });
            continue;
        }
        let (first_row, part) = match shard {
            Some(s) => {
                let (first, end) = shard_rows(rows, config.recording.batch_size, s);
                (first, Some((end - first, Part { first, total: rows })))
            }
            None => (0, None),
        };
        let writer = store.dataset_part(
            &entry.name,
            &plugins[i],
            params,
            roles[i],
            part.map_or(rows, |p| p.0),
            part.map(|p| p.1),
        )?;
        let classes = store.manifest().classes.len();
        let (writer, recorded, rate) = record_dataset(
            &mut model,
            &layers,
            pooling,
            dataset.as_ref(),
            &preprocessing,
            config,
            classes,
            writer,
            (&entry.name, first_row),
        )?;
        writer.finish(&mut store)?;
        report.datasets.push(DatasetReport {
            name: entry.name.clone(),
            rows,
            recorded,
            images_per_second: rate,
        });
    }
    report.non_finite = model.non_finite_counts().to_vec();
    Ok(report)
}
