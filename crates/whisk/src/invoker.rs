//! `whisk invoker`: one invoker of a cluster. It pulls the activations the controllers publish
//! on its topic from the NATS bus, runs them in containers on this host exactly as standalone's
//! in-process invoker does, and writes their records to the shared store.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cluster::{connect_bus, open_store};
use crate::config::{ClusterFlags, ClusterRole, ClusterSettings, ServerConfig, ServerFlags};
use crate::standalone::{LocalInvoker, controller_config, shutdown_signal};

pub async fn run(
    flags: ServerFlags,
    cluster: ClusterFlags,
    metrics: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let config = ServerConfig::load(&flags)?;
    let metrics = match metrics {
        Some(address) => {
            let server = serve_metrics(address).await?;
            tracing::info!(address = %server.address, "serving metrics at /metrics");
            Some(server)
        }
        None => None,
    };
    let settings = ClusterSettings::resolve(ClusterRole::Invoker, &cluster, &config.cluster)?;
    let mut invoker_settings = config.invoker.clone();
    if let Some(user_memory_mb) = cluster.user_memory_mb {
        invoker_settings.user_memory_mb = user_memory_mb;
    }
    let store = open_store(&settings).await?;
    let bus = connect_bus(&settings, ClusterRole::Invoker).await?;
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
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The metrics listener of an invoker process: `/metrics` alone, until [`MetricsServer::stop`].
#[derive(Debug)]
pub(crate) struct MetricsServer {
    /// The address it listens on (the port read back when 0 was asked for).
    pub(crate) address: SocketAddr,
    stop: oneshot::Sender<()>,
    served: JoinHandle<Result<(), whisk_metrics::MetricsError>>,
}

impl MetricsServer {
    /// Stops listening and waits for the server task.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        match self.served.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "metrics listener ended with an error"),
            Err(error) => tracing::warn!(%error, "metrics listener task failed"),
        }
    }
}

/// Starts the metrics listener on `address`.
pub(crate) async fn serve_metrics(address: SocketAddr) -> anyhow::Result<MetricsServer> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen for metrics on {address}"))?;
    let address = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(whisk_metrics::serve(listener, async {
        let _ = stopped.await;
    }));
    Ok(MetricsServer {
        address,
        stop,
        served,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_metrics_listener_serves_and_stops() {
        let server = serve_metrics("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let url = format!("http://{}/metrics", server.address);
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        assert!(text.contains("whisk_pool_waiting_activations"), "{text}");
        server.stop().await;
        assert!(
            reqwest::get(&url).await.is_err(),
            "still listening after stop"
        );
    }

    #[tokio::test]
    async fn a_taken_metrics_port_is_a_clear_error() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let error = serve_metrics(taken.local_addr().unwrap())
            .await
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("cannot listen for metrics"),
            "{error:#}"
        );
    }
}
