//! `colored-mnist`: the Deephys paper's colored MNIST as a dataset-shift plugin. It owns the
//! base digits (MNIST IDX files when the user has them, else procedural digits), the
//! colouring (foreground `x > 150` painted with a per-class colour, background black) and
//! the shifts: `id`, `permuted` (ID rows 2,5,3,0,9,8,7,4,6,1), `arbitrary`, `drifted` (ID minus
//! 0.2726747, clamped), `grey`, `random` (a random colour per image) and a continuous
//! `drift=δ`.
//!
//! Names: `colored-mnist/<variant>` is the test split, `colored-mnist/<variant>/train` the
//! train split (`/test` also accepted). Config (RON, all optional):
//! `(data: Some("/data"), seed: 0, train_len: 60000, test_len: 10000, procedural: false)`;
//! MNIST files are looked for in `data`, else `$SHIFTSCOPE_DATA`, else
//! `~/.cache/shiftscope/data`, each directly or in its `mnist/` folder. Which digits are used
//! is named in every catalog entry. Any variant can also be corrupted on the fly through
//! `shiftscope-corrupt`: `colored-mnist/id+fog/3`, `colored-mnist/grey/train+gaussian_blur/5`.

mod digits;
mod idx;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use shiftscope_sdk::rng::SplitMix64;
use shiftscope_sdk::{
    Dataset, DatasetInfo, DatasetSource, DatasetSourcePlugin, PluginError, Sample,
};

use crate::idx::IdxImages;

/// The plugin's name and the prefix of its dataset names.
pub const NAME: &str = "colored-mnist";
/// Image side.
pub const SIDE: usize = 28;
/// A pixel is foreground when its grey value is above this.
pub const FOREGROUND: u8 = 150;
/// The in-distribution colour of each class (RGB in [0, 1]), as the paper gives them (8
/// decimals; stored as the nearest `f32`).
#[allow(clippy::excessive_precision)]
pub const ID_COLOURS: [[f32; 3]; 10] = [
    [0.137_100_51, 1.0, 0.712_220_24],
    [1.0, 0.235_028_43, 0.217_566_62],
    [1.0, 0.389_58, 0.084_452_72],
    [0.396_337_9, 0.595_213_37, 1.0],
    [0.657_003_09, 0.709_085_03, 1.0],
    [1.0, 0.096_964_72, 0.505_871_24],
    [0.511_422_74, 0.912_756_94, 1.0],
    [1.0, 0.630_475_4, 0.093_442_55],
    [1.0, 0.803_624_54, 0.516_625_67],
    [0.400_877_05, 0.791_638_33, 1.0],
];
/// `permuted`: class `c` gets the ID colour of class `PERMUTATION[c]`.
pub const PERMUTATION: [usize; 10] = [2, 5, 3, 0, 9, 8, 7, 4, 6, 1];
/// The `arbitrary` colours, as the paper gives them.
#[allow(clippy::excessive_precision)]
pub const ARBITRARY_COLOURS: [[f32; 3]; 10] = [
    [1.0, 0.419_498_73, 0.990_604_61],
    [0.458_235_49, 1.0, 0.350_993_24],
    [0.188_972_36, 1.0, 0.065_543_8],
    [0.613_648_24, 0.524_324_31, 1.0],
    [0.204_153_46, 1.0, 0.711_565_3],
    [0.184_519_55, 0.760_543_22, 1.0],
    [0.673_999_01, 1.0, 0.177_299_46],
    [0.582_660_85, 1.0, 0.163_365_76],
    [1.0, 0.717_303_6, 0.867_075_2],
    [0.868_039_08, 0.981_596_48, 1.0],
];
/// The `drifted` variant's shift of every ID colour.
pub const DRIFT: f32 = 0.272_674_7;
const CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const VARIANTS: [(&str, &str, &str); 6] = [
    ("id", "id", "the training colours"),
    (
        "permuted",
        "colour",
        "ID colours permuted across classes (2,5,3,0,9,8,7,4,6,1)",
    ),
    ("arbitrary", "colour", "new arbitrary colours per class"),
    ("drifted", "colour", "ID colours minus 0.2726747, clamped"),
    ("grey", "colour", "no colour (white strokes)"),
    ("random", "colour", "a random colour per image"),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    data: Option<PathBuf>,
    seed: u64,
    train_len: usize,
    test_len: usize,
    procedural: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data: None,
            seed: 0,
            train_len: 60_000,
            test_len: 10_000,
            procedural: false,
        }
    }
}

