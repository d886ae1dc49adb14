//! WebAssembly actions (kind `wasm:wasi`): WASI modules run in-process by wasmtime.
//!
//! An action's code is a WebAssembly module built as a WASI preview 1 *command* (it exports
//! `_start`). The module reads the activation's parameters as one JSON document on stdin and
//! writes its result as JSON on stdout; anything it writes on stderr is a log line, and so are
//! stdout lines before the result (see [`parse_stdout`] for the exact rule).
//!
//! Why in-process instead of a container per action: a compiled module is instantiated from a
//! pre-linked [`wasmtime::InstancePre`] into a slot of wasmtime's pooling allocator in
//! microseconds, and the wasm sandbox already confines the code (no filesystem, no network, no
//! environment beyond what the invoker passes, linear memory capped by the action's limit). A container per action would add milliseconds of
//! process and namespace set-up to a cold start that can otherwise cost well under one.
//!
//! The pieces:
//! * [`WasmEngine`] owns the wasmtime engine (pooling allocator, epoch interruption driven by one
//!   ticker thread, async calls on fiber stacks), the WASI linker and the cache of compiled
//!   modules keyed by SHA-256 digest.
//! * [`WasmEngine::compile`] turns module bytes into a shared [`CompiledAction`], or a
//!   [`WasmCompileError`] whose text is the activation's init failure.
//! * [`WasmEngine::run`] runs one activation in a fresh instance under a memory and time limit and
//!   returns a [`WasmOutcome`], which maps itself to OpenWhisk's activation response.
//! * [`WasmContainer`] wraps both behind OpenWhisk's `/init` and `/run` payloads, for the
//!   invoker's container seam.
//!
//! [`WasmEngine::run`] is async and needs a Tokio runtime with timers: the module yields every
//! epoch tick, so it shares a worker thread fairly. [`WasmEngine::compile`] is synchronous and
//! CPU-bound (Cranelift; tens of milliseconds for a small module, once per digest): an async
//! caller runs it on a blocking thread (`tokio::task::spawn_blocking`).

mod capture;
mod container;
mod engine;
mod output;
mod run;

pub use capture::{LogLine, LogStream};
pub use container::{WasmContainer, WasmInitError};
pub use engine::{
    CompiledAction, WasmCompileError, WasmConfig, WasmEngine, WasmEngineError, WasmValidator,
};
pub use output::{NOT_A_DICTIONARY, ParsedOutput, parse_stdout};
pub use run::{RunLimits, RunRequest, WasmOutcome, WasmRunError};

/// The runtime kind of WebAssembly actions in the runtime manifest.
pub const WASM_KIND: &str = "wasm:wasi";
