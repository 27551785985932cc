//! Every family at every severity and both tables: size kept, deterministic per seed,
//! seed-dependent for the random families, farther from the clean image as severity grows.

#![allow(clippy::unwrap_used)]

mod common;

use common::{mad, test_image};
use shiftscope_corrupt::{CorruptError, Corruption, corrupt, table_name};

const SIZES: [u32; 2] = [32, 224];

#[test]
fn every_family_keeps_size_and_is_deterministic_per_seed() {
    for side in SIZES {
        let img = test_image(side, side, 1);
        for c in Corruption::ALL {
            for severity in 1..=5 {
                let a = corrupt(c, &img, side, side, severity, 11).unwrap();
                let b = corrupt(c, &img, side, side, severity, 11).unwrap();
                assert_eq!(a.len(), img.len(), "{c} {severity} at {side}");
                assert!(
                    a == b,
                    "{c} {severity} at {side}: same seed, different bytes"
                );
                let other = corrupt(c, &img, side, side, severity, 12).unwrap();
                if c.is_random() {
                    assert!(a != other, "{c} {severity} at {side}: seed has no effect");
                } else {
                    assert!(
                        a == other,
                        "{c} {severity} at {side}: deterministic family depends on seed"
                    );
                }
                assert!(a != img, "{c} {severity} at {side}: image unchanged");
            }
        }
    }
}

/// Mean distance from the clean image per severity, averaged over images and seeds.
fn distances(c: Corruption, side: u32) -> [f64; 5] {
    let mut d = [0.0; 5];
    let images: Vec<Vec<u8>> = (0..4).map(|v| test_image(side, side, v)).collect();
    for (s, slot) in d.iter_mut().enumerate() {
        let mut total = 0.0;
        let mut n = 0.0;
        for img in &images {
            for seed in 0..3 {
                let out = corrupt(c, img, side, side, s as u8 + 1, seed).unwrap();
                total += mad(img, &out);
                n += 1.0;
            }
        }
        *slot = total / n;
    }
    d
}

/// Where the published table itself is not monotone in distance from the clean image:
/// `(family, side, s)` exempts the pair (s, s+1) from the strict check. Each is documented
/// on the family. Severity 5 must still be farther than severity 1 unless listed in
/// [`NOT_ENDPOINTS`].
const NOT_MONOTONE: &[(Corruption, u32, u8)] = &[
    // S·0.3, S·0.1, then S·1.5/2, …: desaturating hard (sev 2) moves further than sev 3.
    (Corruption::Saturate, 32, 2),
    (Corruption::Saturate, 224, 2),
    // CIFAR (σ 0.25, 2 passes) → (σ 0.4, 2 passes): more blur undoes some displacement.
    (Corruption::GlassBlur, 32, 4),
    // ImageNet (σ 0.7, δ 1, 2 passes) ≈ (σ 0.9, δ 2, 1 pass); (σ 1, δ 2, 3 passes) vs
    // (σ 1.1, δ 3, 2 passes).
    (Corruption::GlassBlur, 224, 1),
    (Corruption::GlassBlur, 224, 3),
    // CIFAR (6, 2) and (8, 2): the extra taps weigh e^-18, so the images are identical.
    (Corruption::MotionBlur, 32, 3),
    // CIFAR: the random affine shrinks from 0.08 to 0.03 of the side while the local
    // displacement stays under a pixel, so the distance falls with severity throughout.
    (Corruption::ElasticTransform, 32, 1),
    (Corruption::ElasticTransform, 32, 2),
    (Corruption::ElasticTransform, 32, 3),
    (Corruption::ElasticTransform, 32, 4),
    // ImageNet: large smooth affine moves (sev 1–2) vs small local wobbles (sev 3–5).
    (Corruption::ElasticTransform, 224, 2),
    // CIFAR: sev 3 is water with a wide liquid layer (scale 0.3), sev 4 sparse mud.
    (Corruption::Spatter, 32, 3),
    // ImageNet: sev 3 has fewer but larger flakes (threshold 0.9, zoom 4) than sev 2.
    (Corruption::Snow, 224, 2),
];
const NOT_ENDPOINTS: &[(Corruption, u32)] = &[
    (Corruption::ElasticTransform, 32),
    (Corruption::ElasticTransform, 224),
];

