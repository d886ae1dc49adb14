//! The container pool of one invoker (REFERENCE §15.1).
//!
//! Where an activation runs, in order of preference:
//! 1. a warm container of the same invocation namespace, action and revision with a free
//!    concurrency slot (any update of the action has a new revision, so it gets new containers),
//!    fully initialized ones first, then ones still initializing (the request waits for `/init`);
//! 2. a stem cell (started without code) of exactly the action's kind and memory, which is then
//!    replaced in the background;
//! 3. a new container, if the memory budget allows;
//! 4. a new container after evicting least-recently-used idle warm containers;
//! 5. otherwise the request waits in a FIFO line (head of line: later requests wait behind it).
//!
//! Idle warm containers are frozen after `pause_grace` and destroyed after `idle_timeout`
//! ([`ContainerPool::tick`], driven by the service once a second and by tests explicitly). A
//! container that failed is destroyed as soon as its last activation is done, never reused.
//!
//! Decisions are taken under one short synchronous lock; everything slow (creating, freezing,
//! destroying) happens outside it, so the pool never blocks an activation on another's I/O.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use whisk_model::RuntimeManifest;

use crate::clock::Clock;
use crate::container::{ActionContainer, ContainerError, ContainerFactory, ContainerSpec};

/// OpenWhisk's deployed default memory for action containers per invoker.
pub const DEFAULT_USER_MEMORY_MB: u64 = 2048;
/// Idle time before a warm container is frozen.
pub const DEFAULT_PAUSE_GRACE: Duration = Duration::from_secs(10);
/// Idle time before a warm container is destroyed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// How many resume failures in a row an acquisition tolerates before giving up.
const RESUME_ATTEMPTS: usize = 3;

/// Stem cells to keep for one kind and memory size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StemCellConfig {
    pub kind: String,
    pub memory_mb: u64,
    pub count: u32,
}

/// The stem cells the runtime manifest asks for (`stemCells` of each kind).
pub fn stem_cells_from_manifest(manifest: &RuntimeManifest) -> Vec<StemCellConfig> {
    let mut cells = Vec::new();
    for family in manifest.families() {
        for kind in &family.kinds {
            for cell in &kind.stem_cells {
                match cell.memory_mb() {
                    Some(memory_mb) if cell.initial_count > 0 => cells.push(StemCellConfig {
                        kind: kind.kind.clone(),
                        memory_mb,
                        count: cell.initial_count,
                    }),
                    Some(_) => {}
                    None => {
                        tracing::warn!(kind = %kind.kind, memory = %cell.memory, "stem cell memory does not parse; skipped")
                    }
                }
            }
        }
    }
    cells
}

/// The pool's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Memory all containers together may use, in MB.
    pub user_memory_mb: u64,
    pub pause_grace: Duration,
    pub idle_timeout: Duration,
    pub stem_cells: Vec<StemCellConfig>,
    /// Environment every container starts with, stem cells included (e.g. `__OW_API_HOST`).
    pub container_env: BTreeMap<String, String>,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            user_memory_mb: DEFAULT_USER_MEMORY_MB,
            pause_grace: DEFAULT_PAUSE_GRACE,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            stem_cells: Vec::new(),
            container_env: BTreeMap::new(),
        }
    }
}

/// What warm containers are shared by: the invocation namespace and one revision of one action.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WarmKey {
    pub namespace: String,
    /// The action's document id `ns[/pkg]/name`.
    pub action: String,
    pub revision: String,
}

/// A request for a container.
#[derive(Debug, Clone)]
pub struct ContainerRequest {
    pub key: WarmKey,
    /// What to create for a cold start (with the action's code).
    pub spec: ContainerSpec,
    /// Activations one container of this action may run at once (at least 1).
    pub concurrency: u32,
}

/// Why no container could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("the action needs {needed} MB but the invoker has only {budget} MB for containers")]
    TooLarge { needed: u64, budget: u64 },
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("the container pool is shut down")]
    Closed,
}

/// A view of one container, for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    pub container: Option<String>,
    pub key: Option<WarmKey>,
    pub kind: String,
    pub memory_mb: u64,
    pub active: u32,
    pub initialized: bool,
    pub paused: bool,
    pub doomed: bool,
}

/// A view of the pool, for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSnapshot {
    pub slots: Vec<SlotView>,
    pub used_mb: u64,
    pub waiting: usize,
}

