//! The feed provider of a cluster: every controller serves the feed and webhook routes over
//! the registrations in the shared PostgreSQL schema, and the alarm scheduler runs on the one
//! controller that holds the scheduler lock (see `whisk_events::leader`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use whisk_events::scheduler::CLUSTER_POLL;
use whisk_events::{Election, Events, FeedStore};
use whisk_store::PostgresDatabase;

use crate::config::ServerConfig;
use crate::standalone::{public_url, system_credentials};

/// How many times a controller tries to install the shipped packages while others write them.
const INSTALL_ATTEMPTS: u32 = 10;

/// The pause before the next attempt grows by this much each time.
const INSTALL_PAUSE: Duration = Duration::from_millis(200);

/// Opens the registrations (migrating their tables), installs or upgrades the `whisk.system`
/// packages (controllers starting together may all try; they settle on one copy), and starts
/// campaigning for the scheduler. The provider's application serves the feed and webhook
/// routes in front of the controller's; the task is the election, to abort at shutdown.
pub async fn start(
    config: &ServerConfig,
    database: &PostgresDatabase,
    state: whisk_controller::AppState,
    address: SocketAddr,
) -> anyhow::Result<(Events, tokio::task::JoinHandle<()>)> {
    let feeds = FeedStore::postgres(database)
        .await
        .context("cannot open the feed registrations in the cluster store")?;
    let events = Events::new(state, feeds, public_url(address, config));
    if let Err(error) = whisk_events::install_shared(
        events.controller(),
        system_credentials(),
        INSTALL_ATTEMPTS,
        INSTALL_PAUSE,
    )
    .await
    {
        // As in standalone: an admin may have changed whisk.system's key; the API still runs.
        tracing::warn!(%error, "cannot install the whisk.system packages");
    }
    // Registrations made through other controllers cannot wake this one's scheduler, so it
    // looks at the store every second while it leads.
    let scheduler = events.scheduler().with_max_idle(CLUSTER_POLL);
    let election =
        tokio::spawn(Election::new(database.clone()).run(scheduler, std::future::pending()));
    Ok((events, election))
}
