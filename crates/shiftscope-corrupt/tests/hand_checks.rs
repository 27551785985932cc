//! Simple families checked against values worked out by hand from the published formulas.

#![allow(clippy::unwrap_used)]

use shiftscope_corrupt::{Corruption, corrupt};

fn flat(side: u32, rgb: [u8; 3]) -> Vec<u8> {
    rgb.iter()
        .copied()
        .cycle()
        .take((side * side * 3) as usize)
        .collect()
}

fn close(got: u8, want: f64, what: &str) {
    assert!(
        (f64::from(got) - want).abs() <= 1.0,
        "{what}: got {got}, want {want:.2}"
    );
}

#[test]
fn brightness_adds_c_to_hsv_value_and_clamps() {
    // CIFAR table (32 px): c = 0.05, .., 0.3. With H and S fixed, RGB scales with V.
    let img = flat(32, [100, 50, 25]);
    for (severity, c) in [(1u8, 0.05), (3, 0.15), (5, 0.3)] {
        let out = corrupt(Corruption::Brightness, &img, 32, 32, severity, 0).unwrap();
        let v = 100.0 / 255.0;
        let f = (v + c) / v;
        for (k, &x) in [100.0, 50.0, 25.0].iter().enumerate() {
            close(out[k], x * f, &format!("severity {severity} channel {k}"));
        }
    }
    // V is clamped at 1: a bright grey becomes white, no overflow.
    let bright = flat(224, [240, 240, 240]);
    let out = corrupt(Corruption::Brightness, &bright, 224, 224, 5, 0).unwrap();
    assert!(out.iter().all(|&x| x == 255));
}

#[test]
fn contrast_scales_around_the_per_channel_mean() {
    // Left half (200, 40, 90), right half (60, 240, 10): means (130, 140, 50).
    let side = 32u32;
    let mut img = Vec::new();
    for _y in 0..side {
        for x in 0..side {
            img.extend_from_slice(if x < side / 2 {
                &[200, 40, 90]
            } else {
                &[60, 240, 10]
            });
        }
    }
    let means = [130.0, 140.0, 50.0];
    for (severity, c) in [(1u8, 0.75), (5, 0.15)] {
        let out = corrupt(Corruption::Contrast, &img, side, side, severity, 0).unwrap();
        for (k, (&x, &m)) in img[..3].iter().zip(&means).enumerate() {
            close(out[k], (f64::from(x) - m) * c + m, "left");
        }
        let right = (side as usize - 1) * 3;
        for (k, &m) in means.iter().enumerate() {
            let x = f64::from(img[right + k]);
            close(out[right + k], (x - m) * c + m, "right");
        }
    }
}

#[test]
fn pixelate_averages_boxes_and_repeats_them() {
    // ImageNet table severity 5: factor 0.25, 224 → 56 → 224: exact 4×4 boxes.
    let side = 224usize;
    let img: Vec<u8> = (0..side * side * 3)
        .map(|i| ((i * 7919) % 251) as u8)
        .collect();
    let out = corrupt(Corruption::Pixelate, &img, 224, 224, 5, 0).unwrap();
    for (by, bx) in [(0usize, 0usize), (13, 40), (55, 55)] {
        for ch in 0..3 {
            let mut sum = 0.0;
            for y in 0..4 {
                for x in 0..4 {
                    sum += f64::from(img[((by * 4 + y) * side + bx * 4 + x) * 3 + ch]);
                }
            }
            let mean = sum / 16.0;
            for y in 0..4 {
                for x in 0..4 {
                    let got = out[((by * 4 + y) * side + bx * 4 + x) * 3 + ch];
                    close(got, mean, &format!("box ({by}, {bx}) channel {ch}"));
                }
            }
        }
    }
}

fn noise_moments(c: Corruption, side: u32, severity: u8, grey: u8) -> (f64, f64) {
    let img = flat(side, [grey; 3]);
    let mut diffs = Vec::new();
    for seed in 0..4 {
        let out = corrupt(c, &img, side, side, severity, seed).unwrap();
        diffs.extend(out.iter().map(|&x| f64::from(x) - f64::from(grey)));
    }
    let n = diffs.len() as f64;
    let mean = diffs.iter().sum::<f64>() / n;
    let var = diffs.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn gaussian_noise_has_the_published_standard_deviation() {
    for (side, table) in [(32u32, [0.04, 0.06, 0.08]), (224, [0.08, 0.12, 0.18])] {
        for (s, c) in table.iter().enumerate() {
            let (mean, sd) = noise_moments(Corruption::GaussianNoise, side, s as u8 + 1, 128);
            let want = c * 255.0;
            assert!(
                (sd - want).abs() < 0.04 * want,
                "{side} sev {}: sd {sd} want {want}",
                s + 1
            );
            // np.uint8 truncation shifts the mean down by about half a level.
            assert!(mean.abs() < 1.0, "{side} sev {}: mean {mean}", s + 1);
        }
    }
}

#[test]
fn shot_noise_is_poisson_around_the_pixel() {
    // poisson(x·c)/c has mean x and standard deviation sqrt(x/c) in 0–1 units.
    for (side, severity, c) in [(32u32, 1u8, 500.0f64), (32, 5, 50.0), (224, 3, 12.0)] {
        let (mean, sd) = noise_moments(Corruption::ShotNoise, side, severity, 128);
        let x = 128.0 / 255.0;
        let want = (x / c).sqrt() * 255.0;
        assert!(
            (sd - want).abs() < 0.06 * want,
            "{side} sev {severity}: sd {sd} want {want}"
        );
        assert!(mean.abs() < 1.0, "{side} sev {severity}: mean {mean}");
    }
}

#[test]
fn impulse_noise_flips_the_published_fraction_to_black_or_white() {
    for (side, severity, amount) in [(224u32, 1u8, 0.03), (224, 5, 0.27), (32, 5, 0.07)] {
        let img = flat(side, [128; 3]);
        let out = corrupt(Corruption::ImpulseNoise, &img, side, side, severity, 9).unwrap();
        let n = out.len() as f64;
        let black = out.iter().filter(|&&x| x == 0).count() as f64 / n;
        let white = out.iter().filter(|&&x| x == 255).count() as f64 / n;
        let kept = out.iter().filter(|&&x| x == 128).count() as f64 / n;
        assert!(
            (black + white - amount).abs() < 0.15 * amount + 0.003,
            "{black} {white}"
        );
        assert!(
            (black - white).abs() < 0.2 * amount + 0.005,
            "{black} {white}"
        );
        assert!((kept + black + white - 1.0).abs() < 1e-9);
    }
}

#[test]
fn blurs_keep_a_flat_image_flat_and_jpeg_stays_close() {
    let img = flat(224, [90, 160, 30]);
    for c in [
        Corruption::GaussianBlur,
        Corruption::DefocusBlur,
        Corruption::MotionBlur,
        Corruption::ZoomBlur,
        Corruption::Pixelate,
    ] {
        let out = corrupt(c, &img, 224, 224, 5, 0).unwrap();
        for (o, i) in out.iter().zip(&img) {
            assert!(o.abs_diff(*i) <= 1, "{c}: flat image changed: {o} vs {i}");
        }
    }
    let out = corrupt(Corruption::JpegCompression, &img, 224, 224, 1, 0).unwrap();
    for (o, i) in out.iter().zip(&img) {
        assert!(o.abs_diff(*i) <= 4, "jpeg: {o} vs {i}");
    }
}
