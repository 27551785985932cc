//! `.npy` and `.npz` arrays of the CIFAR shift sets, read with the `npyz` crate: images
//! `(N, 32, 32, 3)` uint8 in C order, labels `(N,)` of uint8, int32 or int64, each label a
//! CIFAR-10 class (0..9). Dtype, shape and order are checked against what is expected and
//! every size against the file's real size before anything is allocated for it; a broken
//! file is one error naming the file, what was expected and what was found.
//!
//! `.npy` images are read one row at a time by position (no mapping: a dataset file that
//! someone truncates while it is open gives an error, not a crash); `.npz` arrays are
//! decompressed into memory when opened (CIFAR-10.2's largest is 30 MB).

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use npyz::{DType, Endianness, NpyFile, NpyHeader, Order, TypeChar};
use shiftscope_sdk::PluginError;

use crate::shapes::{IMAGE_BYTES, SIDE};

/// The magic of every `.npy` file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Largest `.npy` header accepted (numpy writes about 128 bytes).
const MAX_HEADER: u64 = 1 << 20;
/// Largest decompressed array accepted from an `.npz`: no decompression bombs.
const MAX_NPZ_ARRAY: u64 = 2 << 30;
/// Number of CIFAR-10 classes.
pub(crate) const CLASSES: i64 = 10;

pub(crate) fn bad(path: &Path, problem: impl std::fmt::Display) -> PluginError {
    PluginError::invalid_argument(format!("{}: {problem}", path.display()))
}

/// What an array must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `(N, 32, 32, 3)` uint8.
    Images,
    /// `(N,)` integer class indices.
    Labels,
}

/// The numpy name of a plain dtype, e.g. `float32 ('<f4')`.
fn dtype_name(dtype: &DType) -> String {
    let DType::Plain(ts) = dtype else {
        return format!("structured dtype {}", dtype.descr());
    };
    let bits = ts.size_field() * 8;
    let name = match ts.type_char() {
        TypeChar::Uint => format!("uint{bits}"),
        TypeChar::Int => format!("int{bits}"),
        TypeChar::Float => format!("float{bits}"),
        TypeChar::Bool => "bool".to_owned(),
        TypeChar::Complex => format!("complex{bits}"),
        _ => return format!("dtype '{ts}'"),
    };
    format!("{name} ('{ts}')")
}

/// The element type of a labels array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LabelType {
    U8,
    I32,
    I64,
}

/// Checks a header against `kind`: the rows and, for labels, their element type.
fn check_header(
    path: &Path,
    header: &NpyHeader,
    kind: Kind,
) -> Result<(usize, Option<LabelType>), PluginError> {
    let dtype = header.dtype();
    let plain = match &dtype {
        DType::Plain(ts) => Some((ts.type_char(), ts.size_field(), ts.endianness())),
        _ => None,
    };
    let label_type = match (kind, plain) {
        (Kind::Images, Some((TypeChar::Uint, 1, _))) => None,
        (Kind::Labels, Some((TypeChar::Uint, 1, _))) => Some(LabelType::U8),
        (Kind::Labels, Some((TypeChar::Int, 8, Endianness::Little))) => Some(LabelType::I64),
        (Kind::Labels, Some((TypeChar::Int, 4, Endianness::Little))) => Some(LabelType::I32),
        (Kind::Images, _) => {
            return Err(bad(
                path,
                format!("images of {} where uint8 is expected", dtype_name(&dtype)),
            ));
        }
        (Kind::Labels, _) => {
            return Err(bad(
                path,
                format!(
                    "labels of {} where uint8, int32 or int64 (little-endian) is expected",
                    dtype_name(&dtype)
                ),
            ));
        }
    };
    let shape = header.shape();
    let shown = format!(
        "({})",
        shape
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rows = match (kind, shape) {
        (Kind::Images, &[n, h, w, 3]) if (h, w) == (SIDE as u64, SIDE as u64) => n,
        (Kind::Images, &[_, 3, h, w]) if (h, w) == (SIDE as u64, SIDE as u64) => {
            return Err(bad(
                path,
                format!(
                    "images of shape {shown} are channels-first; expected (N, 32, 32, 3), channels last"
                ),
            ));
        }
        (Kind::Images, _) => {
            return Err(bad(
                path,
                format!("images of shape {shown} where (N, 32, 32, 3) is expected"),
            ));
        }
        (Kind::Labels, &[n]) => n,
        (Kind::Labels, _) => {
            return Err(bad(
                path,
                format!("labels of shape {shown} where (N,) is expected"),
            ));
        }
    };
    if header.order() == Order::Fortran && shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(bad(
            path,
            "the array is in Fortran order (fortran_order: True); expected C order",
        ));
    }
    let rows = usize::try_from(rows)
        .map_err(|_| bad(path, format!("{rows} rows do not fit in memory addresses")))?;
    Ok((rows, label_type))
}

