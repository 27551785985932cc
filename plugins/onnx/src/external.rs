//! ONNX external data: tensors whose bytes live in a side file next to the model (what
//! `torch.onnx.export` writes by default since PyTorch 2.9, `model.onnx.data`, and what every
//! model above protobuf's 2 GB limit needs). Side files are resolved against the model file's
//! own folder, never the working directory; every reference is checked when the model opens
//! (a missing or short side file is one error naming it and the tensor), and copies of the
//! model carry their weights: inline below protobuf's limit, else in a side file of their own.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use onnx_protobuf::{
    GraphProto, ModelProto, StringStringEntryProto, TensorProto,
    tensor_proto::{DataLocation, DataType},
};
use shiftscope_sdk::PluginError;

/// Copies whose weights add up to less than this are written inline (protobuf refuses
/// messages of 2 GiB and more; the rest of the model needs room too).
pub(crate) const INLINE_LIMIT: u64 = 1 << 30;

/// Where one tensor's bytes are in its side file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Reference {
    location: String,
    offset: u64,
    length: u64,
}

fn bad(path: &Path, problem: impl std::fmt::Display) -> PluginError {
    PluginError::invalid_argument(format!("{}: {problem}", path.display()))
}

pub(crate) fn is_external(t: &TensorProto) -> bool {
    t.data_location.value() == DataLocation::EXTERNAL as i32
}

/// Bytes per element ×2 (4-bit types hold two elements a byte); `None` for strings and
/// unknown codes.
fn half_bytes_per_element(data_type: i32) -> Option<u64> {
    use DataType as D;
    let t = |d: D| d as i32;
    Some(match data_type {
        x if x == t(D::FLOAT) || x == t(D::INT32) || x == t(D::UINT32) => 8,
        x if x == t(D::DOUBLE) || x == t(D::INT64) || x == t(D::UINT64) => 16,
        x if x == t(D::COMPLEX64) => 16,
        x if x == t(D::COMPLEX128) => 32,
        x if x == t(D::FLOAT16) || x == t(D::BFLOAT16) || x == t(D::INT16) || x == t(D::UINT16) => {
            4
        }
        x if x == t(D::UINT8) || x == t(D::INT8) || x == t(D::BOOL) => 2,
        // FLOAT8E4M3FN .. FLOAT8E5M2FNUZ (17–20), UINT4/INT4 (21, 22), FLOAT4E2M1 (23).
        17..=20 => 2,
        21..=23 => 1,
        _ => return None,
    })
}

/// The byte size a tensor's dims and type call for.
fn expected_bytes(t: &TensorProto) -> Option<u64> {
    let count = t.dims.iter().try_fold(1u64, |acc, &d| {
        u64::try_from(d).ok().and_then(|d| acc.checked_mul(d))
    })?;
    Some(
        count
            .checked_mul(half_bytes_per_element(t.data_type)?)?
            .div_ceil(2),
    )
}

/// Reads the `location` / `offset` / `length` entries of an external tensor.
fn reference(t: &TensorProto, path: &Path) -> Result<Reference, PluginError> {
    let entry = |key: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let number = |key: &str| -> Result<Option<u64>, PluginError> {
        entry(key)
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    bad(
                        path,
                        format!(
                            "tensor '{}' has external-data {key} '{v}', not a number",
                            t.name
                        ),
                    )
                })
            })
            .transpose()
    };
    let Some(location) = entry("location").filter(|l| !l.is_empty()) else {
        return Err(bad(
            path,
            format!(
                "tensor '{}' is marked external but names no location",
                t.name
            ),
        ));
    };
    let offset = number("offset")?.unwrap_or(0);
    let length = match number("length")? {
        Some(n) => n,
        None => expected_bytes(t).ok_or_else(|| {
            bad(
                path,
                format!(
                    "tensor '{}' is external with no length, and its type code {} has no fixed size",
                    t.name, t.data_type
                ),
            )
        })?,
    };
    Ok(Reference {
        location: location.to_owned(),
        offset,
        length,
    })
}

/// The side file a location names, inside `dir`: relative, no `..`, as ONNX Runtime also
/// requires.
fn side_file(
    dir: &Path,
    location: &str,
    tensor: &str,
    path: &Path,
) -> Result<PathBuf, PluginError> {
    let relative = Path::new(location);
    let inside = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(bad(
            path,
            format!(
                "tensor '{tensor}' points to external data '{location}', which is not a path \
                 inside the model's folder {}",
                dir.display()
            ),
        ));
    }
    Ok(dir.join(relative))
}

