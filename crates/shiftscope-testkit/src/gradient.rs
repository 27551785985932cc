//! Conformance of a model adapter's optional gradient capability.

use shiftscope_sdk::rng::SplitMix64;
use shiftscope_sdk::{
    ErrorKind, Gradient, GradientRequest, LayerInfo, LayerKind, ModelAdapter, ModelDescription,
    Objective, Pooling, Tensor, objective_seed,
};

use crate::Conformance;

/// Relative tolerance between two computations of the same gradient (batch of one vs two,
/// pooled vs the equivalent map weights).
const TOLERANCE: f32 = 1e-4;

/// Whether `a` and `b` agree element by element, relative to the largest magnitude of `b`.
fn close(a: &[f32], b: &[f32]) -> bool {
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= TOLERANCE * scale.max(1.0))
}

fn random(shape: Vec<usize>, seed: u64) -> Option<Tensor> {
    let mut rng = SplitMix64::new(seed);
    let n = shape.iter().product();
    Tensor::new(shape, (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()).ok()
}

/// The layers a gradient is checked on: the logits and the first spatial (or token) layer.
fn targets(description: &ModelDescription) -> Vec<&LayerInfo> {
    let logits = description
        .layers
        .iter()
        .find(|l| l.kind == LayerKind::Logits);
    let middle = description
        .layers
        .iter()
        .find(|l| matches!(l.kind, LayerKind::Conv | LayerKind::Tokens))
        .or_else(|| description.layers.first());
    let mut chosen: Vec<&LayerInfo> = logits.into_iter().chain(middle).collect();
    chosen.dedup_by(|a, b| a.name == b.name);
    chosen
}

/// Checks `gradient` on `batch` (two images; `first` the first alone): an adapter that says
/// it computes none ([`ErrorKind::Unsupported`] with a message) passes with that one check.
pub(crate) fn check_gradient(
    report: &mut Conformance,
    model: &mut dyn ModelAdapter,
    description: &ModelDescription,
    batch: &Tensor,
    first: &Tensor,
) {
    let layers = targets(description);
    let Some(&probe) = layers.first() else {
        return;
    };
    let n = batch.shape()[0];
    let Some(w) = random(Objective::Pooled.weights_shape(probe, n), 7) else {
        report.check(false, || "cannot build gradient weights".to_owned());
        return;
    };
    match model.gradient(
        batch.view(),
        &GradientRequest::pooled(&probe.name, w.view()),
    ) {
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            report.check(!e.to_string().is_empty(), || {
                "gradient is unsupported without saying why".to_owned()
            });
            return;
        }
        Err(e) => {
            report.check(false, || {
                format!("gradient on '{}' failed: {e}", probe.name)
            });
            return;
        }
        Ok(_) => {}
    }
    for (i, layer) in layers.into_iter().enumerate() {
        check_layer(report, model, layer, batch, first, 100 + 10 * i as u64);
    }
    let unknown = model.gradient(
        batch.view(),
        &GradientRequest::pooled("no-such-layer", w.view()),
    );
    report.check(unknown.is_err(), || {
        "gradient accepted an unknown layer".to_owned()
    });
    if let Some(short) = random(vec![n, probe.neurons + 1], 8) {
        let wrong = model.gradient(
            batch.view(),
            &GradientRequest::pooled(&probe.name, short.view()),
        );
        report.check(wrong.is_err(), || {
            format!(
                "gradient accepted weights {:?} for a layer of {} neurons",
                short.shape(),
                probe.neurons
            )
        });
    }
}

