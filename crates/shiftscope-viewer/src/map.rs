//! The 3D map's systems: one slab entity per recorded layer (never an entity per neuron;
//! its meshes, texture and material are built in [`crate::slab`]), values uploaded when the
//! measure or the selection changes (the textures and uniforms, not the meshes), the walls
//! shown while a measure extrudes, picking by ray against the slabs (their raised cells when
//! extruded), the keyboard (arrows within a layer, `u`/`o` between layers, `h` help, `Esc`
//! reset), the flight to a selected neuron, and lines to its strongest inputs.

use bevy::asset::embedded_asset;
use bevy::camera::Viewport;
use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use shiftscope_analysis::NeuronId;
use shiftscope_ui::Intent;

use crate::camera::{EguiWants, Orbit, OrbitCamera};
use crate::layout::{Layout, Slab};
use crate::session::{Session, Shown, Step};
use crate::slab::{EXTRUSION, SlabMaterial, lift, pack, slab_mesh, values_image, walls_mesh};

/// One layer's slab entity.
#[derive(Component, Clone, Debug)]
pub struct SlabOf {
    /// The layer.
    pub layer: usize,
    /// Its data texture.
    pub values: Handle<Image>,
    /// Its material.
    pub material: Handle<SlabMaterial>,
}

/// A slab's side walls (a child of its [`SlabOf`] entity, with the same material): shown only
/// while a measure extrudes the cells, so a flat map costs no wall vertices.
#[derive(Component, Clone, Copy, Debug)]
pub struct SlabWalls;

/// Where every slab is (empty until the view model has loaded).
#[derive(Resource, Clone, Debug, Default)]
pub struct MapLayout(pub Layout);

/// The part of the window the map is drawn in (logical pixels), set by the UI around it.
#[derive(Resource, Clone, Copy, Debug, PartialEq)]
pub struct MapViewport {
    /// Top-left corner.
    pub min: Vec2,
    /// Bottom-right corner.
    pub max: Vec2,
}

impl Default for MapViewport {
    fn default() -> Self {
        MapViewport {
            min: Vec2::ZERO,
            max: Vec2::new(1280.0, 800.0),
        }
    }
}

/// The revision of the session the map last showed.
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uploaded(pub u64);

/// The neuron the camera last flew to.
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlownTo(pub Option<NeuronId>);

/// The map's systems.
#[derive(Debug)]
pub struct MapPlugin;

impl Plugin for MapPlugin {
    fn build(&self, app: &mut App) {
        embedded_asset!(app, "slab.wgsl");
        app.add_plugins(MaterialPlugin::<SlabMaterial>::default())
            .init_resource::<MapLayout>()
            .init_resource::<MapViewport>()
            .init_resource::<Uploaded>()
            .init_resource::<FlownTo>()
            .add_systems(Startup, spawn_camera)
            .add_systems(
                Update,
                (hover_and_click, keyboard).chain().in_set(Step::Input),
            )
            .add_systems(
                Update,
                (
                    build_slabs,
                    upload_values,
                    fly_to_selection,
                    draw_inputs,
                    fit_viewport,
                )
                    .chain()
                    .in_set(Step::Show),
            );
    }
}

fn spawn_camera(mut commands: Commands, settings: Option<ResMut<bevy_egui::EguiGlobalSettings>>) {
    // The panels get their own camera below, not the map's.
    if let Some(mut settings) = settings {
        settings.auto_create_primary_context = false;
    }
    let home = Orbit {
        focus: Vec3::ZERO,
        yaw: 0.0,
        pitch: -0.85,
        distance: 40.0,
    };
    commands.spawn((
        Camera3d::default(),
        Camera {
            order: 0,
            ..default()
        },
        // Colours are the colour maps' own: no tone mapping, no dithering noise.
        Tonemapping::None,
        DebandDither::Disabled,
        home.transform(),
        OrbitCamera::new(home),
    ));
    // The panels draw through their own camera over the whole window, so the map's camera
    // can keep to the part the panels leave free.
    commands.spawn((
        bevy_egui::PrimaryEguiContext,
        Camera2d,
        Tonemapping::None,
        DebandDither::Disabled,
        bevy::camera::visibility::RenderLayers::none(),
        Camera {
            order: 1,
            output_mode: bevy::camera::CameraOutputMode::Write {
                blend_state: Some(bevy::render::render_resource::BlendState::ALPHA_BLENDING),
                clear_color: ClearColorConfig::None,
            },
            clear_color: ClearColorConfig::Custom(Color::NONE),
            ..default()
        },
    ));
}

