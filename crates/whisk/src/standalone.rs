//! `whisk standalone`: the whole platform in one process on the embedded store.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use whisk_bus::{Bus, InProcessBus};
use whisk_controller::{BalancerConfig, Clock, Invocations, LoadBalancer, SystemClock};
use whisk_model::identity::AuthKey;
use whisk_store::Store;

use crate::config::{ServerConfig, ServerFlags};

/// The development credentials every OpenWhisk standalone install ships with, so that existing
/// `~/.wskprops` files and tutorials work unchanged. (subject = namespace name, uuid:key)
const WELL_KNOWN_SUBJECTS: [(&str, &str); 2] = [
    (
        "guest",
        "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP",
    ),
    (
        "whisk.system",
        "789c46b1-71f6-4ed5-8c54-816aa4f8c502:abczO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP",
    ),
];

pub async fn run(flags: ServerFlags) -> anyhow::Result<()> {
    let config = ServerConfig::load(&flags)?;
    let store = whisk_store::open_sqlite(&config.data_dir)
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    ensure_well_known_subjects(&store).await?;
    // Before anything new is accepted: whatever the previous run left in flight gets its record.
    let closed = whisk_controller::close_unfinished(&store, SystemClock.now_millis())
        .await
        .context("cannot close the activations the previous run left unfinished")?;
    if closed > 0 {
        tracing::warn!(
            closed,
            "closed activations lost when the platform last stopped"
        );
    }

    let listener = tokio::net::TcpListener::bind(SocketAddr::new(config.host, config.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
    let address = listener.local_addr()?;

    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    let balancer = LoadBalancer::new(Arc::clone(&bus), BalancerConfig::default());
    balancer
        .start()
        .await
        .context("cannot start the load balancer")?;
    if config.invoker.enabled {
        tracing::warn!(
            instance = %config.invoker.instance,
            "this build has no invoker yet; invocations answer 503"
        );
    } else {
        tracing::info!("invoker disabled by configuration; invocations answer 503");
    }

    let state = whisk_controller::AppState::new(store, controller_config(&config))
        .with_invocations(Invocations::new(Arc::clone(&balancer)));
    announce(address, &config);
    let served = whisk_controller::serve(listener, state, shutdown_signal()).await;
    balancer.stop();
    bus.close().await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

fn controller_config(config: &ServerConfig) -> whisk_controller::ControllerConfig {
    let mut controller = whisk_controller::ControllerConfig::default();
    let limits = &mut controller.limits;
    if let Some(value) = config.limits.invocations_per_minute {
        limits.invocations_per_minute = value.into();
    }
    if let Some(value) = config.limits.concurrent_invocations {
        limits.concurrent_invocations = value.into();
    }
    if let Some(value) = config.limits.fires_per_minute {
        limits.fires_per_minute = value.into();
    }
    controller
}

/// Creates `guest` and `whisk.system` on first start; later starts leave them as the admin left them.
async fn ensure_well_known_subjects(store: &Store) -> anyhow::Result<()> {
    for (subject, credentials) in WELL_KNOWN_SUBJECTS {
        if store.subjects.get_subject(subject).await?.is_some() {
            continue;
        }
        let key = AuthKey::parse(credentials)
            .map_err(|error| anyhow::anyhow!("built-in key of {subject} is invalid: {error}"))?;
        store
            .subjects
            .create_subject(subject, subject, &key)
            .await
            .with_context(|| format!("cannot create the {subject} namespace"))?;
        tracing::info!(subject, "created well-known namespace");
    }
    Ok(())
}

/// Tells a person (and the end-to-end tests, which read the first line) where the API is and how
/// to point the usual clients at it.
fn announce(address: SocketAddr, config: &ServerConfig) {
    let url = format!("http://{address}");
    let guest = WELL_KNOWN_SUBJECTS[0].1;
    println!("whisk-rs standalone listening on {url}");
    println!("data directory: {}", config.data_dir.display());
    println!();
    println!("Use it with the wsk CLI:");
    println!("  wsk property set --apihost {url} --auth {guest}");
    println!("or with the openwhisk npm client:");
    println!("  require('openwhisk')({{apihost: '{url}', api_key: '{guest}'}})");
}

/// Resolves on SIGINT or SIGTERM, so `serve` can finish the requests in flight and return.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}