/// The gradient's promises on one layer.
fn check_layer(
    report: &mut Conformance,
    model: &mut dyn ModelAdapter,
    layer: &LayerInfo,
    batch: &Tensor,
    first: &Tensor,
    seed: u64,
) {
    let name = layer.name.as_str();
    let n = batch.shape()[0];
    let Some(w) = random(Objective::Pooled.weights_shape(layer, n), seed) else {
        return;
    };
    let request = GradientRequest::pooled(name, w.view());
    let got = match model.gradient(batch.view(), &request) {
        Ok(g) => g,
        Err(e) => {
            report.check(false, || format!("gradient on '{name}' failed: {e}"));
            return;
        }
    };
    let shapes = got.objective.shape() == [n] && got.input.shape() == batch.shape();
    if !report.check(shapes, || {
        format!(
            "gradient on '{name}': objective {:?} and input gradient {:?} for a batch {:?}",
            got.objective.shape(),
            got.input.shape(),
            batch.shape()
        )
    }) {
        return;
    }
    report.check(
        got.input.data().iter().all(|g| g.is_finite())
            && got.input.data().iter().any(|g| *g != 0.0),
        || format!("gradient on '{name}' is not finite or is zero everywhere"),
    );
    let again = model.gradient(batch.view(), &request);
    report.check(again.as_ref().ok() == Some(&got), || {
        format!("gradient on '{name}' is not deterministic")
    });

    // The objective is Σ w·pool(a), pool as `run` pools by default.
    match model.run(batch.view(), &[name.to_owned()], Pooling::default()) {
        Ok(set) => {
            let pooled = &set.layers[0].tensor;
            let want: Vec<f32> = pooled
                .data()
                .chunks(layer.neurons)
                .zip(w.data().chunks(layer.neurons))
                .map(|(a, w)| a.iter().zip(w).map(|(a, w)| a * w).sum())
                .collect();
            report.check(close(got.objective.data(), &want), || {
                format!(
                    "gradient on '{name}': objective {:?}, but Σ w·run is {want:?}",
                    got.objective.data()
                )
            });
        }
        Err(e) => {
            report.check(false, || format!("run of '{name}' failed: {e}"));
        }
    }

    // The first image alone: the same objective and gradient as in the batch.
    let per_w = layer.neurons;
    if let Ok(w1) = Tensor::new(vec![1, per_w], w.data()[..per_w].to_vec()) {
        let alone = model.gradient(first.view(), &GradientRequest::pooled(name, w1.view()));
        let per_image = first.data().len();
        let same = alone.as_ref().is_ok_and(|a| {
            close(a.input.data(), &got.input.data()[..per_image])
                && close(a.objective.data(), &got.objective.data()[..1])
        });
        report.check(same, || {
            format!("gradient on '{name}': an image alone differs from the same image in a batch")
        });
    }

    check_directional(
        report,
        model,
        layer,
        first,
        Objective::Pooled,
        &w.data()[..per_w],
        seed,
    );
    let size: usize = layer.shape.iter().product();
    if let Some(map_w) = random(vec![size], seed + 2) {
        check_directional(
            report,
            model,
            layer,
            first,
            Objective::Map,
            map_w.data(),
            seed,
        );
    }
    check_directional(
        report,
        model,
        layer,
        first,
        Objective::SquaredNorm,
        &[0.5],
        seed,
    );
    check_map_and_norm(report, model, layer, batch, &w, &got);
}

/// Central differences along a random direction: (f(x + εv) − f(x − εv)) / 2ε = ∇f·v, for
/// `objective` with the per-image weights `w`.
fn check_directional(
    report: &mut Conformance,
    model: &mut dyn ModelAdapter,
    layer: &LayerInfo,
    first: &Tensor,
    objective: Objective,
    w: &[f32],
    seed: u64,
) {
    let name = layer.name.as_str();
    let Some(v) = random(first.shape().to_vec(), seed + 1) else {
        return;
    };
    let eps = 1e-3f32;
    let mut pair = Vec::with_capacity(2 * first.data().len());
    for sign in [1.0f32, -1.0] {
        pair.extend(
            first
                .data()
                .iter()
                .zip(v.data())
                .map(|(x, d)| x + sign * eps * d),
        );
    }
    let mut shape = first.shape().to_vec();
    shape[0] = 2;
    let (Ok(pair), Ok(w2), Ok(w1)) = (
        Tensor::new(shape, pair),
        Tensor::new(objective.weights_shape(layer, 2), [w, w].concat()),
        Tensor::new(objective.weights_shape(layer, 1), w.to_vec()),
    ) else {
        report.check(false, || {
            format!("cannot build {} weights for '{name}'", objective.as_str())
        });
        return;
    };
    let request = |weights| GradientRequest {
        layer: name,
        objective,
        weights,
        maps: &[],
    };
    let ends = model.gradient(pair.view(), &request(w2.view()));
    let at = model.gradient(first.view(), &request(w1.view()));
    let (Ok(ends), Ok(at)) = (ends, at) else {
        report.check(false, || {
            format!(
                "{} gradient on '{name}' failed near the first image",
                objective.as_str()
            )
        });
        return;
    };
    let f = ends.objective.data();
    let fd = (f64::from(f[0]) - f64::from(f[1])) / (2.0 * f64::from(eps));
    let dot: f64 = at
        .input
        .data()
        .iter()
        .zip(v.data())
        .map(|(g, d)| f64::from(*g) * f64::from(*d))
        .sum();
    let value = f64::from(at.objective.data()[0]).abs();
    let ok = (fd - dot).abs() <= 0.05 * fd.abs().max(dot.abs()) + 1e-3 * (1.0 + value);
    report.check(ok, || {
        format!(
            "{} gradient on '{name}': along a random direction it predicts {dot:.6}, central \
             differences give {fd:.6}",
            objective.as_str()
        )
    });
}