#[allow(clippy::too_many_arguments)]
fn build_slabs(
    mut commands: Commands,
    session: Res<Session>,
    mut layout: ResMut<MapLayout>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut images: ResMut<Assets<Image>>,
    mut materials: ResMut<Assets<SlabMaterial>>,
    existing: Query<Entity, With<SlabOf>>,
    mut cameras: Query<(&mut OrbitCamera, &Camera)>,
) {
    let Some(vm) = &session.vm else {
        return;
    };
    let sizes: Vec<usize> = vm.layers.iter().map(|l| l.neurons).collect();
    if layout.0.slabs.len() == sizes.len()
        && layout
            .0
            .slabs
            .iter()
            .map(|s| s.neurons)
            .eq(sizes.iter().copied())
    {
        return;
    }
    for e in &existing {
        commands.entity(e).despawn();
    }
    layout.0 = Layout::new(&sizes);
    for (l, slab) in layout.0.slabs.iter().enumerate() {
        let values = images.add(values_image(slab));
        let material = materials.add(SlabMaterial {
            params: Vec4::new(slab.cols as f32, -1.0, -1.0, 0.0),
            style: Vec4::new(0.0, slab.neurons as f32, 0.0, 0.0),
            values: values.clone(),
        });
        let walls = (
            Mesh3d(meshes.add(walls_mesh(slab))),
            MeshMaterial3d(material.clone()),
            Visibility::Hidden,
            SlabWalls,
        );
        commands
            .spawn((
                Mesh3d(meshes.add(slab_mesh(slab))),
                MeshMaterial3d(material.clone()),
                Transform::from_translation(slab.origin),
                SlabOf {
                    layer: l,
                    values,
                    material,
                },
            ))
            .with_child(walls);
    }
    for (mut cam, camera) in &mut cameras {
        let aspect = camera
            .logical_viewport_size()
            .map_or(1.4, |s| s.x / s.y.max(1.0));
        let home = Orbit::home(&layout.0, aspect);
        *cam = OrbitCamera::new(home);
    }
}

/// Writes the session's values into every layer's texture and the selection into every
/// layer's material, once per change of the session.
pub fn upload_values(
    session: Res<Session>,
    layout: Res<MapLayout>,
    mut uploaded: ResMut<Uploaded>,
    slabs: Query<&SlabOf>,
    mut images: ResMut<Assets<Image>>,
    mut materials: Option<ResMut<Assets<SlabMaterial>>>,
    mut walls: Query<&mut Visibility, With<SlabWalls>>,
) {
    let hover = session.hovered;
    let revision = session.revision;
    if uploaded.0 == revision || slabs.is_empty() {
        return;
    }
    uploaded.0 = revision;
    let selected = session.ui.as_ref().and_then(shiftscope_ui::UiState::neuron);
    let current_layer = session.ui.as_ref().map(|u| u.layer);
    let extrude = session.height.is_some();
    let shown = if extrude {
        Visibility::Inherited
    } else {
        Visibility::Hidden
    };
    for mut v in &mut walls {
        v.set_if_neq(shown);
    }
    for s in &slabs {
        let Some(slab) = layout.0.slabs.get(s.layer) else {
            continue;
        };
        if let Some(mut image) = images.get_mut(&s.values) {
            image.data = Some(pack(
                slab,
                s.layer,
                session.colour.as_ref(),
                session.height.as_ref(),
            ));
        }
        if let Some(materials) = materials.as_mut()
            && let Some(mut m) = materials.get_mut(&s.material)
        {
            let index_in = |id: Option<NeuronId>| {
                id.filter(|id| id.layer == s.layer)
                    .map_or(-1.0, |id| id.neuron as f32)
            };
            let map = session.colour.as_ref().map_or(0.0, |c| c.map.shader_id());
            let params = Vec4::new(slab.cols as f32, index_in(selected), index_in(hover), map);
            let dim = current_layer.is_some_and(|l| l != s.layer && selected.is_some());
            let style = Vec4::new(
                if extrude { EXTRUSION } else { 0.0 },
                slab.neurons as f32,
                if dim { 1.0 } else { 0.0 },
                0.0,
            );
            if m.params != params || m.style != style {
                m.params = params;
                m.style = style;
            }
        }
    }
}

