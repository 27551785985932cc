//! Colour selectivity and Neuron Features end to end against hand computations: a tiny
//! pure-Rust model and three 4×4 images, recorded into a real store by the runtime's
//! extraction, re-run through the plugin registry, cached and read back.
//!
//! The model: `conv` `[2, 2, 2]`, a 2×2 kernel with stride 2 (receptive field size 2, jump 2,
//! offset 0): channel 0 is `relu(mean over the window of R − G)` (it follows red), channel 1
//! the window's mean of `(R + G + B)/3` (luminance); pooled by the spatial mean. Logits are
//! the two pooled values.
//!
//! The images (black background): 0 a red 2×2 square top-left, 1 a green one bottom-right,
//! 2 a white one top-right.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use shiftscope_features::{DEFAULT_TOP, FeatureModel, LayerFeatures, compute, open_dataset};
use shiftscope_host::{Plugin, Registry};
use shiftscope_sdk::{
    ActivationSet, Dataset, DatasetInfo, DatasetSource, DatasetSourcePlugin, InputSpec, LayerInfo,
    LayerKind, ModelAdapter, ModelAdapterPlugin, ModelDescription, NamedTensor, PluginError,
    Pooling, ReceptiveField, Sample, Tensor, TensorRef, pool_map,
};
use shiftscope_store::Store;

struct Tiny;

impl Tiny {
    /// `[2, 2, 2]` maps of one `[3, 4, 4]` image.
    fn maps(image: &[f32]) -> Vec<f32> {
        let px = |c: usize, y: usize, x: usize| image[c * 16 + y * 4 + x];
        let mut out = vec![0.0; 8];
        for oy in 0..2 {
            for ox in 0..2 {
                let (mut chroma, mut lum) = (0.0, 0.0);
                for y in oy * 2..oy * 2 + 2 {
                    for x in ox * 2..ox * 2 + 2 {
                        chroma += px(0, y, x) - px(1, y, x);
                        lum += (px(0, y, x) + px(1, y, x) + px(2, y, x)) / 3.0;
                    }
                }
                out[oy * 2 + ox] = (chroma / 4.0).max(0.0);
                out[4 + oy * 2 + ox] = lum / 4.0;
            }
        }
        out
    }

    fn each(
        batch: TensorRef<'_>,
        maps: bool,
        layers: &[String],
    ) -> Result<ActivationSet, PluginError> {
        let b = match batch.shape() {
            [b, 3, 4, 4] => *b,
            s => return Err(PluginError::invalid_argument(format!("shape {s:?}"))),
        };
        let (mut conv, mut logits) = (Vec::new(), Vec::new());
        for i in 0..b {
            let m = Tiny::maps(&batch.data()[i * 48..(i + 1) * 48]);
            let pooled = pool_map(LayerKind::Conv, &[2, 2, 2], &m, Pooling::default())?;
            logits.extend_from_slice(&pooled);
            conv.extend(if maps { m } else { pooled });
        }
        let shape = if maps { vec![b, 2, 2, 2] } else { vec![b, 2] };
        let mut out = Vec::new();
        for name in layers {
            let tensor = match name.as_str() {
                "conv" => Tensor::new(shape.clone(), conv.clone())?,
                "logits" => Tensor::new(vec![b, 2], logits.clone())?,
                other => return Err(PluginError::not_found(format!("layer {other}"))),
            };
            out.push(NamedTensor {
                name: name.clone(),
                tensor,
            });
        }
        Ok(ActivationSet {
            layers: out,
            logits: Tensor::new(vec![b, 2], logits)?,
        })
    }
}

impl ModelAdapter for Tiny {
    fn describe(&mut self) -> Result<ModelDescription, PluginError> {
        let layer = |name: &str, kind, shape: Vec<usize>, field| LayerInfo {
            name: name.into(),
            op: "Tiny".into(),
            kind,
            neurons: 2,
            shape,
            default_selected: true,
            role: String::new(),
            receptive_field: field,
            aliases: Vec::new(),
        };
        Ok(ModelDescription {
            inputs: vec![InputSpec {
                name: "image".into(),
                shape: vec![None, Some(3), Some(4), Some(4)],
            }],
            layers: vec![
                layer(
                    "conv",
                    LayerKind::Conv,
                    vec![2, 2, 2],
                    Some(ReceptiveField {
                        size: [2, 2],
                        jump: [2, 2],
                        offset: [0, 0],
                    }),
                ),
                layer("logits", LayerKind::Logits, vec![2], None),
            ],
            class_names: vec!["red".into(), "bright".into()],
            num_classes: 2,
            notes: vec![],
            data_files: vec![],
        })
    }

