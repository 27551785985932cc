//! The corruption families. Each takes the clean image, its table row and a seed and
//! returns new interleaved RGB u8 pixels of the same size. Random draws come from
//! independent [`Rng`] streams of the seed, one per purpose.

use crate::CorruptError;
use crate::ops::{self, Border, Planes};
use crate::params::Table;
use crate::rng::Rng;
use crate::spatter;

/// One call's inputs.
pub(crate) struct Input<'a> {
    pub(crate) pixels: &'a [u8],
    pub(crate) w: usize,
    pub(crate) h: usize,
    /// Severity index 0..5.
    pub(crate) s: usize,
    pub(crate) seed: u64,
    pub(crate) table: &'static Table,
}

impl Input<'_> {
    fn planes(&self) -> Planes {
        Planes::from_u8(self.pixels, self.w, self.h)
    }
}

pub(crate) fn gaussian_noise(i: &Input<'_>) -> Vec<u8> {
    let sd = i.table.gaussian_noise[i.s];
    let mut rng = Rng::new(i.seed, 1);
    let mut p = i.planes();
    for plane in &mut p.c {
        for v in plane.iter_mut() {
            *v += (rng.normal() * sd) as f32;
        }
    }
    p.to_u8_trunc()
}

pub(crate) fn shot_noise(i: &Input<'_>) -> Vec<u8> {
    let c = i.table.shot_noise[i.s];
    let mut rng = Rng::new(i.seed, 2);
    // λ = x·c takes one of 256 values: exp(−λ) once for each.
    let lambdas: Vec<(f64, f64)> = (0..=255u8)
        .map(|v| {
            let lambda = f64::from(f32::from(v) / 255.0) * c;
            (lambda, (-lambda).exp())
        })
        .collect();
    let mut out = vec![0u8; i.pixels.len()];
    for (o, &v) in out.iter_mut().zip(i.pixels) {
        let (lambda, e) = lambdas[usize::from(v)];
        let x = (rng.poisson_with(lambda, e) / c) as f32;
        *o = (x.clamp(0.0, 1.0) * 255.0 + 1e-3).floor().min(255.0) as u8;
    }
    out
}

pub(crate) fn impulse_noise(i: &Input<'_>) -> Vec<u8> {
    // skimage `random_noise(mode='s&p', amount=c)`: each value independently flipped with
    // probability c, to 1 or 0 with equal odds.
    let amount = i.table.impulse_noise[i.s];
    let mut rng = Rng::new(i.seed, 3);
    let mut p = i.planes();
    for plane in &mut p.c {
        for v in plane.iter_mut() {
            let u = rng.f64();
            if u < amount {
                *v = if u < amount / 2.0 { 1.0 } else { 0.0 };
            }
        }
    }
    p.to_u8_trunc()
}

pub(crate) fn speckle_noise(i: &Input<'_>) -> Vec<u8> {
    let sd = i.table.speckle_noise[i.s];
    let mut rng = Rng::new(i.seed, 4);
    let mut p = i.planes();
    for plane in &mut p.c {
        for v in plane.iter_mut() {
            *v += *v * (rng.normal() * sd) as f32;
        }
    }
    p.to_u8_trunc()
}

pub(crate) fn gaussian_blur(i: &Input<'_>) -> Vec<u8> {
    let mut p = i.planes();
    ops::gaussian_planes(&mut p, i.table.gaussian_blur[i.s]);
    p.to_u8_trunc()
}

pub(crate) fn glass_blur(i: &Input<'_>) -> Vec<u8> {
    let (sigma, delta, iterations) = i.table.glass_blur[i.s];
    let mut p = i.planes();
    ops::gaussian_planes(&mut p, sigma);
    // np.uint8(gaussian(x) * 255): truncation.
    let mut px = p.to_u8_trunc();
    let (w, h) = (i.w as i64, i.h as i64);
    let mut rng = Rng::new(i.seed, 5);
    // Locally shuffle pixels: h from H−δ down to δ+1, w likewise, each with a neighbour
    // at (dy, dx) ∈ [−δ, δ)² (numpy randint excludes the high end). The script writes
    // `x[h, w], x[h', w'] = x[h', w'], x[h, w]`, which on numpy row views is not a swap:
    // (h, w) receives the neighbour's colour and the neighbour keeps it. The published
    // data were made that way, so that copy is what happens here.
    for _ in 0..iterations {
        for y in (delta + 1..=h - delta).rev() {
            for x in (delta + 1..=w - delta).rev() {
                let dx = rng.randint(-delta, delta);
                let dy = rng.randint(-delta, delta);
                let (y2, x2) = (y + dy, x + dx);
                if !(0..h).contains(&y) || !(0..h).contains(&y2) || !(0..w).contains(&x2) {
                    continue;
                }
                let a = ((y * w + x) * 3) as usize;
                let b = ((y2 * w + x2) * 3) as usize;
                px.copy_within(b..b + 3, a);
            }
        }
    }
    let mut p = Planes::from_u8(&px, i.w, i.h);
    ops::gaussian_planes(&mut p, sigma);
    p.to_u8_trunc()
}

