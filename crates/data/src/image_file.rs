//! Image files: the size check from the header, the check that a file is complete, and
//! decoding to grey while holding one grey copy.
//!
//! A PNG or JPEG header may declare any size (a 1 KB PNG can declare 100000^2 pixels), and
//! a decoder given a truncated file may fill the missing part with grey and report success.
//! So every image is checked, before any pixel buffer is allocated, against [`Limits`] and
//! for completeness: a PNG must reach its `IEND` chunk, a JPEG its end-of-image marker
//! after the last scan.

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use image::{DynamicImage, ImageBuffer, ImageDecoder, ImageFormat, ImageReader};

use crate::error::{Error, Result};
use crate::limits::{read_bytes, Limits};

/// A grey 8-bit image held in memory, row-major, `height * width` bytes (0 = black,
/// 255 = white).
#[derive(Debug, Clone, PartialEq)]
pub struct GreyImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major pixels, `pixels[y * width + x]`.
    pub pixels: Arc<[u8]>,
}

impl GreyImage {
    /// Wraps `pixels` (row-major, `height * width`).
    ///
    /// Errors with [`Error::InvalidArgument`] when the length does not match or a side is 0.
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Result<Self> {
        if width == 0 || height == 0 || pixels.len() != width * height {
            return Err(Error::arg(
                "pixels",
                format!("{} bytes for a {width}x{height} image", pixels.len()),
            ));
        }
        Ok(GreyImage {
            width,
            height,
            pixels: pixels.into(),
        })
    }

    /// Pixels as f32 in [0, 1] (value / 255), row-major `(H, W)`.
    pub fn to_f32(&self) -> Vec<f32> {
        self.pixels.iter().map(|&v| v as f32 / 255.0).collect()
    }

    /// Reads an image file through the `image` crate and converts it to grey (luma,
    /// as the `image` crate's `to_luma8` computes it), within the default [`Limits`]: see
    /// [`GreyImage::open_with_limits`].
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_limits(path, &Limits::default())
    }

    /// Reads an image file and converts it to grey, after checking its size against
    /// `limits` and that the file is complete ([`decode_file`]).
    ///
    /// Errors: [`Error::Io`], [`Error::Image`] (unknown format, decoding failed),
    /// [`Error::Limit`] (too large), [`Error::CorruptImage`] (truncated).
    pub fn open_with_limits(path: &Path, limits: &Limits) -> Result<Self> {
        decode_file(path, limits)
    }
}

