//! The wasmtime engine, the WASI linker, the epoch ticker and the compiled-module cache.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, ExternType, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig,
};
use whisk_model::ActivationResponse;

use crate::run::RunState;

const MIB: u64 = 1024 * 1024;

/// How the engine is sized. One engine serves every WebAssembly action of an invoker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmConfig {
    /// Activations that may run at once: the pooling allocator reserves this many instance,
    /// memory and table slots up front (virtual address space only until used).
    pub max_instances: u32,
    /// The largest memory limit an action may have, in MB: the size of each memory slot. A run
    /// asking for more is capped here.
    pub max_memory_mb: u64,
    /// How often the epoch advances: a running module yields to the executor once per tick, so
    /// this bounds how long it holds a worker thread and how late a timeout can fire.
    pub epoch_tick: Duration,
    /// Compiled modules kept; the oldest entry is dropped first when full.
    pub cache_capacity: usize,
    /// Bytes kept of each of stdout and stderr per run. Stdout past it (result and stdout log
    /// lines together) makes the run an over-long response; stderr past it is cut.
    pub max_output_bytes: usize,
}

impl Default for WasmConfig {
    /// 64 concurrent activations of up to 512 MB (OpenWhisk's largest default memory limit),
    /// 1 ms timeout precision, 256 cached modules, 16 MiB of output per stream.
    fn default() -> WasmConfig {
        WasmConfig {
            max_instances: 64,
            max_memory_mb: 512,
            epoch_tick: Duration::from_millis(1),
            cache_capacity: 256,
            max_output_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The engine could not be set up (a configuration wasmtime refuses, or no ticker thread).
#[derive(Debug, thiserror::Error)]
pub enum WasmEngineError {
    #[error("the WebAssembly engine configuration is invalid: {0}")]
    Config(String),
    #[error("the WebAssembly epoch ticker thread could not be started: {0}")]
    Ticker(#[from] std::io::Error),
}

/// Why a module cannot become an action. The text is the activation's init failure, so it is
/// written for the action's developer (see [`WasmCompileError::response`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WasmCompileError {
    #[error("The action's code is not valid base64: {0}")]
    Base64(String),
    #[error("The action's code is not a valid WebAssembly module: {0}")]
    Invalid(String),
    #[error(
        "The WebAssembly module is not a WASI command: it must export a function '_start' taking and returning nothing."
    )]
    NoStart,
    #[error(
        "The WebAssembly module needs imports this platform does not provide (only WASI preview 1, 'wasi_snapshot_preview1', is available): {0}"
    )]
    Link(String),
}

impl WasmCompileError {
    /// The activation response of an `/init` that failed this way: a developer error carrying
    /// the message, as OpenWhisk reports an init failure.
    pub fn response(&self) -> ActivationResponse {
        ActivationResponse::developer_error(serde_json::Value::String(self.to_string()))
    }
}

/// A module compiled, validated as a WASI command and linked against WASI: ready to instantiate.
pub struct CompiledAction {
    digest: [u8; 32],
    pub(crate) pre: InstancePre<RunState>,
    compile_time: Duration,
}

impl CompiledAction {
    /// The SHA-256 of the module bytes (the cache key).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The digest in lower-case hex, for logs.
    pub fn digest_hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// How long the compilation that produced this entry took (a cache hit reports the same
    /// value again).
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }
}

impl fmt::Debug for CompiledAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledAction")
            .field("digest", &self.digest_hex())
            .field("compile_time", &self.compile_time)
            .finish_non_exhaustive()
    }
}

type CacheSlot = Arc<OnceLock<Result<Arc<CompiledAction>, WasmCompileError>>>;

/// Compiled modules by digest. Each entry is a once-cell so that concurrent requests for the
/// same new module compile it once: the first fills the cell, the others wait on it. Failures
/// are cached too (the same bytes always fail the same way).
#[derive(Default)]
struct Cache {
    entries: HashMap<[u8; 32], CacheSlot>,
    order: VecDeque<[u8; 32]>,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    linker: Linker<RunState>,
    pub(crate) config: WasmConfig,
    cache: Mutex<Cache>,
    compilations: AtomicU64,
    _ticker: Ticker,
}

/// The one wasmtime engine of an invoker. Cheap to clone (shared state).
#[derive(Clone)]
pub struct WasmEngine {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmEngine")
            .field("config", &self.inner.config)
            .field("compilations", &self.compilations())
            .finish_non_exhaustive()
    }
}

