//! A layer's slab as the GPU draws it: its meshes (the cell tops, and the side walls shown
//! while a measure extrudes), its `Rg32Float` data texture (colour position and extrusion per
//! cell) and [`SlabMaterial`] (`slab.wgsl`), which maps values to colours, lifts extruded
//! cells and outlines the selected and hovered ones. Pure builders; the map's systems
//! (`map.rs`) spawn and update them.

use bevy::asset::RenderAssetUsages;
use bevy::mesh::{Indices, PrimitiveTopology};
use bevy::prelude::*;
use bevy::render::render_resource::{AsBindGroup, Extent3d, TextureDimension, TextureFormat};
use bevy::shader::ShaderRef;
use shiftscope_analysis::NeuronId;

use crate::colour;
use crate::layout::{CELL, Slab};
use crate::session::Shown;

const SHADER: &str = "embedded://shiftscope_viewer/slab.wgsl";

/// The highlight colour of the selected cell (sRGB bytes), for tests that look for it.
pub const HIGHLIGHT: [u8; 3] = [255, 0, 255];

/// A layer's material: its grid, selection and colour map as uniforms, its values as a
/// texture (`r`: colour position in [0, 1] or −1 for undefined, `g`: extrusion in [0, 1]).
#[derive(Asset, TypePath, AsBindGroup, Clone, Debug)]
pub struct SlabMaterial {
    /// Columns, selected index, hovered index (−1: none), colour map.
    #[uniform(0)]
    pub params: Vec4,
    /// Extrusion height, neurons, dimmed (not the selected layer).
    #[uniform(1)]
    pub style: Vec4,
    /// Per-cell values, `cols × rows`, `Rg32Float`.
    #[texture(2, sample_type = "float", filterable = false)]
    pub values: Handle<Image>,
}

impl Material for SlabMaterial {
    fn vertex_shader() -> ShaderRef {
        SHADER.into()
    }
    fn fragment_shader() -> ShaderRef {
        SHADER.into()
    }
}

/// A layer's mesh: one quad per neuron on the slab plane, in slab-local coordinates; each
/// vertex carries its cell's `(column, row)` in `UV_1` for the shader to fetch values with.
pub fn slab_mesh(slab: &Slab) -> Mesh {
    let n = slab.neurons;
    let mut positions = Vec::with_capacity(n * 4);
    let mut uvs = Vec::with_capacity(n * 4);
    let mut cells = Vec::with_capacity(n * 4);
    let mut indices = Vec::with_capacity(n * 6);
    for i in 0..n {
        let (c, r) = slab.cell(i);
        let (x, z) = (c as f32 * CELL, r as f32 * CELL);
        let base = u32::try_from(positions.len()).unwrap_or(u32::MAX);
        positions.extend([
            [x, 0.0, z],
            [x + CELL, 0.0, z],
            [x + CELL, 0.0, z + CELL],
            [x, 0.0, z + CELL],
        ]);
        uvs.extend([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]);
        cells.extend([[c as f32, r as f32]; 4]);
        // Counter-clockwise seen from above (+Y).
        indices.extend([base, base + 3, base + 2, base, base + 2, base + 1]);
    }
    let normals = vec![[0.0, 1.0, 0.0]; positions.len()];
    cells_mesh(positions, normals, uvs, cells, indices)
}

/// A triangle list of cell geometry: positions, normals, `UV_0` within the face, `UV_1` the
/// cell's `(column, row)`.
fn cells_mesh(
    positions: Vec<[f32; 3]>,
    normals: Vec<[f32; 3]>,
    uvs: Vec<[f32; 2]>,
    cells: Vec<[f32; 2]>,
    indices: Vec<u32>,
) -> Mesh {
    Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::RENDER_WORLD,
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, positions)
    .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, normals)
    .with_inserted_attribute(Mesh::ATTRIBUTE_UV_0, uvs)
    .with_inserted_attribute(Mesh::ATTRIBUTE_UV_1, cells)
    .with_inserted_indices(Indices::U32(indices))
}

