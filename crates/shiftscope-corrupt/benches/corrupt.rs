//! Throughput of every corruption family at severity 3 on 224×224 images, one thread, with
//! a reference measured in the same run: a plain copy plus a u8 → f32 → u8 round trip (the
//! least any family does), so the ratio shows each family's own cost.
//!
//! ```text
//! cargo bench -p shiftscope-corrupt --bench corrupt
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use shiftscope_corrupt::{Corruption, corrupt};
use shiftscope_sdk::rng::SplitMix64;

const SIDE: u32 = 224;
const SEVERITY: u8 = 3;
/// Time spent measuring each row.
const BUDGET: Duration = Duration::from_millis(1500);

/// A 224×224 image: a gradient, a disc and grain, so that data-dependent paths (spatter
/// edges, JPEG entropy coding) see realistic content.
fn image(variant: u64) -> Vec<u8> {
    let mut rng = SplitMix64::for_item(42, variant);
    let side = SIDE as usize;
    let mut out = Vec::with_capacity(side * side * 3);
    for y in 0..side {
        for x in 0..side {
            let (xf, yf) = (x as f32, y as f32);
            let inside = (xf - 112.0).powi(2) + (yf - 100.0).powi(2) < 60.0f32.powi(2);
            let base = if inside {
                [230.0, 200.0, 40.0]
            } else {
                [40.0 + 0.7 * xf, 40.0 + 0.7 * yf, 180.0 - 0.3 * (xf + yf)]
            };
            for v in base {
                out.push((v + rng.uniform(-10.0, 10.0)).clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

/// Images per second of `f` over the images, run until the budget is spent.
fn rate(images: &[Vec<u8>], mut f: impl FnMut(&[u8], u64) -> Vec<u8>) -> f64 {
    black_box(f(&images[0], 0));
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < BUDGET || n < 3 {
        let img = &images[n as usize % images.len()];
        black_box(f(black_box(img), n));
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// The reference: copy the pixels into f32 planes scaled to [0, 1] and back to u8.
fn round_trip(pixels: &[u8]) -> Vec<u8> {
    let n = pixels.len() / 3;
    let (mut r, mut g, mut b) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    for (((px, r), g), b) in pixels.chunks_exact(3).zip(&mut r).zip(&mut g).zip(&mut b) {
        *r = f32::from(px[0]) / 255.0;
        *g = f32::from(px[1]) / 255.0;
        *b = f32::from(px[2]) / 255.0;
    }
    let to_u8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let mut out = vec![0u8; pixels.len()];
    for (((px, r), g), b) in out.chunks_exact_mut(3).zip(&r).zip(&g).zip(&b) {
        px[0] = to_u8(*r);
        px[1] = to_u8(*g);
        px[2] = to_u8(*b);
    }
    out
}

fn main() {
    let images: Vec<Vec<u8>> = (0..4).map(image).collect();
    let reference = rate(&images, |p, _| round_trip(p));
    println!("corruptions at severity {SEVERITY}, {SIDE}x{SIDE} RGB, one thread");
    println!(
        "{:<20} {:>8} {:>12} {:>10} {:>12}",
        "family", "group", "images/s", "ms/image", "x reference"
    );
    println!(
        "{:<20} {:>8} {:>12.0} {:>10.3} {:>12}",
        "(copy + f32 round trip)",
        "",
        reference,
        1000.0 / reference,
        "1.0"
    );
    for c in Corruption::ALL {
        let r = rate(&images, |p, seed| {
            corrupt(c, p, SIDE, SIDE, SEVERITY, seed).unwrap_or_default()
        });
        println!(
            "{:<20} {:>8} {:>12.1} {:>10.2} {:>12.1}",
            c.name(),
            c.group(),
            r,
            1000.0 / r,
            reference / r
        );
    }
}