impl WasmEngine {
    /// Builds the engine: Cranelift, the pooling allocator sized by `config`, epoch interruption
    /// with its ticker thread, and a linker holding WASI preview 1.
    ///
    /// Compilation runs on the calling thread (wasmtime's `parallel-compilation` is not enabled):
    /// the invoker has few cores and other duties, and each module is compiled once.
    pub fn new(config: WasmConfig) -> Result<WasmEngine, WasmEngineError> {
        let slots = config.max_instances.max(1);
        let memory_bytes = usize::try_from(config.max_memory_mb.saturating_mul(MIB))
            .map_err(|_| WasmEngineError::Config("max_memory_mb is too large".into()))?;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(slots)
            .total_memories(slots)
            .total_tables(slots)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .max_memory_size(memory_bytes)
            // Async calls run wasm on a fiber stack; one per concurrent activation.
            .total_stacks(slots)
            // Components are not run here; their slots would only reserve address space.
            .total_component_instances(0);
        let mut wasm = Config::new();
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true);
        let engine = Engine::new(&wasm).map_err(|e| WasmEngineError::Config(format!("{e:#}")))?;
        let linker = wasi_linker(&engine)?;
        let ticker = Ticker::start(engine.clone(), config.epoch_tick)?;
        tracing::info!(
            max_instances = slots,
            max_memory_mb = config.max_memory_mb,
            epoch_tick_us = config.epoch_tick.as_micros() as u64,
            "WebAssembly engine ready"
        );
        Ok(WasmEngine {
            inner: Arc::new(Inner {
                engine,
                linker,
                config,
                cache: Mutex::new(Cache::default()),
                compilations: AtomicU64::new(0),
                _ticker: ticker,
            }),
        })
    }

    /// The configuration the engine was built with.
    pub fn config(&self) -> &WasmConfig {
        &self.inner.config
    }

    /// How many modules this engine has actually compiled (cache misses), for tests and metrics.
    pub fn compilations(&self) -> u64 {
        self.inner.compilations.load(Ordering::Relaxed)
    }

    /// Compiles `bytes` (a binary `.wasm` module), or returns the cached result for the same
    /// bytes. An action updated with new code has a new digest, so it is never served stale code.
    pub fn compile(&self, bytes: &[u8]) -> Result<Arc<CompiledAction>, WasmCompileError> {
        self.compile_digested(digest_of(bytes), bytes)
    }

    /// [`WasmEngine::compile`] for an action's `code` as stored: base64 of the module (outer
    /// whitespace ignored).
    pub fn compile_base64(&self, code: &str) -> Result<Arc<CompiledAction>, WasmCompileError> {
        self.compile(&decode_base64(code)?)
    }

    /// The cached result for `digest`, when its compilation has finished; never compiles.
    pub(crate) fn cached(
        &self,
        digest: [u8; 32],
    ) -> Option<Result<Arc<CompiledAction>, WasmCompileError>> {
        let slot = lock(&self.inner.cache).entries.get(&digest).cloned()?;
        slot.get().cloned()
    }

    /// [`WasmEngine::compile`] when the digest of `bytes` is known already.
    pub(crate) fn compile_digested(
        &self,
        digest: [u8; 32],
        bytes: &[u8],
    ) -> Result<Arc<CompiledAction>, WasmCompileError> {
        let slot = self.slot(digest);
        slot.get_or_init(|| self.compile_uncached(digest, bytes))
            .clone()
    }

    fn slot(&self, digest: [u8; 32]) -> CacheSlot {
        let mut cache = lock(&self.inner.cache);
        if let Some(slot) = cache.entries.get(&digest) {
            return Arc::clone(slot);
        }
        let slot: CacheSlot = Arc::new(OnceLock::new());
        cache.entries.insert(digest, Arc::clone(&slot));
        cache.order.push_back(digest);
        let capacity = self.inner.config.cache_capacity.max(1);
        while cache.entries.len() > capacity {
            match cache.order.pop_front() {
                Some(oldest) => {
                    cache.entries.remove(&oldest);
                }
                None => break,
            }
        }
        slot
    }

    fn compile_uncached(
        &self,
        digest: [u8; 32],
        bytes: &[u8],
    ) -> Result<Arc<CompiledAction>, WasmCompileError> {
        self.inner.compilations.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let pre = compile_module(&self.inner.engine, &self.inner.linker, bytes)?;
        let compiled = CompiledAction {
            digest,
            pre,
            compile_time: started.elapsed(),
        };
        whisk_metrics::global().wasm_compile(compiled.compile_time);
        tracing::debug!(
            digest = %compiled.digest_hex(),
            bytes = bytes.len(),
            compile_ms = compiled.compile_time.as_secs_f64() * 1000.0,
            "compiled WebAssembly action"
        );
        Ok(Arc::new(compiled))
    }
}

