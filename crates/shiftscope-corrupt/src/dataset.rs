//! On-the-fly corrupted datasets: the `base+family/severity` naming and the wrapper.

use std::fmt;

use shiftscope_sdk::rng::SplitMix64;
use shiftscope_sdk::{Dataset, PluginError, Sample};

use crate::{Corruption, corrupt};

/// A corruption family at one severity, written `family/severity` (e.g. `fog/3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CorruptionSpec {
    /// The family.
    pub corruption: Corruption,
    /// Severity 1..=5.
    pub severity: u8,
}

impl fmt::Display for CorruptionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.corruption.name(), self.severity)
    }
}

/// Splits `base+family/severity` into the base name and the corruption:
/// `cifar10/test+fog/3` → `("cifar10/test", Some(fog/3))`, `cifar10/test` →
/// `("cifar10/test", None)`. An unknown family is a not-found error listing the valid
/// names; a missing or malformed severity, or one outside 1..=5, an invalid-argument error.
pub fn split_name(name: &str) -> Result<(&str, Option<CorruptionSpec>), PluginError> {
    let Some((base, suffix)) = name.split_once('+') else {
        return Ok((name, None));
    };
    let usage = "expected `<dataset>+<corruption>/<severity 1-5>`, e.g. `cifar10/test+fog/3`";
    if base.is_empty() {
        return Err(PluginError::invalid_argument(format!(
            "'{name}': no dataset before '+' ({usage})"
        )));
    }
    let Some((family, severity)) = suffix.split_once('/') else {
        return Err(PluginError::invalid_argument(format!(
            "'{name}': corruption '{suffix}' has no severity ({usage})"
        )));
    };
    let Some(corruption) = Corruption::from_name(family) else {
        return Err(PluginError::not_found(format!(
            "'{name}': unknown corruption '{family}'; valid corruptions: {}",
            Corruption::valid_names()
        )));
    };
    let severity = match severity.parse::<u8>() {
        Ok(s) if (1..=5).contains(&s) => s,
        _ => {
            return Err(PluginError::invalid_argument(format!(
                "'{name}': severity '{severity}' of {family} is not one of 1, 2, 3, 4, 5"
            )));
        }
    };
    Ok((
        base,
        Some(CorruptionSpec {
            corruption,
            severity,
        }),
    ))
}

/// A [`Dataset`] that corrupts another on the fly. Image `i` is corrupted with a seed
/// derived from `(seed, corruption, severity, i)`, so it is deterministic per index and
/// needs no shared state between threads.
pub struct Corrupted {
    inner: Box<dyn Dataset>,
    spec: CorruptionSpec,
    seed: u64,
}

impl fmt::Debug for Corrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Corrupted")
            .field("spec", &self.spec)
            .field("seed", &self.seed)
            .field("len", &self.inner.len())
            .finish_non_exhaustive()
    }
}

impl Corrupted {
    /// Wraps `inner`; every sample is corrupted by `spec`.
    pub fn new(inner: Box<dyn Dataset>, spec: CorruptionSpec, seed: u64) -> Corrupted {
        Corrupted { inner, spec, seed }
    }

    /// The corruption applied.
    pub fn spec(&self) -> CorruptionSpec {
        self.spec
    }

    /// The seed [`corrupt`] gets for image `index`.
    pub fn image_seed(&self, index: usize) -> u64 {
        let family = Corruption::ALL
            .iter()
            .position(|&c| c == self.spec.corruption)
            .unwrap_or(0) as u64;
        let stream = self.seed
            ^ (family << 8 | u64::from(self.spec.severity)).wrapping_mul(0xd6e8_feb8_6659_fd93);
        SplitMix64::for_item(stream, index as u64).next_u64()
    }
}

impl Dataset for Corrupted {
    fn len(&self) -> usize {
        self.inner.len()
    }

    fn classes(&self) -> &[String] {
        self.inner.classes()
    }

    fn get(&self, index: usize) -> Result<Sample, PluginError> {
        let mut sample = self.inner.get(index)?;
        sample.pixels = corrupt(
            self.spec.corruption,
            &sample.pixels,
            sample.width,
            sample.height,
            self.spec.severity,
            self.image_seed(index),
        )
        .map_err(|e| {
            PluginError::invalid_argument(format!("{} of image {index}: {e}", self.spec))
        })?;
        Ok(sample)
    }
}

/// For a plugin's `open`: splits `name`, opens the base with `open_base`, and wraps it in
/// [`Corrupted`] when a corruption is named. Errors from `open_base` get the full name as
/// context when a corruption was named.
pub fn open_corrupted(
    name: &str,
    seed: u64,
    open_base: impl FnOnce(&str) -> Result<Box<dyn Dataset>, PluginError>,
) -> Result<Box<dyn Dataset>, PluginError> {
    let (base, spec) = split_name(name)?;
    match spec {
        None => open_base(base),
        Some(spec) => {
            let inner =
                open_base(base).map_err(|e| e.context(format!("{name} (corruption {spec})")))?;
            Ok(Box::new(Corrupted::new(inner, spec, seed)))
        }
    }
}
