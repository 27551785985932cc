//! The dataset-source function table for a [`DatasetSourcePlugin`] type.

use shiftscope_abi::{
    CatalogView, DatasetEntryView, DatasetHandle, DatasetSourceTable, Instance, Output, ParamView,
    SampleView, Status, StrListView, StrView,
};

use super::export::{
    check_out, create_instance, destroy_instance, guard, guard_void, instance_ref, last_error,
    outstanding, publish, release,
};
use super::views::read_str;
use crate::{Dataset, DatasetInfo, DatasetSourcePlugin, PluginError, Sample};

struct OpenDataset {
    dataset: Box<dyn Dataset>,
}

/// # Safety
/// `dataset` must be null or come from this table's `open` and not be closed.
unsafe fn dataset<'a>(dataset: *mut DatasetHandle) -> Result<&'a dyn Dataset, PluginError> {
    // SAFETY: forwarded from the caller.
    unsafe { dataset.cast::<OpenDataset>().as_ref() }
        .map(|d| d.dataset.as_ref())
        .ok_or_else(|| PluginError::invalid_argument("null dataset handle"))
}

/// The table for `T`, for a `static` in the plugin crate.
pub const fn dataset_table<T: DatasetSourcePlugin>() -> DatasetSourceTable {
    DatasetSourceTable {
        size: size_of::<DatasetSourceTable>(),
        create: create::<T>,
        destroy: destroy_instance::<T>,
        last_error,
        catalog: catalog::<T>,
        open: open::<T>,
        close,
        len,
        classes: classes::<T>,
        get: get::<T>,
        release: release::<T>,
        outstanding: outstanding::<T>,
    }
}

unsafe extern "C" fn create<T: DatasetSourcePlugin>(
    config: StrView,
    out: *mut *mut Instance,
) -> Status {
    // SAFETY: forwarded from the host.
    unsafe { create_instance(config, out, T::create) }
}

struct CatalogKeep {
    _infos: Vec<DatasetInfo>,
    _params: Vec<Vec<ParamView>>,
    _entries: Vec<DatasetEntryView>,
}

fn catalog_view(infos: Vec<DatasetInfo>) -> (CatalogKeep, CatalogView) {
    let params: Vec<Vec<ParamView>> = infos
        .iter()
        .map(|info| {
            info.params
                .iter()
                .map(|(k, v)| ParamView {
                    key: StrView::new(k),
                    value: StrView::new(v),
                })
                .collect()
        })
        .collect();
    let entries: Vec<DatasetEntryView> = infos
        .iter()
        .zip(&params)
        .map(|(info, p)| DatasetEntryView {
            name: StrView::new(&info.name),
            family: StrView::new(&info.family),
            description: StrView::new(&info.description),
            params: p.as_ptr(),
            n_params: p.len(),
        })
        .collect();
    let view = CatalogView {
        size: size_of::<CatalogView>(),
        entries: entries.as_ptr(),
        n_entries: entries.len(),
    };
    (
        CatalogKeep {
            _infos: infos,
            _params: params,
            _entries: entries,
        },
        view,
    )
}

unsafe extern "C" fn catalog<T: DatasetSourcePlugin>(
    instance_ptr: *mut Instance,
    out: *mut *const CatalogView,
    handle: *mut *mut Output,
) -> Status {
    guard(|| {
        check_out(out, handle)?;
        // SAFETY: the host passes its live instance.
        let inst = unsafe { instance_ref::<T>(instance_ptr) }?;
        let (keep, view) = catalog_view(inst.inner.catalog()?);
        // SAFETY: out-pointers checked above.
        unsafe { publish(keep, view, out, handle, &inst.outstanding) };
        Ok(())
    })
}

unsafe extern "C" fn open<T: DatasetSourcePlugin>(
    instance_ptr: *mut Instance,
    name: StrView,
    out: *mut *mut DatasetHandle,
) -> Status {
    guard(|| {
        if out.is_null() {
            return Err(PluginError::invalid_argument("null output pointer"));
        }
        // SAFETY: the host passes its live instance.
        let inst = unsafe { instance_ref::<T>(instance_ptr) }?;
        // SAFETY: the host lends the name for the call.
        let name = unsafe { read_str(name, "dataset name") }?;
        let dataset = inst.inner.open(name)?;
        let boxed = Box::new(OpenDataset { dataset });
        // SAFETY: checked non-null.
        unsafe { *out = Box::into_raw(boxed).cast() };
        Ok(())
    })
}

unsafe extern "C" fn close(_instance: *mut Instance, dataset: *mut DatasetHandle) {
    guard_void(|| {
        if !dataset.is_null() {
            // SAFETY: made by `open` with `Box::into_raw`, closed once.
            drop(unsafe { Box::from_raw(dataset.cast::<OpenDataset>()) });
        }
    });
}

unsafe extern "C" fn len(
    _instance: *mut Instance,
    dataset_ptr: *mut DatasetHandle,
    out: *mut u64,
) -> Status {
    guard(|| {
        if out.is_null() {
            return Err(PluginError::invalid_argument("null output pointer"));
        }
        // SAFETY: the host passes a dataset it opened.
        let n = unsafe { dataset(dataset_ptr) }?.len() as u64;
        // SAFETY: checked non-null.
        unsafe { *out = n };
        Ok(())
    })
}

unsafe extern "C" fn classes<T: DatasetSourcePlugin>(
    instance_ptr: *mut Instance,
    dataset_ptr: *mut DatasetHandle,
    out: *mut *const StrListView,
    handle: *mut *mut Output,
) -> Status {
    guard(|| {
        check_out(out, handle)?;
        // SAFETY: the host passes its live instance.
        let inst = unsafe { instance_ref::<T>(instance_ptr) }?;
        // SAFETY: the host passes a dataset it opened.
        let names: Vec<String> = unsafe { dataset(dataset_ptr) }?.classes().to_vec();
        let views: Vec<StrView> = names.iter().map(|s| StrView::new(s)).collect();
        let view = StrListView {
            items: views.as_ptr(),
            n_items: views.len(),
        };
        // SAFETY: out-pointers checked above.
        unsafe { publish((names, views), view, out, handle, &inst.outstanding) };
        Ok(())
    })
}

unsafe extern "C" fn get<T: DatasetSourcePlugin>(
    instance_ptr: *mut Instance,
    dataset_ptr: *mut DatasetHandle,
    index: u64,
    out: *mut *const SampleView,
    handle: *mut *mut Output,
) -> Status {
    guard(|| {
        check_out(out, handle)?;
        // SAFETY: the host passes its live instance.
        let inst = unsafe { instance_ref::<T>(instance_ptr) }?;
        // SAFETY: the host passes a dataset it opened.
        let data = unsafe { dataset(dataset_ptr) }?;
        let index = usize::try_from(index).map_err(|_| {
            PluginError::out_of_range(format!("index {index} of {} samples", data.len()))
        })?;
        let sample: Sample = data.get(index)?;
        let view = SampleView {
            size: size_of::<SampleView>(),
            width: sample.width,
            height: sample.height,
            label: sample.label,
            pixels: sample.pixels.as_ptr(),
            byte_len: sample.pixels.len(),
        };
        // SAFETY: out-pointers checked above.
        unsafe { publish(sample, view, out, handle, &inst.outstanding) };
        Ok(())
    })
}
