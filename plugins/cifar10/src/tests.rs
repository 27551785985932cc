//! Tests of the whole plugin over tiny files of every layout written in temp folders.

use std::path::Path;

use super::*;
use crate::binary::tests::write_set;
use crate::npy::tests::{images, npy, npz, pixel};

fn source(config: &str) -> Cifar10 {
    Cifar10::create(config).unwrap()
}

fn config(dir: &Path) -> String {
    format!("(data: Some({:?}), train_len: 40, test_len: 30)", dir)
}

/// Every layout in `dir`: the binary set (2 records per train file, 4 test records),
/// CIFAR-10-C with two corruptions of 10 rows, CIFAR-10.1 of 3 images, CIFAR-10.2 of 2
/// test and 4 train images.
fn write_everything(dir: &Path) {
    write_set(&dir.join("cifar-10-batches-bin"), 2, 4);
    let c = dir.join("CIFAR-10-C");
    std::fs::create_dir_all(&c).unwrap();
    let labels: Vec<u8> = (0..10).map(|i| (i * 3 % 10) as u8).collect();
    std::fs::write(c.join("labels.npy"), npy("|u1", &[10], false, &labels)).unwrap();
    for name in ["fog", "gaussian_noise"] {
        std::fs::write(
            c.join(format!("{name}.npy")),
            npy("|u1", &[10, 32, 32, 3], false, &images(10)),
        )
        .unwrap();
    }
    let v1 = dir.join("CIFAR-10.1");
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::write(
        v1.join(V1_DATA),
        npy("|u1", &[3, 32, 32, 3], false, &images(3)),
    )
    .unwrap();
    let l: Vec<u8> = [5i64, 6, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(v1.join(V1_LABELS), npy("<i8", &[3], false, &l)).unwrap();
    let v2 = dir.join("cifar-10.2");
    std::fs::create_dir_all(&v2).unwrap();
    for (file, n) in [("cifar102_test.npz", 2), ("cifar102_train.npz", 4)] {
        let labels: Vec<u8> = (0..n).map(|i| (9 - i) as u8).collect();
        std::fs::write(
            v2.join(file),
            npz(&[
                ("images", npy("|u1", &[n, 32, 32, 3], false, &images(n))),
                ("labels", npy("|u1", &[n], false, &labels)),
            ]),
        )
        .unwrap();
    }
}

fn assert_pixels(sample: &Sample, image: usize) {
    assert_eq!((sample.width, sample.height), (32, 32));
    for r in 0..32 {
        for c in 0..32 {
            for k in 0..3 {
                assert_eq!(
                    sample.pixels[(r * 32 + c) * 3 + k],
                    pixel(image, r, c, k),
                    "image {image} ({r}, {c}) channel {k}"
                );
            }
        }
    }
}

#[test]
fn procedural_set_when_no_files_named_as_such() {
    let empty = tempfile::tempdir().unwrap();
    let s = source(&config(empty.path()));
    let catalog = s.catalog().unwrap();
    let names: Vec<&str> = catalog.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["cifar10/test", "cifar10/train"]);
    for entry in &catalog {
        assert!(
            entry.description.contains(&format!(
                "procedural shapes and textures (no CIFAR-10 files in {}",
                empty.path().join("cifar-10-batches-bin").display()
            )),
            "{}",
            entry.description
        );
    }
    let test = s.open("cifar10/test").unwrap();
    assert_eq!(test.len(), 30);
    assert_eq!(test.classes()[5], "h-stripes");
    assert!(!test.classes().iter().any(|c| c == "airplane"));
    assert_eq!(s.open("cifar10/train").unwrap().len(), 40);
    // Train and test differ; the same seed gives the same pixels.
    let again = source(&config(empty.path()));
    assert_eq!(
        again.open("cifar10/test").unwrap().get(7).unwrap(),
        test.get(7).unwrap()
    );
    assert_ne!(
        s.open("cifar10/train").unwrap().get(7).unwrap(),
        test.get(7).unwrap()
    );
    let e = s.open("cifar10-c/fog/3").err().unwrap().to_string();
    assert!(e.contains("no CIFAR-10-C files were found"), "{e}");
    let e = s.open("cifar10/tset").err().unwrap().to_string();
    assert!(
        e.contains("no dataset 'cifar10/tset' (offered: cifar10/test"),
        "{e}"
    );
}

#[test]
fn procedural_conformance() {
    let s = source("(procedural: true, train_len: 40, test_len: 30)");
    shiftscope_testkit::check_dataset_source(&s).assert_passed(40);
    assert!(
        s.catalog().unwrap()[0]
            .description
            .contains("procedural shapes and textures (procedural: true in the config)")
    );
}

