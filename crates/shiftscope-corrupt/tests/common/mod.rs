//! Generated test images: gradients, shapes and some texture.

#![allow(dead_code)]

use shiftscope_sdk::rng::SplitMix64;

/// An RGB test image `variant` of `w`×`h`: a colour gradient, a disc, a rectangle, stripes
/// and fine noise texture, placed differently per variant.
pub(crate) fn test_image(w: u32, h: u32, variant: u64) -> Vec<u8> {
    let (wf, hf) = (w as f32, h as f32);
    let mut rng = SplitMix64::for_item(0xC0FFEE, variant);
    let cx = wf * rng.uniform(0.3, 0.7);
    let cy = hf * rng.uniform(0.3, 0.7);
    let radius = wf.min(hf) * rng.uniform(0.15, 0.3);
    let disc = [
        rng.uniform(0.0, 255.0),
        rng.uniform(0.0, 255.0),
        rng.uniform(0.0, 255.0),
    ];
    let rect = (wf * rng.uniform(0.05, 0.4), hf * rng.uniform(0.05, 0.4));
    let period = wf.min(hf) / rng.uniform(4.0, 8.0);
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let (xf, yf) = (x as f32, y as f32);
            let mut px = [
                40.0 + 160.0 * xf / wf,
                40.0 + 160.0 * yf / hf,
                200.0 - 120.0 * (xf + yf) / (wf + hf),
            ];
            if (xf - cx).powi(2) + (yf - cy).powi(2) < radius * radius {
                px = disc;
            } else if xf > rect.0
                && xf < rect.0 + wf * 0.25
                && yf > rect.1
                && yf < rect.1 + hf * 0.2
            {
                px = [230.0, 230.0, 40.0];
            } else if yf > hf * 0.75 && (((xf + yf) / period) as u32).is_multiple_of(2) {
                px = [20.0, 20.0, 60.0];
            }
            // Texture: a smooth ripple (spatially correlated, like natural texture) and
            // a little per-pixel grain.
            let ripple = 14.0 * (xf * 0.45).sin() * (yf * 0.3 + xf * 0.1).sin();
            for v in &mut px {
                *v += ripple + rng.uniform(-4.0, 4.0);
            }
            out.extend(px.iter().map(|v| v.clamp(0.0, 255.0) as u8));
        }
    }
    out
}

/// Mean absolute difference in grey levels.
pub(crate) fn mad(a: &[u8], b: &[u8]) -> f64 {
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.len() as f64
}
