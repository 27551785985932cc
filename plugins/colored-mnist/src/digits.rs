//! Procedural stand-in for MNIST handwritten digits.
//!
//! The colored-MNIST benchmark needs 28×28 grey digits. When the user has no
//! MNIST files, this module draws "procedural MNIST stand-in" digits instead, so
//! the benchmark still runs end to end. They are not MNIST and must be named as a
//! stand-in wherever they are used.
//!
//! Each class has one to four stroke skeletons (polylines and quadratic/cubic
//! Bézier curves, written as SVG-like paths). Per image, every control point
//! is jittered, then the flattened strokes get a random aspect, slant, rotation
//! and scale, and are translated so their centre of mass lands near the image
//! centre (MNIST digits are size-normalised to about 20×20 px and centred by
//! centre of mass in 28×28). Strokes are rasterised anti-aliased from the
//! distance to the nearest segment, with a random pen width (about 2–3.5 px) and
//! peak intensity (200–255): white ink on black, like MNIST.
//!
//! Generation is deterministic per (class, seed, index): a small SplitMix64
//! generator is seeded from those three values and shares no state. Rendering
//! only visits pixels near each segment, so one core produces well over tens of
//! thousands of images per second in release mode.

/// Side of a digit image.
pub(crate) const SIDE: usize = 28;

/// Number of line segments a Bézier piece is flattened into.
const CURVE_STEPS: usize = 10;

/// SplitMix64 finaliser: a good 64-bit mixing function.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Small deterministic generator (SplitMix64), one per image.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(class: u8, seed: u64, index: u64) -> Self {
        let a = mix64(seed ^ 0x6A09_E667_F3BC_C908);
        let b = mix64(a ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Self(mix64(
            b ^ u64::from(class).wrapping_mul(0xD1B5_4A32_D192_ED03),
        ))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        // 24 random bits map exactly onto f32's mantissa.
        (self.next_u64() >> 40) as f32 * (1.0 / 16_777_216.0)
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Triangular in (-a, a): denser near zero than a uniform draw.
    fn tri(&mut self, a: f32) -> f32 {
        a * (self.unit() - self.unit())
    }
}

/// Flattens strokes into line segments.
#[derive(Debug, Default)]
struct Pen {
    cur: [f32; 2],
    start: [f32; 2],
    /// Segments as `[x0, y0, x1, y1]`.
    segs: Vec<[f32; 4]>,
}

impl Pen {
    fn push(&mut self, p: [f32; 2]) {
        self.segs.push([self.cur[0], self.cur[1], p[0], p[1]]);
        self.cur = p;
    }

    /// Applies one path command (see [`SKELETONS`]) given its points.
    fn draw(&mut self, op: &str, pts: &[[f32; 2]], rng: &mut Rng, jitter: f32) {
        match (op, pts) {
            ("M", &[p]) => (self.cur, self.start) = (p, p),
            ("L", &[p]) => self.push(p),
            ("C", &[a, b, p]) => self.cubic(a, b, p),
            ("Q", &[c, p]) => {
                // The equivalent cubic.
                let to_c = |a: [f32; 2]| {
                    [
                        a[0] + (c[0] - a[0]) * 2.0 / 3.0,
                        a[1] + (c[1] - a[1]) * 2.0 / 3.0,
                    ]
                };
                self.cubic(to_c(self.cur), to_c(p), p);
            }
            ("Z", &[a, b]) => {
                // Back to near the start: loops may overshoot or stay open a little.
                let j = 0.3 * jitter;
                let end = [self.start[0] + rng.tri(j), self.start[1] + rng.tri(j)];
                self.cubic(a, b, end);
            }
            _ => {}
        }
    }

    fn cubic(&mut self, c1: [f32; 2], c2: [f32; 2], p3: [f32; 2]) {
        let p0 = self.cur;
        for i in 1..=CURVE_STEPS {
            let t = i as f32 / CURVE_STEPS as f32;
            let u = 1.0 - t;
            let (a, b, c, d) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
            self.push([
                a * p0[0] + b * c1[0] + c * c2[0] + d * p3[0],
                a * p0[1] + b * c1[1] + c * c2[1] + d * p3[1],
            ]);
        }
    }
}

