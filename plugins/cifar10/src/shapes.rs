//! The procedural stand-in for CIFAR-10: ten classes of 32×32 colour images, five shapes
//! (disc, square, triangle, ring, cross) and five textures (h-stripes: horizontal stripes,
//! v-stripes: vertical stripes, checker: a checkerboard, dots, gradient: a diagonal
//! gradient). It is not CIFAR-10 and is named as
//! "procedural shapes and textures" wherever it is used.
//!
//! Per image, drawn from a generator seeded by (seed, index) alone: the shape's centre,
//! size and rotation (±25° for the shapes with an orientation) or the texture's period, duty
//! cycle, phase and tilt; a foreground and a background colour of random hue and
//! saturation, the foreground the brighter (so the shape reads as an object on a
//! background), with values chosen so that the image's mean brightness is drawn the same
//! way for every class (colour and brightness say nothing about the class); then mild
//! per-pixel noise. Edges are anti-aliased from a signed distance. One image costs a few
//! microseconds.

use shiftscope_sdk::rng::SplitMix64;

/// Image side.
pub(crate) const SIDE: usize = 32;
/// Bytes of one RGB image.
pub(crate) const IMAGE_BYTES: usize = SIDE * SIDE * 3;
/// The class names, by label (short enough for a contact sheet's captions).
pub(crate) const CLASSES: [&str; 10] = [
    "disc",
    "square",
    "triangle",
    "ring",
    "cross",
    "h-stripes",
    "v-stripes",
    "checker",
    "dots",
    "gradient",
];

/// Balanced labels in a shuffled order: each block of ten indices holds every class once.
pub(crate) fn label(seed: u64, index: usize) -> u8 {
    shiftscope_sdk::rng::balanced_label(seed ^ 0x5ba9_e5c1_fa10, index, 10) as u8
}

/// RGB in [0, 255] from hue in [0, 1), saturation and value in [0, 1].
fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h6 = (h.fract() * 6.0).clamp(0.0, 5.999);
    let sector = h6 as u32;
    let f = h6 - sector as f32;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let rgb = match sector {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    };
    rgb.map(|c| c * 255.0)
}

/// `t` modulo `period` in `[0, period)`. `rem_euclid`, `floor` and `round` on floats are
/// library calls on baseline x86-64; this and the rounding below are a few instructions.
fn wrap(t: f32, period: f32) -> f32 {
    let q = t / period;
    let truncated = q as i32 as f32;
    let floor = if truncated > q {
        truncated - 1.0
    } else {
        truncated
    };
    t - floor * period
}

/// Length of `(x, y)` (no overflow care needed at image scale, unlike `hypot`).
fn length(x: f32, y: f32) -> f32 {
    (x * x + y * y).sqrt()
}

/// Signed distance to an axis-aligned box of half-sizes `hx`, `hy` centred at the origin.
fn boxed(x: f32, y: f32, hx: f32, hy: f32) -> f32 {
    let (qx, qy) = (x.abs() - hx, y.abs() - hy);
    let outside = length(qx.max(0.0), qy.max(0.0));
    outside + qx.max(qy).min(0.0)
}

/// Signed distance to an equilateral triangle of circumradius `r`, apex up (−y).
fn triangle(x: f32, y: f32, r: f32) -> f32 {
    // The half-planes of the three edges; the maximum is the (slightly conservative
    // outside the corners) signed distance.
    let k = 0.5 * r; // inradius
    let (s, c) = (std::f32::consts::FRAC_PI_3.sin(), 0.5_f32);
    let bottom = y - k;
    let right = s * x - c * y - k;
    let left = -s * x - c * y - k;
    bottom.max(right).max(left)
}

/// Coverage in [0, 1] of a band pattern along `t`: bands `duty·period` wide every `period`.
fn band(t: f32, period: f32, duty: f32) -> f32 {
    let u = wrap(t, period);
    let width = duty * period;
    let d = if u < width {
        -(u.min(width - u))
    } else {
        (u - width).min(period - u)
    };
    (0.5 - d).clamp(0.0, 1.0)
}

/// Per-image parameters of the class's pattern: a coverage function over pixel centres.
struct Pattern {
    class: u8,
    cx: f32,
    cy: f32,
    cos: f32,
    sin: f32,
    size: f32,
    period: f32,
    duty: f32,
    phase_x: f32,
    phase_y: f32,
}

