use std::path::Path;

use super::*;
use crate::testdata::{self, jpeg_bytes, jpeg_tree, textured_rgb, write_jpeg};

fn wnid(index: usize) -> String {
    classes::imagenet().unwrap().wnids[index].clone()
}

fn plugin(config: &str) -> ImageNet {
    ImageNet::create(config).unwrap()
}

fn roots(pairs: &[(&str, &Path)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(name, path)| format!("{name:?}: {:?}", path.display().to_string()))
        .collect();
    format!("(roots: {{{}}})", inner.join(", "))
}

fn labels(dataset: &dyn Dataset) -> Vec<u32> {
    (0..dataset.len())
        .map(|i| dataset.get(i).unwrap().label)
        .collect()
}

fn error_of(result: Result<ImageNet, PluginError>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn embedded_classes_are_the_thousand_in_sorted_wnid_order_with_unique_names() {
    let c = classes::imagenet().unwrap();
    assert_eq!(c.wnids.len(), 1000);
    assert_eq!(c.wnids[0], "n01440764");
    assert_eq!(c.names[0], "tench");
    assert_eq!(c.wnids[999], "n15075141");
    assert!(c.wnids.windows(2).all(|w| w[0] < w[1]));
    let mut names = c.names.clone();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 1000, "names are unique");
    assert!(c.names.contains(&"crane (n02012849)".to_owned()));
    for subset in [Subset::R, Subset::A] {
        let indices = subset.indices().unwrap();
        assert_eq!(indices.len(), 200);
        assert!(indices.windows(2).all(|w| w[0] < w[1]));
    }
    // Known members: goldfish (1) is in ImageNet-R, not in ImageNet-A; 6 (stingray) in both.
    assert!(Subset::R.indices().unwrap().contains(&1));
    assert!(!Subset::A.indices().unwrap().contains(&1));
    assert!(Subset::A.indices().unwrap().contains(&6));
}

#[test]
fn without_roots_nothing_is_listed_and_opening_says_so() {
    let p = plugin("");
    assert!(p.catalog().unwrap().is_empty());
    let e = p.open("imagenet/val").err().unwrap().to_string();
    assert!(e.contains("no roots configured"), "{e}");
}

#[test]
fn imagenet_val_maps_wnid_folders_into_the_thousand_classes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("val");
    let (a, b, c) = (wnid(0), wnid(1), wnid(999));
    jpeg_tree(&root, &[&c, &a, &b], 2).unwrap();
    let p = plugin(&roots(&[("imagenet/val", &root)]));
    let catalog = p.catalog().unwrap();
    assert_eq!(catalog.len(), 1);
    assert_eq!(catalog[0].name, "imagenet/val");
    assert!(
        catalog[0]
            .description
            .contains("6 images in 3 class folders")
    );
    let d = p.open("imagenet/val").unwrap();
    assert_eq!(d.len(), 6);
    assert_eq!(d.classes().len(), 1000);
    assert_eq!(d.classes()[1], "goldfish");
    assert_eq!(labels(d.as_ref()), vec![0, 0, 1, 1, 999, 999]);
    // The pixels are the JPEG's: close to what was encoded.
    let s = d.get(0).unwrap();
    let original = textured_rgb(s.width, s.height, 1000);
    let mean_abs: f64 = s
        .pixels
        .iter()
        .zip(&original)
        .map(|(&x, &y)| f64::from(x.abs_diff(y)))
        .sum::<f64>()
        / original.len() as f64;
    assert!(mean_abs < 8.0, "mean abs difference {mean_abs}");
    assert!(d.get(6).is_err());
}

#[test]
fn imagenet_v2_folders_are_class_indices_compared_as_integers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("v2");
    // A string sort orders these 10, 100, 2: the labels must still be 10, 100 and 2.
    jpeg_tree(&root, &["2", "10", "100"], 1).unwrap();
    let p = plugin(&roots(&[("imagenet-v2", &root)]));
    let d = p.open("imagenet-v2").unwrap();
    let got = labels(d.as_ref());
    assert_eq!(got, vec![2, 10, 100]);
    // Folder `10` is class 10 (brambling), not the second class in string order.
    let s = d.get(1).unwrap();
    assert_eq!(s.label, 10);
    assert_eq!(d.classes()[10], "brambling");
    for bad_name in ["1000", "007", "tench"] {
        let dir = tempfile::tempdir().unwrap();
        jpeg_tree(dir.path(), &[bad_name], 1).unwrap();
        let e = error_of(ImageNet::create(&roots(&[("imagenet-v2", dir.path())])));
        assert!(
            e.contains(&format!("folder '{bad_name}' is not a class index")),
            "{e}"
        );
    }
}

