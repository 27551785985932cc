// One layer's slab: a grid of cell quads, and (a second mesh, with vertex colours) their
// side walls, whose top edges rise with the cells. Each vertex carries its cell's (column, row) in
// uv_b; the cell's values come from a data texture (r: colour position in [0, 1] or < 0 for
// undefined, g: extrusion in [0, 1]), uploaded when the measure changes.
#import bevy_pbr::{
    mesh_functions,
    forward_io::{Vertex, VertexOutput},
    view_transformations::position_world_to_clip,
}

// x: columns, y: selected index (−1: none), z: hovered index (−1: none), w: colour map (0 viridis, 1 diverging)
@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> params: vec4<f32>;
// x: extrusion height in world units (0: flat), y: neurons, z: dim (1: not the selected layer, 0: it is)
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var<uniform> style: vec4<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(2) var values: texture_2d<f32>;

fn cell_values(cell: vec2<f32>) -> vec4<f32> {
    return textureLoad(values, vec2<i32>(cell), 0);
}

@vertex
fn vertex(vertex: Vertex) -> VertexOutput {
    var out: VertexOutput;
    let world_from_local = mesh_functions::get_world_from_local(vertex.instance_index);
    let v = cell_values(vertex.uv_b);
    var lift = style.x * max(v.g, 0.0);
#ifdef VERTEX_COLORS
    // A wall (slab.rs walls_mesh): its top edge rises with the cell, its bottom edge stays.
    lift = lift * vertex.color.r;
    out.color = vertex.color;
#endif
    let local = vec4<f32>(vertex.position + vec3<f32>(0.0, lift, 0.0), 1.0);
    out.world_position = mesh_functions::mesh_position_local_to_world(world_from_local, local);
    out.position = position_world_to_clip(out.world_position.xyz);
    out.world_normal = vec3<f32>(0.0, 1.0, 0.0);
    out.uv = vertex.uv;
    out.uv_b = vertex.uv_b;
    return out;
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

fn viridis(t: f32) -> vec3<f32> {
    let c0 = vec3<f32>(0.2777273272234177, 0.005407344544966578, 0.3340998053353061);
    let c1 = vec3<f32>(0.1050930431085774, 1.404613529898575, 1.384590162594685);
    let c2 = vec3<f32>(-0.3308618287255563, 0.214847559468213, 0.09509516302823659);
    let c3 = vec3<f32>(-4.634230498983486, -5.799100973351585, -19.33244095627987);
    let c4 = vec3<f32>(6.228269936347081, 14.17993336680509, 56.69055260068105);
    let c5 = vec3<f32>(4.776384997670288, -13.74514537774601, -65.35303263337234);
    let c6 = vec3<f32>(-5.435455855934631, 4.645852612178535, 26.3124352495832);
    return clamp(c0 + t * (c1 + t * (c2 + t * (c3 + t * (c4 + t * (c5 + t * c6))))), vec3<f32>(0.0), vec3<f32>(1.0));
}

fn diverging(t: f32) -> vec3<f32> {
    let blue = vec3<f32>(0.23, 0.30, 0.75);
    let white = vec3<f32>(0.94, 0.94, 0.94);
    let red = vec3<f32>(0.71, 0.02, 0.15);
    if t < 0.5 {
        return mix(blue, white, t * 2.0);
    }
    return mix(white, red, (t - 0.5) * 2.0);
}

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    let cell = floor(in.uv_b + vec2<f32>(0.5));
    let index = cell.y * params.x + cell.x;
    let v = cell_values(cell);
    var colour: vec3<f32>;
    if v.r < 0.0 {
        colour = vec3<f32>(0.32, 0.32, 0.34);
    } else if params.w > 0.5 {
        colour = diverging(v.r);
    } else {
        colour = viridis(v.r);
    }
    if style.z > 0.5 {
        colour = colour * 0.8;
    }
#ifdef VERTEX_COLORS
    // A wall: its shade, and a dark line along its top and sides (not its foot, so that
    // a low wall is not all line).
    colour = colour * in.color.g;
    let wall_edge = min(min(in.uv.x, 1.0 - in.uv.x), 1.0 - in.uv.y);
    if wall_edge < 0.04 {
        colour = vec3<f32>(0.09, 0.10, 0.12);
    }
    if index == params.y {
        colour = vec3<f32>(1.0, 0.0, 1.0);
    }
    return vec4<f32>(srgb_to_linear(colour), 1.0);
#else
    // Distance to the cell's edge, in cell units; a thin dark gap between cells.
    let edge = min(min(in.uv.x, 1.0 - in.uv.x), min(in.uv.y, 1.0 - in.uv.y));
    if edge < 0.06 {
        colour = vec3<f32>(0.09, 0.10, 0.12);
    }
    if index == params.y && edge < 0.22 {
        colour = vec3<f32>(1.0, 0.0, 1.0);
    } else if index == params.z && edge < 0.14 {
        colour = vec3<f32>(1.0, 1.0, 1.0);
    }
    return vec4<f32>(srgb_to_linear(colour), 1.0);
#endif
}