/// A layer's side walls: four quads per neuron around its cell, in slab-local coordinates,
/// all at height 0. Each vertex's colour says how the shader treats it: `r` 1 on a wall's
/// top edge (lifted with its cell) and 0 on its bottom edge (left on the slab), `g` the
/// wall's shade (the map is unlit, so walls facing different ways get different shades).
/// `UV_0` runs along the wall and up it; `UV_1` is the cell, as on the tops.
pub fn walls_mesh(slab: &Slab) -> Mesh {
    /// Outward normal, the bottom edge's two ends (in cell units, run so that the quad is
    /// counter-clockwise seen from outside), shade.
    type Wall = ([f32; 3], [f32; 2], [f32; 2], f32);
    const WALLS: [Wall; 4] = [
        ([0.0, 0.0, 1.0], [0.0, 1.0], [1.0, 1.0], 0.62),
        ([0.0, 0.0, -1.0], [1.0, 0.0], [0.0, 0.0], 0.62),
        ([1.0, 0.0, 0.0], [1.0, 1.0], [1.0, 0.0], 0.78),
        ([-1.0, 0.0, 0.0], [0.0, 0.0], [0.0, 1.0], 0.78),
    ];
    let n = slab.neurons;
    let mut positions = Vec::with_capacity(n * 16);
    let mut normals = Vec::with_capacity(n * 16);
    let mut colours = Vec::with_capacity(n * 16);
    let mut uvs = Vec::with_capacity(n * 16);
    let mut cells = Vec::with_capacity(n * 16);
    let mut indices = Vec::with_capacity(n * 24);
    for i in 0..n {
        let (c, r) = slab.cell(i);
        let (x, z) = (c as f32 * CELL, r as f32 * CELL);
        for (normal, from, to, shade) in WALLS {
            let base = u32::try_from(positions.len()).unwrap_or(u32::MAX);
            let at = |p: [f32; 2]| [x + p[0] * CELL, 0.0, z + p[1] * CELL];
            // Bottom from, bottom to, top to, top from.
            positions.extend([at(from), at(to), at(to), at(from)]);
            colours.extend([
                [0.0, shade, 0.0, 1.0],
                [0.0, shade, 0.0, 1.0],
                [1.0, shade, 0.0, 1.0],
                [1.0, shade, 0.0, 1.0],
            ]);
            uvs.extend([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]);
            normals.extend([normal; 4]);
            cells.extend([[c as f32, r as f32]; 4]);
            indices.extend([base, base + 1, base + 2, base, base + 2, base + 3]);
        }
    }
    cells_mesh(positions, normals, uvs, cells, indices)
        .with_inserted_attribute(Mesh::ATTRIBUTE_COLOR, colours)
}