#[test]
fn sketch_and_stylized_are_wnid_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (sketch, stylized) = (dir.path().join("sketch"), dir.path().join("stylized"));
    jpeg_tree(&sketch, &[&wnid(10), &wnid(500)], 1).unwrap();
    jpeg_tree(&stylized, &[&wnid(42)], 2).unwrap();
    let p = plugin(&roots(&[
        ("imagenet-sketch", &sketch),
        ("stylized-imagenet", &stylized),
    ]));
    assert_eq!(
        labels(p.open("imagenet-sketch").unwrap().as_ref()),
        vec![10, 500]
    );
    assert_eq!(
        labels(p.open("stylized-imagenet").unwrap().as_ref()),
        vec![42, 42]
    );
}

#[test]
fn imagenet_r_and_a_keep_thousand_class_labels_and_declare_their_subset() {
    for (name, subset, subset_name) in [
        ("imagenet-r", Subset::R, "ImageNet-R"),
        ("imagenet-a", Subset::A, "ImageNet-A"),
    ] {
        let indices = subset.indices().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (first, last) = (indices[0] as usize, indices[199] as usize);
        jpeg_tree(dir.path(), &[&wnid(first), &wnid(last)], 2).unwrap();
        let p = plugin(&roots(&[(name, dir.path())]));
        let entry = &p.catalog().unwrap()[0];
        assert_eq!(entry.class_subset().unwrap().unwrap(), indices.to_vec());
        assert!(
            entry.description.contains(subset_name),
            "{}",
            entry.description
        );
        let d = p.open(name).unwrap();
        assert_eq!(d.classes().len(), 1000);
        assert_eq!(
            labels(d.as_ref()),
            vec![first as u32, first as u32, last as u32, last as u32]
        );
        // A wnid outside the subset is refused, naming the folder.
        let outside = (0..1000u32).find(|i| !indices.contains(i)).unwrap() as usize;
        let bad = tempfile::tempdir().unwrap();
        jpeg_tree(bad.path(), &[&wnid(outside)], 1).unwrap();
        let e = error_of(ImageNet::create(&roots(&[(name, bad.path())])));
        assert!(e.contains(&wnid(outside)) && e.contains(subset_name), "{e}");
    }
}

#[test]
fn imagenet_c_lists_corruption_and_severity_folders() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    jpeg_tree(&root.join("fog/3"), &[&wnid(7)], 2).unwrap();
    jpeg_tree(&root.join("fog/5"), &[&wnid(8)], 1).unwrap();
    jpeg_tree(&root.join("snow/1"), &[&wnid(9)], 1).unwrap();
    std::fs::create_dir_all(root.join("snow/extra")).unwrap();
    let p = plugin(&roots(&[("imagenet-c", root)]));
    let names: Vec<String> = p.catalog().unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(
        names,
        ["imagenet-c/fog/3", "imagenet-c/fog/5", "imagenet-c/snow/1"]
    );
    let d = p.open("imagenet-c/fog/3").unwrap();
    assert_eq!(labels(d.as_ref()), vec![7, 7]);
    assert_eq!(
        labels(p.open("imagenet-c/snow/1").unwrap().as_ref()),
        vec![9]
    );
    let entry = &p.catalog().unwrap()[1];
    assert!(
        entry
            .params
            .contains(&("severity".to_owned(), "5".to_owned()))
    );
}

#[test]
fn any_folder_corrupts_on_the_fly_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("val");
    let w = wnid(3);
    write_jpeg(&root.join(&w).join("a.JPEG"), 64, 48, 5).unwrap();
    let p = plugin(&roots(&[("imagenet/val", &root)]));
    let base = p.open("imagenet/val").unwrap().get(0).unwrap();
    let fogged = p.open("imagenet/val+fog/3").unwrap();
    let a = fogged.get(0).unwrap();
    assert_eq!((a.width, a.height, a.label), (64, 48, 3));
    assert_ne!(a.pixels, base.pixels);
    assert_eq!(a, fogged.get(0).unwrap());
    assert!(p.open("imagenet/val+fog/9").is_err());
}

