//! The driver: a layer's top-N images per neuron on one dataset, re-run through the store's
//! model. Each image in the union of the neurons' lists is read from its dataset and
//! preprocessed as when it was recorded; one `run_maps` gives the layer's full maps (the
//! activation `a_j`, pooled as recorded, and each channel's argmax location for its crop),
//! and its grey version runs in batches through `run` (the activation `a'_j`). Crops are
//! taken from the pixels the model saw (after resize and crop, before normalisation).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use shiftscope_host::Registry;
use shiftscope_runtime::{Channels, Preprocessing, ValueRange};
use shiftscope_sdk::{
    ConvPooling, Dataset, LayerKind, ModelAdapter, ModelDescription, Pooling, ReceptiveField,
    TensorRef, TokenPooling, pool_map,
};
use shiftscope_store::{LayerMatrix, Store};

use crate::cache::LayerFeatures;
use crate::nf::{NfAccumulator, crop, shrink};
use crate::{FeatureError, Rgb, colour_selectivity, grey_version};

/// N, the top images per neuron, when none is asked for (design: 100).
pub const DEFAULT_TOP: usize = 100;
/// Neuron Features are shrunk to at most this many pixels a side.
pub const MAX_NF_SIDE: usize = 64;
/// Grey versions per `run` call.
const BATCH: usize = 16;

/// The top `top` rows of every column of `matrix` (its first `rows` rows), best first:
/// NaN, ±inf and exact zeros never enter, ties go to the lower row (the analysis's rule).
pub fn top_images(matrix: &LayerMatrix<'_>, rows: usize, top: usize) -> Vec<Vec<(u32, f32)>> {
    let (total, cols) = matrix.shape();
    let rows = rows.min(total);
    (0..cols)
        .map(|col| {
            let mut column: Vec<(u32, f32)> = (0..rows)
                .map(|r| (r as u32, matrix.get(r, col)))
                .filter(|(_, v)| v.is_finite() && *v != 0.0)
                .collect();
            let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
            if column.len() > top && top > 0 {
                column.select_nth_unstable_by(top - 1, order);
                column.truncate(top);
            }
            column.sort_by(order);
            column.truncate(top);
            column
        })
        .collect()
}

/// The store's model, ready to re-run images.
pub struct FeatureModel {
    adapter: Box<dyn ModelAdapter>,
    name: String,
    preprocessing: Preprocessing,
    description: ModelDescription,
}

impl std::fmt::Debug for FeatureModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureModel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl FeatureModel {
    /// Wraps an adapter already made (`name` names it in errors) with the preprocessing the
    /// store was recorded with.
    pub fn new(
        mut adapter: Box<dyn ModelAdapter>,
        name: &str,
        preprocessing: Preprocessing,
    ) -> Result<FeatureModel, FeatureError> {
        let description = adapter.describe().map_err(|e| FeatureError::Model {
            model: name.to_owned(),
            problem: e.to_string(),
        })?;
        Ok(FeatureModel {
            adapter,
            name: name.to_owned(),
            preprocessing,
            description,
        })
    }

