//! Conformance of model adapters.

use shiftscope_host::checked::check_description;
use shiftscope_sdk::rng::SplitMix64;
use shiftscope_sdk::{
    ActivationSet, ConvPooling, ModelAdapter, ModelDescription, Pooling, Tensor, TokenPooling,
    pool_map,
};

use crate::Conformance;

/// Relative tolerance for values that must agree across calls that compute them differently
/// (batch of one vs batch of two, pooled vs pooled-by-hand).
const TOLERANCE: f32 = 1e-4;

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= TOLERANCE * (1.0 + x.abs().max(y.abs())))
}

/// A deterministic batch for the model's first input, with the batch axis set to `batch`.
fn input(description: &ModelDescription, batch: usize) -> Result<Tensor, String> {
    let spec = description
        .inputs
        .first()
        .ok_or_else(|| "the model has no input".to_owned())?;
    let mut shape = vec![batch];
    for (axis, dim) in spec.shape.iter().enumerate().skip(1) {
        shape.push(dim.ok_or_else(|| format!("input axis {axis} has no fixed size"))?);
    }
    let n: usize = shape.iter().product();
    let mut rng = SplitMix64::new(42);
    Tensor::new(shape, (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()).map_err(|e| e.to_string())
}

/// The rows of `tensor` from `start`, `count` images long.
fn rows(tensor: &Tensor, start: usize, count: usize) -> &[f32] {
    let per: usize = tensor.shape().iter().skip(1).product();
    &tensor.data()[start * per..(start + count) * per]
}

/// Checks a model adapter against the contract; see the crate docs for the list.
pub fn check_model_adapter(model: &mut dyn ModelAdapter) -> Conformance {
    let mut report = Conformance::default();
    let description = match model.describe() {
        Ok(d) => d,
        Err(e) => {
            report.check(false, || format!("describe failed: {e}"));
            return report;
        }
    };
    if let Err(problem) = check_description(&description) {
        report.check(false, || format!("describe: {problem}"));
        return report;
    }
    report.check(model.describe().ok().as_ref() == Some(&description), || {
        "describe is not deterministic".to_owned()
    });
    let (batch, single) = match (input(&description, 2), input(&description, 1)) {
        (Ok(b), Ok(s)) => (b, s),
        (Err(e), _) | (_, Err(e)) => {
            report.check(false, || format!("cannot build an input: {e}"));
            return report;
        }
    };
    let names: Vec<String> = description.layers.iter().map(|l| l.name.clone()).collect();
    let first_image = Tensor::new(single.shape().to_vec(), rows(&batch, 0, 1).to_vec());
    let Ok(first_image) = first_image else {
        report.check(false, || "cannot slice the first image".to_owned());
        return report;
    };

    let mean = Pooling::default();
    let max = Pooling {
        conv: ConvPooling::Max,
        tokens: TokenPooling::Max,
    };
    let run = |model: &mut dyn ModelAdapter, t: &Tensor, layers: &[String], p| {
        model.run(t.view(), layers, p)
    };
    match run(model, &batch, &names, mean) {
        Ok(set) => {
            check_run_shapes(&mut report, &description, &set, &names, 2);
            let again = run(model, &batch, &names, mean);
            report.check(again.as_ref().ok() == Some(&set), || {
                "run is not deterministic".to_owned()
            });
            match run(model, &first_image, &names, mean) {
                Ok(alone) => {
                    let same = close(rows(&alone.logits, 0, 1), rows(&set.logits, 0, 1))
                        && alone
                            .layers
                            .iter()
                            .zip(&set.layers)
                            .all(|(a, b)| close(rows(&a.tensor, 0, 1), rows(&b.tensor, 0, 1)));
                    report.check(same, || {
                        "an image alone gives other values than in a batch of two".to_owned()
                    });
                }
                Err(e) => {
                    report.check(false, || format!("run on a batch of one failed: {e}"));
                }
            }
            match run(model, &batch, &[], mean) {
                Ok(bare) => {
                    // Close, not equal: recording layers may change which fusions run.
                    let same = bare.layers.is_empty()
                        && bare.logits.shape() == set.logits.shape()
                        && close(bare.logits.data(), set.logits.data());
                    report.check(same, || {
                        "run with no layers must return the same logits and no layers".to_owned()
                    });
                }
                Err(e) => {
                    report.check(false, || format!("run with no layers failed: {e}"));
                }
            }
            check_maps(&mut report, model, &description, &first_image, &names, &set);
            if let Ok(max_set) = run(model, &first_image, &names, max) {
                check_pooling_of_maps(
                    &mut report,
                    model,
                    &description,
                    &first_image,
                    &max_set,
                    max,
                );
            } else {
                report.check(false, || "run with max pooling failed".to_owned());
            }
        }
        Err(e) => {
            report.check(false, || format!("run on a batch of two failed: {e}"));
        }
    }

    crate::gradient::check_gradient(&mut report, model, &description, &batch, &first_image);

    let unknown = run(model, &batch, &["no-such-layer".to_owned()], mean);
    report.check(unknown.is_err(), || {
        "run accepted an unknown layer".to_owned()
    });
    let mut wrong_shape = batch.shape().to_vec();
    if let Some(axis) = wrong_shape.get_mut(1) {
        *axis += 1;
    }
    let n: usize = wrong_shape.iter().product();
    if let Ok(wrong) = Tensor::new(wrong_shape.clone(), vec![0.0; n]) {
        report.check(run(model, &wrong, &names, mean).is_err(), || {
            format!("run accepted an input of shape {wrong_shape:?}")
        });
    }
    report.check(model.run_maps(batch.view(), &names).is_err(), || {
        "run_maps accepted a batch of two images".to_owned()
    });
    if let Some(n) = model.outstanding_outputs() {
        report.check(n == 0, || format!("{n} outputs were never released"));
    }
    report
}

fn check_run_shapes(
    report: &mut Conformance,
    description: &ModelDescription,
    set: &ActivationSet,
    names: &[String],
    batch: usize,
) {
    report.check(
        set.logits.shape() == [batch, description.num_classes],
        || {
            format!(
                "run: logits of shape {:?}, expected [{batch}, {}]",
                set.logits.shape(),
                description.num_classes
            )
        },
    );
    report.check(set.layers.len() == names.len(), || {
        format!(
            "run: {} layers returned for {} asked",
            set.layers.len(),
            names.len()
        )
    });
    for (got, info) in set.layers.iter().zip(&description.layers) {
        report.check(got.name == info.name, || {
            format!(
                "run: layer '{}' returned where '{}' was asked",
                got.name, info.name
            )
        });
        report.check(got.tensor.shape() == [batch, info.neurons], || {
            format!(
                "run: layer '{}' of shape {:?}, expected [{batch}, {}]",
                info.name,
                got.tensor.shape(),
                info.neurons
            )
        });
        report.check(got.tensor.data().iter().all(|v| v.is_finite()), || {
            format!(
                "run: layer '{}' has non-finite values on a plain input",
                info.name
            )
        });
    }
}

fn check_maps(
    report: &mut Conformance,
    model: &mut dyn ModelAdapter,
    description: &ModelDescription,
    image: &Tensor,
    names: &[String],
    pooled_batch: &ActivationSet,
) {
    let maps = match model.run_maps(image.view(), names) {
        Ok(maps) => maps,
        Err(e) => {
            report.check(false, || format!("run_maps failed: {e}"));
            return;
        }
    };
    report.check(maps.layers.len() == names.len(), || {
        format!(
            "run_maps: {} maps for {} layers",
            maps.layers.len(),
            names.len()
        )
    });
    for (map, info) in maps.layers.iter().zip(&description.layers) {
        let mut expected = vec![1];
        expected.extend(&info.shape);
        report.check(map.tensor.shape() == expected.as_slice(), || {
            format!(
                "run_maps: layer '{}' of shape {:?}, expected {expected:?}",
                info.name,
                map.tensor.shape()
            )
        });
    }
    report.check(
        close(maps.logits.data(), rows(&pooled_batch.logits, 0, 1)),
        || "run_maps logits differ from run's".to_owned(),
    );
    compare_pooled(report, description, &maps, pooled_batch, Pooling::default());
}

fn check_pooling_of_maps(
    report: &mut Conformance,
    model: &mut dyn ModelAdapter,
    description: &ModelDescription,
    image: &Tensor,
    pooled: &ActivationSet,
    pooling: Pooling,
) {
    let names: Vec<String> = pooled.layers.iter().map(|l| l.name.clone()).collect();
    match model.run_maps(image.view(), &names) {
        Ok(maps) => compare_pooled(report, description, &maps, pooled, pooling),
        Err(e) => {
            report.check(false, || format!("run_maps failed: {e}"));
        }
    }
}

/// Pooling each full map by hand must give what `run` returned for the first image.
fn compare_pooled(
    report: &mut Conformance,
    description: &ModelDescription,
    maps: &ActivationSet,
    pooled: &ActivationSet,
    pooling: Pooling,
) {
    for (map, row) in maps.layers.iter().zip(&pooled.layers) {
        let Some(info) = description.layer(&map.name) else {
            continue;
        };
        match pool_map(info.kind, &info.shape, map.tensor.data(), pooling) {
            Ok(by_hand) => {
                report.check(close(&by_hand, rows(&row.tensor, 0, 1)), || {
                    format!(
                        "layer '{}': run's {pooling:?} pooling differs from pooling run_maps' map",
                        info.name
                    )
                });
            }
            Err(e) => {
                report.check(false, || format!("layer '{}': {e}", info.name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiftscope_sdk::{InputSpec, LayerInfo, LayerKind, NamedTensor, PluginError, TensorRef};

    /// A model that breaks two promises: logits one class short, and `run_maps` accepts
    /// batches.
    struct Broken;

    impl ModelAdapter for Broken {
        fn describe(&mut self) -> Result<ModelDescription, PluginError> {
            Ok(ModelDescription {
                inputs: vec![InputSpec {
                    name: "x".into(),
                    shape: vec![None, Some(2)],
                }],
                layers: vec![LayerInfo {
                    name: "h".into(),
                    op: "Relu".into(),
                    kind: LayerKind::Dense,
                    shape: vec![2],
                    neurons: 2,
                    default_selected: true,
                    role: "activation".into(),
                    receptive_field: None,
                    aliases: Vec::new(),
                }],
                class_names: vec![],
                num_classes: 3,
                notes: vec![],
                data_files: vec![],
            })
        }

        fn run(
            &mut self,
            batch: TensorRef<'_>,
            layers: &[String],
            _: Pooling,
        ) -> Result<ActivationSet, PluginError> {
            if batch.shape()[1] != 2 || layers.iter().any(|l| l != "h") {
                return Err(PluginError::invalid_argument("bad"));
            }
            let b = batch.shape()[0];
            Ok(ActivationSet {
                layers: layers
                    .iter()
                    .map(|l| NamedTensor {
                        name: l.clone(),
                        tensor: batch.to_owned(),
                    })
                    .collect(),
                logits: Tensor::zeros(vec![b, 2])?,
            })
        }

        fn run_maps(
            &mut self,
            image: TensorRef<'_>,
            layers: &[String],
        ) -> Result<ActivationSet, PluginError> {
            self.run(image, layers, Pooling::default())
        }
    }

    #[test]
    fn the_suite_catches_a_broken_model() {
        let report = check_model_adapter(&mut Broken);
        assert!(!report.passed());
        let all = report.violations.join("\n");
        assert!(
            all.contains("logits of shape [2, 2], expected [2, 3]"),
            "{all}"
        );
        assert!(all.contains("run_maps accepted a batch"), "{all}");
    }
}
