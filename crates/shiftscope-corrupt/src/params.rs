//! The published parameter tables of Hendrycks & Dietterich, "Benchmarking Neural Network
//! Robustness to Common Corruptions and Perturbations" (ICLR 2019), one row per severity 1–5.
//!
//! [`CIFAR`] is the table of `ImageNet-C/create_c/make_cifar_c.py` and [`IMAGENET`] the table
//! of `ImageNet-C/create_c/make_imagenet_c.py`, both in github.com/hendrycks/robustness.
//! Values are copied as published; only their representation changed (numpy `arange`s are
//! written as start 1, step and the element count numpy produces; elastic's pixel values as
//! fractions of the image side; see each field).

/// All parameters of one table.
#[derive(Debug)]
pub(crate) struct Table {
    /// Which table, for messages.
    pub(crate) name: &'static str,
    /// Standard deviation of the added normal noise (0–1 range).
    pub(crate) gaussian_noise: [f64; 5],
    /// Photon count scale `c`: `poisson(x·c)/c`.
    pub(crate) shot_noise: [f64; 5],
    /// Fraction of values replaced by salt or pepper.
    pub(crate) impulse_noise: [f64; 5],
    /// Standard deviation of the multiplicative normal noise.
    pub(crate) speckle_noise: [f64; 5],
    /// Gaussian sigma in pixels.
    pub(crate) gaussian_blur: [f64; 5],
    /// (sigma, max_delta, iterations).
    pub(crate) glass_blur: [(f64, i64, u32); 5],
    /// (disk radius, alias blur sigma).
    pub(crate) defocus_blur: [(f64, f64); 5],
    /// (radius, sigma) of ImageMagick's motion blur.
    pub(crate) motion_blur: [(i64, f64); 5],
    /// Zoom factors `1 + k·step` for `k in 0..count` (numpy `np.arange(1, stop, step)`).
    pub(crate) zoom_blur: [(f64, usize); 5],
    /// (loc, scale, zoom, threshold, blur radius, blur sigma, blend).
    pub(crate) snow: [[f64; 7]; 5],
    /// (fog strength, plasma wibble decay).
    pub(crate) fog: [(f64, f64); 5],
    /// Added to V in HSV.
    pub(crate) brightness: [f64; 5],
    /// Factor around the per-channel mean.
    pub(crate) contrast: [f64; 5],
    /// (S factor, S offset) in HSV.
    pub(crate) saturate: [(f64, f64); 5],
    /// PIL JPEG quality.
    pub(crate) jpeg_quality: [u8; 5],
    /// Side factor of the box down-sampling.
    pub(crate) pixelate: [f64; 5],
    /// (alpha, sigma, affine) as fractions of `elastic_side · short side`.
    pub(crate) elastic: [(f64, f64, f64); 5],
    /// CIFAR: `IMSIZE` = 32 = the side, so 1. ImageNet: the script multiplies by 244 for
    /// 224-pixel images ("244 should have been 224, but ultimately nothing is incorrect"), so
    /// 244/224 keeps its values exact at 224 and scales them with the side elsewhere.
    pub(crate) elastic_side: f64,
    /// (loc, scale, sigma, threshold, intensity or mud sigma, mode 0 = water / 1 = mud).
    pub(crate) spatter: [[f64; 6]; 5],
}

/// `make_cifar_c.py` (github.com/hendrycks/robustness, ImageNet-C/create_c/).
pub(crate) const CIFAR: Table = Table {
    name: "CIFAR-10-C",
    gaussian_noise: [0.04, 0.06, 0.08, 0.09, 0.10],
    shot_noise: [500.0, 250.0, 100.0, 75.0, 50.0],
    impulse_noise: [0.01, 0.02, 0.03, 0.05, 0.07],
    speckle_noise: [0.06, 0.1, 0.12, 0.16, 0.2],
    gaussian_blur: [0.4, 0.6, 0.7, 0.8, 1.0],
    glass_blur: [
        (0.05, 1, 1),
        (0.25, 1, 1),
        (0.4, 1, 1),
        (0.25, 1, 2),
        (0.4, 1, 2),
    ],
    defocus_blur: [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)],
    motion_blur: [(6, 1.0), (6, 1.5), (6, 2.0), (8, 2.0), (9, 2.5)],
    // np.arange(1, 1.06, 0.01) .. np.arange(1, 1.26, 0.01): 7, 12, 16, 21, 26 factors
    // (floating-point rounding makes numpy include the stop of the first two).
    zoom_blur: [(0.01, 7), (0.01, 12), (0.01, 16), (0.01, 21), (0.01, 26)],
    snow: [
        [0.1, 0.2, 1.0, 0.6, 8.0, 3.0, 0.95],
        [0.1, 0.2, 1.0, 0.5, 10.0, 4.0, 0.9],
        [0.15, 0.3, 1.75, 0.55, 10.0, 4.0, 0.9],
        [0.25, 0.3, 2.25, 0.6, 12.0, 6.0, 0.85],
        [0.3, 0.3, 1.25, 0.65, 14.0, 12.0, 0.8],
    ],
    fog: [(0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)],
    brightness: [0.05, 0.1, 0.15, 0.2, 0.3],
    contrast: [0.75, 0.5, 0.4, 0.3, 0.15],
    saturate: [(0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2)],
    jpeg_quality: [80, 65, 58, 50, 40],
    pixelate: [0.95, 0.9, 0.85, 0.75, 0.65],
    // (IMSIZE*0, IMSIZE*0, IMSIZE*0.08), (IMSIZE*0.05, IMSIZE*0.2, IMSIZE*0.07), ...
    elastic: [
        (0.0, 0.0, 0.08),
        (0.05, 0.2, 0.07),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03),
    ],
    elastic_side: 1.0,
    spatter: [
        [0.62, 0.1, 0.7, 0.7, 0.5, 0.0],
        [0.65, 0.1, 0.8, 0.7, 0.5, 0.0],
        [0.65, 0.3, 1.0, 0.69, 0.5, 0.0],
        [0.65, 0.1, 0.7, 0.69, 0.6, 1.0],
        [0.65, 0.1, 0.5, 0.68, 0.6, 1.0],
    ],
};

