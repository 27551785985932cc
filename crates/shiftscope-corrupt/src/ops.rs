//! Image building blocks in f32 planes: borders, separable and 2-D filters, resampling,
//! ImageMagick-style motion blur, HSV, affine warps.

/// An RGB image as three f32 planes, values nominally in `[0, 1]`.
#[derive(Clone, Debug)]
pub(crate) struct Planes {
    pub(crate) w: usize,
    pub(crate) h: usize,
    pub(crate) c: [Vec<f32>; 3],
}

impl Planes {
    /// Splits HWC u8 pixels (length already checked) into planes divided by 255.
    pub(crate) fn from_u8(pixels: &[u8], w: usize, h: usize) -> Planes {
        let n = w * h;
        let mut c = [vec![0.0; n], vec![0.0; n], vec![0.0; n]];
        for (i, px) in pixels.chunks_exact(3).enumerate().take(n) {
            c[0][i] = f32::from(px[0]) / 255.0;
            c[1][i] = f32::from(px[1]) / 255.0;
            c[2][i] = f32::from(px[2]) / 255.0;
        }
        Planes { w, h, c }
    }

    /// Interleaves back to u8: clip to `[0, 1]`, ×255, then `np.uint8`'s truncation (with a
    /// tolerance of 1e-3 grey levels so that exact values survive f32 rounding).
    pub(crate) fn to_u8_trunc(&self) -> Vec<u8> {
        self.interleave(|v| (v.clamp(0.0, 1.0) * 255.0 + 1e-3).floor().min(255.0) as u8)
    }

    /// Interleaves back to u8 rounding to nearest (ImageMagick and PIL outputs).
    pub(crate) fn to_u8_round(&self) -> Vec<u8> {
        self.interleave(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
    }

    fn interleave(&self, f: impl Fn(f32) -> u8) -> Vec<u8> {
        let n = self.w * self.h;
        let mut out = vec![0u8; n * 3];
        for (i, px) in out.chunks_exact_mut(3).enumerate() {
            px[0] = f(self.c[0][i]);
            px[1] = f(self.c[1][i]);
            px[2] = f(self.c[2][i]);
        }
        out
    }
}

/// How an index outside `0..n` maps back inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Border {
    /// Repeat the edge value: scipy/skimage `nearest`, OpenCV `BORDER_REPLICATE`.
    Nearest,
    /// Half-sample symmetric, `dcba|abcd|dcba`: scipy `reflect`.
    Reflect,
    /// Whole-sample symmetric, `dcb|abcd|cba`: OpenCV `BORDER_REFLECT_101`, scipy `mirror`.
    Mirror,
}

/// Maps any index into `0..n` (`n ≥ 1`).
#[inline]
pub(crate) fn map_index(i: i64, n: usize, border: Border) -> usize {
    let n = n as i64;
    if (0..n).contains(&i) {
        return i as usize;
    }
    let m = match border {
        Border::Nearest => i.clamp(0, n - 1),
        Border::Reflect => {
            let p = i.rem_euclid(2 * n);
            if p < n { p } else { 2 * n - 1 - p }
        }
        Border::Mirror => {
            if n == 1 {
                0
            } else {
                let p = i.rem_euclid(2 * n - 2);
                if p < n { p } else { 2 * n - 2 - p }
            }
        }
    };
    m as usize
}

/// scipy's normalised Gaussian kernel: radius `int(truncate·σ + 0.5)`; `[1]` for σ ≈ 0.
pub(crate) fn gaussian_kernel(sigma: f64, truncate: f64) -> Vec<f32> {
    if sigma <= 1e-15 {
        return vec![1.0];
    }
    let radius = (truncate * sigma + 0.5) as i64;
    let w: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 * (x * x) as f64 / (sigma * sigma)).exp())
        .collect();
    let sum: f64 = w.iter().sum();
    w.iter().map(|v| (v / sum) as f32).collect()
}

