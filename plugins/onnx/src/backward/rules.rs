//! The backward rules, one an op: given the gradient of a node's output, the gradient
//! contributions of its inputs that depend on the image, as ONNX nodes.

use std::collections::HashSet;

use onnx_protobuf::{NodeProto, tensor_proto::DataType};
use shiftscope_sdk::PluginError;

use super::{Builder, Forward, attr, bad, float_attr, int, ints, string_attr, unbroadcast};
use crate::graph::{int_attr, ints_attr};

/// The gradient contributions of `node`'s inputs that depend on the image, given `dy` of its
/// (first) output.
pub(super) fn rule(
    b: &mut Builder,
    forward: &Forward<'_>,
    node: &NodeProto,
    dy: &str,
    dys: &[Option<String>],
    live: &HashSet<&str>,
) -> Result<Vec<(String, String)>, PluginError> {
    let needs = |i: usize| {
        node.input
            .get(i)
            .filter(|t| !t.is_empty() && live.contains(t.as_str()))
            .cloned()
    };
    let x = node.input.first().map(String::as_str).unwrap_or_default();
    let no_rule = |why: &str| {
        bad(
            forward.path,
            format!(
                "no backward rule for {} node '{}'{why}",
                node.op_type, node.name
            ),
        )
    };
    // Only the first input of most ops carries the image; a weight that depends on it
    // (a dynamic weight) has no rule here.
    let only_first = || -> Result<(), PluginError> {
        if (1..node.input.len()).any(|i| needs(i).is_some()) {
            Err(no_rule(" with an image-dependent second input"))
        } else {
            Ok(())
        }
    };
    let mut out = Vec::new();
    match node.op_type.as_str() {
        "Identity" | "Dropout" => {
            out.extend(needs(0).map(|t| (t, dy.to_owned())));
        }
        "Cast" => {
            // Float to float only: integer casts are shape arithmetic, never live.
            out.extend(needs(0).map(|t| (t, dy.to_owned())));
        }
        "Neg" => {
            out.extend(needs(0).map(|t| (t, b.node("Neg", &[dy], vec![]))));
        }
        "Squeeze" | "Unsqueeze" => {
            let shape = b.node("Shape", &[x], vec![]);
            out.extend(needs(0).map(|t| (t, b.node("Reshape", &[dy, &shape], vec![]))));
        }
        "Transpose" => {
            let rank = forward.rank(x, node)?;
            let perm = ints(node, "perm").unwrap_or_else(|| (0..rank as i64).rev().collect());
            let mut inverse = vec![0i64; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                if let Some(slot) = usize::try_from(p).ok().and_then(|p| inverse.get_mut(p)) {
                    *slot = i as i64;
                }
            }
            let dx = b.node("Transpose", &[dy], vec![ints_attr("perm", &inverse)]);
            out.extend(needs(0).map(|t| (t, dx)));
        }
        "Concat" => {
            let y = node.output.first().map(String::as_str).unwrap_or_default();
            let rank = forward.rank(y, node)? as i64;
            let axis = int(node, "axis", 0);
            let axis = if axis < 0 { axis + rank } else { axis };
            let mut start = 0i64;
            for (i, input) in node.input.iter().enumerate() {
                let size = match forward.full.get(input) {
                    Some(_) => forward.size(input, axis as usize, node)? as i64,
                    None => {
                        // A constant input (the class token) of unknown shape: take it from
                        // its initialiser.
                        let dims = forward
                            .initializer(input)
                            .map(|t| t.dims.clone())
                            .ok_or_else(|| {
                                no_rule(&format!(" (the size of '{input}' is unknown)"))
                            })?;
                        let offset = rank as usize - dims.len();
                        (axis as usize)
                            .checked_sub(offset)
                            .and_then(|a| dims.get(a).copied())
                            .ok_or_else(|| {
                                no_rule(&format!(" (the size of '{input}' is unknown)"))
                            })?
                    }
                };
                if needs(i).is_some() {
                    let starts = b.ints(&[start]);
                    let ends = b.ints(&[start + size]);
                    let axes = b.ints(&[axis]);
                    let piece = b.node("Slice", &[dy, &starts, &ends, &axes], vec![]);
                    out.push((input.clone(), piece));
                }
                start += size;
            }
        }
        "Split" => {
            // The outputs' gradients side by side again; zeros for an unused output.
            let mut pieces = Vec::new();
            for (k, y) in node.output.iter().enumerate() {
                match dys.get(k).cloned().flatten() {
                    Some(g) => pieces.push(g),
                    None => {
                        let shape = b.node("Shape", &[y], vec![]);
                        pieces.push(b.node("ConstantOfShape", &[&shape], vec![]));
                    }
                }
            }
            let rank = forward.rank(x, node)? as i64;
            let axis = int(node, "axis", 0);
            let axis = if axis < 0 { axis + rank } else { axis };
            let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
            let dx = b.node("Concat", &refs, vec![int_attr("axis", axis)]);
            out.extend(needs(0).map(|t| (t, dx)));
        }
        "Slice" => {
            only_first()?;
            let rank = forward.rank(x, node)?;
            let read = |i: usize| {
                node.input
                    .get(i)
                    .filter(|n| !n.is_empty())
                    .map(|n| forward.int64s(n))
            };
            let (Some(Some(starts)), Some(Some(ends))) = (read(1), read(2)) else {
                return Err(no_rule(" with computed bounds"));
            };
            let axes = match read(3) {
                Some(Some(axes)) => axes,
                Some(None) => return Err(no_rule(" with computed axes")),
                None => (0..starts.len() as i64).collect(),
            };
            if let Some(steps) = read(4)
                && steps.is_none_or(|s| s.iter().any(|&s| s != 1))
            {
                return Err(no_rule(" with steps other than 1"));
            }
            // The gradient padded back with zeros where the slice cut.
            let mut pads = vec![0i64; 2 * rank];
            for ((&start, &end), &axis) in starts.iter().zip(&ends).zip(&axes) {
                let axis = if axis < 0 { axis + rank as i64 } else { axis };
                let dim = forward.size(x, axis as usize, node)? as i64;
                let clamp = |v: i64| if v < 0 { (v + dim).max(0) } else { v.min(dim) };
                let (s0, e0) = (clamp(start), clamp(end));
                pads[axis as usize] = s0;
                pads[axis as usize + rank] = dim - e0.max(s0);
            }
            let pads = b.ints(&pads);
            out.extend(needs(0).map(|t| (t, b.node("Pad", &[dy, &pads], vec![]))));
        }
        "Gather" => {
            only_first()?;
            let rank = forward.rank(x, node)? as i64;
            let axis = int(node, "axis", 0);
            let axis = if axis < 0 { axis + rank } else { axis };
            let indices = node.input.get(1).map(String::as_str).unwrap_or_default();
            let index_rank = forward.constant(indices).map(|t| t.dims.len());
            let scalar = index_rank.map(|r| r == 0);
            let values = forward.int64s(indices);
            let (Some(scalar), Some(values)) = (scalar, values) else {
                return Err(no_rule(" with computed indices"));
            };
            let dim = forward.size(x, axis as usize, node)? as i64;
            let mut picked = Vec::with_capacity(values.len());
            for &v in &values {
                let v = if v < 0 { v + dim } else { v };
                if !(0..dim).contains(&v) {
                    return Err(no_rule(&format!(
                        " (index {v} outside the {dim} of axis {axis})"
                    )));
                }
                picked.push(v);
            }
            let single = match picked[..] {
                [index] if index_rank.is_some_and(|r| r <= 1) => Some(index),
                _ => None,
            };
            let Some(index) = single else {
                // Several indices (repeats allowed, in a table of any rank): dy, its index
                // axes flattened to one of the indices' count, added into zeros at the
                // picked positions along the axis, repeated picks summed (ScatterElements'
                // reduction, opset 16 on, which gradient_model requires).
                let count = b.ints(&[picked.len() as i64]);
                let shape = b.node("Shape", &[x], vec![]);
                let mut parts = Vec::new();
                if axis > 0 {
                    let (start, end) = (b.ints(&[0]), b.ints(&[axis]));
                    parts.push(b.node("Slice", &[&shape, &start, &end], vec![]));
                }
                parts.push(count);
                if axis + 1 < rank {
                    let (start, end) = (b.ints(&[axis + 1]), b.ints(&[rank]));
                    parts.push(b.node("Slice", &[&shape, &start, &end], vec![]));
                }
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                let flat_shape = b.node("Concat", &refs, vec![int_attr("axis", 0)]);
                let flat = b.node("Reshape", &[dy, &flat_shape], vec![]);
                let mut along = vec![1i64; rank as usize];
                along[axis as usize] = picked.len() as i64;
                let (values, along) = (b.ints(&picked), b.ints(&along));
                let column = b.node("Reshape", &[&values, &along], vec![]);
                let positions = b.node("Expand", &[&column, &flat_shape], vec![]);
                let zeros = b.node("ConstantOfShape", &[&shape], vec![]);
                let dx = b.node(
                    "ScatterElements",
                    &[&zeros, &positions, &flat],
                    vec![int_attr("axis", axis), string_attr("reduction", "add")],
                );
                out.extend(needs(0).map(|t| (t, dx)));
                return Ok(out);
            };
            // The picked slice back in place: unsqueezed (a scalar index drops the axis),
            // then zeros around it.
            let lifted = if scalar {
                let at = b.ints(&[axis]);
                b.node("Unsqueeze", &[dy, &at], vec![])
            } else {
                dy.to_owned()
            };
            let mut pads = vec![0i64; 2 * rank as usize];
            pads[axis as usize] = index;
            pads[axis as usize + rank as usize] = dim - index - 1;
            let pads = b.ints(&pads);
            out.extend(needs(0).map(|t| (t, b.node("Pad", &[&lifted, &pads], vec![]))));
        }
        "Expand" => {
            only_first()?;
            // y = x broadcast to a shape: each element of x is read at every position it was
            // copied to, so dx is dy summed back over the broadcast axes (as Add's inputs).
            if let Some(t) = needs(0) {
                let dx = unbroadcast(b, forward, node, dy, &t)?;
                out.push((t, dx));
            }
        }
        "Where" => {
            // The condition (a boolean) carries no gradient; each branch gets dy where it was
            // chosen and zero elsewhere, summed back over its broadcast axes.
            if needs(0).is_some() {
                return Err(no_rule(" with an image-dependent condition"));
            }
            let condition = node.input.first().map(String::as_str).unwrap_or_default();
            for i in 1..3 {
                let Some(t) = needs(i) else { continue };
                let zero = b.scalar(0.0);
                let chosen = if i == 1 {
                    b.node("Where", &[condition, dy, &zero], vec![])
                } else {
                    b.node("Where", &[condition, &zero, dy], vec![])
                };
                out.push((t.clone(), unbroadcast(b, forward, node, &chosen, &t)?));
            }
        }
        "Pad" => {
            if (1..node.input.len()).any(|i| needs(i).is_some()) {
                return Err(no_rule(" with an image-dependent pad value"));
            }
            let rank = forward.rank(x, node)?;
            let mode = attr(node, "mode").map_or_else(
                || "constant".to_owned(),
                |a| String::from_utf8_lossy(&a.s).into_owned(),
            );
            let input = |i: usize| node.input.get(i).filter(|n| !n.is_empty());
            // Pads as an input (opset 11 on), or the attribute of opset 2.
            let pads = match input(1) {
                Some(p) => forward
                    .int64s(p)
                    .ok_or_else(|| no_rule(" with computed pads"))?,
                None => ints(node, "pads").ok_or_else(|| no_rule(" without pads"))?,
            };
            // The axes the pads are for (opset 18 on), all of them by default.
            let axes = match input(3) {
                Some(a) => forward
                    .int64s(a)
                    .ok_or_else(|| no_rule(" with computed axes"))?,
                None => (0..rank as i64).collect(),
            };
            if pads.len() != 2 * axes.len() {
                return Err(no_rule(&format!(
                    " ({} pads for {} axes)",
                    pads.len(),
                    axes.len()
                )));
            }
            // Pads before and after, per axis of x.
            let mut before = vec![0i64; rank];
            let mut after = vec![0i64; rank];
            for (k, &axis) in axes.iter().enumerate() {
                let axis = if axis < 0 { axis + rank as i64 } else { axis };
                let Some(slot) = usize::try_from(axis).ok().filter(|&a| a < rank) else {
                    return Err(no_rule(&format!(" (axis {axis} of a rank {rank} input)")));
                };
                before[slot] = pads[k];
                after[slot] = pads[k + axes.len()];
            }
            let mut g = dy.to_owned();
            if mode == "constant" {
                // y is x with zeros (or the pad value, a constant) around it, cropped where a
                // pad is negative: dx is dy cropped where a pad is positive, padded with zeros
                // where it is negative.
                let cut: Vec<usize> = (0..rank)
                    .filter(|&a| before[a] > 0 || after[a] > 0)
                    .collect();
                if !cut.is_empty() {
                    let starts: Vec<i64> = cut.iter().map(|&a| before[a].max(0)).collect();
                    let ends: Vec<i64> = cut
                        .iter()
                        .map(|&a| if after[a] > 0 { -after[a] } else { i64::MAX })
                        .collect();
                    let cut: Vec<i64> = cut.iter().map(|&a| a as i64).collect();
                    let (starts, ends, cut) = (b.ints(&starts), b.ints(&ends), b.ints(&cut));
                    g = b.node("Slice", &[&g, &starts, &ends, &cut], vec![]);
                }
                if before.iter().chain(&after).any(|&p| p < 0) {
                    let mut zeros: Vec<i64> = before.iter().map(|&p| (-p).max(0)).collect();
                    zeros.extend(after.iter().map(|&p| (-p).max(0)));
                    let zeros = b.ints(&zeros);
                    g = b.node("Pad", &[&g, &zeros], vec![]);
                }
            } else {
                // Edge, reflect and wrap read each padded position from one position of x:
                // along each padded axis, y[j] = x[src(j)], so dx[i] = Σ_{src(j) = i} dy[j], a
                // product with the 0/1 matrix M[j, i] = [src(j) = i] along that axis.
                for axis in 0..rank {
                    let (p0, p1) = (before[axis], after[axis]);
                    if p0 == 0 && p1 == 0 {
                        continue;
                    }
                    if p0 < 0 || p1 < 0 {
                        return Err(no_rule(&format!(" in mode '{mode}' with negative pads")));
                    }
                    let n = forward.size(x, axis, node)? as i64;
                    let m = n + p0 + p1;
                    let mut matrix = vec![0f32; (m * n) as usize];
                    for j in 0..m {
                        let p = j - p0;
                        let source = match mode.as_str() {
                            "edge" => p.clamp(0, n - 1),
                            "wrap" => p.rem_euclid(n),
                            "reflect" if p0 < n && p1 < n => {
                                if p < 0 {
                                    -p
                                } else if p >= n {
                                    2 * (n - 1) - p
                                } else {
                                    p
                                }
                            }
                            "reflect" => {
                                return Err(no_rule(&format!(
                                    " in mode 'reflect' with pads {p0}, {p1} not below the \
                                     size {n} of axis {axis}"
                                )));
                            }
                            _ => return Err(no_rule(&format!(" in mode '{mode}'"))),
                        };
                        matrix[(j * n + source) as usize] = 1.0;
                    }
                    let matrix = b.floats(&[m, n], &matrix);
                    // The axis last, the product, the axis back.
                    let mut perm: Vec<i64> = (0..rank as i64).collect();
                    perm.swap(axis, rank - 1);
                    g = if axis + 1 == rank {
                        b.node("MatMul", &[&g, &matrix], vec![])
                    } else {
                        let moved = b.node("Transpose", &[&g], vec![ints_attr("perm", &perm)]);
                        let product = b.node("MatMul", &[&moved, &matrix], vec![]);
                        b.node("Transpose", &[&product], vec![ints_attr("perm", &perm)])
                    };
                }
            }
            out.extend(needs(0).map(|t| (t, g)));
        }
        "ReduceMax" | "ReduceMin" => {
            only_first()?;
            let rank = forward.rank(x, node)? as i64;
            // Axes as an attribute (before opset 18) or as an input (opset 18 on).
            let axes = match ints(node, "axes") {
                Some(axes) => axes,
                None => match node.input.get(1).filter(|a| !a.is_empty()) {
                    Some(a) => forward
                        .int64s(a)
                        .ok_or_else(|| no_rule(" whose axes are computed"))?,
                    None => Vec::new(),
                },
            };
            if axes.is_empty() && int(node, "noop_with_empty_axes", 0) != 0 {
                // No axes and the no-op flag: y = x.
                out.extend(needs(0).map(|t| (t, dy.to_owned())));
                return Ok(out);
            }
            let axes: Vec<i64> = if axes.is_empty() {
                (0..rank).collect()
            } else {
                axes.iter()
                    .map(|&a| if a < 0 { a + rank } else { a })
                    .collect()
            };
            // The gradient goes to the positions equal to the extremum, split evenly among
            // ties (as torch.amax / torch.amin, which exporters write as ReduceMax / ReduceMin;
            // torch.max(dim) would give it all to the first): dx = [x = y] · dy / #ties.
            let y = node.output.first().map(String::as_str).unwrap_or_default();
            let at = b.ints(&axes);
            let (y, dy) = if int(node, "keepdims", 1) == 0 {
                (
                    b.node("Unsqueeze", &[y, &at], vec![]),
                    b.node("Unsqueeze", &[dy, &at], vec![]),
                )
            } else {
                (y.to_owned(), dy.to_owned())
            };
            let equal = b.node("Equal", &[x, &y], vec![]);
            let mask = b.node(
                "Cast",
                &[&equal],
                vec![int_attr("to", DataType::FLOAT as i64)],
            );
            let ties = b.node("ReduceSum", &[&mask, &at], vec![int_attr("keepdims", 1)]);
            let share = b.node("Div", &[&dy, &ties], vec![]);
            out.extend(needs(0).map(|t| (t, b.node("Mul", &[&mask, &share], vec![]))));
        }
        "ScatterND" => {
            if needs(1).is_some() {
                return Err(no_rule(" with image-dependent indices"));
            }
            let reduction = attr(node, "reduction")
                .map(|a| String::from_utf8_lossy(&a.s).into_owned())
                .unwrap_or_default();
            let add = match reduction.as_str() {
                "" | "none" => false,
                "add" => true,
                other => return Err(no_rule(&format!(" with reduction '{other}'"))),
            };
            // The indices are read, not differentiated: constants, or shape arithmetic of the
            // forward graph (which the gradient graph can read as it is). Constant ones are
            // checked for repeats, whose overwrite order ONNX leaves open.
            let indices = node.input.get(1).map(String::as_str).unwrap_or_default();
            if !add
                && let (Some(t), Some(values)) =
                    (forward.constant(indices), forward.int64s(indices))
            {
                let depth = t.dims.last().map_or(0, |&d| d.max(0) as usize);
                let (dims, batched) = forward.dims(x, node)?;
                let mut seen = HashSet::new();
                for row in values.chunks(depth.max(1)) {
                    let place: Vec<i64> = row
                        .iter()
                        .zip(dims.iter().zip(batched))
                        .map(|(&i, (&d, &grows))| if i < 0 && !grows { i + d as i64 } else { i })
                        .collect();
                    if !seen.insert(place) {
                        return Err(no_rule(" with repeated indices"));
                    }
                }
            }
            // y = data with updates written at the indices: d(data) is dy with those
            // positions zeroed (overwritten, unless added), d(updates) is dy read there.
            let updates = node.input.get(2).map(String::as_str).unwrap_or_default();
            if let Some(t) = needs(0) {
                let dx = if add {
                    dy.to_owned()
                } else {
                    let shape = b.node("Shape", &[updates], vec![]);
                    let zeros = b.node("ConstantOfShape", &[&shape], vec![]);
                    b.node("ScatterND", &[dy, indices, &zeros], vec![])
                };
                out.push((t, dx));
            }
            if let Some(t) = needs(2) {
                out.push((t, b.node("GatherND", &[dy, indices], vec![])));
            }
        }
        "Einsum" => {
            let equation = attr(node, "equation")
                .map(|a| String::from_utf8_lossy(&a.s).into_owned())
                .unwrap_or_default();
            // Each operand's shape (a forward tensor's, or a constant's).
            let mut shapes = Vec::with_capacity(node.input.len());
            for t in &node.input {
                let shape = match forward.full.get(t) {
                    Some((d, batched)) => d.iter().copied().zip(batched.iter().copied()).collect(),
                    None => forward
                        .initializer(t)
                        .or_else(|| forward.constant(t))
                        .map(|i| i.dims.iter().map(|&d| (d.max(0) as usize, false)).collect())
                        .ok_or_else(|| no_rule(&format!(" (the shape of '{t}' is unknown)")))?,
                };
                shapes.push(shape);
            }
            let (terms, result) =
                einsum_terms(&equation, &shapes).map_err(|why| no_rule(&format!(" ({why})")))?;
            let c: String = result.iter().collect();
            // y = Σ over the labels not in C of Π operands; for operand A, dA is dy times the
            // other operand, summed over every label not in A: Einsum(C,B->A) (Einsum(C->A)
            // of one operand). Labels of A in neither C nor B were summed over A alone: dA is
            // the same along them, an Expand.
            for (k, term) in terms.iter().enumerate() {
                let Some(t) = needs(k) else { continue };
                let other = terms.get(1 - k).filter(|_| terms.len() == 2);
                let seen = |l: &char| result.contains(l) || other.is_some_and(|o| o.contains(l));
                let kept: String = term.iter().filter(|l| seen(l)).collect();
                let (eq, inputs) = match other {
                    Some(o) => (
                        format!("{c},{}->{kept}", o.iter().collect::<String>()),
                        vec![dy, node.input[1 - k].as_str()],
                    ),
                    None => (format!("{c}->{kept}"), vec![dy]),
                };
                let mut dx = b.node("Einsum", &inputs, vec![string_attr("equation", &eq)]);
                if kept.len() < term.len() {
                    let missing: Vec<i64> = (0..term.len())
                        .filter(|&i| !seen(&term[i]))
                        .map(|i| i as i64)
                        .collect();
                    let at = b.ints(&missing);
                    let lifted = b.node("Unsqueeze", &[&dx, &at], vec![]);
                    let shape = b.node("Shape", &[&t], vec![]);
                    dx = b.node("Expand", &[&lifted, &shape], vec![]);
                }
                out.push((t, dx));
            }
        }
        "Softmax" => {
            // dx = y ⊙ (dy − Σ_axis dy ⊙ y).
            let y = node.output.first().map(String::as_str).unwrap_or_default();
            let rank = forward.rank(x, node)? as i64;
            let axis = int(node, "axis", -1);
            let axis = if axis < 0 { axis + rank } else { axis };
            let product = b.node("Mul", &[dy, y], vec![]);
            let axes = b.ints(&[axis]);
            let sum = b.node(
                "ReduceSum",
                &[&product, &axes],
                vec![int_attr("keepdims", 1)],
            );
            let centred = b.node("Sub", &[dy, &sum], vec![]);
            out.extend(needs(0).map(|t| (t, b.node("Mul", &[y, &centred], vec![]))));
        }
        "LayerNormalization" => {
            only_first()?;
            if node.output.len() > 1 {
                return Err(no_rule(" with its mean and inverse deviation as outputs"));
            }
            let rank = forward.rank(x, node)? as i64;
            let axis = int(node, "axis", -1);
            let axis = if axis < 0 { axis + rank } else { axis };
            let eps = attr(node, "epsilon").map_or(1e-5, |a| a.f);
            let axes: Vec<i64> = (axis..rank).collect();
            let mut count = 1usize;
            for &a in &axes {
                count *= forward.size(x, a as usize, node)?;
            }
            let axes = b.ints(&axes);
            let inverse_count = b.scalar(1.0 / count as f32);
            let mean = |b: &mut Builder, t: &str| {
                let sum = b.node("ReduceSum", &[t, &axes], vec![int_attr("keepdims", 1)]);
                b.node("Mul", &[&sum, &inverse_count], vec![])
            };
            let mu = mean(b, x);
            let centred = b.node("Sub", &[x, &mu], vec![]);
            let square = b.node("Mul", &[&centred, &centred], vec![]);
            let variance = mean(b, &square);
            let epsilon = b.scalar(eps);
            let shifted = b.node("Add", &[&variance, &epsilon], vec![]);
            let sigma = b.node("Sqrt", &[&shifted], vec![]);
            let normalised = b.node("Div", &[&centred, &sigma], vec![]);
            // g = dy ⊙ scale; dx = (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)) / σ.
            let scale = node.input.get(1).map(String::as_str).unwrap_or_default();
            let g = b.node("Mul", &[dy, scale], vec![]);
            let g_mean = mean(b, &g);
            let gx = b.node("Mul", &[&g, &normalised], vec![]);
            let gx_mean = mean(b, &gx);
            let along = b.node("Mul", &[&normalised, &gx_mean], vec![]);
            let first = b.node("Sub", &[&g, &g_mean], vec![]);
            let inner = b.node("Sub", &[&first, &along], vec![]);
            out.extend(needs(0).map(|t| (t, b.node("Div", &[&inner, &sigma], vec![]))));
        }
        "Gelu" => {
            if attr(node, "approximate").is_some_and(|a| a.s == b"tanh") {
                return Err(no_rule(" with the tanh approximation"));
            }
            // d/dx x·Φ(x) = Φ(x) + x·φ(x).
            let root_half = b.scalar(std::f32::consts::FRAC_1_SQRT_2);
            let scaled = b.node("Mul", &[x, &root_half], vec![]);
            let erf = b.node("Erf", &[&scaled], vec![]);
            let one = b.scalar(1.0);
            let half = b.scalar(0.5);
            let shifted = b.node("Add", &[&erf, &one], vec![]);
            let cdf = b.node("Mul", &[&shifted, &half], vec![]);
            let square = b.node("Mul", &[x, x], vec![]);
            let minus_half = b.scalar(-0.5);
            let exponent = b.node("Mul", &[&square, &minus_half], vec![]);
            let gauss = b.node("Exp", &[&exponent], vec![]);
            let norm = b.scalar(1.0 / (2.0 * std::f32::consts::PI).sqrt());
            let pdf = b.node("Mul", &[&gauss, &norm], vec![]);
            let xpdf = b.node("Mul", &[x, &pdf], vec![]);
            let slope = b.node("Add", &[&cdf, &xpdf], vec![]);
            out.extend(needs(0).map(|t| (t, b.node("Mul", &[dy, &slope], vec![]))));
        }
        "Erf" => {
            // erf'(x) = 2/√π · exp(−x²).
            let square = b.node("Mul", &[x, x], vec![]);
            let negative = b.node("Neg", &[&square], vec![]);
            let gauss = b.node("Exp", &[&negative], vec![]);
            let norm = b.scalar(std::f32::consts::FRAC_2_SQRT_PI);
            let slope = b.node("Mul", &[&gauss, &norm], vec![]);
            out.extend(needs(0).map(|t| (t, b.node("Mul", &[dy, &slope], vec![]))));
        }
        "Sqrt" => {
            let y = node.output.first().map(String::as_str).unwrap_or_default();
            let half = b.scalar(0.5);
            let slope = b.node("Div", &[&half, y], vec![]);
            out.extend(needs(0).map(|t| (t, b.node("Mul", &[dy, &slope], vec![]))));
        }
        "Pow" => {
            if needs(1).is_some() {
                return Err(no_rule(" with an image-dependent exponent"));
            }
            // d/dx x^c = c · x^(c − 1).
            let c = node.input.get(1).map(String::as_str).unwrap_or_default();
            let one = b.scalar(1.0);
            let lower = b.node("Sub", &[c, &one], vec![]);
            let power = b.node("Pow", &[x, &lower], vec![]);
            let slope = b.node("Mul", &[&power, c], vec![]);
            out.extend(needs(0).map(|t| (t, b.node("Mul", &[dy, &slope], vec![]))));
        }
        "ReduceSum" => {
            only_first()?;
            let rank = forward.rank(x, node)? as i64;
            let axes = match node.input.get(1).filter(|a| !a.is_empty()) {
                Some(a) => forward
                    .int64s(a)
                    .ok_or_else(|| no_rule(" whose axes are computed"))?,
                None => ints(node, "axes").unwrap_or_else(|| (0..rank).collect()),
            };
            let axes: Vec<i64> = axes
                .iter()
                .map(|&a| if a < 0 { a + rank } else { a })
                .collect();
            for &a in &axes {
                forward.size(x, a as usize, node)?;
            }
            let kept = if int(node, "keepdims", 1) == 0 {
                let at = b.ints(&axes);
                b.node("Unsqueeze", &[dy, &at], vec![])
            } else {
                dy.to_owned()
            };
            let full = b.node("Shape", &[x], vec![]);
            out.extend(needs(0).map(|t| (t, b.node("Expand", &[&kept, &full], vec![]))));
        }
        "Relu" => {
            // The mask from the output (y > 0 exactly where x > 0): the input then has
            // one reader, so ONNX Runtime can fuse the Conv before it with the Relu.
            let y = node.output.first().map(String::as_str).unwrap_or_default();
            let zero = b.scalar(0.0);
            let positive = b.node("Greater", &[y, &zero], vec![]);
            let mask = b.node(
                "Cast",
                &[&positive],
                vec![int_attr("to", DataType::FLOAT as i64)],
            );
            out.extend(needs(0).map(|t| (t, b.node("Mul", &[dy, &mask], vec![]))));
        }
        "Flatten" | "Reshape" => {
            only_first()?;
            let shape = b.node("Shape", &[x], vec![]);
            out.extend(needs(0).map(|t| (t, b.node("Reshape", &[dy, &shape], vec![]))));
        }
        "Add" | "Sub" => {
            for i in 0..2 {
                if let Some(t) = needs(i) {
                    let mut dx = unbroadcast(b, forward, node, dy, &t)?;
                    if i == 1 && node.op_type == "Sub" {
                        dx = b.node("Neg", &[&dx], vec![]);
                    }
                    out.push((t, dx));
                }
            }
        }
        "Mul" => {
            for i in 0..2 {
                if let Some(t) = needs(i) {
                    let other = node.input[1 - i].as_str();
                    let product = b.node("Mul", &[dy, other], vec![]);
                    out.push((t.clone(), unbroadcast(b, forward, node, &product, &t)?));
                }
            }
        }
        "Div" => {
            let divisor = node.input[1].as_str();
            let quotient = b.node("Div", &[dy, divisor], vec![]);
            if let Some(t) = needs(0) {
                out.push((t.clone(), unbroadcast(b, forward, node, &quotient, &t)?));
            }
            if let Some(t) = needs(1) {
                // d(a/b)/db = −a/b² = −y/b.
                let y = node.output.first().map(String::as_str).unwrap_or_default();
                let product = b.node("Mul", &[&quotient, y], vec![]);
                let negative = b.node("Neg", &[&product], vec![]);
                out.push((t.clone(), unbroadcast(b, forward, node, &negative, &t)?));
            }
        }
        "Sigmoid" | "Tanh" => {
            let y = node.output.first().map(String::as_str).unwrap_or_default();
            let one = b.scalar(1.0);
            // σ' = y (1 − y); tanh' = 1 − y².
            let slope = if node.op_type == "Sigmoid" {
                let rest = b.node("Sub", &[&one, y], vec![]);
                b.node("Mul", &[y, &rest], vec![])
            } else {
                let square = b.node("Mul", &[y, y], vec![]);
                b.node("Sub", &[&one, &square], vec![])
            };
            out.extend(needs(0).map(|t| (t, b.node("Mul", &[dy, &slope], vec![]))));
        }
        "HardSigmoid" | "HardSwish" => {
            // HardSigmoid: clip(αx + β, 0, 1); HardSwish: x · HardSigmoid(x) with α = 1/6.
            let (alpha, beta) = if node.op_type == "HardSwish" {
                (1.0 / 6.0, 0.5)
            } else {
                (
                    attr(node, "alpha").map_or(0.2, |a| a.f),
                    attr(node, "beta").map_or(0.5, |a| a.f),
                )
            };
            let a = b.scalar(alpha);
            let c = b.scalar(beta);
            let scaled = b.node("Mul", &[x, &a], vec![]);
            let line = b.node("Add", &[&scaled, &c], vec![]);
            let zero = b.scalar(0.0);
            let one = b.scalar(1.0);
            let above = b.node("Greater", &[&line, &zero], vec![]);
            let below = b.node("Less", &[&line, &one], vec![]);
            let inside = b.node("And", &[&above, &below], vec![]);
            let mask = b.node(
                "Cast",
                &[&inside],
                vec![int_attr("to", DataType::FLOAT as i64)],
            );
            let slope = b.node("Mul", &[&mask, &a], vec![]);
            let slope = if node.op_type == "HardSwish" {
                // d/dx x·h(x) = h(x) + x·h'(x).
                let h = b.node(
                    "HardSigmoid",
                    &[x],
                    vec![float_attr("alpha", alpha), float_attr("beta", beta)],
                );
                let xs = b.node("Mul", &[x, &slope], vec![]);
                b.node("Add", &[&h, &xs], vec![])
            } else {
                slope
            };
            out.extend(needs(0).map(|t| (t, b.node("Mul", &[dy, &slope], vec![]))));
        }
        "Clip" => {
            if (1..node.input.len()).any(|i| needs(i).is_some()) {
                return Err(no_rule(" with image-dependent bounds"));
            }
            // Inside the bounds the slope is 1, outside 0 (as PyTorch's hardtanh/relu6).
            let bound = |i: usize, attribute: &str, b: &mut Builder| -> Option<String> {
                match node.input.get(i).filter(|n| !n.is_empty()) {
                    Some(name) => Some(name.clone()),
                    None => attr(node, attribute).map(|a| b.scalar(a.f)),
                }
            };
            let mut mask: Option<String> = None;
            for (i, attribute, op) in [(1, "min", "Greater"), (2, "max", "Less")] {
                if let Some(limit) = bound(i, attribute, b) {
                    let side = b.node(op, &[x, &limit], vec![]);
                    mask = Some(match mask {
                        Some(m) => b.node("And", &[&m, &side], vec![]),
                        None => side,
                    });
                }
            }
            let dx = match mask {
                Some(m) => {
                    let m = b.node("Cast", &[&m], vec![int_attr("to", DataType::FLOAT as i64)]);
                    b.node("Mul", &[dy, &m], vec![])
                }
                None => dy.to_owned(),
            };
            out.extend(needs(0).map(|t| (t, dx)));
        }
        "LeakyRelu" => {
            let alpha = attr(node, "alpha").map_or(0.01, |a| a.f);
            let zero = b.scalar(0.0);
            let positive = b.node("Greater", &[x, &zero], vec![]);
            let one = b.scalar(1.0);
            let small = b.scalar(alpha);
            let slope = b.node("Where", &[&positive, &one, &small], vec![]);
            out.extend(needs(0).map(|t| (t, b.node("Mul", &[dy, &slope], vec![]))));
        }
        "ReduceMean" => {
            only_first()?;
            let rank = forward.rank(x, node)? as i64;
            let axes = match ints(node, "axes") {
                Some(axes) => axes,
                None => match node.input.get(1).filter(|a| !a.is_empty()) {
                    Some(a) => forward
                        .int64s(a)
                        .ok_or_else(|| no_rule(" whose axes are computed"))?,
                    None => (0..rank).collect(),
                },
            };
            let axes: Vec<i64> = axes
                .iter()
                .map(|&a| if a < 0 { a + rank } else { a })
                .collect();
            let mut count = 1usize;
            for &a in &axes {
                count *= forward.size(x, a as usize, node)?;
            }
            let kept = if int(node, "keepdims", 1) == 0 {
                let at = b.ints(&axes);
                b.node("Unsqueeze", &[dy, &at], vec![])
            } else {
                dy.to_owned()
            };
            let scale = b.scalar(1.0 / count as f32);
            let scaled = b.node("Mul", &[&kept, &scale], vec![]);
            let full = b.node("Shape", &[x], vec![]);
            out.extend(needs(0).map(|t| (t, b.node("Expand", &[&scaled, &full], vec![]))));
        }
        "GlobalAveragePool" => {
            let rank = forward.rank(x, node)?;
            let mut area = 1usize;
            for a in 2..rank {
                area *= forward.size(x, a, node)?;
            }
            let scale = b.scalar(1.0 / area as f32);
            let scaled = b.node("Mul", &[dy, &scale], vec![]);
            let full = b.node("Shape", &[x], vec![]);
            out.extend(needs(0).map(|t| (t, b.node("Expand", &[&scaled, &full], vec![]))));
        }
        "AveragePool" => {
            if attr(node, "auto_pad").is_some_and(|a| !a.s.is_empty() && a.s != b"NOTSET") {
                return Err(no_rule(" with auto_pad"));
            }
            if int(node, "ceil_mode", 0) != 0 {
                return Err(no_rule(" with ceil_mode"));
            }
            let kernel =
                ints(node, "kernel_shape").ok_or_else(|| no_rule(" without kernel_shape"))?;
            let rank = kernel.len();
            let strides = ints(node, "strides").unwrap_or_else(|| vec![1; rank]);
            let pads = ints(node, "pads").unwrap_or_else(|| vec![0; 2 * rank]);
            if pads.iter().any(|&p| p != 0) && int(node, "count_include_pad", 0) == 0 {
                // Border windows divide by fewer pixels: not one transposed convolution.
                return Err(no_rule(" with padding that is not counted"));
            }
            // Each output spreads its gradient evenly over its window: a transposed
            // depthwise convolution with a constant kernel 1/|window|.
            let y = node.output.first().map(String::as_str).unwrap_or_default();
            let (x_shape, _) = forward.dims(x, node)?;
            let (y_shape, _) = forward.dims(y, node)?;
            let channels = forward.size(x, 1, node)?;
            let window: i64 = kernel.iter().product();
            let mut output_padding = Vec::with_capacity(rank);
            for axis in 0..rank {
                let made =
                    (y_shape[2 + axis] as i64 - 1) * strides[axis] - pads[axis] - pads[axis + rank]
                        + kernel[axis];
                output_padding.push(x_shape[2 + axis] as i64 - made);
            }
            if output_padding
                .iter()
                .zip(&strides)
                .any(|(&p, &s)| p < 0 || (p >= s && p > 0))
            {
                return Err(no_rule(" whose input and output do not invert"));
            }
            let mut dims = vec![channels as i64, 1];
            dims.extend_from_slice(&kernel);
            let count = channels * window as usize;
            let weights = b.floats(&dims, &vec![1.0 / window as f32; count]);
            let dx = b.node(
                "ConvTranspose",
                &[dy, &weights],
                vec![
                    ints_attr("strides", &strides),
                    ints_attr("pads", &pads),
                    ints_attr("output_padding", &output_padding),
                    int_attr("group", channels as i64),
                    ints_attr("kernel_shape", &kernel),
                ],
            );
            out.extend(needs(0).map(|t| (t, dx)));
        }
        "MaxPool" => {
            if int(node, "storage_order", 0) != 0 || node.output.len() > 1 {
                return Err(no_rule(" with column-major indices or an indices output"));
            }
            if attr(node, "auto_pad").is_some_and(|a| !a.s.is_empty() && a.s != b"NOTSET") {
                return Err(no_rule(" with auto_pad"));
            }
            // The same pool again, for the index of each window's maximum (flat over the
            // whole batch), then the output gradients scattered there, overlaps summed.
            let pooled = b.fresh("maxpool_values");
            let indices = b.fresh("maxpool_indices");
            b.node_into(
                "MaxPool",
                &[x],
                node.attribute.clone(),
                &[&pooled, &indices],
            );
            let flat = b.ints(&[-1]);
            let where_ = b.node("Reshape", &[&indices, &flat], vec![]);
            let updates = b.node("Reshape", &[dy, &flat], vec![]);
            let shape = b.node("Shape", &[x], vec![]);
            let size = b.node("ReduceProd", &[&shape], vec![int_attr("keepdims", 1)]);
            let zeros = b.node("ConstantOfShape", &[&size], vec![]);
            let scattered = b.node(
                "ScatterElements",
                &[&zeros, &where_, &updates],
                vec![int_attr("axis", 0), string_attr("reduction", "add")],
            );
            out.extend(needs(0).map(|t| (t, b.node("Reshape", &[&scattered, &shape], vec![]))));
        }
        "Conv" => {
            only_first()?;
            let Some(w) = node.input.get(1).and_then(|w| forward.initializer(w)) else {
                return Err(no_rule(" whose weights are not an initialiser"));
            };
            let kernel: Vec<i64> = w.dims.iter().skip(2).copied().collect();
            let rank = kernel.len();
            let strides = ints(node, "strides").unwrap_or_else(|| vec![1; rank]);
            let dilations = ints(node, "dilations").unwrap_or_else(|| vec![1; rank]);
            let group = int(node, "group", 1);
            let y = node.output.first().map(String::as_str).unwrap_or_default();
            let (x_shape, _) = forward.dims(x, node)?;
            let (y_shape, _) = forward.dims(y, node)?;
            if x_shape.len() != rank + 2 || y_shape.len() != rank + 2 {
                return Err(no_rule(&format!(
                    " (input {x_shape:?} and output {y_shape:?} for a {rank}-d kernel)"
                )));
            }
            let auto_pad = attr(node, "auto_pad").map_or(&b""[..], |a| a.s.as_slice());
            let pads = match auto_pad {
                b"" | b"NOTSET" => ints(node, "pads").unwrap_or_else(|| vec![0; 2 * rank]),
                b"VALID" => vec![0; 2 * rank],
                b"SAME_UPPER" | b"SAME_LOWER" => {
                    // The padding that makes the output ceil(x / s) long, the odd row at
                    // the end (UPPER) or the start (LOWER).
                    let mut pads = vec![0; 2 * rank];
                    for axis in 0..rank {
                        let (size, s) = (x_shape[2 + axis] as i64, strides[axis]);
                        let reach = dilations[axis] * (kernel[axis] - 1) + 1;
                        let total = (((size + s - 1) / s - 1) * s + reach - size).max(0);
                        let small = total / 2;
                        let (begin, end) = if auto_pad == b"SAME_UPPER" {
                            (small, total - small)
                        } else {
                            (total - small, small)
                        };
                        pads[axis] = begin;
                        pads[axis + rank] = end;
                    }
                    pads
                }
                other => {
                    return Err(no_rule(&format!(
                        " with auto_pad '{}'",
                        String::from_utf8_lossy(other)
                    )));
                }
            };
            if pads.len() != 2 * rank {
                return Err(no_rule(&format!(" with pads {pads:?}")));
            }
            // Stride 1 with at most d·(k − 1) padding per side: dX is itself a stride-1
            // Conv of dY with the kernel flipped and its channel axes swapped within each
            // group, padded by what the forward pass did not pad. Where dX is no larger
            // than dY (the "same" padding of most networks) that Conv does the same
            // multiply-adds as ConvTranspose without its col2im scatter: ResNet-18's
            // forward+backward runs 1.1× faster. Where dX is larger (unpadded kernels) it
            // would multiply the padding's zeros, and ConvTranspose stays faster (the demo
            // CNN's 5×5 valid kernels: 214 against 157 steps/s).
            let reach: Vec<i64> = (0..rank).map(|a| dilations[a] * (kernel[a] - 1)).collect();
            let area = |shape: &[usize]| shape[2..].iter().product::<usize>();
            let plain = strides.iter().all(|&s| s == 1)
                && (0..rank).all(|a| pads[a] <= reach[a] && pads[a + rank] <= reach[a])
                && area(x_shape) <= area(y_shape)
                && w.data_type == DataType::FLOAT as i32;
            if plain {
                let values = (forward.floats)(w)?;
                let flipped = flipped_kernel(&w.dims, group, &values)
                    .ok_or_else(|| no_rule(&format!(" (weights {:?}, group {group})", w.dims)))?;
                let (m, cg) = (w.dims[0], w.dims[1]);
                let mut dims = vec![group * cg, m / group];
                dims.extend(&kernel);
                let weights = b.floats(&dims, &flipped);
                let mut back_pads = vec![0; 2 * rank];
                for a in 0..rank {
                    back_pads[a] = reach[a] - pads[a];
                    back_pads[a + rank] = reach[a] - pads[a + rank];
                }
                let dx = b.node(
                    "Conv",
                    &[dy, &weights],
                    vec![
                        ints_attr("dilations", &dilations),
                        ints_attr("pads", &back_pads),
                        int_attr("group", group),
                        ints_attr("kernel_shape", &kernel),
                    ],
                );
                out.extend(needs(0).map(|t| (t, dx)));
                return Ok(out);
            }
            // ConvTranspose gives (y - 1)·s − pads + d·(k − 1) + 1; output_padding adds
            // the rows a strided Conv dropped.
            let mut output_padding = Vec::with_capacity(rank);
            for axis in 0..rank {
                let made =
                    (y_shape[2 + axis] as i64 - 1) * strides[axis] - pads[axis] - pads[axis + rank]
                        + reach[axis]
                        + 1;
                output_padding.push(x_shape[2 + axis] as i64 - made);
            }
            if output_padding
                .iter()
                .zip(&strides)
                .any(|(&p, &s)| p < 0 || (p >= s && p > 0))
            {
                return Err(no_rule(&format!(
                    " (its input {x_shape:?} and output {y_shape:?} do not invert)"
                )));
            }
            let weights = node.input[1].as_str();
            let dx = b.node(
                "ConvTranspose",
                &[dy, weights],
                vec![
                    ints_attr("strides", &strides),
                    ints_attr("dilations", &dilations),
                    ints_attr("pads", &pads),
                    ints_attr("output_padding", &output_padding),
                    int_attr("group", group),
                    ints_attr("kernel_shape", &kernel),
                ],
            );
            out.extend(needs(0).map(|t| (t, dx)));
        }
        "BatchNormalization" => {
            only_first()?;
            if node.output.len() > 1 {
                return Err(no_rule(" in training mode"));
            }
            let read = |i: usize| -> Result<Vec<f32>, PluginError> {
                let t = node
                    .input
                    .get(i)
                    .and_then(|n| forward.initializer(n))
                    .ok_or_else(|| no_rule(" whose statistics are not initialisers"))?;
                (forward.floats)(t)
            };
            let (scale, var) = (read(1)?, read(4)?);
            let eps = attr(node, "epsilon").map_or(1e-5, |a| a.f);
            let k: Vec<f32> = scale
                .iter()
                .zip(&var)
                .map(|(s, v)| s / (v + eps).sqrt())
                .collect();
            let rank = forward.rank(x, node)?;
            let mut dims = vec![k.len() as i64];
            dims.extend(std::iter::repeat_n(1, rank.saturating_sub(2)));
            let k = b.floats(&dims, &k);
            out.extend(needs(0).map(|t| (t, b.node("Mul", &[dy, &k], vec![]))));
        }
        "Gemm" => {
            only_first()?;
            if int(node, "transA", 0) != 0 {
                return Err(no_rule(" with transA = 1"));
            }
            let alpha = attr(node, "alpha").map_or(1.0, |a| a.f);
            // dA = alpha · dY · op(B)ᵀ.
            let trans_b = int(node, "transB", 0);
            let weights = node.input.get(1).map(String::as_str).unwrap_or_default();
            let dx = b.node(
                "Gemm",
                &[dy, weights],
                vec![int_attr("transB", 1 - trans_b), float_attr("alpha", alpha)],
            );
            out.extend(needs(0).map(|t| (t, dx)));
        }
        "MatMul" => {
            // dA = dY · Bᵀ, dB = Aᵀ · dY (last two axes), summed back over broadcast batches.
            let rank_of = |t: &str| -> Option<usize> {
                forward
                    .full
                    .get(t)
                    .map(|(d, _)| d.len())
                    .or_else(|| forward.initializer(t).map(|i| i.dims.len()))
            };
            let (a, bm) = (node.input[0].as_str(), node.input[1].as_str());
            let swap = |rank: usize| -> Vec<i64> {
                let mut perm: Vec<i64> = (0..rank as i64).collect();
                perm.swap(rank - 1, rank - 2);
                perm
            };
            for (i, (this, other)) in [(a, bm), (bm, a)].into_iter().enumerate() {
                let Some(t) = needs(i) else { continue };
                let rank = rank_of(other)
                    .filter(|&r| r >= 2)
                    .ok_or_else(|| no_rule(" of a vector or an operand of unknown rank"))?;
                let transposed =
                    b.node("Transpose", &[other], vec![ints_attr("perm", &swap(rank))]);
                let product = if i == 0 {
                    b.node("MatMul", &[dy, &transposed], vec![])
                } else {
                    b.node("MatMul", &[&transposed, dy], vec![])
                };
                let _ = this;
                out.push((t.clone(), unbroadcast(b, forward, node, &product, &t)?));
            }
        }
        _ => return Err(no_rule("")),
    }
    Ok(out)
}

