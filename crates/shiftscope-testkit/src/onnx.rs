//! ONNX files as exporters write them, made from the fixture models for tests: weights moved
//! into a side file (`onnx.save_model(..., save_as_external_data=True)`, and what the dynamo
//! exporter writes by default).

use std::path::Path;

use onnx_protobuf::{Message, ModelProto, StringStringEntryProto, tensor_proto::DataLocation};

fn entry(key: &str, value: String) -> StringStringEntryProto {
    let mut e = StringStringEntryProto::new();
    e.key = key.to_owned();
    e.value = value;
    e
}

/// Writes `model` to `file` with every initialiser's bytes in `<file>.data` beside it (the
/// initialisers must carry `raw_data`, as the fixtures' do). Returns the side file's path.
pub fn save_with_external_data(mut model: ModelProto, file: &Path) -> std::path::PathBuf {
    let name = file
        .file_name()
        .map(|n| format!("{}.data", n.to_string_lossy()))
        .expect("a file name");
    let mut data = Vec::new();
    for t in &mut model.graph.mut_or_insert_default().initializer {
        assert!(
            !t.raw_data.is_empty(),
            "initialiser {} has no raw_data",
            t.name
        );
        let offset = data.len();
        data.extend_from_slice(&t.raw_data);
        t.external_data = vec![
            entry("location", name.clone()),
            entry("offset", offset.to_string()),
            entry("length", t.raw_data.len().to_string()),
        ];
        t.raw_data.clear();
        t.data_location = DataLocation::EXTERNAL.into();
    }
    let side = file.with_file_name(&name);
    std::fs::write(&side, data).expect("write the side file");
    std::fs::write(file, model.write_to_bytes().expect("encode")).expect("write the model");
    side
}

/// [`save_with_external_data`] of the model file `source`.
pub fn copy_with_external_data(source: &Path, file: &Path) -> std::path::PathBuf {
    let bytes = std::fs::read(source).expect("read the model");
    let model = ModelProto::parse_from_bytes(&bytes).expect("an ONNX model");
    save_with_external_data(model, file)
}