/// The map objective with weights `w/(pool size)` everywhere equals the pooled one; the
/// squared norm's value is w·Σa² of `run_maps`, and the maps asked for are `run_maps`' maps.
fn check_map_and_norm(
    report: &mut Conformance,
    model: &mut dyn ModelAdapter,
    layer: &LayerInfo,
    batch: &Tensor,
    w: &Tensor,
    pooled: &Gradient,
) {
    let name = layer.name.as_str();
    let n = batch.shape()[0];
    let size: usize = layer.shape.iter().product();
    let zeros = vec![0.0; size];
    let mut map_w = Vec::with_capacity(n * size);
    for row in w.data().chunks(layer.neurons) {
        match objective_seed(layer.kind, &layer.shape, Objective::Pooled, row, &zeros) {
            Ok((_, seed)) => map_w.extend(seed),
            Err(e) => {
                report.check(false, || format!("map weights for '{name}': {e}"));
                return;
            }
        }
    }
    let Ok(map_w) = Tensor::new(Objective::Map.weights_shape(layer, n), map_w) else {
        return;
    };
    let request = GradientRequest {
        layer: name,
        objective: Objective::Map,
        weights: map_w.view(),
        maps: &[],
    };
    let same = model.gradient(batch.view(), &request).is_ok_and(|m| {
        close(m.input.data(), pooled.input.data())
            && close(m.objective.data(), pooled.objective.data())
    });
    report.check(same, || {
        format!("gradient on '{name}': the map objective with pooling's weights differs from the pooled one")
    });

    let Some(image) = batch.data().get(..batch.data().len() / n.max(1)) else {
        return;
    };
    let mut one = batch.shape().to_vec();
    one[0] = 1;
    let (Ok(image), Ok(half)) = (
        Tensor::new(one, image.to_vec()),
        Tensor::new(vec![1], vec![0.5]),
    ) else {
        return;
    };
    let maps = [name.to_owned()];
    let request = GradientRequest {
        layer: name,
        objective: Objective::SquaredNorm,
        weights: half.view(),
        maps: &maps,
    };
    let norm = model.gradient(image.view(), &request);
    let full = model.run_maps(image.view(), &maps);
    match (norm, full) {
        (Ok(norm), Ok(full)) => {
            let a = full.layers[0].tensor.data();
            let want = 0.5 * a.iter().map(|x| x * x).sum::<f32>();
            report.check(close(norm.objective.data(), &[want]), || {
                format!(
                    "gradient on '{name}': squared norm {:?}, but 0.5·Σa² of run_maps is {want}",
                    norm.objective.data()
                )
            });
            let maps_ok = norm.maps.len() == 1
                && norm.maps[0].name == name
                && norm.maps[0].tensor.shape() == full.layers[0].tensor.shape()
                && close(norm.maps[0].tensor.data(), a);
            report.check(maps_ok, || {
                format!("gradient on '{name}': the maps returned are not run_maps' maps")
            });
        }
        (Err(e), _) | (_, Err(e)) => {
            report.check(false, || {
                format!("squared-norm gradient or run_maps on '{name}' failed: {e}")
            });
        }
    }
}
