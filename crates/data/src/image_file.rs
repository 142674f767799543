//! Image files: the size check from the header, the check that a file is complete, and
//! decoding to grey or RGB while holding one copy of the result.
//!
//! A PNG or JPEG header may declare any size (a 1 KB PNG can declare 100000^2 pixels), and
//! a decoder given a truncated file may fill the missing part with grey and report success.
//! So every image is checked, before any pixel buffer is allocated, against [`Limits`] and
//! for completeness: a PNG must reach its `IEND` chunk, a JPEG its end-of-image marker
//! after the last scan.
//!
//! **Channels.** An [`Image`] holds 1 (grey) or 3 (RGB) 8-bit channels, interleaved like
//! the `image` crate's `GrayImage` / `RgbImage`. Decoding to grey takes the luma that the
//! `image` crate's `to_luma8` computes (sRGB weights 0.2126, 0.7152, 0.0722); decoding to RGB
//! drops alpha and repeats grey files' value in the three channels; 16-bit files are
//! rounded to 8 bits. [`Image::to_channels`] converts held images the same ways, so an RGB
//! image decoded and then turned grey equals the file decoded to grey.

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use image::{DynamicImage, ImageBuffer, ImageDecoder, ImageFormat, ImageReader};

use crate::error::{Error, Result};
use crate::limits::{read_bytes, Limits};

/// An 8-bit image held in memory: `channels` values per pixel (1 grey, 3 RGB), pixels
/// row-major with the channel fastest (`pixels[(y * width + x) * channels + c]`, as the
/// `image` crate's `RgbImage`); 0 is black, 255 full intensity.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Values per pixel: 1 (grey) or 3 (red, green, blue).
    pub channels: usize,
    /// Row-major interleaved pixels, `height * width * channels` bytes.
    pub pixels: Arc<[u8]>,
}

/// The image type under its earlier name: an [`Image`] of any channel count (grey, with one
/// channel, unless built or decoded otherwise).
pub type GreyImage = Image;

/// Checks a channel count (1 or 3); `field` names the setting in the error.
pub(crate) fn check_channels(field: &'static str, channels: usize) -> Result<()> {
    if channels == 1 || channels == 3 {
        Ok(())
    } else {
        Err(Error::arg(
            field,
            format!("{channels} channels: need 1 (grey) or 3 (RGB)"),
        ))
    }
}

/// `width * height * channels`, the bytes an image holds, or an error when it overflows.
fn held_bytes(name: &Path, width: usize, height: usize, channels: usize) -> Result<usize> {
    width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(channels))
        .ok_or_else(|| Error::CorruptImage {
            path: name.to_path_buf(),
            reason: format!("{width}x{height}x{channels} bytes do not fit in memory"),
        })
}

impl Image {
    /// A grey image: wraps `pixels` (row-major, `height * width`).
    ///
    /// Errors with [`Error::InvalidArgument`] when the length does not match or a side is 0.
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Result<Self> {
        Self::with_channels(width, height, 1, pixels)
    }

    /// An image of `channels` (1 or 3) interleaved channels: wraps `pixels` (row-major,
    /// `height * width * channels`, channel fastest).
    ///
    /// Errors with [`Error::InvalidArgument`] when the channel count is not 1 or 3, the
    /// length does not match or a side is 0.
    pub fn with_channels(
        width: usize,
        height: usize,
        channels: usize,
        pixels: Vec<u8>,
    ) -> Result<Self> {
        check_channels("channels", channels)?;
        let n = width
            .checked_mul(height)
            .and_then(|n| n.checked_mul(channels));
        if width == 0 || height == 0 || n != Some(pixels.len()) {
            return Err(Error::arg(
                "pixels",
                format!(
                    "{} bytes for a {width}x{height} image of {channels} channels",
                    pixels.len()
                ),
            ));
        }
        Ok(Image {
            width,
            height,
            channels,
            pixels: pixels.into(),
        })
    }

    /// Pixels as f32 in [0, 1] (value / 255), in the stored order: `(H, W)` for a grey
    /// image, `(H, W, C)` (interleaved) otherwise.
    pub fn to_f32(&self) -> Vec<f32> {
        self.pixels.iter().map(|&v| v as f32 / 255.0).collect()
    }

    /// Pixels as f32 in [0, 1] (value / 255), one plane per channel: `(C, H, W)`, the layout
    /// of a model input. For a grey image the same as [`Image::to_f32`].
    pub fn to_f32_planar(&self) -> Vec<f32> {
        let c = self.channels.max(1);
        let n = self.width * self.height;
        let mut out = vec![0f32; c * n];
        for (ch, plane) in out.chunks_mut(n.max(1)).enumerate() {
            for (o, &v) in plane.iter_mut().zip(self.pixels.iter().skip(ch).step_by(c)) {
                *o = v as f32 / 255.0;
            }
        }
        out
    }

    /// This image with `channels` channels (1 or 3): itself (a cheap clone of the shared
    /// pixels) when it has them already; grey to RGB repeats the value in each channel; RGB
    /// to grey takes the luma the decoder takes (the `image` crate's `to_luma8`).
    ///
    /// Errors with [`Error::InvalidArgument`] for a channel count other than 1 or 3 (asked
    /// for or held).
    pub fn to_channels(&self, channels: usize) -> Result<Image> {
        check_channels("channels", channels)?;
        check_channels("image.channels", self.channels)?;
        if channels == self.channels {
            return Ok(self.clone());
        }
        let pixels: Vec<u8> = if channels == 3 {
            self.pixels.iter().flat_map(|&v| [v; 3]).collect()
        } else {
            let (w, h) = (self.width as u32, self.height as u32);
            let rgb = ImageBuffer::from_raw(w, h, self.pixels.to_vec())
                .ok_or_else(|| Error::arg("pixels", "length does not match the size"))?;
            DynamicImage::ImageRgb8(rgb).to_luma8().into_raw()
        };
        Image::with_channels(self.width, self.height, channels, pixels)
    }