/// Checks modules the way a [`WasmEngine`] compiles them, without running anything: what a
/// controller without a local invoker holds to refuse a bad module when an action is written.
///
/// The wasmtime settings that decide what compiles (epoch interruption, the WASI linker) are
/// the engine's, so a module accepted here is one an invoker accepts; but there is no pool of
/// instance slots, no epoch ticker and no cache (an invoker on another host compiles the module
/// again on first use).
pub struct WasmValidator {
    engine: Engine,
    linker: Linker<RunState>,
}

impl fmt::Debug for WasmValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmValidator").finish_non_exhaustive()
    }
}

impl WasmValidator {
    /// A validator with the compilation settings of [`WasmEngine::new`].
    pub fn new() -> Result<WasmValidator, WasmEngineError> {
        let mut wasm = Config::new();
        wasm.epoch_interruption(true);
        let engine = Engine::new(&wasm).map_err(|e| WasmEngineError::Config(format!("{e:#}")))?;
        let linker = wasi_linker(&engine)?;
        Ok(WasmValidator { engine, linker })
    }

    /// Whether an action's `code` (base64 of a module) would run: decoded, compiled, checked
    /// as a WASI command and linked, then dropped. Synchronous and CPU-bound like
    /// [`WasmEngine::compile`].
    pub fn check_base64(&self, code: &str) -> Result<(), WasmCompileError> {
        let bytes = decode_base64(code)?;
        let started = Instant::now();
        let checked = compile_module(&self.engine, &self.linker, &bytes).map(drop);
        whisk_metrics::global().wasm_compile(started.elapsed());
        checked
    }
}

/// Compiles `bytes`, checks that the module is a WASI command and links it against WASI.
fn compile_module(
    engine: &Engine,
    linker: &Linker<RunState>,
    bytes: &[u8],
) -> Result<InstancePre<RunState>, WasmCompileError> {
    let module = Module::from_binary(engine, bytes)
        .map_err(|e| WasmCompileError::Invalid(format!("{e:#}")))?;
    match module.get_export("_start") {
        Some(ExternType::Func(ty)) if ty.params().len() == 0 && ty.results().len() == 0 => {}
        _ => return Err(WasmCompileError::NoStart),
    }
    linker
        .instantiate_pre(&module)
        .map_err(|e| WasmCompileError::Link(format!("{e:#}")))
}

/// The SHA-256 of a module, its key in the cache.
pub(crate) fn digest_of(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The module bytes of an action's `code` (base64, outer whitespace ignored).
pub(crate) fn decode_base64(code: &str) -> Result<Vec<u8>, WasmCompileError> {
    base64::engine::general_purpose::STANDARD
        .decode(code.trim())
        .map_err(|e| WasmCompileError::Base64(e.to_string()))
}

/// A linker holding WASI preview 1, the only imports a module may have.
fn wasi_linker(engine: &Engine) -> Result<Linker<RunState>, WasmEngineError> {
    let mut linker: Linker<RunState> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut RunState| &mut state.wasi)
        .map_err(|e| WasmEngineError::Config(format!("{e:#}")))?;
    Ok(linker)
}

/// A poisoned cache lock only means another thread panicked while holding it; the map itself
/// is always consistent (inserts and removals are single calls), so keep using it.
fn lock(cache: &Mutex<Cache>) -> MutexGuard<'_, Cache> {
    cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The thread that advances the engine's epoch every tick. A running module checks the epoch at
/// function entries and loop headers (its only cost on the hot path) and yields to the executor
/// when it moved, which is what lets the run's timer and other tasks get a turn. The thread
/// stops when the engine is dropped (the channel's sender goes away).
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine, tick: Duration) -> Result<Ticker, std::io::Error> {
        let tick = tick.max(Duration::from_micros(100));
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("whisk-wasm-epoch".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Ticker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("WebAssembly epoch ticker thread panicked");
        }
    }
}
