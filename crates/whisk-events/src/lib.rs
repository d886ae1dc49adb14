//! Event sources of whisk-rs: the `whisk.system` packages it ships (`alarms`, `webhooks`,
//! `utils`), the feed provider behind their feed actions, and the alarm scheduler.
//!
//! OpenWhisk runs feed providers as separate services that call its REST API with the user's
//! key. Here the provider lives inside the platform: feed actions call the routes of
//! [`routes`] on the platform's own API host, registrations are kept in a [`FeedStore`], and
//! fires go through the controller's `fire_with_identity`, the same checks as `POST
//! .../triggers/{name}` without an HTTP round trip.
//!
//! Standalone keeps the registrations in SQLite and runs the scheduler itself. A cluster keeps
//! them in its PostgreSQL schema, every controller serves the routes, and the scheduler runs on
//! the one controller [`leader::Election`] elects; each occurrence is claimed in the store
//! before it fires, so no occurrence fires twice whichever scheduler runs.

pub mod leader;
pub mod packages;
pub mod routes;
pub mod schedule;
pub mod scheduler;
pub mod signature;
pub mod store;

#[cfg(test)]
mod testing;

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use serde_json::{Map, Value};
use whisk_controller::api::triggers::fire_with_identity;
use whisk_controller::{AppState, Clock};
use whisk_model::EntityName;
use whisk_model::identity::Identity;
use whisk_store::{StoreError, StoreResult};

pub use leader::Election;
pub use packages::{InstallError, install, install_shared};
pub use scheduler::{FireOutcome, Scheduler, Triggers};
pub use store::{
    FEEDS_FILE_NAME, FeedBackend, FeedStore, FeedStoreError, PostgresFeeds, SqliteFeeds,
};

/// The feed provider: what its routes and the scheduler share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Events {
    app: AppState,
    /// The controller's application, for calls made with a feed caller's own credentials.
    controller: Router,
    feeds: FeedStore,
    scheduler: Scheduler,
    clock: Arc<dyn Clock>,
    /// Scheme, host and port users reach the API at (webhook URLs are built on it).
    public_url: String,
}

impl Events {
    /// The provider for the platform `app`, keeping registrations in `feeds`; `public_url`
    /// is where users reach the API (e.g. `http://127.0.0.1:3233`).
    pub fn new(app: AppState, feeds: FeedStore, public_url: impl Into<String>) -> Self {
        let triggers = Arc::new(ControllerTriggers { app: app.clone() });
        let scheduler = Scheduler::new(feeds.clone(), triggers, Arc::clone(&app.clock));
        Self {
            controller: whisk_controller::router(app.clone()),
            clock: Arc::clone(&app.clock),
            app,
            feeds,
            scheduler,
            public_url: public_url.into().trim_end_matches('/').to_owned(),
        }
    }

    /// The feed and webhook routes in front of the controller's application: the complete
    /// application to serve.
    pub fn app(&self) -> Router {
        routes::router(self.clone()).fallback_service(self.controller.clone())
    }

    /// The controller's application alone (for installing the shipped packages).
    pub fn controller(&self) -> &Router {
        &self.controller
    }

    /// The alarm scheduler; run it with [`Scheduler::run`].
    pub fn scheduler(&self) -> Scheduler {
        self.scheduler.clone()
    }

    fn webhook_url(&self, token: &str) -> String {
        format!("{}{}{token}", self.public_url, routes::WEBHOOK_PATH)
    }

    /// The namespace's identity if its key uuid is still the one the registration was made with.
    async fn owner(&self, namespace: &str, uuid: &str) -> StoreResult<Option<Identity>> {
        owner(&self.app, namespace, uuid).await
    }
}

async fn owner(app: &AppState, namespace: &str, uuid: &str) -> StoreResult<Option<Identity>> {
    Ok(app
        .store
        .subjects
        .identity_for_namespace(namespace)
        .await?
        .filter(|identity| identity.uuid == uuid))
}

/// Fires and deletes triggers through the controller and the store.
#[derive(Debug, Clone)]
pub struct ControllerTriggers {
    app: AppState,
}

impl ControllerTriggers {
    pub fn new(app: AppState) -> Self {
        Self { app }
    }

    async fn delete_document(&self, doc_id: &str) -> StoreResult<Option<Value>> {
        let entities = &self.app.store.entities;
        match entities.get(doc_id).await? {
            Some(stored) => {
                entities.delete(doc_id, stored.revision).await?;
                Ok(Some(stored.document))
            }
            None => Ok(None),
        }
    }
}

#[async_trait]
impl Triggers for ControllerTriggers {
    async fn fire(
        &self,
        namespace: &str,
        name: &str,
        owner_uuid: &str,
        payload: Map<String, Value>,
    ) -> FireOutcome {
        let identity = match owner(&self.app, namespace, owner_uuid).await {
            Ok(Some(identity)) => identity,
            Ok(None) => {
                return FireOutcome::Refused {
                    status: 401,
                    message: "the owner's key is no longer valid".into(),
                };
            }
            Err(error) => {
                return FireOutcome::Failed {
                    message: error.to_string(),
                };
            }
        };
        let (Ok(namespace), Ok(name)) = (
            EntityName::namespace(namespace.to_owned()),
            EntityName::new(name.to_owned()),
        ) else {
            return FireOutcome::Refused {
                status: 400,
                message: format!("{namespace}/{name} is not a trigger name"),
            };
        };
        let transaction = self.app.ids.transaction_id();
        match fire_with_identity(
            &self.app,
            &identity,
            &namespace,
            &name,
            payload,
            &transaction,
        )
        .await
        {
            Ok(_) => FireOutcome::Fired,
            Err(error) => {
                FireOutcome::from_status(error.status().as_u16(), error.message().to_owned())
            }
        }
    }

    async fn delete(&self, namespace: &str, name: &str, rules: bool) -> Result<(), String> {
        let trigger = self
            .delete_document(&format!("{namespace}/{name}"))
            .await
            .map_err(|error: StoreError| error.to_string())?;
        if rules {
            let rule_ids: Vec<String> = trigger
                .as_ref()
                .and_then(|document| document.get("rules"))
                .and_then(Value::as_object)
                .map(|rules| rules.keys().cloned().collect())
                .unwrap_or_default();
            for rule in rule_ids {
                self.delete_document(&rule)
                    .await
                    .map_err(|error| error.to_string())?;
            }
        }
        Ok(())
    }
}
