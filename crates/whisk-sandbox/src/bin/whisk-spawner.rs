//! The spawner as a stand-alone binary, for this crate's tests (production runs the same code
//! as `whisk spawner`).

fn main() {
    whisk_sandbox::spawner::serve_stdin()
}