/// The scripts' `disk(radius, alias_blur)`: an aliased disk on a 17×17 grid (or
/// `2r+1` when r > 8), normalised, then OpenCV-Gaussian-blurred (3×3, or 5×5 when r > 8).
fn disk_kernel(radius: f64, alias_blur: f64) -> (Vec<f32>, usize) {
    let (half, ksize) = if radius <= 8.0 {
        (8i64, 3usize)
    } else {
        (radius as i64, 5usize)
    };
    let n = (2 * half + 1) as usize;
    let mut k = vec![0.0f64; n * n];
    for (idx, v) in k.iter_mut().enumerate() {
        let y = (idx / n) as i64 - half;
        let x = (idx % n) as i64 - half;
        if ((x * x + y * y) as f64) <= radius * radius {
            *v = 1.0;
        }
    }
    let total: f64 = k.iter().sum();
    if total > 0.0 {
        k.iter_mut().for_each(|v| *v /= total);
    }
    let g: Vec<f32> = ops::cv_gaussian_kernel(ksize, alias_blur)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let mut kf: Vec<f32> = k.into_iter().map(|v| v as f32).collect();
    ops::separable(&mut kf, n, n, &g, &g, Border::Mirror);
    // Trim all-zero outer rings so the filter skips them.
    let mut trim = 0;
    while trim < n / 2 {
        let ring_zero = (0..n).all(|t| {
            kf[trim * n + t] == 0.0
                && kf[(n - 1 - trim) * n + t] == 0.0
                && kf[t * n + trim] == 0.0
                && kf[t * n + n - 1 - trim] == 0.0
        });
        if !ring_zero {
            break;
        }
        trim += 1;
    }
    let m = n - 2 * trim;
    let mut out = Vec::with_capacity(m * m);
    for y in trim..n - trim {
        out.extend_from_slice(&kf[y * n + trim..y * n + n - trim]);
    }
    (out, m)
}

pub(crate) fn defocus_blur(i: &Input<'_>) -> Vec<u8> {
    let (radius, alias) = i.table.defocus_blur[i.s];
    let (kernel, ks) = disk_kernel(radius, alias);
    let mut p = i.planes();
    for c in &mut p.c {
        *c = ops::filter2d(c, i.w, i.h, &kernel, ks);
    }
    p.to_u8_trunc()
}

pub(crate) fn motion_blur(i: &Input<'_>) -> Vec<u8> {
    let (radius, sigma) = i.table.motion_blur[i.s];
    let angle = Rng::new(i.seed, 6).uniform(-45.0, 45.0);
    let taps = ops::motion_taps(radius, sigma, angle);
    let mut p = i.planes();
    for c in &mut p.c {
        *c = ops::motion_plane(c, i.w, i.h, &taps);
    }
    p.to_u8_round()
}

pub(crate) fn zoom_blur(i: &Input<'_>) -> Vec<u8> {
    let (step, count) = i.table.zoom_blur[i.s];
    let mut p = i.planes();
    let n = i.w * i.h;
    let mut zoomed = vec![0.0f32; n];
    for c in &mut p.c {
        let mut acc = c.clone();
        for k in 0..count {
            ops::clipped_zoom(c, i.w, i.h, 1.0 + k as f64 * step, &mut zoomed);
            acc.iter_mut().zip(&zoomed).for_each(|(a, z)| *a += z);
        }
        let inv = 1.0 / (count as f32 + 1.0);
        c.iter_mut().zip(&acc).for_each(|(v, a)| *v = a * inv);
    }
    p.to_u8_trunc()
}