/// Calls `f` on every tensor of `graph` that carries data: initialisers and the tensors in
/// node attributes (Constant values), subgraphs included.
fn for_each_tensor(graph: &GraphProto, f: &mut impl FnMut(&TensorProto)) {
    graph.initializer.iter().for_each(&mut *f);
    for node in &graph.node {
        for a in &node.attribute {
            if let Some(t) = a.t.as_ref() {
                f(t);
            }
            a.tensors.iter().for_each(&mut *f);
            for g in a.g.as_ref().into_iter().chain(&a.graphs) {
                for_each_tensor(g, f);
            }
        }
    }
}

fn for_each_tensor_mut(
    graph: &mut GraphProto,
    f: &mut impl FnMut(&mut TensorProto) -> Result<(), PluginError>,
) -> Result<(), PluginError> {
    for t in &mut graph.initializer {
        f(t)?;
    }
    for node in &mut graph.node {
        for a in &mut node.attribute {
            if let Some(t) = a.t.as_mut() {
                f(t)?;
            }
            for t in &mut a.tensors {
                f(t)?;
            }
            if let Some(g) = a.g.as_mut() {
                for_each_tensor_mut(g, f)?;
            }
            for g in &mut a.graphs {
                for_each_tensor_mut(g, f)?;
            }
        }
    }
    Ok(())
}

/// The side files `model` reads (in `dir`), each once, in the order first referenced.
pub(crate) fn files(model: &ModelProto, dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(graph) = model.graph.as_ref() {
        for_each_tensor(graph, &mut |t| {
            if let Some(location) = t
                .external_data
                .iter()
                .find(|e| e.key == "location")
                .filter(|_| is_external(t))
            {
                let file = dir.join(&location.value);
                if !files.contains(&file) {
                    files.push(file);
                }
            }
        });
    }
    files
}

/// What a model keeps in side files: how many tensors and bytes. `None` when nothing.
pub(crate) fn summary(model: &ModelProto) -> Option<(usize, u64)> {
    let graph = model.graph.as_ref()?;
    let (mut count, mut bytes) = (0usize, 0u64);
    for_each_tensor(graph, &mut |t| {
        if is_external(t) {
            count += 1;
            bytes += t
                .external_data
                .iter()
                .find(|e| e.key == "length")
                .and_then(|e| e.value.trim().parse().ok())
                .or_else(|| expected_bytes(t))
                .unwrap_or(0);
        }
    });
    (count > 0).then_some((count, bytes))
}

/// Checks every external reference of `model` (file `path`, side files in `dir`): a relative
/// location inside the folder, an existing file, long enough for the tensor. The first
/// problem is the error, naming the side file and the tensor.
pub(crate) fn check(model: &ModelProto, dir: &Path, path: &Path) -> Result<(), PluginError> {
    let Some(graph) = model.graph.as_ref() else {
        return Ok(());
    };
    let mut sizes: HashMap<String, u64> = HashMap::new();
    let mut problem: Option<PluginError> = None;
    for_each_tensor(graph, &mut |t| {
        if problem.is_some() || !is_external(t) {
            return;
        }
        let result = (|| {
            let r = reference(t, path)?;
            if let Some(expected) = expected_bytes(t)
                && expected != r.length
            {
                return Err(bad(
                    path,
                    format!(
                        "tensor '{}' of dims {:?} needs {expected} bytes but its external data \
                         says {}",
                        t.name, t.dims, r.length
                    ),
                ));
            }
            let file = side_file(dir, &r.location, &t.name, path)?;
            let size = match sizes.get(&r.location) {
                Some(&size) => size,
                None => {
                    let size = std::fs::metadata(&file)
                        .map_err(|e| {
                            bad(
                                path,
                                format!(
                                    "its weights are in the side file {}, which cannot be read \
                                     ({e}); keep the side file next to the model, as the \
                                     exporter wrote it",
                                    file.display()
                                ),
                            )
                        })?
                        .len();
                    sizes.insert(r.location.clone(), size);
                    size
                }
            };
            let end = r.offset.saturating_add(r.length);
            if end > size {
                return Err(bad(
                    path,
                    format!(
                        "the side file {} is {size} bytes, but tensor '{}' needs bytes {}..{end}: \
                         the file is truncated or belongs to another export",
                        file.display(),
                        t.name,
                        r.offset
                    ),
                ));
            }
            Ok(())
        })();
        if let Err(e) = result {
            problem = Some(e);
        }
    });
    problem.map_or(Ok(()), Err)
}