/// Bytes per row of `kind`.
fn row_bytes(kind: Kind, label_type: Option<LabelType>) -> u64 {
    match (kind, label_type) {
        (Kind::Images, _) => IMAGE_BYTES as u64,
        (Kind::Labels, Some(LabelType::I64)) => 8,
        (Kind::Labels, Some(LabelType::I32)) => 4,
        (Kind::Labels, _) => 1,
    }
}

/// Checks the magic and the header length in the first bytes, so that `npyz` never
/// allocates for a header longer than the data there is: returns the header's end.
fn check_prefix(path: &Path, prefix: &[u8], available: u64) -> Result<u64, PluginError> {
    if prefix.len() < 10 || &prefix[..6] != MAGIC {
        let shown: Vec<String> = prefix.iter().take(6).map(|b| format!("{b:02x}")).collect();
        return Err(bad(
            path,
            format!(
                "wrong magic [{}]: not a .npy array (which starts 93 4e 55 4d 50 59, \"\\x93NUMPY\")",
                shown.join(" ")
            ),
        ));
    }
    let (len, start) = match prefix[6] {
        1 => (u64::from(u16::from_le_bytes([prefix[8], prefix[9]])), 10),
        2 | 3 if prefix.len() >= 12 => (
            u64::from(u32::from_le_bytes([
                prefix[8], prefix[9], prefix[10], prefix[11],
            ])),
            12,
        ),
        v => {
            return Err(bad(
                path,
                format!(".npy format version {v}.{} is not 1, 2 or 3", prefix[7]),
            ));
        }
    };
    let end = start + len;
    if len > MAX_HEADER || end > available {
        return Err(bad(
            path,
            format!(
                "the .npy header announces {len} bytes but {} follow: truncated or not a .npy file",
                available.saturating_sub(start)
            ),
        ));
    }
    Ok(end)
}

/// Data bytes announced by a header of `rows` rows.
fn announced(path: &Path, rows: usize, per_row: u64) -> Result<u64, PluginError> {
    (rows as u64)
        .checked_mul(per_row)
        .ok_or_else(|| bad(path, format!("{rows} rows overflow")))
}

/// A checked `.npy` file: where its data starts and how many rows it holds.
#[derive(Clone, Debug)]
pub(crate) struct NpyArray {
    pub(crate) path: PathBuf,
    pub(crate) rows: usize,
    data_offset: u64,
    file_len: u64,
    label_type: Option<LabelType>,
}