impl PoolSnapshot {
    /// Ready stem cells.
    pub fn stem_cells(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.key.is_none() && s.container.is_some())
            .count()
    }

    /// Containers bound to an action (busy or idle).
    pub fn warm(&self) -> usize {
        self.slots.iter().filter(|s| s.key.is_some()).count()
    }
}

struct Slot {
    kind: String,
    memory_mb: u64,
    /// `None` for a stem cell.
    key: Option<WarmKey>,
    /// `None` while the container is being created.
    container: Option<Arc<dyn ActionContainer>>,
    concurrency: u32,
    active: u32,
    initialized: bool,
    last_used: Instant,
    /// Marked for freezing by `tick` (the freeze itself happens under `frozen`).
    paused: bool,
    /// Failed: takes no new work and is destroyed when its last activation is done.
    doomed: bool,
    /// Whether the container is actually frozen; held while freezing or thawing.
    frozen: Arc<tokio::sync::Mutex<bool>>,
    /// How `/init` went, for requests that joined the container while it was initializing.
    init: Arc<tokio::sync::watch::Sender<InitState>>,
}

/// The `/init` state of a container, as requests sharing it see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitState {
    Pending,
    Ready,
    Failed,
}

fn init_state(state: InitState) -> Arc<tokio::sync::watch::Sender<InitState>> {
    Arc::new(tokio::sync::watch::Sender::new(state))
}

impl Slot {
    fn is_idle_warm(&self) -> bool {
        self.key.is_some() && self.container.is_some() && self.active == 0 && !self.doomed
    }
}

/// Where a request was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    Warm(u64),
    /// A container of the action still initializing, with a free concurrency slot.
    Joining(u64),
    Stem(u64),
    Cold(u64),
}

/// Why a placement did not become a lease.
enum Taken {
    /// A paused container did not thaw (it is destroyed): worth trying another.
    Freeze(ContainerError),
    /// The container this request joined failed its `/init`: worth trying another.
    JoinedFailed,
    Failed(PoolError),
}

struct Waiter {
    request: ContainerRequest,
    reply: oneshot::Sender<Placement>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    slots: BTreeMap<u64, Slot>,
    line: VecDeque<Waiter>,
    closed: bool,
}

impl State {
    fn used_mb(&self) -> u64 {
        self.slots.values().map(|s| s.memory_mb).sum()
    }