/// The raw little-endian bytes of an external tensor.
pub(crate) fn read(t: &TensorProto, dir: &Path, path: &Path) -> Result<Vec<u8>, PluginError> {
    let r = reference(t, path)?;
    let file = side_file(dir, &r.location, &t.name, path)?;
    let context = |e: std::io::Error| {
        bad(
            path,
            format!(
                "reading tensor '{}' from the side file {}: {e}",
                t.name,
                file.display()
            ),
        )
    };
    let len = usize::try_from(r.length).map_err(|_| {
        bad(
            path,
            format!("tensor '{}' is too large for this machine", t.name),
        )
    })?;
    let mut f = File::open(&file).map_err(context)?;
    f.seek(SeekFrom::Start(r.offset)).map_err(context)?;
    let mut bytes = vec![0u8; len];
    f.read_exact(&mut bytes).map_err(context)?;
    Ok(bytes)
}

/// Makes `tensor` carry `bytes` inline.
fn set_inline(t: &mut TensorProto, bytes: Vec<u8>) {
    t.raw_data = bytes;
    t.external_data.clear();
    t.data_location = DataLocation::DEFAULT.into();
}

fn entry(key: &str, value: String) -> StringStringEntryProto {
    let mut e = StringStringEntryProto::new();
    e.key = key.to_owned();
    e.value = value;
    e
}

