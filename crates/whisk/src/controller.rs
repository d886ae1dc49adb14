//! `whisk controller`: the API and a load balancer of a cluster, over the shared PostgreSQL
//! store and NATS bus. Any number of them serve behind an HTTP load balancer; each receives
//! the completions of what it published on its own topic (`completed<id>`), so a blocking call
//! is answered by the controller that took it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use whisk_controller::{BalancerConfig, Invocations, LoadBalancer};

use crate::cluster::{connect_bus, open_store};
use crate::config::{ClusterFlags, ClusterRole, ClusterSettings, ServerConfig, ServerFlags};
use crate::standalone::{
    announce_as, controller_config, edge_config, ensure_well_known_subjects, shutdown_signal,
};

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
    balancer.stop();
    bus.close().await;
    served?;
    tracing::info!("stopped");
    Ok(())
}
