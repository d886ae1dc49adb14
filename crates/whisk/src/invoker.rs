//! `whisk invoker`: one invoker of a cluster. It pulls the activations the controllers publish
//! on its topic from the NATS bus, runs them in containers on this host exactly as standalone's
//! in-process invoker does, and writes their records to the shared store.

use anyhow::Context;

use crate::cluster::{connect_bus, open_store};
use crate::config::{ClusterFlags, ClusterRole, ClusterSettings, ServerConfig, ServerFlags};
use crate::standalone::{LocalInvoker, controller_config, shutdown_signal};

pub async fn run(flags: ServerFlags, cluster: ClusterFlags) -> anyhow::Result<()> {
    let config = ServerConfig::load(&flags)?;
    let settings = ClusterSettings::resolve(ClusterRole::Invoker, &cluster, &config.cluster)?;
    let mut invoker_settings = config.invoker.clone();
    if let Some(user_memory_mb) = cluster.user_memory_mb {
        invoker_settings.user_memory_mb = user_memory_mb;
    }
    let store = open_store(&settings).await?;
    let bus = connect_bus(&settings).await?;
    let manifest = controller_config(&config).manifest;
    let invoker = LocalInvoker::start(
        settings.id,
        &invoker_settings,
        &config.data_dir,
        settings.api,
        false,
        std::sync::Arc::clone(&bus),
        store,
        &manifest,
    )
    .await
    .with_context(|| format!("cannot start invoker {}", settings.id))?;
    // The first stdout line tells scripts (and the cluster tests) that the invoker is pulling work.
    println!(
        "whisk-rs invoker {} running (instance {}, {} MB for actions)",
        settings.id, invoker_settings.instance, invoker_settings.user_memory_mb
    );
    shutdown_signal().await;
    invoker.shutdown().await;
    bus.close().await;
    tracing::info!("stopped");
    Ok(())
}
