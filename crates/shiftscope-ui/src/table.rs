//! The neuron table as the Study panel shows it: the search's filter, the chosen order, and
//! its CSV export (the same rows, the same order).

use std::cmp::Ordering;
use std::io::Write;

use crate::model::{RowFields, UiError, ViewModel};
use crate::search::{self, Query};
use crate::state::{Column, Score, UiState};

/// The rows (positions in [`ViewModel::neurons`]) the table shows for a state: filtered by
/// the search (a `layer:index` search shows that neuron) and sorted, undefined values last.
pub fn table_rows(vm: &ViewModel, state: &UiState) -> Result<Vec<usize>, UiError> {
    let query = search::parse(&state.search, &vm.layer_names())?;
    let focus = vm.focus(state);
    let mut rows: Vec<usize> = match &query {
        Query::Neuron(id) => vm
            .layer_start
            .get(id.layer)
            .map(|s| s + id.neuron)
            .into_iter()
            .collect(),
        _ => (0..vm.neurons.len())
            .filter(|&i| {
                let row = &vm.neurons[i];
                query.matches(row.id, &RowFields(row, focus))
            })
            .collect(),
    };
    if let Column::Score(score) = state.sort.column {
        let key = |i: &usize| vm.neurons[*i].score(score, focus);
        let descending = state.sort.descending;
        rows.sort_by(|a, b| {
            let (x, y) = (key(a), key(b));
            match (x.is_nan(), y.is_nan()) {
                (true, true) => a.cmp(b),
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    let o = x.total_cmp(&y);
                    let o = if descending { o.reverse() } else { o };
                    o.then(a.cmp(b))
                }
            }
        });
    } else if state.sort.descending {
        rows.reverse();
    }
    Ok(rows)
}

fn cell(v: f32) -> String {
    if v.is_finite() {
        v.to_string()
    } else {
        String::new()
    }
}

fn quoted(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Writes the table as the state shows it: `layer,layer_name,neuron,max,rafegas,morcos`, then
/// `spurious,novelty,shift` against every OOD dataset (named in the header); undefined
/// values are empty cells.
pub fn write_neuron_csv(
    vm: &ViewModel,
    state: &UiState,
    mut out: impl Write,
) -> Result<usize, UiError> {
    let rows = table_rows(vm, state)?;
    let mut header = vec![
        "layer".to_string(),
        "layer_name".into(),
        "neuron".into(),
        Score::Max.name().into(),
        Score::Rafegas.name().into(),
        Score::Morcos.name().into(),
    ];
    for &d in &vm.ood {
        let name = vm.dataset_name(d);
        for s in [Score::Spurious, Score::Novelty, Score::Shift] {
            header.push(quoted(&format!("{}[{name}]", s.name())));
        }
    }
    writeln!(out, "{}", header.join(","))?;
    for &i in &rows {
        let r = &vm.neurons[i];
        let mut line = vec![
            r.id.layer.to_string(),
            quoted(&vm.layers[r.id.layer].name),
            r.id.neuron.to_string(),
            cell(r.max),
            cell(r.rafegas),
            cell(r.morcos),
        ];
        for s in &r.shifts {
            line.extend(s.iter().map(|&v| cell(v)));
        }
        writeln!(out, "{}", line.join(","))?;
    }
    out.flush()?;
    Ok(rows.len())
}