pub(crate) fn snow(i: &Input<'_>) -> Vec<u8> {
    let [loc, scale, zoom, threshold, radius, sigma, blend] = i.table.snow[i.s];
    let (w, h) = (i.w, i.h);
    let mut rng = Rng::new(i.seed, 7);
    let layer: Vec<f32> = (0..w * h)
        .map(|_| (loc + scale * rng.normal()) as f32)
        .collect();
    let mut zoomed = vec![0.0f32; w * h];
    ops::clipped_zoom(&layer, w, h, zoom, &mut zoomed);
    // Threshold, then the PNG round trip (np.uint8 truncation) before ImageMagick.
    for v in &mut zoomed {
        let kept = if *v < threshold as f32 { 0.0 } else { *v };
        *v = (kept.clamp(0.0, 1.0) * 255.0).floor();
    }
    let angle = Rng::new(i.seed, 8).uniform(-135.0, -45.0);
    let taps = ops::motion_taps(radius as i64, sigma, angle);
    let blurred: Vec<f32> = ops::motion_plane(&zoomed, w, h, &taps)
        .into_iter()
        .map(|v| v.round().clamp(0.0, 255.0) / 255.0)
        .collect();
    let mut p = i.planes();
    let blend = blend as f32;
    for k in 0..w * h {
        let grey = 0.299 * p.c[0][k] + 0.587 * p.c[1][k] + 0.114 * p.c[2][k];
        let lifted = grey * 1.5 + 0.5;
        // The layer plus the layer rotated by 180°.
        let flakes = blurred[k] + blurred[w * h - 1 - k];
        for c in &mut p.c {
            let x = c[k];
            c[k] = blend * x + (1.0 - blend) * x.max(lifted) + flakes;
        }
    }
    p.to_u8_trunc()
}

/// Diamond-square plasma fractal of side `mapsize` (a power of two), periodic, in [0, 1].
fn plasma_fractal(mapsize: usize, wibble_decay: f64, rng: &mut Rng) -> Vec<f32> {
    let n = mapsize;
    // f32 storage: at the 8192 side limit the map alone is 256 MiB.
    let mut map = vec![0.0f32; n * n];
    let mut step = n;
    let mut wibble = 100.0f64;
    let at = |y: usize, x: usize| (y % n) * n + (x % n);
    while step >= 2 {
        let half = step / 2;
        // Squares: each centre is the mean of its four corners plus wibble.
        for y in (0..n).step_by(step) {
            for x in (0..n).step_by(step) {
                let sum = map[at(y, x)]
                    + map[at(y + step, x)]
                    + map[at(y, x + step)]
                    + map[at(y + step, x + step)];
                map[at(y + half, x + half)] =
                    sum / 4.0 + (wibble * rng.uniform(-wibble, wibble)) as f32;
            }
        }
        // Diamonds: edge midpoints from the two corners and the two centres beside them.
        for y in (0..n).step_by(step) {
            for x in (0..n).step_by(step) {
                let top = map[at(y, x)]
                    + map[at(y, x + step)]
                    + map[at(y + half, x + half)]
                    + map[at(y + n - half, x + half)];
                map[at(y, x + half)] = top / 4.0 + (wibble * rng.uniform(-wibble, wibble)) as f32;
                let left = map[at(y, x)]
                    + map[at(y + step, x)]
                    + map[at(y + half, x + half)]
                    + map[at(y + half, x + n - half)];
                map[at(y + half, x)] = left / 4.0 + (wibble * rng.uniform(-wibble, wibble)) as f32;
            }
        }
        step /= 2;
        wibble /= wibble_decay;
    }
    let min = map.iter().copied().fold(f32::INFINITY, f32::min);
    let max = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let range = max - min;
    for v in &mut map {
        *v = if range > 0.0 { (*v - min) / range } else { 0.0 };
    }
    map
}

pub(crate) fn fog(i: &Input<'_>) -> Vec<u8> {
    let (strength, decay) = i.table.fog[i.s];
    let mapsize = i.w.max(i.h).next_power_of_two();
    let plasma = plasma_fractal(mapsize, decay, &mut Rng::new(i.seed, 9));
    let mut p = i.planes();
    let max_val =
        p.c.iter()
            .flat_map(|c| c.iter())
            .copied()
            .fold(0.0f32, f32::max);
    let strength = strength as f32;
    let scale = max_val / (max_val + strength);
    for c in &mut p.c {
        for (y, row) in c.chunks_exact_mut(i.w).enumerate() {
            for (v, f) in row.iter_mut().zip(&plasma[y * mapsize..y * mapsize + i.w]) {
                *v = (*v + strength * f) * scale;
            }
        }
    }
    p.to_u8_trunc()
}

fn map_hsv(i: &Input<'_>, f: impl Fn(f32, f32, f32) -> (f32, f32, f32)) -> Vec<u8> {
    let mut p = i.planes();
    let [r, g, b] = &mut p.c;
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let (h, s, v) = ops::rgb_to_hsv(*r, *g, *b);
        let (h, s, v) = f(h, s, v);
        (*r, *g, *b) = ops::hsv_to_rgb(h, s, v);
    }
    p.to_u8_trunc()
}

