//! Spatter: water splashes (severities whose mode is 0) or mud (mode 1).
//!
//! The water branch follows the script's OpenCV chain: liquid layer → Canny edges →
//! distance to the nearest edge (OpenCV's 5×5 chamfer L2 distances 1, 1.4, 2.1969) →
//! truncate at 20 → 3×3 box blur → histogram equalisation → emboss filter
//! `[[-2,-1,0],[-1,1,1],[0,1,2]]` → 3×3 box blur, multiplied by the liquid layer and
//! normalised. The Canny here is the textbook algorithm with OpenCV's settings (3×3 Sobel,
//! L1 magnitude, 4-direction non-maximum suppression, hysteresis 50/150); it is not
//! bit-identical to OpenCV's, so edge pixels can differ at ties.

use crate::ops::{self, Border, Planes};
use crate::rng::Rng;

/// Applies one spatter row `(loc, scale, sigma, threshold, intensity or mud sigma, mode)`.
pub(crate) fn apply(p: &mut Planes, c: &[f64; 6], rng: &mut Rng) {
    let [loc, scale, sigma, threshold, fifth, mode] = *c;
    let (w, h) = (p.w, p.h);
    let n = w * h;
    let mut liquid: Vec<f32> = (0..n)
        .map(|_| (loc + scale * rng.normal()) as f32)
        .collect();
    ops::gaussian_plane(&mut liquid, w, h, sigma);
    let threshold = threshold as f32;
    for v in &mut liquid {
        if *v < threshold {
            *v = 0.0;
        }
    }
    if mode == 0.0 {
        water(p, &liquid, fifth as f32);
    } else {
        mud(p, &liquid, threshold, fifth);
    }
}

fn water(p: &mut Planes, liquid: &[f32], intensity: f32) {
    let (w, h) = (p.w, p.h);
    let bytes: Vec<u8> = liquid
        .iter()
        .map(|v| (v * 255.0).clamp(0.0, 255.0) as u8)
        .collect();
    let edges = canny(&bytes, w, h, 50.0, 150.0);
    let dist: Vec<f32> = chamfer_distance(&edges, w, h)
        .into_iter()
        .map(|d| d.min(20.0))
        .collect();
    // cv2.blur(3×3) then astype(uint8): truncation.
    let dist: Vec<u8> = box3(&dist, w, h).into_iter().map(|v| v as u8).collect();
    let dist = equalize_hist(&dist);
    let emboss: [f32; 9] = [-2.0, -1.0, 0.0, -1.0, 1.0, 1.0, 0.0, 1.0, 2.0];
    let dist_f: Vec<f32> = dist.iter().map(|&v| f32::from(v)).collect();
    // filter2D to CV_8U saturates (rounds and clamps); cv2.blur on u8 rounds.
    let embossed: Vec<f32> = ops::filter2d(&dist_f, w, h, &emboss, 3)
        .into_iter()
        .map(|v| v.round().clamp(0.0, 255.0))
        .collect();
    let blurred: Vec<f32> = box3(&embossed, w, h).into_iter().map(f32::round).collect();
    // The script multiplies the uint8 liquid layer (not the float one) by the distances.
    let mut m: Vec<f32> = bytes
        .iter()
        .zip(&blurred)
        .map(|(&l, d)| f32::from(l) * d)
        .collect();
    let max = m.iter().copied().fold(0.0f32, f32::max);
    // (The script divides by the maximum unguarded; an all-zero layer means no water.)
    let scale = if max > 0.0 { intensity / max } else { 0.0 };
    m.iter_mut().for_each(|v| *v *= scale);
    // Pale turquoise (175, 238, 238) as in the script's channel order for RGB input.
    let colour = [175.0 / 255.0, 238.0 / 255.0, 238.0 / 255.0];
    for (c, col) in p.c.iter_mut().zip(colour) {
        c.iter_mut().zip(&m).for_each(|(v, mv)| *v += mv * col);
    }
}

