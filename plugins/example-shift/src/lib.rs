//! `example-shift`: the template for dataset-shift plugins. It owns a procedural image set
//! (32×32 stripes; the class is the stripe orientation) and one shift parameter, additive
//! Gaussian pixel noise of standard deviation `noise` (a fraction of the 0–255 range).
//!
//! Datasets: `example-shift/id` (no noise), `example-shift/noisy` (noise 0.35), and any
//! `example-shift/noise=σ` with σ in [0, 1]. Config (RON, all fields optional):
//! `(len: 512, seed: 7)`.
//!
//! Everything a plugin must honour is here: random access, determinism per (seed, index),
//! class names, out-of-range errors, clear errors for unknown names and bad parameters.

use serde::Deserialize;
use shiftscope_sdk::rng::SplitMix64;
use shiftscope_sdk::{
    Dataset, DatasetInfo, DatasetSource, DatasetSourcePlugin, PluginError, Sample,
};

/// Image side in pixels.
pub const SIDE: u32 = 32;
/// Class names, in label order.
pub const CLASSES: [&str; 4] = ["horizontal", "vertical", "diagonal", "anti-diagonal"];
/// The plugin's name, and the prefix of its dataset names.
pub const NAME: &str = "example-shift";
/// Noise level of the `noisy` preset.
pub const NOISY: f32 = 0.35;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// Samples per dataset.
    len: usize,
    /// Seed of the image generator (the noise has its own stream derived from it).
    seed: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config { len: 512, seed: 7 }
    }
}

/// The source: one base image set, shifted by noise.
#[derive(Debug)]
pub struct ExampleShift {
    config: Config,
}

impl DatasetSourcePlugin for ExampleShift {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn create(config: &str) -> Result<ExampleShift, PluginError> {
        let config: Config = if config.trim().is_empty() {
            Config::default()
        } else {
            ron::from_str(config).map_err(|e| {
                PluginError::invalid_argument(format!(
                    "{NAME} config: {e} (expected e.g. `(len: 512, seed: 7)`)"
                ))
            })?
        };
        if config.len == 0 {
            return Err(PluginError::invalid_argument(format!(
                "{NAME} config: len must be at least 1"
            )));
        }
        Ok(ExampleShift { config })
    }
}

fn entry(suffix: &str, family: &str, noise: f32, description: &str) -> DatasetInfo {
    DatasetInfo {
        name: format!("{NAME}/{suffix}"),
        family: family.to_owned(),
        description: description.to_owned(),
        params: vec![("noise".to_owned(), noise.to_string())],
    }
}

impl DatasetSource for ExampleShift {
    fn catalog(&self) -> Result<Vec<DatasetInfo>, PluginError> {
        Ok(vec![
            entry(
                "id",
                "id",
                0.0,
                "procedural stripes, in distribution (no noise)",
            ),
            entry(
                "noisy",
                "noise",
                NOISY,
                "procedural stripes with Gaussian pixel noise σ = 0.35; any `noise=σ` in [0, 1] opens too",
            ),
        ])
    }

    fn open(&self, name: &str) -> Result<Box<dyn Dataset>, PluginError> {
        let noise = match name.strip_prefix(NAME).and_then(|s| s.strip_prefix('/')) {
            Some("id") => 0.0,
            Some("noisy") => NOISY,
            Some(rest) if rest.starts_with("noise=") => {
                let value = &rest["noise=".len()..];
                let noise: f32 = value.parse().map_err(|_| {
                    PluginError::invalid_argument(format!(
                        "{name}: noise '{value}' is not a number"
                    ))
                })?;
                if !(0.0..=1.0).contains(&noise) {
                    return Err(PluginError::invalid_argument(format!(
                        "{name}: noise {noise} is outside [0, 1]"
                    )));
                }
                noise
            }
            _ => {
                return Err(PluginError::not_found(format!(
                    "no dataset '{name}': {NAME} offers {NAME}/id, {NAME}/noisy and {NAME}/noise=σ"
                )));
            }
        };
        Ok(Box::new(StripesDataset {
            len: self.config.len,
            seed: self.config.seed,
            noise,
            classes: CLASSES.iter().map(|&c| c.to_owned()).collect(),
        }))
    }
}