/// A Conv kernel `[M, C/g, k…]` of `group` groups as the kernel of its adjoint stride-1
/// Conv, `[C, M/g, k…]`: within each group the output and input channel axes swapped and
/// every spatial axis reversed. `None` when the dims do not fit the values or the groups.
fn flipped_kernel(dims: &[i64], group: i64, values: &[f32]) -> Option<Vec<f32>> {
    let (&m, &cg) = (dims.first()?, dims.get(1)?);
    if group <= 0 || m % group != 0 {
        return None;
    }
    let spatial: i64 = dims[2..].iter().product();
    let (m, cg, group, spatial) = (m as usize, cg as usize, group as usize, spatial as usize);
    if values.len() != m * cg * spatial {
        return None;
    }
    let mg = m / group;
    let mut flipped = vec![0.0; values.len()];
    for g in 0..group {
        for o in 0..mg {
            for c in 0..cg {
                let from = ((g * mg + o) * cg + c) * spatial;
                let to = ((g * cg + c) * mg + o) * spatial;
                for s in 0..spatial {
                    // Reversing the flattened spatial index reverses every spatial axis.
                    flipped[to + spatial - 1 - s] = values[from + s];
                }
            }
        }
    }
    Some(flipped)
}

/// An Einsum equation's operand labels and output labels, explicit: `...` replaced by fresh
/// labels (right-aligned across operands), the implicit output (`ab,bc`) written out. Refused
/// (as the reason): more than two operands, a label repeated within one term (a diagonal),
/// and labels whose sizes differ between operands (broadcasting).
fn einsum_terms(
    equation: &str,
    shapes: &[Vec<(usize, bool)>],
) -> Result<(Vec<Vec<char>>, Vec<char>), String> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let operands: Vec<&str> = lhs.split(',').collect();
    if operands.len() != shapes.len() {
        return Err(format!(
            "equation '{equation}' has {} operands, the node {}",
            operands.len(),
            shapes.len()
        ));
    }
    if operands.len() > 2 {
        return Err(format!(
            "equation '{equation}' has {} operands; one or two have a rule",
            operands.len()
        ));
    }
    // A term's labels and where its ellipsis stands among them.
    let parse = |term: &str| -> Result<(Vec<char>, Option<usize>), String> {
        let mut labels = Vec::new();
        let mut ellipsis = None;
        let mut rest = term;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("...") {
                if ellipsis.replace(labels.len()).is_some() {
                    return Err(format!("term '{term}' has two ellipses"));
                }
                rest = after;
            } else if c.is_ascii_alphabetic() {
                labels.push(c);
                rest = &rest[1..];
            } else {
                return Err(format!("term '{term}' has the label '{c}'"));
            }
        }
        Ok((labels, ellipsis))
    };
    let parsed: Vec<(Vec<char>, Option<usize>)> = operands
        .iter()
        .map(|t| parse(t))
        .collect::<Result<_, _>>()?;
    let mut broadcast = 0usize;
    for ((labels, ellipsis), shape) in parsed.iter().zip(shapes) {
        match ellipsis {
            Some(_) if shape.len() >= labels.len() => {
                broadcast = broadcast.max(shape.len() - labels.len());
            }
            _ if shape.len() == labels.len() => {}
            _ => {
                return Err(format!(
                    "equation '{equation}' gives {} labels to an operand of rank {}",
                    labels.len(),
                    shape.len()
                ));
            }
        }
    }
    let fresh: Vec<char> = ('a'..='z')
        .chain('A'..='Z')
        .filter(|c| !eq.contains(*c))
        .take(broadcast)
        .collect();
    if fresh.len() < broadcast {
        return Err(format!(
            "equation '{equation}' leaves no labels for its ellipsis"
        ));
    }
    let mut terms = Vec::with_capacity(parsed.len());
    for ((labels, ellipsis), shape) in parsed.iter().zip(shapes) {
        let mut term = labels.clone();
        if let Some(at) = *ellipsis {
            let count = shape.len() - labels.len();
            term.splice(at..at, fresh[broadcast - count..].iter().copied());
        }
        terms.push(term);
    }
    let result = match rhs {
        Some(r) => {
            let (mut labels, ellipsis) = parse(r)?;
            if let Some(at) = ellipsis {
                labels.splice(at..at, fresh.iter().copied());
            }
            labels
        }
        None => {
            // Implicit: the ellipsis, then the labels seen once, in alphabetical order.
            let all: Vec<char> = parsed.iter().flat_map(|(l, _)| l.iter().copied()).collect();
            let mut once: Vec<char> = all
                .iter()
                .copied()
                .filter(|c| all.iter().filter(|d| *d == c).count() == 1)
                .collect();
            once.sort_unstable();
            fresh.iter().copied().chain(once).collect()
        }
    };
    let mut sizes = std::collections::HashMap::new();
    for (term, shape) in terms.iter().zip(shapes) {
        for (i, label) in term.iter().enumerate() {
            if term[..i].contains(label) {
                return Err(format!(
                    "label '{label}' repeats within a term of '{equation}' (a diagonal)"
                ));
            }
            if let Some(previous) = sizes.insert(*label, shape[i])
                && previous != shape[i]
            {
                return Err(format!(
                    "label '{label}' of '{equation}' is broadcast ({} against {})",
                    previous.0, shape[i].0
                ));
            }
        }
    }
    for (i, label) in result.iter().enumerate() {
        if result[..i].contains(label) || !sizes.contains_key(label) {
            return Err(format!(
                "output label '{label}' of '{equation}' repeats or is in no operand"
            ));
        }
    }
    Ok((terms, result))
}