    fn insert(&mut self, slot: Slot) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.slots.insert(id, slot);
        id
    }

    /// Places a request if possible now; evicted containers are pushed to `evicted`.
    fn place(
        &mut self,
        request: &ContainerRequest,
        budget: u64,
        now: Instant,
        evicted: &mut Vec<Arc<dyn ActionContainer>>,
    ) -> Option<Placement> {
        // 1. Warm, with a free concurrency slot; the most recently used first keeps the set of
        // busy containers small so the others can pause.
        let warm = self
            .slots
            .iter()
            .filter(|(_, s)| {
                s.key.as_ref() == Some(&request.key)
                    && s.container.is_some()
                    && s.initialized
                    && !s.doomed
                    && s.active < s.concurrency
            })
            .max_by_key(|(_, s)| (s.active, s.last_used))
            .map(|(id, _)| *id);
        if let Some(id) = warm {
            if let Some(slot) = self.slots.get_mut(&id) {
                slot.active += 1;
                slot.paused = false;
                slot.last_used = now;
            }
            return Some(Placement::Warm(id));
        }
        let joining = self
            .slots
            .iter()
            .filter(|(_, s)| {
                s.key.as_ref() == Some(&request.key)
                    && !s.initialized
                    && !s.doomed
                    && s.active < s.concurrency
            })
            .max_by_key(|(_, s)| s.active)
            .map(|(id, _)| *id);
        if let Some(id) = joining {
            if let Some(slot) = self.slots.get_mut(&id) {
                slot.active += 1;
                slot.last_used = now;
            }
            return Some(Placement::Joining(id));
        }
        // 2. A stem cell of exactly this kind and memory.
        if request.spec.image.is_none() {
            let stem = self
                .slots
                .iter()
                .find(|(_, s)| {
                    s.key.is_none()
                        && s.container.is_some()
                        && !s.doomed
                        && s.kind == request.spec.kind
                        && s.memory_mb == request.spec.memory_mb
                })
                .map(|(id, _)| *id);
            if let Some(id) = stem {
                if let Some(slot) = self.slots.get_mut(&id) {
                    slot.key = Some(request.key.clone());
                    slot.concurrency = request.concurrency.max(1);
                    slot.active = 1;
                    slot.last_used = now;
                }
                return Some(Placement::Stem(id));
            }
        }
        // 3. and 4. A new container, evicting idle warm ones (least recently used first) when
        // that makes enough room; nothing is evicted when even all of them would not.
        let needed = request.spec.memory_mb;
        let free = budget.saturating_sub(self.used_mb());
        if free < needed {
            // Idle warm containers by age, then stem cells: a stem cell only saves a start,
            // and stem cells that could never be evicted would block a large action forever.
            let mut idle: Vec<(bool, Instant, u64, u64)> = self
                .slots
                .iter()
                .filter(|(_, s)| {
                    s.is_idle_warm() || (s.key.is_none() && s.container.is_some() && !s.doomed)
                })
                .map(|(id, s)| (s.key.is_none(), s.last_used, *id, s.memory_mb))
                .collect();
            idle.sort();
            let reclaimable: u64 = idle.iter().map(|(_, _, _, memory)| memory).sum();
            if free + reclaimable < needed {
                return None;
            }
            let mut freed = free;
            for (_, _, id, memory) in idle {
                if freed >= needed {
                    break;
                }
                if let Some(slot) = self.slots.remove(&id) {
                    tracing::debug!(container = ?slot.container.as_ref().map(|c| c.id().to_string()), "evicting idle container");
                    if let Some(container) = slot.container {
                        evicted.push(container);
                    }
                }
                freed += memory;
            }
        }
        let id = self.insert(Slot {
            kind: request.spec.kind.clone(),
            memory_mb: needed,
            key: Some(request.key.clone()),
            container: None,
            concurrency: request.concurrency.max(1),
            active: 1,
            initialized: false,
            last_used: now,
            paused: false,
            doomed: false,
            frozen: Arc::new(tokio::sync::Mutex::new(false)),
            init: init_state(InitState::Pending),
        });
        Some(Placement::Cold(id))
    }

    /// Gives back a placement whose requester went away before it was told.
    fn undo(&mut self, placement: Placement) {
        match placement {
            Placement::Warm(id) | Placement::Joining(id) => {
                if let Some(slot) = self.slots.get_mut(&id) {
                    slot.active = slot.active.saturating_sub(1);
                }
            }
            Placement::Stem(id) => {
                if let Some(slot) = self.slots.get_mut(&id) {
                    slot.key = None;
                    slot.active = 0;
                }
            }
            Placement::Cold(id) => {
                self.slots.remove(&id);
            }
        }
    }
}

