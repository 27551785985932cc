//! The camera: a small orbit controller (drag to orbit, right/middle-drag to pan, wheel to
//! zoom, WASD to fly) whose pose eases toward a target, so focusing on a layer or a neuron
//! is a smooth flight rather than a jump. The pose math is pure and tested.

use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll};
use bevy::prelude::*;

use crate::layout::Layout;

/// A camera pose around a focus point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Orbit {
    /// The point looked at.
    pub focus: Vec3,
    /// Turn around +Y, radians (0: looking toward −Z).
    pub yaw: f32,
    /// Tilt, radians (negative: looking down).
    pub pitch: f32,
    /// Distance from the focus.
    pub distance: f32,
}

/// Vertical field of view of the map camera.
pub const FOV: f32 = std::f32::consts::FRAC_PI_4;
const PITCH_RANGE: (f32, f32) = (-1.55, -0.05);

impl Orbit {
    /// The camera's rotation.
    pub fn rotation(&self) -> Quat {
        Quat::from_euler(EulerRot::YXZ, self.yaw, self.pitch, 0.0)
    }

    /// The camera's transform.
    pub fn transform(&self) -> Transform {
        let rotation = self.rotation();
        Transform {
            translation: self.focus + rotation * Vec3::new(0.0, 0.0, self.distance),
            rotation,
            ..Transform::default()
        }
    }

    /// The pose a fraction `s` of the way to `target`.
    pub fn toward(&self, target: &Orbit, s: f32) -> Orbit {
        Orbit {
            focus: self.focus.lerp(target.focus, s),
            yaw: self.yaw + (target.yaw - self.yaw) * s,
            pitch: self.pitch + (target.pitch - self.pitch) * s,
            // Zoom eases in log space so far and near flights feel alike.
            distance: (self.distance.ln() + (target.distance.ln() - self.distance.ln()) * s).exp(),
        }
    }

    /// Whether two poses are indistinguishable on screen.
    pub fn near(&self, other: &Orbit) -> bool {
        let scale = self.distance.max(1.0);
        self.focus.distance(other.focus) < 1e-3 * scale
            && (self.yaw - other.yaw).abs() < 1e-4
            && (self.pitch - other.pitch).abs() < 1e-4
            && (self.distance / other.distance - 1.0).abs() < 1e-4
    }

    /// The overview: everything in view of a viewport of this aspect ratio, seen from the
    /// front and above.
    pub fn home(layout: &Layout, aspect: f32) -> Orbit {
        let (half_w, half_d) = layout.half_extent();
        let pitch: f32 = -0.85;
        let tan_v = (FOV / 2.0).tan();
        let tan_h = tan_v * aspect.max(0.1);
        // Width across the screen; depth foreshortened by the tilt, plus the labels' margin.
        // Perspective widens the front row: leave a quarter more.
        let fit_w = (half_w + 1.5) * 1.25 / tan_h;
        let fit_d = (half_d * (-pitch).sin() + 2.0) / tan_v + half_d * (-pitch).cos();
        Orbit {
            focus: Vec3::new(0.0, 0.0, 1.0),
            yaw: 0.0,
            pitch,
            distance: fit_w.max(fit_d).max(6.0) * 1.08,
        }
    }

    /// A close look at a point (a selected neuron), keeping the current angles.
    pub fn focused(&self, point: Vec3, distance: f32) -> Orbit {
        Orbit {
            focus: point,
            distance,
            ..*self
        }
    }
}

/// The map camera's controller.
#[derive(Component, Clone, Copy, Debug)]
pub struct OrbitCamera {
    /// Where it is now.
    pub current: Orbit,
    /// Where it is going.
    pub target: Orbit,
    /// The overview (`Esc`).
    pub home: Orbit,
}

impl OrbitCamera {
    /// A camera at rest at `home`.
    pub fn new(home: Orbit) -> OrbitCamera {
        OrbitCamera {
            current: home,
            target: home,
            home,
        }
    }

    /// Whether it has arrived.
    pub fn settled(&self) -> bool {
        self.current.near(&self.target)
    }

    /// One frame of easing (`dt` seconds; about 90% of the way in 0.3 s).
    pub fn ease(&mut self, dt: f32) {
        let s = 1.0 - (-dt * 8.0).exp();
        self.current = if self.current.toward(&self.target, s).near(&self.target) {
            self.target
        } else {
            self.current.toward(&self.target, s)
        };
    }
}

/// Whether egui has the pointer or keyboard (set by the UI each frame, read by the map).
#[derive(Resource, Clone, Copy, Debug, Default)]
pub struct EguiWants {
    /// Pointer over or dragging a panel.
    pub pointer: bool,
    /// A text field has focus.
    pub keyboard: bool,
}

