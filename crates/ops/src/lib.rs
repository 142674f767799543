//! Tensor kernels for landmark-ssl: fused soft-argmax, Gaussian heat maps, hard argmax with
//! sub-pixel refinement, affine transforms of points and images, and a fast CPU convolution.
//!
//! Conventions (shared by the whole workspace, see `docs/ARCHITECTURE.md`): points are
//! (x, y) in pixels, x the column and y the row, 0-based, pixel centres at integers
//! 0..W-1 and 0..H-1 (a pixel covers [i - 0.5, i + 0.5]). Maps and images are
//! (B, K, H, W) / (B, C, H, W); landmarks (B, K, 2); affine matrices (B, 2, 3) map source
//! pixels to destination pixels. [`coords`] converts to and from the normalised
//! conventions of kornia and dsntnn.
//!
//! | module | holds |
//! |---|---|
//! | [`soft_argmax`](mod@soft_argmax) | [`soft_argmax()`], [`soft_argmax_composite`], [`soft_argmax_detailed`] |
//! | [`heatmap`] | [`render_gaussian_heatmaps`], [`hard_argmax_subpixel`] |
//! | [`affine`] | [`Affine2`], [`transform_points`], [`warp_images`], [`warp_image_slice`] |
//! | [`coords`] | pixel <-> kornia / dsntnn conversions |
//! | [`conv`] | [`Conv2d`], [`conv2d`], [`conv2d_fast`]: a fast CPU convolution |
//!
//! Feature `cuda`: enables candle's CUDA backend and CUDA kernels for the fused soft-argmax
//! (forward and backward, compiled with NVRTC on first use; compiled in CI, not yet run on
//! a GPU, see [`soft_argmax`](mod@soft_argmax)). Heat maps, coordinate conversions and
//! point transforms are candle ops and run on any device; image warps and hard argmax
//! copy to the CPU and back.
//!
//! CPU kernels: the soft-argmax and the convolution pick AVX-512, AVX2 + FMA or portable
//! code from the CPU's features, once per process. Environment variables set to `1` turn
//! the SIMD kernels off, to measure or test the others: `LANDMARK_SSL_SOFT_ARGMAX_NO_AVX512`
//! and `LANDMARK_SSL_CONV_NO_AVX512` skip AVX-512, `LANDMARK_SSL_SOFT_ARGMAX_NO_AVX2` and
//! `LANDMARK_SSL_CONV_NO_AVX2` skip AVX2 and AVX-512 (the portable paths);
//! `LANDMARK_SSL_CONV_KERNEL=gemm` forces the GEMM convolution.
//! [`soft_argmax::cpu_kernel`] and [`conv::cpu_kernel`] name the kernels a process runs.

#![warn(missing_docs)]

pub mod affine;
mod buffer;
mod cache;
mod check;
pub mod conv;
pub mod coords;
mod denormal;
pub mod error;
pub mod heatmap;
pub mod normalize;
pub mod soft_argmax;

pub use affine::{
    affine_from_tensor, affine_to_tensor, transform_points, warp_image_slice, warp_images, Affine2,
};
pub use conv::{conv2d, conv2d_fast, Conv2d, Conv2dConfig};
pub use coords::CoordConvention;
pub use error::{Error, Result};
pub use heatmap::{
    hard_argmax_subpixel, hard_argmax_subpixel_with, render_gaussian_heatmaps, SubpixelRefinement,
};
pub use normalize::{normalize_image, normalize_images};
pub use soft_argmax::{soft_argmax, soft_argmax_composite, soft_argmax_detailed, SoftArgmaxOutput};
