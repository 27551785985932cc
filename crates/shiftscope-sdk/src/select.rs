//! Layer selection: which of a model's candidate layers to record, from what a user types
//! (`default`, `all`, `all-relu`, `blocks`, `kind:conv`, `role:pool`, `re:^layer4`, or exact
//! names), for any model adapter.

use regex::Regex;

use crate::{LayerKind, ModelDescription, PluginError};

/// One selector, parsed.
#[derive(Clone, Debug)]
pub enum LayerSelector {
    /// The adapter's default selection.
    Default,
    /// Every candidate layer.
    All,
    /// Every layer produced by a `Relu`.
    AllRelu,
    /// Every layer of a kind.
    Kind(LayerKind),
    /// Every layer with a role (`block` for transformer/residual block outputs).
    Role(String),
    /// Every layer whose name matches.
    Regex(Regex),
    /// One layer by exact name.
    Name(String),
}

impl LayerSelector {
    /// Parses one selector.
    pub fn parse(text: &str) -> Result<LayerSelector, PluginError> {
        let text = text.trim();
        Ok(match text {
            "default" => LayerSelector::Default,
            "all" => LayerSelector::All,
            "all-relu" => LayerSelector::AllRelu,
            "blocks" => LayerSelector::Role("block".to_owned()),
            _ => {
                if let Some(kind) = text.strip_prefix("kind:") {
                    LayerSelector::Kind(match kind {
                        "conv" => LayerKind::Conv,
                        "tokens" => LayerKind::Tokens,
                        "dense" => LayerKind::Dense,
                        "logits" => LayerKind::Logits,
                        other => {
                            return Err(PluginError::invalid_argument(format!(
                                "unknown layer kind '{other}' (conv, tokens, dense, logits)"
                            )));
                        }
                    })
                } else if let Some(role) = text.strip_prefix("role:") {
                    LayerSelector::Role(role.to_owned())
                } else if let Some(pattern) = text.strip_prefix("re:") {
                    LayerSelector::Regex(Regex::new(pattern).map_err(|e| {
                        PluginError::invalid_argument(format!("layer regex '{pattern}': {e}"))
                    })?)
                } else if text.is_empty() {
                    return Err(PluginError::invalid_argument("empty layer selector"));
                } else {
                    LayerSelector::Name(text.to_owned())
                }
            }
        })
    }
}

/// The names of the layers chosen by `selectors` (comma-separated lists allowed), in network
/// order. No selector means the default selection. A name that is not a layer, or a selection
/// that matches nothing, is an error that says what exists.
pub fn select_layers(
    description: &ModelDescription,
    selectors: &[String],
) -> Result<Vec<String>, PluginError> {
    let parsed: Vec<LayerSelector> = if selectors.iter().all(|s| s.trim().is_empty()) {
        vec![LayerSelector::Default]
    } else {
        selectors
            .iter()
            .flat_map(|s| s.split(','))
            .filter(|s| !s.trim().is_empty())
            .map(LayerSelector::parse)
            .collect::<Result<_, _>>()?
    };
    for selector in &parsed {
        if let LayerSelector::Name(name) = selector
            && description.layer(name).is_none()
        {
            let names: Vec<&str> = description.layers.iter().map(|l| l.name.as_str()).collect();
            return Err(PluginError::not_found(format!(
                "no layer named '{name}'; the model has: {}",
                names.join(", ")
            )));
        }
    }
    let chosen: Vec<String> = description
        .layers
        .iter()
        .filter(|layer| {
            parsed.iter().any(|selector| match selector {
                LayerSelector::Default => layer.default_selected,
                LayerSelector::All => true,
                LayerSelector::AllRelu => layer.op == "Relu",
                LayerSelector::Kind(kind) => layer.kind == *kind,
                LayerSelector::Role(role) => &layer.role == role,
                LayerSelector::Regex(re) => {
                    re.is_match(&layer.name) || layer.aliases.iter().any(|a| re.is_match(a))
                }
                LayerSelector::Name(name) => description
                    .layer(name)
                    .is_some_and(|l| l.name == layer.name),
            })
        })
        .map(|layer| layer.name.clone())
        .collect();
    if chosen.is_empty() {
        return Err(PluginError::not_found(format!(
            "the selection '{}' matches no layer",
            selectors.join(",")
        )));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LayerInfo;

    fn layer(name: &str, op: &str, kind: LayerKind, default: bool, role: &str) -> LayerInfo {
        LayerInfo {
            name: name.into(),
            op: op.into(),
            kind,
            shape: vec![4],
            neurons: 4,
            default_selected: default,
            role: role.into(),
            receptive_field: None,
            aliases: Vec::new(),
        }
    }

    fn description() -> ModelDescription {
        ModelDescription {
            inputs: vec![],
            layers: vec![
                layer("conv1", "Relu", LayerKind::Dense, true, "activation"),
                layer("add1", "Add", LayerKind::Dense, false, ""),
                layer("block1", "Add", LayerKind::Dense, true, "block"),
                layer("fc", "Gemm", LayerKind::Dense, false, ""),
                layer("logits", "Gemm", LayerKind::Logits, true, "logits"),
            ],
            class_names: vec![],
            num_classes: 4,
            notes: vec![],
            data_files: vec![],
        }
    }

    fn select(s: &[&str]) -> Result<Vec<String>, PluginError> {
        let owned: Vec<String> = s.iter().map(|x| (*x).to_owned()).collect();
        select_layers(&description(), &owned)
    }

    #[test]
    fn selectors_union_in_network_order() {
        assert_eq!(select(&[]).unwrap(), ["conv1", "block1", "logits"]);
        assert_eq!(select(&["all"]).unwrap().len(), 5);
        assert_eq!(select(&["all-relu"]).unwrap(), ["conv1"]);
        assert_eq!(select(&["blocks"]).unwrap(), ["block1"]);
        assert_eq!(select(&["kind:logits,fc"]).unwrap(), ["fc", "logits"]);
        assert_eq!(
            select(&["re:^add|^fc$", "logits"]).unwrap(),
            ["add1", "fc", "logits"]
        );
    }

    #[test]
    fn aliases_select_the_layer_under_its_name() {
        let mut d = description();
        d.layers[2].aliases = vec!["/layer1/Add_output_0".into(), "layer1".into()];
        let pick = |s: &str| select_layers(&d, &[s.to_owned()]);
        assert_eq!(pick("/layer1/Add_output_0").unwrap(), ["block1"]);
        assert_eq!(pick("layer1,block1").unwrap(), ["block1"]);
        assert_eq!(pick("re:^layer1$").unwrap(), ["block1"]);
        assert_eq!(d.layer("layer1").unwrap().name, "block1");
        assert!(pick("layer2").is_err());
    }

    #[test]
    fn unknown_names_and_empty_matches_are_clear_errors() {
        let e = select(&["fc9"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("no layer named 'fc9'; the model has: conv1"),
            "{e}"
        );
        assert!(
            select(&["re:^zzz"])
                .unwrap_err()
                .to_string()
                .contains("matches no layer")
        );
        assert!(select(&["kind:pixels"]).is_err());
        assert!(select(&["re:("]).is_err());
    }
}