/// Reads an image file's header and checks it: a known format, a size within `limits`,
/// and a complete file. Returns `(width, height)`. `annotation` and `line` name the entry
/// that refers to the image in the errors about missing files and limits.
///
/// Errors: [`Error::MissingImage`], [`Error::Io`], [`Error::Image`] (unknown format, bad
/// header), [`Error::Limit`] (too large), [`Error::CorruptImage`] (truncated).
pub fn check_file(
    image: &Path,
    annotation: &Path,
    line: usize,
    limits: &Limits,
) -> Result<(usize, usize)> {
    if !image.is_file() {
        return Err(Error::MissingImage {
            annotation: annotation.to_path_buf(),
            line,
            tried: vec![image.to_path_buf()],
        });
    }
    let io = |source| Error::Io {
        path: image.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(image).map_err(io)?.len();
    limits.check_file_bytes(image, len)?;
    let reader = ImageReader::open(image)
        .and_then(|r| r.with_guessed_format())
        .map_err(io)?;
    let format = reader.format();
    let (w, h) = reader.into_dimensions().map_err(|source| Error::Image {
        path: image.to_path_buf(),
        source,
    })?;
    check_size(image, annotation, line, w, h, limits)?;
    let mut file = std::io::BufReader::new(std::fs::File::open(image).map_err(io)?);
    let complete = match format {
        Some(ImageFormat::Png) => png_complete(&mut file, len),
        // The JPEG decoder reads the whole file for the header already.
        Some(ImageFormat::Jpeg) => jpeg_complete(&read_bytes(image, limits)?),
        _ => Ok(()),
    };
    complete.map_err(|reason| Error::CorruptImage {
        path: image.to_path_buf(),
        reason,
    })?;
    Ok((w as usize, h as usize))
}

/// Checks an image held in memory as [`check_file`] checks a file (`name` names it in
/// errors). Returns `(width, height)`.
pub fn check_bytes(bytes: &[u8], name: &Path, limits: &Limits) -> Result<(usize, usize)> {
    limits.check_file_bytes(name, bytes.len() as u64)?;
    let (format, decoder) = decoder_for(bytes, name)?;
    let (w, h) = decoder.dimensions();
    check_size(name, name, 0, w, h, limits)?;
    complete(format, bytes).map_err(|reason| Error::CorruptImage {
        path: name.to_path_buf(),
        reason,
    })?;
    Ok((w as usize, h as usize))
}

/// Reads and decodes an image file to grey (see [`decode_bytes`]).
pub fn decode_file(path: &Path, limits: &Limits) -> Result<GreyImage> {
    let bytes = read_bytes(path, limits)?;
    decode_bytes(&bytes, path, limits)
}

/// Decodes an image to grey 8-bit (luma as the `image` crate's `to_luma8` computes it) after
/// [`check_bytes`]'s checks. Memory: one grey copy for 8-bit grey files; for others the
/// decoder's native buffer (e.g. 3 bytes a pixel for RGB), converted in place, and briefly
/// two grey copies while it moves into the shared buffer.
pub fn decode_bytes(bytes: &[u8], name: &Path, limits: &Limits) -> Result<GreyImage> {
    check_bytes(bytes, name, limits)?;
    let image_error = |source| Error::Image {
        path: name.to_path_buf(),
        source,
    };
    let (_, mut decoder) = decoder_for(bytes, name)?;
    let (w, h) = decoder.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    let mut inner = image::Limits::default();
    inner.max_image_width = Some(w);
    inner.max_image_height = Some(h);
    // The native buffer is at most 8 bytes a pixel (16-bit RGBA) for PNG and JPEG; leave
    // the decoders room for their own tables and coefficients as well.
    inner.max_alloc = Some(
        (wu as u64 * hu as u64)
            .saturating_mul(16)
            .max(inner.max_alloc.unwrap_or(0)),
    );
    decoder.set_limits(inner).map_err(image_error)?;
    let color = decoder.color_type();
    let n = wu * hu;
    let pixels: Arc<[u8]> = if color == image::ColorType::L8 {
        // Decoded straight into the shared buffer: one copy.
        let mut grey: Arc<[u8]> = std::iter::repeat_n(0u8, n).collect();
        let out = Arc::get_mut(&mut grey).ok_or_else(|| Error::arg("pixels", "shared buffer"))?;
        decoder.read_image(out).map_err(image_error)?;
        grey
    } else {
        // Decoded in the native colour type, then converted to grey in place, band by band
        // (pixel i's grey value goes to byte i, which lies at or before pixel i's bytes), so
        // the peak is the native buffer, not the native buffer plus conversions.
        let total = usize::try_from(decoder.total_bytes())
            .map_err(|_| Error::arg("image", "decoded size does not fit in memory"))?;
        let mut native = vec![0u8; total];
        decoder.read_image(&mut native).map_err(image_error)?;
        let row_bytes = total / hu.max(1);
        let band_rows = ((256 << 10) / row_bytes.max(1)).max(1);
        for row in (0..hu).step_by(band_rows) {
            let rows = band_rows.min(hu - row);
            let src = row * row_bytes..(row + rows) * row_bytes;
            let luma = band_to_luma(&native[src], color, w, rows as u32).ok_or_else(|| {
                Error::CorruptImage {
                    path: name.to_path_buf(),
                    reason: format!("unsupported colour type {color:?}"),
                }
            })?;
            native[row * wu..row * wu + luma.len()].copy_from_slice(&luma);
        }
        native.truncate(n);
        native.shrink_to_fit();
        native.into()
    };
    Ok(GreyImage {
        width: wu,
        height: hu,
        pixels,
    })
}

fn decoder_for<'a>(bytes: &'a [u8], name: &Path) -> Result<(ImageFormat, impl ImageDecoder + 'a)> {
    let image_error = |source| Error::Image {
        path: name.to_path_buf(),
        source,
    };
    let format = image::guess_format(bytes).map_err(image_error)?;
    let reader = ImageReader::with_format(Cursor::new(bytes), format);
    Ok((format, reader.into_decoder().map_err(image_error)?))
}

fn check_size(
    image: &Path,
    annotation: &Path,
    line: usize,
    w: u32,
    h: u32,
    limits: &Limits,
) -> Result<()> {
    limits
        .check_image(image, line, w as u64, h as u64)
        .map_err(|e| match e {
            Error::Limit {
                what,
                value,
                limit,
                setting,
                ..
            } if annotation != image => Error::Limit {
                path: annotation.to_path_buf(),
                line,
                what,
                value,
                limit,
                setting,
            },
            other => other,
        })
}