/// Where the grey digits of a split come from.
#[derive(Debug)]
enum Digits {
    Mnist { images: IdxImages, labels: Vec<u8> },
    Procedural { seed: u64, len: usize },
}

impl Digits {
    fn len(&self) -> usize {
        match self {
            Digits::Mnist { labels, .. } => labels.len(),
            Digits::Procedural { len, .. } => *len,
        }
    }

    /// The grey digit `index` and its class.
    fn get(&self, index: usize) -> ([u8; SIDE * SIDE], u8) {
        match self {
            Digits::Mnist { images, labels } => {
                let mut grey = [0u8; SIDE * SIDE];
                grey.copy_from_slice(images.image(index));
                (grey, labels[index])
            }
            Digits::Procedural { seed, .. } => {
                let label = procedural_label(*seed, index);
                (digits::render_digit(label, *seed, index as u64), label)
            }
        }
    }
}

/// Balanced labels in a shuffled order: each block of ten indices holds every class once.
fn procedural_label(seed: u64, index: usize) -> u8 {
    shiftscope_sdk::rng::balanced_label(seed ^ 0x001a_be15, index, 10) as u8
}

/// One split's digits and a line saying where they come from.
#[derive(Debug)]
struct Split {
    digits: Digits,
    source: String,
}

/// The plugin: both splits, loaded once.
#[derive(Debug)]
pub struct ColoredMnist {
    train: Arc<Split>,
    test: Arc<Split>,
    seed: u64,
}

fn data_dirs(config: &Config) -> Vec<PathBuf> {
    let base = config
        .data
        .clone()
        .or_else(|| std::env::var_os("SHIFTSCOPE_DATA").map(PathBuf::from))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/shiftscope/data"))
        });
    base.map(|b| vec![b.join("mnist"), b]).unwrap_or_default()
}

fn load_split(config: &Config, prefix: &str, len: usize, seed: u64) -> Result<Split, PluginError> {
    let dirs = data_dirs(config);
    if !config.procedural
        && let Some((images_path, labels_path)) =
            dirs.iter().find_map(|d| idx::find_split(d, prefix))
    {
        let images = idx::read_images(&images_path)?;
        let labels = idx::read_labels(&labels_path, 10)?;
        if (images.rows, images.cols) != (SIDE, SIDE) {
            return Err(PluginError::invalid_argument(format!(
                "{}: images are {}x{}, MNIST's are {SIDE}x{SIDE}",
                images_path.display(),
                images.rows,
                images.cols
            )));
        }
        if images.len() != labels.len() {
            return Err(PluginError::invalid_argument(format!(
                "{} holds {} images but {} holds {} labels",
                images_path.display(),
                images.len(),
                labels_path.display(),
                labels.len()
            )));
        }
        return Ok(Split {
            source: format!("MNIST digits from {}", images_path.display()),
            digits: Digits::Mnist { images, labels },
        });
    }
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Ok(Split {
        digits: Digits::Procedural { seed, len },
        source: if config.procedural {
            format!("procedural digits (seed {seed})")
        } else {
            format!(
                "procedural digits (seed {seed}; no MNIST IDX files in {})",
                if looked.is_empty() {
                    "any data folder".to_owned()
                } else {
                    looked.join(" or ")
                }
            )
        },
    })
}

