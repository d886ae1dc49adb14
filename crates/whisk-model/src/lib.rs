//! Wire formats and entity types shared by every whisk-rs component. No I/O lives here.
