//! `.npy` files: headers written here (version 1.0, 64-byte aligned, C order), read back with
//! the `npyz` crate, which checks magic, version, dtype and order.

use std::path::Path;

use crate::StoreError;

/// Element types the store uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Elem {
    F32,
    F16,
    I32,
    U8,
}

impl Elem {
    pub(crate) fn descr(self) -> &'static str {
        match self {
            Elem::F32 => "<f4",
            Elem::F16 => "<f2",
            Elem::I32 => "<i4",
            Elem::U8 => "|u1",
        }
    }

    pub(crate) fn size(self) -> usize {
        match self {
            Elem::F32 | Elem::I32 => 4,
            Elem::F16 => 2,
            Elem::U8 => 1,
        }
    }
}

/// The complete header (magic to newline) of an array of `shape`; its length is a multiple
/// of 64, so the data that follows is aligned for every element type.
pub(crate) fn header(elem: Elem, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
        elem.descr()
    );
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    dict.push_str(&" ".repeat(total - unpadded));
    dict.push('\n');
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes `data` as an `f32` array of `shape` to `path` (through a temporary file beside it,
/// renamed at the end: a crash never leaves a half-written array under `path`).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), StoreError> {
    let expected: usize = shape.iter().product();
    if expected != data.len() {
        return Err(StoreError::mismatch(
            path,
            format!("{} values for an array of shape {shape:?}", data.len()),
        ));
    }
    let mut bytes = header(Elem::F32, shape);
    bytes.reserve(data.len() * 4);
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    std::fs::write(&partial, &bytes).map_err(StoreError::io(&partial))?;
    std::fs::rename(&partial, path).map_err(StoreError::io(path))
}

/// Parses the header at the start of `bytes` and checks it against what is expected; returns
/// the data offset.
pub(crate) fn check(
    path: &Path,
    bytes: &[u8],
    elem: Elem,
    shape: &[usize],
) -> Result<usize, StoreError> {
    let mut cursor = std::io::Cursor::new(bytes);
    let header = npyz::NpyHeader::from_reader(&mut cursor)
        .map_err(|e| StoreError::mismatch(path, format!("not a readable .npy file: {e}")))?;
    let offset = cursor.position() as usize;
    let descr = match header.dtype() {
        npyz::DType::Plain(ty) => ty.to_string(),
        other => format!("{other:?}"),
    };
    if descr != elem.descr() {
        return Err(StoreError::mismatch(
            path,
            format!("dtype {descr} where the manifest implies {}", elem.descr()),
        ));
    }
    if header.order() != npyz::Order::C {
        return Err(StoreError::mismatch(
            path,
            "Fortran order; the store writes C order",
        ));
    }
    let got: Vec<usize> = header.shape().iter().map(|&d| d as usize).collect();
    if got != shape {
        return Err(StoreError::mismatch(
            path,
            format!("shape {got:?} where the manifest implies {shape:?}"),
        ));
    }
    let expected = offset + shape.iter().product::<usize>() * elem.size();
    if bytes.len() != expected {
        return Err(StoreError::mismatch(
            path,
            format!(
                "{} bytes where header and manifest imply {expected}",
                bytes.len()
            ),
        ));
    }
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_aligned_and_read_back_by_npyz() {
        for (elem, shape) in [
            (Elem::F32, vec![3, 5]),
            (Elem::I32, vec![7]),
            (Elem::U8, vec![2, 4, 4, 3]),
            (Elem::F16, vec![0, 9]),
        ] {
            let mut bytes = header(elem, &shape);
            assert_eq!(bytes.len() % 64, 0);
            bytes.resize(
                bytes.len() + shape.iter().product::<usize>() * elem.size(),
                0,
            );
            let path = Path::new("x.npy");
            assert_eq!(
                check(path, &bytes, elem, &shape).unwrap(),
                header(elem, &shape).len()
            );
            let e = check(path, &bytes, Elem::F32, &[1, 1])
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("x.npy: "), "{e}");
        }
        let mut bytes = header(Elem::F32, &[2, 2]);
        bytes.extend_from_slice(&[0; 15]);
        assert!(
            check(Path::new("t.npy"), &bytes, Elem::F32, &[2, 2])
                .unwrap_err()
                .to_string()
                .contains("bytes where")
        );
        assert!(
            check(Path::new("g.npy"), b"garbage", Elem::F32, &[1])
                .unwrap_err()
                .to_string()
                .contains("not a readable")
        );
    }
}
