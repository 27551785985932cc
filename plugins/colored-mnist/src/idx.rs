//! The IDX format of the MNIST files (`train-images-idx3-ubyte`, `...-labels-idx1-ubyte`,
//! plain or `.gz`): a big-endian magic (`0x0000_08_NN`: unsigned bytes, NN dimensions), NN
//! big-endian `u32` sizes, then the data. Every size is checked against the real file
//! before anything is allocated for it.

use std::io::Read;
use std::path::{Path, PathBuf};

use shiftscope_sdk::PluginError;

/// Largest decompressed IDX file accepted (MNIST's largest is 47 MB): no decompression bombs.
const MAX_BYTES: u64 = 512 << 20;

/// Images of one IDX file: `count` images of `rows`×`cols` bytes.
#[derive(Debug)]
pub(crate) struct IdxImages {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) data: Vec<u8>,
}

impl IdxImages {
    pub(crate) fn len(&self) -> usize {
        self.data.len() / (self.rows * self.cols).max(1)
    }

    pub(crate) fn image(&self, index: usize) -> &[u8] {
        let size = self.rows * self.cols;
        &self.data[index * size..(index + 1) * size]
    }
}

fn bad(path: &Path, problem: impl std::fmt::Display) -> PluginError {
    PluginError::invalid_argument(format!("{}: {problem}", path.display()))
}

/// The file's bytes, gunzipped when the name ends in `.gz`.
fn read_bytes(path: &Path) -> Result<Vec<u8>, PluginError> {
    let file = std::fs::File::open(path).map_err(|e| bad(path, format!("cannot open: {e}")))?;
    let mut bytes = Vec::new();
    let gz = path.extension().is_some_and(|e| e == "gz");
    let read = if gz {
        flate2::read::GzDecoder::new(file)
            .take(MAX_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        file.take(MAX_BYTES + 1).read_to_end(&mut bytes)
    };
    read.map_err(|e| {
        bad(
            path,
            format!("cannot read{}: {e}", if gz { " (gzip)" } else { "" }),
        )
    })?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(bad(
            path,
            format!("larger than {} MiB: not an MNIST file", MAX_BYTES >> 20),
        ));
    }
    Ok(bytes)
}

/// Parses the header: the dimensions, after checking magic and size against the data.
fn header(path: &Path, bytes: &[u8], want_dims: usize) -> Result<(Vec<usize>, usize), PluginError> {
    if bytes.len() < 4 {
        return Err(bad(
            path,
            format!("{} bytes is too short for an IDX header", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 {
        return Err(bad(
            path,
            format!(
                "wrong magic {:02x} {:02x} {:02x} {:02x}: not an IDX file of unsigned bytes (00 00 08 0{want_dims})",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    let dims = usize::from(bytes[3]);
    if dims != want_dims {
        return Err(bad(
            path,
            format!("{dims} dimensions where {want_dims} are expected"),
        ));
    }
    let start = 4 + 4 * dims;
    if bytes.len() < start {
        return Err(bad(path, "truncated IDX header"));
    }
    let sizes: Vec<usize> = bytes[4..start]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = sizes
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(path, format!("dimensions {sizes:?} overflow")))?;
    let actual = bytes.len() - start;
    if actual != expected {
        return Err(bad(
            path,
            format!(
                "the header announces {sizes:?} = {expected} bytes of data but the file holds {actual}{}",
                if actual < expected {
                    " (truncated)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok((sizes, start))
}

/// Reads an IDX image file (3 dimensions).
pub(crate) fn read_images(path: &Path) -> Result<IdxImages, PluginError> {
    let mut bytes = read_bytes(path)?;
    let (sizes, start) = header(path, &bytes, 3)?;
    if sizes[1] == 0 || sizes[2] == 0 {
        return Err(bad(
            path,
            format!("images of {}x{} pixels", sizes[1], sizes[2]),
        ));
    }
    bytes.drain(..start);
    Ok(IdxImages {
        rows: sizes[1],
        cols: sizes[2],
        data: bytes,
    })
}

/// Reads an IDX label file (1 dimension), each label below `classes`.
pub(crate) fn read_labels(path: &Path, classes: u8) -> Result<Vec<u8>, PluginError> {
    let mut bytes = read_bytes(path)?;
    let (_, start) = header(path, &bytes, 1)?;
    bytes.drain(..start);
    if let Some((i, &label)) = bytes.iter().enumerate().find(|(_, l)| **l >= classes) {
        return Err(bad(
            path,
            format!("label {label} at index {i} is not below {classes}"),
        ));
    }
    Ok(bytes)
}

/// The MNIST files of one split in `dir`, plain or gzipped: (images, labels), or `None` when
/// neither form is there.
pub(crate) fn find_split(dir: &Path, prefix: &str) -> Option<(PathBuf, PathBuf)> {
    let images = format!("{prefix}-images-idx3-ubyte");
    let labels = format!("{prefix}-labels-idx1-ubyte");
    for suffix in ["", ".gz"] {
        let i = dir.join(format!("{images}{suffix}"));
        let l = dir.join(format!("{labels}{suffix}"));
        if i.is_file() && l.is_file() {
            return Some((i, l));
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// An IDX file of `dims` with `data`.
    pub(crate) fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_plain_and_gzipped_files() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..2 * 4 * 3).map(|i| i as u8).collect();
        let plain = dir.path().join("x-images-idx3-ubyte");
        std::fs::write(&plain, idx(&[2, 4, 3], &data)).unwrap();
        let images = read_images(&plain).unwrap();
        assert_eq!((images.len(), images.rows, images.cols), (2, 4, 3));
        assert_eq!(images.image(1), &data[12..24]);

        let gz = dir.path().join("x-labels-idx1-ubyte.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&idx(&[3], &[7, 0, 9])).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert_eq!(read_labels(&gz, 10).unwrap(), vec![7, 0, 9]);
    }

    #[test]
    fn broken_files_are_clear_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let cases = [
            (write("magic", &[1, 2, 3, 4, 0, 0, 0, 1, 5]), "wrong magic"),
            (
                write("dims", &idx(&[2, 2], &[0; 4])),
                "2 dimensions where 3 are expected",
            ),
            (
                write("truncated", &idx(&[2, 4, 4], &[0; 20])),
                "(truncated)",
            ),
            (write("long", &idx(&[1, 2, 2], &[0; 7])), "holds 7"),
            (write("short", &[0, 0]), "too short"),
            (write("header", &[0, 0, 8, 3, 0, 0]), "truncated IDX header"),
        ];
        for (path, needle) in cases {
            let e = read_images(&path).unwrap_err().to_string();
            assert!(e.starts_with(&path.display().to_string()), "{e}");
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let labels = write("labels", &idx(&[2], &[3, 12]));
        let e = read_labels(&labels, 10).unwrap_err().to_string();
        assert!(e.contains("label 12 at index 1"), "{e}");
        let notgz = write("x.gz", b"not gzip at all");
        assert!(
            read_labels(&notgz, 10)
                .unwrap_err()
                .to_string()
                .contains("gzip")
        );
        let missing = dir.path().join("missing");
        assert!(
            read_images(&missing)
                .unwrap_err()
                .to_string()
                .contains("cannot open")
        );
    }
}
