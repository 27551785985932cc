//! Import of Deephys exports into a store, so that people with Deephys files can open them
//! here. The formats (CBOR): a `.model` is `{name, layers: [{layerID, neurons: [{}, ...]}],
//! classification_layer}`; a `.test` is `{name, dtype, classes, images: [{imageID,
//! categoryID, category, data, features, activations}]}` where `data` is 3 channels × H rows,
//! each row a byte string of `u8` pixels, and `activations` is `{activations: [one byte string
//! per layer]}` of big-endian `f32` (or `f64` when `dtype` says so).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ciborium::Value;
use serde::Deserialize;
use shiftscope_store::{LayerEntry, Manifest, ModelEntry, Precision, Role, StoreWriter};

use crate::ExtractError;

/// Rows written at a time.
const CHUNK: usize = 1024;
/// Largest Deephys file read (they are loaded whole).
const MAX_BYTES: u64 = 8 << 30;

#[derive(Deserialize)]
struct DeephysModel {
    name: String,
    layers: Vec<DeephysLayer>,
    classification_layer: String,
}

#[derive(Deserialize)]
struct DeephysLayer {
    #[serde(rename = "layerID")]
    layer_id: String,
    neurons: Vec<Value>,
}

#[derive(Deserialize)]
struct DeephysTest {
    name: String,
    dtype: String,
    classes: Vec<String>,
    images: Vec<DeephysImage>,
}

#[derive(Deserialize)]
struct DeephysImage {
    #[serde(rename = "categoryID")]
    category_id: i64,
    data: Vec<Vec<Value>>,
    activations: DeephysActivations,
}

#[derive(Deserialize)]
struct DeephysActivations {
    activations: Vec<Value>,
}

fn fail(path: &Path, problem: impl std::fmt::Display) -> ExtractError {
    ExtractError::Study(format!("{}: {problem}", path.display()))
}

