//! Generated image files and trees for tests and benchmarks (feature `testdata`): textured,
//! photo-like RGB images encoded as JPEG or PNG, and the folder layouts this plugin reads.
//! Nothing here is downloaded.

use std::path::{Path, PathBuf};

use shiftscope_sdk::rng::SplitMix64;

/// A photo-like `width`×`height` RGB image: smooth colour gradients, a few soft blobs and
/// fine noise (so JPEG has texture to code), deterministic per `seed`.
pub fn textured_rgb(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let mut unit = || (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32;
    let base = [unit(), unit(), unit()];
    let tilt = [unit() - 0.5, unit() - 0.5, unit() - 0.5];
    let blobs: Vec<[f32; 6]> = (0..6)
        .map(|_| [unit(), unit(), 0.05 + 0.2 * unit(), unit(), unit(), unit()])
        .collect();
    let freq = 0.02 + 0.2 * unit();
    let mut noise = SplitMix64::new(seed ^ 0x9e37_79b9_7f4a_7c15);
    let (w, h) = (width.max(1) as f32, height.max(1) as f32);
    let mut out = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            let (u, v) = (x as f32 / w, y as f32 / h);
            let mut px = [0f32; 3];
            for (c, p) in px.iter_mut().enumerate() {
                *p = base[c] * 0.6 + tilt[c] * (u - v) * 0.6;
            }
            for b in &blobs {
                let d2 = ((u - b[0]).powi(2) + (v - b[1]).powi(2)) / (b[2] * b[2]);
                let k = (-d2).exp() * 0.5;
                for c in 0..3 {
                    px[c] += k * (b[3 + c] - 0.5);
                }
            }
            let stripe = 0.06 * ((x as f32 * freq).sin() * (y as f32 * freq * 0.7).cos());
            let grain = ((noise.next_u64() >> 56) as f32 / 255.0 - 0.5) * 0.08;
            for p in px {
                out.push(((p + stripe + grain).clamp(0.0, 1.0) * 255.0) as u8);
            }
        }
    }
    out
}

/// `pixels` (RGB) as a JPEG file's bytes at `quality` (4:2:0, as cameras write).
pub fn jpeg_bytes(pixels: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, String> {
    let (w, h) = (
        u16::try_from(width).map_err(|e| e.to_string())?,
        u16::try_from(height).map_err(|e| e.to_string())?,
    );
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    encoder
        .encode(pixels, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Writes a textured JPEG (quality 90) to `path`, making its folder.
pub fn write_jpeg(path: &Path, width: u32, height: u32, seed: u64) -> Result<(), String> {
    let bytes = jpeg_bytes(&textured_rgb(width, height, seed), width, height, 90)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// `<root>/<class>/img_<k>.JPEG` for every class, `per_class` small JPEGs each (sizes vary a
/// little per image); returns the files in class-then-name order.
pub fn jpeg_tree(root: &Path, classes: &[&str], per_class: usize) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for (c, class) in classes.iter().enumerate() {
        for k in 0..per_class {
            let path = root.join(class).join(format!("img_{k}.JPEG"));
            let seed = (c * 1000 + k) as u64;
            write_jpeg(
                &path,
                24 + (k as u32 % 3) * 4,
                20 + (c as u32 % 2) * 4,
                seed,
            )?;
            files.push(path);
        }
    }
    Ok(files)
}

/// Small trees of every layout this plugin reads under `root` (a few images per class) and
/// the plugin config (RON) that names them: `imagenet/val`, `imagenet-v2`, `imagenet-sketch`,
/// `stylized-imagenet`, `imagenet-r`, `imagenet-a`, `imagenet-c` (fog at 1 and 3),
/// `folder/pets` (class folders `cat`, `dog`) and `folder/birds` (a CSV list with groups).
pub fn all_layouts(root: &Path) -> Result<String, String> {
    let (wnids, _) = crate::imagenet_classes().map_err(|e| e.to_string())?;
    let r = crate::Subset::R.indices().map_err(|e| e.to_string())?;
    let a = crate::Subset::A.indices().map_err(|e| e.to_string())?;
    let w = |i: u32| wnids[i as usize].as_str();
    jpeg_tree(&root.join("val"), &[w(0), w(1), w(999)], 2)?;
    jpeg_tree(&root.join("v2"), &["2", "10", "100"], 1)?;
    jpeg_tree(&root.join("sketch"), &[w(10), w(500)], 1)?;
    jpeg_tree(&root.join("stylized"), &[w(42)], 2)?;
    jpeg_tree(&root.join("r"), &[w(r[0]), w(r[199])], 2)?;
    jpeg_tree(&root.join("a"), &[w(a[0]), w(a[1])], 1)?;
    for severity in ["1", "3"] {
        jpeg_tree(&root.join("c/fog").join(severity), &[w(7), w(8)], 1)?;
    }
    jpeg_tree(&root.join("pets"), &["dog", "cat"], 2)?;
    let birds = root.join("birds");
    let mut csv = String::from("path,label,group\n");
    for (k, (label, group)) in [(0, "land"), (1, "water"), (1, "land"), (0, "water")]
        .iter()
        .enumerate()
    {
        let name = format!("img/{k}.jpg");
        write_jpeg(&birds.join(&name), 32, 24, 77 + k as u64)?;
        csv.push_str(&format!("{name},{label},{group}\n"));
    }
    let list = birds.join("list.csv");
    std::fs::write(&list, csv).map_err(|e| format!("{}: {e}", list.display()))?;
    let path = |p: &str| format!("{:?}", root.join(p).display().to_string());
    Ok(format!(
        "(roots: {{\"imagenet/val\": {}, \"imagenet-v2\": {}, \"imagenet-sketch\": {}, \
         \"stylized-imagenet\": {}, \"imagenet-r\": {}, \"imagenet-a\": {}, \"imagenet-c\": {}, \
         \"folder/pets\": {}, \"folder/birds\": (csv: {}, classes: Some([\"landbird\", \
         \"waterbird\"]))}})",
        path("val"),
        path("v2"),
        path("sketch"),
        path("stylized"),
        path("r"),
        path("a"),
        path("c"),
        path("pets"),
        path("birds/list.csv"),
    ))
}
