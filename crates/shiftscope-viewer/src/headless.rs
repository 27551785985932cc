//! A private X server (Xvfb, which `tools/setup.sh` installs) for rendering the viewer with no
//! display: the demo's screenshots, the end-to-end test and the frame-time benchmark. The
//! viewer itself runs in a child process pointed at it with [`HeadlessX::configure`].

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ViewerError;

/// An Xvfb server on a free display number, stopped on drop.
#[derive(Debug)]
pub struct HeadlessX {
    child: Child,
    /// The display, e.g. `:90`.
    pub display: String,
    /// A private `XDG_RUNTIME_DIR` for the child.
    pub runtime: PathBuf,
}

impl HeadlessX {
    /// Starts Xvfb (1280×1024×24, no TCP) on the first free display of `displays`, with
    /// `runtime` (created if missing) as the child's `XDG_RUNTIME_DIR`.
    pub fn start(runtime: &Path, displays: Range<u32>) -> Result<HeadlessX, ViewerError> {
        let failed = |what: String| ViewerError::Failed(what);
        std::fs::create_dir_all(runtime)
            .map_err(|e| failed(format!("creating {}: {e}", runtime.display())))?;
        let (first, last) = (displays.start, displays.end.saturating_sub(1));
        for n in displays {
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                || Path::new(&format!("/tmp/.X{n}-lock")).exists()
            {
                continue;
            }
            let display = format!(":{n}");
            let mut child = Command::new("Xvfb")
                .args([&display, "-screen", "0", "1280x1024x24", "-nolisten", "tcp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| {
                    failed(format!(
                        "Xvfb could not start ({e}); tools/setup.sh installs it"
                    ))
                })?;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                    // The socket may be another process's server that took the number
                    // first: ours would then exit at once.
                    std::thread::sleep(Duration::from_millis(300));
                    if child.try_wait().ok().flatten().is_some() {
                        break;
                    }
                    return Ok(HeadlessX {
                        child,
                        display,
                        runtime: runtime.to_path_buf(),
                    });
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // another server took this number first
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        Err(failed(format!(
            "could not start Xvfb on any display from :{first} to :{last}"
        )))
    }

    /// Points `command` at this server, with Vulkan (Mesa's lavapipe where there is no GPU).
    pub fn configure(&self, command: &mut Command) {
        command
            .env("DISPLAY", &self.display)
            .env("XDG_RUNTIME_DIR", &self.runtime)
            .env("WGPU_BACKEND", "vulkan")
            .env_remove("WAYLAND_DISPLAY");
    }
}

impl Drop for HeadlessX {
    fn drop(&mut self) {
        // SIGTERM lets Xvfb remove its socket and lock file (SIGKILL would leave them behind
        // and use up display numbers); SIGKILL only when that fails.
        let terminated = Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        if !terminated {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
