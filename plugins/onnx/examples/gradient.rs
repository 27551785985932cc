//! Computes d(Σ w·layer)/d(image) with the ONNX adapter's backward graph, for comparisons
//! against PyTorch autograd (`tools/compare_gradients.py`).
//!
//! ```text
//! gradient MODEL.onnx INPUT.f32 N C H W LAYER WEIGHTS.f32 OUT.f32
//! ```
//! `INPUT.f32` holds N×C×H×W little-endian `f32` values (already normalised), `WEIGHTS.f32`
//! N × (the layer's neurons); writes the gradient (N×C×H×W) to `OUT.f32` and prints the
//! objective per image.

use std::path::PathBuf;

use shiftscope_onnx::OnnxModel;
use shiftscope_sdk::{GradientRequest, ModelAdapter, Objective, TensorRef};

fn floats(path: &str) -> Result<Vec<f32>, std::io::Error> {
    Ok(std::fs::read(path)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, input, n, c, h, w, layer, weights, out] = &args[..] else {
        return Err(
            "usage: gradient MODEL.onnx INPUT.f32 N C H W LAYER WEIGHTS.f32 OUT.f32".into(),
        );
    };
    let dims: Vec<usize> = [n, c, h, w]
        .iter()
        .map(|a| a.parse::<usize>())
        .collect::<Result<_, _>>()?;
    let mut model = OnnxModel::from_path(&PathBuf::from(model))?;
    let neurons = model
        .describe()?
        .layer(layer)
        .ok_or_else(|| format!("no layer '{layer}'"))?
        .neurons;
    let x = floats(input)?;
    let wv = floats(weights)?;
    let weights = [dims[0], neurons];
    let request = GradientRequest {
        layer,
        objective: Objective::Pooled,
        weights: TensorRef::new(&weights, &wv)?,
        maps: &[],
    };
    let result = model.gradient(TensorRef::new(&dims, &x)?, &request)?;
    let objective = result.objective.data();
    let raw: Vec<u8> = result
        .input
        .data()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(out, raw)?;
    println!("objective {objective:?}");
    Ok(())
}