#[test]
fn any_set_can_be_corrupted_on_the_fly() {
    let s = source("(procedural: true, train_len: 40, test_len: 30)");
    let clean = s.open("cifar10/test").unwrap();
    for name in [
        "cifar10/test+fog/1",
        "cifar10/test+fog/5",
        "cifar10/test+pixelate/3",
    ] {
        let shifted = s.open(name).unwrap();
        assert_eq!(shifted.len(), clean.len(), "{name}");
        let (a, b) = (clean.get(3).unwrap(), shifted.get(3).unwrap());
        assert_eq!((a.label, a.width, a.height), (b.label, b.width, b.height));
        assert_ne!(a.pixels, b.pixels, "{name}");
        assert_eq!(
            shifted.get(3).unwrap(),
            b,
            "{name} is deterministic per index"
        );
    }
    let e = s.open("cifar10/test+fog/6").err().unwrap().to_string();
    assert!(e.contains("is not one of 1, 2, 3, 4, 5"), "{e}");
    let e = s.open("cifar10/tset+fog/2").err().unwrap().to_string();
    assert!(e.contains("no dataset 'cifar10/tset'"), "{e}");
}

#[test]
fn config_errors_are_clear() {
    let e = Cifar10::create("(colour: true)").unwrap_err().to_string();
    assert!(
        e.starts_with("cifar10 config:") && e.contains("colour"),
        "{e}"
    );
}

#[test]
fn every_layout_reads_back_byte_by_byte() {
    let dir = tempfile::tempdir().unwrap();
    write_everything(dir.path());
    let s = source(&config(dir.path()));
    let catalog = s.catalog().unwrap();
    let names: Vec<&str> = catalog.iter().map(|c| c.name.as_str()).collect();
    let mut expected = vec!["cifar10/test".to_owned(), "cifar10/train".to_owned()];
    for c in ["fog", "gaussian_noise"] {
        for sev in 1..=5 {
            expected.push(format!("cifar10-c/{c}/{sev}"));
        }
    }
    expected.extend(["cifar10.1", "cifar10.2", "cifar10.2/train"].map(str::to_owned));
    assert_eq!(names, expected);
    assert!(
        catalog[0]
            .description
            .starts_with("CIFAR-10 test split, 4 images from")
    );

    // Binary: planes converted to HWC; train spans the five files.
    let test = s.open("cifar10/test").unwrap();
    assert_eq!(test.len(), 4);
    assert_eq!(test.classes()[0], "airplane");
    let t2 = test.get(2).unwrap();
    assert_eq!(t2.label, 7);
    assert_pixels(&t2, 2);
    let train = s.open("cifar10/train").unwrap();
    assert_eq!(train.len(), 10);
    let t7 = train.get(7).unwrap(); // file 4 (f = 3), record 1
    assert_eq!(t7.label, 4);
    assert_pixels(&t7, 7);

    // CIFAR-10-C: severity 3 of 10 rows is rows 4..6.
    let fog = s.open("cifar10-c/fog/3").unwrap();
    assert_eq!(fog.len(), 2);
    let f1 = fog.get(1).unwrap();
    assert_eq!(f1.label, 5 * 3 % 10);
    assert_pixels(&f1, 5);
    assert!(fog.get(2).is_err());
    assert_eq!(fog.classes(), test.classes());

    let v1 = s.open("cifar10.1").unwrap();
    assert_eq!(v1.len(), 3);
    let s2 = v1.get(2).unwrap();
    assert_eq!(s2.label, 7);
    assert_pixels(&s2, 2);

    let v2 = s.open("cifar10.2/train").unwrap();
    assert_eq!(v2.len(), 4);
    let s3 = v2.get(3).unwrap();
    assert_eq!(s3.label, 6);
    assert_pixels(&s3, 3);
    assert_eq!(s.open("cifar10.2").unwrap().len(), 2);

    // Class names from batches.meta.txt apply to every CIFAR set.
    std::fs::write(
        dir.path().join("cifar-10-batches-bin/batches.meta.txt"),
        "plane\ncar\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n",
    )
    .unwrap();
    let s = source(&config(dir.path()));
    assert_eq!(s.open("cifar10.1").unwrap().classes()[1], "car");

    // `procedural: true` ignores the files.
    let p = source(&format!("(data: Some({:?}), procedural: true)", dir.path()));
    assert_eq!(p.catalog().unwrap().len(), 2);
}

#[test]
fn real_layout_conformance() {
    let dir = tempfile::tempdir().unwrap();
    write_everything(dir.path());
    let s = source(&config(dir.path()));
    shiftscope_testkit::check_dataset_source(&s).assert_passed(250);
}

#[test]
fn files_directly_in_the_data_folder_are_found() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 1, 2);
    std::fs::write(
        dir.path().join(V1_DATA),
        npy("|u1", &[1, 32, 32, 3], false, &images(1)),
    )
    .unwrap();
    std::fs::write(dir.path().join(V1_LABELS), npy("|u1", &[1], false, &[3])).unwrap();
    let s = source(&config(dir.path()));
    let names: Vec<String> = s.catalog().unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["cifar10/test", "cifar10/train", "cifar10.1"]);
    assert_eq!(s.open("cifar10/test").unwrap().len(), 2);
}

