//! `shiftscope gradient MODEL IMAGE|DIR... --target T`: d(objective)/d(image) of each image,
//! after the model's preprocessing, through the model adapter's gradient capability; writes
//! them as one `[N, C, H, W]` `.npy` and prints the objective per image.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use shiftscope_onnx::Config;
use shiftscope_runtime::{GradientTarget, Preprocessing, read_image};
use shiftscope_sdk::{GradientRequest, ModelAdapter, Tensor};

use crate::builtins::registry;
use crate::cli::{Cli, GradientArgs};
use crate::commands::layers::parse_device;

/// The image files of `inputs` in order: a file as given, a folder's PNG and JPEG files
/// (recursively) sorted by path.
fn image_files(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading the folder {}", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading the folder {}", dir.display()))?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out)?;
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
            {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let before = files.len();
            walk(input, &mut files)?;
            if files.len() == before {
                bail!(
                    "{}: the folder holds no PNG or JPEG images",
                    input.display()
                );
            }
        } else if input.exists() {
            files.push(input.clone());
        } else {
            bail!("{}: no such image or folder", input.display());
        }
    }
    Ok(files)
}

/// The preprocessing of `--preprocessing`: a RON file or inline RON.
fn preprocessing(text: &str) -> anyhow::Result<Preprocessing> {
    let path = Path::new(text);
    let (ron_text, origin) = if path.is_file() {
        let body =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        (body, path.display().to_string())
    } else {
        (text.to_owned(), "--preprocessing".to_owned())
    };
    ron::from_str(&ron_text).with_context(|| format!("{origin}: not a preprocessing (RON)"))
}

pub(crate) fn run(cli: &Cli, args: &GradientArgs) -> anyhow::Result<()> {
    let mut config = Config::for_model(&args.model);
    config.device = parse_device(&args.device)?;
    config.ort_lib.clone_from(&args.ort_lib);
    config.output.clone_from(&args.output);
    let registry = registry(&shiftscope_host::SearchPath::standard(&cli.plugin_paths))?;
    let mut model = registry
        .create_model(shiftscope_onnx::NAME, &config.to_ron()?)
        .with_context(|| format!("opening the model {}", args.model.display()))?;
    let description = model.describe()?;
    let Some(input) = description.inputs.first() else {
        bail!("{}: the model has no input", args.model.display());
    };
    if input.shape.len() != 4 {
        bail!(
            "{}: the model's input '{}' has {} axes; gradients are taken of images [N, C, H, W]",
            args.model.display(),
            input.name,
            input.shape.len()
        );
    }
    let target = GradientTarget::parse(&args.target, &description)?;
    let preprocessing = match &args.preprocessing {
        Some(text) => preprocessing(text)?,
        None => Preprocessing::for_input(Some(input)),
    };
    let files = image_files(&args.images)?;
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: d({})/d(image) of {} images, preprocessing {}",
        args.model.display(),
        target.describe,
        files.len(),
        preprocessing.describe()
    )?;
    let mut gradients: Vec<f32> = Vec::new();
    let mut image_shape: Option<Vec<usize>> = None;
    for chunk in files.chunks(args.batch) {
        let mut data = Vec::new();
        for file in chunk {
            let sample = read_image(file)?;
            let prepared = preprocessing
                .apply(&sample)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let channels =
                prepared.input.len() / (prepared.width as usize * prepared.height as usize).max(1);
            let shape = vec![channels, prepared.height as usize, prepared.width as usize];
            let fits = input
                .shape
                .iter()
                .skip(1)
                .zip(&shape)
                .all(|(want, got)| want.is_none_or(|w| w == *got));
            if !fits {
                bail!(
                    "{}: preprocessed to {shape:?}, but the model's input '{}' takes {:?} (declare a matching --preprocessing)",
                    file.display(),
                    input.name,
                    &input.shape[1..]
                );
            }
            match &image_shape {
                Some(first) if *first != shape => bail!(
                    "{}: preprocessed to {shape:?}, unlike the images before it ({first:?}); give --preprocessing a crop",
                    file.display()
                ),
                Some(_) => {}
                None => image_shape = Some(shape),
            }
            data.extend(prepared.input);
        }
        let mut shape = vec![chunk.len()];
        shape.extend(image_shape.iter().flatten());
        let batch = Tensor::new(shape, data)?;
        let weights = target.batch_weights(&description, chunk.len())?;
        let request = GradientRequest {
            layer: &target.layer,
            objective: target.objective,
            weights: weights.view(),
            maps: &[],
        };
        let result = model
            .gradient(batch.view(), &request)
            .with_context(|| format!("the gradient of {}", target.describe))?;
        let per_image: usize = batch.shape()[1..].iter().product();
        for ((file, value), grad) in chunk
            .iter()
            .zip(result.objective.data())
            .zip(result.input.data().chunks(per_image.max(1)))
        {
            let largest = grad.iter().fold(0f32, |m, g| m.max(g.abs()));
            writeln!(
                out,
                "  {}  objective {value:.6}  max |gradient| {largest:.3e}",
                file.display()
            )?;
        }
        gradients.extend(result.input.into_data());
    }
    if let Some(path) = &args.out {
        let mut shape = vec![files.len()];
        shape.extend(image_shape.iter().flatten());
        shiftscope_store::write_f32_npy(path, &shape, &gradients)?;
        writeln!(out, "wrote {} ({shape:?}, f32)", path.display())?;
    }
    Ok(())
}
