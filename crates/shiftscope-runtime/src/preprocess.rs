//! Preprocessing, as torchvision's `Resize(r)`, `CenterCrop(c)`, `ToTensor()` and
//! `Normalize(mean, std)` define it: the shorter side is resized to `r` (bilinear,
//! antialiased), a `c`×`c` centre crop is taken, values are scaled to the declared range and
//! normalised per channel.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use serde::{Deserialize, Serialize};
use shiftscope_sdk::{InputSpec, Sample};

/// Resizes an RGB image (antialiased bilinear, as PIL and torchvision do).
pub(crate) fn resize_rgb(
    pixels: &[u8],
    (w, h): (u32, u32),
    (tw, th): (u32, u32),
) -> Result<Vec<u8>, String> {
    if (w, h) == (tw, th) {
        return Ok(pixels.to_vec());
    }
    let src =
        Image::from_vec_u8(w, h, pixels.to_vec(), PixelType::U8x3).map_err(|e| e.to_string())?;
    let mut dst = Image::new(tw, th, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        )
        .map_err(|e| e.to_string())?;
    Ok(dst.into_vec())
}

/// Channel order of the model's input.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum Channels {
    /// Red, green, blue (PyTorch models).
    #[default]
    Rgb,
    /// Blue, green, red (Caffe/OpenCV-trained models).
    Bgr,
    /// One luminance channel (ITU-R 601: 0.299 R + 0.587 G + 0.114 B).
    Grey,
}

impl Channels {
    /// Number of input channels.
    pub fn count(self) -> usize {
        match self {
            Channels::Rgb | Channels::Bgr => 3,
            Channels::Grey => 1,
        }
    }
}

/// The value range before normalisation.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum ValueRange {
    /// Bytes divided by 255, as `ToTensor` does.
    #[default]
    Unit,
    /// Bytes as they are, 0–255.
    Byte,
}

/// How a model wants its images. The default is ImageNet's: resize 256, crop 224, RGB,
/// `[0, 1]`, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Preprocessing {
    /// Resize so that the shorter side has this length (aspect kept); `None`: no resize.
    pub resize: Option<u32>,
    /// Centre crop to this square size; `None`: no crop.
    pub crop: Option<u32>,
    /// Channel order.
    pub channels: Channels,
    /// Value range before normalisation.
    pub range: ValueRange,
    /// Per-channel mean, subtracted after scaling (the first entry for `Grey`).
    pub mean: [f32; 3],
    /// Per-channel standard deviation, divided by after the mean (the first entry for `Grey`).
    pub std: [f32; 3],
}

impl Default for Preprocessing {
    fn default() -> Preprocessing {
        Preprocessing::imagenet()
    }
}

/// Why preprocessing cannot work for a model or a sample.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PreprocessError {
    /// What preprocessing produces does not fit the model's input.
    #[error(
        "preprocessing produces {produced} images but the model's input '{input}' is {expected}; \
         declare a matching preprocessing (resize, crop, channels) for this model"
    )]
    Mismatch {
        /// `C×H×W` that preprocessing produces.
        produced: String,
        /// The model's input name.
        input: String,
        /// The model's input shape.
        expected: String,
    },
    /// The declaration itself is unusable.
    #[error("preprocessing: {0}")]
    Invalid(String),
    /// A sample cannot be preprocessed.
    #[error("sample of {width}x{height}: {problem}")]
    Sample {
        /// Sample width.
        width: u32,
        /// Sample height.
        height: u32,
        /// What was wrong.
        problem: String,
    },
}

/// One preprocessed sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// Width of what the model saw.
    pub width: u32,
    /// Height of what the model saw.
    pub height: u32,
    /// The pixels the model saw (after resize and crop, before normalisation), RGB HWC: what
    /// thumbnails are made from.
    pub pixels: Vec<u8>,
    /// The model input, CHW, normalised.
    pub input: Vec<f32>,
}

