//! The `base+family/severity` naming, `open_corrupted` and the `Corrupted` dataset, the
//! last through the conformance suite every dataset source passes.

#![allow(clippy::unwrap_used)]

use shiftscope_corrupt::{
    Corrupted, Corruption, CorruptionSpec, corrupt, open_corrupted, split_name,
};
use shiftscope_sdk::{Dataset, DatasetInfo, DatasetSource, ErrorKind, PluginError, Sample};

#[test]
fn names_split_into_base_and_corruption() {
    assert_eq!(
        split_name("cifar10/test+fog/3").unwrap(),
        (
            "cifar10/test",
            Some(CorruptionSpec {
                corruption: Corruption::Fog,
                severity: 3
            })
        )
    );
    assert_eq!(split_name("cifar10/test").unwrap(), ("cifar10/test", None));
    for c in Corruption::ALL {
        for s in 1..=5 {
            let name = format!("x/y+{}/{s}", c.name());
            let (base, spec) = split_name(&name).unwrap();
            assert_eq!(base, "x/y");
            assert_eq!(spec.unwrap().to_string(), format!("{}/{s}", c.name()));
        }
    }
}

#[test]
fn bad_names_say_what_is_valid() {
    let e = split_name("cifar10/test+frost/3").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().contains("frost"), "{e}");
    for c in Corruption::ALL {
        assert!(e.message().contains(c.name()), "{e}");
    }
    for bad in [
        "cifar10/test+fog/0",
        "cifar10/test+fog/6",
        "cifar10/test+fog/x",
        "cifar10/test+fog/",
        "cifar10/test+fog",
        "+fog/3",
        "cifar10/test+fog/3+snow/2",
    ] {
        let e = split_name(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}: {e}");
        assert!(e.message().contains(bad), "{bad}: {e}");
    }
}

/// Eight 32×32 images whose label is the index mod 3.
struct Tiny;

const CLASSES: [&str; 3] = ["a", "b", "c"];

impl Dataset for Tiny {
    fn len(&self) -> usize {
        8
    }
    fn classes(&self) -> &[String] {
        static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        NAMES.get_or_init(|| CLASSES.iter().map(|c| (*c).to_owned()).collect())
    }
    fn get(&self, index: usize) -> Result<Sample, PluginError> {
        if index >= 8 {
            return Err(PluginError::out_of_range(format!("index {index} of 8")));
        }
        Ok(Sample {
            width: 32,
            height: 32,
            label: (index % 3) as u32,
            pixels: (0..32 * 32 * 3)
                .map(|k| ((k * (index + 3)) % 256) as u8)
                .collect(),
        })
    }
}

struct TinySource;

fn info(name: &str) -> DatasetInfo {
    DatasetInfo {
        name: name.to_owned(),
        family: "test".to_owned(),
        description: "tiny".to_owned(),
        params: Vec::new(),
    }
}

impl DatasetSource for TinySource {
    fn catalog(&self) -> Result<Vec<DatasetInfo>, PluginError> {
        Ok(vec![
            info("tiny/id"),
            info("tiny/id+fog/3"),
            info("tiny/id+glass_blur/5"),
            info("tiny/id+spatter/1"),
        ])
    }
    fn open(&self, name: &str) -> Result<Box<dyn Dataset>, PluginError> {
        open_corrupted(name, 7, |base| match base {
            "tiny/id" => Ok(Box::new(Tiny) as Box<dyn Dataset>),
            _ => Err(PluginError::not_found(format!("no dataset '{base}'"))),
        })
    }
}

#[test]
fn corrupted_datasets_pass_conformance() {
    shiftscope_testkit::check_dataset_source(&TinySource).assert_passed(40);
}

#[test]
fn corrupted_samples_are_the_corruption_of_the_base() {
    let spec = CorruptionSpec {
        corruption: Corruption::Snow,
        severity: 2,
    };
    let wrapped = Corrupted::new(Box::new(Tiny), spec, 99);
    assert_eq!(wrapped.len(), 8);
    assert_eq!(wrapped.classes(), Tiny.classes());
    let mut seeds = Vec::new();
    for i in 0..8 {
        let base = Tiny.get(i).unwrap();
        let got = wrapped.get(i).unwrap();
        assert_eq!((got.width, got.height, got.label), (32, 32, base.label));
        let want = corrupt(
            Corruption::Snow,
            &base.pixels,
            32,
            32,
            2,
            wrapped.image_seed(i),
        )
        .unwrap();
        assert_eq!(got.pixels, want);
        seeds.push(wrapped.image_seed(i));
    }
    seeds.sort_unstable();
    seeds.dedup();
    assert_eq!(seeds.len(), 8, "image seeds repeat");
    // Seeds differ across corruption, severity and the dataset seed.
    let other = |c, s, seed| {
        Corrupted::new(
            Box::new(Tiny),
            CorruptionSpec {
                corruption: c,
                severity: s,
            },
            seed,
        )
        .image_seed(0)
    };
    let s0 = wrapped.image_seed(0);
    assert_ne!(other(Corruption::Snow, 3, 99), s0);
    assert_ne!(other(Corruption::Fog, 2, 99), s0);
    assert_ne!(other(Corruption::Snow, 2, 100), s0);
    assert_eq!(other(Corruption::Snow, 2, 99), s0);
    assert_eq!(wrapped.get(8).unwrap_err().kind(), ErrorKind::OutOfRange);
}

/// A base whose samples are smaller than the corruption accepts.
struct TooSmall;

impl Dataset for TooSmall {
    fn len(&self) -> usize {
        1
    }
    fn classes(&self) -> &[String] {
        Tiny.classes()
    }
    fn get(&self, _index: usize) -> Result<Sample, PluginError> {
        Ok(Sample {
            width: 2,
            height: 2,
            label: 0,
            pixels: vec![0; 12],
        })
    }
}

#[test]
fn errors_name_the_corruption() {
    let e = TinySource.open("nope+fog/2").err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.message().contains("nope+fog/2") && e.message().contains("fog/2"),
        "{e}"
    );
    let e = TinySource.open("tiny/id+fog/9").err().unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(TinySource.open("tiny/id").is_ok());
    let spec = CorruptionSpec {
        corruption: Corruption::Fog,
        severity: 1,
    };
    let e = Corrupted::new(Box::new(TooSmall), spec, 0)
        .get(0)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(
        e.message().contains("fog/1") && e.message().contains("2x2"),
        "{e}"
    );
}