    /// Opens the model of the store at `root` through `registry`: the manifest's adapter on
    /// the manifest's model file (as written when absolute or found from the working
    /// directory, else next to the store's parent folder), or on `model` when given.
    pub fn open(
        root: &Path,
        store: &Store,
        registry: &Registry,
        model: Option<&Path>,
    ) -> Result<FeatureModel, FeatureError> {
        let entry = &store.manifest().model;
        let store_error = |problem: String| FeatureError::Store {
            store: root.to_path_buf(),
            problem,
        };
        let preprocessing: Preprocessing = serde_json::from_value(entry.preprocessing.clone())
            .map_err(|e| store_error(format!("its preprocessing: {e}")))?;
        let path = match model {
            Some(p) => Some(p.to_path_buf()),
            None => model_path(root, &entry.path),
        };
        let config = match (&path, entry.adapter.as_str()) {
            (Some(p), "onnx") => {
                #[derive(Serialize)]
                struct OnnxConfig<'a> {
                    model: &'a Path,
                }
                ron::to_string(&OnnxConfig { model: p })
                    .map_err(|e| store_error(format!("the model config: {e}")))?
            }
            (None, "onnx") => {
                return Err(store_error(format!(
                    "its model {:?} is not found (run from the folder it was recorded in, or \
                     name the file)",
                    entry.path
                )));
            }
            _ => String::new(),
        };
        let name = path.map_or_else(|| entry.adapter.clone(), |p| p.display().to_string());
        let adapter = registry
            .create_model(&entry.adapter, &config)
            .map_err(|e| FeatureError::Model {
                model: name.clone(),
                problem: e.to_string(),
            })?;
        FeatureModel::new(Box::new(adapter), &name, preprocessing)
    }

    /// What the model says about itself.
    pub fn description(&self) -> &ModelDescription {
        &self.description
    }

    fn fail(&self, problem: impl std::fmt::Display) -> FeatureError {
        FeatureError::Model {
            model: self.name.clone(),
            problem: problem.to_string(),
        }
    }
}

fn model_path(root: &Path, named: &str) -> Option<PathBuf> {
    let named = PathBuf::from(named);
    if named.as_os_str().is_empty() {
        return None;
    }
    if named.is_absolute() || named.exists() {
        return Some(named);
    }
    let parent = root.parent()?;
    Some(parent.join(named.file_name()?)).filter(|p| p.exists())
}

/// Opens dataset `dataset` of the store through `registry`, as it was recorded (its plugin,
/// name and plugin config).
pub fn open_dataset(
    root: &Path,
    store: &Store,
    registry: &Registry,
    dataset: usize,
) -> Result<Box<dyn Dataset>, FeatureError> {
    let store_error = |problem: String| FeatureError::Store {
        store: root.to_path_buf(),
        problem,
    };
    let entry = store.manifest().datasets.get(dataset).ok_or_else(|| {
        store_error(format!(
            "no dataset {dataset} (it holds {})",
            store.manifest().datasets.len()
        ))
    })?;
    let config = entry.params.get("plugin_config").map_or("", String::as_str);
    registry
        .create_dataset_source(&entry.plugin, config)
        .and_then(|source| source.open(&entry.name))
        .map_err(|e| store_error(format!("dataset {} ({}): {e}", entry.id, entry.plugin)))
}

/// The model input of an RGB `[0, 1]` image under `pre` (what `Preprocessing::apply` does
/// after resize and crop).
fn normalise(pre: &Preprocessing, image: &Rgb) -> Vec<f32> {
    let scale = match pre.range {
        ValueRange::Unit => 1.0,
        ValueRange::Byte => 255.0,
    };
    let plane = image.width * image.height;
    let mut input = vec![0.0f32; plane * pre.channels.count()];
    for (i, p) in image.data.chunks_exact(3).enumerate() {
        let [r, g, b] = [p[0], p[1], p[2]].map(|v| v * scale);
        match pre.channels {
            Channels::Rgb | Channels::Bgr => {
                let ordered = if pre.channels == Channels::Rgb {
                    [r, g, b]
                } else {
                    [b, g, r]
                };
                for (c, v) in ordered.into_iter().enumerate() {
                    input[c * plane + i] = (v - pre.mean[c]) / pre.std[c];
                }
            }
            Channels::Grey => {
                let y = 0.299 * r + 0.587 * g + 0.114 * b;
                input[i] = (y - pre.mean[0]) / pre.std[0];
            }
        }
    }
    input
}

