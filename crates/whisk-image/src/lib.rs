//! OCI images as the root filesystems of blackbox actions.
//!
//! An image enters the platform as an archive (`docker save` output or an OCI image layout, see
//! [`archive`]) whose blobs are verified by digest and kept in an [`ImageStore`]. A container
//! then runs on the image's *root filesystem*: its layers applied in order ([`layer`]), with
//! whiteouts and opaque directories honoured and nothing written outside the root, built once
//! per manifest digest and shared read-only by every container of that image.

pub mod archive;
pub mod digest;
pub mod layer;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use digest::Digest;
pub use store::{ImageConfig, ImageError, ImageStore, ImportedImage};
