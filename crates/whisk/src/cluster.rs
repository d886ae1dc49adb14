//! What `whisk controller` and `whisk invoker` share: reaching the cluster's store and bus.

use std::sync::Arc;

use anyhow::Context;
use whisk_bus::{Bus, NatsBus, NatsConfig};
use whisk_store::{PostgresOptions, PostgresTls, Store};

use crate::config::ClusterSettings;

/// Opens the shared PostgreSQL store (migrating its schema if this build is newer).
pub async fn open_store(settings: &ClusterSettings) -> anyhow::Result<Store> {
    let options = PostgresOptions {
        tls: match &settings.store_ca {
            Some(ca_file) => PostgresTls::Required {
                ca_file: ca_file.clone(),
            },
            None => PostgresTls::Disabled,
        },
        schema: settings.store_schema.clone(),
        ..PostgresOptions::default()
    };
    whisk_store::open_postgres(&settings.store, &options)
        .await
        .context("cannot open the cluster store")
}

/// Connects to the cluster's NATS bus under the cluster's name.
pub async fn connect_bus(settings: &ClusterSettings) -> anyhow::Result<Arc<dyn Bus>> {
    let bus = NatsBus::connect(NatsConfig::new(settings.bus.clone(), settings.name.clone()))
        .await
        .context("cannot connect to the cluster bus")?;
    Ok(Arc::new(bus))
}
