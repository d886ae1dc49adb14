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

/// When an activation a previous run of this controller left open is surely lost: no invoker
/// runs anything past its time limit, so by the balancer's own rule for giving up on a
/// completion (twice the limit, at least a minute, plus a minute) it will never get a record.
fn orphan_deadline(note: &ActivationEntry) -> u64 {
    let timeout = note.document["annotations"]
        .as_array()
        .and_then(|pairs| pairs.iter().find(|pair| pair["key"] == "limits"))
        .and_then(|pair| pair["value"]["timeout"].as_u64())
        .unwrap_or(UNKNOWN_RUN_LIMIT_MS);
    note.start
        .saturating_add(timeout.max(60_000).saturating_mul(2))
        .saturating_add(60_000)
}

/// Writes the `whisk internal error` record of each of `orphans` (notes of this controller's
/// previous run) once it is overdue and still has no record; ends when none is left.
async fn sweep_orphans(store: Store, mut orphans: HashSet<(String, String)>) {
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
            if !orphans.contains(&key) || orphan_deadline(&note) > now {
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
    let store = OwnedNotes::wrap(database.store(), controller_owner(settings.id));
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
    let sweeper = tokio::spawn(sweep_orphans(store.clone(), orphans));
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
    // Throttles count in the shared store, so a namespace's limits hold for the whole cluster.
    let invocations = Invocations::shared(Arc::clone(&balancer), Arc::clone(&store.activations));
    let state = whisk_controller::AppState::new(store, controller_config(&config))
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
    watchdog.abort();
    sweeper.abort();
    balancer.stop();
    bus.close().await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Records the activations lost with a dead invoker. An invoker that stops beating takes with
/// it whatever it was running (acknowledged on the bus, so never delivered again) and leaves
/// what was queued for it waiting for its return. Once it has been down for `grace`, every
/// activation this controller sent there and saw no completion of gets its `whisk internal
/// error` record (unless the invoker stored one after all), and its balancer slots and any
/// blocking caller are released with that record. Only the controller that published an
/// activation knows where it went, so each controller closes just its own.
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
                down_since.remove(&status.invoker);
                continue;
            }
            let since = *down_since
                .entry(status.invoker)
                .or_insert_with(Instant::now);
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
            orphan_deadline(&note(1_000, limits)),
            1_000 + 180_000 + 60_000
        );
        // Short limits still wait the balancer's minimum of a minute, doubled.
        let short = serde_json::json!([{"key": "limits", "value": {"timeout": 100}}]);
        assert_eq!(orphan_deadline(&note(0, short)), 180_000);
        // No limits (a sequence's note): the largest action limit is assumed.
        assert_eq!(
            orphan_deadline(&note(0, serde_json::json!([]))),
            2 * UNKNOWN_RUN_LIMIT_MS + 60_000
        );
        assert_eq!(
            orphan_deadline(&note(u64::MAX - 5, serde_json::json!(null))),
            u64::MAX
        );
    }
}
