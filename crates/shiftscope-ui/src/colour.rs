//! Value → colour: viridis for sequential measures, a blue–white–red map for signed ones. The
//! same polynomials run in the viewer's slab shader (`slab.wgsl`); these copies draw the
//! legend and the live channel maps, and are what the tests check. Colours are sRGB in [0, 1].

/// Which map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColourMap {
    /// Viridis (perceptually uniform, dark → bright).
    Sequential,
    /// Blue (negative) – white (zero) – red (positive).
    Diverging,
}

impl ColourMap {
    /// Its number in the shader.
    pub fn shader_id(self) -> f32 {
        match self {
            ColourMap::Sequential => 0.0,
            ColourMap::Diverging => 1.0,
        }
    }

    /// The colour at `t` in [0, 1] (clamped).
    pub fn at(self, t: f32) -> [f32; 3] {
        let t = t.clamp(0.0, 1.0);
        match self {
            ColourMap::Sequential => viridis(t),
            ColourMap::Diverging => diverging(t),
        }
    }
}

/// Viridis as a degree-6 polynomial fit (Matt Zucker's, max error about 0.003 per channel).
pub fn viridis(t: f32) -> [f32; 3] {
    const C: [[f32; 3]; 7] = [
        [0.277_727_33, 0.005_407_344_5, 0.334_099_8],
        [0.105_093_04, 1.404_613_5, 1.384_590_2],
        [-0.330_861_83, 0.214_847_56, 0.095_095_16],
        [-4.634_230_5, -5.799_101, -19.332_441],
        [6.228_27, 14.179_933, 56.690_55],
        [4.776_385, -13.745_145, -65.353_03],
        [-5.435_456, 4.645_852_6, 26.312_435],
    ];
    let mut out = [0.0; 3];
    for (ch, o) in out.iter_mut().enumerate() {
        let mut v = C[6][ch];
        for k in (0..6).rev() {
            v = C[k][ch] + t * v;
        }
        *o = v.clamp(0.0, 1.0);
    }
    out
}

const BLUE: [f32; 3] = [0.23, 0.30, 0.75];
const WHITE: [f32; 3] = [0.94, 0.94, 0.94];
const RED: [f32; 3] = [0.71, 0.02, 0.15];

/// Blue – white – red, white at 0.5.
pub fn diverging(t: f32) -> [f32; 3] {
    let (a, b, s) = if t < 0.5 {
        (BLUE, WHITE, t * 2.0)
    } else {
        (WHITE, RED, (t - 0.5) * 2.0)
    };
    [0, 1, 2].map(|i| a[i] + (b[i] - a[i]) * s)
}

/// The range a set of values is drawn over: `[min, max]` of the finite ones for a sequential
/// map, `[−m, m]` with `m = max |v|` for a diverging one (zero stays white). `None` when no
/// value is finite.
pub fn range(values: impl IntoIterator<Item = f32>, map: ColourMap) -> Option<(f32, f32)> {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return None;
    }
    Some(match map {
        ColourMap::Sequential => (lo, hi),
        ColourMap::Diverging => {
            let m = lo.abs().max(hi.abs());
            (-m, m)
        }
    })
}

/// Where `v` falls in `range`, in [0, 1]; −1 for an undefined value (drawn grey).
pub fn position(v: f32, (lo, hi): (f32, f32)) -> f32 {
    if !v.is_finite() {
        return -1.0;
    }
    if hi > lo {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f32; 3], b: [f32; 3], eps: f32) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() <= eps)
    }

    #[test]
    fn viridis_matches_its_table_at_the_ends_and_middle() {
        // matplotlib's viridis at 0, 0.5, 1.
        assert!(close(viridis(0.0), [0.267, 0.005, 0.329], 0.02));
        assert!(close(viridis(0.5), [0.128, 0.567, 0.551], 0.02));
        assert!(close(viridis(1.0), [0.993, 0.906, 0.144], 0.02));
        // Monotone in brightness.
        let luma = |c: [f32; 3]| 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
        let mut last = -1.0;
        for i in 0..=20 {
            let l = luma(viridis(i as f32 / 20.0));
            assert!(l > last, "viridis not monotone at {i}");
            last = l;
        }
    }

    #[test]
    fn diverging_is_white_at_zero_and_symmetric() {
        assert!(close(diverging(0.5), WHITE, 1e-6));
        assert!(close(diverging(0.0), BLUE, 1e-6));
        assert!(close(diverging(1.0), RED, 1e-6));
        let r = range([-0.2, 0.5, f32::NAN], ColourMap::Diverging);
        assert_eq!(r, Some((-0.5, 0.5)));
        assert_eq!(position(0.0, (-0.5, 0.5)), 0.5);
    }

    #[test]
    fn ranges_and_positions() {
        assert_eq!(range([f32::NAN], ColourMap::Sequential), None);
        let r = range([0.2, 0.4, f32::INFINITY, 0.3], ColourMap::Sequential);
        assert_eq!(r, Some((0.2, 0.4)));
        assert!((position(0.3, (0.2, 0.4)) - 0.5).abs() < 1e-6);
        assert_eq!(position(f32::NAN, (0.0, 1.0)), -1.0);
        assert_eq!(position(2.0, (0.0, 1.0)), 1.0);
        assert_eq!(position(1.0, (1.0, 1.0)), 0.5);
    }
}
