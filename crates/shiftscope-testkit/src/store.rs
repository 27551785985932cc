//! Synthetic activation stores for tests and benchmarks: real stores (the same `.npy` files
//! and manifest `shiftscope extract` writes), filled with deterministic ReLU-like
//! activations that carry a class effect, so every score has something to find.

use std::collections::BTreeMap;
use std::path::Path;

use shiftscope_sdk::rng::SplitMix64;
use shiftscope_store::{
    LayerEntry, Manifest, ModelEntry, Precision, Role, StoreError, StoreWriter,
};

/// One layer of a [`SyntheticStore`].
#[derive(Clone, Debug)]
pub struct SyntheticLayer {
    /// Layer name.
    pub name: String,
    /// `conv`, `dense`, `tokens` or `logits`.
    pub kind: String,
    /// Neurons.
    pub neurons: usize,
}

/// One dataset of a [`SyntheticStore`].
#[derive(Clone, Debug)]
pub struct SyntheticDataset {
    /// Dataset name.
    pub name: String,
    /// ID or OOD.
    pub role: Role,
    /// Images.
    pub images: usize,
}

/// What to write: layers, classes, datasets, thumbnail size and a seed.
///
/// Activations of neuron `j` for an image of class `y` in dataset `d` are
/// `max(0, noise + 0.4·effect_d[y, j] + 0.2·d)`, `noise` in (−1, 1) and `effect_d` uniform in
/// (−1, 1) per dataset, so each OOD set changes the class profiles; the logits favour the
/// label by 3 (less on OOD sets); thumbnails are flat colours per class.
#[derive(Clone, Debug)]
pub struct SyntheticStore {
    /// Layers in network order.
    pub layers: Vec<SyntheticLayer>,
    /// Number of classes.
    pub classes: usize,
    /// Datasets, the ID set first.
    pub datasets: Vec<SyntheticDataset>,
    /// Thumbnail side in pixels.
    pub thumb: usize,
    /// Seed of every draw.
    pub seed: u64,
}

impl SyntheticStore {
    /// One dense layer per `(name, neurons)`, an ID set and one OOD set of `images` each.
    pub fn dense(layers: &[(&str, usize)], classes: usize, images: usize) -> SyntheticStore {
        SyntheticStore {
            layers: layers
                .iter()
                .map(|&(name, neurons)| SyntheticLayer {
                    name: name.to_owned(),
                    kind: "dense".to_owned(),
                    neurons,
                })
                .collect(),
            classes,
            datasets: vec![
                SyntheticDataset {
                    name: "synthetic/id".to_owned(),
                    role: Role::Id,
                    images,
                },
                SyntheticDataset {
                    name: "synthetic/ood".to_owned(),
                    role: Role::Ood,
                    images,
                },
            ],
            thumb: 8,
            seed: 1,
        }
    }

    /// Writes the store to `root` (which must not hold one already).
    pub fn write(&self, root: &Path) -> Result<(), StoreError> {
        let manifest = Manifest {
            schema_version: shiftscope_store::SCHEMA_VERSION,
            tool_version: "synthetic".into(),
            created_unix: 0,
            model: ModelEntry {
                path: "synthetic".into(),
                sha256: "00".into(),
                adapter: "synthetic".into(),
                preprocessing: serde_json::json!({}),
                input_shape: vec![None, Some(3), Some(self.thumb), Some(self.thumb)],
            },
            layers: self
                .layers
                .iter()
                .map(|l| LayerEntry {
                    id: String::new(),
                    name: l.name.clone(),
                    op: "Relu".into(),
                    kind: l.kind.clone(),
                    neurons: l.neurons,
                    pooling: "mean".into(),
                })
                .collect(),
            classes: (0..self.classes).map(|i| format!("class{i}")).collect(),
            thumb: self.thumb,
            precision: Precision::F32,
            datasets: vec![],
            shard: None,
        };
        let k = self.classes.max(1);
        let t = self.thumb;
        let mut store = StoreWriter::create(root, manifest)?;
        for (d, dataset) in self.datasets.iter().enumerate() {
            let mut rng = SplitMix64::new(self.seed ^ (0x9E37_79B9 * (d as u64 + 1)));
            let effects: Vec<Vec<f32>> = self
                .layers
                .iter()
                .map(|l| (0..k * l.neurons).map(|_| rng.uniform(-1.0, 1.0)).collect())
                .collect();
            let n = dataset.images;
            let mut writer =
                store.dataset(&dataset.name, "synthetic", BTreeMap::new(), dataset.role, n)?;
            let chunk = 1024;
            let mut start = 0;
            while start < n {
                let rows = chunk.min(n - start);
                let labels: Vec<i32> = (0..rows).map(|i| ((start + i) % k) as i32).collect();
                let mut layers: Vec<Vec<f32>> = self
                    .layers
                    .iter()
                    .map(|l| Vec::with_capacity(rows * l.neurons))
                    .collect();
                let mut logits = Vec::with_capacity(rows * k);
                let mut thumbs = Vec::with_capacity(rows * t * t * 3);
                for &y in &labels {
                    let y = y as usize;
                    for (values, (layer, effect)) in
                        layers.iter_mut().zip(self.layers.iter().zip(&effects))
                    {
                        for &e in &effect[y * layer.neurons..(y + 1) * layer.neurons] {
                            let noise = rng.uniform(-1.0, 1.0);
                            values.push((noise + 0.4 * e + 0.2 * d as f32).max(0.0));
                        }
                    }
                    for j in 0..k {
                        let bonus = if j == y { 3.0 } else { 0.0 };
                        logits
                            .push(rng.uniform(0.0, 4.0) + bonus - d as f32 * rng.uniform(0.0, 1.0));
                    }
                    let colour = [(y * 67) % 256, (y * 131 + 40) % 256, (y * 29 + 90) % 256];
                    for _ in 0..t * t {
                        thumbs.extend(colour.iter().map(|&c| c as u8));
                    }
                }
                let refs: Vec<&[f32]> = layers.iter().map(Vec::as_slice).collect();
                writer.write_rows(start, &labels, &logits, &thumbs, &refs)?;
                start += rows;
            }
            writer.commit(n)?;
            writer.finish(&mut store)?;
        }
        Ok(())
    }
}
