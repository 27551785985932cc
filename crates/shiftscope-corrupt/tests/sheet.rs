//! Contact sheets for looking at the corruptions: every family (rows) at severities 1, 3
//! and 5 (columns, after the clean image), at 224×224 and 32×32 (shown ×4). Ignored by
//! default; run with a folder to write into:
//!
//! ```text
//! SHIFTSCOPE_SHEET_DIR=/tmp/sheets cargo test -p shiftscope-corrupt --test sheet -- --ignored
//! ```
//!
//! `SHIFTSCOPE_SHEET_FAMILIES=snow,spatter` adds sheets of just those families.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::test_image;
use shiftscope_corrupt::{Corruption, corrupt};

fn write_png(path: &Path, w: usize, h: usize, rgb: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(rgb).unwrap();
}

fn sheet(dir: &Path, side: u32, zoom: usize, families: &[Corruption], file: &str) {
    let severities = [1u8, 3, 5];
    let cell = side as usize * zoom + 4;
    let (cols, rows) = (severities.len() + 1, families.len());
    let (w, h) = (cols * cell, rows * cell);
    let mut canvas = vec![255u8; w * h * 3];
    let clean = test_image(side, side, 0);
    for (r, &c) in families.iter().enumerate() {
        let mut images = vec![clean.clone()];
        for s in severities {
            images.push(corrupt(c, &clean, side, side, s, 1).unwrap());
        }
        for (col, img) in images.iter().enumerate() {
            for y in 0..side as usize * zoom {
                for x in 0..side as usize * zoom {
                    let src = ((y / zoom) * side as usize + x / zoom) * 3;
                    let dst = ((r * cell + 2 + y) * w + col * cell + 2 + x) * 3;
                    canvas[dst..dst + 3].copy_from_slice(&img[src..src + 3]);
                }
            }
        }
    }
    write_png(&dir.join(file), w, h, &canvas);
}

#[test]
#[ignore = "writes PNGs for people to look at; needs SHIFTSCOPE_SHEET_DIR"]
fn contact_sheets() {
    let dir = std::env::var("SHIFTSCOPE_SHEET_DIR").unwrap();
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    let (a, b) = Corruption::ALL.split_at(9);
    sheet(dir, 224, 1, a, "sheet224_a.png");
    sheet(dir, 224, 1, b, "sheet224_b.png");
    sheet(dir, 32, 4, a, "sheet32_a.png");
    sheet(dir, 32, 4, b, "sheet32_b.png");
    // SHIFTSCOPE_SHEET_FAMILIES=snow,spatter: a closer look at a few families.
    if let Ok(names) = std::env::var("SHIFTSCOPE_SHEET_FAMILIES") {
        let picked: Vec<Corruption> = names
            .split(',')
            .map(|n| Corruption::from_name(n.trim()).unwrap())
            .collect();
        sheet(dir, 224, 1, &picked, "sheet224_picked.png");
        sheet(dir, 32, 4, &picked, "sheet32_picked.png");
    }
}
