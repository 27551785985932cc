//! The Neuron Feature (Rafegas et al. 2019): `NF = Σ_j (w_j / Σ_k w_k) · I_j` over a
//! neuron's top-N images, `w_j = a_j / a_1` (its activation on image j over the top one, so
//! `NF = Σ_j a_j I_j / Σ_k a_k`: `a_1` cancels), `I_j` the receptive-field crop of image j
//! around the neuron's argmax location. Negative activations weigh 0. Where the field
//! reaches past the image the crop is mid-grey (0.5), so padding adds no colour.

use shiftscope_sdk::ReceptiveField;

use crate::Rgb;

/// The grey that fills a crop where the receptive field leaves the image.
pub const PAD: f32 = 0.5;

/// The crop of `image` that map position `(y, x)` of a layer with `field` sees; the whole
/// image when `field` is `None`.
pub fn crop(image: &Rgb, field: Option<&ReceptiveField>, y: usize, x: usize) -> Rgb {
    let Some(field) = field else {
        return image.clone();
    };
    let [top, left] = field.origin(y, x);
    let [h, w] = field.size;
    let mut data = Vec::with_capacity(h * w * 3);
    for r in 0..h {
        let sy = top + r as i64;
        for c in 0..w {
            let sx = left + c as i64;
            if sy >= 0 && sx >= 0 && (sy as usize) < image.height && (sx as usize) < image.width {
                let i = (sy as usize * image.width + sx as usize) * 3;
                data.extend_from_slice(&image.data[i..i + 3]);
            } else {
                data.extend_from_slice(&[PAD; 3]);
            }
        }
    }
    Rgb {
        width: w,
        height: h,
        data,
    }
}

/// Box-averages `image` down by the integer `factor` on both axes (partial boxes at the
/// right and bottom edges average what they hold).
pub fn shrink(image: &Rgb, factor: usize) -> Rgb {
    if factor <= 1 {
        return image.clone();
    }
    let (w, h) = (image.width.div_ceil(factor), image.height.div_ceil(factor));
    let mut data = vec![0.0f32; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let mut sum = [0.0f32; 3];
            let mut n = 0.0f32;
            for sy in y * factor..((y + 1) * factor).min(image.height) {
                for sx in x * factor..((x + 1) * factor).min(image.width) {
                    let i = (sy * image.width + sx) * 3;
                    for (s, v) in sum.iter_mut().zip(&image.data[i..i + 3]) {
                        *s += v;
                    }
                    n += 1.0;
                }
            }
            for c in 0..3 {
                data[(y * w + x) * 3 + c] = sum[c] / n;
            }
        }
    }
    Rgb {
        width: w,
        height: h,
        data,
    }
}

/// Sums `a_j · I_j` and `a_j` for every neuron of a layer as crops arrive, so that the top
/// images never need to be held at once.
#[derive(Clone, Debug)]
pub struct NfAccumulator {
    width: usize,
    height: usize,
    sums: Vec<f64>,
    weights: Vec<f64>,
    counts: Vec<u32>,
}

impl NfAccumulator {
    /// For `neurons` neurons whose crops are `height × width`.
    pub fn new(neurons: usize, height: usize, width: usize) -> NfAccumulator {
        NfAccumulator {
            width,
            height,
            sums: vec![0.0; neurons * height * width * 3],
            weights: vec![0.0; neurons],
            counts: vec![0; neurons],
        }
    }

    /// Adds `crop` with activation `activation` to `neuron`'s feature; a crop of another
    /// size or a neuron out of range is ignored (the caller sizes them from one field).
    pub fn add(&mut self, neuron: usize, crop: &Rgb, activation: f32) {
        let plane = self.width * self.height * 3;
        if neuron >= self.weights.len() || crop.data.len() != plane {
            return;
        }
        self.counts[neuron] += 1;
        let w = f64::from(activation.max(0.0));
        if !w.is_finite() || w == 0.0 {
            return;
        }
        self.weights[neuron] += w;
        let sums = &mut self.sums[neuron * plane..(neuron + 1) * plane];
        for (s, v) in sums.iter_mut().zip(&crop.data) {
            *s += w * f64::from(*v);
        }
    }

