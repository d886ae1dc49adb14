//! Web actions (REFERENCE §11): the pure parts — where a request points, what the action gets as
//! input, and how its result becomes an HTTP response. The handler in `api/web.rs` puts them
//! together with lookup, authentication and invocation.

pub mod address;
pub mod media;
pub mod params;
pub mod shape;

pub use address::{Extension, WebAddress};
pub use params::{ParametersNotAllowed, WebRequest, request_parameters};
pub use shape::{ShapeError, shape};