impl DatasetSourcePlugin for ColoredMnist {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn create(config: &str) -> Result<ColoredMnist, PluginError> {
        let config: Config = if config.trim().is_empty() {
            Config::default()
        } else {
            ron::from_str(config).map_err(|e| {
                PluginError::invalid_argument(format!(
                    "{NAME} config: {e} (expected e.g. `(data: Some(\"/data\"), seed: 0)`)"
                ))
            })?
        };
        // Train and test digits come from different seeds: the test split is held out.
        let train = load_split(&config, "train", config.train_len, config.seed * 2 + 1)?;
        let test = load_split(&config, "t10k", config.test_len, config.seed * 2 + 2)?;
        Ok(ColoredMnist {
            train: Arc::new(train),
            test: Arc::new(test),
            seed: config.seed,
        })
    }
}

/// How a dataset colours its digits.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Colouring {
    Table([[f32; 3]; 10]),
    Random(u64),
}

fn drifted(delta: f32) -> [[f32; 3]; 10] {
    ID_COLOURS.map(|c| c.map(|v| (v - delta).clamp(0.0, 1.0)))
}

fn colouring(variant: &str, seed: u64) -> Result<Colouring, PluginError> {
    Ok(match variant {
        "id" => Colouring::Table(ID_COLOURS),
        "permuted" => Colouring::Table(PERMUTATION.map(|p| ID_COLOURS[p])),
        "arbitrary" => Colouring::Table(ARBITRARY_COLOURS),
        "drifted" => Colouring::Table(drifted(DRIFT)),
        "grey" => Colouring::Table([[1.0; 3]; 10]),
        "random" => Colouring::Random(seed),
        other => match other.strip_prefix("drift=") {
            Some(value) => {
                let delta: f32 = value.parse().map_err(|_| {
                    PluginError::invalid_argument(format!("drift '{value}' is not a number"))
                })?;
                if !(-1.0..=1.0).contains(&delta) {
                    return Err(PluginError::invalid_argument(format!(
                        "drift {delta} is outside [-1, 1]"
                    )));
                }
                Colouring::Table(drifted(delta))
            }
            None => {
                let names: Vec<&str> = VARIANTS.iter().map(|v| v.0).collect();
                return Err(PluginError::not_found(format!(
                    "no variant '{other}' ({}, drift=δ)",
                    names.join(", ")
                )));
            }
        },
    })
}

impl DatasetSource for ColoredMnist {
    fn catalog(&self) -> Result<Vec<DatasetInfo>, PluginError> {
        let mut entries = Vec::new();
        for (split_name, split) in [("test", &self.test), ("train", &self.train)] {
            for (variant, family, what) in VARIANTS {
                let suffix = if split_name == "test" {
                    String::new()
                } else {
                    "/train".to_owned()
                };
                entries.push(DatasetInfo {
                    name: format!("{NAME}/{variant}{suffix}"),
                    family: family.to_owned(),
                    description: format!(
                        "{what}; {split_name} split, {} images of {}",
                        split.digits.len(),
                        split.source
                    ),
                    params: vec![
                        ("variant".to_owned(), variant.to_owned()),
                        ("split".to_owned(), split_name.to_owned()),
                    ],
                });
            }
        }
        Ok(entries)
    }

    fn open(&self, name: &str) -> Result<Box<dyn Dataset>, PluginError> {
        shiftscope_corrupt::open_corrupted(name, self.seed, |base| self.open_base(base))
    }
}

impl ColoredMnist {
    /// A colouring of a split, before any on-the-fly corruption.
    fn open_base(&self, name: &str) -> Result<Box<dyn Dataset>, PluginError> {
        let rest = name
            .strip_prefix(NAME)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| {
                PluginError::not_found(format!("no dataset '{name}': names start with {NAME}/"))
            })?;
        let (variant, split) = match rest.rsplit_once('/') {
            Some((variant, "train")) => (variant, &self.train),
            Some((variant, "test")) => (variant, &self.test),
            _ => (rest, &self.test),
        };
        let colouring = colouring(variant, self.seed).map_err(|e| e.context(name))?;
        Ok(Box::new(ColoredDataset {
            split: Arc::clone(split),
            colouring,
            classes: CLASSES.iter().map(|&c| c.to_owned()).collect(),
        }))
    }
}

