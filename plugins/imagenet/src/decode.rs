//! JPEG (jpeg-decoder, with DCT-domain downscaling) and PNG (png) decoding to RGB, with size
//! limits. The format is told by the file's first bytes, not its name: ImageNet holds PNG and
//! CMYK files named `.JPEG`.

use std::io::Cursor;

/// How images are decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Decode JPEGs at the smallest DCT scale (1/2, 1/4, 1/8) whose shorter side is still at
    /// least this many pixels; `None`: always at full size.
    pub min_side: Option<u32>,
    /// Largest accepted image, in pixels (width × height), so a hostile header cannot make
    /// the decoder allocate without bound.
    pub max_pixels: u64,
}

impl Default for DecodeOptions {
    fn default() -> DecodeOptions {
        DecodeOptions {
            min_side: Some(256),
            max_pixels: 178_956_970,
        }
    }
}

/// A decoded image: RGB, HWC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes.
    pub pixels: Vec<u8>,
}

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Jpeg,
    Png,
}

fn format_of(bytes: &[u8]) -> Result<Format, String> {
    match bytes {
        [] => Err("empty file (0 bytes)".to_owned()),
        [0xFF, 0xD8, 0xFF, ..] => Ok(Format::Jpeg),
        [0x89, b'P', b'N', b'G', ..] => Ok(Format::Png),
        _ => {
            let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
            Err(format!(
                "not a JPEG or PNG file ({} bytes starting {})",
                bytes.len(),
                head.join(" ")
            ))
        }
    }
}

/// The DCT scale denominator (1, 2, 4 or 8) for a `width`×`height` JPEG: the largest whose
/// shorter side still reaches `min_side`.
pub fn jpeg_scale(width: u32, height: u32, min_side: Option<u32>) -> u32 {
    let Some(min_side) = min_side else {
        return 1;
    };
    let short = width.min(height);
    [8, 4, 2]
        .into_iter()
        .find(|&d| short.div_ceil(d) >= min_side)
        .unwrap_or(1)
}

/// Width and height from the header only (no pixel data decoded).
pub(crate) fn check_header(bytes: &[u8], options: DecodeOptions) -> Result<(u32, u32), String> {
    let (w, h) = match format_of(bytes)? {
        Format::Jpeg => {
            let mut decoder = jpeg_decoder::Decoder::new(bytes);
            decoder
                .read_info()
                .map_err(|e| format!("unreadable JPEG: {e}"))?;
            let info = decoder
                .info()
                .ok_or_else(|| "unreadable JPEG: no frame header".to_owned())?;
            (u32::from(info.width), u32::from(info.height))
        }
        Format::Png => {
            let reader = png::Decoder::new(Cursor::new(bytes))
                .read_info()
                .map_err(|e| format!("unreadable PNG: {e}"))?;
            reader.info().size()
        }
    };
    check_size(w, h, options)?;
    Ok((w, h))
}

fn check_size(width: u32, height: u32, options: DecodeOptions) -> Result<(), String> {
    if width == 0 || height == 0 {
        return Err(format!("the header says {width}x{height} pixels"));
    }
    if u64::from(width) * u64::from(height) > options.max_pixels {
        return Err(format!(
            "{width}x{height} pixels is more than the limit of {} (max_pixels)",
            options.max_pixels
        ));
    }
    Ok(())
}

/// Decodes a JPEG or PNG file's bytes to RGB.
pub fn decode(bytes: &[u8], options: DecodeOptions) -> Result<Decoded, String> {
    match format_of(bytes)? {
        Format::Jpeg => decode_jpeg(bytes, options).map_err(|e| format!("unreadable JPEG: {e}")),
        Format::Png => decode_png(bytes, options).map_err(|e| format!("unreadable PNG: {e}")),
    }
}