fn mud(p: &mut Planes, liquid: &[f32], threshold: f32, sigma: f64) {
    let (w, h) = (p.w, p.h);
    let mut m: Vec<f32> = liquid
        .iter()
        .map(|&v| if v > threshold { 1.0 } else { 0.0 })
        .collect();
    ops::gaussian_plane(&mut m, w, h, sigma);
    m.iter_mut().for_each(|v| {
        if *v < 0.8 {
            *v = 0.0;
        }
    });
    // Mud brown (63, 42, 20).
    let colour = [63.0 / 255.0, 42.0 / 255.0, 20.0 / 255.0];
    for (c, col) in p.c.iter_mut().zip(colour) {
        c.iter_mut()
            .zip(&m)
            .for_each(|(v, mv)| *v = *v * (1.0 - mv) + col * mv);
    }
}

/// 3×3 box mean, OpenCV's `BORDER_REFLECT_101`.
fn box3(plane: &[f32], w: usize, h: usize) -> Vec<f32> {
    let k = [1.0f32 / 3.0; 3];
    let mut out = plane.to_vec();
    ops::separable(&mut out, w, h, &k, &k, Border::Mirror);
    out
}

/// Canny edges of a u8 image: 255 on edges, 0 elsewhere.
fn canny(img: &[u8], w: usize, h: usize, low: f32, high: f32) -> Vec<u8> {
    let px = |x: i64, y: i64| -> f32 {
        f32::from(
            img[ops::map_index(y, h, Border::Nearest) * w + ops::map_index(x, w, Border::Nearest)],
        )
    };
    let n = w * h;
    let mut gx = vec![0.0f32; n];
    let mut gy = vec![0.0f32; n];
    let mut mag = vec![0.0f32; n];
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let k = y as usize * w + x as usize;
            gx[k] = (px(x + 1, y - 1) + 2.0 * px(x + 1, y) + px(x + 1, y + 1))
                - (px(x - 1, y - 1) + 2.0 * px(x - 1, y) + px(x - 1, y + 1));
            gy[k] = (px(x - 1, y + 1) + 2.0 * px(x, y + 1) + px(x + 1, y + 1))
                - (px(x - 1, y - 1) + 2.0 * px(x, y - 1) + px(x + 1, y - 1));
            mag[k] = gx[k].abs() + gy[k].abs();
        }
    }
    let m = |x: i64, y: i64| -> f32 {
        if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
            0.0
        } else {
            mag[y as usize * w + x as usize]
        }
    };
    // 0 = not an edge, 1 = weak candidate, 2 = strong.
    let mut class = vec![0u8; n];
    let tan22 = (22.5f32).to_radians().tan();
    let tan67 = (67.5f32).to_radians().tan();
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let k = y as usize * w + x as usize;
            let v = mag[k];
            if v <= low {
                continue;
            }
            let (ax, ay) = (gx[k].abs(), gy[k].abs());
            let is_max = if ay < ax * tan22 {
                v > m(x - 1, y) && v >= m(x + 1, y)
            } else if ay > ax * tan67 {
                v > m(x, y - 1) && v >= m(x, y + 1)
            } else {
                let s = if (gx[k] < 0.0) != (gy[k] < 0.0) {
                    -1
                } else {
                    1
                };
                v > m(x - s, y - 1) && v > m(x + s, y + 1)
            };
            if is_max {
                class[k] = if v > high { 2 } else { 1 };
            }
        }
    }
    // Hysteresis: keep weak pixels connected (8-neighbourhood) to strong ones.
    let mut edges = vec![0u8; n];
    let mut stack: Vec<usize> = (0..n).filter(|&k| class[k] == 2).collect();
    for &k in &stack {
        edges[k] = 255;
    }
    while let Some(k) = stack.pop() {
        let (x, y) = ((k % w) as i64, (k / w) as i64);
        for dy in -1..=1 {
            for dx in -1..=1 {
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                    continue;
                }
                let j = ny as usize * w + nx as usize;
                if class[j] == 1 && edges[j] == 0 {
                    edges[j] = 255;
                    stack.push(j);
                }
            }
        }
    }
    edges
}