/// The neuron under the window position `cursor` (logical pixels), if any; with cells
/// extruded by `height`, by their tops and sides.
pub fn pick(
    layout: &Layout,
    height: Option<&Shown>,
    camera: &Camera,
    transform: &GlobalTransform,
    cursor: Vec2,
) -> Option<NeuronId> {
    let ray = camera.viewport_to_world(transform, cursor).ok()?;
    let hit = match height {
        None => layout.pick(ray),
        Some(_) => layout.pick_raised(ray, EXTRUSION, |layer, neuron| {
            lift(height, NeuronId { layer, neuron })
        }),
    };
    hit.map(|(layer, neuron)| NeuronId { layer, neuron })
}

fn hover_and_click(
    mut session: ResMut<Session>,
    layout: Res<MapLayout>,
    windows: Query<&Window, With<PrimaryWindow>>,
    cameras: Query<(&Camera, &GlobalTransform), With<OrbitCamera>>,
    buttons: Option<Res<ButtonInput<MouseButton>>>,
    wants: Res<EguiWants>,
    mut press: Local<Option<Vec2>>,
) {
    let (Ok(window), Ok((camera, transform))) = (windows.single(), cameras.single()) else {
        return;
    };
    let cursor = window.cursor_position().filter(|_| !wants.pointer);
    let height = session.height.as_ref();
    let hovered = cursor.and_then(|c| pick(&layout.0, height, camera, transform, c));
    if session.hovered != hovered {
        session.hovered = hovered;
        session.revision += 1;
    }
    let Some(buttons) = buttons else {
        return;
    };
    // A click is a press and release in place; a drag orbits instead.
    if buttons.just_pressed(MouseButton::Left) {
        *press = cursor;
    }
    if buttons.just_released(MouseButton::Left) {
        if let (Some(p), Some(c), Some(id)) = (*press, cursor, hovered)
            && p.distance(c) < 4.0
        {
            session.intents.push(Intent::SelectNeuron(id));
        }
        *press = None;
    }
}

/// A key the map understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKey {
    /// Previous neuron in the row.
    Left,
    /// Next neuron in the row.
    Right,
    /// The neuron above.
    Up,
    /// The neuron below.
    Down,
    /// Previous layer (`u`).
    PreviousLayer,
    /// Next layer (`o`).
    NextLayer,
    /// Help overlay (`h`).
    Help,
    /// Reset the camera, close help (`Esc`).
    Reset,
}

impl MapKey {
    /// The key called `name` (`left`, `u`, `esc`, …).
    pub fn from_name(name: &str) -> Option<MapKey> {
        Some(match name.to_ascii_lowercase().as_str() {
            "left" | "arrowleft" => MapKey::Left,
            "right" | "arrowright" => MapKey::Right,
            "up" | "arrowup" => MapKey::Up,
            "down" | "arrowdown" => MapKey::Down,
            "u" => MapKey::PreviousLayer,
            "o" => MapKey::NextLayer,
            "h" => MapKey::Help,
            "esc" | "escape" => MapKey::Reset,
            _ => return None,
        })
    }
}