struct Inner {
    config: PoolConfig,
    factory: Arc<dyn ContainerFactory>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerPool")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs background work (freezing, destroying, replacing stem cells) so `settle` can wait
    /// for it; without a runtime (a lease dropped outside one) the work is skipped and logged.
    fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let task = handle.spawn(work);
                let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
                tasks.retain(|t| !t.is_finished());
                tasks.push(task);
            }
            Err(_) => tracing::error!("no runtime for container pool work; skipped"),
        }
    }

    fn destroy_later(&self, container: Arc<dyn ActionContainer>) {
        self.spawn(async move {
            if let Err(error) = container.destroy().await {
                tracing::error!(container = container.id(), %error, "destroying a container failed");
            }
        });
    }

    /// Serves the head of the line for as long as it can be placed.
    fn serve_line(&self, state: &mut State) {
        let now = self.clock.now();
        while let Some(front) = state.line.front() {
            if front.reply.is_closed() {
                state.line.pop_front();
                continue;
            }
            let request = front.request.clone();
            let mut evicted = Vec::new();
            let Some(placement) =
                state.place(&request, self.config.user_memory_mb, now, &mut evicted)
            else {
                break;
            };
            for container in evicted {
                self.destroy_later(container);
            }
            if let Some(waiter) = state.line.pop_front()
                && let Err(placement) = waiter.reply.send(placement)
            {
                state.undo(placement);
            }
        }
    }

    /// Ends one activation's use of a slot.
    fn release(&self, id: u64, reusable: bool) {
        let now = self.clock.now();
        let mut state = self.state();
        let closed = state.closed;
        let remove = match state.slots.get_mut(&id) {
            Some(slot) => {
                slot.active = slot.active.saturating_sub(1);
                slot.last_used = now;
                if !reusable {
                    slot.doomed = true;
                    if !slot.initialized {
                        slot.init.send_replace(InitState::Failed);
                    }
                }
                (slot.doomed || closed) && slot.active == 0
            }
            None => false,
        };
        if remove && let Some(container) = state.slots.remove(&id).and_then(|s| s.container) {
            tracing::debug!(
                container = container.id(),
                "destroying a container that failed"
            );
            self.destroy_later(container);
        }
        self.serve_line(&mut state);
    }

    fn mark_initialized(&self, id: u64) {
        if let Some(slot) = self.state().slots.get_mut(&id) {
            slot.initialized = true;
            slot.init.send_replace(InitState::Ready);
        }
    }

    /// Starts one stem cell if memory allows; `false` when there was no room.
    async fn create_stem_cell(self: &Arc<Self>, kind: &str, memory_mb: u64) -> bool {
        let id = {
            let mut state = self.state();
            if state.closed || state.used_mb() + memory_mb > self.config.user_memory_mb {
                return false;
            }
            let now = self.clock.now();
            state.insert(Slot {
                kind: kind.to_string(),
                memory_mb,
                key: None,
                container: None,
                concurrency: 1,
                active: 0,
                initialized: false,
                last_used: now,
                paused: false,
                doomed: false,
                frozen: Arc::new(tokio::sync::Mutex::new(false)),
                init: init_state(InitState::Pending),
            })
        };
        let spec = ContainerSpec {
            kind: kind.to_string(),
            image: None,
            memory_mb,
            action: None,
            namespace: None,
            env: self.config.container_env.clone(),
        };
        let created = self.factory.create(&spec).await;
        let mut state = self.state();
        match created {
            Ok(container) if !state.closed => {
                if let Some(slot) = state.slots.get_mut(&id) {
                    slot.container = Some(Arc::from(container));
                }
                self.serve_line(&mut state);
                true
            }
            Ok(container) => {
                state.slots.remove(&id);
                self.destroy_later(Arc::from(container));
                false
            }
            Err(error) => {
                tracing::warn!(%kind, memory_mb, %error, "stem cell could not be created");
                state.slots.remove(&id);
                self.serve_line(&mut state);
                false
            }
        }
    }
}

/// The pool. Cheap to clone; clones share one pool.
#[derive(Debug, Clone)]
pub struct ContainerPool {
    inner: Arc<Inner>,
}

/// One activation's hold on a container. Dropping it without [`Lease::release`] counts as a
/// failure: the container is destroyed (an activation that was cut short leaves its container
/// in an unknown state).
pub struct Lease {
    pool: Arc<Inner>,
    slot: u64,
    container: Arc<dyn ActionContainer>,
    needs_init: bool,
    released: bool,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("container", &self.container.id())
            .field("needs_init", &self.needs_init)
            .finish()
    }
}

impl Lease {
    pub fn container(&self) -> &dyn ActionContainer {
        self.container.as_ref()
    }

    /// Whether the container still needs `/init` (a cold start or a stem cell).
    pub fn needs_init(&self) -> bool {
        self.needs_init
    }

    /// Records a successful `/init`, so further activations may share the container.
    pub fn initialized(&mut self) {
        self.needs_init = false;
        self.pool.mark_initialized(self.slot);
    }

    /// Gives the container back: kept warm when `reusable`, else destroyed once idle.
    pub fn release(mut self, reusable: bool) {
        self.released = true;
        self.pool.release(self.slot, reusable);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            self.pool.release(self.slot, false);
        }
    }
}