/// Distance of every pixel to the nearest edge pixel (`edges != 0`; OpenCV's input is
/// `255 − edges`, whose zeros are the edges), with OpenCV's 5×5 chamfer weights for
/// `DIST_L2`. Without any edge every distance is large (then truncated at 20).
fn chamfer_distance(edges: &[u8], w: usize, h: usize) -> Vec<f32> {
    const A: f32 = 1.0;
    const B: f32 = 1.4;
    const C: f32 = 2.1969;
    const FAR: f32 = 1.0e6;
    let mut d: Vec<f32> = edges
        .iter()
        .map(|&e| if e != 0 { 0.0 } else { FAR })
        .collect();
    let forward: [(i64, i64, f32); 8] = [
        (-1, 0, A),
        (0, -1, A),
        (-1, -1, B),
        (1, -1, B),
        (-1, -2, C),
        (1, -2, C),
        (-2, -1, C),
        (2, -1, C),
    ];
    let (wi, hi) = (w as i64, h as i64);
    let mut pass = |order: &mut dyn Iterator<Item = (i64, i64)>, sign: i64| {
        for (x, y) in order {
            let k = (y * wi + x) as usize;
            let mut best = d[k];
            for &(dx, dy, wt) in &forward {
                let (nx, ny) = (x + sign * dx, y + sign * dy);
                if nx >= 0 && ny >= 0 && nx < wi && ny < hi {
                    best = best.min(d[(ny * wi + nx) as usize] + wt);
                }
            }
            d[k] = best;
        }
    };
    pass(&mut (0..hi).flat_map(|y| (0..wi).map(move |x| (x, y))), 1);
    pass(
        &mut (0..hi)
            .rev()
            .flat_map(|y| (0..wi).rev().map(move |x| (x, y))),
        -1,
    );
    d
}

/// OpenCV `equalizeHist`.
fn equalize_hist(img: &[u8]) -> Vec<u8> {
    let mut hist = [0usize; 256];
    for &v in img {
        hist[usize::from(v)] += 1;
    }
    let total = img.len();
    let Some(first) = hist.iter().position(|&c| c > 0) else {
        return img.to_vec();
    };
    if hist[first] == total {
        return vec![first as u8; total];
    }
    let scale = 255.0 / (total - hist[first]) as f64;
    let mut lut = [0u8; 256];
    let mut sum = 0usize;
    for i in first + 1..256 {
        sum += hist[i];
        lut[i] = (sum as f64 * scale).round().clamp(0.0, 255.0) as u8;
    }
    img.iter().map(|&v| lut[usize::from(v)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chamfer_distances_are_opencv_l2_mask5() {
        let (w, h) = (7, 5);
        let mut edges = vec![0u8; w * h];
        edges[2 * w + 3] = 255;
        let d = chamfer_distance(&edges, w, h);
        assert_eq!(d[2 * w + 3], 0.0);
        assert_eq!(d[2 * w + 4], 1.0);
        assert!((d[3 * w + 4] - 1.4).abs() < 1e-6);
        assert!((d[4 * w + 4] - 2.1969).abs() < 1e-6);
        assert!((d[2 * w + 6] - 3.0).abs() < 1e-6);
    }

    #[test]
    fn canny_finds_a_step_edge() {
        let (w, h) = (16, 8);
        let img: Vec<u8> = (0..w * h)
            .map(|k| if k % w < 8 { 20 } else { 220 })
            .collect();
        let e = canny(&img, w, h, 50.0, 150.0);
        for y in 0..h {
            let row = &e[y * w..y * w + w];
            assert_eq!(
                row.iter().filter(|&&v| v != 0).count(),
                1,
                "row {y}: {row:?}"
            );
            assert!(row[7] != 0 || row[8] != 0);
        }
    }

    #[test]
    fn equalize_spreads_to_full_range() {
        let img = [10u8, 10, 20, 30];
        assert_eq!(equalize_hist(&img), [0, 0, 128, 255]);
    }
}
