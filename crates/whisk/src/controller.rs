//! `whisk controller`: the API and a load balancer of a cluster, over the shared PostgreSQL
//! store and NATS bus. Any number of them serve behind an HTTP load balancer; each receives
//! the completions of what it published on its own topic (`completed<id>`), so a blocking call
//! is answered by the controller that took it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use whisk_controller::{BalancerConfig, Clock, Invocations, LoadBalancer, SystemClock};
use whisk_model::bus::CompletionMessage;
use whisk_store::Store;

use crate::cluster::{connect_bus, open_store};
use crate::config::{ClusterFlags, ClusterRole, ClusterSettings, ServerConfig, ServerFlags};
use crate::standalone::{
    announce_as, controller_config, edge_config, ensure_well_known_subjects, shutdown_signal,
};

/// How often the controller looks for invokers that went silent with its work.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(flags: ServerFlags, cluster: ClusterFlags) -> anyhow::Result<()> {
    let config = ServerConfig::load(&flags)?;
    let settings = ClusterSettings::resolve(ClusterRole::Controller, &cluster, &config.cluster)?;
    let store = open_store(&settings).await?;
    ensure_well_known_subjects(&store).await?;
    let bus = connect_bus(&settings).await?;

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
    ));
    let state = whisk_controller::AppState::new(store, controller_config(&config))
        .with_invocations(Invocations::new(Arc::clone(&balancer)));
    let edge = edge_config(&config)?;
    tracing::info!(
        controller = settings.id,
        controllers = settings.controllers,
        cluster = %settings.name,
        %address,
        "controller running"
    );
    announce_as(&format!("controller {}", settings.id), address, &config);
    let served = whisk_controller::serve_with(listener, state, edge, shutdown_signal()).await;
    watchdog.abort();
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
async fn watch_invokers(balancer: Arc<LoadBalancer>, store: Store, grace: Duration) {
    let mut down_since: HashMap<u32, Instant> = HashMap::new();
    let mut interval = tokio::time::interval(WATCH_INTERVAL);
    loop {
        interval.tick().await;
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
    let mut notes: HashMap<String, whisk_store::ActivationEntry> = store
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