/// Makes `model` (whose side files are in `dir`) stand on its own as the file `out`: inline
/// when its external bytes are below `inline_limit`, else every external tensor copied into
/// `<out>.data` next to `out`. Returns the side file written, if any. The original side files
/// are only read.
pub(crate) fn materialise(
    model: &mut ModelProto,
    dir: &Path,
    path: &Path,
    out: &Path,
    inline_limit: u64,
) -> Result<Option<PathBuf>, PluginError> {
    let Some((_, bytes)) = summary(model) else {
        return Ok(None);
    };
    let graph = model.graph.mut_or_insert_default();
    if bytes < inline_limit {
        for_each_tensor_mut(graph, &mut |t| {
            if is_external(t) {
                let data = read(t, dir, path)?;
                set_inline(t, data);
            }
            Ok(())
        })?;
        return Ok(None);
    }
    let name = out
        .file_name()
        .map(|n| format!("{}.data", n.to_string_lossy()))
        .ok_or_else(|| bad(out, "not a file name"))?;
    let data_path = out.with_file_name(&name);
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    let mut sources = Vec::new();
    for_each_tensor(graph, &mut |t| {
        if let Ok(r) = reference(t, path) {
            sources.push(dir.join(r.location));
        }
    });
    if sources.iter().any(|s| same(s, &data_path)) {
        return Err(bad(
            out,
            format!(
                "its weights would go to {}, which is the model's own side file; choose another \
                 name for the copy",
                data_path.display()
            ),
        ));
    }
    let write_error =
        |e: std::io::Error| PluginError::failed(format!("{}: writing: {e}", data_path.display()));
    let mut file = File::create(&data_path).map_err(write_error)?;
    let mut offset = 0u64;
    for_each_tensor_mut(graph, &mut |t| {
        if !is_external(t) {
            return Ok(());
        }
        let data = read(t, dir, path)?;
        // Tensors start on 4 KiB boundaries, as onnx's own writer aligns large ones.
        let aligned = offset.next_multiple_of(4096);
        if aligned > offset {
            let pad = usize::try_from(aligned - offset).unwrap_or(0);
            file.write_all(&vec![0u8; pad]).map_err(write_error)?;
        }
        file.write_all(&data).map_err(write_error)?;
        t.external_data = vec![
            entry("location", name.clone()),
            entry("offset", aligned.to_string()),
            entry("length", data.len().to_string()),
        ];
        offset = aligned + data.len() as u64;
        Ok(())
    })?;
    file.sync_all().map_err(write_error)?;
    Ok(Some(data_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float_tensor(name: &str, dims: &[i64]) -> TensorProto {
        let mut t = TensorProto::new();
        t.name = name.to_owned();
        t.data_type = DataType::FLOAT as i32;
        t.dims = dims.to_vec();
        t
    }

    fn external(t: &mut TensorProto, location: &str, offset: u64, length: u64) {
        t.data_location = DataLocation::EXTERNAL.into();
        t.external_data = vec![
            entry("location", location.to_owned()),
            entry("offset", offset.to_string()),
            entry("length", length.to_string()),
        ];
    }

    fn model_with(tensors: Vec<TensorProto>) -> ModelProto {
        let mut model = ModelProto::new();
        model.graph.mut_or_insert_default().initializer = tensors;
        model
    }

    #[test]
    fn sizes_of_element_types() {
        assert_eq!(expected_bytes(&float_tensor("w", &[2, 3])), Some(24));
        let mut t = float_tensor("h", &[5]);
        t.data_type = DataType::FLOAT16 as i32;
        assert_eq!(expected_bytes(&t), Some(10));
        t.data_type = 22; // INT4: two a byte
        assert_eq!(expected_bytes(&t), Some(3));
        t.data_type = DataType::STRING as i32;
        assert_eq!(expected_bytes(&t), None);
    }

    #[test]
    fn missing_short_and_escaping_side_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        let mut w = float_tensor("fc.weight", &[4]);
        external(&mut w, "m.onnx.data", 0, 16);
        let model = model_with(vec![w.clone()]);
        let e = check(&model, dir.path(), &path).unwrap_err().to_string();
        assert!(
            e.contains("m.onnx.data") && e.contains("cannot be read"),
            "{e}"
        );

        std::fs::write(dir.path().join("m.onnx.data"), [0u8; 12]).unwrap();
        let e = check(&model, dir.path(), &path).unwrap_err().to_string();
        assert!(e.contains("is 12 bytes") && e.contains("fc.weight"), "{e}");

        std::fs::write(dir.path().join("m.onnx.data"), [0u8; 16]).unwrap();
        check(&model, dir.path(), &path).unwrap();

        let mut escaping = w.clone();
        external(&mut escaping, "../elsewhere.data", 0, 16);
        let e = check(&model_with(vec![escaping]), dir.path(), &path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a path inside"), "{e}");

        let mut wrong = w;
        external(&mut wrong, "m.onnx.data", 0, 8);
        let e = check(&model_with(vec![wrong]), dir.path(), &path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs 16 bytes"), "{e}");
    }

    #[test]
    fn copies_inline_below_the_limit_and_get_their_own_side_file_above() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        let values: Vec<u8> = (0u8..40).collect();
        std::fs::write(dir.path().join("m.onnx.data"), &values).unwrap();
        let mut a = float_tensor("a", &[2]);
        external(&mut a, "m.onnx.data", 0, 8);
        let mut b = float_tensor("b", &[3]);
        external(&mut b, "m.onnx.data", 20, 12);
        let original = model_with(vec![a, b]);
        assert_eq!(summary(&original), Some((2, 20)));

        let mut inline = original.clone();
        let out = dir.path().join("copy.onnx");
        assert_eq!(
            materialise(&mut inline, dir.path(), &path, &out, 1000).unwrap(),
            None
        );
        assert_eq!(summary(&inline), None);
        let init = &inline.graph.as_ref().unwrap().initializer;
        assert_eq!(init[0].raw_data, values[0..8]);
        assert_eq!(init[1].raw_data, values[20..32]);

        let mut side = original.clone();
        let written = materialise(&mut side, dir.path(), &path, &out, 10).unwrap();
        assert_eq!(written, Some(dir.path().join("copy.onnx.data")));
        let init = &side.graph.as_ref().unwrap().initializer;
        assert!(
            init.iter()
                .all(|t| reference(t, &out).unwrap().location == "copy.onnx.data")
        );
        check(&side, dir.path(), &out).unwrap();
        assert_eq!(read(&init[0], dir.path(), &out).unwrap(), values[0..8]);
        assert_eq!(read(&init[1], dir.path(), &out).unwrap(), values[20..32]);
        // The original side file is untouched.
        assert_eq!(
            std::fs::read(dir.path().join("m.onnx.data")).unwrap(),
            values
        );
    }
}