fn read_cbor<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T, ExtractError> {
    let size = std::fs::metadata(path)
        .map_err(|e| fail(path, format!("cannot read: {e}")))?
        .len();
    if size > MAX_BYTES {
        return Err(fail(
            path,
            format!("{size} bytes is more than this importer reads"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(path, format!("cannot read: {e}")))?;
    ciborium::from_reader(bytes.as_slice())
        .map_err(|e| fail(path, format!("not a Deephys {what} file: {e}")))
}

fn bytes_of<'a>(value: &'a Value, path: &Path, what: &str) -> Result<&'a [u8], ExtractError> {
    match value {
        Value::Bytes(b) => Ok(b),
        _ => Err(fail(path, format!("{what} is not a byte string"))),
    }
}

/// Decodes one layer's big-endian values.
fn floats(
    bytes: &[u8],
    f64s: bool,
    neurons: usize,
    path: &Path,
    what: &str,
) -> Result<Vec<f32>, ExtractError> {
    let width = if f64s { 8 } else { 4 };
    if bytes.len() != neurons * width {
        return Err(fail(
            path,
            format!(
                "{what}: {} bytes where {neurons} neurons of {width} bytes need {}",
                bytes.len(),
                neurons * width
            ),
        ));
    }
    Ok(if f64s {
        bytes
            .chunks_exact(8)
            .map(|c| f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect()
    } else {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

/// An image's pixels as RGB HWC from Deephys' channel-major rows.
fn pixels(
    image: &DeephysImage,
    path: &Path,
    index: usize,
) -> Result<(u32, u32, Vec<u8>), ExtractError> {
    let what = format!("image {index}");
    if image.data.len() != 3 {
        return Err(fail(
            path,
            format!("{what}: {} colour channels, 3 expected", image.data.len()),
        ));
    }
    let height = image.data[0].len();
    let width = image.data[0]
        .first()
        .map(|r| bytes_of(r, path, &what).map(<[u8]>::len))
        .transpose()?
        .unwrap_or(0);
    if height == 0 || width == 0 {
        return Err(fail(path, format!("{what}: an empty image")));
    }
    let mut rgb = vec![0u8; width * height * 3];
    for (c, rows) in image.data.iter().enumerate() {
        if rows.len() != height {
            return Err(fail(
                path,
                format!(
                    "{what}: channel {c} has {} rows, channel 0 {height}",
                    rows.len()
                ),
            ));
        }
        for (y, row) in rows.iter().enumerate() {
            let row = bytes_of(row, path, &what)?;
            if row.len() != width {
                return Err(fail(
                    path,
                    format!(
                        "{what}: row {y} of channel {c} has {} pixels, not {width}",
                        row.len()
                    ),
                ));
            }
            for (x, &v) in row.iter().enumerate() {
                rgb[(y * width + x) * 3 + c] = v;
            }
        }
    }
    Ok((width as u32, height as u32, rgb))
}

/// Converts a Deephys `.model` and its `.test` files (the first is the in-distribution one)
/// into a new store at `out`, with thumbnails of `thumb` pixels.
pub fn import_deephys(
    model_path: &Path,
    tests: &[PathBuf],
    out: &Path,
    thumb: usize,
) -> Result<(), ExtractError> {
    let model: DeephysModel = read_cbor(model_path, "model")?;
    let logits_layer = model
        .layers
        .iter()
        .position(|l| l.layer_id == model.classification_layer)
        .ok_or_else(|| {
            fail(
                model_path,
                format!(
                    "classification_layer '{}' is not one of its layers",
                    model.classification_layer
                ),
            )
        })?;
    let Some(first_test) = tests.first() else {
        return Err(ExtractError::Study("no .test file to import".to_owned()));
    };
    let mut writer: Option<StoreWriter> = None;
    for (t, test_path) in tests.iter().enumerate() {
        let test: DeephysTest = read_cbor(test_path, "test")?;
        let f64s = test.dtype.contains("64");
        let classes = test.classes.clone();
        if model.layers[logits_layer].neurons.len() != classes.len() {
            return Err(fail(
                test_path,
                format!(
                    "{} classes but the classification layer has {} neurons",
                    classes.len(),
                    model.layers[logits_layer].neurons.len()
                ),
            ));
        }
        let store = match writer.as_mut() {
            Some(store) => {
                if store.manifest().classes != classes {
                    return Err(fail(
                        test_path,
                        format!("its classes differ from those of {}", first_test.display()),
                    ));
                }
                store
            }
            None => {
                let manifest = Manifest {
                    schema_version: shiftscope_store::SCHEMA_VERSION,
                    tool_version: env!("CARGO_PKG_VERSION").to_owned(),
                    created_unix: shiftscope_store::now_unix(),
                    model: ModelEntry {
                        path: model_path.display().to_string(),
                        sha256: shiftscope_store::sha256_file(model_path)?,
                        adapter: format!("deephys import ({})", model.name),
                        preprocessing: serde_json::Value::Null,
                        input_shape: Vec::new(),
                    },
                    layers: model
                        .layers
                        .iter()
                        .map(|l| LayerEntry {
                            id: String::new(),
                            name: l.layer_id.clone(),
                            op: String::new(),
                            kind: if l.layer_id == model.classification_layer {
                                "logits"
                            } else {
                                "dense"
                            }
                            .to_owned(),
                            neurons: l.neurons.len(),
                            pooling: "as exported".to_owned(),
                        })
                        .collect(),
                    classes: classes.clone(),
                    thumb,
                    precision: Precision::F32,
                    datasets: Vec::new(),
                    shard: None,
                };
                writer.insert(StoreWriter::create(out, manifest)?)
            }
        };
        let role = if t == 0 { Role::Id } else { Role::Ood };
        let params = BTreeMap::from([("deephys_file".to_owned(), test_path.display().to_string())]);
        let n = test.images.len();
        let mut dataset = store.dataset(&test.name, "deephys", params, role, n)?;
        for start in (0..n).step_by(CHUNK) {
            let end = (start + CHUNK).min(n);
            let mut labels = Vec::with_capacity(end - start);
            let mut thumbs = Vec::new();
            let mut layers: Vec<Vec<f32>> = vec![Vec::new(); model.layers.len()];
            for (i, image) in test.images[start..end]
                .iter()
                .enumerate()
                .map(|(i, im)| (start + i, im))
            {
                let label = usize::try_from(image.category_id)
                    .ok()
                    .filter(|&c| c < classes.len())
                    .ok_or_else(|| {
                        fail(
                            test_path,
                            format!(
                                "image {i}: categoryID {} of {} classes",
                                image.category_id,
                                classes.len()
                            ),
                        )
                    })?;
                labels.push(label as i32);
                let (w, h, rgb) = pixels(image, test_path, i)?;
                thumbs.extend(
                    crate::extract::thumbnail(&rgb, w, h, thumb)
                        .map_err(|e| fail(test_path, format!("image {i}: {e}")))?,
                );
                if image.activations.activations.len() != model.layers.len() {
                    return Err(fail(
                        test_path,
                        format!(
                            "image {i}: {} activation blocks for {} layers",
                            image.activations.activations.len(),
                            model.layers.len()
                        ),
                    ));
                }
                for ((values, block), layer) in layers
                    .iter_mut()
                    .zip(&image.activations.activations)
                    .zip(&model.layers)
                {
                    let what = format!("image {i}, layer '{}'", layer.layer_id);
                    values.extend(floats(
                        bytes_of(block, test_path, &what)?,
                        f64s,
                        layer.neurons.len(),
                        test_path,
                        &what,
                    )?);
                }
            }
            let refs: Vec<&[f32]> = layers.iter().map(Vec::as_slice).collect();
            dataset.write_rows(start, &labels, &layers[logits_layer], &thumbs, &refs)?;
        }
        dataset.commit(n)?;
        dataset.finish(store)?;
    }
    Ok(())
}