fn pooling_of(kind: LayerKind, recorded: &str) -> Pooling {
    let mut pooling = Pooling::default();
    match (kind, recorded) {
        (LayerKind::Conv, "max") => pooling.conv = ConvPooling::Max,
        (LayerKind::Tokens, "cls") => pooling.tokens = TokenPooling::Cls,
        (LayerKind::Tokens, "max") => pooling.tokens = TokenPooling::Max,
        _ => {}
    }
    pooling
}

/// Computes the colour selectivity and Neuron Features of layer `layer` on dataset `dataset`
/// (read through `images`, the dataset as recorded) over each neuron's top `top` images.
/// `progress` hears `(images done, images in all)`.
#[allow(clippy::too_many_arguments)]
pub fn compute(
    root: &Path,
    store: &Store,
    model: &mut FeatureModel,
    images: &dyn Dataset,
    layer: usize,
    dataset: usize,
    top: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<LayerFeatures, FeatureError> {
    let store_error = |problem: String| FeatureError::Store {
        store: root.to_path_buf(),
        problem,
    };
    let manifest = store.manifest();
    let layer_entry = manifest.layers.get(layer).ok_or_else(|| {
        store_error(format!(
            "no layer {layer} (it holds {})",
            manifest.layers.len()
        ))
    })?;
    let dataset_entry = manifest.datasets.get(dataset).ok_or_else(|| {
        store_error(format!(
            "no dataset {dataset} (it holds {})",
            manifest.datasets.len()
        ))
    })?;
    let info = model
        .description
        .layer(&layer_entry.name)
        .cloned()
        .ok_or_else(|| {
            model.fail(format!(
                "has no layer {} (the store was recorded with another model?)",
                layer_entry.name
            ))
        })?;
    let neurons = layer_entry.neurons;
    if info.neurons != neurons {
        return Err(model.fail(format!(
            "layer {} has {} neurons, the store {neurons}",
            info.name, info.neurons
        )));
    }
    let rows = store
        .committed(dataset)
        .map_err(|e| store_error(e.to_string()))?;
    let matrix = store
        .layer(dataset, layer)
        .map_err(|e| store_error(e.to_string()))?;
    let lists = top_images(&matrix, rows, top);

    let mut notes = Vec::new();
    let field: Option<ReceptiveField> = match info.kind {
        LayerKind::Conv => {
            if info.receptive_field.is_none() {
                notes.push(format!(
                    "the model gives no receptive field for {}: Neuron Features average whole \
                     images",
                    info.name
                ));
            }
            info.receptive_field
        }
        kind => {
            notes.push(format!(
                "{} is a {} layer: Neuron Features average whole images",
                info.name,
                kind.as_str()
            ));
            None
        }
    };
    if model.preprocessing.channels == Channels::Grey {
        notes.push("the model sees grey images: colour selectivity is 0 by construction".into());
    }
    let pooling = pooling_of(info.kind, &layer_entry.pooling);

    // Which neurons want each image.
    let mut wanted: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (n, list) in lists.iter().enumerate() {
        for &(row, _) in list {
            wanted.entry(row).or_default().push(n);
        }
    }
    let total = wanted.len();
    // Per (neuron, row): a_j and a'_j.
    let mut original: Vec<BTreeMap<u32, f32>> = vec![BTreeMap::new(); neurons];
    let mut grey: Vec<BTreeMap<u32, f32>> = vec![BTreeMap::new(); neurons];
    let mut accumulator: Option<NfAccumulator> = None;
    let mut shrink_by = 1;
    let names = std::slice::from_ref(&info.name);
    let mut pending: Vec<(u32, Vec<f32>)> = Vec::new();
    let mut input_shape = [1, 0, 0, 0];
    let mut done = 0;
    let rows_wanted: BTreeSet<u32> = wanted.keys().copied().collect();
    for &row in &rows_wanted {
        let image_error = |problem: String| FeatureError::Image {
            dataset: dataset_entry.id.clone(),
            row: row as usize,
            problem,
        };
        let sample = images
            .get(row as usize)
            .map_err(|e| image_error(e.to_string()))?;
        let prepared = model
            .preprocessing
            .apply(&sample)
            .map_err(|e| image_error(e.to_string()))?;
        let (w, h) = (prepared.width as usize, prepared.height as usize);
        let pixels = Rgb::from_bytes(w, h, &prepared.pixels);
        input_shape = [1, model.preprocessing.channels.count(), h, w];
        let input = TensorRef::new(&input_shape, &prepared.input).map_err(|e| model.fail(e))?;
        let set = model
            .adapter
            .run_maps(input, names)
            .map_err(|e| model.fail(e))?;
        let map = set
            .layers
            .first()
            .ok_or_else(|| model.fail(format!("run_maps returned no map of {}", info.name)))?;
        let per_image = &map.tensor.shape()[1.min(map.tensor.shape().len())..];
        let values = map.tensor.data();
        let pooled = pool_map(info.kind, per_image, values, pooling).map_err(|e| model.fail(e))?;
        if accumulator.is_none() {
            let [ch, cw] = field.map_or([h, w], |f| f.size);
            shrink_by = ch.max(cw).div_ceil(MAX_NF_SIDE).max(1);
            if shrink_by > 1 {
                notes.push(format!(
                    "crops of {ch}×{cw} shrunk by {shrink_by} for the Neuron Features"
                ));
            }
            accumulator = Some(NfAccumulator::new(
                neurons,
                ch.div_ceil(shrink_by),
                cw.div_ceil(shrink_by),
            ));
        }
        let Some(acc) = accumulator.as_mut() else {
            continue;
        };
        for &n in wanted.get(&row).map_or(&[][..], Vec::as_slice) {
            let a = pooled.get(n).copied().unwrap_or(f32::NAN);
            original[n].insert(row, a);
            let (y, x) = match (info.kind, per_image) {
                (LayerKind::Conv, [_, mh, mw]) if field.is_some() => {
                    let plane = &values[n * mh * mw..(n + 1) * mh * mw];
                    let best = plane
                        .iter()
                        .enumerate()
                        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                            if v > best.1 { (i, v) } else { best }
                        })
                        .0;
                    (best / mw, best % mw)
                }
                _ => (0, 0),
            };
            let c = crop(&pixels, field.as_ref(), y, x);
            acc.add(n, &shrink(&c, shrink_by), a);
        }
        pending.push((row, normalise(&model.preprocessing, &grey_version(&pixels))));
        if pending.len() == BATCH {
            run_grey(
                model,
                &info.name,
                pooling,
                input_shape,
                &mut pending,
                &wanted,
                &mut grey,
            )?;
        }
        done += 1;
        progress(done, total);
    }
    // The last, partial batch.
    run_grey(
        model,
        &info.name,
        pooling,
        input_shape,
        &mut pending,
        &wanted,
        &mut grey,
    )?;

    let mut csi = Vec::with_capacity(neurons);
    let mut csi_clipped = Vec::with_capacity(neurons);
    for n in 0..neurons {
        let rows: Vec<u32> = lists[n].iter().map(|p| p.0).collect();
        let a: Vec<f32> = rows
            .iter()
            .map(|r| original[n].get(r).copied().unwrap_or(f32::NAN))
            .collect();
        let g: Vec<f32> = rows
            .iter()
            .map(|r| grey[n].get(r).copied().unwrap_or(f32::NAN))
            .collect();
        let s = colour_selectivity(&a, &g);
        csi.push(s.csi);
        csi_clipped.push(s.clipped);
    }
    let acc = accumulator.unwrap_or_else(|| NfAccumulator::new(neurons, 0, 0));
    let nf_size = acc.size();
    let plane = nf_size[0] * nf_size[1] * 3;
    let mut nf = Vec::with_capacity(plane * neurons);
    let mut has_nf = Vec::with_capacity(neurons);
    for n in 0..neurons {
        match acc.feature(n) {
            Some(f) => {
                nf.extend(f.to_bytes());
                has_nf.push(true);
            }
            None => {
                nf.extend(std::iter::repeat_n(0u8, plane));
                has_nf.push(false);
            }
        }
    }
    Ok(LayerFeatures {
        layer_id: layer_entry.id.clone(),
        layer: info.name.clone(),
        dataset_id: dataset_entry.id.clone(),
        dataset,
        top,
        rows,
        csi,
        csi_clipped,
        images: lists.iter().map(|l| l.len() as u32).collect(),
        receptive_field: field.map(Into::into),
        nf_size,
        has_nf,
        notes,
        nf,
    })
}

