//! Records a model's layers on a batch of images with the ONNX adapter, for comparisons
//! against other tools (`tools/compare_pytorch.py` uses it to check shiftscope's recordings
//! against PyTorch forward hooks).
//!
//! ```text
//! record MODEL.onnx INPUT.f32 N C H W OUT_DIR [SELECTOR ...]
//! ```
//! `INPUT.f32` holds N×C×H×W little-endian `f32` values (already normalised). Writes
//! `OUT_DIR/manifest.json` (`{"layers": [{"name", "aliases", "kind", "op", "file", "shape"}], "logits":
//! {...}}`) and one little-endian `f32` file per layer, pooled the default way (conv: spatial
//! mean, tokens: mean over tokens).

use std::path::PathBuf;

use shiftscope_onnx::OnnxModel;
use shiftscope_sdk::{ModelAdapter, Pooling, TensorRef, select_layers};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 7 {
        return Err("usage: record MODEL.onnx INPUT.f32 N C H W OUT_DIR [SELECTOR ...]".into());
    }
    let model_path = PathBuf::from(&args[0]);
    let dims: Vec<usize> = args[2..6]
        .iter()
        .map(|a| a.parse::<usize>())
        .collect::<Result<_, _>>()?;
    let out_dir = PathBuf::from(&args[6]);
    let selectors: Vec<String> = args[7..].to_vec();

    let bytes = std::fs::read(&args[1])?;
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut model = OnnxModel::from_path(&model_path)?;
    let description = model.describe()?;
    let layers = select_layers(&description, &selectors)?;
    let input = TensorRef::new(&dims, &values)?;
    let set = model.run(input, &layers, Pooling::default())?;

    std::fs::create_dir_all(&out_dir)?;
    let mut entries = Vec::new();
    let mut write = |name: &str,
                     aliases: &[String],
                     kind: &str,
                     op: &str,
                     shape: &[usize],
                     data: &[f32],
                     i: usize|
     -> std::io::Result<()> {
        let file = format!("{i}.f32");
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(out_dir.join(&file), raw)?;
        let shape: Vec<String> = shape.iter().map(usize::to_string).collect();
        let aliases: Vec<String> = aliases.iter().map(|a| format!("{a:?}")).collect();
        entries.push(format!(
            "{{\"name\": {name:?}, \"aliases\": [{}], \"kind\": {kind:?}, \"op\": {op:?}, \"file\": {file:?}, \"shape\": [{}]}}",
            aliases.join(", "),
            shape.join(", ")
        ));
        Ok(())
    };
    for (i, named) in set.layers.iter().enumerate() {
        let info = description.layer(&named.name).ok_or("layer vanished")?;
        write(
            &named.name,
            &info.aliases,
            info.kind.as_str(),
            &info.op,
            named.tensor.shape(),
            named.tensor.data(),
            i,
        )?;
    }
    let logits_entry = set.layers.len();
    write(
        "logits",
        &[],
        "logits",
        "",
        set.logits.shape(),
        set.logits.data(),
        logits_entry,
    )?;
    let logits = entries.pop().ok_or("no logits entry")?;
    let manifest = format!(
        "{{\"model\": {:?}, \"layers\": [\n  {}\n], \"logits\": {logits}}}\n",
        model_path.display().to_string(),
        entries.join(",\n  ")
    );
    std::fs::write(out_dir.join("manifest.json"), manifest)?;
    println!(
        "recorded {} layers of {} images into {}",
        set.layers.len(),
        dims[0],
        out_dir.display()
    );
    Ok(())
}
