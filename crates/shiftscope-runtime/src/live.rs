//! Live inference: the model a store was recorded with, run on an image file that is not in
//! the store (the viewer's live mode). The model, its preprocessing, its recorded layers and
//! their pooling come from the store's manifest, so the numbers are comparable with the
//! store's; the selected layer's full maps come from `run_maps`.

use std::path::{Path, PathBuf};

use shiftscope_host::Registry;
use shiftscope_sdk::{
    ConvPooling, LayerKind, ModelAdapter, Pooling, Sample, TensorRef, TokenPooling,
};
use shiftscope_store::Manifest;

use crate::config::ModelConfig;
use crate::preprocess::Preprocessing;

/// Why live inference failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The store's manifest could not be read.
    #[error("reading the store {path}: {problem}")]
    Store {
        /// The store folder.
        path: PathBuf,
        /// What was wrong.
        problem: String,
    },
    /// The model could not be opened or run.
    #[error("the model {model}: {problem}")]
    Model {
        /// The model file.
        model: String,
        /// What was wrong.
        problem: String,
    },
    /// The image could not be read.
    #[error("the image {path}: {problem}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What was wrong.
        problem: String,
    },
}

/// One layer's full maps for one image: `[channels, height, width]` for conv layers, `[n, 1,
/// 1]` for dense ones, `[tokens, hidden]` as `[hidden, tokens, 1]` for token layers.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveMaps {
    /// The store's layer index.
    pub layer: usize,
    /// Maps (channels).
    pub channels: usize,
    /// Map height.
    pub height: usize,
    /// Map width.
    pub width: usize,
    /// Values, channel-major.
    pub values: Vec<f32>,
}

/// What the model made of one image.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveOutput {
    /// The image file.
    pub path: PathBuf,
    /// What the model saw (after resize and crop), RGB, `width × height`.
    pub pixels: Vec<u8>,
    /// Its width.
    pub width: u32,
    /// Its height.
    pub height: u32,
    /// Per recorded layer (the store's order), one pooled value per neuron, as the store
    /// holds them.
    pub layers: Vec<Vec<f32>>,
    /// The logits.
    pub logits: Vec<f32>,
    /// The asked layer's full maps.
    pub maps: Option<LiveMaps>,
}

/// The store's model, ready to run on images.
pub struct LiveModel {
    model: Box<dyn ModelAdapter>,
    model_name: String,
    preprocessing: Preprocessing,
    layers: Vec<(String, LayerKind)>,
    pooling: Pooling,
}

impl std::fmt::Debug for LiveModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveModel")
            .field("model", &self.model_name)
            .field("layers", &self.layers)
            .finish_non_exhaustive()
    }
}

impl LiveModel {
    /// Opens the model of the store at `store` through `registry` (`model` replaces the
    /// manifest's file, e.g. a repaired copy).
    pub fn open(
        store: &Path,
        registry: &Registry,
        model: Option<&Path>,
    ) -> Result<LiveModel, LiveError> {
        let store_error = |problem: String| LiveError::Store {
            path: store.to_path_buf(),
            problem,
        };
        let manifest_path = store.join("manifest.json");
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| store_error(format!("{}: {e}", manifest_path.display())))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| store_error(format!("{}: {e}", manifest_path.display())))?;
        let path = match model {
            Some(p) => p.to_path_buf(),
            None => crate::store_model_file(store, &manifest).map_err(&store_error)?,
        };
        let model_name = path.display().to_string();
        let model_error = |problem: String| LiveError::Model {
            model: model_name.clone(),
            problem,
        };
        let preprocessing = crate::store_preprocessing(store, &manifest).map_err(&store_error)?;
        let config = ModelConfig::for_file(&manifest.model.adapter, &path, preprocessing.clone());
        let adapter_config = config.adapter_config().map_err(&model_error)?;
        let mut adapter = registry
            .create_model(&manifest.model.adapter, &adapter_config)
            .map_err(|e| model_error(e.to_string()))?;
        let description = adapter.describe().map_err(|e| model_error(e.to_string()))?;
        let mut layers = Vec::new();
        let mut pooling = Pooling::default();
        for entry in &manifest.layers {
            let info = description.layer(&entry.name).ok_or_else(|| {
                model_error(format!(
                    "has no layer {} (the store was recorded with another model?)",
                    entry.name
                ))
            })?;
            match (info.kind, entry.pooling.as_str()) {
                (LayerKind::Conv, "max") => pooling.conv = ConvPooling::Max,
                (LayerKind::Tokens, "cls") => pooling.tokens = TokenPooling::Cls,
                (LayerKind::Tokens, "max") => pooling.tokens = TokenPooling::Max,
                _ => {}
            }
            layers.push((entry.name.clone(), info.kind));
        }
        Ok(LiveModel {
            model: Box::new(adapter),
            model_name,
            preprocessing,
            layers,
            pooling,
        })
    }

    /// Runs the image file at `path`; with `maps`, also that layer's full maps.
    pub fn run_file(&mut self, path: &Path, maps: Option<usize>) -> Result<LiveOutput, LiveError> {
        let sample = read_image(path)?;
        self.run(path, &sample, maps)
    }

    /// Runs one decoded image.
    pub fn run(
        &mut self,
        path: &Path,
        sample: &Sample,
        maps: Option<usize>,
    ) -> Result<LiveOutput, LiveError> {
        let model_error = |problem: String| LiveError::Model {
            model: self.model_name.clone(),
            problem,
        };
        let prepared = self
            .preprocessing
            .apply(sample)
            .map_err(|e| LiveError::Image {
                path: path.to_path_buf(),
                problem: e.to_string(),
            })?;
        let shape = [
            1,
            prepared.input.len() / (prepared.width as usize * prepared.height as usize).max(1),
            prepared.height as usize,
            prepared.width as usize,
        ];
        let input =
            TensorRef::new(&shape, &prepared.input).map_err(|e| model_error(e.to_string()))?;
        let names: Vec<String> = self.layers.iter().map(|(n, _)| n.clone()).collect();
        let set = self
            .model
            .run(input, &names, self.pooling)
            .map_err(|e| model_error(e.to_string()))?;
        let layers = set
            .layers
            .iter()
            .map(|l| l.tensor.data().to_vec())
            .collect();
        let logits = set.logits.data().to_vec();
        let maps = match maps.and_then(|l| self.layers.get(l).map(|x| (l, x.clone()))) {
            None => None,
            Some((l, (name, kind))) => {
                let input = TensorRef::new(&shape, &prepared.input)
                    .map_err(|e| model_error(e.to_string()))?;
                let full = self
                    .model
                    .run_maps(input, std::slice::from_ref(&name))
                    .map_err(|e| model_error(e.to_string()))?;
                let tensor = &full
                    .layers
                    .first()
                    .ok_or_else(|| model_error(format!("no maps of {name}")))?
                    .tensor;
                Some(maps_of(l, kind, tensor.shape(), tensor.data()))
            }
        };
        Ok(LiveOutput {
            path: path.to_path_buf(),
            pixels: prepared.pixels,
            width: prepared.width,
            height: prepared.height,
            layers,
            logits,
            maps,
        })
    }
}