#[test]
fn generic_folders_take_sorted_names_or_synset_names() {
    let dir = tempfile::tempdir().unwrap();
    let pets = dir.path().join("pets");
    jpeg_tree(&pets, &["dog", "cat"], 1).unwrap();
    let wnids = dir.path().join("wnids");
    let (x, y) = (wnid(1), wnid(0));
    jpeg_tree(&wnids, &[&x, &y], 1).unwrap();
    let synsets = dir.path().join("LOC_synset_mapping.txt");
    std::fs::write(
        &synsets,
        format!("{y} tench, Tinca tinca\n{x} goldfish, Carassius\n"),
    )
    .unwrap();
    let config = format!(
        "(roots: {{\"folder/pets\": {:?}, \"folder/sub\": {:?}}}, synsets: Some({:?}))",
        pets.display().to_string(),
        wnids.display().to_string(),
        synsets.display().to_string()
    );
    let p = plugin(&config);
    let d = p.open("folder/pets").unwrap();
    assert_eq!(d.classes(), ["cat", "dog"]);
    assert_eq!(labels(d.as_ref()), vec![0, 1]);
    let d = p.open("folder/sub").unwrap();
    assert_eq!(d.classes(), ["tench", "goldfish"]);
    // A bad synset file is an error naming it.
    std::fs::write(&synsets, "tench fish\n").unwrap();
    let e = error_of(ImageNet::create(&config));
    assert!(
        e.contains("LOC_synset_mapping.txt: line 1") && e.contains("not a wnid"),
        "{e}"
    );
}

#[test]
fn csv_lists_read_paths_labels_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["a.jpg", "b.jpg", "sub/c.png"].iter().enumerate() {
        let path = dir.path().join(name);
        if name.ends_with(".png") {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            write_png(&path, 20, 10, i as u64);
        } else {
            write_jpeg(&path, 20, 10, i as u64).unwrap();
        }
    }
    let csv = dir.path().join("list.csv");
    std::fs::write(
        &csv,
        "path,label,group\na.jpg,1,land\nb.jpg,0,water\nsub/c.png,1,water\n",
    )
    .unwrap();
    let config = format!(
        "(roots: {{\"folder/birds\": (csv: {:?}, classes: Some([\"landbird\", \"waterbird\"]))}})",
        csv.display().to_string()
    );
    let p = plugin(&config);
    let names: Vec<String> = p.catalog().unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(
        names,
        [
            "folder/birds",
            "folder/birds/group/land",
            "folder/birds/group/water"
        ]
    );
    let d = p.open("folder/birds").unwrap();
    assert_eq!(d.classes(), ["landbird", "waterbird"]);
    assert_eq!(labels(d.as_ref()), vec![1, 0, 1]);
    assert_eq!(
        (d.get(2).unwrap().width, d.get(2).unwrap().height),
        (20, 10)
    );
    assert_eq!(
        labels(p.open("folder/birds/group/water").unwrap().as_ref()),
        vec![0, 1]
    );
    // Names as labels, without the header.
    std::fs::write(&csv, "a.jpg,waterbird\nb.jpg,landbird\n").unwrap();
    assert_eq!(
        labels(plugin(&config).open("folder/birds").unwrap().as_ref()),
        vec![1, 0]
    );
    // Without classes, labels are indices and the classes their numbers.
    let bare = format!(
        "(roots: {{\"folder/x\": (csv: {:?})}})",
        csv.display().to_string()
    );
    std::fs::write(&csv, "a.jpg,3\n").unwrap();
    assert_eq!(
        plugin(&bare).open("folder/x").unwrap().classes(),
        ["0", "1", "2", "3"]
    );
    // A missing file and a bad label: errors naming the list, the line and what is wrong.
    std::fs::write(&csv, "a.jpg,1\nmissing.jpg,0\n").unwrap();
    let e = error_of(ImageNet::create(&config));
    assert!(
        e.contains("list.csv: line 2: missing file") && e.contains("missing.jpg"),
        "{e}"
    );
    // With on_error: Skip the missing file is left out and named.
    let skipping = format!("{}, on_error: Skip)", &config[..config.len() - 1]);
    let p = plugin(&skipping);
    let entry = &p.catalog().unwrap()[0];
    assert!(
        entry.description.contains("1 unreadable images skipped")
            && entry
                .description
                .contains("missing.jpg (missing, listed on line 2)"),
        "{}",
        entry.description
    );
    assert_eq!(p.open("folder/birds").unwrap().len(), 1);
    std::fs::write(&csv, "a.jpg,1\nb.jpg,seabird\n").unwrap();
    let e = error_of(ImageNet::create(&config));
    assert!(e.contains("list.csv: line 2: bad label 'seabird'"), "{e}");
    std::fs::write(&csv, "a.jpg,7\n").unwrap();
    let e = error_of(ImageNet::create(&config));
    assert!(
        e.contains("line 1: bad label 7: the config lists 2 classes"),
        "{e}"
    );
    std::fs::write(&csv, "a.jpg,-1\n").unwrap();
    let e = error_of(ImageNet::create(&bare));
    assert!(e.contains("bad label '-1'"), "{e}");
    std::fs::write(&csv, "a.jpg\n").unwrap();
    let e = error_of(ImageNet::create(&bare));
    assert!(e.contains("line 1: expected `path,label[,group]`"), "{e}");
}

