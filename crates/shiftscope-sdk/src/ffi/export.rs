//! Plugin-side plumbing shared by both tables: panic guard, last error, output handles,
//! and the lazily built header.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use shiftscope_abi::{
    ABI_MAJOR, ABI_MINOR, Instance, Output, PluginHeader, PluginKind, Status, StrView,
};

use super::views::read_str;

use crate::PluginError;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_last_error(message: String) {
    LAST_ERROR.with(|slot| *slot.borrow_mut() = message);
}

/// `last_error` for both tables: the message of the last failure on this thread. The view
/// stays valid until the next failing call on this thread.
pub(crate) unsafe extern "C" fn last_error(_instance: *const Instance) -> StrView {
    LAST_ERROR.with(|slot| StrView::new(slot.borrow().as_str()))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Runs an exported body: a returned error or a panic becomes a status code and the
/// thread's last error.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), PluginError>) -> Status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => Status::OK,
        Ok(Err(error)) => {
            let status = error.kind().status();
            set_last_error(error.message().to_owned());
            status
        }
        Err(payload) => {
            set_last_error(format!("panicked: {}", panic_message(payload.as_ref())));
            Status::PANIC
        }
    }
}

/// Runs a body that returns nothing (destroy, close, release); a panic there is swallowed,
/// since there is nobody left to report it to and unwinding into the host is never allowed.
pub(crate) fn guard_void(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

/// What an `Instance` pointer points to: the plugin's value and its count of live outputs.
pub(crate) struct PluginInstance<T> {
    pub(crate) inner: T,
    pub(crate) outstanding: AtomicU64,
}

/// `create` for both tables: reads the config, makes the value, hands out the instance.
///
/// # Safety
/// `out` must be null or writable; `config` must be valid for the call.
pub(crate) unsafe fn create_instance<T>(
    config: StrView,
    out: *mut *mut Instance,
    make: impl FnOnce(&str) -> Result<T, PluginError>,
) -> Status {
    guard(|| {
        if out.is_null() {
            return Err(PluginError::invalid_argument("null output pointer"));
        }
        // SAFETY: the host lends the config for the call.
        let config = unsafe { read_str(config, "config") }?;
        let boxed = Box::new(PluginInstance {
            inner: make(config)?,
            outstanding: AtomicU64::new(0),
        });
        // SAFETY: checked non-null; the host passes a writable slot.
        unsafe { *out = Box::into_raw(boxed).cast() };
        Ok(())
    })
}

/// `destroy` for both tables.
pub(crate) unsafe extern "C" fn destroy_instance<T>(instance: *mut Instance) {
    guard_void(|| {
        if !instance.is_null() {
            // SAFETY: made by `create_instance` with `Box::into_raw`, destroyed once.
            drop(unsafe { Box::from_raw(instance.cast::<PluginInstance<T>>()) });
        }
    });
}

/// Borrows the instance behind a pointer.
///
/// # Safety
/// `instance` must be null or come from `create_instance::<T>` and not be destroyed; no
/// other reference to it may be live.
pub(crate) unsafe fn instance_mut<'a, T>(
    instance: *mut Instance,
) -> Result<&'a mut PluginInstance<T>, PluginError> {
    // SAFETY: forwarded from the caller.
    unsafe { instance.cast::<PluginInstance<T>>().as_mut() }
        .ok_or_else(|| PluginError::invalid_argument("null instance"))
}

/// Borrows the instance behind a pointer, shared.
///
/// # Safety
/// `instance` must be null or come from `create_instance::<T>` and not be destroyed.
pub(crate) unsafe fn instance_ref<'a, T>(
    instance: *const Instance,
) -> Result<&'a PluginInstance<T>, PluginError> {
    // SAFETY: forwarded from the caller.
    unsafe { instance.cast::<PluginInstance<T>>().as_ref() }
        .ok_or_else(|| PluginError::invalid_argument("null instance"))
}

/// `release` for both tables.
pub(crate) unsafe extern "C" fn release<T>(instance: *mut Instance, handle: *mut Output) {
    guard_void(|| {
        // SAFETY: the host passes its live instance, or null.
        let counter = unsafe { instance_ref::<T>(instance) }
            .ok()
            .map(|i| &i.outstanding);
        // SAFETY: the handle came from this instance and is released once.
        unsafe { release_output(handle, counter) };
    });
}

