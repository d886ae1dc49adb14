//! `whisk controller`: the API and a load balancer of a cluster, over the shared PostgreSQL
//! store and NATS bus. Any number of them serve behind an HTTP load balancer; each receives
//! the completions of what it published on its own topic (`completed<id>`), so a blocking call
//! is answered by the controller that took it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use whisk_controller::cache::{CacheConfig, Caches, cached};
use whisk_controller::{BalancerConfig, Clock, Invocations, LoadBalancer, SystemClock};
use whisk_model::bus::CompletionMessage;
use whisk_store::{ActivationEntry, Store};

use crate::cluster::{
    Hearing, OwnedNotes, QUIET_AFTER_RECONNECT, connect_bus, controller_owner, open_database,
};
use crate::config::{ClusterFlags, ClusterRole, ClusterSettings, ServerConfig, ServerFlags};
use crate::standalone::{
    announce_as, controller_config, edge_config, ensure_well_known_subjects, shutdown_signal,
};

/// How often the controller looks for invokers that went silent with its work.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// How often a controller looks whether the notes its previous run left are overdue.
const ORPHAN_SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The run limit assumed for a note that names none (sequences, compositions, trigger
/// fires): OpenWhisk's largest action time limit, 5 minutes.
const UNKNOWN_RUN_LIMIT_MS: u64 = 300_000;

/// The broadcast topic controllers say they are alive on.
const CONTROLLER_HEALTH_TOPIC: &str = "controller-health";

/// How often a controller says it is alive.
const CONTROLLER_BEAT_INTERVAL: Duration = Duration::from_secs(1);

/// When an activation whose controller stopped is surely lost: no invoker runs anything past
/// its time limit, so by the balancer's own rule for giving up on a completion (twice the
/// limit, at least `margin`, plus `margin`; the margin is a minute unless configured) it will
/// never get a record.
fn orphan_deadline(note: &ActivationEntry, margin: Duration) -> u64 {
    let margin = u64::try_from(margin.as_millis()).unwrap_or(u64::MAX);
    let timeout = note.document["annotations"]
        .as_array()
        .and_then(|pairs| pairs.iter().find(|pair| pair["key"] == "limits"))
        .and_then(|pair| pair["value"]["timeout"].as_u64())
        .unwrap_or(UNKNOWN_RUN_LIMIT_MS);
    note.start
        .saturating_add(timeout.max(margin).saturating_mul(2))
        .saturating_add(margin)
}

/// Writes the `whisk internal error` record of each of `orphans` (notes of this controller's
/// previous run) once it is overdue and still has no record; ends when none is left.
async fn sweep_orphans(store: Store, mut orphans: HashSet<(String, String)>, margin: Duration) {
    let mut interval = tokio::time::interval(ORPHAN_SWEEP_INTERVAL);
    while !orphans.is_empty() {
        interval.tick().await;
        let notes = match store.activations.pending().await {
            Ok(notes) => notes,
            Err(error) => {
                tracing::warn!(%error, "cannot read this controller's open notes");
                continue;
            }
        };
        let open: HashSet<(String, String)> = notes
            .iter()
            .map(|note| (note.namespace.clone(), note.activation_id.clone()))
            .collect();
        // Those whose record arrived meanwhile are done.
        orphans.retain(|key| open.contains(key));
        let now = SystemClock.now_millis();
        for note in notes {
            let key = (note.namespace.clone(), note.activation_id.clone());
            if !orphans.contains(&key) || orphan_deadline(&note, margin) > now {
                continue;
            }
            match whisk_controller::close_lost(&store, note, now).await {
                Ok(_) => {
                    tracing::warn!(
                        namespace = %key.0,
                        activation_id = %key.1,
                        "closed an activation lost when this controller last stopped"
                    );
                    orphans.remove(&key);
                }
                Err(error) => tracing::warn!(%error, "cannot close an overdue activation yet"),
            }
        }
    }
}

pub async fn run(flags: ServerFlags, cluster: ClusterFlags) -> anyhow::Result<()> {
    let config = ServerConfig::load(&flags)?;
    let settings = ClusterSettings::resolve(ClusterRole::Controller, &cluster, &config.cluster)?;
    let database = open_database(&settings).await?;
    let shared_store = database.store();
    let store = OwnedNotes::wrap(shared_store.clone(), controller_owner(settings.id));
    ensure_well_known_subjects(&store).await?;
    // Every controller purges; the deletes are idempotent, so several at once do no harm.
    let _retention =
        crate::config::start_retention(&config.retention, Arc::clone(&store.activations))?;
    // Before anything new is accepted, the notes this controller's previous run left open
    // (other controllers' notes are theirs). Unlike standalone's, its activations may still be
    // running on invokers that outlived it, so they are closed only once overdue.
    let orphans: HashSet<(String, String)> = store
        .activations
        .pending()
        .await
        .context("cannot read the notes this controller's previous run left open")?
        .into_iter()
        .map(|note| (note.namespace, note.activation_id))
        .collect();
    if !orphans.is_empty() {
        tracing::warn!(
            open = orphans.len(),
            controller = settings.id,
            "activations of this controller's previous run still open; closed when overdue"
        );
    }
    let sweeper = tokio::spawn(sweep_orphans(
        store.clone(),
        orphans,
        settings.overdue_margin,
    ));
    let bus = connect_bus(&settings, ClusterRole::Controller).await?;

    let listener = tokio::net::TcpListener::bind(SocketAddr::new(config.host, config.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
    let address = listener.local_addr()?;

    let balancer = LoadBalancer::new(
        Arc::clone(&bus),
        BalancerConfig {
            controller: settings.id,
            controllers: settings.controllers,
            ..BalancerConfig::default()
        },
    );
    balancer
        .start()
        .await
        .context("cannot start the load balancer")?;
    let watchdog = tokio::spawn(watch_invokers(
        Arc::clone(&balancer),
        store.clone(),
        settings.lost_grace,
        Arc::clone(&bus),
    ));
    let peers = watch_controllers(Arc::clone(&balancer), shared_store, &settings)
        .await
        .context("cannot follow the other controllers")?;
    // Throttles count in the shared store, so a namespace's limits hold for the whole cluster.
    let invocations = Invocations::shared(Arc::clone(&balancer), Arc::clone(&store.activations));
    // Entities and identities served from memory; every write through this controller is
    // announced to the others on the bus (see `whisk_controller::cache`).
    let caches = Caches::new(CacheConfig::default(), Some(Arc::clone(&bus)));
    let invalidations = caches
        .listen(&bus)
        .await
        .context("cannot subscribe to cache invalidations")?;
    let state = whisk_controller::AppState::new(cached(store, &caches), controller_config(&config))
        .with_invocations(invocations)
        .with_code_check(crate::wasm_check::WasmCodeCheck::for_controller(None));
    let edge = edge_config(&config)?;
    tracing::info!(
        controller = settings.id,
        controllers = settings.controllers,
        cluster = %settings.name,
        %address,
        "controller running"
    );
    let (events, election) = crate::feeds::start(&config, &database, state, address).await?;
    announce_as(&format!("controller {}", settings.id), address, &config);
    let served =
        whisk_controller::edge::serve(listener, events.app(), edge, shutdown_signal()).await;
    // Stopped between fires at worst: each occurrence is claimed in the store before it fires.
    election.abort();
    invalidations.abort();
    watchdog.abort();
    sweeper.abort();
    for task in peers {
        task.abort();
    }
    balancer.stop();
    bus.close().await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Looks after the activations this controller sent to invokers that went down. While an
/// invoker is down and still has some of this controller's work, those it had not started
/// (claimed) yet are taken back from its queue and sent to healthy invokers, keeping their
/// waiters. Once it has been down for `grace`, what is left on it is what it had started, lost
/// with it (never delivered again): each gets its `whisk internal error` record (unless the
/// invoker stored one after all), and its balancer slots and any blocking caller are released
/// with that record. Only the controller that published an activation knows where it went (and
/// only it can take its messages back), so each controller looks after just its own.
async fn watch_invokers(
    balancer: Arc<LoadBalancer>,
    store: Store,
    grace: Duration,
    bus: Arc<dyn whisk_bus::Bus>,
) {
    let mut down_since: HashMap<u32, Instant> = HashMap::new();
    let mut hearing = Hearing::new(QUIET_AFTER_RECONNECT, Instant::now());
    let mut interval = tokio::time::interval(WATCH_INTERVAL);
    loop {
        interval.tick().await;
        // Silence on a bus this controller cannot hear says nothing of the invokers.
        if !hearing.counts(bus.connected(), Instant::now()) {
            down_since.clear();
            continue;
        }
        for status in balancer.invokers() {
            if status.healthy {
                if down_since.remove(&status.invoker).is_some() {
                    tracing::info!(invoker = status.invoker, "invoker back in rotation");
                }
                continue;
            }
            let since = *down_since.entry(status.invoker).or_insert_with(|| {
                tracing::warn!(invoker = status.invoker, "invoker down; out of rotation");
                Instant::now()
            });
            if balancer.in_flight_on(status.invoker).is_empty() {
                continue;
            }
            // Taken back first, so only what the invoker had started remains for the grace. A
            // bus that cannot be asked does not hold the lost records back for ever: what it
            // keeps waiting there gets one too (and is not overwritten should it run later).
            if let Err(error) = balancer.requeue_from(status.invoker).await {
                tracing::warn!(
                    invoker = status.invoker,
                    %error,
                    "cannot take back the activations waiting on a down invoker yet"
                );
            }
            if since.elapsed() < grace {
                continue;
            }
            let lost = balancer.in_flight_on(status.invoker);
            if lost.is_empty() {
                continue;
            }
            if let Err(error) = close_lost_on(&balancer, &store, status.invoker, lost).await {
                // Retried on the next tick: the notes stay until their records are written.
                tracing::warn!(
                    invoker = status.invoker,
                    error = %error,
                    "cannot record the activations of a dead invoker yet"
                );
            }
        }
    }
}

/// Starts saying this controller is alive on [`CONTROLLER_HEALTH_TOPIC`], and closing the notes
/// of other controllers that went silent: an activation whose controller died is still run
/// and stored by its invoker, but one lost with an invoker too is closed by nobody else (only
/// its publisher knows where it went). So once a controller has been silent for the time an
/// invoker takes to count as dead (the balancer's few seconds plus `lost-grace-ms`), the live
/// controllers close its notes that are overdue by the same rule as [`orphan_deadline`]. The
/// record write is conditional, so two controllers closing one note write it once; a
/// controller that comes back with the id beats again and owns its notes from then on.
///
/// Before that, what the silent controller had queued on invokers that are down too (and so
/// would never run) is adopted: taken back and published again as this controller's.
async fn watch_controllers(
    balancer: Arc<LoadBalancer>,
    store: Store,
    settings: &ClusterSettings,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let bus = Arc::clone(balancer.bus());
    let mut beats = bus.subscribe(CONTROLLER_HEALTH_TOPIC).await?;
    let me = settings.id;
    let seen: Arc<std::sync::Mutex<HashMap<u32, Instant>>> = Arc::default();
    let beating = tokio::spawn({
        let bus = Arc::clone(&bus);
        async move {
            let payload = serde_json::json!({ "controller": me })
                .to_string()
                .into_bytes();
            let mut interval = tokio::time::interval(CONTROLLER_BEAT_INTERVAL);
            loop {
                interval.tick().await;
                if let Err(error) = bus
                    .broadcast(CONTROLLER_HEALTH_TOPIC, payload.clone().into())
                    .await
                {
                    tracing::warn!(%error, "controller beat not sent");
                }
            }
        }
    });
    let listening = tokio::spawn({
        let seen = Arc::clone(&seen);
        async move {
            while let Some(news) = beats.next().await {
                let whisk_bus::News::Message(payload) = news else {
                    continue;
                };
                let beat: serde_json::Value = match serde_json::from_slice(&payload) {
                    Ok(beat) => beat,
                    Err(error) => {
                        tracing::warn!(%error, "ignoring a malformed controller beat");
                        continue;
                    }
                };
                let Some(id) = beat["controller"]
                    .as_u64()
                    .and_then(|id| u32::try_from(id).ok())
                else {
                    continue;
                };
                seen.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id, Instant::now());
            }
        }
    });
    let silence = whisk_controller::balancer::DEFAULT_DOWN_AFTER + settings.lost_grace;
    let controllers = settings.controllers;
    let margin = settings.overdue_margin;
    let started = Instant::now();
    let closing = tokio::spawn(async move {
        let mut interval = tokio::time::interval(ORPHAN_SWEEP_INTERVAL.min(silence));
        let mut silent_before: HashSet<u32> = HashSet::new();
        loop {
            interval.tick().await;
            let heard = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let silent =
                silent_controllers(&heard, started, Instant::now(), me, controllers, silence);
            for id in &silent {
                if silent_before.insert(*id) {
                    tracing::warn!(
                        controller = id,
                        "controller silent; closing its overdue activations"
                    );
                }
            }
            silent_before.retain(|id| silent.contains(id));
            for id in silent {
                for down in balancer.invokers().iter().filter(|status| !status.healthy) {
                    match adopt_queued(&balancer, &store, id, down.invoker).await {
                        Ok(0) => {}
                        Ok(adopted) => tracing::warn!(
                            controller = id,
                            invoker = down.invoker,
                            adopted,
                            "adopted a silent controller's activations waiting on a down invoker"
                        ),
                        Err(error) => {
                            tracing::warn!(controller = id, invoker = down.invoker, %error, "cannot adopt a silent controller's waiting activations yet")
                        }
                    }
                }
                let now = SystemClock.now_millis();
                match close_overdue_of(&store, &controller_owner(id), now, margin).await {
                    Ok(0) => {}
                    Ok(closed) => tracing::warn!(
                        controller = id,
                        closed,
                        "closed overdue activations of a silent controller"
                    ),
                    Err(error) => {
                        tracing::warn!(controller = id, %error, "cannot close a silent controller's activations yet")
                    }
                }
            }
        }
    });
    Ok(vec![beating, listening, closing])
}

/// The controllers other than `me` (of `0..controllers`) not heard from for `silence`, counting
/// from `started` for those never heard from.
fn silent_controllers(
    heard: &HashMap<u32, Instant>,
    started: Instant,
    now: Instant,
    me: u32,
    controllers: u32,
    silence: Duration,
) -> Vec<u32> {
    (0..controllers)
        .filter(|&id| id != me)
        .filter(|id| {
            let last = heard.get(id).copied().unwrap_or(started).max(started);
            now.saturating_duration_since(last) >= silence
        })
        .collect()
}

/// Takes back what controller `silent` had queued on `invoker` (down) and not started, and
/// publishes each as this controller's: its completion now comes here (and only releases
/// slots, as its caller's connection died with the silent controller), its note stays the
/// silent controller's until the record removes it. A message whose note is gone was already
/// closed and is dropped. How many were adopted.
async fn adopt_queued(
    balancer: &Arc<LoadBalancer>,
    store: &Store,
    silent: u32,
    invoker: u32,
) -> anyhow::Result<usize> {
    if !balancer.invokers().iter().any(|status| status.healthy) {
        return Ok(0);
    }
    let key = whisk_controller::publisher_key(silent);
    let topic = whisk_model::bus::invoker_topic(invoker);
    let taken = balancer.bus().reclaim(&topic, &key).await?;
    if taken.is_empty() {
        return Ok(0);
    }
    let notes: HashMap<String, ActivationEntry> = store
        .activations
        .pending_owned(&controller_owner(silent))
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot read a silent controller's notes; adopting with defaults");
            Vec::new()
        })
        .into_iter()
        .map(|note| (note.activation_id.clone(), note))
        .collect();
    let mut adopted = 0;
    for payload in taken {
        let mut message: whisk_model::bus::ActivationMessage = match serde_json::from_slice(
            &payload,
        ) {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(%error, invoker, "a silent controller's message does not decode; left where it was");
                put_back(balancer, &topic, &key, payload).await;
                continue;
            }
        };
        let Some(note) = notes.get(message.activation_id.as_str()) else {
            tracing::info!(activation_id = %message.activation_id, "adopted activation already closed; dropped");
            continue;
        };
        let (memory_mb, timeout) = note_limits(note);
        message.completion_topic = balancer.completion_topic();
        match balancer.publish(&message, memory_mb, timeout).await {
            Ok(published) => {
                tracing::info!(activation_id = %message.activation_id, from = invoker, to = published.invoker, "adopted activation of a silent controller");
                adopted += 1;
            }
            Err(error) => {
                tracing::warn!(%error, activation_id = %message.activation_id, "cannot adopt the activation; left where it was");
                put_back(balancer, &topic, &key, payload).await;
            }
        }
    }
    Ok(adopted)
}

