//! Contact sheets: the first images of datasets in a grid, each with its label, written as
//! PNG, so that a person can see what a dataset or a shift looks like.

use std::io::BufWriter;
use std::path::Path;

use font8x8::UnicodeFonts;
use shiftscope_sdk::Sample;

/// Side of one cell's image area in pixels.
const CELL: usize = 84;
/// Height of a text line (8×8 glyphs and spacing).
const LINE: usize = 12;
const GAP: usize = 6;
const BACKGROUND: [u8; 3] = [24, 24, 28];
const TEXT: [u8; 3] = [225, 225, 230];
const TITLE: [u8; 3] = [255, 214, 102];

/// An RGB image.
#[derive(Clone, Debug, PartialEq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// RGB, row-major.
    pub pixels: Vec<u8>,
}

impl RgbImage {
    fn new(width: usize, height: usize) -> RgbImage {
        let mut pixels = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            pixels.extend_from_slice(&BACKGROUND);
        }
        RgbImage {
            width,
            height,
            pixels,
        }
    }

    fn put(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        if x < self.width && y < self.height {
            let i = (y * self.width + x) * 3;
            self.pixels[i..i + 3].copy_from_slice(&rgb);
        }
    }

    /// Writes `text` with its top-left corner at (x, y), clipped at `max_width` pixels.
    fn text(&mut self, x: usize, y: usize, text: &str, rgb: [u8; 3], max_width: usize) {
        for (i, ch) in text.chars().take(max_width / 8).enumerate() {
            let glyph = font8x8::BASIC_FONTS
                .get(ch)
                .or_else(|| font8x8::BASIC_FONTS.get('?'))
                .unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.put(x + i * 8 + col, y + row, rgb);
                    }
                }
            }
        }
    }

    /// Writes the image as an 8-bit RGB PNG.
    pub fn write_png(&self, path: &Path) -> Result<(), String> {
        let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut encoder =
            png::Encoder::new(BufWriter::new(file), self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writer
            .write_image_data(&self.pixels)
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// One block of a sheet: a title and labelled samples.
#[derive(Debug)]
pub struct SheetBlock {
    /// Shown above the images (the dataset's name and where its images come from).
    pub title: String,
    /// The images with their captions.
    pub samples: Vec<(Sample, String)>,
}

/// Fits a sample into a `CELL`×`CELL` square: small images are enlarged by whole factors
/// (nearest neighbour, so pixels stay visible), large ones reduced (bilinear).
fn fit(sample: &Sample) -> Result<(usize, usize, Vec<u8>), String> {
    let (w, h) = (sample.width as usize, sample.height as usize);
    if w == 0 || h == 0 || sample.pixels.len() != w * h * 3 {
        return Err(format!(
            "a {w}x{h} sample with {} bytes of pixels",
            sample.pixels.len()
        ));
    }
    let largest = w.max(h);
    if largest <= CELL {
        let k = CELL / largest;
        let mut out = Vec::with_capacity(w * k * h * k * 3);
        for y in 0..h * k {
            for x in 0..w * k {
                let i = ((y / k) * w + x / k) * 3;
                out.extend_from_slice(&sample.pixels[i..i + 3]);
            }
        }
        return Ok((w * k, h * k, out));
    }
    let (tw, th) = ((w * CELL / largest).max(1), (h * CELL / largest).max(1));
    let pixels = crate::preprocess::resize_rgb(
        &sample.pixels,
        (w as u32, h as u32),
        (tw as u32, th as u32),
    )?;
    Ok((tw, th, pixels))
}

/// Breaks `text` into at most two lines of `chars` characters at spaces; the rest is cut
/// with "...".
fn title_lines(text: &str, chars: usize) -> Vec<String> {
    let chars = chars.max(4);
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split(' ') {
        let current = lines.last_mut().map_or(0, |l| l.chars().count());
        if current > 0 && current + 1 + word.chars().count() > chars {
            lines.push(String::new());
        }
        if let Some(line) = lines.last_mut() {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    if lines.len() > 2 || lines.iter().any(|l| l.chars().count() > chars) {
        lines.truncate(2);
        if let Some(last) = lines.last_mut() {
            let kept: String = last.chars().take(chars - 3).collect();
            *last = format!("{kept}...");
        }
    }
    lines
}

/// Lays the blocks out one under the other, `columns` images per row.
pub fn contact_sheet(blocks: &[SheetBlock], columns: usize) -> Result<RgbImage, String> {
    let columns = columns.max(1);
    let widest = blocks
        .iter()
        .map(|b| b.samples.len().min(columns))
        .max()
        .unwrap_or(1)
        .max(1);
    let width = GAP + widest * (CELL + GAP);
    let chars = (width - 2 * GAP) / 8;
    let block_height = |b: &SheetBlock| {
        let rows = b.samples.len().div_ceil(columns);
        title_lines(&b.title, chars).len() * LINE + GAP + rows * (CELL + LINE + GAP) + GAP
    };
    let height = GAP + blocks.iter().map(block_height).sum::<usize>();
    let mut sheet = RgbImage::new(width, height);
    let mut y = GAP;
    for block in blocks {
        for line in title_lines(&block.title, chars) {
            sheet.text(GAP, y, &line, TITLE, width - 2 * GAP);
            y += LINE;
        }
        y += GAP;
        for (i, (sample, caption)) in block.samples.iter().enumerate() {
            let (col, row) = (i % columns, i / columns);
            let (cx, cy) = (GAP + col * (CELL + GAP), y + row * (CELL + LINE + GAP));
            let (w, h, pixels) = fit(sample)?;
            let (ox, oy) = (cx + (CELL - w) / 2, cy + (CELL - h) / 2);
            for yy in 0..h {
                for xx in 0..w {
                    let p = (yy * w + xx) * 3;
                    sheet.put(ox + xx, oy + yy, [pixels[p], pixels[p + 1], pixels[p + 2]]);
                }
            }
            sheet.text(cx, cy + CELL + 2, caption, TEXT, CELL + GAP);
        }
        y += block.samples.len().div_ceil(columns) * (CELL + LINE + GAP) + GAP;
    }
    Ok(sheet)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(w: u32, h: u32, rgb: [u8; 3]) -> Sample {
        Sample {
            width: w,
            height: h,
            label: 0,
            pixels: rgb.repeat((w * h) as usize),
        }
    }

    #[test]
    fn layout_places_images_and_captions() {
        let blocks = [SheetBlock {
            title: "colored-mnist/id".into(),
            samples: vec![
                (sample(28, 28, [255, 0, 0]), "3".into()),
                (sample(300, 200, [0, 0, 255]), "dog".into()),
            ],
        }];
        let sheet = contact_sheet(&blocks, 16).unwrap();
        assert_eq!(sheet.width, GAP + 2 * (CELL + GAP));
        assert_eq!(sheet.height, GAP + LINE + GAP + CELL + LINE + GAP + GAP);
        let at = |x: usize, y: usize| {
            let i = (y * sheet.width + x) * 3;
            [sheet.pixels[i], sheet.pixels[i + 1], sheet.pixels[i + 2]]
        };
        let top = GAP + LINE + GAP;
        // The 28x28 image is enlarged 3x to 84x84 and fills its cell; the 300x200 one is
        // reduced to 84x56 and centred vertically.
        assert_eq!(at(GAP + 40, top + 40), [255, 0, 0]);
        assert_eq!(at(2 * GAP + CELL + 40, top + 40), [0, 0, 255]);
        assert_eq!(at(2 * GAP + CELL + 40, top + 5), BACKGROUND);
        // Some caption and title pixels are lit.
        assert!((0..8).any(|x| (0..8).any(|y| at(GAP + x, top + CELL + 2 + y) == TEXT)));
        assert!((0..100).any(|x| (0..8).any(|y| at(GAP + x, GAP + y) == TITLE)));
        let dir = std::env::temp_dir().join(format!("sheet-{}.png", std::process::id()));
        sheet.write_png(&dir).unwrap();
        assert!(std::fs::read(&dir).unwrap().starts_with(b"\x89PNG"));
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn titles_wrap_to_two_lines() {
        assert_eq!(title_lines("a bb ccc", 20), vec!["a bb ccc"]);
        assert_eq!(title_lines("aaaa bbbb cccc", 9), vec!["aaaa bbbb", "cccc"]);
        assert_eq!(
            title_lines("aaaa bbbb cccc dddd", 9),
            vec!["aaaa bbbb", "cccc dddd"]
        );
        assert_eq!(
            title_lines("aaaa bbbb cccc dddd eeee", 9),
            vec!["aaaa bbbb", "cccc d..."]
        );
    }

    #[test]
    fn a_malformed_sample_is_an_error() {
        let bad = Sample {
            width: 4,
            height: 4,
            label: 0,
            pixels: vec![0; 3],
        };
        let blocks = [SheetBlock {
            title: String::new(),
            samples: vec![(bad, String::new())],
        }];
        assert!(contact_sheet(&blocks, 4).is_err());
    }
}