    /// Reads an image file through the `image` crate and converts it to grey (luma,
    /// as the `image` crate's `to_luma8` computes it), within the default [`Limits`]: see
    /// [`Image::open_with_limits`].
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

    /// Reads an image file with `channels` channels (1: grey as [`Image::open`], 3: RGB),
    /// within the default [`Limits`].
    pub fn open_with_channels(path: &Path, channels: usize) -> Result<Self> {
        Self::open_with_limits_channels(path, &Limits::default(), channels)
    }

    /// Reads an image file with `channels` channels (1 or 3) after the checks of
    /// [`Image::open_with_limits`] ([`decode_file_with_channels`]).
    ///
    /// Errors: those of [`Image::open_with_limits`], and [`Error::InvalidArgument`] for a
    /// channel count other than 1 or 3.
    pub fn open_with_limits_channels(
        path: &Path,
        limits: &Limits,
        channels: usize,
    ) -> Result<Self> {
        decode_file_with_channels(path, limits, channels)
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
pub fn decode_file(path: &Path, limits: &Limits) -> Result<Image> {
    decode_file_with_channels(path, limits, 1)
}

/// Reads and decodes an image file to `channels` channels (see
/// [`decode_bytes_with_channels`]).
pub fn decode_file_with_channels(path: &Path, limits: &Limits, channels: usize) -> Result<Image> {
    check_channels("channels", channels)?;
    let bytes = read_bytes(path, limits)?;
    decode_bytes_with_channels(&bytes, path, limits, channels)
}

/// Decodes an image to grey 8-bit (luma as the `image` crate's `to_luma8` computes it) after
/// [`check_bytes`]'s checks. Memory: one grey copy for 8-bit grey files; for others the
/// decoder's native buffer (e.g. 3 bytes a pixel for RGB), converted in place, and briefly
/// two grey copies while it moves into the shared buffer.
pub fn decode_bytes(bytes: &[u8], name: &Path, limits: &Limits) -> Result<Image> {
    decode_bytes_with_channels(bytes, name, limits, 1)
}

/// Decodes an image to `channels` 8-bit channels (1: grey as [`decode_bytes`]; 3: RGB,
/// alpha dropped, grey files repeated in the three channels) after [`check_bytes`]'s
/// checks. The decoded image holds `width x height x channels` bytes; that size is checked
/// before it is allocated. Memory for RGB: the decoder's native buffer converted in place
/// for colour files (briefly two RGB copies while it moves into the shared buffer); for
/// grey files the grey decode, then its RGB copy.
///
/// Errors: those of [`check_bytes`], [`Error::Image`] (decoding failed), and
/// [`Error::InvalidArgument`] for a channel count other than 1 or 3.
pub fn decode_bytes_with_channels(
    bytes: &[u8],
    name: &Path,
    limits: &Limits,
    channels: usize,
) -> Result<Image> {
    check_channels("channels", channels)?;
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
    let n = held_bytes(name, wu, hu, channels)?;
    let native_px = color.bytes_per_pixel() as usize;
    let pixels: Arc<[u8]> = if color == image::ColorType::L8 && channels == 1 {
        // Decoded straight into the shared buffer: one copy.
        let mut grey: Arc<[u8]> = std::iter::repeat_n(0u8, n).collect();
        let out = Arc::get_mut(&mut grey).ok_or_else(|| Error::arg("pixels", "shared buffer"))?;
        decoder.read_image(out).map_err(image_error)?;
        grey
    } else if native_px < channels {
        // A grey file (1 or 2 bytes a pixel) asked as RGB: decoded grey, then repeated.
        let grey = decode_bytes_with_channels(bytes, name, limits, 1)?;
        return grey.to_channels(channels);
    } else {
        // Decoded in the native colour type, then converted in place, band by band (pixel
        // i's converted bytes go to bytes `channels * i ..`, which lie at or before pixel
        // i's native bytes), so the peak is the native buffer, not the native buffer plus
        // conversions.
        let total = usize::try_from(decoder.total_bytes())
            .map_err(|_| Error::arg("image", "decoded size does not fit in memory"))?;
        let mut native = vec![0u8; total];
        decoder.read_image(&mut native).map_err(image_error)?;
        let row_bytes = total / hu.max(1);
        let band_rows = ((256 << 10) / row_bytes.max(1)).max(1);
        let row_out = wu * channels;
        for row in (0..hu).step_by(band_rows) {
            let rows = band_rows.min(hu - row);
            let src = row * row_bytes..(row + rows) * row_bytes;
            let band =
                convert_band(&native[src], color, w, rows as u32, channels).ok_or_else(|| {
                    Error::CorruptImage {
                        path: name.to_path_buf(),
                        reason: format!("unsupported colour type {color:?}"),
                    }
                })?;
            native[row * row_out..row * row_out + band.len()].copy_from_slice(&band);
        }
        native.truncate(n);
        native.shrink_to_fit();
        native.into()
    };
    Ok(Image {
        width: wu,
        height: hu,
        channels,
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

/// `rows` rows of native pixels of colour type `color` as 8-bit grey (luma, `channels` 1)
/// or RGB (`channels` 3); None for colour types PNG and JPEG never produce.
fn convert_band(
    band: &[u8],
    color: image::ColorType,
    w: u32,
    rows: u32,
    channels: usize,
) -> Option<Vec<u8>> {
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
    Some(if channels == 1 {
        img.to_luma8().into_raw()
    } else {
        img.to_rgb8().into_raw()
    })
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