impl ContainerPool {
    pub fn new(
        config: PoolConfig,
        factory: Arc<dyn ContainerFactory>,
        clock: Arc<dyn Clock>,
    ) -> ContainerPool {
        ContainerPool {
            inner: Arc::new(Inner {
                config,
                factory,
                clock,
                state: Mutex::new(State::default()),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Starts the configured stem cells (as many as memory allows) and waits for them.
    pub async fn prewarm(&self) {
        for cell in &self.inner.config.stem_cells {
            for _ in 0..cell.count {
                if !self
                    .inner
                    .create_stem_cell(&cell.kind, cell.memory_mb)
                    .await
                {
                    break;
                }
            }
        }
    }

    /// A container for one activation: warm, stem cell, new, or after waiting in line.
    pub async fn acquire(&self, request: &ContainerRequest) -> Result<Lease, PoolError> {
        let budget = self.inner.config.user_memory_mb;
        if request.spec.memory_mb > budget {
            return Err(PoolError::TooLarge {
                needed: request.spec.memory_mb,
                budget,
            });
        }
        let mut attempts = 0;
        loop {
            let placement = self.place_or_wait(request).await?;
            match self.take(request, placement).await {
                Ok(lease) => return Ok(lease),
                Err(Taken::Freeze(error)) if attempts + 1 < RESUME_ATTEMPTS => {
                    attempts += 1;
                    tracing::warn!(%error, "a paused container did not resume; trying another");
                }
                Err(Taken::Freeze(error)) => return Err(PoolError::Container(error)),
                Err(Taken::JoinedFailed) => {
                    tracing::debug!(
                        "the container joined while initializing failed; trying another"
                    );
                }
                Err(Taken::Failed(error)) => return Err(error),
            }
        }
    }

    async fn place_or_wait(&self, request: &ContainerRequest) -> Result<Placement, PoolError> {
        let waiting = {
            let mut state = self.inner.state();
            if state.closed {
                return Err(PoolError::Closed);
            }
            if state.line.is_empty() {
                let mut evicted = Vec::new();
                let placement = state.place(
                    request,
                    self.inner.config.user_memory_mb,
                    self.inner.clock.now(),
                    &mut evicted,
                );
                for container in evicted {
                    self.inner.destroy_later(container);
                }
                if let Some(placement) = placement {
                    return Ok(placement);
                }
            }
            let (reply, waiting) = oneshot::channel();
            state.line.push_back(Waiter {
                request: request.clone(),
                reply,
            });
            tracing::debug!(
                waiting = state.line.len(),
                "no memory for a container; waiting in line"
            );
            waiting
        };
        waiting.await.map_err(|_| PoolError::Closed)
    }

    /// Turns a placement into a lease: thaws, takes over a stem cell or creates a container.
    async fn take(&self, request: &ContainerRequest, placement: Placement) -> Result<Lease, Taken> {
        let slot_parts = |id: u64| {
            let state = self.inner.state();
            state.slots.get(&id).map(|s| {
                (
                    s.container.clone(),
                    s.frozen.clone(),
                    s.kind.clone(),
                    s.memory_mb,
                )
            })
        };
        let lease = |id: u64, container: Arc<dyn ActionContainer>, needs_init: bool| Lease {
            pool: self.inner.clone(),
            slot: id,
            container,
            needs_init,
            released: false,
        };
        whisk_metrics::global().container_start(match placement {
            Placement::Warm(_) | Placement::Joining(_) => whisk_metrics::Start::Warm,
            Placement::Stem(_) => whisk_metrics::Start::Prewarm,
            Placement::Cold(_) => whisk_metrics::Start::Cold,
        });
        match placement {
            Placement::Warm(id) | Placement::Stem(id) => {
                let Some((Some(container), frozen, kind, memory_mb)) = slot_parts(id) else {
                    return Err(Taken::Failed(PoolError::Closed));
                };
                let is_stem = matches!(placement, Placement::Stem(_));
                let mut lease = lease(id, container.clone(), is_stem);
                {
                    let mut frozen = frozen.lock().await;
                    if *frozen {
                        if let Err(error) = container.resume().await {
                            lease.released = true;
                            self.inner.release(id, false);
                            return Err(Taken::Freeze(error));
                        }
                        *frozen = false;
                    }
                }
                if is_stem {
                    tracing::debug!(container = container.id(), %kind, "stem cell taken; starting a replacement");
                    let inner = self.inner.clone();
                    self.inner.spawn(async move {
                        inner.create_stem_cell(&kind, memory_mb).await;
                    });
                }
                Ok(lease)
            }
            Placement::Joining(id) => {
                let init = {
                    let state = self.inner.state();
                    state.slots.get(&id).map(|s| s.init.subscribe())
                };
                let outcome = match init {
                    Some(mut init) => init
                        .wait_for(|state| *state != InitState::Pending)
                        .await
                        .map(|state| *state)
                        .unwrap_or(InitState::Failed),
                    None => InitState::Failed,
                };
                let container = slot_parts(id).and_then(|(container, ..)| container);
                match (outcome, container) {
                    (InitState::Ready, Some(container)) => Ok(lease(id, container, false)),
                    _ => {
                        self.inner.release(id, false);
                        Err(Taken::JoinedFailed)
                    }
                }
            }
            Placement::Cold(id) => match self.inner.factory.create(&request.spec).await {
                Ok(container) => {
                    let container: Arc<dyn ActionContainer> = Arc::from(container);
                    let mut state = self.inner.state();
                    match state.slots.get_mut(&id) {
                        Some(slot) => slot.container = Some(container.clone()),
                        None => {
                            drop(state);
                            self.inner.destroy_later(container);
                            return Err(Taken::Failed(PoolError::Closed));
                        }
                    }
                    Ok(lease(id, container, true))
                }
                Err(error) => {
                    let mut state = self.inner.state();
                    if let Some(slot) = state.slots.remove(&id) {
                        slot.init.send_replace(InitState::Failed);
                    }
                    self.inner.serve_line(&mut state);
                    Err(Taken::Failed(error.into()))
                }
            },
        }
    }

    /// Applies the idle rules at the clock's current time: freezes warm containers idle for
    /// `pause_grace`, destroys those idle for `idle_timeout`.
    pub fn tick(&self) {
        let now = self.inner.clock.now();
        let config = &self.inner.config;
        let mut state = self.inner.state();
        let mut expired = Vec::new();
        let mut to_pause = Vec::new();
        for (id, slot) in &mut state.slots {
            if !slot.is_idle_warm() {
                continue;
            }
            let idle = now.saturating_duration_since(slot.last_used);
            if idle >= config.idle_timeout {
                expired.push(*id);
            } else if !slot.paused && idle >= config.pause_grace {
                slot.paused = true;
                if let Some(container) = &slot.container {
                    to_pause.push((*id, container.clone(), slot.frozen.clone()));
                }
            }
        }
        for id in expired {
            if let Some(container) = state.slots.remove(&id).and_then(|s| s.container) {
                tracing::debug!(container = container.id(), "destroying an idle container");
                self.inner.destroy_later(container);
            }
        }
        self.inner.serve_line(&mut state);
        drop(state);
        for (id, container, frozen) in to_pause {
            let inner = self.inner.clone();
            self.inner.spawn(async move {
                let mut frozen = frozen.lock().await;
                let still_idle = inner
                    .state()
                    .slots
                    .get(&id)
                    .is_some_and(|s| s.paused && s.active == 0);
                if !still_idle || *frozen {
                    return;
                }
                match container.pause().await {
                    Ok(()) => *frozen = true,
                    Err(error) => {
                        tracing::warn!(container = container.id(), %error, "pausing failed; destroying");
                        let removed = {
                            let mut state = inner.state();
                            let idle = state.slots.get(&id).is_some_and(|s| s.active == 0);
                            if idle {
                                state.slots.remove(&id);
                            } else if let Some(slot) = state.slots.get_mut(&id) {
                                slot.doomed = true;
                            }
                            inner.serve_line(&mut state);
                            idle
                        };
                        if removed {
                            inner.destroy_later(container);
                        }
                    }
                }
            });
        }
    }

    /// Waits until background work started so far (freezing, destroying, new stem cells) is done.
    pub async fn settle(&self) {
        loop {
            let tasks: Vec<JoinHandle<()>> = {
                let mut tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::take(&mut *tasks)
            };
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                if let Err(error) = task.await {
                    tracing::error!(%error, "container pool task failed");
                }
            }
        }
    }

    /// A view of every container and the line.
    pub fn snapshot(&self) -> PoolSnapshot {
        let state = self.inner.state();
        PoolSnapshot {
            slots: state
                .slots
                .values()
                .map(|s| SlotView {
                    container: s.container.as_ref().map(|c| c.id().to_string()),
                    key: s.key.clone(),
                    kind: s.kind.clone(),
                    memory_mb: s.memory_mb,
                    active: s.active,
                    initialized: s.initialized,
                    paused: s.paused,
                    doomed: s.doomed,
                })
                .collect(),
            used_mb: state.used_mb(),
            waiting: state.line.iter().filter(|w| !w.reply.is_closed()).count(),
        }
    }

    /// Stops the pool: waiting requests fail, idle containers and stem cells are destroyed now,
    /// busy ones when their activation releases them. Waits for the destruction.
    pub async fn shutdown(&self) {
        {
            let mut state = self.inner.state();
            state.closed = true;
            state.line.clear();
            let idle: Vec<u64> = state
                .slots
                .iter()
                .filter(|(_, s)| s.active == 0)
                .map(|(id, _)| *id)
                .collect();
            for id in idle {
                if let Some(container) = state.slots.remove(&id).and_then(|s| s.container) {
                    self.inner.destroy_later(container);
                }
            }
        }
        self.settle().await;
    }
}

#[cfg(test)]
mod tests;