impl Preprocessing {
    /// ImageNet's preprocessing (torchvision's classification presets).
    pub fn imagenet() -> Preprocessing {
        Preprocessing {
            resize: Some(256),
            crop: Some(224),
            channels: Channels::Rgb,
            range: ValueRange::Unit,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    /// The preprocessing a model gets when its study declares none, from its input
    /// `[N, C, H, W]`: ImageNet's for 224 × 224 and for symbolic sizes; for another fixed
    /// square size S, torchvision's evaluation rule (resize to round(S / 0.875), centre crop
    /// S: 342 / 299 for Inception-v3); for one channel, the ITU-R 601 luminance of colour
    /// images, normalised with ImageNet's statistics weighted the same way.
    pub fn for_input(input: Option<&InputSpec>) -> Preprocessing {
        let mut p = Preprocessing::imagenet();
        let Some(&[_, c, h, w]) = input.map(|i| i.shape.as_slice()) else {
            return p;
        };
        // A non-square input gets no default: the check before extraction asks for one.
        if let (Some(h), Some(w)) = (h, w)
            && h == w
            && h != 224
            && let Ok(side) = u32::try_from(h)
        {
            p.resize = Some((f64::from(side) / 0.875).round() as u32);
            p.crop = Some(side);
        }
        if c == Some(1) {
            let luma = |v: [f32; 3]| 0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2];
            p.channels = Channels::Grey;
            p.mean = [luma(p.mean); 3];
            p.std = [luma(p.std); 3];
        }
        p
    }

    /// One line for people: what this preprocessing does.
    pub fn describe(&self) -> String {
        let mut steps = Vec::new();
        if let Some(r) = self.resize {
            steps.push(format!("resize {r}"));
        }
        if let Some(c) = self.crop {
            steps.push(format!("centre crop {c}"));
        }
        steps.push(match self.channels {
            Channels::Rgb => "RGB".to_owned(),
            Channels::Bgr => "BGR".to_owned(),
            Channels::Grey => "grey (ITU-R 601 luminance of colour images)".to_owned(),
        });
        steps.push(match self.range {
            ValueRange::Unit => "[0, 1]".to_owned(),
            ValueRange::Byte => "[0, 255]".to_owned(),
        });
        let n = self.channels.count();
        steps.push(format!(
            "mean {:?}, std {:?}",
            &self.mean[..n],
            &self.std[..n]
        ));
        steps.join(", ")
    }

    fn validate(&self) -> Result<(), PreprocessError> {
        if self.resize == Some(0) || self.crop == Some(0) {
            return Err(PreprocessError::Invalid(
                "resize and crop must be positive".to_owned(),
            ));
        }
        if self.std.iter().any(|s| !s.is_finite() || *s == 0.0)
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Err(PreprocessError::Invalid(format!(
                "mean {:?} and std {:?} must be finite, std non-zero",
                self.mean, self.std
            )));
        }
        Ok(())
    }