/// Opens the model of the store at `root` (the manifest's, or `model` when given) and dataset
/// `dataset` through `registry`, computes layer `layer`'s features over N = `top` images and
/// writes them to the cache; returns them with the cache file's path. What `shiftscope
/// features` and the viewer's Compute button run. `progress` hears `(images done, in all)`.
#[allow(clippy::too_many_arguments)]
pub fn compute_and_save(
    root: &Path,
    store: &Store,
    registry: &Registry,
    model: Option<&Path>,
    layer: usize,
    dataset: usize,
    top: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(LayerFeatures, PathBuf), FeatureError> {
    let mut model = FeatureModel::open(root, store, registry, model)?;
    let images = open_dataset(root, store, registry, dataset)?;
    let features = compute(
        root,
        store,
        &mut model,
        images.as_ref(),
        layer,
        dataset,
        top,
        progress,
    )?;
    let path = features.save(root)?;
    Ok((features, path))
}

/// Runs the pending grey versions as one batch and files each neuron's `a'_j`.
fn run_grey(
    model: &mut FeatureModel,
    layer: &str,
    pooling: Pooling,
    image_shape: [usize; 4],
    pending: &mut Vec<(u32, Vec<f32>)>,
    wanted: &BTreeMap<u32, Vec<usize>>,
    grey: &mut [BTreeMap<u32, f32>],
) -> Result<(), FeatureError> {
    if pending.is_empty() {
        return Ok(());
    }
    let shape = [
        pending.len(),
        image_shape[1],
        image_shape[2],
        image_shape[3],
    ];
    let data: Vec<f32> = pending.iter().flat_map(|p| p.1.iter().copied()).collect();
    let batch = TensorRef::new(&shape, &data).map_err(|e| model.fail(e))?;
    let set = model
        .adapter
        .run(batch, &[layer.to_owned()], pooling)
        .map_err(|e| model.fail(e))?;
    let tensor = &set
        .layers
        .first()
        .ok_or_else(|| model.fail(format!("run returned no {layer}")))?
        .tensor;
    let width = tensor.data().len() / pending.len().max(1);
    for (i, (row, _)) in pending.iter().enumerate() {
        for &n in wanted.get(row).map_or(&[][..], Vec::as_slice) {
            let v = tensor
                .data()
                .get(i * width + n)
                .copied()
                .unwrap_or(f32::NAN);
            grey[n].insert(*row, v);
        }
    }
    pending.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_images_skip_zeros_and_non_finite_and_break_ties_by_row() {
        let data = [
            1.0,
            0.0, //
            3.0,
            f32::NAN, //
            3.0,
            2.0, //
            0.0,
            -1.0, //
            2.0,
            5.0,
        ];
        let m = LayerMatrix::F32 {
            rows: 5,
            cols: 2,
            data: &data,
        };
        let top = top_images(&m, 5, 3);
        assert_eq!(top[0], vec![(1, 3.0), (2, 3.0), (4, 2.0)]);
        assert_eq!(top[1], vec![(4, 5.0), (2, 2.0), (3, -1.0)]);
        // Only the committed rows count.
        assert_eq!(top_images(&m, 2, 3)[0], vec![(1, 3.0), (0, 1.0)]);
    }
}