/// Opens and checks a `.npy` file of `kind` without reading its data.
pub(crate) fn open_npy(path: &Path, kind: Kind) -> Result<NpyArray, PluginError> {
    let mut file = File::open(path).map_err(|e| bad(path, format!("cannot open: {e}")))?;
    let file_len = file
        .metadata()
        .map_err(|e| bad(path, format!("cannot read metadata: {e}")))?
        .len();
    let mut prefix = Vec::with_capacity(12);
    (&mut file)
        .take(12)
        .read_to_end(&mut prefix)
        .map_err(|e| bad(path, format!("cannot read: {e}")))?;
    check_prefix(path, &prefix, file_len)?;
    file.rewind()
        .map_err(|e| bad(path, format!("cannot read: {e}")))?;
    let header = NpyHeader::from_reader(&mut file)
        .map_err(|e| bad(path, format!("malformed .npy header: {e}")))?;
    let data_offset = file
        .stream_position()
        .map_err(|e| bad(path, format!("cannot read: {e}")))?;
    let (rows, label_type) = check_header(path, &header, kind)?;
    let expected = announced(path, rows, row_bytes(kind, label_type))?;
    let actual = file_len - data_offset.min(file_len);
    if actual != expected {
        return Err(bad(
            path,
            format!(
                "the header announces shape {:?} = {expected} bytes of data but {actual} follow it{}",
                header.shape(),
                if actual < expected {
                    " (truncated)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(NpyArray {
        path: path.to_path_buf(),
        rows,
        data_offset,
        file_len,
        label_type,
    })
}

/// Checks every label is a CIFAR-10 class and narrows them to bytes.
fn class_labels(path: &Path, labels: Vec<i64>) -> Result<Vec<u8>, PluginError> {
    labels
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            u8::try_from(l)
                .ok()
                .filter(|&l| i64::from(l) < CLASSES)
                .ok_or_else(|| {
                    bad(
                        path,
                        format!("label {l} at row {i} is not a CIFAR-10 class (0..9)"),
                    )
                })
        })
        .collect()
}

/// Reads the labels of a checked npy header from `reader` (positioned at the data).
fn read_labels(
    path: &Path,
    header: NpyHeader,
    label_type: Option<LabelType>,
    reader: impl Read,
) -> Result<Vec<u8>, PluginError> {
    let npy = NpyFile::with_header(header, reader);
    let read_error = |e: std::io::Error| bad(path, format!("cannot read the labels: {e}"));
    let values: Vec<i64> = match label_type {
        Some(LabelType::I64) => npy.into_vec::<i64>().map_err(read_error)?,
        Some(LabelType::I32) => npy
            .into_vec::<i32>()
            .map_err(read_error)?
            .into_iter()
            .map(i64::from)
            .collect(),
        _ => npy
            .into_vec::<u8>()
            .map_err(read_error)?
            .into_iter()
            .map(i64::from)
            .collect(),
    };
    class_labels(path, values)
}

impl NpyArray {
    /// Reads every label of a checked labels file (its size is known to match its header).
    pub(crate) fn labels(&self) -> Result<Vec<u8>, PluginError> {
        let path = &self.path;
        let mut file = File::open(path).map_err(|e| bad(path, format!("cannot open: {e}")))?;
        let header = NpyHeader::from_reader(&mut file)
            .map_err(|e| bad(path, format!("malformed .npy header: {e}")))?;
        self.check_unchanged(&file)?;
        read_labels(path, header, self.label_type, std::io::BufReader::new(file))
    }

    /// Errors when the file's size differs from the one checked.
    fn check_unchanged(&self, file: &File) -> Result<(), PluginError> {
        let len = file
            .metadata()
            .map_err(|e| bad(&self.path, format!("cannot read metadata: {e}")))?
            .len();
        if len != self.file_len {
            return Err(bad(
                &self.path,
                format!(
                    "the file changed size since it was checked ({} bytes, now {len})",
                    self.file_len
                ),
            ));
        }
        Ok(())
    }

    /// Opens the images for reading rows.
    pub(crate) fn open_rows(&self) -> Result<NpyRows, PluginError> {
        let file =
            File::open(&self.path).map_err(|e| bad(&self.path, format!("cannot open: {e}")))?;
        self.check_unchanged(&file)?;
        Ok(NpyRows {
            array: self.clone(),
            file,
        })
    }
}

/// An open images `.npy`, read one row at a time.
#[derive(Debug)]
pub(crate) struct NpyRows {
    array: NpyArray,
    file: File,
}

impl NpyRows {
    /// Row `row` (HWC, already the sample layout).
    pub(crate) fn row(&self, row: usize) -> Result<Vec<u8>, PluginError> {
        let mut pixels = vec![0u8; IMAGE_BYTES];
        let offset = self.array.data_offset + (row as u64) * IMAGE_BYTES as u64;
        crate::read_at(&self.file, &mut pixels, offset).map_err(|e| {
            bad(
                &self.array.path,
                format!("cannot read image row {row} at byte {offset}: {e}"),
            )
        })?;
        Ok(pixels)
    }
}

/// The images and labels of an `.npz` archive (`images` and `labels` arrays).
#[derive(Debug)]
pub(crate) struct NpzArrays {
    /// Rows of both arrays.
    pub(crate) rows: usize,
    /// The images, HWC rows; empty when only the headers were read.
    pub(crate) images: Vec<u8>,
    /// The labels; empty when only the headers were read.
    pub(crate) labels: Vec<u8>,
}

/// Opens `name` in an `.npz` and checks its header: the header, the stream positioned at
/// the data, and the rows.
fn npz_array<'a, R: Read + Seek>(
    path: &Path,
    zip: &'a mut npyz::zip::ZipArchive<R>,
    name: &str,
    kind: Kind,
) -> Result<(NpyHeader, impl Read + 'a, usize, Option<LabelType>), PluginError> {
    let entry_name = format!("{name}.npy");
    if zip.file_names().all(|f| f != entry_name) {
        let mut arrays: Vec<&str> = zip
            .file_names()
            .map(|f| f.strip_suffix(".npy").unwrap_or(f))
            .collect();
        arrays.sort_unstable();
        return Err(bad(
            path,
            format!(
                "no array '{name}' in the archive (it holds: {}); expected 'images' and 'labels'",
                if arrays.is_empty() {
                    "nothing".to_owned()
                } else {
                    arrays.join(", ")
                }
            ),
        ));
    }
    let mut entry = zip
        .by_name(&entry_name)
        .map_err(|e| bad(path, format!("cannot open array '{name}': {e}")))?;
    let size = entry.size();
    let mut prefix = Vec::with_capacity(12);
    (&mut entry)
        .take(12)
        .read_to_end(&mut prefix)
        .map_err(|e| bad(path, format!("cannot read array '{name}': {e}")))?;
    let array_path = path.join(&entry_name);
    let header_end = check_prefix(&array_path, &prefix, size)?;
    let mut reader = std::io::Cursor::new(prefix).chain(entry);
    let header = NpyHeader::from_reader(&mut reader)
        .map_err(|e| bad(&array_path, format!("malformed .npy header: {e}")))?;
    let (rows, label_type) = check_header(&array_path, &header, kind)?;
    let expected = announced(&array_path, rows, row_bytes(kind, label_type))?;
    let actual = size.saturating_sub(header_end);
    if actual != expected || expected > MAX_NPZ_ARRAY {
        return Err(bad(
            &array_path,
            format!(
                "the header announces shape {:?} = {expected} bytes of data but the archive lists {actual}{}",
                header.shape(),
                if expected > MAX_NPZ_ARRAY {
                    format!(" (more than the {} MiB accepted)", MAX_NPZ_ARRAY >> 20)
                } else {
                    String::new()
                }
            ),
        ));
    }
    Ok((header, reader.take(expected), rows, label_type))
}