/// One image's maps `[1, ...shape]` as channels of 2-D maps.
fn maps_of(layer: usize, kind: LayerKind, shape: &[usize], data: &[f32]) -> LiveMaps {
    let dims = &shape[1.min(shape.len())..];
    let (channels, height, width, values) = match (kind, dims) {
        (LayerKind::Conv, [c, h, w]) => (*c, *h, *w, data.to_vec()),
        (LayerKind::Tokens, [t, d]) => {
            // Hidden unit `j`'s map is its value along the tokens.
            let mut values = vec![0.0; t * d];
            for ti in 0..*t {
                for j in 0..*d {
                    values[j * t + ti] = data[ti * d + j];
                }
            }
            (*d, *t, 1, values)
        }
        _ => (data.len(), 1, 1, data.to_vec()),
    };
    LiveMaps {
        layer,
        channels,
        height,
        width,
        values,
    }
}

/// Reads a PNG or JPEG file as RGB (the label is 0).
pub fn read_image(path: &Path) -> Result<Sample, LiveError> {
    let bad = |problem: String| LiveError::Image {
        path: path.to_path_buf(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let (width, height, pixels) = if bytes.starts_with(b"\x89PNG") {
        decode_png(&bytes).map_err(bad)?
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        decode_jpeg(&bytes).map_err(bad)?
    } else {
        return Err(bad("not a PNG or JPEG file".to_owned()));
    };
    Ok(Sample {
        width,
        height,
        label: 0,
        pixels,
    })
}

fn decode_png(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| format!("PNG: {e}"))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| "PNG: the image is too large".to_owned())?;
    let mut buf = vec![0; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("PNG: {e}"))?;
    let (w, h) = (frame.width, frame.height);
    let data = &buf[..frame.buffer_size()];
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("PNG: palette not expanded".to_owned()),
    };
    Ok((w, h, to_rgb(data, channels)))
}

fn decode_jpeg(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
    let mut decoder = jpeg_decoder::Decoder::new(std::io::Cursor::new(bytes));
    let data = decoder.decode().map_err(|e| format!("JPEG: {e}"))?;
    let info = decoder
        .info()
        .ok_or_else(|| "JPEG: no image header".to_owned())?;
    let channels = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        other => return Err(format!("JPEG: pixel format {other:?} is not supported")),
    };
    Ok((
        u32::from(info.width),
        u32::from(info.height),
        to_rgb(&data, channels),
    ))
}

/// Grey, grey+alpha, RGB or RGBA bytes as RGB (alpha dropped).
fn to_rgb(data: &[u8], channels: usize) -> Vec<u8> {
    match channels {
        3 => data.to_vec(),
        1 => data.iter().flat_map(|&g| [g, g, g]).collect(),
        2 => data
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        _ => data
            .chunks_exact(channels)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_maps_are_per_hidden_unit() {
        // 3 tokens × 2 hidden units, token-major.
        let data = [1.0, 10.0, 2.0, 20.0, 3.0, 30.0];
        let maps = maps_of(0, LayerKind::Tokens, &[1, 3, 2], &data);
        assert_eq!((maps.channels, maps.height, maps.width), (2, 3, 1));
        assert_eq!(maps.values, vec![1.0, 2.0, 3.0, 10.0, 20.0, 30.0]);
        let conv = maps_of(1, LayerKind::Conv, &[1, 2, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!((conv.channels, conv.height, conv.width), (2, 1, 2));
    }

    #[test]
    fn grey_and_rgba_become_rgb() {
        assert_eq!(to_rgb(&[7, 9], 1), vec![7, 7, 7, 9, 9, 9]);
        assert_eq!(to_rgb(&[1, 2, 3, 255], 4), vec![1, 2, 3]);
        assert_eq!(to_rgb(&[5, 128], 2), vec![5, 5, 5]);
    }

    #[test]
    fn a_file_that_is_no_image_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.png");
        std::fs::write(&path, b"hello").unwrap();
        let e = read_image(&path).unwrap_err().to_string();
        assert!(
            e.contains("notes.png") && e.contains("not a PNG or JPEG"),
            "{e}"
        );
        let missing = read_image(&dir.path().join("gone.jpg"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("gone.jpg"), "{missing}");
    }
}