/// A slab's data texture, every cell undefined.
pub fn values_image(slab: &Slab) -> Image {
    let texels = slab.cols * slab.rows;
    let data: Vec<u8> = (0..texels)
        .flat_map(|_| [(-1.0f32).to_le_bytes(), 0.0f32.to_le_bytes()])
        .flatten()
        .collect();
    Image::new(
        Extent3d {
            width: u32::try_from(slab.cols).unwrap_or(u32::MAX),
            height: u32::try_from(slab.rows).unwrap_or(u32::MAX),
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        data,
        TextureFormat::Rg32Float,
        RenderAssetUsages::MAIN_WORLD | RenderAssetUsages::RENDER_WORLD,
    )
}

/// A layer's texels: colour position and extrusion per cell, little-endian `f32` pairs.
pub fn pack(slab: &Slab, layer: usize, colour: Option<&Shown>, height: Option<&Shown>) -> Vec<u8> {
    let texels = slab.cols * slab.rows;
    let at = |s: Option<&Shown>, neuron: usize| position(s, NeuronId { layer, neuron });
    let mut out = Vec::with_capacity(texels * 8);
    for i in 0..texels {
        let c = if i < slab.neurons {
            at(colour, i).unwrap_or(-1.0)
        } else {
            -1.0
        };
        let h = at(height, i).unwrap_or(0.0).max(0.0);
        out.extend(c.to_le_bytes());
        out.extend(h.to_le_bytes());
    }
    out
}

/// How far an extruded cell rises at the top of the extrusion measure's range.
pub const EXTRUSION: f32 = 3.0 * CELL;

/// How high neuron `id`'s cell stands: its extrusion value's place in the range, times
/// [`EXTRUSION`], as the shader lifts it; 0 when flat or undefined.
pub fn lift(height: Option<&Shown>, id: NeuronId) -> f32 {
    position(height, id).map_or(0.0, |p| EXTRUSION * p.max(0.0))
}

/// Where neuron `id`'s value sits in the shown measure's range (what the texture holds), if
/// the measure is shown and defined there.
fn position(shown: Option<&Shown>, id: NeuronId) -> Option<f32> {
    let s = shown?;
    let v = *s.values.layers.get(id.layer)?.get(id.neuron)?;
    Some(colour::position(v, s.range?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;
    use crate::session::tests::spurious;

    #[test]
    fn meshes_have_one_quad_per_neuron() {
        let slab = Layout::new(&[10]).slabs[0];
        let mesh = slab_mesh(&slab);
        assert_eq!(mesh.count_vertices(), 40);
        assert_eq!(mesh.indices().map(Indices::len), Some(60));
    }

    fn attribute(mesh: &Mesh, id: bevy::mesh::MeshVertexAttribute) -> &[[f32; 3]] {
        match mesh.attribute(id) {
            Some(bevy::mesh::VertexAttributeValues::Float32x3(v)) => v,
            _ => panic!("no {} attribute", id.name),
        }
    }

    #[test]
    fn walls_face_outwards_and_rise_with_their_cell() {
        let slab = Layout::new(&[5]).slabs[0];
        let mesh = walls_mesh(&slab);
        assert_eq!(mesh.count_vertices(), 5 * 16);
        let Some(Indices::U32(indices)) = mesh.indices() else {
            panic!("u32 indices")
        };
        assert_eq!(indices.len(), 5 * 24);
        let positions = attribute(&mesh, Mesh::ATTRIBUTE_POSITION);
        let normals = attribute(&mesh, Mesh::ATTRIBUTE_NORMAL);
        let Some(bevy::mesh::VertexAttributeValues::Float32x4(colours)) =
            mesh.attribute(Mesh::ATTRIBUTE_COLOR)
        else {
            panic!("vertex colours")
        };
        // Lift the vertices the shader lifts (colour r = 1) by one cell, as an extruded cell.
        let lifted = |i: u32| {
            let i = i as usize;
            Vec3::from(positions[i]) + Vec3::Y * colours[i][0] * CELL
        };
        for (t, tri) in indices.chunks(3).enumerate() {
            let [a, b, c] = [lifted(tri[0]), lifted(tri[1]), lifted(tri[2])];
            let facing = (b - a).cross(c - a).normalize();
            let normal = Vec3::from(normals[tri[0] as usize]);
            assert!(
                facing.dot(normal) > 0.99,
                "triangle {t} faces {facing}, its wall {normal}"
            );
            // Outwards: from the cell's centre towards the wall.
            let cell = t / 8;
            let centre = slab.centre(cell) - slab.origin;
            let middle = (a + b + c) / 3.0;
            assert!(
                (middle - centre).with_y(0.0).dot(normal) > 0.0,
                "triangle {t} of cell {cell} faces inwards"
            );
        }
        // Each wall: two feet on the slab, two top corners that rise.
        for wall in colours.chunks(4) {
            let lifts: Vec<f32> = wall.iter().map(|c| c[0]).collect();
            assert_eq!(lifts, vec![0.0, 0.0, 1.0, 1.0]);
        }
    }

    #[test]
    fn packing_scales_values_and_marks_padding() {
        let slab = Layout::new(&[3]).slabs[0]; // 2×2, one padding cell
        let s = spurious(vec![vec![0.0, f32::NAN, 1.0]]);
        let bytes = pack(&slab, 0, Some(&s), None);
        let f: Vec<f32> = bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(f, vec![0.0, 0.0, -1.0, 0.0, 1.0, 0.0, -1.0, 0.0]);
    }

    #[test]
    fn lift_follows_the_extrusion_values() {
        let s = spurious(vec![vec![0.0, 0.5, 1.0, f32::NAN]]);
        let id = |neuron| NeuronId { layer: 0, neuron };
        assert_eq!(lift(None, id(2)), 0.0);
        assert_eq!(lift(Some(&s), id(0)), 0.0);
        assert!((lift(Some(&s), id(1)) - EXTRUSION / 2.0).abs() < 1e-6);
        assert!((lift(Some(&s), id(2)) - EXTRUSION).abs() < 1e-6);
        // Undefined, or no such neuron: flat.
        assert_eq!(lift(Some(&s), id(3)), 0.0);
        assert_eq!(lift(Some(&s), id(9)), 0.0);
    }
}