/// Opens an `.npz` of CIFAR images and labels; reads the data only when `data` is true.
pub(crate) fn read_npz(path: &Path, data: bool) -> Result<NpzArrays, PluginError> {
    // The zip reader is third-party code on untrusted bytes: a panic in it is one more way
    // the file is broken, not a crash.
    std::panic::catch_unwind(|| read_npz_inner(path, data)).unwrap_or_else(|_| {
        Err(bad(
            path,
            "the zip reader failed on this archive: not a readable .npz",
        ))
    })
}

fn read_npz_inner(path: &Path, data: bool) -> Result<NpzArrays, PluginError> {
    let file = File::open(path).map_err(|e| bad(path, format!("cannot open: {e}")))?;
    let mut zip = npyz::zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad(path, format!("not a readable .npz (zip) archive: {e}")))?;
    let (rows, images) = {
        let (_, mut reader, rows, _) = npz_array(path, &mut zip, "images", Kind::Images)?;
        let mut images = Vec::new();
        if data {
            reader
                .read_to_end(&mut images)
                .map_err(|e| bad(path, format!("cannot read array 'images': {e}")))?;
            if images.len() != rows * IMAGE_BYTES {
                return Err(bad(
                    path,
                    format!(
                        "array 'images' ends after {} of its {} bytes (truncated)",
                        images.len(),
                        rows * IMAGE_BYTES
                    ),
                ));
            }
        }
        (rows, images)
    };
    let (header, reader, label_rows, label_type) =
        npz_array(path, &mut zip, "labels", Kind::Labels)?;
    if label_rows != rows {
        return Err(bad(
            path,
            format!("{rows} images but {label_rows} labels: the arrays differ in length"),
        ));
    }
    let labels = if data {
        read_labels(&path.join("labels.npy"), header, label_type, reader)?
    } else {
        Vec::new()
    };
    Ok(NpzArrays {
        rows,
        images,
        labels,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `.npy` file of `descr`, `shape` and raw `data`, in C or Fortran order.
    pub(crate) fn npy(descr: &str, shape: &[usize], fortran: bool, data: &[u8]) -> Vec<u8> {
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        let shape = if dims.len() == 1 {
            format!("({},)", dims[0])
        } else {
            format!("({})", dims.join(", "))
        };
        let mut text = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + text.len() + 1) % 64 != 0 {
            text.push(' ');
        }
        text.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(data);
        out
    }

    /// An `.npz` holding the given `.npy` files by array name.
    pub(crate) fn npz(arrays: &[(&str, Vec<u8>)]) -> Vec<u8> {
        use std::io::Write;
        let mut zip = npyz::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, bytes) in arrays {
            zip.start_file(
                format!("{name}.npy"),
                npyz::zip::write::FileOptions::default(),
            )
            .unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    /// `n` images whose byte at (row r, column c, channel k) is `pixel(i, r, c, k)`.
    pub(crate) fn images(n: usize) -> Vec<u8> {
        let mut data = Vec::with_capacity(n * IMAGE_BYTES);
        for i in 0..n {
            for r in 0..SIDE {
                for c in 0..SIDE {
                    for k in 0..3 {
                        data.push(pixel(i, r, c, k));
                    }
                }
            }
        }
        data
    }

    /// The test pattern: different for every image, pixel and channel within an image.
    pub(crate) fn pixel(i: usize, r: usize, c: usize, k: usize) -> u8 {
        ((i * 7 + r * 32 * 3 + c * 3 + k) % 251) as u8
    }

    #[test]
    fn good_files_read_back_byte_by_byte() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.npy");
        std::fs::write(&data, npy("|u1", &[3, 32, 32, 3], false, &images(3))).unwrap();
        let array = open_npy(&data, Kind::Images).unwrap();
        assert_eq!(array.rows, 3);
        let rows = array.open_rows().unwrap();
        let row = rows.row(2).unwrap();
        for (r, c, k) in [(0, 0, 0), (5, 7, 2), (31, 31, 1)] {
            assert_eq!(row[(r * SIDE + c) * 3 + k], pixel(2, r, c, k));
        }
        for (descr, bytes) in [
            ("|u1", vec![3u8, 0, 9]),
            (
                "<i8",
                [3i64, 0, 9].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            (
                "<i4",
                [3i32, 0, 9].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        ] {
            let labels = dir.path().join("labels.npy");
            std::fs::write(&labels, npy(descr, &[3], false, &bytes)).unwrap();
            let array = open_npy(&labels, Kind::Labels).unwrap();
            assert_eq!(array.labels().unwrap(), vec![3, 0, 9], "{descr}");
        }

        let archive = dir.path().join("a.npz");
        std::fs::write(
            &archive,
            npz(&[
                ("images", npy("|u1", &[2, 32, 32, 3], false, &images(2))),
                (
                    "labels",
                    npy(
                        "<i8",
                        &[2],
                        false,
                        &[7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
                    ),
                ),
            ]),
        )
        .unwrap();
        let headers = read_npz(&archive, false).unwrap();
        assert_eq!((headers.rows, headers.images.len()), (2, 0));
        let full = read_npz(&archive, true).unwrap();
        assert_eq!(full.labels, vec![7, 1]);
        assert_eq!(full.images, images(2));
    }

    #[test]
    fn broken_files_are_one_clear_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let one = images(1);
        let cases = [
            (
                write("magic.npy", b"PK\x03\x04 not numpy at all"),
                Kind::Images,
                "wrong magic",
            ),
            (write("short.npy", b"\x93NU"), Kind::Images, "wrong magic"),
            (
                write(
                    "float.npy",
                    &npy("<f4", &[1, 32, 32, 3], false, &[0; IMAGE_BYTES * 4]),
                ),
                Kind::Images,
                "images of float32 ('<f4') where uint8 is expected",
            ),
            (
                write(
                    "u16.npy",
                    &npy("<u2", &[1, 32, 32, 3], false, &[0; IMAGE_BYTES * 2]),
                ),
                Kind::Images,
                "uint16",
            ),
            (
                write("chw.npy", &npy("|u1", &[1, 3, 32, 32], false, &one)),
                Kind::Images,
                "shape (1, 3, 32, 32) are channels-first",
            ),
            (
                write("grey.npy", &npy("|u1", &[3, 32, 32], false, &one)),
                Kind::Images,
                "shape (3, 32, 32) where (N, 32, 32, 3) is expected",
            ),
            (
                write("fortran.npy", &npy("|u1", &[1, 32, 32, 3], true, &one)),
                Kind::Images,
                "Fortran order",
            ),
            (
                write("truncated.npy", &npy("|u1", &[2, 32, 32, 3], false, &one)),
                Kind::Images,
                "(truncated)",
            ),
            (
                write(
                    "huge.npy",
                    &npy("|u1", &[1_000_000_000_000, 32, 32, 3], false, &one),
                ),
                Kind::Images,
                "bytes of data but 3072 follow",
            ),
            (
                write("labels2d.npy", &npy("|u1", &[2, 1], false, &[0, 0])),
                Kind::Labels,
                "labels of shape (2, 1) where (N,) is expected",
            ),
            (
                write("labelsf.npy", &npy("<f8", &[1], false, &[0; 8])),
                Kind::Labels,
                "labels of float64",
            ),
            (
                write("header.npy", b"\x93NUMPY\x01\x00\xff\xff{'descr'"),
                Kind::Labels,
                "the .npy header announces 65535 bytes",
            ),
            (
                write(
                    "garbled.npy",
                    &npy("|u1", &[1], false, &[0])
                        .iter()
                        .map(|&b| if b == b'{' { b'[' } else { b })
                        .collect::<Vec<_>>(),
                ),
                Kind::Labels,
                "malformed .npy header",
            ),
        ];
        for (path, kind, needle) in cases {
            let e = open_npy(&path, kind).unwrap_err().to_string();
            assert!(e.starts_with(&path.display().to_string()), "{e}");
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let labels = write("labels.npy", &npy("|u1", &[3], false, &[1, 10, 2]));
        let e = open_npy(&labels, Kind::Labels)
            .unwrap()
            .labels()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("label 10 at row 1 is not a CIFAR-10 class"),
            "{e}"
        );
        let negative = write(
            "negative.npy",
            &npy("<i8", &[1], false, &(-1i64).to_le_bytes()),
        );
        let e = open_npy(&negative, Kind::Labels)
            .unwrap()
            .labels()
            .unwrap_err()
            .to_string();
        assert!(e.contains("label -1 at row 0"), "{e}");

        let good_images = npy("|u1", &[2, 32, 32, 3], false, &images(2));
        let npz_cases = [
            (
                write(
                    "noimages.npz",
                    &npz(&[("labels", npy("|u1", &[2], false, &[0, 1]))]),
                ),
                "no array 'images' in the archive (it holds: labels)",
            ),
            (
                write("nolabels.npz", &npz(&[("images", good_images.clone())])),
                "no array 'labels'",
            ),
            (
                write(
                    "mismatch.npz",
                    &npz(&[
                        ("images", good_images.clone()),
                        ("labels", npy("|u1", &[3], false, &[0, 1, 2])),
                    ]),
                ),
                "2 images but 3 labels",
            ),
            (
                write(
                    "badimages.npz",
                    &npz(&[
                        (
                            "images",
                            npy("<f4", &[2, 32, 32, 3], false, &[0; 2 * IMAGE_BYTES * 4]),
                        ),
                        ("labels", npy("|u1", &[2], false, &[0, 1])),
                    ]),
                ),
                "images.npy: images of float32",
            ),
            (
                write("garbage.npz", b"this is no zip archive"),
                "not a readable .npz (zip) archive",
            ),
        ];
        for (path, needle) in npz_cases {
            let e = read_npz(&path, true).unwrap_err().to_string();
            assert!(e.starts_with(&path.display().to_string()), "{e}");
            assert!(e.contains(needle), "{needle}: {e}");
        }
        // A zip cut short: the central directory is gone.
        let whole = npz(&[
            ("images", good_images.clone()),
            ("labels", npy("|u1", &[2], false, &[0, 1])),
        ]);
        let cut = write("cut.npz", &whole[..whole.len() / 2]);
        let e = read_npz(&cut, true).unwrap_err().to_string();
        assert!(
            e.contains("cut.npz: not a readable .npz (zip) archive"),
            "{e}"
        );
        // A corrupted byte in the middle of the stored images: the zip's CRC or our
        // length checks catch it; either way an error naming the file, no panic.
        let mut flipped = whole;
        let mid = flipped.len() / 3;
        flipped[mid] ^= 0xff;
        let flipped = write("flipped.npz", &flipped);
        if let Err(e) = read_npz(&flipped, true) {
            assert!(e.to_string().contains("flipped.npz"), "{e}");
        }
    }
}
