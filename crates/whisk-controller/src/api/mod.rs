//! The REST API routes, one module per collection.
//!
//! Each collection module exposes `pub(crate) fn routes() -> Router<AppState>` with its full
//! paths (`/api/v1/namespaces/{ns}/<collection>...`); `routes` merges them. A handler:
//! * takes [`crate::auth::Caller`] for the identity (authentication already happened),
//!   [`crate::extract::PathSegments`] for path segments and [`crate::extract::QueryParams`];
//! * resolves `{ns}` with [`crate::names::resolve_namespace`] and names with
//!   [`crate::names::entity_name`];
//! * checks rights with [`crate::entitlement::check`] *before* reading a body, then reads it
//!   with [`crate::extract::read_json`] (taking the raw `Request` as its last argument);
//! * reads and writes entities with [`crate::documents`] (`fetch`, `fetch_existing`,
//!   `package_document`, ...), lists with `Listing`;
//! * returns [`crate::ApiError`] for every failure; store and model errors convert with `?`.

pub mod actions;
pub mod activations;
pub mod info;
pub mod namespaces;
pub mod packages;
pub mod rules;
pub mod triggers;
pub mod web;

use axum::Json;
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use whisk_model::EntityType;
use whisk_store::{EntityQuery, EntityScope};

use crate::documents;
use crate::entitlement::Collection;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::state::AppState;

/// Every route of the application, without the shared layers.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(info::routes())
        .merge(namespaces::routes())
        .merge(actions::routes())
        .merge(packages::routes())
        .merge(triggers::routes())
        .merge(rules::routes())
        .merge(activations::routes())
        .merge(web::routes())
        .merge(crate::gateway::routes())
}

/// Answer for paths no route matches.
pub(crate) async fn route_not_found() -> ApiError {
    ApiError::route_not_found()
}

/// A list request over one collection, answered the same way for every entity type:
/// `limit`/`skip`/`count` validated with the collection's name in messages, newest first,
/// each entry rendered as the collection's summary, or `{"<collection>": n}` for `count=true`.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    /// Names the collection in messages and in the count answer.
    pub collection: Collection,
    /// What is listed.
    pub entity_type: EntityType,
    /// Which namespace paths.
    pub scope: EntityScope,
    /// Only published non-binding entities (another namespace's packages).
    pub public_only: bool,
}

impl Listing {
    pub(crate) async fn respond<T: DeserializeOwned>(
        self,
        state: &AppState,
        query: &QueryParams,
        summarize: impl Fn(&T) -> Value,
    ) -> ApiResult<Json<Value>> {
        let collection = self.collection.as_str();
        let options = query.list_options(collection)?;
        let store = state.store.entities.as_ref();
        let mut entity_query = EntityQuery::new(self.entity_type, self.scope);
        entity_query.public_only = self.public_only;
        entity_query.skip = u64::from(options.skip);
        if options.count {
            let count = store.count(&entity_query).await?;
            return Ok(Json(json!({ collection: count })));
        }
        entity_query.limit = Some(u64::from(options.limit));
        let mut summaries = Vec::new();
        for stored in store.list(&entity_query).await? {
            match documents::decode::<T>(stored, self.entity_type) {
                Ok(decoded) => summaries.push(summarize(&decoded.entity)),
                // One damaged document should not hide the rest of the collection.
                Err(error) => tracing::error!(%error, "skipping undecodable entity in list"),
            }
        }
        Ok(Json(Value::Array(summaries)))
    }
}
