//! `shiftscope layers model.onnx`: what can be recorded, and what the selection records.

use std::io::Write;

use anyhow::{Context, bail};
use shiftscope_onnx::{Config, Device};
use shiftscope_runtime::Preprocessing;
use shiftscope_sdk::{ModelAdapter, select_layers};

use crate::builtins::registry;
use crate::cli::{Cli, LayersArgs};
use crate::table::write_table;

pub(crate) fn parse_device(text: &str) -> anyhow::Result<Device> {
    Ok(match text {
        "cpu" => Device::Cpu,
        "auto" => Device::Auto,
        "cuda" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse) {
            Some(Ok(id)) => Device::Cuda(id),
            _ => bail!("unknown device '{other}' (cpu, cuda, cuda:N, auto)"),
        },
    })
}

pub(crate) fn run(cli: &Cli, args: &LayersArgs) -> anyhow::Result<()> {
    let mut config = Config::for_model(&args.model);
    config.device = parse_device(&args.device)?;
    config.ort_lib.clone_from(&args.ort_lib);
    config.output.clone_from(&args.output);
    let registry = registry(&shiftscope_host::SearchPath::standard(&cli.plugin_paths))?;
    let mut model = registry
        .create_model(shiftscope_onnx::NAME, &config.to_ron()?)
        .context("opening the model")?;
    let description = model.describe()?;
    let selected = select_layers(&description, &args.select)?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", args.model.display())?;
    for input in &description.inputs {
        let dims: Vec<String> = input
            .shape
            .iter()
            .map(|d| d.map_or_else(|| "?".to_owned(), |d| d.to_string()))
            .collect();
        writeln!(out, "  input {}: [{}]", input.name, dims.join(", "))?;
    }
    let classes = if description.class_names.is_empty() {
        "no class names in the model".to_owned()
    } else {
        format!(
            "names {} … {}",
            description.class_names[0],
            description.class_names[description.num_classes - 1]
        )
    };
    writeln!(out, "  {} classes ({classes})", description.num_classes)?;
    for note in &description.notes {
        writeln!(out, "  {note}")?;
    }
    let preprocessing = Preprocessing::for_input(description.inputs.first());
    writeln!(
        out,
        "  default preprocessing (when a study declares none): {}",
        preprocessing.describe()
    )?;
    writeln!(out)?;

    let rows: Vec<[String; 7]> = description
        .layers
        .iter()
        .filter(|l| !args.selected_only || selected.contains(&l.name))
        .map(|l| {
            let shape: Vec<String> = l.shape.iter().map(usize::to_string).collect();
            [
                l.name.clone(),
                l.op.clone(),
                l.kind.as_str().to_owned(),
                format!("[{}]", shape.join(", ")),
                l.neurons.to_string(),
                if selected.contains(&l.name) {
                    "yes".to_owned()
                } else {
                    String::new()
                },
                l.aliases.join(", "),
            ]
        })
        .collect();
    write_table(
        &mut out,
        [
            "NAME",
            "OP",
            "KIND",
            "SHAPE",
            "NEURONS",
            "SELECTED",
            "ALSO SELECTED BY",
        ],
        &rows,
    )?;
    let neurons: usize = description
        .layers
        .iter()
        .filter(|l| selected.contains(&l.name))
        .map(|l| l.neurons)
        .sum();
    writeln!(
        out,
        "\n{} candidate layers; {} selected, {neurons} neurons per image recorded",
        description.layers.len(),
        selected.len()
    )?;
    Ok(())
}