    fn run(
        &mut self,
        batch: TensorRef<'_>,
        layers: &[String],
        _pooling: Pooling,
    ) -> Result<ActivationSet, PluginError> {
        Tiny::each(batch, false, layers)
    }

    fn run_maps(
        &mut self,
        image: TensorRef<'_>,
        layers: &[String],
    ) -> Result<ActivationSet, PluginError> {
        Tiny::each(image, true, layers)
    }
}

impl ModelAdapterPlugin for Tiny {
    const NAME: &'static str = "tiny";
    const VERSION: &'static str = "0";
    fn create(_config: &str) -> Result<Self, PluginError> {
        Ok(Tiny)
    }
}

struct Squares;

const BLACK: [u8; 3] = [0, 0, 0];

fn square(colour: [u8; 3], top: usize, left: usize) -> Sample {
    let mut pixels = Vec::new();
    for y in 0..4 {
        for x in 0..4 {
            let inside = (top..top + 2).contains(&y) && (left..left + 2).contains(&x);
            pixels.extend_from_slice(&if inside { colour } else { BLACK });
        }
    }
    Sample {
        width: 4,
        height: 4,
        label: 0,
        pixels,
    }
}

impl Dataset for Squares {
    fn len(&self) -> usize {
        3
    }
    fn classes(&self) -> &[String] {
        static CLASSES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        CLASSES.get_or_init(|| vec!["red".into(), "bright".into()])
    }
    fn get(&self, index: usize) -> Result<Sample, PluginError> {
        match index {
            0 => Ok(square([255, 0, 0], 0, 0)),
            1 => Ok(square([0, 255, 0], 2, 2)),
            2 => Ok(square([255, 255, 255], 0, 2)),
            i => Err(PluginError::out_of_range(format!("image {i}"))),
        }
    }
}

impl DatasetSource for Squares {
    fn catalog(&self) -> Result<Vec<DatasetInfo>, PluginError> {
        Ok(vec![DatasetInfo {
            name: "squares/id".into(),
            family: "id".into(),
            description: "three squares".into(),
            params: vec![],
        }])
    }
    fn open(&self, _name: &str) -> Result<Box<dyn Dataset>, PluginError> {
        Ok(Box::new(Squares))
    }
}

impl DatasetSourcePlugin for Squares {
    const NAME: &'static str = "squares";
    const VERSION: &'static str = "0";
    fn create(_config: &str) -> Result<Self, PluginError> {
        Ok(Squares)
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add(Plugin::builtin_model::<Tiny>()).unwrap();
    r.add(Plugin::builtin_dataset::<Squares>()).unwrap();
    r
}

fn record(dir: &Path, registry: &Registry) -> std::path::PathBuf {
    let study = dir.join("study.ron");
    std::fs::write(
        &study,
        r#"(
    store: "store",
    model: (
        adapter: "tiny",
        options: "",
        preprocessing: (resize: None, crop: None, mean: (0.0, 0.0, 0.0), std: (1.0, 1.0, 1.0)),
    ),
    datasets: [(name: "squares/id")],
    recording: (batch_size: 2, readers: 1, thumb: 4, commit_seconds: 0),
)"#,
    )
    .unwrap();
    let config = shiftscope_runtime::StudyConfig::load(&study).unwrap();
    shiftscope_runtime::extract(&config, registry, None).unwrap();
    dir.join("store")
}

fn close(a: Option<f32>, b: f32) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-4)
}

