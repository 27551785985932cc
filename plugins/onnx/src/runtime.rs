//! Finding and starting ONNX Runtime: one environment per process, from the library the
//! user named, else `ORT_DYLIB_PATH`, else the copy `tools/fetch-onnxruntime.sh` put in the
//! cache, else the system's. Nothing here panics when no library can be found.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use shiftscope_sdk::PluginError;

/// The ONNX Runtime version shiftscope is built and tested against.
pub const ORT_VERSION: &str = "1.31.1";
/// The oldest minor version the `ort` bindings accept (`api-31`).
const MIN_MINOR: u32 = 31;
const FETCH_HINT: &str = "fetch it with `tools/fetch-onnxruntime.sh` (or `--gpu` for CUDA), \
     or point `ort_lib` in the model config or ORT_DYLIB_PATH at a libonnxruntime.so 1.31+";

/// The started runtime: its environment, and where and what version it came from.
#[derive(Clone, Debug)]
pub(crate) struct Runtime {
    pub(crate) env: Environment,
    pub(crate) library: PathBuf,
    pub(crate) version: String,
}

/// Where the fetch script caches the library (`gpu` picks the CUDA build).
pub(crate) fn cached_library(gpu: bool) -> Option<PathBuf> {
    let base = std::env::var_os("SHIFTSCOPE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("shiftscope")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/shiftscope")))?;
    let flavour = if gpu { "gpu" } else { "cpu" };
    Some(
        base.join("onnxruntime")
            .join(format!("{ORT_VERSION}-{flavour}"))
            .join(format!("libonnxruntime.so.{ORT_VERSION}")),
    )
}

/// The library to load, in the documented order, with where the choice came from.
fn choose_library(
    explicit: Option<&Path>,
    prefer_gpu: bool,
) -> Result<(PathBuf, String), PluginError> {
    if let Some(path) = explicit {
        return Ok((
            path.to_path_buf(),
            "--ort-lib or ort_lib in the model config".to_owned(),
        ));
    }
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return Ok((PathBuf::from(path), "ORT_DYLIB_PATH".to_owned()));
    }
    let cached = [prefer_gpu, !prefer_gpu]
        .into_iter()
        .filter_map(cached_library)
        .find(|p| p.is_file());
    if let Some(path) = cached {
        return Ok((path, "the shiftscope cache".to_owned()));
    }
    Ok((
        PathBuf::from("libonnxruntime.so"),
        "the system library path".to_owned(),
    ))
}

/// Reads the version string of an ONNX Runtime library, which also proves it loads.
fn library_version(path: &Path) -> Result<String, String> {
    // SAFETY: loading ONNX Runtime runs its initialisers; it is the library the user chose.
    let library = unsafe { libloading::Library::new(path) }.map_err(|e| {
        match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        }
    })?;
    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: the documented entry point of every ONNX Runtime library.
    let get: libloading::Symbol<'_, GetApiBase> = unsafe { library.get(b"OrtGetApiBase\0") }
        .map_err(|_| "it has no OrtGetApiBase symbol: not an ONNX Runtime library".to_owned())?;
    // SAFETY: OrtGetApiBase returns a static table whose GetVersionString returns a static
    // NUL-terminated string.
    let version = unsafe {
        let base = get();
        if base.is_null() {
            return Err("OrtGetApiBase returned null".to_owned());
        }
        std::ffi::CStr::from_ptr(((*base).GetVersionString)())
            .to_string_lossy()
            .into_owned()
    };
    // The library stays loaded: ONNX Runtime is used for the rest of the process.
    std::mem::forget(library);
    Ok(version)
}

fn check_version(version: &str, path: &Path) -> Result<(), PluginError> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(1), Some(minor)) if minor >= MIN_MINOR => Ok(()),
        _ => Err(PluginError::failed(format!(
            "{}: ONNX Runtime {version} is too old; shiftscope needs 1.{MIN_MINOR} or newer \
             (tested with {ORT_VERSION}); {FETCH_HINT}",
            path.display()
        ))),
    }
}

/// The process's runtime, started on first use. Later calls naming another library get the
/// first one (ONNX Runtime allows one per process) and say so in the result's `library`.
pub(crate) fn runtime(explicit: Option<&Path>, prefer_gpu: bool) -> Result<Runtime, PluginError> {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    static START: Mutex<()> = Mutex::new(());
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt.clone());
    }
    let _guard = START
        .lock()
        .map_err(|_| PluginError::failed("ONNX Runtime start-up lock poisoned"))?;
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt.clone());
    }
    let (path, origin) = choose_library(explicit, prefer_gpu)?;
    let version = library_version(&path).map_err(|reason| {
        PluginError::failed(format!(
            "cannot load ONNX Runtime from {} (chosen from {origin}): {reason}; {FETCH_HINT}",
            path.display()
        ))
    })?;
    check_version(&version, &path)?;
    let env = ort::init_from(&path)
        .map_err(|e| {
            PluginError::failed(format!(
                "ONNX Runtime at {}: {e:?}; {FETCH_HINT}",
                path.display()
            ))
        })?
        .with_name("shiftscope")
        .with_telemetry(false)
        .build()
        .map_err(|e| PluginError::failed(format!("starting ONNX Runtime: {e}")))?;
    let rt = Runtime {
        env,
        library: path,
        version,
    };
    Ok(RUNTIME.get_or_init(|| rt).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let p = Path::new("/x/libonnxruntime.so");
        assert!(check_version("1.31.1", p).is_ok());
        assert!(check_version("1.32.0", p).is_ok());
        let e = check_version("1.30.0", p).unwrap_err().to_string();
        assert!(
            e.contains("too old") && e.contains("tools/fetch-onnxruntime.sh"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_library_is_an_error_naming_the_fetch_command() {
        let e = library_version(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err();
        assert!(!e.is_empty());
        let not_ort = std::env::current_exe().unwrap();
        assert!(library_version(&not_ort).is_err());
    }
}