/// `make_imagenet_c.py` (github.com/hendrycks/robustness, ImageNet-C/create_c/).
pub(crate) const IMAGENET: Table = Table {
    name: "ImageNet-C",
    gaussian_noise: [0.08, 0.12, 0.18, 0.26, 0.38],
    shot_noise: [60.0, 25.0, 12.0, 5.0, 3.0],
    impulse_noise: [0.03, 0.06, 0.09, 0.17, 0.27],
    speckle_noise: [0.15, 0.2, 0.35, 0.45, 0.6],
    gaussian_blur: [1.0, 2.0, 3.0, 4.0, 6.0],
    glass_blur: [
        (0.7, 1, 2),
        (0.9, 2, 1),
        (1.0, 2, 3),
        (1.1, 3, 2),
        (1.5, 4, 2),
    ],
    defocus_blur: [(3.0, 0.1), (4.0, 0.5), (6.0, 0.5), (8.0, 0.5), (10.0, 0.5)],
    motion_blur: [(10, 3.0), (15, 5.0), (15, 8.0), (15, 12.0), (20, 15.0)],
    // np.arange(1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02),
    // (1, 1.31, 0.03): 12, 16, 11, 13, 11 factors.
    zoom_blur: [(0.01, 12), (0.01, 16), (0.02, 11), (0.02, 13), (0.03, 11)],
    snow: [
        [0.1, 0.3, 3.0, 0.5, 10.0, 4.0, 0.8],
        [0.2, 0.3, 2.0, 0.5, 12.0, 4.0, 0.7],
        [0.55, 0.3, 4.0, 0.9, 12.0, 8.0, 0.7],
        [0.55, 0.3, 4.5, 0.85, 12.0, 8.0, 0.65],
        [0.55, 0.3, 2.5, 0.85, 12.0, 12.0, 0.55],
    ],
    fog: [(1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)],
    brightness: [0.1, 0.2, 0.3, 0.4, 0.5],
    contrast: [0.4, 0.3, 0.2, 0.1, 0.05],
    saturate: [(0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)],
    jpeg_quality: [25, 18, 15, 10, 7],
    pixelate: [0.6, 0.5, 0.4, 0.3, 0.25],
    // (244*2, 244*0.7, 244*0.1), (244*2, 244*0.08, 244*0.2), (244*0.05, 244*0.01, 244*0.02),
    // (244*0.07, 244*0.01, 244*0.02), (244*0.12, 244*0.01, 244*0.02)
    elastic: [
        (2.0, 0.7, 0.1),
        (2.0, 0.08, 0.2),
        (0.05, 0.01, 0.02),
        (0.07, 0.01, 0.02),
        (0.12, 0.01, 0.02),
    ],
    elastic_side: 244.0 / 224.0,
    spatter: [
        [0.65, 0.3, 4.0, 0.69, 0.6, 0.0],
        [0.65, 0.3, 3.0, 0.68, 0.6, 0.0],
        [0.65, 0.3, 2.0, 0.68, 0.5, 0.0],
        [0.65, 0.3, 1.0, 0.65, 1.5, 1.0],
        [0.67, 0.4, 1.0, 0.65, 1.5, 1.0],
    ],
};

/// Images whose short side is below this use the CIFAR-10-C table (`make_cifar_c.py`),
/// others the ImageNet-C table (`make_imagenet_c.py`).
pub const IMAGENET_MIN_SIDE: u32 = 128;

/// The table for an image of this size.
pub(crate) fn table_for(width: u32, height: u32) -> &'static Table {
    if width.min(height) < IMAGENET_MIN_SIDE {
        &CIFAR
    } else {
        &IMAGENET
    }
}
