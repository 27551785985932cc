//! Layer names as PyTorch users know them: the module path (`layer1.0.relu`,
//! `encoder.layers.encoder_layer_3`) instead of the exporter's tensor names (`relu_1`,
//! `/layer1/layer1.0/relu/Relu_output_0`), the same for both of torch's exporters.
//!
//! Where a node's module path comes from: the dynamo exporter (`torch.onnx.export`'s default
//! since PyTorch 2.9) writes it in the node's metadata, `pkg.torch.onnx.name_scopes`
//! (`['', 'layer1', 'layer1.0', 'layer1.0.relu', 'relu_1']`: the root, the module paths from
//! outermost to innermost, then the FX node); the legacy exporter names nodes by scope
//! (`/layer1/layer1.0/relu_1/Relu`: one component a module, a repeated call suffixed `_1`).
//!
//! A tensor is named after the innermost module call it leaves (a consumer outside that
//! module, or a graph output): a ReLU module's output is `layer1.0.relu`, a block's last
//! output also answers to the block's path (`layer1.0`) as an alias. A tensor that stays inside
//! its module is named by the module and its op (`layer1.0.add`, `layer1.0.add_1`). Names are
//! made unique in graph order (`layer1.0.relu`, then `layer1.0.relu_1` for the module's second
//! call, as the legacy exporter numbers calls); the tensor name always stays an alias.
//! A tensor someone named on purpose (the legacy exporter's `output_names`, a renamed graph)
//! keeps its name and gets the module path as an alias; nodes with neither source
//! (hand-written graphs) keep their tensor names.

use std::collections::{HashMap, HashSet};

use onnx_protobuf::NodeProto;

/// The metadata key the dynamo exporter writes module scopes under.
const NAME_SCOPES: &str = "pkg.torch.onnx.name_scopes";

/// The module paths a node runs in, outermost first (`["layer1", "layer1.0",
/// "layer1.0.relu"]`; empty at the model's top level), or `None` when the node says nothing.
pub(crate) fn module_chain(node: &NodeProto) -> Option<Vec<String>> {
    if let Some(scopes) = node.metadata_props.iter().find(|p| p.key == NAME_SCOPES) {
        let list = parse_str_list(&scopes.value)?;
        // The root '' first, the FX node's own name last.
        let inner = list
            .get(1..list.len().saturating_sub(1))
            .unwrap_or_default();
        return Some(inner.iter().filter(|s| !s.is_empty()).cloned().collect());
    }
    scoped_chain(&node.name)
}

/// The module paths in a legacy exporter's scoped name (`/layer1/layer1.0/relu_1/Relu`, or
/// a tensor's `/layer1/layer1.0/relu_1/Relu_output_0`).
fn scoped_chain(name: &str) -> Option<Vec<String>> {
    let name = name.strip_prefix('/')?;
    let components: Vec<&str> = name.split('/').collect();
    let (_, scopes) = components.split_last()?;
    let mut chain: Vec<String> = Vec::new();
    for component in scopes.iter().filter(|c| !c.is_empty()) {
        let path = match chain.last() {
            Some(outer) => join_scope(outer, component),
            None => (*component).to_owned(),
        };
        chain.push(path);
    }
    Some(chain)
}

/// The module path of legacy scope part `component` inside the module at `outer`. A numbered
/// child's part repeats the names back to its nearest named ancestor
/// (`/layer1/layer1.0/...`, `/features.1/block/block.0/block.0.2/...`): the longest run of
/// `component`'s leading names that ends `outer` is dropped.
fn join_scope(outer: &str, component: &str) -> String {
    let outer_parts: Vec<&str> = outer.split('.').collect();
    let parts: Vec<&str> = component.split('.').collect();
    let overlap = (1..parts.len())
        .rev()
        .find(|&k| k <= outer_parts.len() && parts[..k] == outer_parts[outer_parts.len() - k..])
        .unwrap_or(0);
    let mut path = outer.to_owned();
    for part in &parts[overlap..] {
        path.push('.');
        path.push_str(part);
    }
    path
}