pub(crate) fn brightness(i: &Input<'_>) -> Vec<u8> {
    let c = i.table.brightness[i.s] as f32;
    map_hsv(i, |h, s, v| (h, s, (v + c).clamp(0.0, 1.0)))
}

pub(crate) fn saturate(i: &Input<'_>) -> Vec<u8> {
    let (k, add) = i.table.saturate[i.s];
    let (k, add) = (k as f32, add as f32);
    map_hsv(i, |h, s, v| (h, (s * k + add).clamp(0.0, 1.0), v))
}

pub(crate) fn contrast(i: &Input<'_>) -> Vec<u8> {
    let c = i.table.contrast[i.s] as f32;
    let mut p = i.planes();
    for plane in &mut p.c {
        let mean = (plane.iter().map(|&v| f64::from(v)).sum::<f64>() / plane.len() as f64) as f32;
        plane.iter_mut().for_each(|v| *v = (*v - mean) * c + mean);
    }
    p.to_u8_trunc()
}

pub(crate) fn jpeg_compression(i: &Input<'_>) -> Result<Vec<u8>, CorruptError> {
    let quality = i.table.jpeg_quality[i.s];
    let mut encoded = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut encoded, quality);
    // PIL's default for these qualities: 4:2:0 chroma subsampling.
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    let (w, h) = (
        u16::try_from(i.w).map_err(|_| CorruptError::Jpeg("width over 65535".into()))?,
        u16::try_from(i.h).map_err(|_| CorruptError::Jpeg("height over 65535".into()))?,
    );
    encoder
        .encode(i.pixels, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| CorruptError::Jpeg(format!("encode: {e}")))?;
    let mut decoder = jpeg_decoder::Decoder::new(encoded.as_slice());
    let decoded = decoder
        .decode()
        .map_err(|e| CorruptError::Jpeg(format!("decode: {e}")))?;
    if decoded.len() != i.pixels.len() {
        return Err(CorruptError::Jpeg(format!(
            "decoded {} bytes for {} expected",
            decoded.len(),
            i.pixels.len()
        )));
    }
    Ok(decoded)
}

pub(crate) fn pixelate(i: &Input<'_>) -> Vec<u8> {
    let c = i.table.pixelate[i.s];
    // int(W·c), int(H·c) as Python computes them, at least 1.
    let nw = ((i.w as f64 * c) as usize).max(1);
    let nh = ((i.h as f64 * c) as usize).max(1);
    let small = ops::pil_box_resize(i.pixels, i.w, i.h, nw, nh);
    ops::pil_box_resize(&small, nw, nh, i.w, i.h)
}

pub(crate) fn elastic_transform(i: &Input<'_>) -> Vec<u8> {
    let (w, h) = (i.w, i.h);
    let side = w.min(h) as f64 * i.table.elastic_side;
    let (fa, fs, ff) = i.table.elastic[i.s];
    let (alpha, sigma, affine) = (fa * side, fs * side, ff * side);
    let mut rng = Rng::new(i.seed, 10);
    // Random affine: three points around the centre moved by up to `affine` pixels.
    let (cx, cy) = ((w / 2) as f64, (h / 2) as f64);
    let sq = (w.min(h) / 3) as f64;
    let src = [[cx + sq, cy + sq], [cx + sq, cy - sq], [cx - sq, cy - sq]];
    let mut dst = src;
    for pt in &mut dst {
        for v in pt.iter_mut() {
            *v += rng.uniform(-affine, affine);
        }
    }
    let inverse = ops::affine_from_points(src, dst).and_then(ops::invert_affine);
    let mut p = i.planes();
    if let Some(m) = inverse {
        // cv2.warpAffine: dst(x, y) = src(M⁻¹(x, y)), bilinear, BORDER_REFLECT_101.
        for c in &mut p.c {
            let mut out = vec![0.0f32; w * h];
            for (y, row) in out.chunks_exact_mut(w).enumerate() {
                for (x, o) in row.iter_mut().enumerate() {
                    let (xf, yf) = (x as f64, y as f64);
                    let sx = m[0] * xf + m[1] * yf + m[2];
                    let sy = m[3] * xf + m[4] * yf + m[5];
                    *o = ops::bilinear(c, w, h, sx, sy, Border::Mirror);
                }
            }
            *c = out;
        }
    }
    let dx = displacement_field(w, h, sigma, alpha, &mut rng);
    let dy = displacement_field(w, h, sigma, alpha, &mut rng);
    // map_coordinates(order=1, mode='reflect') at (y + dy, x + dx).
    for c in &mut p.c {
        let mut out = vec![0.0f32; w * h];
        for (y, row) in out.chunks_exact_mut(w).enumerate() {
            for (x, o) in row.iter_mut().enumerate() {
                let k = y * w + x;
                let sx = x as f64 + f64::from(dx[k]);
                let sy = y as f64 + f64::from(dy[k]);
                *o = ops::bilinear(c, w, h, sx, sy, Border::Reflect);
            }
        }
        *c = out;
    }
    p.to_u8_trunc()
}

