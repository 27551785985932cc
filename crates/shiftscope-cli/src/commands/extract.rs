//! `shiftscope extract study.ron`: record a study into its store.

use std::io::Write;

use shiftscope_host::SearchPath;
use shiftscope_runtime::StudyConfig;
use shiftscope_store::Shard;

use crate::builtins::registry;
use crate::cli::{Cli, ExtractArgs};
use crate::table::write_table;

pub(crate) fn run(cli: &Cli, args: &ExtractArgs) -> anyhow::Result<()> {
    let config = StudyConfig::load(&args.config)?;
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    let registry = registry(&SearchPath::standard(&cli.plugin_paths))?;
    let report = shiftscope_runtime::extract(&config, &registry, shard)?;
    let rows: Vec<[String; 4]> = report
        .datasets
        .iter()
        .map(|d| {
            [
                d.name.clone(),
                d.rows.to_string(),
                if d.recorded == 0 {
                    "complete already".to_owned()
                } else {
                    d.recorded.to_string()
                },
                if d.recorded == 0 {
                    String::new()
                } else {
                    format!("{:.0}", d.images_per_second)
                },
            ]
        })
        .collect();
    let mut out = std::io::stdout().lock();
    write_table(
        &mut out,
        ["DATASET", "IMAGES", "RECORDED NOW", "IMAGES/S"],
        &rows,
    )?;
    for (layer, count) in &report.non_finite {
        writeln!(
            out,
            "warning: layer '{layer}' produced {count} NaN or infinite values"
        )?;
    }
    let store = match shard {
        Some(s) => shiftscope_runtime::shard_store(&config.store, s),
        None => config.store.clone(),
    };
    writeln!(out, "store: {}", store.display())?;
    Ok(())
}

/// `K/N` with K below N.
fn parse_shard(text: &str) -> anyhow::Result<Shard> {
    let parsed = text
        .split_once('/')
        .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((index, count)) if index < count => Ok(Shard { index, count }),
        _ => anyhow::bail!("--shard '{text}': expected K/N with 0 <= K < N, e.g. 0/4"),
    }
}