fn write_png(path: &Path, width: u32, height: u32, seed: u64) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let rgb = textured_rgb(width, height, seed);
    let rgba: Vec<u8> = rgb
        .chunks(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&rgba).unwrap();
}

/// A tree with one good image per class, a garbage `.JPEG`, a zero-byte one, a truncated
/// one and an empty class folder.
fn broken_tree(root: &Path) -> (String, String) {
    let (good, empty) = (wnid(5), wnid(6));
    jpeg_tree(root, &[&good], 2).unwrap();
    std::fs::create_dir_all(root.join(&empty)).unwrap();
    std::fs::write(root.join(&good).join("garbage.JPEG"), b"this is no jpeg").unwrap();
    std::fs::write(root.join(&good).join("zero.JPEG"), b"").unwrap();
    (good, empty)
}

#[test]
fn an_unreadable_image_stops_the_run_by_default_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (good, empty) = broken_tree(dir.path());
    let p = plugin(&roots(&[("imagenet/val", dir.path())]));
    let entry = &p.catalog().unwrap()[0];
    assert!(
        entry
            .description
            .contains(&format!("1 empty class folders ({empty})")),
        "{}",
        entry.description
    );
    let d = p.open("imagenet/val").unwrap();
    // garbage.JPEG, img_0.JPEG, img_1.JPEG, zero.JPEG in name order.
    assert_eq!(d.len(), 4);
    let e = d.get(0).unwrap_err().to_string();
    assert!(
        e.contains(&format!("{good}/garbage.JPEG")) && e.contains("not a JPEG or PNG file"),
        "{e}"
    );
    let e = d.get(3).unwrap_err().to_string();
    assert!(
        e.contains("zero.JPEG") && e.contains("empty file (0 bytes)"),
        "{e}"
    );
    assert!(d.get(1).is_ok());
}

#[test]
fn skip_leaves_unreadable_images_out_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    broken_tree(dir.path());
    let config = format!(
        "(roots: {{\"imagenet/val\": {:?}}}, on_error: Skip)",
        dir.path().display().to_string()
    );
    // A JPEG whose header reads but whose image data is gone (cut before the scan): only
    // decoding finds it.
    let good = wnid(5);
    let full = jpeg_bytes(&textured_rgb(32, 32, 3), 32, 32, 90).unwrap();
    let sos = full.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let mut cut = full[..sos].to_vec();
    cut.extend_from_slice(&[0xFF, 0xD9]);
    assert!(decode::check_header(&cut, DecodeOptions::default()).is_ok());
    std::fs::write(dir.path().join(&good).join("noscan.JPEG"), &cut).unwrap();
    let p = plugin(&config);
    let entry = &p.catalog().unwrap()[0];
    assert!(
        entry.description.contains("noscan.JPEG"),
        "{}",
        entry.description
    );
    assert!(
        entry.description.contains("3 unreadable images skipped")
            && entry
                .description
                .contains("garbage.JPEG (not a JPEG or PNG file")
            && entry
                .description
                .contains("zero.JPEG (empty file (0 bytes))"),
        "{}",
        entry.description
    );
    assert!(
        entry
            .params
            .contains(&("skipped".to_owned(), "3".to_owned()))
    );
    let d = p.open("imagenet/val").unwrap();
    assert_eq!(d.len(), 2);
    assert!((0..2).all(|i| d.get(i).is_ok()));
}