/// Per class, equally likely skeleton variants (a repeated entry counts twice):
/// SVG-like paths in a 100×100 box
/// with y pointing down. `Mx y` starts a stroke, `Lx y` draws a line, `Qcx cy x y`
/// a quadratic and `Cax ay bx by x y` a cubic Bézier, and `Zax ay bx by` a cubic
/// back to the stroke's start (closing a loop).
const SKELETONS: [&[&str]; 10] = [
    &["M50 6 C66 6 79 27 79 50 C79 73 66 94 50 94 C34 94 21 73 21 50 Z21 27 34 6"],
    &[
        "M50 5 L50 95",
        "M34 24 L54 5 L54 95",
        "M34 24 L54 5 L54 95 M34 95 L74 95",
    ],
    &[
        "M22 26 C26 3 74 2 76 27 C77 50 42 67 20 93 L82 91",
        // Small loop at the bottom left before the base.
        "M22 26 C26 3 74 2 76 27 C77 50 42 67 26 84 C14 98 38 100 42 86 C44 78 30 80 36 90 L82 92",
    ],
    &[
        "M24 17 C40 0 78 3 74 26 C72 42 55 47 42 48 C62 48 82 60 78 76 C74 96 36 100 20 84",
        "M24 17 C40 0 78 3 74 26 C72 42 55 47 42 48 C62 48 82 60 78 76 C74 96 36 100 20 84",
        "M24 8 L74 8 L44 42 C70 40 82 56 78 74 C74 96 36 100 20 84",
    ],
    // Closed (up the stem, down the diagonal, across) and open.
    &[
        "M64 95 L64 5 L18 64 L84 64",
        "M26 5 L22 60 L82 60 M64 22 L64 95",
    ],
    &[
        "M76 8 L30 8 L27 45 C48 32 80 38 78 66 C76 94 36 100 20 84",
        "M30 8 L27 45 C48 32 80 38 78 66 C76 94 36 100 20 84 M30 8 L76 8",
    ],
    &[
        "M70 6 C42 12 22 45 24 70 C26 98 74 98 74 70 C74 46 36 44 25 64",
        "M64 5 Q30 30 26 70 C26 98 74 98 74 70 C74 46 36 44 25 64",
    ],
    &[
        "M20 10 L80 10 Q60 45 42 95",
        "M20 10 L80 10 L46 95",
        "M20 10 L80 10 Q60 45 42 95 M36 52 L76 52",
        "M20 10 L80 10 L46 95 M36 52 L76 52",
    ],
    &[
        "M50 48 C20 38 22 6 50 6 C78 6 80 38 50 48 C16 60 20 95 50 95 Z82 95 84 60",
        "M50 48 C20 38 22 6 50 6 C78 6 80 38 50 48 C16 60 20 95 50 95 Z82 95 84 60",
        "M50 6 C76 6 76 46 50 46 Z24 46 24 6 M50 46 C82 46 82 95 50 95 Z18 95 18 46",
    ],
    &[
        "M74 30 C70 2 26 4 26 30 C26 54 70 54 74 30 L70 95",
        "M74 30 C70 2 26 4 26 30 C26 54 70 54 74 30 C76 70 66 96 36 92",
    ],
];

/// How many numbers a path command takes.
fn arity(op: &str) -> Option<usize> {
    match op {
        "M" | "L" => Some(2),
        "Q" | "Z" => Some(4),
        "C" => Some(6),
        _ => None,
    }
}

/// Splits a path token into its command letter (if any) and number.
fn split_token(tok: &str) -> (Option<&str>, &str) {
    if tok.starts_with(|c: char| c.is_ascii_alphabetic()) {
        let (op, num) = tok.split_at(1);
        (Some(op), num)
    } else {
        (None, tok)
    }
}

