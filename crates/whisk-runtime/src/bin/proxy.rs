//! `whisk-runtime-proxy actionloop|skeleton`: the native proxy without the rest of `whisk`, so this
//! crate's tests can run it as a plain process.

fn main() {
    whisk_runtime::proxy::main_from_args()
}