/// Publishes a taken-back message where it was, under its publisher's key.
async fn put_back(balancer: &LoadBalancer, topic: &str, key: &str, payload: whisk_bus::Bytes) {
    if let Err(error) = balancer.bus().publish_keyed(topic, key, payload).await {
        tracing::error!(%error, topic, "a taken-back activation could not be put back");
    }
}

/// The memory (MB) and time limit a note's `limits` annotation names (defaults: 256 MB and
/// OpenWhisk's largest time limit).
fn note_limits(note: &ActivationEntry) -> (u64, Duration) {
    let limits = note.document["annotations"]
        .as_array()
        .and_then(|pairs| pairs.iter().find(|pair| pair["key"] == "limits"))
        .map(|pair| &pair["value"]);
    let memory = limits
        .and_then(|limits| limits["memory"].as_u64())
        .unwrap_or(256);
    let timeout = limits
        .and_then(|limits| limits["timeout"].as_u64())
        .unwrap_or(UNKNOWN_RUN_LIMIT_MS);
    (memory, Duration::from_millis(timeout))
}

/// Closes with a lost record every note of `owner` overdue at `now`; how many records it wrote.
async fn close_overdue_of(
    store: &Store,
    owner: &str,
    now: u64,
    margin: Duration,
) -> anyhow::Result<usize> {
    let mut closed = 0;
    for note in store.activations.pending_owned(owner).await? {
        if orphan_deadline(&note, margin) > now {
            continue;
        }
        let (namespace, activation_id) = (note.namespace.clone(), note.activation_id.clone());
        if whisk_controller::close_lost(store, note, now)
            .await?
            .is_some()
        {
            tracing::warn!(%namespace, %activation_id, owner, "closed an activation lost with its controller");
            closed += 1;
        }
    }
    Ok(closed)
}