#[test]
fn truncated_and_hostile_files_are_errors_not_panics() {
    let pixels = textured_rgb(64, 64, 1);
    let full = jpeg_bytes(&pixels, 64, 64, 90).unwrap();
    let options = DecodeOptions::default();
    for cut in [3, 20, 200, full.len() / 2, full.len() - 2] {
        // Whatever the decoder makes of a cut file, it returns.
        if let Ok(image) = decode(&full[..cut], options) {
            assert_eq!(image.pixels.len(), 64 * 64 * 3);
        }
    }
    assert!(decode(&full[..3], options).is_err());
    // A header that claims more pixels than the limit is refused before decoding.
    let small = DecodeOptions {
        max_pixels: 1000,
        ..options
    };
    let e = decode(&full, small).unwrap_err();
    assert!(
        e.contains("64x64 pixels is more than the limit of 1000"),
        "{e}"
    );
}

#[test]
fn jpegs_are_decoded_at_reduced_dct_scale_when_the_resize_allows() {
    assert_eq!(jpeg_scale(1600, 1200, Some(256)), 4);
    assert_eq!(jpeg_scale(500, 375, Some(256)), 1);
    assert_eq!(jpeg_scale(1024, 600, Some(256)), 2);
    assert_eq!(jpeg_scale(4000, 3000, Some(256)), 8);
    assert_eq!(jpeg_scale(4000, 3000, None), 1);
    let pixels = textured_rgb(1600, 1200, 9);
    let bytes = jpeg_bytes(&pixels, 1600, 1200, 90).unwrap();
    let scaled = decode(&bytes, DecodeOptions::default()).unwrap();
    assert_eq!((scaled.width, scaled.height), (400, 300));
    let full = decode(
        &bytes,
        DecodeOptions {
            min_side: None,
            ..DecodeOptions::default()
        },
    )
    .unwrap();
    assert_eq!((full.width, full.height), (1600, 1200));
    // The 1/4 decode is the full image averaged over 4×4 blocks, near enough.
    let mut diff = 0f64;
    for y in 0..300 {
        for x in 0..400 {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in 0..4 {
                    for dx in 0..4 {
                        sum += u32::from(full.pixels[((y * 4 + dy) * 1600 + x * 4 + dx) * 3 + c]);
                    }
                }
                let mean = f64::from(sum) / 16.0;
                diff += (mean - f64::from(scaled.pixels[(y * 400 + x) * 3 + c])).abs();
            }
        }
    }
    let mean_diff = diff / (400.0 * 300.0 * 3.0);
    assert!(mean_diff < 3.0, "mean difference {mean_diff}");
}

#[test]
fn png_files_decode_whatever_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disguised.JPEG");
    write_png(&path, 30, 20, 4);
    let image = decode(&std::fs::read(&path).unwrap(), DecodeOptions::default()).unwrap();
    assert_eq!((image.width, image.height), (30, 20));
    assert_eq!(image.pixels, textured_rgb(30, 20, 4));
}

#[test]
fn config_mistakes_are_clear_errors() {
    let e = error_of(ImageNet::create("(rootz: {})"));
    assert!(e.contains("imagenet config") && e.contains("rootz"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = error_of(ImageNet::create(&roots(&[("mystery", dir.path())])));
    assert!(e.contains("root 'mystery'") && e.contains("layout"), "{e}");
    let e = error_of(ImageNet::create(&roots(&[(
        "imagenet/val",
        &dir.path().join("nope"),
    )])));
    assert!(e.contains("nope: not a folder"), "{e}");
    // An unknown wnid names the folder.
    jpeg_tree(dir.path(), &["n99999999"], 1).unwrap();
    let e = error_of(ImageNet::create(&roots(&[("imagenet/val", dir.path())])));
    assert!(e.contains("n99999999: unknown wnid 'n99999999'"), "{e}");
    // An explicit layout gives any name one.
    let named = format!(
        "(roots: {{\"mine\": (path: {:?}, layout: Folder)}})",
        dir.path().display().to_string()
    );
    assert_eq!(plugin(&named).open("mine").unwrap().len(), 1);
}

#[test]
fn the_all_layouts_fixture_lists_every_layout() {
    let dir = tempfile::tempdir().unwrap();
    let config = testdata::all_layouts(dir.path()).unwrap();
    let p = plugin(&config);
    let names: Vec<String> = p.catalog().unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(
        names,
        [
            "folder/birds",
            "folder/birds/group/land",
            "folder/birds/group/water",
            "folder/pets",
            "imagenet-a",
            "imagenet-c/fog/1",
            "imagenet-c/fog/3",
            "imagenet-r",
            "imagenet-sketch",
            "imagenet-v2",
            "imagenet/val",
            "stylized-imagenet",
        ]
    );
    for name in &names {
        assert!(!p.open(name).unwrap().is_empty(), "{name}");
    }
}