struct StripesDataset {
    len: usize,
    seed: u64,
    noise: f32,
    classes: Vec<String>,
}

impl Dataset for StripesDataset {
    fn len(&self) -> usize {
        self.len
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn get(&self, index: usize) -> Result<Sample, PluginError> {
        if index >= self.len {
            return Err(PluginError::out_of_range(format!(
                "index {index} is past the end ({} samples)",
                self.len
            )));
        }
        let label = (index % CLASSES.len()) as u32;
        let mut pixels = stripes(self.seed, index as u64, label);
        if self.noise > 0.0 {
            let mut rng = SplitMix64::for_item(self.seed ^ 0x00c0_ffee_5eed_0015, index as u64);
            let sigma = self.noise * 255.0;
            for p in &mut pixels {
                *p = (f32::from(*p) + sigma * rng.normal())
                    .round()
                    .clamp(0.0, 255.0) as u8;
            }
        }
        Ok(Sample {
            width: SIDE,
            height: SIDE,
            label,
            pixels,
        })
    }
}

/// A stripe image of class `label`: random period, phase, colours, and a little jitter of
/// the angle, so a model has something to learn.
fn stripes(seed: u64, index: u64, label: u32) -> Vec<u8> {
    let mut rng = SplitMix64::for_item(seed, index);
    let base = [0.0f32, 90.0, 45.0, 135.0][label as usize];
    let angle = (base + rng.uniform(-10.0, 10.0)).to_radians();
    let period = rng.uniform(4.0, 9.0);
    let phase = rng.uniform(0.0, std::f32::consts::TAU);
    let fg: [f32; 3] = [
        rng.uniform(120.0, 255.0),
        rng.uniform(120.0, 255.0),
        rng.uniform(120.0, 255.0),
    ];
    let bg: [f32; 3] = [
        rng.uniform(0.0, 60.0),
        rng.uniform(0.0, 60.0),
        rng.uniform(0.0, 60.0),
    ];
    let (sin, cos) = angle.sin_cos();
    let mut pixels = Vec::with_capacity((SIDE * SIDE * 3) as usize);
    for y in 0..SIDE {
        for x in 0..SIDE {
            // Distance across the stripes; a soft square wave keeps edges anti-aliased.
            let t = (x as f32 * sin + y as f32 * cos) * std::f32::consts::TAU / period + phase;
            let w = (t.sin() * 3.0).clamp(-1.0, 1.0) * 0.5 + 0.5;
            for c in 0..3 {
                pixels.push((bg[c] + (fg[c] - bg[c]) * w).round() as u8);
            }
        }
    }
    pixels
}

shiftscope_sdk::export_dataset_source!(ExampleShift);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_shifts_pixels_but_not_labels() {
        let source = ExampleShift::create("(len: 8, seed: 3)").unwrap();
        let id = source.open("example-shift/id").unwrap();
        let noisy = source.open("example-shift/noise=0.5").unwrap();
        for i in 0..8 {
            let a = id.get(i).unwrap();
            let b = noisy.get(i).unwrap();
            assert_eq!(a.label, b.label);
            let diff: f64 = a
                .pixels
                .iter()
                .zip(&b.pixels)
                .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
                .sum::<f64>()
                / a.pixels.len() as f64;
            assert!(
                diff > 20.0,
                "mean absolute change {diff} too small for σ = 0.5"
            );
        }
    }

    #[test]
    fn bad_names_and_configs_are_clear_errors() {
        let source = ExampleShift::create("").unwrap();
        let e = source.open("example-shift/noise=2").err().unwrap();
        assert!(e.to_string().contains("outside [0, 1]"), "{e}");
        let e = source.open("example-shift/noise=abc").err().unwrap();
        assert!(e.to_string().contains("not a number"), "{e}");
        let e = source.open("cifar10/id").err().unwrap();
        assert_eq!(e.kind(), shiftscope_sdk::ErrorKind::NotFound);
        let e = ExampleShift::create("(length: 3)").err().unwrap();
        assert!(e.to_string().contains("length"), "{e}");
        assert!(ExampleShift::create("(len: 0)").is_err());
    }
}
