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

/// Writes `source` (a float32 model whose input `[N, 3, H, W]` goes straight into a Conv, as
/// the fixture CNN's does) to `file` as a one-channel model: input `[N, 1, H, W]`, the Conv
/// keeping only its weights of input channel 0.
pub fn copy_as_single_channel(source: &Path, file: &Path) {
    let bytes = std::fs::read(source).expect("read the model");
    let mut model = ModelProto::parse_from_bytes(&bytes).expect("an ONNX model");
    let graph = model.graph.mut_or_insert_default();
    let input = graph.input[0].name.clone();
    graph.input[0]
        .type_
        .mut_or_insert_default()
        .mut_tensor_type()
        .shape
        .mut_or_insert_default()
        .dim[1]
        .set_dim_value(1);
    let conv = graph
        .node
        .iter()
        .find(|n| n.op_type == "Conv" && n.input.first() == Some(&input))
        .expect("a Conv reading the input");
    let weight = conv.input[1].clone();
    let t = graph
        .initializer
        .iter_mut()
        .find(|t| t.name == weight)
        .expect("the Conv's weights");
    let [o, i, kh, kw] = t.dims[..] else {
        panic!("conv weights of dims {:?}", t.dims)
    };
    let per_out = (i * kh * kw) as usize * 4;
    let per_in = (kh * kw) as usize * 4;
    let sliced: Vec<u8> = t
        .raw_data
        .chunks(per_out)
        .flat_map(|out| out[..per_in].to_vec())
        .collect();
    assert_eq!(sliced.len(), (o * kh * kw) as usize * 4);
    t.raw_data = sliced;
    t.dims = vec![o, 1, kh, kw];
    graph.value_info.clear();
    std::fs::write(file, model.write_to_bytes().expect("encode")).expect("write the model");
}