/// Writes the lost records of `lost` (activations on `invoker`) and completes them in the
/// balancer.
async fn close_lost_on(
    balancer: &LoadBalancer,
    store: &Store,
    invoker: u32,
    lost: Vec<whisk_model::names::ActivationId>,
) -> anyhow::Result<()> {
    // This controller's notes only (the store is its `OwnedNotes` view).
    let mut notes: HashMap<String, ActivationEntry> = store
        .activations
        .pending()
        .await?
        .into_iter()
        .map(|note| (note.activation_id.clone(), note))
        .collect();
    for activation_id in lost {
        let record = match notes.remove(activation_id.as_str()) {
            Some(note) => {
                whisk_controller::close_lost(store, note, SystemClock.now_millis()).await?
            }
            // No note: the invoker's record cleared it; the waiter finds it in the store.
            None => None,
        };
        tracing::warn!(
            %activation_id,
            invoker,
            recorded = record.is_some(),
            "activation lost with a silent invoker"
        );
        balancer.complete(CompletionMessage {
            transaction_id: String::new(),
            activation_id,
            invoker,
            record,
            system_error: true,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(start: u64, annotations: serde_json::Value) -> ActivationEntry {
        ActivationEntry {
            namespace: "guest".into(),
            activation_id: "a".into(),
            name: "hello".into(),
            path_name: None,
            start,
            document: serde_json::json!({"annotations": annotations}),
        }
    }

    #[test]
    fn an_orphan_is_overdue_after_twice_its_limit_and_a_minute() {
        let limits = serde_json::json!([
            {"key": "path", "value": "guest/hello"},
            {"key": "limits", "value": {"timeout": 90_000, "memory": 256}}
        ]);
        assert_eq!(
            orphan_deadline(&note(1_000, limits), MINUTE),
            1_000 + 180_000 + 60_000
        );
        // Short limits still wait the balancer's minimum of a minute, doubled.
        let short = serde_json::json!([{"key": "limits", "value": {"timeout": 100}}]);
        assert_eq!(orphan_deadline(&note(0, short.clone()), MINUTE), 180_000);
        // A configured margin replaces the minute on both counts.
        assert_eq!(
            orphan_deadline(&note(0, short), Duration::from_millis(500)),
            2 * 500 + 500
        );
        // No limits (a sequence's note): the largest action limit is assumed.
        assert_eq!(
            orphan_deadline(&note(0, serde_json::json!([])), MINUTE),
            2 * UNKNOWN_RUN_LIMIT_MS + 60_000
        );
        assert_eq!(
            orphan_deadline(&note(u64::MAX - 5, serde_json::json!(null)), MINUTE),
            u64::MAX
        );
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_controller_is_silent_once_unheard_for_the_whole_silence() {
        let started = Instant::now();
        let silence = Duration::from_secs(6);
        let heard = HashMap::from([(1, started + Duration::from_secs(3))]);
        let at = |secs| started + Duration::from_secs(secs);
        // Never heard of: silent once this controller has listened for the silence.
        assert_eq!(
            silent_controllers(&heard, started, at(5), 0, 3, silence),
            Vec::<u32>::new()
        );
        assert_eq!(
            silent_controllers(&heard, started, at(6), 0, 3, silence),
            [2]
        );
        // Heard at 3 s: silent from 9 s; never itself, never beyond `controllers`.
        assert_eq!(
            silent_controllers(&heard, started, at(9), 0, 3, silence),
            [1, 2]
        );
        assert_eq!(
            silent_controllers(&heard, started, at(9), 1, 2, silence),
            [0]
        );
    }

    fn lost_note(id: u8, start: u64, timeout: u64) -> ActivationEntry {
        let activation_id = whisk_model::ActivationId::from_bytes([id; 16]).to_string();
        let document = serde_json::json!({
            "namespace": "guest",
            "name": "hello",
            "subject": "guest",
            "activationId": activation_id,
            "start": start,
            "end": 0,
            "response": whisk_model::ActivationResponse::whisk_error(serde_json::json!("pending")),
            "annotations": [{"key": "limits", "value": {"timeout": timeout}}],
        });
        ActivationEntry {
            namespace: "guest".into(),
            activation_id,
            name: "hello".into(),
            path_name: None,
            start,
            document,
        }
    }

    #[tokio::test]
    async fn a_silent_controllers_overdue_notes_are_closed_once_by_any_number_of_closers()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = whisk_store::open_sqlite(dir.path())?;
        let margin = Duration::from_millis(500);
        // Overdue at 1_000 + 2 * 500 + 500 = 2_500.
        store
            .activations
            .put_pending_owned(lost_note(1, 1_000, 100), "controller1")
            .await?;
        // Its own limit keeps this one open longer: 1_000 + 2 * 10_000 + 500.
        store
            .activations
            .put_pending_owned(lost_note(2, 1_000, 10_000), "controller1")
            .await?;
        // Another controller's note is not touched.
        store
            .activations
            .put_pending_owned(lost_note(3, 0, 100), "controller2")
            .await?;
        assert_eq!(
            close_overdue_of(&store, "controller1", 2_499, margin).await?,
            0
        );
        // Two controllers at once: one record between them.
        let (first, second) = tokio::join!(
            close_overdue_of(&store, "controller1", 2_500, margin),
            close_overdue_of(&store, "controller1", 2_500, margin)
        );
        assert_eq!(first? + second?, 1);
        let record = store
            .activations
            .get("guest", &lost_note(1, 0, 0).activation_id)
            .await?
            .expect("the lost record");
        // Status code 3: a whisk internal error.
        assert_eq!(record["response"]["statusCode"], 3, "{record}");
        let mut open: Vec<String> = store
            .activations
            .pending()
            .await?
            .into_iter()
            .map(|note| note.activation_id)
            .collect();
        open.sort();
        assert_eq!(
            open,
            [
                lost_note(2, 0, 0).activation_id,
                lost_note(3, 0, 0).activation_id
            ]
        );
        Ok(())
    }

    fn queued(id: u8, controller: u32) -> whisk_model::bus::ActivationMessage {
        whisk_model::bus::ActivationMessage {
            transaction_id: "tid".into(),
            activation_id: whisk_model::ActivationId::from_bytes([id; 16]),
            action: whisk_model::names::FullyQualifiedEntityName::parse("/guest/hello")
                .expect("name"),
            revision: "1".into(),
            user: whisk_model::Identity {
                subject: "guest".into(),
                namespace: "guest".into(),
                uuid: "uuid-guest".into(),
                limits: Default::default(),
            },
            api_key: None,
            content: serde_json::Map::new(),
            init_args: serde_json::Map::new(),
            blocking: true,
            completion_topic: whisk_model::bus::completion_topic(controller),
            cause: None,
            caused_by: None,
            binding: None,
            invoked_as: None,
            accepted_at: 0,
        }
    }

    #[tokio::test]
    async fn a_silent_controllers_work_waiting_on_a_down_invoker_is_adopted() -> anyhow::Result<()>
    {
        use whisk_bus::{Bus, InProcessBus};
        use whisk_model::bus::{HealthBeat, InvokerState, invoker_topic};
        let dir = tempfile::tempdir()?;
        let store = whisk_store::open_sqlite(dir.path())?;
        let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
        let balancer = LoadBalancer::new(
            Arc::clone(&bus),
            BalancerConfig {
                controller: 1,
                controllers: 2,
                ..BalancerConfig::default()
            },
        );
        let beat = |invoker, state| HealthBeat {
            invoker,
            state,
            user_memory_mb: 1024,
            sent_at: 0,
        };
        balancer.record_beat(&beat(0, InvokerState::Draining));
        // With no healthy invoker, nothing is taken.
        let publish = |message: whisk_model::bus::ActivationMessage, key: &'static str| {
            let bus = Arc::clone(&bus);
            async move {
                bus.publish_keyed(
                    &invoker_topic(0),
                    key,
                    serde_json::to_vec(&message).expect("encodes").into(),
                )
                .await
            }
        };
        // Controller 0's: one still open (128 MB, 1 s), one already closed as lost.
        let mut note = lost_note(1, 1_000, 1_000);
        note.document["annotations"] =
            serde_json::json!([{"key": "limits", "value": {"timeout": 1_000, "memory": 128}}]);
        store
            .activations
            .put_pending_owned(note, &controller_owner(0))
            .await?;
        publish(queued(1, 0), "controller0").await?;
        publish(queued(2, 0), "controller0").await?;
        // Another controller's is not touched.
        publish(queued(3, 2), "controller2").await?;
        assert_eq!(adopt_queued(&balancer, &store, 0, 0).await?, 0);

        balancer.record_beat(&beat(1, InvokerState::Healthy));
        assert_eq!(adopt_queued(&balancer, &store, 0, 0).await?, 1);
        let mut on_one = bus.consume(&invoker_topic(1)).await?;
        let delivery = tokio::time::timeout(Duration::from_secs(30), on_one.next())
            .await?
            .expect("the adopted message");
        let adopted: whisk_model::bus::ActivationMessage =
            serde_json::from_slice(&delivery.payload)?;
        assert_eq!(adopted.activation_id, queued(1, 0).activation_id);
        assert_eq!(adopted.completion_topic, "completed1");
        assert_eq!(balancer.in_flight_on(1), [queued(1, 0).activation_id]);
        let used: Vec<u64> = balancer.invokers().iter().map(|s| s.used_mb).collect();
        assert_eq!(used, [0, 128]);
        // The already closed one is gone; controller 2's waits where it was.
        assert!(
            bus.reclaim(&invoker_topic(0), "controller0")
                .await?
                .is_empty()
        );
        assert_eq!(
            bus.reclaim(&invoker_topic(0), "controller2").await?.len(),
            1
        );
        Ok(())
    }
}