/// `outstanding` for both tables.
pub(crate) unsafe extern "C" fn outstanding<T>(instance: *const Instance) -> u64 {
    // SAFETY: the host passes its live instance, or null.
    unsafe { instance_ref::<T>(instance) }.map_or(0, |i| i.outstanding.load(Ordering::Relaxed))
}

/// Checks the out-pointers of a producing call.
pub(crate) fn check_out<T, U>(out: *mut T, handle: *mut U) -> Result<(), PluginError> {
    if out.is_null() || handle.is_null() {
        return Err(PluginError::invalid_argument("null output pointer"));
    }
    Ok(())
}

/// Hands `view` (and what it points into, `keep`) to the host behind an output handle.
///
/// # Safety
/// `out` and `handle` must be valid for writes.
pub(crate) unsafe fn publish<K: 'static, V: 'static>(
    keep: K,
    view: V,
    out: *mut *const V,
    handle: *mut *mut Output,
    outstanding: &AtomicU64,
) {
    let boxed = Box::new((keep, view));
    let view_ptr: *const V = &raw const boxed.1;
    let any: Box<dyn Any> = boxed;
    let raw = Box::into_raw(Box::new(any));
    outstanding.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the caller guarantees both pointers are writable.
    unsafe {
        *out = view_ptr;
        *handle = raw.cast();
    }
}

/// Frees a handle made by [`publish`].
///
/// # Safety
/// `handle` must come from [`publish`] and not have been released before.
unsafe fn release_output(handle: *mut Output, outstanding: Option<&AtomicU64>) {
    if handle.is_null() {
        return;
    }
    // SAFETY: made by `Box::into_raw(Box<Box<dyn Any>>)` in `publish`, released once.
    drop(unsafe { Box::from_raw(handle.cast::<Box<dyn Any>>()) });
    if let Some(counter) = outstanding {
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}

struct BuiltHeader {
    header: PluginHeader,
    _build_info: String,
}

// SAFETY: the header's pointers point to 'static data (names, the static table) and to the
// `_build_info` string that lives beside them; nothing is ever mutated after construction.
unsafe impl Send for BuiltHeader {}
// SAFETY: as above; shared reads only.
unsafe impl Sync for BuiltHeader {}

/// The plugin's header, built on the first call to the entry and kept for the process.
#[derive(Debug)]
pub struct HeaderCell(OnceLock<BuiltHeaderDebug>);

/// [`BuiltHeader`] with a `Debug` impl that does not chase pointers.
struct BuiltHeaderDebug(BuiltHeader);

impl std::fmt::Debug for BuiltHeaderDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PluginHeader")
    }
}

impl HeaderCell {
    /// An empty cell, for a `static`.
    pub const fn new() -> HeaderCell {
        HeaderCell(OnceLock::new())
    }

    /// The header to return from the entry. The plugin answers every host major with its
    /// header; the host compares majors and names the plugin when it refuses it.
    pub fn get(
        &self,
        _host_abi_major: u32,
        kind: PluginKind,
        name: &'static str,
        version: &'static str,
        debug_build: bool,
        table: *const c_void,
    ) -> *const PluginHeader {
        let table = table as usize;
        let built = catch_unwind(AssertUnwindSafe(|| {
            let cell = self.0.get_or_init(|| {
                let build_info = format!(
                    "{}, {} profile, shiftscope-sdk {}",
                    crate::RUSTC_VERSION,
                    if debug_build { "debug" } else { "release" },
                    crate::SDK_VERSION
                );
                let header = PluginHeader {
                    abi_major: ABI_MAJOR,
                    abi_minor: ABI_MINOR,
                    header_size: size_of::<PluginHeader>() as u32,
                    kind,
                    name: StrView::new(name),
                    version: StrView::new(version),
                    build_info: StrView::new(&build_info),
                    table: table as *const c_void,
                };
                BuiltHeaderDebug(BuiltHeader {
                    header,
                    _build_info: build_info,
                })
            });
            &raw const cell.0.header
        }));
        built.unwrap_or(std::ptr::null())
    }
}

impl Default for HeaderCell {
    fn default() -> HeaderCell {
        HeaderCell::new()
    }
}
