//! Where every neuron sits in the 3D map, and the inverse (picking): pure functions, no Bevy
//! world. Slabs lie flat (normal +Y) one after another along +X in network order; a layer's
//! neurons fill a near-square grid row by row, row 0 at the back (−Z) so that on screen it
//! reads like a page: index 0 top left.

use bevy::math::{Ray3d, Vec3};

/// Side of one cell in world units.
pub const CELL: f32 = 1.0;
/// Space between two slabs, in cells.
pub const SLAB_GAP: f32 = 3.0;

/// One layer's slab.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slab {
    /// Neurons.
    pub neurons: usize,
    /// Cells per row.
    pub cols: usize,
    /// Rows.
    pub rows: usize,
    /// World position of the corner of cell 0 (the slab's back left corner).
    pub origin: Vec3,
}

/// Columns and rows of a near-square grid holding `n` cells (`cols ≥ rows`, `cols − rows ≤ 1`
/// when `n` is a square or one short of a pronic number).
pub fn grid(n: usize) -> (usize, usize) {
    if n == 0 {
        return (1, 1);
    }
    let mut cols = (n as f64).sqrt().ceil() as usize;
    while cols * cols < n {
        cols += 1;
    }
    let rows = n.div_ceil(cols);
    (cols, rows)
}

impl Slab {
    /// Width along X.
    pub fn width(&self) -> f32 {
        self.cols as f32 * CELL
    }

    /// Depth along Z.
    pub fn depth(&self) -> f32 {
        self.rows as f32 * CELL
    }

    /// Column and row of neuron `index`.
    pub fn cell(&self, index: usize) -> (usize, usize) {
        (index % self.cols, index / self.cols)
    }

    /// World centre of neuron `index`'s cell (on the slab plane).
    pub fn centre(&self, index: usize) -> Vec3 {
        let (c, r) = self.cell(index);
        self.origin + Vec3::new((c as f32 + 0.5) * CELL, 0.0, (r as f32 + 0.5) * CELL)
    }

    /// World centre of the whole slab.
    pub fn middle(&self) -> Vec3 {
        self.origin + Vec3::new(self.width() / 2.0, 0.0, self.depth() / 2.0)
    }

    /// The neuron under a point of the slab plane, if any.
    pub fn index_at(&self, p: Vec3) -> Option<usize> {
        let local = (p - self.origin) / CELL;
        if local.x < 0.0 || local.z < 0.0 {
            return None;
        }
        let (c, r) = (local.x.floor() as usize, local.z.floor() as usize);
        if c >= self.cols || r >= self.rows {
            return None;
        }
        let index = r * self.cols + c;
        (index < self.neurons).then_some(index)
    }

    /// The neuron `dc` columns and `dr` rows away, clamped to the grid and to the last neuron.
    pub fn step(&self, index: usize, dc: isize, dr: isize) -> usize {
        let (c, r) = self.cell(index.min(self.neurons.saturating_sub(1)));
        let c = (c as isize + dc).clamp(0, self.cols as isize - 1) as usize;
        let r = (r as isize + dr).clamp(0, self.rows as isize - 1) as usize;
        (r * self.cols + c).min(self.neurons.saturating_sub(1))
    }
}

/// Every layer's slab, in network order, centred on the origin as a whole.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    /// One per recorded layer.
    pub slabs: Vec<Slab>,
}

impl Layout {
    /// Lays out layers of these sizes.
    pub fn new(neurons: &[usize]) -> Layout {
        let mut x = 0.0;
        let mut slabs = Vec::with_capacity(neurons.len());
        for &n in neurons {
            let (cols, rows) = grid(n);
            slabs.push(Slab {
                neurons: n,
                cols,
                rows,
                origin: Vec3::new(x, 0.0, -(rows as f32) * CELL / 2.0),
            });
            x += cols as f32 * CELL + SLAB_GAP * CELL;
        }
        let total = (x - SLAB_GAP * CELL).max(0.0);
        for s in &mut slabs {
            s.origin.x -= total / 2.0;
        }
        Layout { slabs }
    }