struct ColoredDataset {
    split: Arc<Split>,
    colouring: Colouring,
    classes: Vec<String>,
}

/// Paints the foreground (`grey > 150`) of a digit with `colour`; the background stays black.
pub fn colour_digit(grey: &[u8], colour: [f32; 3]) -> Vec<u8> {
    let paint = colour.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8);
    let mut pixels = Vec::with_capacity(grey.len() * 3);
    for &g in grey {
        pixels.extend_from_slice(if g > FOREGROUND { &paint } else { &[0, 0, 0] });
    }
    pixels
}

/// A random colour with its largest channel at 1, like the tables' colours.
fn random_colour(seed: u64, index: usize) -> [f32; 3] {
    let mut rng = SplitMix64::for_item(seed ^ 0xc010_1257, index as u64);
    let c = [rng.next_f32(), rng.next_f32(), rng.next_f32()];
    let max = c.iter().copied().fold(f32::EPSILON, f32::max);
    c.map(|v| v / max)
}

impl Dataset for ColoredDataset {
    fn len(&self) -> usize {
        self.split.digits.len()
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn get(&self, index: usize) -> Result<Sample, PluginError> {
        if index >= self.len() {
            return Err(PluginError::out_of_range(format!(
                "index {index} is past the end ({} images)",
                self.len()
            )));
        }
        let (grey, label) = self.split.digits.get(index);
        let colour = match self.colouring {
            Colouring::Table(table) => table[usize::from(label)],
            Colouring::Random(seed) => random_colour(seed, index),
        };
        Ok(Sample {
            width: SIDE as u32,
            height: SIDE as u32,
            label: u32::from(label),
            pixels: colour_digit(&grey, colour),
        })
    }
}

shiftscope_sdk::export_dataset_source!(ColoredMnist);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::tests::idx;

    fn source(config: &str) -> ColoredMnist {
        ColoredMnist::create(config).unwrap()
    }

    #[test]
    fn colour_tables_follow_the_design() {
        assert_eq!(
            colouring("permuted", 0).unwrap(),
            Colouring::Table(PERMUTATION.map(|p| ID_COLOURS[p]))
        );
        let Colouring::Table(permuted) = colouring("permuted", 0).unwrap() else {
            panic!()
        };
        assert_eq!(permuted[0], ID_COLOURS[2]);
        assert_eq!(permuted[1], ID_COLOURS[5]);
        let Colouring::Table(drift) = colouring("drifted", 0).unwrap() else {
            panic!()
        };
        assert_eq!(drift[0], [0.0, 1.0 - DRIFT, 0.712_220_24 - DRIFT]);
        let Colouring::Table(big) = colouring("drift=0.9", 0).unwrap() else {
            panic!()
        };
        // Class 1 is (1, 0.235, 0.218): minus 0.9 and clamped, (0.1, 0, 0).
        assert!((big[1][0] - 0.1).abs() < 1e-6 && big[1][1] == 0.0 && big[1][2] == 0.0);
        assert!(colouring("drift=2", 0).is_err());
        assert!(
            colouring("sepia", 0)
                .unwrap_err()
                .to_string()
                .contains("no variant 'sepia'")
        );
    }

    #[test]
    fn the_foreground_is_strictly_above_150() {
        let pixels = colour_digit(&[150, 151, 0, 255], [1.0, 0.5, 0.0]);
        assert_eq!(pixels, vec![0, 0, 0, 255, 128, 0, 0, 0, 0, 255, 128, 0]);
    }

