//! The colour selectivity index (Rafegas & Vanrell; Rafegas et al. 2019): how much of a
//! neuron's response to its top images goes when their colour goes.
//!
//! Pixel values are in `[0, 1]`. The opponent space is `O1 = (R+G+B−1.5)/1.5`, `O2 = R−G`,
//! `O3 = (R+G−2B)/2`. An image's grey version keeps its shape: each pixel's opponent vector
//! is projected on the image's first principal component `v` (the direction in which its
//! pixels vary most), and that projection becomes the luminance `O1' = μ₁ + (o − μ)·v` of an
//! achromatic pixel (`O2' = O3' = 0`), mapped back to RGB (`R = G = B = (O1' + 1)/2`,
//! clamped to `[0, 1]`). `v` is oriented to agree with luminance (`v₁ ≥ 0`; for a purely
//! chromatic component, `v₂ ≥ 0`, then `v₃ ≥ 0`). An image that is grey already comes back
//! unchanged, so its CSI is 0.

use crate::Rgb;

/// `[O1, O2, O3]` of an RGB pixel.
pub fn opponent([r, g, b]: [f32; 3]) -> [f32; 3] {
    [(r + g + b - 1.5) / 1.5, r - g, (r + g - 2.0 * b) / 2.0]
}

/// The RGB pixel of an opponent vector (the inverse of [`opponent`]).
pub fn rgb_from_opponent([o1, o2, o3]: [f32; 3]) -> [f32; 3] {
    let sum = 1.5 * o1 + 1.5; // R + G + B
    let b = (sum - 2.0 * o3) / 3.0; // R + G = 2·O3 + 2B, so sum = 2·O3 + 3B
    let rg = sum - b;
    [(rg + o2) / 2.0, (rg - o2) / 2.0, b]
}

/// The first principal component of 3-D points (unit length, oriented as the module says),
/// or `None` when they do not vary.
fn first_component(points: &[[f64; 3]]) -> Option<[f64; 3]> {
    let n = points.len() as f64;
    let mut mean = [0.0; 3];
    for p in points {
        for c in 0..3 {
            mean[c] += p[c] / n;
        }
    }
    let mut cov = [[0.0f64; 3]; 3];
    for p in points {
        let d = [p[0] - mean[0], p[1] - mean[1], p[2] - mean[2]];
        for i in 0..3 {
            for j in 0..3 {
                cov[i][j] += d[i] * d[j] / n;
            }
        }
    }
    let trace = cov[0][0] + cov[1][1] + cov[2][2];
    if trace <= 1e-12 {
        return None;
    }
    // Power iteration from the column of largest norm (never orthogonal to the top
    // eigenvector unless the matrix is degenerate in a way the iteration then reveals).
    let mut v = (0..3)
        .map(|j| [cov[0][j], cov[1][j], cov[2][j]])
        .max_by(|a, b| norm(a).total_cmp(&norm(b)))?;
    let mut len = norm(&v);
    if len <= 0.0 {
        return None;
    }
    for _ in 0..200 {
        v = v.map(|x| x / len);
        let next = [0, 1, 2].map(|i| cov[i][0] * v[0] + cov[i][1] * v[1] + cov[i][2] * v[2]);
        len = norm(&next);
        if len <= 0.0 {
            return None;
        }
        let converged = (0..3).all(|i| (next[i] / len - v[i]).abs() < 1e-12);
        v = next;
        if converged {
            break;
        }
    }
    v = v.map(|x| x / len);
    let sign = v
        .iter()
        .find(|x| x.abs() > 1e-9)
        .map_or(1.0, |x| x.signum());
    Some(v.map(|x| x * sign))
}

