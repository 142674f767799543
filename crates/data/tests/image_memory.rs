//! Decoding holds one grey copy of an image: the peak memory of [`GreyImage::open`] is the
//! decoder's native buffer plus the grey image (plus small buffers), not several full
//! copies. Measured with a counting allocator; one test in this binary, so no other thread
//! allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use landmark_ssl_data::GreyImage;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(l.size(), Ordering::SeqCst) + l.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Ordering::SeqCst);
    }
    // Counted as the system allocator does it: in place (only the size changes) or, when
    // the block moves, the old and new blocks both held for a moment.
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new_size) };
        if q.is_null() {
            return q;
        }
        if q == p {
            if new_size >= l.size() {
                let now = CURRENT.fetch_add(new_size - l.size(), Ordering::SeqCst);
                PEAK.fetch_max(now + new_size - l.size(), Ordering::SeqCst);
            } else {
                CURRENT.fetch_sub(l.size() - new_size, Ordering::SeqCst);
            }
        } else {
            let now = CURRENT.fetch_add(new_size, Ordering::SeqCst) + new_size;
            PEAK.fetch_max(now, Ordering::SeqCst);
            CURRENT.fetch_sub(l.size(), Ordering::SeqCst);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak bytes allocated by `f` above what was allocated before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let r = f();
    (r, PEAK.load(Ordering::SeqCst) - base)
}

#[test]
fn decoding_keeps_one_grey_copy() {
    let t = tempfile::tempdir().unwrap();
    let (w, h) = (2000u32, 1500u32);
    let n = (w * h) as usize;
    const SLACK: usize = 1 << 20; // file bytes, decoder state, one conversion band
    let rgb = t.path().join("rgb.png");
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x / 8) as u8, (y / 6) as u8, 50]))
        .save(&rgb)
        .unwrap();
    let grey = t.path().join("grey.png");
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x + y) / 16) as u8]))
        .save(&grey)
        .unwrap();

    let (img, peak) = peak_of(|| GreyImage::open(&rgb).unwrap());
    assert_eq!(img.pixels.len(), n);
    eprintln!("RGB: peak {peak} bytes for {n} pixels");
    // The native RGB buffer (3 bytes a pixel) is the peak: no grey copy beside it.
    assert!(peak <= 3 * n + SLACK, "RGB peak {peak} for {n} pixels");
    drop(img);
    // What decoding to a DynamicImage, converting and copying into the shared buffer
    // took: the RGB image, its grey conversion and the copy.
    let (_, before) = peak_of(|| {
        let g = image::open(&rgb).unwrap().to_luma8();
        std::sync::Arc::<[u8]>::from(g.into_raw())
    });
    eprintln!("RGB through DynamicImage: peak {before}");
    assert!(peak + n - SLACK <= before, "{peak} vs {before}");

    let (img, peak) = peak_of(|| GreyImage::open(&grey).unwrap());
    assert_eq!(img.pixels.len(), n);
    eprintln!("grey: peak {peak} bytes for {n} pixels");
    assert!(peak <= n + SLACK, "grey peak {peak} for {n} pixels");
}