impl Pattern {
    fn new(class: u8, rng: &mut SplitMix64) -> Pattern {
        let shape = class < 5;
        let angle = match class {
            0 | 3 => 0.0,
            1 | 2 | 4 => rng.uniform(-0.44, 0.44),
            9 => {
                // One of the two diagonals, either way round, tilted a little.
                let quarter = rng.below(4) as f32;
                std::f32::consts::FRAC_PI_4
                    + quarter * std::f32::consts::FRAC_PI_2
                    + rng.uniform(-0.25, 0.25)
            }
            _ => rng.uniform(-0.2, 0.2),
        };
        let jitter = if shape { 4.5 } else { 0.0 };
        Pattern {
            class,
            cx: SIDE as f32 / 2.0 + rng.uniform(-jitter, jitter),
            cy: SIDE as f32 / 2.0 + rng.uniform(-jitter, jitter),
            cos: angle.cos(),
            sin: angle.sin(),
            size: rng.uniform(7.0, 11.5),
            period: match class {
                7 => rng.uniform(9.0, 14.0),
                8 => rng.uniform(6.5, 9.5),
                _ => rng.uniform(5.0, 9.0),
            },
            duty: match class {
                8 => rng.uniform(0.28, 0.4),
                _ => rng.uniform(0.35, 0.6),
            },
            phase_x: rng.uniform(0.0, 64.0),
            phase_y: rng.uniform(0.0, 64.0),
        }
    }

    /// Foreground coverage at pixel centre `(px, py)`.
    fn coverage(&self, px: f32, py: f32) -> f32 {
        let (dx, dy) = (px - self.cx, py - self.cy);
        // Rotate into the pattern's frame.
        let x = self.cos * dx + self.sin * dy;
        let y = -self.sin * dx + self.cos * dy;
        let r = self.size;
        let edge = |d: f32| (0.5 - d).clamp(0.0, 1.0);
        match self.class {
            0 => edge(length(x, y) - r),
            1 => edge(boxed(x, y, 0.8 * r, 0.8 * r)),
            2 => edge(triangle(x, y + 0.1 * r, 1.25 * r)),
            3 => edge((length(x, y) - 0.75 * r).abs() - 0.25 * r),
            4 => edge(boxed(x, y, r, 0.3 * r).min(boxed(x, y, 0.3 * r, r))),
            5 => band(y + self.phase_y, self.period, self.duty),
            6 => band(x + self.phase_x, self.period, self.duty),
            7 => {
                let a = band(x + self.phase_x, self.period, 0.5);
                let b = band(y + self.phase_y, self.period, 0.5);
                a + b - 2.0 * a * b
            }
            8 => {
                let s = self.period;
                let lx = wrap(x + self.phase_x, s) - s / 2.0;
                let ly = wrap(y + self.phase_y, s) - s / 2.0;
                edge(length(lx, ly) - self.duty * s)
            }
            _ => (x / (SIDE as f32 * 0.8) + 0.5).clamp(0.0, 1.0),
        }
    }
}