/// OpenCV's `getGaussianKernel(n, sigma)` (odd `n`, σ > 0).
pub(crate) fn cv_gaussian_kernel(n: usize, sigma: f64) -> Vec<f64> {
    let half = (n as f64 - 1.0) / 2.0;
    let w: Vec<f64> = (0..n)
        .map(|i| {
            let x = i as f64 - half;
            (-x * x / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f64 = w.iter().sum();
    w.iter().map(|v| v / sum).collect()
}

/// A 1-D correlation of every line of a plane with a centred odd kernel; a kernel longer
/// than the line is folded onto the line (the border map is periodic) so it costs `n²`.
struct Line {
    /// For each output position, `(source index, weight)` pairs; `None` when the direct
    /// padded form is used.
    folded: Option<Vec<Vec<(usize, f32)>>>,
}

impl Line {
    fn new(kernel: &[f32], n: usize, border: Border) -> Line {
        let r = (kernel.len() / 2) as i64;
        if kernel.len() <= 2 * n + 1 {
            return Line { folded: None };
        }
        let folded = (0..n as i64)
            .map(|i| {
                let mut acc = vec![0.0f32; n];
                for (j, &k) in kernel.iter().enumerate() {
                    acc[map_index(i + j as i64 - r, n, border)] += k;
                }
                acc.into_iter()
                    .enumerate()
                    .filter(|(_, w)| *w != 0.0)
                    .collect()
            })
            .collect();
        Line {
            folded: Some(folded),
        }
    }
}

/// Correlates `plane` (w×h) with `kx` along rows and `ky` along columns, in place.
pub(crate) fn separable(
    plane: &mut [f32],
    w: usize,
    h: usize,
    kx: &[f32],
    ky: &[f32],
    border: Border,
) {
    if kx.len() > 1 {
        horizontal(plane, w, h, kx, border);
    }
    if ky.len() > 1 {
        vertical(plane, w, h, ky, border);
    }
}

fn horizontal(plane: &mut [f32], w: usize, h: usize, k: &[f32], border: Border) {
    let r = k.len() / 2;
    let line = Line::new(k, w, border);
    let mut padded = vec![0.0f32; w + 2 * r];
    let mut out = vec![0.0f32; w];
    for row in plane.chunks_exact_mut(w).take(h) {
        if let Some(folded) = &line.folded {
            for (o, taps) in out.iter_mut().zip(folded) {
                *o = taps.iter().map(|&(j, wt)| wt * row[j]).sum();
            }
        } else {
            for (p, v) in padded.iter_mut().enumerate() {
                *v = row[map_index(p as i64 - r as i64, w, border)];
            }
            for (x, o) in out.iter_mut().enumerate() {
                let win = &padded[x..x + k.len()];
                *o = win.iter().zip(k).map(|(a, b)| a * b).sum();
            }
        }
        row.copy_from_slice(&out);
    }
}

fn vertical(plane: &mut [f32], w: usize, h: usize, k: &[f32], border: Border) {
    let r = k.len() as i64 / 2;
    let line = Line::new(k, h, border);
    let mut out = vec![0.0f32; w * h];
    for (y, orow) in out.chunks_exact_mut(w).enumerate() {
        let taps: Vec<(usize, f32)> = match &line.folded {
            Some(folded) => folded[y].clone(),
            None => k
                .iter()
                .enumerate()
                .map(|(j, &wt)| (map_index(y as i64 + j as i64 - r, h, border), wt))
                .collect(),
        };
        for (sy, wt) in taps {
            let srow = &plane[sy * w..sy * w + w];
            for (o, s) in orow.iter_mut().zip(srow) {
                *o += wt * s;
            }
        }
    }
    plane.copy_from_slice(&out);
}

/// skimage `gaussian(x, sigma)` on one plane: truncate 4, border `nearest`.
pub(crate) fn gaussian_plane(plane: &mut [f32], w: usize, h: usize, sigma: f64) {
    let k = gaussian_kernel(sigma, 4.0);
    separable(plane, w, h, &k, &k, Border::Nearest);
}

/// skimage `gaussian(x, sigma, multichannel=True)`: each channel on its own.
pub(crate) fn gaussian_planes(p: &mut Planes, sigma: f64) {
    let k = gaussian_kernel(sigma, 4.0);
    for c in &mut p.c {
        separable(c, p.w, p.h, &k, &k, Border::Nearest);
    }
}

/// 2-D correlation with a square odd kernel (row-major, side `ks`), OpenCV `filter2D`'s
/// default border `BORDER_REFLECT_101`. Zero taps are skipped.
pub(crate) fn filter2d(plane: &[f32], w: usize, h: usize, kernel: &[f32], ks: usize) -> Vec<f32> {
    let r = ks / 2;
    let pw = w + 2 * r;
    let ph = h + 2 * r;
    let mut padded = vec![0.0f32; pw * ph];
    for (py, prow) in padded.chunks_exact_mut(pw).enumerate() {
        let sy = map_index(py as i64 - r as i64, h, Border::Mirror);
        for (px, v) in prow.iter_mut().enumerate() {
            *v = plane[sy * w + map_index(px as i64 - r as i64, w, Border::Mirror)];
        }
    }
    let mut out = vec![0.0f32; w * h];
    for (ky, krow) in kernel.chunks_exact(ks).enumerate() {
        for (kx, &wt) in krow.iter().enumerate() {
            if wt == 0.0 {
                continue;
            }
            for (y, orow) in out.chunks_exact_mut(w).enumerate() {
                let start = (y + ky) * pw + kx;
                for (o, s) in orow.iter_mut().zip(&padded[start..start + w]) {
                    *o += wt * s;
                }
            }
        }
    }
    out
}

/// PIL's resampling coefficients for the BOX filter along one axis (`Image.resize(...,
/// Image.BOX)`): for each output pixel the first input index and normalised weights.
pub(crate) fn pil_box_coeffs(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 0.5 * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
            let xmin = xmin.min(xmax.saturating_sub(1));
            let mut ws: Vec<f64> = (xmin..xmax)
                .map(|x| {
                    let t = (x as f64 - center + 0.5) / filterscale;
                    if t > -0.5 && t <= 0.5 { 1.0 } else { 0.0 }
                })
                .collect();
            let total: f64 = ws.iter().sum();
            if total > 0.0 {
                ws.iter_mut().for_each(|v| *v /= total);
            } else if let Some(first) = ws.first_mut() {
                *first = 1.0;
            }
            (xmin, ws.into_iter().map(|v| v as f32).collect())
        })
        .collect()
}

/// PIL `resize(BOX)` of interleaved RGB u8: horizontal pass to u8, then vertical, rounding
/// like PIL's fixed-point code.
pub(crate) fn pil_box_resize(src: &[u8], w: usize, h: usize, nw: usize, nh: usize) -> Vec<u8> {
    let cx = pil_box_coeffs(w, nw);
    let mut tmp = vec![0u8; nw * h * 3];
    for y in 0..h {
        for (x, (x0, ws)) in cx.iter().enumerate() {
            for ch in 0..3 {
                let mut acc = 0.0f32;
                for (i, wt) in ws.iter().enumerate() {
                    acc += wt * f32::from(src[(y * w + x0 + i) * 3 + ch]);
                }
                tmp[(y * nw + x) * 3 + ch] = acc.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    let cy = pil_box_coeffs(h, nh);
    let mut out = vec![0u8; nw * nh * 3];
    for (y, (y0, ws)) in cy.iter().enumerate() {
        for x in 0..nw * 3 {
            let mut acc = 0.0f32;
            for (i, wt) in ws.iter().enumerate() {
                acc += wt * f32::from(tmp[(y0 + i) * nw * 3 + x]);
            }
            out[y * nw * 3 + x] = acc.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// One axis of `clipped_zoom`: for each output index, `(i0, i1, frac)` into the full axis.
/// The centre `ceil(n/z)` pixels are zoomed by scipy's `zoom(order=1)` (output length
/// `round(ch·z)`, corner-aligned: output `t` reads input `t·(ch−1)/(o−1)`) and the centre
/// `n` of the result kept.
fn zoom_axis(n: usize, z: f64) -> Vec<(usize, usize, f32)> {
    let ch = ((n as f64 / z).ceil() as usize).clamp(1, n);
    let top = (n - ch) / 2;
    let o = ((ch as f64 * z).round_ties_even() as usize).max(1);
    let trim = o.saturating_sub(n) / 2;
    let ratio = if o > 1 {
        (ch as f64 - 1.0) / (o as f64 - 1.0)
    } else {
        0.0
    };
    (0..n)
        .map(|i| {
            let t = ((i + trim).min(o - 1)) as f64 * ratio;
            let i0 = (t.floor() as usize).min(ch - 1);
            let i1 = (i0 + 1).min(ch - 1);
            (top + i0, top + i1, (t - i0 as f64) as f32)
        })
        .collect()
}

/// `clipped_zoom(img, z)` of the corruption scripts on one plane (each axis on its own, as
/// in the `imagecorruptions` package, so non-square images work).
pub(crate) fn clipped_zoom(plane: &[f32], w: usize, h: usize, z: f64, out: &mut [f32]) {
    let ax = zoom_axis(w, z);
    let ay = zoom_axis(h, z);
    let mut row = vec![0.0f32; w];
    for (y, &(y0, y1, fy)) in ay.iter().enumerate() {
        let r0 = &plane[y0 * w..y0 * w + w];
        let r1 = &plane[y1 * w..y1 * w + w];
        for ((v, a), b) in row.iter_mut().zip(r0).zip(r1) {
            *v = a + (b - a) * fy;
        }
        let orow = &mut out[y * w..y * w + w];
        for (o, &(x0, x1, fx)) in orow.iter_mut().zip(&ax) {
            *o = row[x0] + (row[x1] - row[x0]) * fx;
        }
    }
}

/// ImageMagick's `MotionBlurImage(radius, sigma, angle)`: a one-sided Gaussian of
/// `2·radius+1` taps along the direction `angle` (degrees, 0 = +x), edge pixels repeated.
/// Returns the taps as `(dx, dy, weight)`.
pub(crate) fn motion_taps(radius: i64, sigma: f64, angle_deg: f64) -> Vec<(i64, i64, f32)> {
    let width = (2 * radius.max(0) + 1) as usize;
    let sigma = sigma.max(1e-6);
    let k: Vec<f64> = (0..width)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f64 = k.iter().sum();
    let (s, c) = angle_deg.to_radians().sin_cos();
    let (px, py) = (width as f64 * s, width as f64 * c);
    let hyp = px.hypot(py).max(1e-12);
    k.iter()
        .enumerate()
        .map(|(i, &wt)| {
            let dx = ((i as f64 * py) / hyp - 0.5).ceil() as i64;
            let dy = ((i as f64 * px) / hyp - 0.5).ceil() as i64;
            (dx, dy, (wt / sum) as f32)
        })
        .collect()
}

/// Applies motion-blur taps to one plane: `out(x, y) = Σ w · src(clamp(x+dx), clamp(y+dy))`.
pub(crate) fn motion_plane(src: &[f32], w: usize, h: usize, taps: &[(i64, i64, f32)]) -> Vec<f32> {
    let mut out = vec![0.0f32; w * h];
    let xs: Vec<Vec<usize>> = taps
        .iter()
        .map(|&(dx, _, _)| {
            (0..w as i64)
                .map(|x| map_index(x + dx, w, Border::Nearest))
                .collect()
        })
        .collect();
    for (y, orow) in out.chunks_exact_mut(w).enumerate() {
        for (&(_, dy, wt), xmap) in taps.iter().zip(&xs) {
            let sy = map_index(y as i64 + dy, h, Border::Nearest);
            let srow = &src[sy * w..sy * w + w];
            for (o, &sx) in orow.iter_mut().zip(xmap) {
                *o += wt * srow[sx];
            }
        }
    }
    out
}

/// skimage `rgb2hsv` of one pixel (all in `[0, 1]`).
#[inline]
pub(crate) fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let v = max;
    let s = if delta == 0.0 || max == 0.0 {
        0.0
    } else {
        delta / max
    };
    let h = if delta == 0.0 {
        0.0
    } else {
        let h6 = if r == max {
            (g - b) / delta
        } else if g == max {
            2.0 + (b - r) / delta
        } else {
            4.0 + (r - g) / delta
        };
        (h6 / 6.0).rem_euclid(1.0)
    };
    (h, s, v)
}

/// skimage `hsv2rgb` of one pixel.
#[inline]
pub(crate) fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = h * 6.0;
    let hi = h6.floor();
    let f = h6 - hi;
    let p = v * (1.0 - s);
    let q = v * (1.0 - f * s);
    let t = v * (1.0 - (1.0 - f) * s);
    match (hi as i64).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// Bilinear sample of a plane at `(x, y)` with a border map for the four neighbours.
#[inline]
pub(crate) fn bilinear(plane: &[f32], w: usize, h: usize, x: f64, y: f64, border: Border) -> f32 {
    let x0 = x.floor();
    let y0 = y.floor();
    let fx = (x - x0) as f32;
    let fy = (y - y0) as f32;
    let (x0, y0) = (x0 as i64, y0 as i64);
    if x0 >= 0 && y0 >= 0 && x0 + 1 < w as i64 && y0 + 1 < h as i64 {
        // Inside: no border mapping.
        let k = y0 as usize * w + x0 as usize;
        let top = plane[k] + (plane[k + 1] - plane[k]) * fx;
        let bottom = plane[k + w] + (plane[k + w + 1] - plane[k + w]) * fx;
        return top + (bottom - top) * fy;
    }
    let xa = map_index(x0, w, border);
    let xb = map_index(x0 + 1, w, border);
    let ya = map_index(y0, h, border) * w;
    let yb = map_index(y0 + 1, h, border) * w;
    let top = plane[ya + xa] + (plane[ya + xb] - plane[ya + xa]) * fx;
    let bottom = plane[yb + xa] + (plane[yb + xb] - plane[yb + xa]) * fx;
    top + (bottom - top) * fy
}

/// The affine map taking three source points to three destination points (OpenCV
/// `getAffineTransform`), as `[a, b, c, d, e, f]`: `x' = a·x + b·y + c`, `y' = d·x + e·y + f`.
/// `None` when the source points are collinear.
pub(crate) fn affine_from_points(src: [[f64; 2]; 3], dst: [[f64; 2]; 3]) -> Option<[f64; 6]> {
    let det = src[0][0] * (src[1][1] - src[2][1]) - src[0][1] * (src[1][0] - src[2][0])
        + (src[1][0] * src[2][1] - src[2][0] * src[1][1]);
    if det.abs() < 1e-12 {
        return None;
    }
    // Solve [x y 1] · coef = target for each output coordinate by Cramer's rule.
    let solve = |t: [f64; 3]| -> [f64; 3] {
        let m = |a: [[f64; 3]; 3]| -> f64 {
            a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
                - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
                + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        };
        let rows = |col: usize| -> [[f64; 3]; 3] {
            let mut a = [[0.0; 3]; 3];
            for i in 0..3 {
                a[i] = [src[i][0], src[i][1], 1.0];
                a[i][col] = t[i];
            }
            a
        };
        [m(rows(0)) / det, m(rows(1)) / det, m(rows(2)) / det]
    };
    let [a, b, c] = solve([dst[0][0], dst[1][0], dst[2][0]]);
    let [d, e, f] = solve([dst[0][1], dst[1][1], dst[2][1]]);
    Some([a, b, c, d, e, f])
}

/// Inverse of an affine map, `None` when singular.
pub(crate) fn invert_affine(m: [f64; 6]) -> Option<[f64; 6]> {
    let [a, b, c, d, e, f] = m;
    let det = a * e - b * d;
    if det.abs() < 1e-12 {
        return None;
    }
    let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
    Some([ia, ib, -(ia * c + ib * f), id, ie, -(id * c + ie * f)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borders_map_like_scipy_and_opencv() {
        let m = |b| (-3..7).map(|i| map_index(i, 4, b)).collect::<Vec<_>>();
        assert_eq!(m(Border::Nearest), [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]);
        assert_eq!(m(Border::Reflect), [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
        assert_eq!(m(Border::Mirror), [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn long_kernels_fold_to_the_same_result() {
        // A kernel longer than the line must equal the direct formula with the border map.
        let (w, h) = (5, 1);
        let plane: Vec<f32> = vec![0.0, 1.0, 4.0, 2.0, 3.0];
        let k = gaussian_kernel(3.0, 4.0);
        let mut got = plane.clone();
        separable(&mut got, w, h, &k, &[1.0], Border::Reflect);
        let r = (k.len() / 2) as i64;
        for (i, g) in got.iter().enumerate() {
            let want: f32 = k
                .iter()
                .enumerate()
                .map(|(j, kv)| kv * plane[map_index(i as i64 + j as i64 - r, w, Border::Reflect)])
                .sum();
            assert!((g - want).abs() < 1e-5);
        }
    }

    #[test]
    fn hsv_round_trip() {
        for &(r, g, b) in &[
            (0.2, 0.5, 0.9),
            (1.0, 0.0, 0.0),
            (0.3, 0.3, 0.3),
            (0.0, 0.0, 0.0),
            (0.9, 0.8, 0.1),
        ] {
            let (h, s, v) = rgb_to_hsv(r, g, b);
            let (r2, g2, b2) = hsv_to_rgb(h, s, v);
            assert!((r - r2).abs() < 1e-6 && (g - g2).abs() < 1e-6 && (b - b2).abs() < 1e-6);
        }
    }

    #[test]
    fn pil_box_halving_averages_pairs() {
        let c = pil_box_coeffs(4, 2);
        assert_eq!(c[0], (0, vec![0.5, 0.5]));
        assert_eq!(c[1], (2, vec![0.5, 0.5]));
        // Up-sampling repeats each pixel.
        let up = pil_box_coeffs(2, 4);
        assert_eq!(up.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 0, 1, 1]);
    }

    #[test]
    fn affine_round_trip() {
        let src = [[10.0, 10.0], [10.0, 2.0], [2.0, 2.0]];
        let dst = [[11.0, 9.5], [10.5, 2.0], [1.0, 3.0]];
        let m = affine_from_points(src, dst).unwrap_or([0.0; 6]);
        for (s, d) in src.iter().zip(&dst) {
            let x = m[0] * s[0] + m[1] * s[1] + m[2];
            let y = m[3] * s[0] + m[4] * s[1] + m[5];
            assert!((x - d[0]).abs() < 1e-9 && (y - d[1]).abs() < 1e-9);
        }
        let inv = invert_affine(m).unwrap_or([0.0; 6]);
        let x = inv[0] * dst[0][0] + inv[1] * dst[0][1] + inv[2];
        assert!((x - src[0][0]).abs() < 1e-9);
    }
}