/// Draws a random skeleton of `class` (0..=9) in the unit box, every point
/// moved by up to `jitter` in x and y, and returns its segments.
fn skeleton(class: u8, rng: &mut Rng, jitter: f32) -> Vec<[f32; 4]> {
    let variants = SKELETONS[usize::from(class % 10)];
    let pick = ((rng.unit() * variants.len() as f32) as usize).min(variants.len() - 1);
    let mut pen = Pen {
        segs: Vec::with_capacity(64),
        ..Pen::default()
    };
    let (mut op, mut nums, mut pts) = ("M", Vec::new(), Vec::new());
    for tok in variants
        .get(pick)
        .copied()
        .unwrap_or_default()
        .split_ascii_whitespace()
    {
        let (new_op, num) = split_token(tok);
        if let Some(new_op) = new_op {
            op = new_op;
        }
        nums.extend(num.parse::<u8>().map(|x| f32::from(x) / 100.0));
        if let &[x, y] = nums.as_slice() {
            pts.push([x + rng.tri(jitter), y + rng.tri(jitter)]);
            nums.clear();
        }
        if arity(op) == Some(2 * pts.len()) {
            pen.draw(op, &pts, rng, jitter);
            pts.clear();
        }
    }
    pen.segs
}

/// One 28×28 grey digit, row-major, 0 = background, 255 = full ink (MNIST
/// convention: white strokes on black). A procedural MNIST stand-in.
pub(crate) fn render_digit(class: u8, seed: u64, index: u64) -> [u8; SIDE * SIDE] {
    let class = class % 10;
    let mut rng = Rng::new(class, seed, index);
    let jitter = rng.range(0.04, 0.06);
    let mut segs = skeleton(class, &mut rng, jitter);

    // Pen and global shape parameters.
    // A bare "1" has little ink; real ones tend to be written bolder and taller.
    let (slim, mut half_width) = if class == 1 {
        (0.9, rng.range(1.3, 1.7))
    } else {
        (0.75, rng.range(0.9, 1.5))
    };
    let peak = rng.range(200.0, 255.0);
    let aspect = rng.range(0.8, 1.2);
    let slant = rng.tri(0.3) + rng.tri(0.1);
    let angle = rng.tri(12.0_f32.to_radians());
    let (sin, cos) = angle.sin_cos();

    // Aspect, slant, rotation about the box centre.
    let affine = |x: f32, y: f32| {
        let (x, y) = ((x - 0.5) * aspect, y - 0.5);
        let x = x - slant * y;
        (cos * x - sin * y, sin * x + cos * y)
    };
    let (mut min, mut max) = ([f32::MAX; 2], [f32::MIN; 2]);
    for s in &mut segs {
        let (x0, y0) = affine(s[0], s[1]);
        let (x1, y1) = affine(s[2], s[3]);
        *s = [x0, y0, x1, y1];
        for (x, y) in [(x0, y0), (x1, y1)] {
            min = [min[0].min(x), min[1].min(y)];
            max = [max[0].max(x), max[1].max(y)];
        }
    }

    // Scale so the ink's longest side is 15–20 px.
    let ink_side = rng.range(slim, 1.0) * 20.0;
    let extent = (max[0] - min[0]).max(max[1] - min[1]).max(1e-3);
    let scale = (ink_side - 2.0 * half_width).max(2.0) / extent;

    // Centre of mass of the skeleton (segments weighted by length).
    let (mut mx, mut my, mut total) = (0.0_f32, 0.0_f32, 0.0_f32);
    for s in &segs {
        let len = (s[2] - s[0]).hypot(s[3] - s[1]);
        mx += len * (s[0] + s[2]) * 0.5;
        my += len * (s[1] + s[3]) * 0.5;
        total += len;
    }
    let total = total.max(1e-6);
    let centre = SIDE as f32 * 0.5;
    let mut shift = [
        centre + rng.tri(2.0) - scale * mx / total,
        centre + rng.tri(2.0) - scale * my / total,
    ];
    // Keep the ink at least 1 px away from every border.
    let (lo, hi) = (1.0 + half_width, SIDE as f32 - 1.0 - half_width);
    for k in 0..2 {
        let (a, b) = (scale * min[k] + shift[k], scale * max[k] + shift[k]);
        if a < lo {
            shift[k] += lo - a;
        } else if b > hi {
            shift[k] -= (b - hi).min(a - lo);
        }
    }
    for s in &mut segs {
        *s = [
            s[0] * scale + shift[0],
            s[1] * scale + shift[1],
            s[2] * scale + shift[0],
            s[3] * scale + shift[1],
        ];
    }
    let mut img = rasterise(&segs, half_width, peak);
    // Guarantee a minimum of ink (about 5% of the image) with a bolder pen.
    for _ in 0..3 {
        if img.iter().filter(|&&v| v > 150).count() >= 42 {
            break;
        }
        half_width += 0.2;
        img = rasterise(&segs, half_width, peak);
    }
    img
}