    /// The half extents of everything (x: half the total width, z: half the deepest slab).
    pub fn half_extent(&self) -> (f32, f32) {
        let w = match (self.slabs.first(), self.slabs.last()) {
            (Some(a), Some(b)) => (b.origin.x + b.width() - a.origin.x) / 2.0,
            _ => 1.0,
        };
        let d = self
            .slabs
            .iter()
            .map(|s| s.depth() / 2.0)
            .fold(1.0, f32::max);
        (w, d)
    }

    /// The layer and neuron a ray hits first on the slab plane (y = 0).
    pub fn pick(&self, ray: Ray3d) -> Option<(usize, usize)> {
        let p = ray_plane(ray)?;
        self.slabs
            .iter()
            .enumerate()
            .find_map(|(l, s)| s.index_at(p).map(|i| (l, i)))
    }

    /// As [`Layout::pick`], with each cell standing `lift(layer, neuron)` (at most `top`)
    /// high above the slab (a box from the plane up, as the map draws an extruded cell): the
    /// nearest box the ray enters, so the top of a tall cell picks that cell and not the one
    /// behind its foot. Only the slabs whose whole box the ray enters are searched cell by cell.
    pub fn pick_raised(
        &self,
        ray: Ray3d,
        top: f32,
        lift: impl Fn(usize, usize) -> f32,
    ) -> Option<(usize, usize)> {
        let mut best: Option<(f32, usize, usize)> = None;
        for (l, s) in self.slabs.iter().enumerate() {
            let whole = Vec3::new(s.width(), top.max(0.0), s.depth());
            if ray_box(ray, s.origin, s.origin + whole).is_none() {
                continue;
            }
            for i in 0..s.neurons {
                let (c, r) = s.cell(i);
                let min = s.origin + Vec3::new(c as f32 * CELL, 0.0, r as f32 * CELL);
                let max = min + Vec3::new(CELL, lift(l, i).max(0.0), CELL);
                if let Some(t) = ray_box(ray, min, max)
                    && best.is_none_or(|(b, _, _)| t < b)
                {
                    best = Some((t, l, i));
                }
            }
        }
        best.map(|(_, l, i)| (l, i))
    }
}

/// How far along `ray` it enters the box `min..max` (0 if it starts inside), if it does;
/// a box of no height is its floor.
fn ray_box(ray: Ray3d, min: Vec3, max: Vec3) -> Option<f32> {
    let o = ray.origin.to_array();
    let d = ray.direction.as_vec3().to_array();
    let (lo, hi) = (min.to_array(), max.to_array());
    let (mut near, mut far) = (0.0_f32, f32::INFINITY);
    for k in 0..3 {
        if d[k].abs() < 1e-9 {
            if o[k] < lo[k] || o[k] > hi[k] {
                return None;
            }
            continue;
        }
        let (a, b) = ((lo[k] - o[k]) / d[k], (hi[k] - o[k]) / d[k]);
        near = near.max(a.min(b));
        far = far.min(a.max(b));
        if near > far {
            return None;
        }
    }
    Some(near)
}

