//! The API relay: containers cannot reach the host's loopback, where the platform's API
//! listens, so a TCP proxy on the gateway address forwards to it. The nftables rules let
//! containers reach this one port of the host and nothing else.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::NetError;

/// A running relay; dropping it closes the listener and every relayed connection.
#[derive(Debug)]
pub(crate) struct Relay {
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on `listen` (a port the kernel picks) and forwards each connection to
    /// `upstream`.
    pub(crate) async fn start(
        listen: Ipv4Addr,
        upstream: SocketAddr,
        instance: &str,
    ) -> Result<Self, NetError> {
        let requested = SocketAddr::V4(SocketAddrV4::new(listen, 0));
        let relay_error = |source| NetError::Relay {
            address: requested,
            source,
        };
        let listener = TcpListener::bind(requested).await.map_err(relay_error)?;
        let local = listener.local_addr().map_err(relay_error)?;
        tracing::info!(instance, %local, %upstream, "API relay listening");
        let task = tokio::spawn(accept_loop(listener, upstream));
        Ok(Self { local, task })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr) {
    // Owned here so that aborting the loop also ends every connection it relays.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    connections.spawn(relay_one(client, peer, upstream));
                }
                Err(error) => {
                    // Typically out of file descriptors: wait a little rather than spin.
                    tracing::warn!(%error, "API relay cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn relay_one(mut client: TcpStream, peer: SocketAddr, upstream: SocketAddr) {
    let mut server = match TcpStream::connect(upstream).await {
        Ok(server) => server,
        Err(error) => {
            // Dropping the client's connection is the answer it gets: the API is down.
            tracing::warn!(%peer, %upstream, %error, "API relay cannot reach the API");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    match tokio::io::copy_bidirectional(&mut client, &mut server).await {
        Ok((sent, received)) => {
            tracing::debug!(%peer, sent, received, "API relay connection closed")
        }
        Err(error) => tracing::debug!(%peer, %error, "API relay connection ended"),
    }
}