/// Parses a Python list of strings as `repr` writes it (`['', 'a.b', "it's"]`).
fn parse_str_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let Some(quote) = chars.next() else {
            return Some(items);
        };
        if quote != '\'' && quote != '"' {
            return None;
        }
        let mut item = String::new();
        loop {
            match chars.next()? {
                '\\' => item.push(chars.next()?),
                c if c == quote => break,
                c => item.push(c),
            }
        }
        items.push(item);
    }
}

/// Whether `tensor` is a name an exporter made up rather than one a person chose: every
/// tensor of a dynamo export (FX node names: `relu_1`, `getitem_3`), and the legacy exporter's
/// scoped (`/layer1/layer1.0/relu/Relu_output_0`), `onnx::`-prefixed and numbered names.
fn generated(node: &NodeProto, tensor: &str) -> bool {
    node.metadata_props.iter().any(|p| p.key == NAME_SCOPES)
        || tensor.starts_with('/')
        || tensor.starts_with("onnx::")
        || tensor.chars().all(|c| c.is_ascii_digit())
}

/// A tensor's layer name and its other names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LayerName {
    pub(crate) name: String,
    pub(crate) aliases: Vec<String>,
}

/// Names every node output of `nodes` (in graph order); `outputs` are the graph's outputs.
/// Tensors of nodes without module information keep their own name and get no alias.
pub(crate) fn layer_names(nodes: &[NodeProto], outputs: &[String]) -> HashMap<String, LayerName> {
    let chains: Vec<Option<Vec<String>>> = nodes.iter().map(module_chain).collect();
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for input in node.input.iter().filter(|s| !s.is_empty()) {
            consumers.entry(input.as_str()).or_default().push(i);
        }
    }
    // First pass: the wanted name and the outer scopes of every named tensor, and whether
    // the tensor keeps its own name.
    let mut wanted: Vec<(String, String, Vec<String>, bool, bool)> = Vec::new();
    let mut op_counts: HashMap<String, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let Some(node_chain) = &chains[i] else {
            continue;
        };
        // A QDQ model's quantised copies are no layers: the float tensor names the layer.
        if matches!(node.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear") {
            continue;
        }
        for tensor in node.output.iter().filter(|s| !s.is_empty()) {
            // A legacy tensor name keeps the scope of the op that first made it, where a
            // rewrite (ONNX Runtime's quantiser folding a Relu into the Conv before it) has
            // given the tensor to another node.
            let own = tensor
                .contains("_output_")
                .then(|| scoped_chain(tensor))
                .flatten();
            let chain = own.as_ref().unwrap_or(node_chain);
            // Who reads the tensor, looking through quantise/dequantise pairs (a QDQ model's
            // Q and DQ nodes sit in the scope of the tensor they carry).
            let mut users: Vec<usize> = Vec::new();
            let mut frontier: Vec<(&str, usize)> = vec![(tensor.as_str(), 0)];
            let mut through_quant_to_output = false;
            while let Some((t, depth)) = frontier.pop() {
                for &u in consumers.get(t).map_or(&[][..], Vec::as_slice) {
                    let op = nodes[u].op_type.as_str();
                    if depth < 4 && matches!(op, "QuantizeLinear" | "DequantizeLinear") {
                        for out in &nodes[u].output {
                            through_quant_to_output |= outputs.contains(out);
                            frontier.push((out.as_str(), depth + 1));
                        }
                    } else {
                        users.push(u);
                    }
                }
            }
            let known: Vec<&Vec<String>> =
                users.iter().filter_map(|&u| chains[u].as_ref()).collect();
            let leaves_everything =
                outputs.contains(tensor) || through_quant_to_output || known.len() < users.len();
            // The scopes this tensor leaves: some consumer runs outside them.
            let left: Vec<String> = chain
                .iter()
                .enumerate()
                .filter(|(depth, _)| {
                    leaves_everything || known.iter().any(|c| c.get(*depth) != chain.get(*depth))
                })
                .map(|(_, scope)| scope.clone())
                .collect();
            let name = match left.last() {
                Some(innermost) => innermost.clone(),
                None => {
                    // `torch.flatten` before a classifier is a Flatten in legacy exports and a
                    // Reshape (`view`) in dynamo ones: one name for both.
                    let head_flatten = node.op_type == "Reshape"
                        && chain.is_empty()
                        && !users.is_empty()
                        && users
                            .iter()
                            .all(|&u| matches!(nodes[u].op_type.as_str(), "Gemm" | "MatMul"));
                    let op = if head_flatten {
                        "flatten".to_owned()
                    } else {
                        node.op_type.to_lowercase()
                    };
                    let base = match chain.last() {
                        Some(module) => format!("{module}.{op}"),
                        None => op,
                    };
                    let count = op_counts.entry(base.clone()).or_insert(0);
                    *count += 1;
                    if *count == 1 {
                        base
                    } else {
                        format!("{base}_{}", *count - 1)
                    }
                }
            };
            let outer: Vec<String> = left.iter().rev().skip(1).cloned().collect();
            let keep = !generated(node, tensor);
            wanted.push((tensor.clone(), name, outer, keep, !left.is_empty()));
        }
    }
    // Second pass: names chosen by people stay; module paths made unique in graph order.
    let mut taken: HashSet<String> = wanted.iter().filter(|w| w.3).map(|w| w.0.clone()).collect();
    let mut names: HashMap<String, LayerName> = HashMap::new();
    for (tensor, name, _, keep, _) in &wanted {
        if *keep {
            names.insert(
                tensor.clone(),
                LayerName {
                    name: tensor.clone(),
                    aliases: Vec::new(),
                },
            );
            continue;
        }
        let mut unique = name.clone();
        let mut k = 0;
        while taken.contains(&unique) {
            k += 1;
            unique = format!("{name}_{k}");
        }
        taken.insert(unique.clone());
        names.insert(
            tensor.clone(),
            LayerName {
                name: unique,
                aliases: Vec::new(),
            },
        );
    }
    let mut claimed: HashSet<String> = HashSet::new();
    for (tensor, module, outer, keep, from_scope) in &wanted {
        let Some(entry) = names.get(tensor) else {
            continue;
        };
        let mut aliases: Vec<String> = Vec::new();
        // Kept names: the module path first; module-path names: the tensor name last.
        let candidates: Vec<&String> = if *keep {
            std::iter::once(module)
                .filter(|_| *from_scope)
                .chain(outer)
                .collect()
        } else {
            outer.iter().chain([tensor]).collect()
        };
        for alias in candidates {
            if *alias != entry.name && !taken.contains(alias) && claimed.insert(alias.clone()) {
                aliases.push(alias.clone());
            }
        }
        if let Some(entry) = names.get_mut(tensor) {
            entry.aliases = aliases;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::StringStringEntryProto;

    fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> NodeProto {
        let mut n = NodeProto::new();
        n.op_type = op.to_owned();
        n.name = name.to_owned();
        n.input = inputs.iter().map(|s| (*s).to_owned()).collect();
        n.output = vec![output.to_owned()];
        n
    }

    fn dynamo(op: &str, scopes: &[&str], inputs: &[&str], output: &str) -> NodeProto {
        let mut n = node(op, &format!("node_{output}"), inputs, output);
        let list: Vec<String> = scopes.iter().map(|s| format!("'{s}'")).collect();
        let mut p = StringStringEntryProto::new();
        p.key = NAME_SCOPES.to_owned();
        p.value = format!("[{}]", list.join(", "));
        n.metadata_props.push(p);
        n
    }

    fn table(names: &HashMap<String, LayerName>, tensors: &[&str]) -> Vec<(String, Vec<String>)> {
        tensors
            .iter()
            .map(|t| {
                let n = &names[*t];
                (n.name.clone(), n.aliases.clone())
            })
            .collect()
    }

    #[test]
    fn python_lists_parse() {
        assert_eq!(
            parse_str_list(r#"['', 'layer1.0', "it's", 'a\'b']"#).unwrap(),
            ["", "layer1.0", "it's", "a'b"]
        );
        assert_eq!(parse_str_list("[]").unwrap(), Vec::<String>::new());
        assert!(parse_str_list("layer1").is_none());
    }

    #[test]
    fn legacy_scopes_become_module_paths() {
        let n = node("Relu", "/layer1/layer1.0/relu_1/Relu", &[], "x");
        assert_eq!(
            module_chain(&n).unwrap(),
            ["layer1", "layer1.0", "layer1.0.relu_1"]
        );
        let n = node("Add", "/encoder/layers/encoder_layer_0/Add_1", &[], "x");
        assert_eq!(
            module_chain(&n).unwrap(),
            [
                "encoder",
                "encoder.layers",
                "encoder.layers.encoder_layer_0"
            ]
        );
        assert_eq!(
            module_chain(&node("Flatten", "/Flatten", &[], "x")).unwrap(),
            Vec::<String>::new()
        );
        assert!(module_chain(&node("Relu", "conv1_relu", &[], "x")).is_none());
        // Numbered children below the top level (MobileNetV3's blocks), and a wrapper.
        let n = node(
            "Relu",
            "/features/features.1/block/block.0/block.0.2/Relu",
            &[],
            "x",
        );
        assert_eq!(
            module_chain(&n).unwrap().last().unwrap(),
            "features.1.block.0.2"
        );
        let n = node("Relu", "/model/layer1/layer1.0/relu/Relu", &[], "x");
        assert_eq!(
            module_chain(&n).unwrap(),
            [
                "model",
                "model.layer1",
                "model.layer1.0",
                "model.layer1.0.relu"
            ]
        );
    }

    /// A ResNet basic block, `relu(bn2(conv2(relu(bn1(conv1 x)))) + x)`, as both exporters
    /// write it, gets the same names.
    #[test]
    fn both_exporters_name_a_basic_block_alike() {
        let legacy = [
            node(
                "Conv",
                "/layer1/layer1.0/conv1/Conv",
                &["in"],
                "/layer1/layer1.0/conv1/Conv_output_0",
            ),
            node(
                "Relu",
                "/layer1/layer1.0/relu/Relu",
                &["/layer1/layer1.0/conv1/Conv_output_0"],
                "/layer1/layer1.0/relu/Relu_output_0",
            ),
            node(
                "Conv",
                "/layer1/layer1.0/conv2/Conv",
                &["/layer1/layer1.0/relu/Relu_output_0"],
                "/layer1/layer1.0/conv2/Conv_output_0",
            ),
            node(
                "Add",
                "/layer1/layer1.0/Add",
                &["/layer1/layer1.0/conv2/Conv_output_0", "in"],
                "/layer1/layer1.0/Add_output_0",
            ),
            node(
                "Relu",
                "/layer1/layer1.0/relu_1/Relu",
                &["/layer1/layer1.0/Add_output_0"],
                "/layer1/layer1.0/relu_1/Relu_output_0",
            ),
            node(
                "Flatten",
                "/Flatten",
                &["/layer1/layer1.0/relu_1/Relu_output_0"],
                "/Flatten_output_0",
            ),
            node("Gemm", "/fc/Gemm", &["/Flatten_output_0"], "logits"),
        ];
        let b = |m: &str, fx: &str| -> Vec<&'static str> {
            let mut v: Vec<&'static str> = vec!["", "layer1", "layer1.0"];
            if !m.is_empty() {
                v.push(Box::leak(m.to_owned().into_boxed_str()));
            }
            v.push(Box::leak(fx.to_owned().into_boxed_str()));
            v
        };
        let dynamo_nodes = [
            dynamo("Conv", &b("layer1.0.conv1", "conv2d"), &["in"], "conv2d"),
            dynamo("Relu", &b("layer1.0.relu", "relu_1"), &["conv2d"], "relu_1"),
            dynamo(
                "Conv",
                &b("layer1.0.conv2", "conv2d_1"),
                &["relu_1"],
                "conv2d_1",
            ),
            dynamo("Add", &b("", "add_7"), &["conv2d_1", "in"], "add_7"),
            dynamo("Relu", &b("layer1.0.relu", "relu_2"), &["add_7"], "relu_2"),
            dynamo("Flatten", &["", "flatten"], &["relu_2"], "flatten"),
            dynamo("Gemm", &["", "fc", "linear"], &["flatten"], "linear"),
        ];
        let expected = [
            "layer1.0.conv1",
            "layer1.0.relu",
            "layer1.0.conv2",
            "layer1.0.add",
            "layer1.0.relu_1",
            "flatten",
            "fc",
        ];
        let l = layer_names(&legacy, &["logits".to_owned()]);
        let d = layer_names(&dynamo_nodes, &["linear".to_owned()]);
        let tensors = |nodes: &[NodeProto]| -> Vec<String> {
            nodes.iter().map(|n| n.output[0].clone()).collect()
        };
        for (names, nodes) in [(&l, &legacy[..]), (&d, &dynamo_nodes[..])] {
            let got: Vec<String> = tensors(nodes)
                .iter()
                .map(|t| names[t].name.clone())
                .collect();
            assert_eq!(got[..6], expected[..6]);
        }
        // The legacy export's output was named by hand (`output_names`): it stays, and the
        // module path selects it too; the adapter gives the dynamo one the alias `logits`.
        assert_eq!(d["linear"].name, "fc");
        assert_eq!(l["logits"].name, "logits");
        assert_eq!(l["logits"].aliases, ["fc"]);
        // The block's output also answers to the block and the stage, and to its tensor name.
        let t = tensors(&legacy);
        assert_eq!(
            table(&l, &[t[4].as_str()]),
            [(
                "layer1.0.relu_1".to_owned(),
                vec!["layer1.0".to_owned(), "layer1".to_owned(), t[4].clone()]
            )]
        );
        assert_eq!(d["relu_2"].aliases, ["layer1.0", "layer1", "relu_2"]);
    }

    #[test]
    fn a_rewritten_graph_keeps_the_names_its_tensors_had() {
        // ONNX Runtime's quantiser removed the Relu; the Conv now writes the Relu's tensor.
        let nodes = [
            node("Conv", "/conv1/Conv", &["x"], "/relu/Relu_output_0"),
            node(
                "MaxPool",
                "/maxpool/MaxPool",
                &["/relu/Relu_output_0"],
                "/maxpool/MaxPool_output_0",
            ),
        ];
        let names = layer_names(&nodes, &["/maxpool/MaxPool_output_0".to_owned()]);
        assert_eq!(names["/relu/Relu_output_0"].name, "relu");
        assert_eq!(names["/maxpool/MaxPool_output_0"].name, "maxpool");
    }

    #[test]
    fn names_people_chose_stay_with_the_module_path_as_alias() {
        // The demo CNN: legacy scopes, tensors renamed by hand, `output_names=["logits"]`.
        let nodes = [
            node("Gemm", "/fc1/Gemm", &["flatten"], "fc1_pre"),
            node("Relu", "/Relu_2", &["fc1_pre"], "fc1"),
            node("Gemm", "/fc2/Gemm", &["fc1"], "logits"),
        ];
        let names = layer_names(&nodes, &["logits".to_owned()]);
        assert_eq!(names["fc1_pre"].name, "fc1_pre");
        assert!(
            names["fc1_pre"].aliases.is_empty(),
            "'fc1' is another layer's name"
        );
        assert_eq!(names["fc1"].name, "fc1");
        assert!(
            names["fc1"].aliases.is_empty(),
            "a top-level op has no module path"
        );
        assert_eq!(names["logits"].name, "logits");
        assert_eq!(names["logits"].aliases, ["fc2"]);
    }

    #[test]
    fn names_are_unique_and_hand_written_graphs_keep_theirs() {
        let nodes = [
            dynamo("Relu", &["", "act", "relu"], &["x"], "relu"),
            dynamo("Relu", &["", "act", "relu_1"], &["relu"], "relu_1"),
            dynamo("Relu", &["", "act", "relu_2"], &["relu_1"], "relu_2"),
            node("Relu", "plain", &["relu_2"], "plain_out"),
        ];
        let names = layer_names(&nodes, &["plain_out".to_owned()]);
        // Three calls of one module, each feeding the next: only the last leaves it.
        assert_eq!(names["relu"].name, "act.relu");
        assert_eq!(names["relu_1"].name, "act.relu_1");
        assert_eq!(names["relu_2"].name, "act");
        assert!(!names.contains_key("plain_out"));
    }
}
