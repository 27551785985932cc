//! The Study panel's search: `layer:index` selects a neuron (the layer by name or position);
//! otherwise filters `score op value` joined with `&&` (`spurious > 0.6 && layer == fc1`).
//! Errors are values with a message for the panel, never panics.

use shiftscope_analysis::NeuronId;

use crate::state::Score;

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// Longest first, so that `>=` is not read as `>`.
    const TOKENS: [(&'static str, Op); 6] = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        (">", Op::Gt),
        ("<", Op::Lt),
    ];

    /// Whether `a op b` holds (false for NaN, except `!=`).
    pub fn holds(self, a: f32, b: f32) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// One condition of a filter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clause {
    /// A score compared with a number (an undefined score never matches).
    Score {
        /// Which score.
        score: Score,
        /// How.
        op: Op,
        /// With what.
        value: f32,
    },
    /// In (or, with `equal: false`, not in) a layer.
    Layer {
        /// Index into the manifest's layers.
        layer: usize,
        /// `==` or `!=`.
        equal: bool,
    },
}

/// A parsed search.
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    /// Empty: every neuron.
    All,
    /// `layer:index`: one neuron.
    Neuron(NeuronId),
    /// Neurons meeting every clause.
    Filter(Vec<Clause>),
}

/// Why a search could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// No layer by that name or position.
    #[error("no layer `{0}` (give its name or its position from 0)")]
    NoLayer(String),
    /// The index is past the layer's neurons.
    #[error("layer {layer} has {neurons} neurons, no neuron {index}")]
    NoNeuron {
        /// Layer name.
        layer: String,
        /// Its neurons.
        neurons: usize,
        /// Asked for.
        index: usize,
    },
    /// Not a number where one was expected.
    #[error("`{0}` is not a number")]
    NotANumber(String),
    /// A field that is neither a score nor `layer`.
    #[error("unknown field `{0}` (spurious, novelty, shift, rafegas, morcos, max, layer)")]
    UnknownField(String),
    /// A clause without a comparison.
    #[error("`{0}` has no comparison (> >= < <= == !=)")]
    NoOperator(String),
    /// `layer` compared other than by `==`/`!=`.
    #[error("a layer is compared with == or != only")]
    LayerOperator,
    /// Empty clause (`a && && b`).
    #[error("empty condition")]
    Empty,
}

/// A layer as the search knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerName<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its neurons.
    pub neurons: usize,
}