/// Sides up to this get elastic's displacement fields exactly as the script computes them;
/// larger images with a wide smoothing kernel use [`displacement_field`]'s coarse grid.
const ELASTIC_EXACT_SIDE: usize = 1024;

/// A smooth random displacement field: uniform(−1, 1) per pixel, Gaussian σ (scipy
/// `reflect`, truncate 3), times alpha.
///
/// Above [`ELASTIC_EXACT_SIDE`] with σ > 8 the exact form costs O(side²·σ) (the ImageNet
/// table's σ reaches 0.76 of the side), so the noise is drawn on a grid `f = ⌈σ/4⌉` times
/// coarser, scaled by `1/f` (the mean of f² pixels), smoothed with σ/f and bilinearly
/// up-sampled: the same standard deviation and correlation length, not the same draws.
fn displacement_field(w: usize, h: usize, sigma: f64, alpha: f64, rng: &mut Rng) -> Vec<f32> {
    let exact = w.max(h) <= ELASTIC_EXACT_SIDE || sigma <= 8.0;
    displacement_field_with(w, h, sigma, alpha, rng, exact)
}

fn displacement_field_with(
    w: usize,
    h: usize,
    sigma: f64,
    alpha: f64,
    rng: &mut Rng,
    exact: bool,
) -> Vec<f32> {
    if exact {
        let mut f: Vec<f32> = (0..w * h).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let k = ops::gaussian_kernel(sigma, 3.0);
        ops::separable(&mut f, w, h, &k, &k, Border::Reflect);
        f.iter_mut().for_each(|v| *v *= alpha as f32);
        return f;
    }
    let f = (sigma / 4.0).ceil().max(1.0) as usize;
    let (cw, ch) = (w.div_ceil(f), h.div_ceil(f));
    let mut coarse: Vec<f32> = (0..cw * ch)
        .map(|_| (rng.uniform(-1.0, 1.0) / f as f64) as f32)
        .collect();
    let k = ops::gaussian_kernel(sigma / f as f64, 3.0);
    ops::separable(&mut coarse, cw, ch, &k, &k, Border::Reflect);
    let mut out = vec![0.0f32; w * h];
    let inv = 1.0 / f as f64;
    for (y, row) in out.chunks_exact_mut(w).enumerate() {
        let cy = (y as f64 + 0.5) * inv - 0.5;
        for (x, o) in row.iter_mut().enumerate() {
            let cx = (x as f64 + 0.5) * inv - 0.5;
            *o = ops::bilinear(&coarse, cw, ch, cx, cy, Border::Nearest) * alpha as f32;
        }
    }
    out
}

pub(crate) fn spatter(i: &Input<'_>) -> Vec<u8> {
    let mut p = i.planes();
    spatter::apply(&mut p, &i.table.spatter[i.s], &mut Rng::new(i.seed, 11));
    p.to_u8_trunc()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd(xs: &[f32]) -> f64 {
        let n = xs.len() as f64;
        let m = xs.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        (xs.iter().map(|&v| (f64::from(v) - m).powi(2)).sum::<f64>() / n).sqrt()
    }

    #[test]
    fn coarse_displacement_fields_match_the_exact_statistics() {
        for sigma in [12.0, 30.0] {
            let (mut a, mut b) = (0.0, 0.0);
            for seed in 0..4 {
                let mut r = Rng::new(seed, 0);
                a += sd(&displacement_field_with(300, 300, sigma, 1.0, &mut r, true));
                b += sd(&displacement_field_with(
                    300, 300, sigma, 1.0, &mut r, false,
                ));
            }
            assert!(
                (a / b - 1.0).abs() < 0.25,
                "σ {sigma}: exact sd {a} coarse sd {b}"
            );
        }
    }

    #[test]
    fn plasma_is_normalised() {
        let p = plasma_fractal(64, 2.0, &mut Rng::new(1, 0));
        let min = p.iter().copied().fold(f32::INFINITY, f32::min);
        let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!((min, max), (0.0, 1.0));
        assert!(sd(&p) > 0.05);
    }
}