/// Anti-aliased rendering: intensity falls off linearly over one pixel around
/// the stroke's edge, `clamp(half_width - distance + 0.5, 0, 1) * peak`.
fn rasterise(segs: &[[f32; 4]], half_width: f32, peak: f32) -> [u8; SIDE * SIDE] {
    let mut dist2 = [f32::MAX; SIDE * SIDE];
    let reach = half_width + 0.5;
    let last = (SIDE - 1) as f32;
    for s in segs {
        let [x0, y0, x1, y1] = *s;
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len2 = dx * dx + dy * dy;
        let inv = if len2 > 1e-12 { 1.0 / len2 } else { 0.0 };
        // Pixel (c, r) has its centre at (c + 0.5, r + 0.5).
        let c0 = (x0.min(x1) - reach - 0.5).floor().clamp(0.0, last) as usize;
        let c1 = (x0.max(x1) + reach - 0.5).ceil().clamp(0.0, last) as usize;
        let r0 = (y0.min(y1) - reach - 0.5).floor().clamp(0.0, last) as usize;
        let r1 = (y0.max(y1) + reach - 0.5).ceil().clamp(0.0, last) as usize;
        for r in r0..=r1 {
            let py = r as f32 + 0.5 - y0;
            let row = &mut dist2[r * SIDE..(r + 1) * SIDE];
            for (c, d) in row.iter_mut().enumerate().take(c1 + 1).skip(c0) {
                let px = c as f32 + 0.5 - x0;
                let t = ((px * dx + py * dy) * inv).clamp(0.0, 1.0);
                let (ex, ey) = (px - t * dx, py - t * dy);
                *d = d.min(ex * ex + ey * ey);
            }
        }
    }
    let mut out = [0_u8; SIDE * SIDE];
    for (o, d2) in out.iter_mut().zip(dist2) {
        if d2 < reach * reach {
            let cover = (reach - d2.sqrt()).clamp(0.0, 1.0);
            *o = (cover * peak).round() as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = SIDE * SIDE;

    /// Squared distance, abandoned (returning `best`) once it reaches `best`:
    /// keeps the 1-NN test quick in unoptimised builds.
    fn dist2_below(a: &[u8; N], b: &[u8; N], best: u32) -> u32 {
        let mut sum = 0_u32;
        for (ra, rb) in a.chunks_exact(SIDE).zip(b.chunks_exact(SIDE)) {
            sum += ra
                .iter()
                .zip(rb)
                .map(|(&x, &y)| u32::from(x.abs_diff(y)).pow(2))
                .sum::<u32>();
            if sum >= best {
                return best;
            }
        }
        sum
    }

    #[test]
    fn deterministic_per_seed_and_index() {
        for class in 0..10 {
            assert_eq!(render_digit(class, 7, 3), render_digit(class, 7, 3));
            assert_ne!(render_digit(class, 7, 3), render_digit(class, 7, 4));
            assert_ne!(render_digit(class, 7, 3), render_digit(class, 8, 3));
        }
        assert_eq!(render_digit(13, 1, 2), render_digit(3, 1, 2));
    }

    #[test]
    fn skeletons_are_well_formed() {
        for path in SKELETONS.iter().flat_map(|v| v.iter()) {
            assert!(path.starts_with('M'), "{path}");
            let (mut op, mut n) = ("M", 0);
            for tok in path.split_ascii_whitespace() {
                let (new_op, num) = split_token(tok);
                if let Some(new_op) = new_op {
                    assert!(
                        n % arity(op).unwrap() == 0 && arity(new_op).is_some(),
                        "{path}"
                    );
                    (op, n) = (new_op, 0);
                }
                assert!(num.parse::<u8>().unwrap() <= 100, "{path}");
                n += 1;
            }
            assert!(n > 0 && n % arity(op).unwrap() == 0, "{path}");
        }
    }

    #[test]
    fn ink_amount_and_margins() {
        for class in 0..10 {
            let mut inside = 0;
            for i in 0..200 {
                let img = render_digit(class, 5, i);
                let ink: Vec<(usize, usize)> = (0..N)
                    .filter(|&k| img[k] > 150)
                    .map(|k| (k / SIDE, k % SIDE))
                    .collect();
                let f = ink.len() as f64 / N as f64;
                assert!(
                    (0.05..=0.35).contains(&f),
                    "class {class} index {i}: ink {f}"
                );
                let ok = |v: usize| (1..SIDE - 1).contains(&v);
                inside += usize::from(ink.iter().all(|&(r, c)| ok(r) && ok(c)));
            }
            assert!(
                inside >= 190,
                "class {class}: only {inside}/200 inside the margin"
            );
        }
    }

    #[test]
    fn learnable_but_not_trivial() {
        let (train_n, test_n, nn_train_n) = (2000_u64, 300_u64, 300_u64);
        let mut means = vec![[0.0_f64; N]; 10];
        let mut nn_train = vec![Vec::new(); 10];
        for class in 0..10_u8 {
            for i in 0..train_n {
                let img = render_digit(class, 1, i);
                for (m, &v) in means[usize::from(class)].iter_mut().zip(&img) {
                    *m += f64::from(v) / train_n as f64;
                }
                if i < nn_train_n {
                    nn_train[usize::from(class)].push(img);
                }
            }
        }
        let test: Vec<(usize, [u8; N])> = (0..10_u8)
            .flat_map(|c| (0..test_n).map(move |i| (usize::from(c), render_digit(c, 2, i))))
            .collect();

        // Nearest class mean.
        let mean_dist = |m: &[f64; N], img: &[u8; N]| -> f64 {
            m.iter()
                .zip(img)
                .map(|(&a, &b)| (a - f64::from(b)).powi(2))
                .sum()
        };
        let ncm_pred: Vec<usize> = test
            .iter()
            .map(|(_, img)| {
                let d: Vec<f64> = means.iter().map(|m| mean_dist(m, img)).collect();
                (0..10).min_by(|&a, &b| d[a].total_cmp(&d[b])).unwrap()
            })
            .collect();
        let ncm_hits = test
            .iter()
            .zip(&ncm_pred)
            .filter(|((c, _), p)| c == *p)
            .count();
        let ncm = ncm_hits as f64 / test.len() as f64;

        // 1-NN on 300 train and 50 test images per class. Scanning the
        // nearest-mean class first gives a tight bound early (same result).
        let (mut nn_hits, mut nn_total) = (0_u32, 0_u32);
        for ((class, img), &pred) in test.iter().zip(&ncm_pred).step_by(6) {
            let (mut best, mut label) = (u32::MAX, usize::MAX);
            for c in (0..10).map(|k| (pred + k) % 10) {
                for t in &nn_train[c] {
                    let d = dist2_below(t, img, best);
                    if d < best {
                        (best, label) = (d, c);
                    }
                }
            }
            nn_hits += u32::from(label == *class);
            nn_total += 1;
        }
        let nn = f64::from(nn_hits) / f64::from(nn_total);
        println!("nearest-class-mean accuracy: {ncm:.3}, 1-NN accuracy: {nn:.3}");
        assert!(
            (0.60..=0.99).contains(&ncm),
            "nearest-class-mean accuracy {ncm}"
        );
        assert!(nn > 0.7, "1-NN accuracy {nn}");
    }

    #[test]
    fn speed() {
        let start = std::time::Instant::now();
        let mut checksum = 0_u64;
        for i in 0..20_000_u64 {
            let img = render_digit((i % 10) as u8, 9, i);
            checksum = checksum.wrapping_add(u64::from(img[14 * SIDE + 14]));
        }
        let rate = 20_000.0 / start.elapsed().as_secs_f64();
        println!("speed: {rate:.0} images/s (checksum {checksum})");
    }

    /// Prints two samples per class as ASCII art, for eyeballing.
    #[test]
    fn ascii_dump() {
        const RAMP: &[u8] = b" .:-=+*#%@";
        for class in 0..10 {
            let (a, b) = (render_digit(class, 3, 0), render_digit(class, 3, 1));
            println!("class {class}:");
            for (ra, rb) in a.chunks(SIDE).zip(b.chunks(SIDE)) {
                let row = |r: &[u8]| -> String {
                    r.iter()
                        .map(|&v| char::from(RAMP[usize::from(v) * 9 / 255]))
                        .collect()
                };
                println!("|{}|  |{}|", row(ra), row(rb));
            }
        }
    }
}