    /// The size after resize and crop of a `width`×`height` image.
    pub fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        let (w, h) = self.resized_size(width, height);
        match self.crop {
            Some(c) => (c, c),
            None => (w, h),
        }
    }

    fn resized_size(&self, width: u32, height: u32) -> (u32, u32) {
        match self.resize {
            None => (width, height),
            // torchvision: the shorter side becomes `r`, the longer `int(r * long / short)`.
            Some(r) if width <= height => (
                r,
                (u64::from(r) * u64::from(height) / u64::from(width.max(1))) as u32,
            ),
            Some(r) => (
                (u64::from(r) * u64::from(width) / u64::from(height.max(1))) as u32,
                r,
            ),
        }
    }

    /// Checks that images of `sample_size` (needed only when there is no crop) come out in the
    /// model's input shape: the check made before any work starts.
    pub fn check_model_input(
        &self,
        input: &InputSpec,
        sample_size: Option<(u32, u32)>,
    ) -> Result<(), PreprocessError> {
        self.validate()?;
        let show = |dims: &[Option<usize>]| {
            let parts: Vec<String> = dims
                .iter()
                .map(|d| d.map_or_else(|| "?".to_owned(), |v| v.to_string()))
                .collect();
            format!("[{}]", parts.join(", "))
        };
        let (w, h) = match (self.crop, sample_size) {
            (Some(c), _) => (c, c),
            (None, Some((sw, sh))) => self.output_size(sw, sh),
            (None, None) => {
                return Err(PreprocessError::Invalid(
                    "without a crop the output size depends on the images; give a sample size"
                        .to_owned(),
                ));
            }
        };
        let produced = [self.channels.count(), h as usize, w as usize];
        let fits = match input.shape.as_slice() {
            [_, c, hh, ww] => [c, hh, ww]
                .iter()
                .zip(produced)
                .all(|(expected, got)| expected.is_none_or(|e| e == got)),
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            Err(PreprocessError::Mismatch {
                produced: format!("{}×{}×{}", produced[0], produced[1], produced[2]),
                input: input.name.clone(),
                expected: show(&input.shape),
            })
        }
    }

    /// Preprocesses one sample.
    pub fn apply(&self, sample: &Sample) -> Result<Prepared, PreprocessError> {
        self.validate()?;
        let bad = |problem: String| PreprocessError::Sample {
            width: sample.width,
            height: sample.height,
            problem,
        };
        let expected = sample.width as usize * sample.height as usize * 3;
        if sample.width == 0 || sample.height == 0 || sample.pixels.len() != expected {
            return Err(bad(format!(
                "{} bytes of pixels, RGB needs {expected}",
                sample.pixels.len()
            )));
        }
        let (rw, rh) = self.resized_size(sample.width, sample.height);
        let resized: Vec<u8> = if (rw, rh) == (sample.width, sample.height) {
            sample.pixels.clone()
        } else {
            resize_rgb(&sample.pixels, (sample.width, sample.height), (rw, rh))
                .map_err(|e| bad(format!("resize to {rw}x{rh}: {e}")))?
        };
        let (pixels, width, height) = match self.crop {
            None => (resized, rw, rh),
            Some(c) => {
                if c > rw || c > rh {
                    return Err(bad(format!(
                        "crop {c} is larger than the resized {rw}x{rh} image"
                    )));
                }
                // torchvision: offsets are round((size - crop) / 2) with ties to even.
                let top = (f64::from(rh - c) / 2.0).round_ties_even() as usize;
                let left = (f64::from(rw - c) / 2.0).round_ties_even() as usize;
                let (c, rw) = (c as usize, rw as usize);
                let mut out = Vec::with_capacity(c * c * 3);
                for y in top..top + c {
                    out.extend_from_slice(&resized[(y * rw + left) * 3..(y * rw + left + c) * 3]);
                }
                (out, c as u32, c as u32)
            }
        };
        let scale = match self.range {
            ValueRange::Unit => 1.0 / 255.0,
            ValueRange::Byte => 1.0,
        };
        let plane = width as usize * height as usize;
        let mut input = vec![0.0f32; plane * self.channels.count()];
        for (i, rgb) in pixels.chunks_exact(3).enumerate() {
            let [r, g, b] = [rgb[0], rgb[1], rgb[2]].map(|v| f32::from(v) * scale);
            match self.channels {
                Channels::Rgb | Channels::Bgr => {
                    let ordered = if self.channels == Channels::Rgb {
                        [r, g, b]
                    } else {
                        [b, g, r]
                    };
                    for (c, v) in ordered.into_iter().enumerate() {
                        input[c * plane + i] = (v - self.mean[c]) / self.std[c];
                    }
                }
                Channels::Grey => {
                    let y = 0.299 * r + 0.587 * g + 0.114 * b;
                    input[i] = (y - self.mean[0]) / self.std[0];
                }
            }
        }
        Ok(Prepared {
            width,
            height,
            pixels,
            input,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_model_input() {
        let spec = |shape: [Option<usize>; 4]| InputSpec {
            name: "x".into(),
            shape: shape.to_vec(),
        };
        let imagenet = Preprocessing::imagenet();
        assert_eq!(Preprocessing::for_input(None), imagenet);
        let at = |c, h, w| Preprocessing::for_input(Some(&spec([None, Some(c), h, w])));
        assert_eq!(at(3, Some(224), Some(224)), imagenet);
        assert_eq!(at(3, None, None), imagenet, "symbolic sizes take 224");
        let inception = at(3, Some(299), Some(299));
        assert_eq!((inception.resize, inception.crop), (Some(342), Some(299)));
        inception
            .check_model_input(&spec([None, Some(3), Some(299), Some(299)]), None)
            .unwrap();
        let small = at(3, Some(32), Some(32));
        assert_eq!((small.resize, small.crop), (Some(37), Some(32)));
        let grey = at(1, Some(28), Some(28));
        assert_eq!(grey.channels, Channels::Grey);
        assert!((grey.mean[0] - 0.4589).abs() < 1e-3, "{:?}", grey.mean);
        assert!(
            grey.describe().contains("grey (ITU-R 601"),
            "{}",
            grey.describe()
        );
        assert_eq!(
            imagenet.describe(),
            "resize 256, centre crop 224, RGB, [0, 1], mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]"
        );
    }

    fn sample(width: u32, height: u32, f: impl Fn(u32, u32, usize) -> u8) -> Sample {
        let mut pixels = Vec::new();
        for y in 0..height {
            for x in 0..width {
                for c in 0..3 {
                    pixels.push(f(x, y, c));
                }
            }
        }
        Sample {
            width,
            height,
            label: 0,
            pixels,
        }
    }

    fn input(shape: [Option<usize>; 4]) -> InputSpec {
        InputSpec {
            name: "image".into(),
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn imagenet_is_the_default_and_reads_from_ron() {
        assert_eq!(Preprocessing::default(), Preprocessing::imagenet());
        let p: Preprocessing = ron::from_str(
            "(resize: None, crop: Some(28), mean: (0.0, 0.0, 0.0), std: (1.0, 1.0, 1.0))",
        )
        .unwrap();
        assert_eq!(p.crop, Some(28));
        assert_eq!(p.channels, Channels::Rgb);
        assert!(ron::from_str::<Preprocessing>("(crop: Some(28), colour: Rgb)").is_err());
    }

    #[test]
    fn a_mismatch_with_the_model_input_names_both() {
        let p = Preprocessing::imagenet();
        assert!(
            p.check_model_input(&input([None, Some(3), Some(224), Some(224)]), None)
                .is_ok()
        );
        let e = p
            .check_model_input(&input([None, Some(3), Some(28), Some(28)]), None)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "preprocessing produces 3×224×224 images but the model's input 'image' is [?, 3, 28, 28]; \
             declare a matching preprocessing (resize, crop, channels) for this model"
        );
        let grey = Preprocessing {
            channels: Channels::Grey,
            ..Preprocessing::imagenet()
        };
        assert!(
            grey.check_model_input(&input([None, Some(3), Some(224), Some(224)]), None)
                .is_err()
        );
        let uncropped = Preprocessing {
            resize: None,
            crop: None,
            ..Preprocessing::imagenet()
        };
        assert!(
            uncropped
                .check_model_input(&input([None, Some(3), Some(32), Some(32)]), Some((32, 32)))
                .is_ok()
        );
        assert!(
            uncropped
                .check_model_input(&input([None, Some(3), Some(32), Some(32)]), None)
                .is_err()
        );
    }

    #[test]
    fn normalisation_and_channel_order_by_hand() {
        let s = sample(2, 1, |x, _, c| {
            [[10u8, 20, 30], [200, 100, 50]][x as usize][c]
        });
        let p = Preprocessing {
            resize: None,
            crop: None,
            ..Preprocessing::imagenet()
        };
        let out = p.apply(&s).unwrap();
        assert_eq!(out.pixels, s.pixels);
        let expect = |v: u8, c: usize| (f32::from(v) / 255.0 - p.mean[c]) / p.std[c];
        let want = [
            expect(10, 0),
            expect(200, 0),
            expect(20, 1),
            expect(100, 1),
            expect(30, 2),
            expect(50, 2),
        ];
        for (a, b) in out.input.iter().zip(want) {
            assert!((a - b).abs() < 1e-6);
        }
        let bgr = Preprocessing {
            channels: Channels::Bgr,
            range: ValueRange::Byte,
            mean: [0.0; 3],
            std: [1.0; 3],
            ..p.clone()
        };
        assert_eq!(
            bgr.apply(&s).unwrap().input,
            vec![30.0, 50.0, 20.0, 100.0, 10.0, 200.0]
        );
        let grey = Preprocessing {
            channels: Channels::Grey,
            range: ValueRange::Byte,
            mean: [0.0; 3],
            std: [1.0; 3],
            ..p
        };
        let y = grey.apply(&s).unwrap().input;
        assert_eq!(y.len(), 2);
        assert!((y[0] - (0.299 * 10.0 + 0.587 * 20.0 + 0.114 * 30.0)).abs() < 1e-4);
    }

    #[test]
    fn resize_keeps_aspect_and_crop_is_centred() {
        let p = Preprocessing::imagenet();
        assert_eq!(p.resized_size(500, 375), (341, 256));
        assert_eq!(p.resized_size(375, 500), (256, 341));
        assert_eq!(p.output_size(500, 375), (224, 224));
        // No resize, crop 2 of a 5x4 image whose pixels encode their coordinates: offsets
        // round((5-2)/2) = 2 (ties to even) and round((4-2)/2) = 1.
        let s = sample(5, 4, |x, y, c| (y * 10 + x) as u8 + c as u8 * 100);
        let crop = Preprocessing {
            resize: None,
            crop: Some(2),
            ..Preprocessing::imagenet()
        };
        let out = crop.apply(&s).unwrap();
        let reds: Vec<u8> = out.pixels.chunks(3).map(|p| p[0]).collect();
        assert_eq!(reds, vec![12, 13, 22, 23]);
        // A constant image stays constant through the resampler.
        let flat = sample(40, 30, |_, _, c| [90u8, 120, 200][c]);
        let out = Preprocessing {
            resize: Some(20),
            crop: Some(16),
            ..Preprocessing::imagenet()
        }
        .apply(&flat)
        .unwrap();
        assert_eq!((out.width, out.height), (16, 16));
        assert!(out.pixels.chunks(3).all(|p| p == [90, 120, 200]));
        assert_eq!(out.input.len(), 3 * 16 * 16);
    }

    #[test]
    fn bad_samples_and_declarations_are_errors() {
        let p = Preprocessing::imagenet();
        let short = Sample {
            width: 4,
            height: 4,
            label: 0,
            pixels: vec![0; 5],
        };
        assert!(
            p.apply(&short)
                .unwrap_err()
                .to_string()
                .contains("5 bytes of pixels")
        );
        let small = sample(8, 8, |_, _, _| 0);
        let big_crop = Preprocessing {
            resize: None,
            crop: Some(16),
            ..p.clone()
        };
        assert!(
            big_crop
                .apply(&small)
                .unwrap_err()
                .to_string()
                .contains("crop 16 is larger")
        );
        let zero_std = Preprocessing {
            std: [0.0, 1.0, 1.0],
            ..p
        };
        assert!(matches!(
            zero_std.apply(&small),
            Err(PreprocessError::Invalid(_))
        ));
    }
}
