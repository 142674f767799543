//! Blocks and Shapes generators: landmarks on their shapes, balanced classes, determinism.

use landmark_ssl_data::{blocks, shapes, GreyImage, ImageSource, Sample};

fn grey(s: &Sample) -> &GreyImage {
    match &s.image {
        ImageSource::Memory(g) => g,
        ImageSource::File(_) => panic!("generated samples are in memory"),
    }
}

fn at(g: &GreyImage, p: [f32; 2]) -> u8 {
    let (x, y) = (p[0].round() as usize, p[1].round() as usize);
    g.pixels[y * g.width + x]
}

#[test]
fn blocks_landmarks_sit_on_squares_and_classes_balance() {
    let d = blocks::generate(600, 7).unwrap();
    d.validate().unwrap();
    assert_eq!(d.meta.num_landmarks(), 5);
    let counts = d.class_counts(blocks::ATTRIBUTE);
    assert_eq!(counts, vec![40; 15]);
    for s in &d.samples {
        let g = grey(s);
        assert_eq!((g.width, g.height), (60, 60));
        for (k, p) in s.landmarks.iter().enumerate() {
            assert!(p[0] > 0.5 && p[0] < 58.5 && p[1] > 0.5 && p[1] < 58.5);
            // The square centre and its 4-neighbourhood are fully white (square side >= 4 px).
            assert_eq!(at(g, *p), 255, "landmark {k} not on a square");
            for (dx, dy) in [(-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)] {
                assert!(at(g, [p[0] + dx, p[1] + dy]) > 200);
            }
        }
        // Consecutive landmarks are one cell apart (6 to 9 px), so ordered head to tail.
        for w in s.landmarks.windows(2) {
            let d = ((w[0][0] - w[1][0]).powi(2) + (w[0][1] - w[1][1]).powi(2)).sqrt();
            assert!((5.99..9.01).contains(&d), "{d}");
        }
        // Image border is black: the figure is fully inside.
        for i in 0..60 {
            for (x, y) in [(i, 0), (i, 59), (0, i), (59, i)] {
                assert_eq!(g.pixels[y * 60 + x], 0);
            }
        }
        // Anti-aliased: some intermediate grey levels.
        assert!(g.pixels.iter().any(|&v| v > 0 && v < 255));
    }
}

#[test]
fn blocks_head_is_next_to_the_triangle() {
    // Render without rotation: configuration 0 (straight) has the triangle to the left of
    // landmark 0, i.e. white pixels beyond landmark 0 and none beyond landmark 4.
    let s = blocks::render(0, 6.0, 0.0, [30.0, 30.0]);
    let g = grey(&s);
    let (h, t) = (s.landmarks[0], s.landmarks[4]);
    assert!(h[0] < t[0]);
    assert!(at(g, [h[0] - 6.0, h[1]]) > 128, "triangle beyond the head");
    assert_eq!(at(g, [t[0] + 6.0, t[1]]), 0, "nothing beyond the tail");
}

#[test]
fn generators_are_deterministic() {
    assert_eq!(
        blocks::generate(30, 3).unwrap(),
        blocks::generate(30, 3).unwrap()
    );
    assert_ne!(
        blocks::generate(30, 3).unwrap(),
        blocks::generate(30, 4).unwrap()
    );
    assert_eq!(
        shapes::generate(30, 3).unwrap(),
        shapes::generate(30, 3).unwrap()
    );
    assert!(blocks::generate(0, 1).is_err());
    let [a, b, c] = blocks::generate_splits([15, 30, 45], 1).unwrap();
    assert_eq!((a.len(), b.len(), c.len()), (15, 30, 45));
    assert_ne!(a.samples[0], b.samples[0]);
}

#[test]
fn shapes_landmarks_on_shapes_and_class_matches_geometry() {
    let d = shapes::generate(400, 11).unwrap();
    d.validate().unwrap();
    assert_eq!(d.class_counts(shapes::ATTRIBUTE), vec![200, 200]);
    for s in &d.samples {
        let g = grey(s);
        for p in &s.landmarks {
            assert!(at(g, *p) > 200, "landmark off its shape");
        }
        let dist = |p: [f32; 2]| ((p[0] + 0.5).powi(2) + (p[1] + 0.5).powi(2)).sqrt();
        let c = s.classes[shapes::ATTRIBUTE];
        let triangle_closer = dist(s.landmarks[0]) < dist(s.landmarks[1]);
        assert_eq!(c == 0, triangle_closer);
        // Two separate shapes: total white area is between the two shapes' size ranges.
        let area: f32 = g.pixels.iter().map(|&v| v as f32 / 255.0).sum();
        let (tri_min, sq_min) = (3f32.sqrt() / 4.0 * 100.0, 64.0);
        let (tri_max, sq_max) = (3f32.sqrt() / 4.0 * 324.0, 196.0);
        assert!(
            area > tri_min + sq_min - 2.0 && area < tri_max + sq_max + 2.0,
            "{area}"
        );
    }
}