#[test]
fn csi_and_nf_of_a_tiny_model_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry();
    let root = record(dir.path(), &registry);
    let store = Store::open(&root).unwrap();
    let layer = store
        .manifest()
        .layers
        .iter()
        .position(|l| l.name == "conv")
        .unwrap();
    let mut model = FeatureModel::open(&root, &store, &registry, None).unwrap();
    let images = open_dataset(&root, &store, &registry, 0).unwrap();
    let mut calls = Vec::new();
    let f = compute(
        &root,
        &store,
        &mut model,
        images.as_ref(),
        layer,
        0,
        DEFAULT_TOP,
        &mut |done, total| calls.push((done, total)),
    )
    .unwrap();
    // Every image is some neuron's top image: three runs, reported in order.
    assert_eq!(calls, [(1, 3), (2, 3), (3, 3)]);

    // Channel 0 (red − green): only image 0 responds, a = 1/4 (one window of 1). Its grey
    // version has R = G everywhere, so a' = 0: CSI = 1 − 0/(1/4) = 1; clipped 1.
    assert_eq!(f.images, [1, 3]);
    assert!(close(f.csi[0], 1.0), "{:?}", f.csi);
    assert!(close(f.csi_clipped[0], 1.0), "{:?}", f.csi_clipped);

    // Channel 1 (luminance): a = 1/4 (white), 1/12 (red), 1/12 (green). White stays white.
    // Red on black: in opponent space the 4 red pixels sit at d = (2/3, 1, 1/2) from the 12
    // black ones (−1, 0, 0); the first component is d/|d|, |d| = 1.30171, the mean is black
    // + d/4, so red projects to 0.75·|d| = 0.97628 and O1' = −5/6 + 0.97628 = 0.14295:
    // grey (0.14295 + 1)/2 = 0.571474; black projects below −1 and clamps to 0. Green is the
    // mirror image (d = (2/3, −1, 1/2)). So a' = 0.571474/4 = 0.142868 for both.
    // CSI = 1 − (1/4 + 2·0.142868)/(1/4 + 2/12) = −0.285769; clipped: each a'/a ≥ 1 → 0.
    assert!(close(f.csi[1], -0.285769), "{:?}", f.csi);
    assert!(close(f.csi_clipped[1], 0.0), "{:?}", f.csi_clipped);

    // Neuron Features: 2×2 crops at the argmax window.
    assert_eq!(f.nf_size, [2, 2]);
    assert_eq!(
        f.receptive_field.map(|r| (r.size, r.jump, r.offset)),
        Some(([2, 2], [2, 2], [0, 0]))
    );
    // Channel 0: image 0's top-left window, all red.
    assert_eq!(
        f.feature_bytes(0).unwrap(),
        [255, 0, 0].repeat(4).as_slice()
    );
    // Channel 1: weights 1/4, 1/12, 1/12 → 0.6 white + 0.2 red + 0.2 green
    // = (0.8, 0.8, 0.6) → (204, 204, 153).
    assert_eq!(
        f.feature_bytes(1).unwrap(),
        [204, 204, 153].repeat(4).as_slice()
    );

    // The cache: written, read back equal, listed for the layer, keyed by N.
    let path = f.save(&root).unwrap();
    assert!(
        path.starts_with(root.join("analysis")),
        "{}",
        path.display()
    );
    let back = LayerFeatures::load(&store, &root, layer, 0, DEFAULT_TOP).unwrap();
    assert_eq!(back, f);
    assert!(LayerFeatures::load(&store, &root, layer, 0, 5).is_none());
    assert_eq!(LayerFeatures::cached(&store, &root, layer), vec![f.clone()]);
    // A damaged file is ignored, not an error.
    std::fs::write(&path, b"SSFEAT1\nxx").unwrap();
    assert!(LayerFeatures::load(&store, &root, layer, 0, DEFAULT_TOP).is_none());
    assert!(LayerFeatures::read(&path).is_err());

    // The logits layer has no receptive field: whole images, with a note.
    let logits = store
        .manifest()
        .layers
        .iter()
        .position(|l| l.name == "logits")
        .unwrap();
    let whole = compute(
        &root,
        &store,
        &mut model,
        images.as_ref(),
        logits,
        0,
        2,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(whole.nf_size, [4, 4]);
    assert_eq!(whole.receptive_field, None);
    assert!(
        whole.notes.iter().any(|n| n.contains("whole images")),
        "{:?}",
        whole.notes
    );
    // Logit 0 = conv channel 0 pooled: same CSI.
    assert!(close(whole.csi[0], 1.0));
    // Top 2 only for logit 1: white (1/4) and red (1/12, the lower row of the tie):
    // CSI = 1 − (1/4 + 0.142868)/(1/4 + 1/12) = −0.178604.
    assert_eq!(whole.images, [1, 2]);
    assert!(close(whole.csi[1], -0.178604), "{:?}", whole.csi);
}
