//! The sandbox's spawner as a stand-alone program, for this crate's real-container tests.

fn main() {
    whisk_sandbox::spawner::serve_stdin()
}