fn find_layer(layers: &[LayerName<'_>], text: &str) -> Result<usize, SearchError> {
    let text = text.trim();
    if let Some(i) = layers.iter().position(|l| l.name == text) {
        return Ok(i);
    }
    if let Some(i) = layers
        .iter()
        .position(|l| l.name.eq_ignore_ascii_case(text))
    {
        return Ok(i);
    }
    match text.parse::<usize>() {
        Ok(i) if i < layers.len() => Ok(i),
        _ => Err(SearchError::NoLayer(text.to_string())),
    }
}

fn find_op(clause: &str) -> Option<(usize, &'static str, Op)> {
    // The first operator from the left, preferring the longer token at the same place.
    let mut best: Option<(usize, &'static str, Op)> = None;
    for (token, op) in Op::TOKENS {
        if let Some(at) = clause.find(token) {
            let better = match best {
                None => true,
                Some((b, t, _)) => at < b || (at == b && token.len() > t.len()),
            };
            if better {
                best = Some((at, token, op));
            }
        }
    }
    best
}

fn parse_clause(clause: &str, layers: &[LayerName<'_>]) -> Result<Clause, SearchError> {
    let clause = clause.trim();
    if clause.is_empty() {
        return Err(SearchError::Empty);
    }
    let (at, token, op) =
        find_op(clause).ok_or_else(|| SearchError::NoOperator(clause.to_string()))?;
    let field = clause[..at].trim();
    let value = clause[at + token.len()..].trim();
    if field.eq_ignore_ascii_case("layer") {
        let equal = match op {
            Op::Eq => true,
            Op::Ne => false,
            _ => return Err(SearchError::LayerOperator),
        };
        return Ok(Clause::Layer {
            layer: find_layer(layers, value)?,
            equal,
        });
    }
    let score = Score::from_name(field).ok_or_else(|| SearchError::UnknownField(field.into()))?;
    let value = value
        .parse::<f32>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| SearchError::NotANumber(value.to_string()))?;
    Ok(Clause::Score { score, op, value })
}

/// Reads a search against the store's layers.
pub fn parse(text: &str, layers: &[LayerName<'_>]) -> Result<Query, SearchError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Query::All);
    }
    if find_op(text).is_none()
        && !text.contains("&&")
        && let Some((layer, index)) = text.rsplit_once(':')
    {
        let l = find_layer(layers, layer)?;
        let index = index
            .trim()
            .parse::<usize>()
            .map_err(|_| SearchError::NotANumber(index.trim().to_string()))?;
        let neurons = layers[l].neurons;
        if index >= neurons {
            return Err(SearchError::NoNeuron {
                layer: layers[l].name.to_string(),
                neurons,
                index,
            });
        }
        return Ok(Query::Neuron(NeuronId {
            layer: l,
            neuron: index,
        }));
    }
    text.split("&&")
        .map(|c| parse_clause(c, layers))
        .collect::<Result<Vec<_>, _>>()
        .map(Query::Filter)
}

/// The values a filter reads of one neuron.
pub trait Fields {
    /// Its layer.
    fn layer(&self) -> usize;
    /// A score (NaN: undefined).
    fn score(&self, score: Score) -> f32;
}

impl Query {
    /// Whether a neuron passes (`Neuron` queries pass that neuron only).
    pub fn matches(&self, id: NeuronId, fields: &impl Fields) -> bool {
        match self {
            Query::All => true,
            Query::Neuron(n) => *n == id,
            Query::Filter(clauses) => clauses.iter().all(|c| match *c {
                Clause::Score { score, op, value } => {
                    let v = fields.score(score);
                    v.is_finite() && op.holds(v, value)
                }
                Clause::Layer { layer, equal } => (fields.layer() == layer) == equal,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> Vec<LayerName<'static>> {
        vec![
            LayerName {
                name: "conv1",
                neurons: 8,
            },
            LayerName {
                name: "fc1",
                neurons: 16,
            },
            LayerName {
                name: "/layer1/0/Relu:0",
                neurons: 4,
            },
        ]
    }

    #[test]
    fn neuron_by_name_or_position() {
        let l = layers();
        let fc1_12 = Query::Neuron(NeuronId {
            layer: 1,
            neuron: 12,
        });
        assert_eq!(parse("fc1:12", &l), Ok(fc1_12.clone()));
        assert_eq!(parse("  FC1 : 12 ", &l), Ok(fc1_12.clone()));
        assert_eq!(parse("1:12", &l), Ok(fc1_12));
        // A name holding a colon: the index is after the last one.
        assert_eq!(
            parse("/layer1/0/Relu:0:3", &l),
            Ok(Query::Neuron(NeuronId {
                layer: 2,
                neuron: 3
            }))
        );
        assert_eq!(parse("", &l), Ok(Query::All));
        assert_eq!(parse("   ", &l), Ok(Query::All));
    }

    #[test]
    fn neuron_errors() {
        let l = layers();
        assert_eq!(parse("fc9:1", &l), Err(SearchError::NoLayer("fc9".into())));
        assert_eq!(parse("7:1", &l), Err(SearchError::NoLayer("7".into())));
        assert_eq!(parse("fc1:x", &l), Err(SearchError::NotANumber("x".into())));
        assert!(matches!(
            parse("fc1:16", &l),
            Err(SearchError::NoNeuron { index: 16, .. })
        ));
        assert!(matches!(
            parse("fc1:-1", &l),
            Err(SearchError::NotANumber(_))
        ));
    }

    #[test]
    fn filters() {
        let l = layers();
        assert_eq!(
            parse("spurious > 0.6 && layer == fc1", &l),
            Ok(Query::Filter(vec![
                Clause::Score {
                    score: Score::Spurious,
                    op: Op::Gt,
                    value: 0.6
                },
                Clause::Layer {
                    layer: 1,
                    equal: true
                },
            ]))
        );
        assert_eq!(
            parse("max>=2&&Morcos<=.5&&novelty<-1&&layer!=0&&shift==0", &l),
            Ok(Query::Filter(vec![
                Clause::Score {
                    score: Score::Max,
                    op: Op::Ge,
                    value: 2.0
                },
                Clause::Score {
                    score: Score::Morcos,
                    op: Op::Le,
                    value: 0.5
                },
                Clause::Score {
                    score: Score::Novelty,
                    op: Op::Lt,
                    value: -1.0
                },
                Clause::Layer {
                    layer: 0,
                    equal: false
                },
                Clause::Score {
                    score: Score::Shift,
                    op: Op::Eq,
                    value: 0.0
                },
            ]))
        );
    }

    #[test]
    fn filter_errors() {
        let l = layers();
        assert_eq!(
            parse("spurious >", &l),
            Err(SearchError::NotANumber(String::new()))
        );
        assert_eq!(
            parse("bogus > 1", &l),
            Err(SearchError::UnknownField("bogus".into()))
        );
        assert_eq!(parse("layer > 1", &l), Err(SearchError::LayerOperator));
        assert_eq!(parse("spurious > 0.5 && ", &l), Err(SearchError::Empty));
        assert_eq!(
            parse("spurious > nan", &l),
            Err(SearchError::NotANumber("nan".into()))
        );
        assert_eq!(
            parse("hello", &l),
            Err(SearchError::NoOperator("hello".into()))
        );
        assert_eq!(
            parse("layer == fc7", &l),
            Err(SearchError::NoLayer("fc7".into()))
        );
        // Every error has a message for the panel.
        assert!(!SearchError::Empty.to_string().is_empty());
    }

    struct F(usize, f32);
    impl Fields for F {
        fn layer(&self) -> usize {
            self.0
        }
        fn score(&self, s: Score) -> f32 {
            if s == Score::Spurious {
                self.1
            } else {
                f32::NAN
            }
        }
    }

    #[test]
    fn matching() {
        let l = layers();
        let q = parse("spurious > 0.6 && layer == fc1", &l).unwrap();
        let id = NeuronId {
            layer: 1,
            neuron: 0,
        };
        assert!(q.matches(id, &F(1, 0.7)));
        assert!(!q.matches(id, &F(1, 0.6)));
        assert!(!q.matches(id, &F(0, 0.7)));
        assert!(!q.matches(id, &F(1, f32::NAN)));
        let q = parse("morcos >= 0", &l).unwrap();
        assert!(!q.matches(id, &F(1, 0.7)), "undefined never matches");
        assert!(Query::All.matches(id, &F(0, f32::NAN)));
        assert!(Query::Neuron(id).matches(id, &F(0, 0.0)));
    }
}