#[test]
fn distance_grows_with_severity() {
    let mut failures = Vec::new();
    for side in SIZES {
        for c in Corruption::ALL {
            let d = distances(c, side);
            println!("{side:>3} {:<18} {d:.2?}", c.name());
            for s in 0..4u8 {
                let exempt = NOT_MONOTONE.contains(&(c, side, s + 1));
                if !exempt && d[s as usize + 1] <= d[s as usize] {
                    failures.push(format!(
                        "{c} at {side} ({}): severity {} ({:.3}) not farther than {} ({:.3})",
                        table_name(side, side),
                        s + 2,
                        d[s as usize + 1],
                        s + 1,
                        d[s as usize]
                    ));
                }
            }
            if !NOT_ENDPOINTS.contains(&(c, side)) && d[4] <= d[0] {
                failures.push(format!(
                    "{c} at {side}: severity 5 not farther than 1: {d:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn odd_sizes_and_bad_inputs_never_panic() {
    for (w, h) in [(8, 8), (9, 13), (40, 17), (130, 128), (127, 300)] {
        let img = test_image(w, h, 3);
        for c in Corruption::ALL {
            for severity in [1, 5] {
                let out = corrupt(c, &img, w, h, severity, 5).unwrap();
                assert_eq!(out.len(), img.len(), "{c} at {w}x{h}");
            }
        }
    }
    let img = test_image(32, 32, 0);
    for c in Corruption::ALL {
        assert_eq!(
            corrupt(c, &img, 32, 32, 0, 0),
            Err(CorruptError::Severity(0))
        );
        assert_eq!(
            corrupt(c, &img, 32, 32, 6, 0),
            Err(CorruptError::Severity(6))
        );
        assert!(matches!(
            corrupt(c, &img[1..], 32, 32, 1, 0),
            Err(CorruptError::BufferLength {
                expected: 3072,
                actual: 3071,
                ..
            })
        ));
        assert!(matches!(
            corrupt(c, &[], 0, 0, 1, 0),
            Err(CorruptError::Size { .. })
        ));
        assert!(matches!(
            corrupt(c, &[0; 21], 7, 1, 1, 0),
            Err(CorruptError::Size { .. })
        ));
        assert!(matches!(
            corrupt(c, &[], 8193, 8, 1, 0),
            Err(CorruptError::Size { width: 8193, .. })
        ));
    }
    // Flat black and flat white images (empty spatter layers, zero maxima) are fine too.
    for v in [0u8, 255] {
        let flat = vec![v; 32 * 32 * 3];
        for c in Corruption::ALL {
            for severity in 1..=5 {
                assert_eq!(
                    corrupt(c, &flat, 32, 32, severity, 1).unwrap().len(),
                    flat.len()
                );
            }
        }
    }
}

#[test]
fn names_and_groups() {
    assert_eq!(Corruption::ALL.len(), 18);
    for c in Corruption::ALL {
        assert_eq!(Corruption::from_name(c.name()), Some(c));
        assert!(["noise", "blur", "weather", "digital"].contains(&c.group()));
    }
    assert_eq!(Corruption::from_name("frost"), None);
    assert_eq!(Corruption::GaussianNoise.name(), "gaussian_noise");
    assert_eq!(Corruption::JpegCompression.name(), "jpeg_compression");
    assert_eq!(Corruption::ElasticTransform.group(), "digital");
    assert_eq!(Corruption::Brightness.group(), "weather");
    assert_eq!(table_name(32, 32), "CIFAR-10-C");
    assert_eq!(table_name(224, 224), "ImageNet-C");
    assert_eq!(table_name(500, 100), "CIFAR-10-C");
}

#[test]
fn large_images_stay_tractable() {
    // ImageNet table; wide elastic fields drawn on the coarse grid; fog's map is 2048².
    let (w, h) = (1600u32, 1200u32);
    let img = test_image(w, h, 2);
    for c in [
        Corruption::ElasticTransform,
        Corruption::Fog,
        Corruption::Spatter,
    ] {
        for severity in [1, 2] {
            let started = std::time::Instant::now();
            let out = corrupt(c, &img, w, h, severity, 3).unwrap();
            assert_eq!(out.len(), img.len());
            assert!(out != img, "{c} {severity}");
            let took = started.elapsed();
            assert!(took.as_secs() < 20, "{c} {severity}: {took:?}");
        }
    }
}