/// Where a ray meets the plane y = 0 in front of its origin.
pub fn ray_plane(ray: Ray3d) -> Option<Vec3> {
    let d = ray.direction.as_vec3();
    if d.y.abs() < 1e-6 {
        return None;
    }
    let t = -ray.origin.y / d.y;
    (t > 0.0).then(|| ray.origin + d * t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bevy::math::Dir3;

    #[test]
    fn grids_are_near_square_and_hold_everything() {
        for n in [1, 2, 3, 4, 5, 10, 32, 64, 100, 512, 1000, 100_000] {
            let (c, r) = grid(n);
            assert!(c * r >= n, "{n}: {c}×{r}");
            assert!(c >= r && c - r <= 1, "{n}: {c}×{r}");
            assert!(c * (r - 1) < n, "{n}: a whole empty row in {c}×{r}");
        }
        assert_eq!(grid(64), (8, 8));
        assert_eq!(grid(10), (4, 3));
        assert_eq!(grid(0), (1, 1));
    }

    #[test]
    fn slabs_follow_network_order_without_overlap() {
        let layout = Layout::new(&[32, 64, 10]);
        for pair in layout.slabs.windows(2) {
            assert!(pair[0].origin.x + pair[0].width() + SLAB_GAP * CELL - pair[1].origin.x < 1e-4);
        }
        // Centred as a whole.
        let first = layout.slabs[0].origin.x;
        let last = layout.slabs[2].origin.x + layout.slabs[2].width();
        assert!((first + last).abs() < 1e-4);
    }

    #[test]
    fn every_cell_centre_picks_its_own_neuron() {
        let layout = Layout::new(&[7, 64, 10]);
        for (l, s) in layout.slabs.iter().enumerate() {
            for i in 0..s.neurons {
                let c = s.centre(i);
                let ray = Ray3d::new(
                    c + Vec3::new(3.0, 20.0, 5.0),
                    Dir3::new(-Vec3::new(3.0, 20.0, 5.0)).expect("dir"),
                );
                assert_eq!(layout.pick(ray), Some((l, i)));
            }
        }
        // Beside every slab, or on the padding after the last neuron: nothing.
        let s = layout.slabs[0];
        let pad = s.origin + Vec3::new(s.width() - 0.5, 0.0, s.depth() - 0.5);
        assert_eq!(s.index_at(pad), None);
        let down = Dir3::NEG_Y;
        assert_eq!(
            layout.pick(Ray3d::new(Vec3::new(0.0, 5.0, 100.0), down)),
            None
        );
        // Looking away from the plane: nothing.
        assert_eq!(
            layout.pick(Ray3d::new(Vec3::new(0.0, 5.0, 0.0), Dir3::Y)),
            None
        );
    }

    #[test]
    fn raised_cells_pick_by_their_tops_and_sides() {
        let layout = Layout::new(&[4]);
        let s = layout.slabs[0]; // 2×2
        // Looking down at a slant onto the top of cell 2 (back left is 0, front left 2):
        // flat, the ray lands past it on cell 0; raised, cell 2's top is in the way.
        let top = s.centre(2) + Vec3::Y * 3.0;
        let dir = Vec3::new(0.0, -1.0, -0.3).normalize();
        let ray = Ray3d::new(top - dir * 10.0, Dir3::new(dir).expect("dir"));
        assert_eq!(layout.pick(ray), Some((0, 0)));
        assert_eq!(
            layout.pick_raised(ray, 3.0, |_, i| if i == 2 { 3.0 } else { 0.0 }),
            Some((0, 2))
        );
        // With nothing raised, the same as the flat pick, cell by cell.
        for i in 0..4 {
            let c = s.centre(i);
            let ray = Ray3d::new(
                c + Vec3::new(1.0, 8.0, 2.0),
                Dir3::new(-Vec3::new(1.0, 8.0, 2.0)).expect("dir"),
            );
            assert_eq!(layout.pick_raised(ray, 0.0, |_, _| 0.0), Some((0, i)));
        }
        // Several slabs: the ones the ray misses are skipped, the one it meets is searched.
        let two = Layout::new(&[4, 9]);
        for (l, s) in two.slabs.iter().enumerate() {
            for i in 0..s.neurons {
                let from = s.centre(i) + Vec3::new(-1.0, 8.0, 1.5);
                let ray = Ray3d::new(from, Dir3::new(s.centre(i) - from).expect("dir"));
                assert_eq!(two.pick_raised(ray, 3.0, |_, _| 0.0), Some((l, i)));
            }
        }
        // A ray level with the slab but beside it, and one pointing away: nothing.
        let beside = Ray3d::new(Vec3::new(0.0, 5.0, 100.0), Dir3::X);
        assert_eq!(layout.pick_raised(beside, 3.0, |_, _| 3.0), None);
        let away = Ray3d::new(s.centre(0) + Vec3::Y * 5.0, Dir3::Y);
        assert_eq!(layout.pick_raised(away, 3.0, |_, _| 3.0), None);
    }

    #[test]
    fn steps_stay_in_the_grid() {
        let s = Layout::new(&[10]).slabs[0];
        assert_eq!(s.step(0, -1, 0), 0);
        assert_eq!(s.step(0, 1, 0), 1);
        assert_eq!(s.step(3, 1, 0), 3);
        assert_eq!(s.step(1, 0, 1), 5);
        // Row 2 holds only 8 and 9: down from 3 lands on the last neuron.
        assert_eq!(s.step(7, 0, 1), 9);
        assert_eq!(s.step(5, 0, -1), 1);
    }
}