/// Image `index` of class `class` for `seed`: RGB, HWC, 32×32.
pub(crate) fn render(class: u8, seed: u64, index: u64) -> Vec<u8> {
    let mut rng = SplitMix64::for_item(seed ^ 0x5a4e_5000_c1fa_0010, index);
    let pattern = Pattern::new(class, &mut rng);
    let mut coverage = [0f32; SIDE * SIDE];
    for (i, c) in coverage.iter_mut().enumerate() {
        *c = pattern.coverage((i % SIDE) as f32 + 0.5, (i / SIDE) as f32 + 0.5);
    }
    // Colours of any hue, the foreground the brighter by `contrast`, their values set so
    // that the image's mean brightness is drawn the same way for every class: a small
    // shape and a half-covering texture are equally bright on average, so brightness and
    // colour say nothing about the class.
    let fraction = coverage.iter().sum::<f32>() / coverage.len() as f32;
    let mean = rng.uniform(0.3, 0.5);
    let contrast = rng.uniform(0.4, 0.6);
    let v_bg = (mean - fraction * contrast).clamp(0.02, 1.0);
    let v_fg = (v_bg + contrast).clamp(0.0, 1.0);
    let fg = hsv(rng.next_f32(), rng.uniform(0.25, 1.0), v_fg);
    let bg = hsv(rng.next_f32(), rng.uniform(0.2, 1.0), v_bg);
    let noise_amp = rng.uniform(3.0, 12.0);
    let mut pixels = Vec::with_capacity(IMAGE_BYTES);
    let mut bits = 0u64;
    let mut left = 0u32;
    for cov in coverage {
        for k in 0..3 {
            if left == 0 {
                bits = rng.next_u64();
                left = 4;
            }
            // Triangular noise in (−amp, amp) from two random bytes.
            let a = (bits & 0xff) as f32;
            let b = ((bits >> 8) & 0xff) as f32;
            bits >>= 16;
            left -= 1;
            let noise = (a - b) / 255.0 * noise_amp;
            let v = bg[k] + cov * (fg[k] - bg[k]) + noise;
            // Round half up; negatives clamp to 0 first.
            pixels.push((v + 0.5).clamp(0.0, 255.0) as u8);
        }
    }
    pixels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(pixels: &[u8]) -> Vec<f32> {
        pixels
            .chunks_exact(3)
            .map(|p| (f32::from(p[0]) + f32::from(p[1]) + f32::from(p[2])) / 3.0)
            .collect()
    }

    /// Nearest-class-mean accuracy of `feature` trained on `n_train` images of seed 1 and
    /// scored on `n_test` images of seed 2.
    fn nearest_class_mean(
        feature: impl Fn(&[u8]) -> Vec<f32>,
        n_train: usize,
        n_test: usize,
    ) -> f64 {
        let sample = |seed: u64, i: usize| {
            let class = label(seed, i);
            (feature(&render(class, seed, i as u64)), class)
        };
        let dim = feature(&render(0, 0, 0)).len();
        let mut means = vec![vec![0f64; dim]; 10];
        let mut counts = [0usize; 10];
        for i in 0..n_train {
            let (f, c) = sample(1, i);
            counts[usize::from(c)] += 1;
            for (m, v) in means[usize::from(c)].iter_mut().zip(f) {
                *m += f64::from(v);
            }
        }
        for (m, n) in means.iter_mut().zip(counts) {
            m.iter_mut().for_each(|v| *v /= n as f64);
        }
        let mut right = 0;
        for i in 0..n_test {
            let (f, c) = sample(2, i);
            let dist = |m: &Vec<f64>| {
                m.iter()
                    .zip(&f)
                    .map(|(a, b)| (a - f64::from(*b)).powi(2))
                    .sum::<f64>()
            };
            let best = (0..10)
                .min_by(|&a, &b| dist(&means[a]).total_cmp(&dist(&means[b])))
                .unwrap_or(0);
            right += usize::from(best == usize::from(c));
        }
        right as f64 / n_test as f64
    }

    #[test]
    fn learnable_from_pixels_but_not_from_colour() {
        let pixels = nearest_class_mean(grey, 2000, 1000);
        let colour = nearest_class_mean(
            |p| {
                let mut sum = [0f32; 3];
                for px in p.chunks_exact(3) {
                    for k in 0..3 {
                        sum[k] += f32::from(px[k]);
                    }
                }
                sum.iter().map(|s| s / 1024.0).collect()
            },
            2000,
            1000,
        );
        println!(
            "nearest class mean: {:.1}% on grey pixels, {:.1}% on mean colour (chance 10%)",
            pixels * 100.0,
            colour * 100.0
        );
        assert!((0.30..0.99).contains(&pixels), "grey pixels: {pixels}");
        assert!(colour < 0.15, "mean colour alone classifies: {colour}");
    }

    #[test]
    fn deterministic_varied_and_fast() {
        assert_eq!(render(3, 7, 11), render(3, 7, 11));
        assert_ne!(render(3, 7, 11), render(3, 7, 12));
        assert_ne!(render(3, 7, 11), render(3, 8, 11));
        assert_eq!(render(0, 0, 0).len(), IMAGE_BYTES);
        // The best of three rounds, so that other work on the machine counts less.
        let n = 2000;
        let per_second = (0..3)
            .map(|round| {
                let start = std::time::Instant::now();
                for i in round * n..(round + 1) * n {
                    std::hint::black_box(render(label(0, i), 0, i as u64));
                }
                n as f64 / start.elapsed().as_secs_f64()
            })
            .fold(0.0, f64::max);
        println!("{per_second:.0} procedural images per second on one thread");
        // Unoptimised builds are far slower than release builds; both floors leave room for
        // a machine busy with other work.
        let floor = if cfg!(debug_assertions) {
            300.0
        } else {
            10_000.0
        };
        assert!(per_second > floor, "{per_second}");
    }

    #[test]
    fn labels_are_balanced_and_shuffled() {
        let labels: Vec<u8> = (0..1000).map(|i| label(4, i)).collect();
        for c in 0..10 {
            assert_eq!(labels.iter().filter(|&&l| l == c).count(), 100);
        }
        assert_ne!(&labels[..10], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
}