/// What a key does to the session (and whether the camera goes home).
pub fn press_key(session: &mut Session, layout: &Layout, key: MapKey) -> bool {
    match key {
        MapKey::Help => {
            session.help = !session.help;
            return false;
        }
        MapKey::Reset => {
            session.help = false;
            return true;
        }
        _ => {}
    }
    let Some(ui) = &session.ui else {
        return false;
    };
    let current = ui.neuron().unwrap_or(NeuronId {
        layer: ui.layer,
        neuron: 0,
    });
    let Some(slab) = layout.slabs.get(current.layer) else {
        return false;
    };
    let next = match key {
        MapKey::Left => NeuronId {
            neuron: slab.step(current.neuron, -1, 0),
            ..current
        },
        MapKey::Right => NeuronId {
            neuron: slab.step(current.neuron, 1, 0),
            ..current
        },
        MapKey::Up => NeuronId {
            neuron: slab.step(current.neuron, 0, -1),
            ..current
        },
        MapKey::Down => NeuronId {
            neuron: slab.step(current.neuron, 0, 1),
            ..current
        },
        MapKey::PreviousLayer | MapKey::NextLayer => {
            let layer = if key == MapKey::NextLayer {
                (current.layer + 1).min(layout.slabs.len().saturating_sub(1))
            } else {
                current.layer.saturating_sub(1)
            };
            let to = layout.slabs[layer];
            // Keep the relative place in the grid.
            let (c, r) = slab.cell(current.neuron);
            let cc = (c * to.cols / slab.cols.max(1)).min(to.cols - 1);
            let rr = (r * to.rows / slab.rows.max(1)).min(to.rows - 1);
            NeuronId {
                layer,
                neuron: (rr * to.cols + cc).min(to.neurons.saturating_sub(1)),
            }
        }
        MapKey::Help | MapKey::Reset => return false,
    };
    if ui.neuron() != Some(next) {
        session.intents.push(Intent::SelectNeuron(next));
    }
    false
}

fn keyboard(
    keys: Option<Res<ButtonInput<KeyCode>>>,
    wants: Res<EguiWants>,
    mut session: ResMut<Session>,
    layout: Res<MapLayout>,
    mut cameras: Query<&mut OrbitCamera>,
) {
    let Some(keys) = keys else {
        return;
    };
    if wants.keyboard {
        return;
    }
    for (code, key) in [
        (KeyCode::ArrowLeft, MapKey::Left),
        (KeyCode::ArrowRight, MapKey::Right),
        (KeyCode::ArrowUp, MapKey::Up),
        (KeyCode::ArrowDown, MapKey::Down),
        (KeyCode::KeyU, MapKey::PreviousLayer),
        (KeyCode::KeyO, MapKey::NextLayer),
        (KeyCode::KeyH, MapKey::Help),
        (KeyCode::Escape, MapKey::Reset),
    ] {
        if keys.just_pressed(code) && press_key(&mut session, &layout.0, key) {
            for mut cam in &mut cameras {
                cam.target = cam.home;
            }
        }
    }
}

/// How far the camera stands from a focused neuron: its slab in view, but close.
pub fn focus_distance(slab: &Slab, home: f32) -> f32 {
    (slab.width().max(slab.depth()) * 3.0 + 8.0).min(home)
}

fn fly_to_selection(
    session: Res<Session>,
    layout: Res<MapLayout>,
    mut flown: ResMut<FlownTo>,
    mut cameras: Query<&mut OrbitCamera>,
) {
    let selected = session.ui.as_ref().and_then(shiftscope_ui::UiState::neuron);
    if selected == flown.0 || layout.0.slabs.is_empty() {
        return;
    }
    flown.0 = selected;
    let Some(id) = selected else {
        return;
    };
    let Some(slab) = layout.0.slabs.get(id.layer) else {
        return;
    };
    for mut cam in &mut cameras {
        let d = focus_distance(slab, cam.home.distance);
        cam.target = cam.target.focused(slab.centre(id.neuron), d);
    }
}

fn draw_inputs(session: Res<Session>, layout: Res<MapLayout>, mut gizmos: Gizmos) {
    let Some((id, inputs)) = &session.inputs else {
        return;
    };
    let (Some(to), Some(from)) = (
        layout.0.slabs.get(id.layer),
        id.layer.checked_sub(1).and_then(|l| layout.0.slabs.get(l)),
    ) else {
        return;
    };
    // From the tops of extruded cells.
    let height = session.height.as_ref();
    let top =
        |layer: usize, neuron: usize| Vec3::Y * (0.05 + lift(height, NeuronId { layer, neuron }));
    let end = to.centre(id.neuron) + top(id.layer, id.neuron);
    let strongest = inputs.first().map_or(1.0, |i| i.1.abs()).max(1e-6);
    for &(m, r) in inputs {
        if m >= from.neurons {
            continue;
        }
        let start = from.centre(m) + top(id.layer - 1, m);
        let a = 0.35 + 0.65 * (r.abs() / strongest);
        // Warm for positive correlation, cool for negative.
        let colour = if r >= 0.0 {
            Color::srgba(1.0, 0.62, 0.1, a)
        } else {
            Color::srgba(0.25, 0.8, 1.0, a)
        };
        let mid = (start + end) / 2.0 + Vec3::Y * (start.distance(end) * 0.25);
        // A shallow arc: two segments over the gap.
        gizmos.line(start, mid, colour);
        gizmos.line(mid, end, colour);
    }
}