/// The luma of `rows` rows of native pixels of colour type `color`; None for colour types
/// PNG and JPEG never produce.
fn band_to_luma(band: &[u8], color: image::ColorType, w: u32, rows: u32) -> Option<Vec<u8>> {
    use image::ColorType as C;
    fn u16s(b: &[u8]) -> Vec<u16> {
        b.chunks_exact(2)
            .map(|c| u16::from_ne_bytes([c[0], c[1]]))
            .collect()
    }
    let img = match color {
        C::L8 => DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, rows, band.to_vec())?),
        C::La8 => DynamicImage::ImageLumaA8(ImageBuffer::from_raw(w, rows, band.to_vec())?),
        C::Rgb8 => DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, rows, band.to_vec())?),
        C::Rgba8 => DynamicImage::ImageRgba8(ImageBuffer::from_raw(w, rows, band.to_vec())?),
        C::L16 => DynamicImage::ImageLuma16(ImageBuffer::from_raw(w, rows, u16s(band))?),
        C::La16 => DynamicImage::ImageLumaA16(ImageBuffer::from_raw(w, rows, u16s(band))?),
        C::Rgb16 => DynamicImage::ImageRgb16(ImageBuffer::from_raw(w, rows, u16s(band))?),
        C::Rgba16 => DynamicImage::ImageRgba16(ImageBuffer::from_raw(w, rows, u16s(band))?),
        _ => return None,
    };
    Some(img.to_luma8().into_raw())
}

/// Whether an image held in memory is complete (PNG and JPEG; other formats pass).
fn complete(format: ImageFormat, bytes: &[u8]) -> std::result::Result<(), String> {
    match format {
        ImageFormat::Png => png_complete(&mut Cursor::new(bytes), bytes.len() as u64),
        ImageFormat::Jpeg => jpeg_complete(bytes),
        _ => Ok(()),
    }
}

/// Walks a PNG's chunks (reading only their headers) up to `IEND`.
fn png_complete(r: &mut (impl Read + Seek), len: u64) -> std::result::Result<(), String> {
    r.seek(SeekFrom::Start(8)).map_err(|e| e.to_string())?;
    let mut pos = 8u64;
    loop {
        let mut head = [0u8; 8];
        if pos + 8 > len || r.read_exact(&mut head).is_err() {
            return Err(format!("the file ends at byte {len} without an IEND chunk"));
        }
        let n = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as u64;
        let kind = &head[4..8];
        let end = pos + 12 + n;
        if end > len {
            return Err(format!(
                "chunk `{}` at byte {pos} needs {n} bytes, the file ends at byte {len}",
                String::from_utf8_lossy(kind)
            ));
        }
        if kind == b"IEND" {
            return Ok(());
        }
        r.seek(SeekFrom::Current(n as i64 + 4))
            .map_err(|e| e.to_string())?;
        pos = end;
    }
}

/// Walks a JPEG's segments and entropy-coded scans up to the end-of-image marker.
fn jpeg_complete(b: &[u8]) -> std::result::Result<(), String> {
    let len = b.len();
    if len < 2 || b[0] != 0xFF || b[1] != 0xD8 {
        return Err("no start-of-image marker".into());
    }
    let cut = |what: &str| Err(format!("the file ends at byte {len} inside {what}"));
    let mut pos = 2;
    loop {
        // The next marker; decoders skip stray bytes between segments, and so does this.
        let Some(ff) = b[pos..].iter().position(|&v| v == 0xFF) else {
            return cut("the headers (no end-of-image marker)");
        };
        pos += ff;
        while pos < len && b[pos] == 0xFF {
            pos += 1;
        }
        if pos >= len {
            return cut("a marker");
        }
        let marker = b[pos];
        pos += 1;
        match marker {
            0xD9 => return Ok(()),
            0x01 | 0xD0..=0xD7 => continue,
            0x00 => continue,
            _ => {}
        }
        if pos + 2 > len {
            return cut("a segment length");
        }
        let seg = u16::from_be_bytes([b[pos], b[pos + 1]]) as usize;
        if seg < 2 || pos + seg > len {
            return cut(&format!("segment 0xFF{marker:02X} at byte {}", pos - 2));
        }
        pos += seg;
        if marker == 0xDA {
            // Entropy-coded data: 0xFF is followed by 0x00 (a stuffed byte) or a restart
            // marker; anything else is the next marker.
            loop {
                let Some(ff) = b[pos..].iter().position(|&v| v == 0xFF) else {
                    return cut("the scan data (no end-of-image marker)");
                };
                pos += ff;
                match b.get(pos + 1) {
                    None => return cut("the scan data"),
                    Some(0x00 | 0xD0..=0xD7) => pos += 2,
                    Some(0xFF) => pos += 1,
                    Some(_) => break,
                }
            }
        }
    }
}
