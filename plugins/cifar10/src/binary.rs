//! The CIFAR-10 binary version (`cifar-10-batches-bin/`): `data_batch_1.bin` ..
//! `data_batch_5.bin` (train) and `test_batch.bin` (test), each a run of 3,073-byte records
//! (one label byte, then 1,024 red, 1,024 green and 1,024 blue bytes, each plane row-major
//! 32×32), 10,000 records (30,730,000 bytes) per file in the real set; class names one per
//! line in `batches.meta.txt`.
//!
//! Sizes are checked when the files are found, labels (each below 10) when a split is
//! opened, and records are read one at a time by position when asked for.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use shiftscope_sdk::PluginError;

use crate::npy::bad;
use crate::shapes::{IMAGE_BYTES, SIDE};

/// Bytes of one record: the label and the three colour planes.
pub(crate) const RECORD: usize = 1 + IMAGE_BYTES;
/// The train files, in order.
pub(crate) const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test file.
pub(crate) const TEST_FILE: &str = "test_batch.bin";
/// The class names file.
pub(crate) const META_FILE: &str = "batches.meta.txt";
/// CIFAR-10's class names, used when `batches.meta.txt` is absent.
pub(crate) const CIFAR_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// One checked batch file.
#[derive(Clone, Debug)]
pub(crate) struct BatchFile {
    pub(crate) path: PathBuf,
    pub(crate) records: usize,
    len: u64,
}

/// Checks a batch file's size: a positive whole number of records.
pub(crate) fn check_batch(path: &Path) -> Result<BatchFile, PluginError> {
    let len = std::fs::metadata(path)
        .map_err(|e| bad(path, format!("cannot read metadata: {e}")))?
        .len();
    let record = RECORD as u64;
    if len == 0 {
        return Err(bad(path, "empty: a CIFAR-10 batch holds 3073-byte records"));
    }
    if len % record != 0 {
        return Err(bad(
            path,
            format!(
                "{len} bytes is not a whole number of 3073-byte CIFAR-10 records ({} records and \
                 {} bytes over): truncated, or not a CIFAR-10 binary batch (the real ones are \
                 30730000 bytes)",
                len / record,
                len % record
            ),
        ));
    }
    let records = usize::try_from(len / record)
        .map_err(|_| bad(path, format!("{len} bytes do not fit in memory addresses")))?;
    Ok(BatchFile {
        path: path.to_path_buf(),
        records,
        len,
    })
}

/// The binary set found in one folder.
#[derive(Debug)]
pub(crate) struct BinarySet {
    pub(crate) dir: PathBuf,
    pub(crate) train: Vec<BatchFile>,
    pub(crate) test: BatchFile,
    pub(crate) classes: Vec<String>,
}

/// The binary set in `dir`: `None` when none of its files is there; an error when only some
/// are, or one is broken.
pub(crate) fn find(dir: &Path) -> Result<Option<BinarySet>, PluginError> {
    let names: Vec<&str> = TRAIN_FILES.iter().copied().chain([TEST_FILE]).collect();
    let present: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| dir.join(n).is_file())
        .collect();
    if present.is_empty() {
        return Ok(None);
    }
    if let Some(missing) = names.iter().find(|n| !present.contains(n)) {
        return Err(bad(
            &dir.join(missing),
            format!(
                "missing: the folder holds {} of the CIFAR-10 binary batches but not this one",
                present.join(", ")
            ),
        ));
    }
    let train = TRAIN_FILES
        .iter()
        .map(|n| check_batch(&dir.join(n)))
        .collect::<Result<Vec<_>, _>>()?;
    let test = check_batch(&dir.join(TEST_FILE))?;
    let meta = dir.join(META_FILE);
    let classes = if meta.is_file() {
        read_meta(&meta)?
    } else {
        CIFAR_CLASSES.iter().map(|&c| c.to_owned()).collect()
    };
    Ok(Some(BinarySet {
        dir: dir.to_path_buf(),
        train,
        test,
        classes,
    }))
}

/// The ten class names of `batches.meta.txt` (blank lines ignored).
pub(crate) fn read_meta(path: &Path) -> Result<Vec<String>, PluginError> {
    let mut text = String::new();
    File::open(path)
        .and_then(|f| f.take(64 << 10).read_to_string(&mut text))
        .map_err(|e| bad(path, format!("cannot read class names: {e}")))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    if names.len() != 10 || unique.len() != 10 {
        return Err(bad(
            path,
            format!(
                "{} class names ({} distinct) where 10 distinct names, one per line, are expected",
                names.len(),
                unique.len()
            ),
        ));
    }
    Ok(names)
}

/// Batch files opened for reading records.
#[derive(Debug)]
pub(crate) struct Records {
    files: Vec<(BatchFile, File)>,
}

impl Records {
    /// Opens `batches` and reads their labels, each checked to be below 10.
    pub(crate) fn open(batches: &[BatchFile]) -> Result<(Records, Vec<u8>), PluginError> {
        let mut files = Vec::with_capacity(batches.len());
        let mut labels = Vec::with_capacity(batches.iter().map(|b| b.records).sum());
        for batch in batches {
            let path = &batch.path;
            let mut file = File::open(path).map_err(|e| bad(path, format!("cannot open: {e}")))?;
            let len = file
                .metadata()
                .map_err(|e| bad(path, format!("cannot read metadata: {e}")))?
                .len();
            if len != batch.len {
                return Err(bad(
                    path,
                    format!(
                        "the file changed size since it was checked ({} bytes, now {len})",
                        batch.len
                    ),
                ));
            }
            // Whole chunks of records, reading only their label bytes.
            let mut chunk = vec![0u8; RECORD * 256];
            let mut record = 0;
            while record < batch.records {
                let n = (batch.records - record).min(256);
                file.read_exact(&mut chunk[..n * RECORD]).map_err(|e| {
                    bad(
                        path,
                        format!("cannot read record {record}: {e} (truncated?)"),
                    )
                })?;
                for (i, r) in chunk[..n * RECORD].chunks_exact(RECORD).enumerate() {
                    if r[0] >= 10 {
                        return Err(bad(
                            path,
                            format!(
                                "record {} (byte {}) has label {}: not a CIFAR-10 class (0..9)",
                                record + i,
                                (record + i) * RECORD,
                                r[0]
                            ),
                        ));
                    }
                    labels.push(r[0]);
                }
                record += n;
            }
            files.push((batch.clone(), file));
        }
        Ok((Records { files }, labels))
    }