    /// Crop height and width.
    pub fn size(&self) -> [usize; 2] {
        [self.height, self.width]
    }

    /// `neuron`'s feature, or `None` when none of its images had a positive activation.
    pub fn feature(&self, neuron: usize) -> Option<Rgb> {
        let plane = self.width * self.height * 3;
        let total = *self.weights.get(neuron)?;
        (total > 0.0).then(|| Rgb {
            width: self.width,
            height: self.height,
            data: self.sums[neuron * plane..(neuron + 1) * plane]
                .iter()
                .map(|s| (s / total) as f32)
                .collect(),
        })
    }

    /// How many crops `neuron` received (positive or not).
    pub fn count(&self, neuron: usize) -> u32 {
        self.counts.get(neuron).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4×4 image whose pixel (y, x) is (y/10, x/10, 1).
    fn ramp() -> Rgb {
        Rgb {
            width: 4,
            height: 4,
            data: (0..16)
                .flat_map(|i| [(i / 4) as f32 / 10.0, (i % 4) as f32 / 10.0, 1.0])
                .collect(),
        }
    }

    #[test]
    fn crops_follow_the_field_and_pad_with_grey() {
        // Size 3, jump 2, offset −1: position (0, 1) sees rows −1..=1, columns 1..=3.
        let field = ReceptiveField {
            size: [3, 3],
            jump: [2, 2],
            offset: [-1, -1],
        };
        let c = crop(&ramp(), Some(&field), 0, 1);
        assert_eq!((c.width, c.height), (3, 3));
        let px = |r: usize, col: usize| &c.data[(r * 3 + col) * 3..(r * 3 + col) * 3 + 3];
        assert_eq!(px(0, 0), &[PAD; 3], "row −1 is padding");
        assert_eq!(px(1, 0), &[0.0, 0.1, 1.0], "row 0, column 1");
        assert_eq!(px(2, 2), &[0.1, 0.3, 1.0], "row 1, column 3");
        // No field: the whole image.
        assert_eq!(crop(&ramp(), None, 3, 3), ramp());
    }

    #[test]
    fn the_feature_is_the_activation_weighted_mean_by_hand() {
        let solid = |v: f32| Rgb {
            width: 1,
            height: 1,
            data: vec![v, 0.0, 1.0 - v],
        };
        let mut acc = NfAccumulator::new(2, 1, 1);
        // Neuron 0: a = (4, 2, 2) on crops 1, 0, 0.5: w = (1, 0.5, 0.5);
        // NF = (1·1 + 0.5·0 + 0.5·0.5)/2 = 0.625 in red, 1 − 0.625 in blue.
        acc.add(0, &solid(1.0), 4.0);
        acc.add(0, &solid(0.0), 2.0);
        acc.add(0, &solid(0.5), 2.0);
        // A negative activation weighs nothing.
        acc.add(0, &solid(0.0), -3.0);
        let nf = acc.feature(0).unwrap();
        assert!((nf.data[0] - 0.625).abs() < 1e-6 && (nf.data[2] - 0.375).abs() < 1e-6);
        assert_eq!(acc.count(0), 4);
        // Neuron 1 saw only non-positive activations: no feature.
        acc.add(1, &solid(1.0), 0.0);
        assert_eq!(acc.feature(1), None);
    }

    #[test]
    fn shrink_box_averages() {
        let s = shrink(&ramp(), 2);
        assert_eq!((s.width, s.height), (2, 2));
        // Top-left box: rows 0–1, columns 0–1: red mean 0.05, green mean 0.05.
        assert!((s.data[0] - 0.05).abs() < 1e-6 && (s.data[1] - 0.05).abs() < 1e-6);
        let s = shrink(&ramp(), 3);
        assert_eq!((s.width, s.height), (2, 2));
        // Bottom-right partial box holds only pixel (3, 3).
        assert!((s.data[9] - 0.3).abs() < 1e-6 && (s.data[10] - 0.3).abs() < 1e-6);
    }
}