/// The camera controller's systems.
#[derive(Debug)]
pub struct CameraPlugin;

impl Plugin for CameraPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<EguiWants>()
            .add_systems(Update, (control_camera, ease_camera).chain());
    }
}

fn control_camera(
    mut cameras: Query<&mut OrbitCamera>,
    buttons: Option<Res<ButtonInput<MouseButton>>>,
    keys: Option<Res<ButtonInput<KeyCode>>>,
    motion: Option<Res<AccumulatedMouseMotion>>,
    scroll: Option<Res<AccumulatedMouseScroll>>,
    time: Res<Time>,
    wants: Res<EguiWants>,
) {
    let Ok(mut cam) = cameras.single_mut() else {
        return;
    };
    let t = &mut cam.target;
    if let (Some(buttons), Some(motion)) = (&buttons, &motion)
        && !wants.pointer
    {
        let d = motion.delta;
        if buttons.pressed(MouseButton::Left) {
            t.yaw -= d.x * 0.006;
            t.pitch = (t.pitch - d.y * 0.006).clamp(PITCH_RANGE.0, PITCH_RANGE.1);
        }
        if buttons.pressed(MouseButton::Right) || buttons.pressed(MouseButton::Middle) {
            let rot = t.rotation();
            let k = t.distance * 0.0015;
            t.focus += rot * Vec3::new(-d.x * k, d.y * k, 0.0);
        }
    }
    if let Some(scroll) = &scroll
        && !wants.pointer
        && scroll.delta.y != 0.0
    {
        t.distance =
            (t.distance * 0.88f32.powf(scroll.delta.y.clamp(-5.0, 5.0))).clamp(1.0, 5000.0);
    }
    if let Some(keys) = &keys
        && !wants.keyboard
    {
        let heading = Quat::from_rotation_y(t.yaw);
        let mut go = Vec3::ZERO;
        for (key, dir) in [
            (KeyCode::KeyW, Vec3::NEG_Z),
            (KeyCode::KeyS, Vec3::Z),
            (KeyCode::KeyA, Vec3::NEG_X),
            (KeyCode::KeyD, Vec3::X),
            (KeyCode::KeyQ, Vec3::NEG_Y),
            (KeyCode::KeyE, Vec3::Y),
        ] {
            if keys.pressed(key) {
                go += dir;
            }
        }
        if go != Vec3::ZERO {
            let speed = t.distance * 0.8 * time.delta_secs();
            t.focus += heading * go.normalize() * speed;
        }
    }
}

