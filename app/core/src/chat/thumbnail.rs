//! Previews of shared images, made on the sender's device and sent inside the sealed message
//! that shares the file, so receivers show a picture before (or without) fetching the file and
//! the relay learns nothing of it.

use std::io::Cursor;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{ImageReader, Limits};

/// Longest side of a preview, in pixels.
pub const THUMBNAIL_SIDE: u32 = 320;
/// Largest preview, in bytes (it travels in a message of at most 64 KiB).
pub const MAX_THUMBNAIL_LEN: usize = 48 * 1024;
/// Images larger than this on a side are not decoded (a small file can claim a huge picture).
const MAX_SOURCE_SIDE: u32 = 16_384;
/// Memory a decode may take.
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// Whether `bytes` look like a JPEG (what previews are; receivers take nothing else).
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xff, 0xd8, 0xff])
}

/// A JPEG preview of the image at `path`, at most [`THUMBNAIL_SIDE`] pixels a side and
/// [`MAX_THUMBNAIL_LEN`] bytes; none if it is not an image this build reads (or is too big).
pub fn thumbnail_of(path: &Path) -> Option<Vec<u8>> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SOURCE_SIDE);
    limits.max_image_height = Some(MAX_SOURCE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = ImageReader::open(path).ok()?.with_guessed_format().ok()?;
    reader.limits(limits);
    let image = reader.decode().ok()?;
    let small = image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE).to_rgb8();
    // Lower the quality until it fits (a busy photo at 320 px is some 20 KB at 80).
    for quality in [80, 65, 50, 35] {
        let mut out = Cursor::new(Vec::new());
        JpegEncoder::new_with_quality(&mut out, quality)
            .encode_image(&small)
            .ok()?;
        let bytes = out.into_inner();
        if bytes.len() <= MAX_THUMBNAIL_LEN {
            return Some(bytes);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_gets_a_small_jpeg_and_other_files_none() {
        let dir = tempfile::tempdir().unwrap();
        let photo = dir.path().join("photo.png");
        let picture = image::RgbImage::from_fn(1200, 800, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x ^ y) % 256) as u8])
        });
        picture.save(&photo).unwrap();
        let preview = thumbnail_of(&photo).expect("a preview");
        assert!(is_jpeg(&preview));
        assert!(preview.len() <= MAX_THUMBNAIL_LEN);
        let decoded = image::load_from_memory(&preview).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (320, 213));

        let text = dir.path().join("notes.png");
        std::fs::write(&text, "not a picture at all").unwrap();
        assert_eq!(thumbnail_of(&text), None);
    }
}