    #[test]
    fn procedural_labels_are_balanced_and_shuffled() {
        let labels: Vec<u8> = (0..1000).map(|i| procedural_label(4, i)).collect();
        for c in 0..10 {
            assert_eq!(labels.iter().filter(|&&l| l == c).count(), 100);
        }
        assert_ne!(&labels[..10], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn idx_files_are_used_when_present_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let mnist = dir.path().join("mnist");
        std::fs::create_dir_all(&mnist).unwrap();
        let mut images = vec![0u8; 3 * 784];
        images[784 + 5] = 200; // image 1 has one foreground pixel
        for (prefix, n) in [("train", 3u32), ("t10k", 3)] {
            std::fs::write(
                mnist.join(format!("{prefix}-images-idx3-ubyte")),
                idx(&[n, 28, 28], &images),
            )
            .unwrap();
            std::fs::write(
                mnist.join(format!("{prefix}-labels-idx1-ubyte")),
                idx(&[n], &[4, 1, 9]),
            )
            .unwrap();
        }
        let config = format!("(data: Some({:?}))", dir.path());
        let s = source(&config);
        let catalog = s.catalog().unwrap();
        assert!(
            catalog[0].description.contains("MNIST digits from"),
            "{}",
            catalog[0].description
        );
        let d = s.open("colored-mnist/id").unwrap();
        assert_eq!(d.len(), 3);
        let sample = d.get(1).unwrap();
        assert_eq!(sample.label, 1);
        let paint = ID_COLOURS[1].map(|v| (v * 255.0).round() as u8);
        assert_eq!(&sample.pixels[15..18], &paint);
        assert_eq!(
            sample.pixels.iter().filter(|&&v| v != 0).count(),
            paint.iter().filter(|&&v| v != 0).count()
        );

        // Labels and images of different lengths.
        std::fs::write(mnist.join("t10k-labels-idx1-ubyte"), idx(&[2], &[4, 1])).unwrap();
        let e = ColoredMnist::create(&config).unwrap_err().to_string();
        assert!(
            e.contains("holds 3 images but") && e.contains("holds 2 labels"),
            "{e}"
        );
    }

    #[test]
    fn procedural_digits_are_named_as_such() {
        let empty = tempfile::tempdir().unwrap();
        let s = source(&format!(
            "(data: Some({:?}), train_len: 20, test_len: 10)",
            empty.path()
        ));
        let catalog = s.catalog().unwrap();
        assert_eq!(catalog.len(), 12);
        assert!(
            catalog
                .iter()
                .all(|c| c.description.contains("procedural digits"))
        );
        assert!(catalog[0].description.contains("no MNIST IDX files in"));
        assert_eq!(s.open("colored-mnist/grey/train").unwrap().len(), 20);
        assert_eq!(s.open("colored-mnist/drift=0.5").unwrap().len(), 10);
        let e = s.open("cifar10/id").err().unwrap();
        assert!(e.to_string().contains("names start with colored-mnist/"));
    }

    #[test]
    fn any_variant_can_be_corrupted_on_the_fly() {
        let s = source("(procedural: true, train_len: 20, test_len: 10)");
        let clean = s.open("colored-mnist/id/train").unwrap();
        let foggy = s.open("colored-mnist/id/train+fog/3").unwrap();
        assert_eq!(
            (foggy.len(), foggy.classes()),
            (clean.len(), clean.classes())
        );
        let (a, b) = (clean.get(4).unwrap(), foggy.get(4).unwrap());
        assert_eq!((a.label, a.width, a.height), (b.label, b.width, b.height));
        assert_ne!(a.pixels, b.pixels);
        assert_eq!(foggy.get(4).unwrap(), b, "deterministic per index");
        let e = s
            .open("colored-mnist/id+frost/2")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown corruption 'frost'"), "{e}");
        let e = s
            .open("colored-mnist/sepia+fog/2")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no variant 'sepia'"), "{e}");
    }

    #[test]
    fn conformance() {
        let s = source("(procedural: true, train_len: 40, test_len: 30)");
        shiftscope_testkit::check_dataset_source(&s).assert_passed(100);
    }

    #[test]
    fn random_colours_vary_per_image_and_repeat_per_index() {
        let s = source("(procedural: true, train_len: 10, test_len: 10)");
        let d = s.open("colored-mnist/random").unwrap();
        let paint = |i| {
            d.get(i)
                .unwrap()
                .pixels
                .chunks(3)
                .find(|p| p != &[0, 0, 0])
                .map(<[u8]>::to_vec)
        };
        assert_eq!(paint(3), paint(3));
        assert_ne!(paint(3), paint(4));
    }
}