fn fit_viewport(
    view: Res<MapViewport>,
    windows: Query<&Window, With<PrimaryWindow>>,
    mut cameras: Query<&mut Camera, With<OrbitCamera>>,
) {
    let Ok(window) = windows.single() else {
        return;
    };
    let scale = window.scale_factor();
    let size = UVec2::new(window.physical_width(), window.physical_height());
    let min = (view.min * scale).as_uvec2().min(size);
    let max = (view.max * scale).as_uvec2().min(size);
    if max.x <= min.x + 8 || max.y <= min.y + 8 {
        return;
    }
    for mut camera in &mut cameras {
        let viewport = Viewport {
            physical_position: min,
            physical_size: max - min,
            ..default()
        };
        if camera
            .viewport
            .as_ref()
            .map(|v| (v.physical_position, v.physical_size))
            != Some((viewport.physical_position, viewport.physical_size))
        {
            camera.viewport = Some(viewport);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::tests::spurious;

    #[test]
    fn walls_show_only_while_a_measure_extrudes() {
        let mut app = test_app(&[4]);
        let walls = app.world_mut().spawn((Visibility::Hidden, SlabWalls)).id();
        let visibility = |app: &App| *app.world().get::<Visibility>(walls).expect("walls");
        {
            let mut s = app.world_mut().resource_mut::<Session>();
            s.height = Some(spurious(vec![vec![0.0, 0.5, 1.0, 0.25]]));
            s.revision += 1;
        }
        app.update();
        assert_eq!(visibility(&app), Visibility::Inherited);
        {
            let mut s = app.world_mut().resource_mut::<Session>();
            s.height = None;
            s.revision += 1;
        }
        app.update();
        assert_eq!(visibility(&app), Visibility::Hidden);
    }

    fn test_app(sizes: &[usize]) -> App {
        let mut app = App::new();
        app.add_plugins((MinimalPlugins, AssetPlugin::default()))
            .init_asset::<Image>()
            .init_resource::<Session>()
            .init_resource::<Uploaded>()
            .insert_resource(MapLayout(Layout::new(sizes)))
            .add_systems(Update, upload_values);
        let layout = Layout::new(sizes);
        for (l, slab) in layout.slabs.iter().enumerate() {
            let values = app
                .world_mut()
                .resource_mut::<Assets<Image>>()
                .add(values_image(slab));
            app.world_mut().spawn(SlabOf {
                layer: l,
                values,
                material: Handle::default(),
            });
        }
        app
    }

    fn texels(app: &mut App, layer: usize) -> Vec<f32> {
        let handle = {
            let world = app.world_mut();
            let mut q = world.query::<&SlabOf>();
            q.iter(world)
                .find(|s| s.layer == layer)
                .map(|s| s.values.clone())
                .expect("slab")
        };
        let images = app.world().resource::<Assets<Image>>();
        let data = images
            .get(&handle)
            .and_then(|i| i.data.clone())
            .expect("data");
        data.chunks(8)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn a_new_measure_uploads_values_for_every_layer() {
        let mut app = test_app(&[4, 9]);
        app.update();
        assert!(texels(&mut app, 0).iter().all(|&v| v == -1.0));
        {
            let mut s = app.world_mut().resource_mut::<Session>();
            s.colour = Some(spurious(vec![
                vec![0.0, 0.5, 1.0, 0.25],
                (0..9).map(|i| i as f32 / 8.0).collect(),
            ]));
            s.revision += 1;
        }
        app.update();
        assert_eq!(texels(&mut app, 0), vec![0.0, 0.5, 1.0, 0.25]);
        let l1 = texels(&mut app, 1);
        assert_eq!(l1.len(), 9);
        assert!((l1[8] - 1.0).abs() < 1e-6 && l1[0] == 0.0);
        // Another measure: new values, same meshes.
        {
            let mut s = app.world_mut().resource_mut::<Session>();
            s.colour = Some(spurious(vec![vec![1.0, 1.0, 0.0, 0.0], vec![f32::NAN; 9]]));
            s.revision += 1;
        }
        app.update();
        assert_eq!(texels(&mut app, 0), vec![1.0, 1.0, 0.0, 0.0]);
        assert!(texels(&mut app, 1).iter().all(|&v| v == -1.0));
    }

    #[test]
    fn the_keyboard_system_selects_and_resets() {
        let mut app = App::new();
        app.add_plugins(MinimalPlugins)
            .init_resource::<EguiWants>()
            .insert_resource(MapLayout(Layout::new(&[16, 4])))
            .insert_resource(Session {
                ui: Some(shiftscope_ui::UiState::new(0, 0, 2)),
                ..Session::default()
            })
            .insert_resource(ButtonInput::<KeyCode>::default())
            .add_systems(Update, keyboard);
        let home = Orbit {
            focus: Vec3::ZERO,
            yaw: 0.0,
            pitch: -0.8,
            distance: 30.0,
        };
        let mut cam = OrbitCamera::new(home);
        cam.target = home.focused(Vec3::X, 5.0);
        let camera = app.world_mut().spawn(cam).id();
        // Nothing selected: `o` goes to the next layer from neuron 0 of the listed layer (1),
        // which has no next: no intent. `u` selects in layer 0.
        app.world_mut()
            .resource_mut::<ButtonInput<KeyCode>>()
            .press(KeyCode::KeyU);
        app.update();
        assert_eq!(
            app.world().resource::<Session>().intents,
            vec![Intent::SelectNeuron(NeuronId {
                layer: 0,
                neuron: 0
            })]
        );
        // While a text field has the keyboard, keys are egui's.
        app.world_mut().resource_mut::<Session>().intents.clear();
        app.world_mut().resource_mut::<EguiWants>().keyboard = true;
        app.update();
        assert!(app.world().resource::<Session>().intents.is_empty());
        // Esc sends the camera home.
        app.world_mut().resource_mut::<EguiWants>().keyboard = false;
        {
            let mut keys = app.world_mut().resource_mut::<ButtonInput<KeyCode>>();
            keys.clear();
            keys.press(KeyCode::Escape);
        }
        app.update();
        let cam = app.world().get::<OrbitCamera>(camera).expect("camera");
        assert_eq!(cam.target, home);
    }

    #[test]
    fn keys_move_within_and_between_layers() {
        let layout = Layout::new(&[16, 4]);
        let mut session = Session {
            ui: Some(shiftscope_ui::UiState::new(0, 0, 2)),
            ..Session::default()
        };
        let select = |s: &mut Session| {
            let intents = std::mem::take(&mut s.intents);
            for i in &intents {
                s.ui.as_mut().expect("ui").apply(i);
            }
            s.ui.as_ref().and_then(shiftscope_ui::UiState::neuron)
        };
        session
            .ui
            .as_mut()
            .expect("ui")
            .apply(&Intent::SelectNeuron(NeuronId {
                layer: 0,
                neuron: 5,
            }));
        press_key(&mut session, &layout, MapKey::Right);
        assert_eq!(
            select(&mut session),
            Some(NeuronId {
                layer: 0,
                neuron: 6
            })
        );
        press_key(&mut session, &layout, MapKey::Down);
        assert_eq!(
            select(&mut session),
            Some(NeuronId {
                layer: 0,
                neuron: 10
            })
        );
        press_key(&mut session, &layout, MapKey::NextLayer);
        // (2, 2) of a 4×4 grid lands on (1, 1) of a 2×2 grid.
        assert_eq!(
            select(&mut session),
            Some(NeuronId {
                layer: 1,
                neuron: 3
            })
        );
        press_key(&mut session, &layout, MapKey::NextLayer);
        assert!(session.intents.is_empty(), "no layer after the last");
        press_key(&mut session, &layout, MapKey::PreviousLayer);
        assert_eq!(
            select(&mut session),
            Some(NeuronId {
                layer: 0,
                neuron: 10
            })
        );
        press_key(&mut session, &layout, MapKey::Help);
        assert!(session.help);
        assert!(press_key(&mut session, &layout, MapKey::Reset));
        assert!(!session.help);
    }
}