fn norm(v: &[f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

/// The grey version of `image` (see the module): same size, `R = G = B` everywhere.
pub fn grey_version(image: &Rgb) -> Rgb {
    let points: Vec<[f64; 3]> = image
        .data
        .chunks_exact(3)
        .map(|p| opponent([p[0], p[1], p[2]]).map(f64::from))
        .collect();
    let n = points.len().max(1) as f64;
    let mut mean = [0.0; 3];
    for p in &points {
        for c in 0..3 {
            mean[c] += p[c] / n;
        }
    }
    let v = first_component(&points);
    let data = points
        .iter()
        .flat_map(|p| {
            let o1 = match v {
                Some(v) => {
                    mean[0]
                        + (p[0] - mean[0]) * v[0]
                        + (p[1] - mean[1]) * v[1]
                        + (p[2] - mean[2]) * v[2]
                }
                None => p[0],
            };
            let grey = (((o1 + 1.0) / 2.0) as f32).clamp(0.0, 1.0);
            [grey; 3]
        })
        .collect();
    Rgb {
        width: image.width,
        height: image.height,
        data,
    }
}

/// Both colour selectivity indexes of one neuron over its top images.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ColourSelectivity {
    /// `1 − Σ_j a'_j / Σ_j a_j`; `None` when `Σ_j a_j ≤ 0`.
    pub csi: Option<f32>,
    /// `mean_j (1 − clamp(a'_j / a_j, 0, 1))` over the images with `a_j > 0`; `None` when
    /// there is none.
    pub clipped: Option<f32>,
}

/// The CSI of a neuron whose activations on its top images are `original` and on their grey
/// versions `grey` (same order). Non-finite pairs are skipped.
pub fn colour_selectivity(original: &[f32], grey: &[f32]) -> ColourSelectivity {
    let pairs: Vec<(f64, f64)> = original
        .iter()
        .zip(grey)
        .filter(|(a, g)| a.is_finite() && g.is_finite())
        .map(|(&a, &g)| (f64::from(a), f64::from(g)))
        .collect();
    let sum_a: f64 = pairs.iter().map(|p| p.0).sum();
    let sum_g: f64 = pairs.iter().map(|p| p.1).sum();
    let csi = (sum_a > 0.0).then(|| (1.0 - sum_g / sum_a) as f32);
    let ratios: Vec<f64> = pairs
        .iter()
        .filter(|p| p.0 > 0.0)
        .map(|(a, g)| 1.0 - (g / a).clamp(0.0, 1.0))
        .collect();
    let clipped =
        (!ratios.is_empty()).then(|| (ratios.iter().sum::<f64>() / ratios.len() as f64) as f32);
    ColourSelectivity { csi, clipped }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(pixels: &[[f32; 3]]) -> Rgb {
        Rgb {
            width: pixels.len(),
            height: 1,
            data: pixels.iter().flatten().copied().collect(),
        }
    }

    #[test]
    fn opponent_space_by_hand_and_back() {
        // White: O1 = (3 − 1.5)/1.5 = 1, O2 = 0, O3 = (2 − 2)/2 = 0.
        assert_eq!(opponent([1.0, 1.0, 1.0]), [1.0, 0.0, 0.0]);
        // Red: O1 = −0.5/1.5 = −1/3, O2 = 1, O3 = 1/2. Blue: O1 = −1/3, O2 = 0, O3 = −1.
        let red = opponent([1.0, 0.0, 0.0]);
        assert!((red[0] + 1.0 / 3.0).abs() < 1e-6 && red[1] == 1.0 && red[2] == 0.5);
        assert_eq!(opponent([0.0, 0.0, 1.0])[2], -1.0);
        for rgb in [[0.2, 0.7, 0.1], [1.0, 0.0, 0.5], [0.0, 0.0, 0.0]] {
            let back = rgb_from_opponent(opponent(rgb));
            for c in 0..3 {
                assert!((back[c] - rgb[c]).abs() < 1e-6, "{rgb:?} → {back:?}");
            }
        }
    }

    #[test]
    fn a_grey_image_is_its_own_grey_version() {
        let img = image(&[[0.1; 3], [0.5; 3], [0.9; 3], [0.3; 3]]);
        let grey = grey_version(&img);
        for (a, b) in img.data.iter().zip(&grey.data) {
            assert!((a - b).abs() < 1e-5, "{:?} vs {:?}", img.data, grey.data);
        }
        // A flat image (no variance) keeps its luminance too.
        let flat = image(&[[0.2, 0.4, 0.6]; 3]);
        let grey = grey_version(&flat);
        // O1 = (1.2 − 1.5)/1.5 = −0.2 → (−0.2 + 1)/2 = 0.4.
        assert!(grey.data.iter().all(|v| (v - 0.4).abs() < 1e-6), "{grey:?}");
    }

    #[test]
    fn isoluminant_red_and_green_keep_the_shape_in_grey() {
        // Three green pixels and one red: they differ only along O2 (R − G), so the first
        // component is O2 = (0, 1, 0). Mean O2 = (1 − 3)/4 = −0.5; O1 = −1/3 everywhere.
        // Red: O1' = −1/3 + (1 + 0.5) = 7/6 → (7/6 + 1)/2 > 1 → 1 (clamped).
        // Green: O1' = −1/3 + (−1 + 0.5) = −5/6 → (−5/6 + 1)/2 = 1/12.
        let img = image(&[
            [0.0, 1.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 1.0, 0.0],
        ]);
        let grey = grey_version(&img);
        let px = |i: usize| &grey.data[i * 3..i * 3 + 3];
        assert!(px(1).iter().all(|&v| v == 1.0), "{grey:?}");
        assert!(
            px(0).iter().all(|&v| (v - 1.0 / 12.0).abs() < 1e-5),
            "{grey:?}"
        );
        assert_eq!(px(0), px(2));
    }

    #[test]
    fn csi_both_variants_by_hand() {
        // a = (4, 2, 1, 0), a' = (1, 2, 2, 5):
        // CSI = 1 − (1 + 2 + 2 + 5)/(4 + 2 + 1 + 0) = 1 − 10/7 = −3/7.
        // Clipped, over a > 0: (1 − 1/4) + (1 − 1) + (1 − clamp(2, 0, 1)) = 0.75; / 3 = 0.25.
        let s = colour_selectivity(&[4.0, 2.0, 1.0, 0.0], &[1.0, 2.0, 2.0, 5.0]);
        assert!((s.csi.unwrap() + 3.0 / 7.0).abs() < 1e-6);
        assert!((s.clipped.unwrap() - 0.25).abs() < 1e-6);
        // Grey kills the response: both are 1. Silent neuron: undefined.
        let s = colour_selectivity(&[2.0, 3.0], &[0.0, -1.0]);
        assert!((s.csi.unwrap() - 1.2).abs() < 1e-6);
        assert_eq!(s.clipped, Some(1.0));
        assert_eq!(colour_selectivity(&[0.0, -1.0], &[1.0, 1.0]).csi, None);
        assert_eq!(colour_selectivity(&[], &[]), ColourSelectivity::default());
    }
}