/// The error `create` gives for `dir`.
fn create_error(dir: &Path) -> String {
    Cifar10::create(&config(dir)).unwrap_err().to_string()
}

#[test]
fn broken_files_fail_creation_naming_the_file() {
    // CIFAR-10-C with 7 rows: not five severities.
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("CIFAR-10-C");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(c.join("labels.npy"), npy("|u1", &[7], false, &[0; 7])).unwrap();
    std::fs::write(
        c.join("fog.npy"),
        npy("|u1", &[7, 32, 32, 3], false, &images(7)),
    )
    .unwrap();
    let e = create_error(dir.path());
    assert!(
        e.starts_with(&c.join("labels.npy").display().to_string()),
        "{e}"
    );
    assert!(
        e.contains("7 labels is not a positive multiple of 5"),
        "{e}"
    );

    // Labels and images of different lengths.
    std::fs::write(c.join("labels.npy"), npy("|u1", &[5], false, &[0; 5])).unwrap();
    let e = create_error(dir.path());
    assert!(
        e.starts_with(&c.join("fog.npy").display().to_string()),
        "{e}"
    );
    assert!(
        e.contains("7 images but") && e.contains("holds 5 labels"),
        "{e}"
    );

    // A corruption file of the wrong dtype.
    std::fs::write(
        c.join("fog.npy"),
        npy("<u2", &[5, 32, 32, 3], false, &[0; 5 * 3072 * 2]),
    )
    .unwrap();
    let e = create_error(dir.path());
    assert!(
        e.contains("fog.npy: images of uint16 ('<u2') where uint8"),
        "{e}"
    );

    // No labels beside the corruptions.
    std::fs::remove_file(c.join("labels.npy")).unwrap();
    let e = create_error(dir.path());
    assert!(e.contains("labels.npy: missing"), "{e}");
    std::fs::remove_dir_all(&c).unwrap();

    // CIFAR-10.1 of different lengths, and with a half missing.
    let v1 = dir.path().join("CIFAR-10.1");
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::write(
        v1.join(V1_DATA),
        npy("|u1", &[2, 32, 32, 3], false, &images(2)),
    )
    .unwrap();
    std::fs::write(v1.join(V1_LABELS), npy("|u1", &[3], false, &[0, 1, 2])).unwrap();
    let e = create_error(dir.path());
    assert!(e.contains("cifar10.1_v6_labels.npy: 3 labels but"), "{e}");
    std::fs::remove_file(v1.join(V1_LABELS)).unwrap();
    let e = create_error(dir.path());
    assert!(e.contains("cifar10.1_v6_labels.npy: missing"), "{e}");
    std::fs::remove_dir_all(&v1).unwrap();

    // A corrupted CIFAR-10.2 archive.
    let v2 = dir.path().join("cifar-10.2");
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::write(v2.join("cifar102_test.npz"), b"PK\x03\x04garbage").unwrap();
    let e = create_error(dir.path());
    assert!(
        e.contains("cifar102_test.npz: not a readable .npz (zip) archive"),
        "{e}"
    );
    std::fs::remove_dir_all(&v2).unwrap();

    // A binary batch that is not a whole number of records.
    write_set(&dir.path().join("cifar-10-batches-bin"), 1, 1);
    std::fs::write(
        dir.path().join("cifar-10-batches-bin/data_batch_2.bin"),
        vec![0u8; 3073 * 2 - 1],
    )
    .unwrap();
    let e = create_error(dir.path());
    assert!(
        e.contains("data_batch_2.bin: 6145 bytes is not a whole number of 3073-byte"),
        "{e}"
    );
}

#[test]
fn a_bad_label_in_a_batch_fails_the_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("cifar-10-batches-bin");
    write_set(&bin, 1, 2);
    let mut test = std::fs::read(bin.join("test_batch.bin")).unwrap();
    test[3073] = 200;
    std::fs::write(bin.join("test_batch.bin"), test).unwrap();
    let s = source(&config(dir.path()));
    let e = s.open("cifar10/test").err().unwrap().to_string();
    assert!(
        e.contains("test_batch.bin: record 1 (byte 3073) has label 200"),
        "{e}"
    );
    assert!(s.open("cifar10/train").is_ok());
}

#[test]
fn a_file_truncated_after_opening_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    write_everything(dir.path());
    let s = source(&config(dir.path()));
    let fog = s.open("cifar10-c/fog/5").unwrap();
    let path = dir.path().join("CIFAR-10-C/fog.npy");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = fog.get(1).unwrap_err().to_string();
    assert!(e.contains("fog.npy: cannot read image row 9"), "{e}");
}
