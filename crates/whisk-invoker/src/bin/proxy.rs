//! The native runtime proxy (`actionloop|skeleton`) as a stand-alone program, bound into
//! containers by this crate's real-container tests.

fn main() {
    whisk_runtime::proxy::main_from_args()
}