fn ease_camera(mut cameras: Query<(&mut OrbitCamera, &mut Transform)>, time: Res<Time>) {
    for (mut cam, mut transform) in &mut cameras {
        // A slow software frame must not overshoot: cap the step.
        let dt = time.delta_secs().min(0.1);
        cam.ease(dt);
        *transform = cam.current.transform();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_focus_is_in_the_middle_of_the_view() {
        let o = Orbit {
            focus: Vec3::new(3.0, 0.0, -2.0),
            yaw: 0.4,
            pitch: -0.7,
            distance: 20.0,
        };
        let t = o.transform();
        let ahead = t.translation + t.forward().as_vec3() * o.distance;
        assert!(ahead.distance(o.focus) < 1e-4);
        assert!(t.translation.y > 0.0, "above the slabs");
    }

    #[test]
    fn easing_converges_and_settles() {
        let home = Orbit {
            focus: Vec3::ZERO,
            yaw: 0.0,
            pitch: -0.8,
            distance: 50.0,
        };
        let mut cam = OrbitCamera::new(home);
        assert!(cam.settled());
        cam.target = home.focused(Vec3::new(10.0, 0.0, 5.0), 8.0);
        assert!(!cam.settled());
        let mut frames = 0;
        let mut last = f32::INFINITY;
        while !cam.settled() {
            cam.ease(1.0 / 60.0);
            let gap = cam.current.focus.distance(cam.target.focus);
            assert!(gap <= last, "monotone approach");
            last = gap;
            frames += 1;
            assert!(frames < 300, "settles within 5 s at 60 fps");
        }
        assert_eq!(cam.current, cam.target);
        // A big step (slow frame) does not overshoot either.
        cam.target = home;
        cam.ease(0.1);
        assert!(cam.current.distance > 8.0 && cam.current.distance < 50.0);
    }

    /// The controller's systems on a camera, with mouse input that the test sets.
    fn controlled() -> (App, Entity, Orbit) {
        let home = Orbit {
            focus: Vec3::ZERO,
            yaw: 0.0,
            pitch: -0.8,
            distance: 50.0,
        };
        let mut app = App::new();
        app.add_plugins((MinimalPlugins, CameraPlugin))
            .init_resource::<ButtonInput<MouseButton>>()
            .init_resource::<AccumulatedMouseMotion>()
            .init_resource::<AccumulatedMouseScroll>();
        let camera = app
            .world_mut()
            .spawn((OrbitCamera::new(home), Transform::default()))
            .id();
        (app, camera, home)
    }

    fn target(app: &App, camera: Entity) -> Orbit {
        app.world()
            .get::<OrbitCamera>(camera)
            .expect("camera")
            .target
    }

    fn drag(app: &mut App, button: MouseButton, delta: Vec2) {
        app.world_mut()
            .resource_mut::<ButtonInput<MouseButton>>()
            .press(button);
        app.world_mut()
            .resource_mut::<AccumulatedMouseMotion>()
            .delta = delta;
        app.update();
        app.world_mut()
            .resource_mut::<ButtonInput<MouseButton>>()
            .release(button);
        app.world_mut()
            .resource_mut::<AccumulatedMouseMotion>()
            .delta = Vec2::ZERO;
        app.update();
    }

    #[test]
    fn dragging_orbits_pans_and_the_wheel_zooms_unless_a_panel_has_the_pointer() {
        let (mut app, camera, home) = controlled();
        // Left drag to the right turns the view, downwards tilts it, within its limits.
        drag(&mut app, MouseButton::Left, Vec2::new(100.0, 0.0));
        let turned = target(&app, camera);
        assert!(
            (turned.yaw - (home.yaw - 0.6)).abs() < 1e-5,
            "yaw {}",
            turned.yaw
        );
        assert_eq!((turned.focus, turned.distance), (home.focus, home.distance));
        drag(&mut app, MouseButton::Left, Vec2::new(0.0, 10_000.0));
        let tilted = target(&app, camera);
        assert!(
            (tilted.pitch - PITCH_RANGE.0).abs() < 1e-6,
            "pitch {}",
            tilted.pitch
        );

        // Right drag moves the focus, not the angles.
        drag(&mut app, MouseButton::Right, Vec2::new(50.0, 0.0));
        let panned = target(&app, camera);
        assert!(
            panned.focus.distance(tilted.focus) > 1.0,
            "focus {}",
            panned.focus
        );
        assert_eq!((panned.yaw, panned.pitch), (tilted.yaw, tilted.pitch));

        // One wheel step in zooms by 12%.
        app.world_mut()
            .resource_mut::<AccumulatedMouseScroll>()
            .delta = Vec2::new(0.0, 1.0);
        app.update();
        app.world_mut()
            .resource_mut::<AccumulatedMouseScroll>()
            .delta = Vec2::ZERO;
        let zoomed = target(&app, camera);
        assert!((zoomed.distance - home.distance * 0.88).abs() < 1e-3);

        // Over a panel, the same drag and wheel leave the map alone.
        app.world_mut().resource_mut::<EguiWants>().pointer = true;
        drag(&mut app, MouseButton::Left, Vec2::new(100.0, 40.0));
        app.world_mut()
            .resource_mut::<AccumulatedMouseScroll>()
            .delta = Vec2::new(0.0, 3.0);
        app.update();
        assert_eq!(target(&app, camera), zoomed);

        // The pose follows the target.
        app.world_mut().resource_mut::<EguiWants>().pointer = false;
        for _ in 0..5 {
            app.update();
        }
        let transform = *app.world().get::<Transform>(camera).expect("transform");
        assert!(
            transform.translation.length() > 1.0,
            "the camera moved into place"
        );
    }

    #[test]
    fn home_fits_every_slab() {
        let layout = Layout::new(&[32, 512, 64, 10]);
        let aspect = 860.0 / 740.0;
        let home = Orbit::home(&layout, aspect);
        let t = home.transform();
        let view = t.compute_affine().inverse();
        let tan_v = (FOV / 2.0).tan();
        for s in &layout.slabs {
            for corner in [
                s.origin,
                s.origin + Vec3::new(s.width(), 0.0, 0.0),
                s.origin + Vec3::new(0.0, 0.0, s.depth()),
                s.origin + Vec3::new(s.width(), 0.0, s.depth()),
            ] {
                let p = view.transform_point3(corner);
                assert!(p.z < 0.0, "in front");
                let (x, y) = (p.x / -p.z, p.y / -p.z);
                assert!(
                    x.abs() <= tan_v * aspect,
                    "corner {corner} out horizontally"
                );
                assert!(y.abs() <= tan_v, "corner {corner} out vertically");
            }
        }
    }
}
