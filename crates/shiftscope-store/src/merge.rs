//! Joining the stores of a sharded recording (`extract --shard k/n`) into one store, the same
//! as an unsharded recording would have written.

use std::path::{Path, PathBuf};

use crate::{LayerMatrix, Store, StoreError, StoreWriter};

/// Rows copied at a time: memory stays bounded whatever the dataset's size.
const CHUNK: usize = 4096;

fn layer_rows(matrix: &LayerMatrix<'_>, start: usize, end: usize) -> Vec<f32> {
    match *matrix {
        LayerMatrix::F32 { cols, data, .. } => data[start * cols..end * cols].to_vec(),
        // f16 → f32 → f16 is exact: the merged file gets the shard's bits back.
        LayerMatrix::F16 { cols, data, .. } => data[start * cols..end * cols]
            .iter()
            .map(|v| v.to_f32())
            .collect(),
    }
}

/// Merges the shard stores `shards` (all shards of one recording, any order) into a new store
/// at `out`. Every shard must be complete and of the same model, layers and format.
pub fn merge(shards: &[PathBuf], out: &Path) -> Result<(), StoreError> {
    let mut stores: Vec<(PathBuf, Store)> = shards
        .iter()
        .map(|p| Store::open(p).map(|s| (p.clone(), s)))
        .collect::<Result<_, _>>()?;
    let Some((first_path, first)) = stores.first() else {
        return Err(StoreError::Invalid("no shard stores to merge".to_owned()));
    };
    let count = first
        .manifest()
        .shard
        .ok_or_else(|| StoreError::mismatch(first_path.join("manifest.json"), "not a shard store"))?
        .count;
    for (path, store) in &stores {
        let m = store.manifest();
        let f = first.manifest();
        let problem = match m.shard {
            None => Some("not a shard store".to_owned()),
            Some(s) if s.count != count => Some(format!(
                "shard of {} where the others are of {count}",
                s.count
            )),
            _ if m.model != f.model || m.layers != f.layers || m.classes != f.classes => Some(
                "recorded from another model or layer selection than the first shard".to_owned(),
            ),
            _ if m.thumb != f.thumb || m.precision != f.precision => {
                Some("another store format than the first shard".to_owned())
            }
            _ if m
                .datasets
                .iter()
                .map(|d| &d.name)
                .ne(f.datasets.iter().map(|d| &d.name)) =>
            {
                Some("other datasets than the first shard".to_owned())
            }
            _ => m
                .datasets
                .iter()
                .find(|d| !d.complete)
                .map(|d| format!("dataset '{}' is not complete", d.name)),
        };
        if let Some(problem) = problem {
            return Err(StoreError::mismatch(path.join("manifest.json"), problem));
        }
    }
    stores.sort_by_key(|(_, s)| s.manifest().shard.map_or(0, |s| s.index));
    let indices: Vec<usize> = stores
        .iter()
        .filter_map(|(_, s)| s.manifest().shard.map(|s| s.index))
        .collect();
    if indices != (0..count).collect::<Vec<_>>() {
        return Err(StoreError::Invalid(format!(
            "shards {indices:?} given, a recording of {count} shards needs each of 0..{count} once"
        )));
    }

    let template = stores[0].1.manifest();
    let mut manifest = template.clone();
    manifest.shard = None;
    manifest.datasets.clear();
    manifest.created_unix = stores
        .iter()
        .map(|(_, s)| s.manifest().created_unix)
        .min()
        .unwrap_or(0);
    let mut writer = StoreWriter::create(out, manifest)?;
    for (d, entry) in template.datasets.iter().enumerate() {
        let total = entry.part.map_or(entry.len, |p| p.total);
        let mut dataset = writer.dataset(
            &entry.name,
            &entry.plugin,
            entry.params.clone(),
            entry.role,
            total,
        )?;
        let mut next = 0;
        for (path, store) in &stores {
            let e = &store.manifest().datasets[d];
            let part = e.part.ok_or_else(|| {
                StoreError::mismatch(
                    path.join("manifest.json"),
                    format!("dataset '{}' has no row range", e.name),
                )
            })?;
            if part.first != next || part.total != total {
                return Err(StoreError::mismatch(
                    path.join("manifest.json"),
                    format!(
                        "dataset '{}' holds rows from {} of {}; rows from {next} of {total} were expected",
                        e.name, part.first, part.total
                    ),
                ));
            }
            let labels = store.labels(d)?;
            let thumbs = store.thumbs(d)?;
            let thumb_row = thumbs.len() / e.len.max(1);
            let logits = store.logits(d)?;
            let layers: Vec<LayerMatrix<'_>> = (0..store.manifest().layers.len())
                .map(|l| store.layer(d, l))
                .collect::<Result<_, _>>()?;
            for start in (0..e.len).step_by(CHUNK) {
                let end = (start + CHUNK).min(e.len);
                let values: Vec<Vec<f32>> =
                    layers.iter().map(|m| layer_rows(m, start, end)).collect();
                let refs: Vec<&[f32]> = values.iter().map(Vec::as_slice).collect();
                dataset.write_rows(
                    part.first + start,
                    &labels[start..end],
                    &layer_rows(&logits, start, end),
                    &thumbs[start * thumb_row..end * thumb_row],
                    &refs,
                )?;
            }
            next += e.len;
        }
        if next != total {
            return Err(StoreError::Invalid(format!(
                "dataset '{}': the shards hold {next} of {total} rows",
                entry.name
            )));
        }
        dataset.commit(total)?;
        dataset.finish(&mut writer)?;
    }
    Ok(())
}