    /// Image `index` across the files, converted from planes to HWC.
    pub(crate) fn image(&self, mut index: usize) -> Result<Vec<u8>, PluginError> {
        for (batch, file) in &self.files {
            if index < batch.records {
                let mut record = vec![0u8; RECORD];
                let offset = (index * RECORD) as u64;
                crate::read_at(file, &mut record, offset).map_err(|e| {
                    bad(
                        &batch.path,
                        format!("cannot read record {index} at byte {offset}: {e}"),
                    )
                })?;
                return Ok(planes_to_hwc(&record[1..]));
            }
            index -= batch.records;
        }
        Err(PluginError::out_of_range(format!(
            "record {index} past the end of the batches"
        )))
    }
}

/// Three row-major 32×32 planes (R, G, B) to interleaved HWC.
pub(crate) fn planes_to_hwc(planes: &[u8]) -> Vec<u8> {
    let plane = SIDE * SIDE;
    let mut hwc = Vec::with_capacity(IMAGE_BYTES);
    for p in 0..plane {
        hwc.extend_from_slice(&[planes[p], planes[plane + p], planes[2 * plane + p]]);
    }
    hwc
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::npy::tests::pixel;

    /// A batch of records whose image `i` holds [`pixel`]`(i + first, r, c, k)`.
    pub(crate) fn batch(labels: &[u8], first: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(labels.len() * RECORD);
        for (i, &label) in labels.iter().enumerate() {
            out.push(label);
            for k in 0..3 {
                for r in 0..SIDE {
                    for c in 0..SIDE {
                        out.push(pixel(i + first, r, c, k));
                    }
                }
            }
        }
        out
    }

    /// Writes a whole binary set into `dir`: `per_file` records per train file, `test`
    /// records in the test file.
    pub(crate) fn write_set(dir: &Path, per_file: usize, test: usize) {
        std::fs::create_dir_all(dir).unwrap();
        for (f, name) in TRAIN_FILES.iter().enumerate() {
            let labels: Vec<u8> = (0..per_file).map(|i| ((i + f) % 10) as u8).collect();
            std::fs::write(dir.join(name), batch(&labels, f * per_file)).unwrap();
        }
        let labels: Vec<u8> = (0..test).map(|i| (9 - i % 10) as u8).collect();
        std::fs::write(dir.join(TEST_FILE), batch(&labels, 0)).unwrap();
    }

    #[test]
    fn records_read_back_byte_by_byte_across_files() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), 3, 4);
        let set = find(dir.path()).unwrap().unwrap();
        assert_eq!(set.classes[0], "airplane");
        let (records, labels) = Records::open(&set.train).unwrap();
        assert_eq!(labels.len(), 15);
        assert_eq!(&labels[..4], &[0, 1, 2, 1]);
        for index in [0, 4, 14] {
            let image = records.image(index).unwrap();
            for (r, c, k) in [(0, 0, 0), (1, 2, 1), (31, 30, 2)] {
                assert_eq!(image[(r * SIDE + c) * 3 + k], pixel(index, r, c, k));
            }
        }
        assert!(records.image(15).is_err());
        std::fs::write(
            dir.path().join(META_FILE),
            "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n",
        )
        .unwrap();
        assert_eq!(find(dir.path()).unwrap().unwrap().classes[9], "j");
    }

    #[test]
    fn broken_batches_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(find(dir.path()).unwrap().is_none());
        write_set(dir.path(), 2, 2);
        let test = dir.path().join(TEST_FILE);

        // A truncated last record: the size is not a whole number of records.
        let mut bytes = batch(&[1, 2], 0);
        bytes.truncate(RECORD + 100);
        std::fs::write(&test, &bytes).unwrap();
        let e = find(dir.path()).unwrap_err().to_string();
        assert!(e.starts_with(&test.display().to_string()), "{e}");
        assert!(
            e.contains("3173 bytes is not a whole number of 3073-byte CIFAR-10 records (1 records and 100 bytes over)"),
            "{e}"
        );

        std::fs::write(&test, []).unwrap();
        let e = find(dir.path()).unwrap_err().to_string();
        assert!(e.contains("test_batch.bin: empty"), "{e}");

        // A label of 10.
        std::fs::write(&test, batch(&[3, 10], 0)).unwrap();
        let set = find(dir.path()).unwrap().unwrap();
        let e = Records::open(std::slice::from_ref(&set.test))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("test_batch.bin: record 1 (byte 3073) has label 10: not a CIFAR-10 class"),
            "{e}"
        );

        // A batch missing from the set.
        std::fs::remove_file(dir.path().join("data_batch_3.bin")).unwrap();
        let e = find(dir.path()).unwrap_err().to_string();
        assert!(e.contains("data_batch_3.bin: missing"), "{e}");

        let meta = dir.path().join(META_FILE);
        std::fs::write(&meta, "cat\ndog\n").unwrap();
        let e = read_meta(&meta).unwrap_err().to_string();
        assert!(e.contains("2 class names (2 distinct) where 10"), "{e}");
    }
}