fn decode_jpeg(bytes: &[u8], options: DecodeOptions) -> Result<Decoded, String> {
    use jpeg_decoder::PixelFormat;

    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(|e| e.to_string())?;
    let info = decoder.info().ok_or("no frame header")?;
    let (full_w, full_h) = (u32::from(info.width), u32::from(info.height));
    check_size(full_w, full_h, options)?;
    let d = jpeg_scale(full_w, full_h, options.min_side);
    if d == 1
        && let Some(decoded) = decode_jpeg_full(bytes, options)
    {
        return Ok(decoded);
    }
    if d > 1 {
        // jpeg-decoder picks the smallest scale at least this large.
        let want = |side: u32| u16::try_from(side.div_ceil(d)).unwrap_or(u16::MAX);
        decoder
            .scale(want(full_w), want(full_h))
            .map_err(|e| e.to_string())?;
    }
    decoder.set_max_decoding_buffer_size(
        usize::try_from(options.max_pixels.saturating_mul(4)).unwrap_or(usize::MAX),
    );
    let data = decoder.decode().map_err(|e| e.to_string())?;
    let info = decoder.info().ok_or("no frame header")?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let n = width as usize * height as usize;
    let channels = info.pixel_format.pixel_bytes();
    if data.len() != n * channels {
        return Err(format!(
            "{} bytes decoded for {width}x{height} {:?}",
            data.len(),
            info.pixel_format
        ));
    }
    let pixels = match info.pixel_format {
        PixelFormat::RGB24 => data,
        PixelFormat::L8 => data.iter().flat_map(|&v| [v, v, v]).collect(),
        // 16-bit lossless JPEGs come out big-endian: keep the high byte.
        PixelFormat::L16 => data.chunks_exact(2).flat_map(|v| [v[0]; 3]).collect(),
        // jpeg-decoder hands out ink amounts (0 = none).
        PixelFormat::CMYK32 => data
            .chunks_exact(4)
            .flat_map(|p| {
                let k = 255 - u16::from(p[3]);
                [0, 1, 2].map(|c| ((255 - u16::from(p[c])) * k / 255) as u8)
            })
            .collect(),
    };
    Ok(Decoded {
        width,
        height,
        pixels,
    })
}

/// A full-size decode with zune-jpeg (SIMD IDCT and colour conversion, about libjpeg-turbo's
/// speed); `None` where it cannot (unusual colour spaces, damaged data), and jpeg-decoder,
/// which also does the DCT-scaled decodes, reads the file instead and names any error.
fn decode_jpeg_full(bytes: &[u8], options: DecodeOptions) -> Option<Decoded> {
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;

    let side = usize::try_from(options.max_pixels).unwrap_or(usize::MAX);
    let zune_options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(side.min(1 << 16))
        .set_max_height(side.min(1 << 16));
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(bytes, zune_options);
    let pixels = decoder.decode().ok()?;
    let (w, h) = decoder.dimensions()?;
    if decoder.get_output_colorspace() != Some(ColorSpace::RGB) || pixels.len() != w * h * 3 {
        return None;
    }
    Some(Decoded {
        width: u32::try_from(w).ok()?,
        height: u32::try_from(h).ok()?,
        pixels,
    })
}

fn decode_png(bytes: &[u8], options: DecodeOptions) -> Result<Decoded, String> {
    use png::ColorType;

    let limit = usize::try_from(options.max_pixels.saturating_mul(8)).unwrap_or(usize::MAX);
    let mut decoder =
        png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: limit });
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let (width, height) = reader.info().size();
    check_size(width, height, options)?;
    let size = reader
        .output_buffer_size()
        .ok_or("the image does not fit in memory")?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    buf.truncate(frame.buffer_size());
    let n = width as usize * height as usize;
    let pixels: Vec<u8> = match frame.color_type {
        ColorType::Rgb => buf,
        ColorType::Rgba => buf
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        ColorType::Grayscale => buf.iter().flat_map(|&v| [v, v, v]).collect(),
        ColorType::GrayscaleAlpha => buf.chunks_exact(2).flat_map(|p| [p[0]; 3]).collect(),
        ColorType::Indexed => return Err("palette left unexpanded".to_owned()),
    };
    if pixels.len() != n * 3 {
        return Err(format!(
            "{} bytes decoded for {width}x{height} RGB",
            pixels.len()
        ));
    }
    Ok(Decoded {
        width,
        height,
        pixels,
    })
}
