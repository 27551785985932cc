//! Conformance of dataset sources.

use shiftscope_sdk::{Dataset, DatasetSource, ErrorKind};

use crate::Conformance;

/// Checks a dataset source against the contract; see the crate docs for the list.
pub fn check_dataset_source(source: &dyn DatasetSource) -> Conformance {
    let mut report = Conformance::default();
    let catalog = match source.catalog() {
        Ok(catalog) => catalog,
        Err(e) => {
            report.check(false, || format!("catalog failed: {e}"));
            return report;
        }
    };
    report.check(!catalog.is_empty(), || "catalog is empty".to_owned());
    let mut names: Vec<&str> = catalog.iter().map(|d| d.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    report.check(names.len() == catalog.len(), || {
        "catalog names are not unique".to_owned()
    });
    let missing = source.open("no-such-plugin/no-such-dataset");
    report.check(missing.is_err(), || {
        "opening an unknown dataset name succeeded".to_owned()
    });
    for info in &catalog {
        report.check(!info.name.is_empty(), || {
            "a catalog entry has no name".to_owned()
        });
        match source.open(&info.name) {
            Ok(dataset) => check_dataset(&mut report, &info.name, dataset.as_ref()),
            Err(e) => {
                report.check(false, || format!("{}: open failed: {e}", info.name));
            }
        }
    }
    if let Some(n) = source.outstanding_outputs() {
        report.check(n == 0, || format!("{n} outputs were never released"));
    }
    report
}

fn check_dataset(report: &mut Conformance, name: &str, dataset: &dyn Dataset) {
    let len = dataset.len();
    if !report.check(len > 0, || format!("{name}: has no samples")) {
        return;
    }
    let classes = dataset.classes();
    report.check(!classes.is_empty(), || {
        format!("{name}: has no class names")
    });
    let mut unique: Vec<&String> = classes.iter().collect();
    unique.sort_unstable();
    unique.dedup();
    report.check(
        unique.len() == classes.len() && classes.iter().all(|c| !c.is_empty()),
        || format!("{name}: class names are empty or repeated: {classes:?}"),
    );
    let mut indices = vec![0, 1.min(len - 1), len / 2, len - 1];
    indices.dedup();
    for &i in &indices {
        let first = dataset.get(i);
        let second = dataset.get(i);
        match (first, second) {
            (Ok(a), Ok(b)) => {
                report.check(a == b, || format!("{name}: get({i}) is not deterministic"));
                report.check(a.width > 0 && a.height > 0, || {
                    format!("{name}: get({i}) is {}x{}", a.width, a.height)
                });
                let expected = a.width as usize * a.height as usize * 3;
                report.check(a.pixels.len() == expected, || {
                    format!(
                        "{name}: get({i}) has {} bytes of pixels for {}x{} RGB ({expected})",
                        a.pixels.len(),
                        a.width,
                        a.height
                    )
                });
                report.check((a.label as usize) < classes.len(), || {
                    format!(
                        "{name}: get({i}) has label {} of {} classes",
                        a.label,
                        classes.len()
                    )
                });
            }
            (Err(e), _) | (_, Err(e)) => {
                report.check(false, || format!("{name}: get({i}) failed: {e}"));
            }
        }
    }
    for past in [len, len.saturating_add(1000), usize::MAX] {
        let result = dataset.get(past);
        report.check(
            matches!(&result, Err(e) if e.kind() == ErrorKind::OutOfRange),
            || format!("{name}: get({past}) with {len} samples is not an out-of-range error"),
        );
    }
    // Random access from several threads at once gives what one thread gets.
    let sequential: Vec<_> = indices.iter().map(|&i| dataset.get(i).ok()).collect();
    let parallel: Vec<Vec<_>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| indices.iter().map(|&i| dataset.get(i).ok()).collect()))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    report.check(
        parallel.len() == 3 && parallel.iter().all(|p| *p == sequential),
        || format!("{name}: get from several threads differs from one thread"),
    );
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU8, Ordering};

    use shiftscope_sdk::{DatasetInfo, PluginError, Sample};

    use super::*;

    /// A source that breaks promises: `get` changes with every call and never runs out.
    struct Drifting {
        counter: AtomicU8,
        classes: Vec<String>,
    }

    impl Dataset for Drifting {
        fn len(&self) -> usize {
            4
        }
        fn classes(&self) -> &[String] {
            &self.classes
        }
        fn get(&self, _index: usize) -> Result<Sample, PluginError> {
            let v = self.counter.fetch_add(1, Ordering::Relaxed);
            Ok(Sample {
                width: 1,
                height: 1,
                label: 5,
                pixels: vec![v, v, v],
            })
        }
    }

    struct Source;

    impl DatasetSource for Source {
        fn catalog(&self) -> Result<Vec<DatasetInfo>, PluginError> {
            Ok(vec![DatasetInfo {
                name: "d".into(),
                family: "id".into(),
                description: String::new(),
                params: vec![],
            }])
        }
        fn open(&self, _name: &str) -> Result<Box<dyn Dataset>, PluginError> {
            Ok(Box::new(Drifting {
                counter: AtomicU8::new(0),
                classes: vec!["a".into(), "b".into()],
            }))
        }
    }

    #[test]
    fn the_suite_catches_a_broken_source() {
        let report = check_dataset_source(&Source);
        let all = report.violations.join("\n");
        assert!(all.contains("unknown dataset name succeeded"), "{all}");
        assert!(all.contains("get(0) is not deterministic"), "{all}");
        assert!(all.contains("label 5 of 2 classes"), "{all}");
        assert!(
            all.contains("get(4) with 4 samples is not an out-of-range error"),
            "{all}"
        );
    }
}
