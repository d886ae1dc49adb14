//! The activations read API (REFERENCE §8.5).
//!
//! Activation records are visible only in the namespace that invoked them, and only to that
//! namespace's owner. Records are kept in their stored form (see [`activation_entry`]) and
//! rendered here as the extended record, the list summary, the result or the logs.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};
use whisk_model::activation::annotation_keys;
use whisk_model::{ActivationId, EntityName, EntityPath, Identity, WhiskActivation, messages};
use whisk_store::{ActivationEntry, ActivationQuery};

use crate::auth::Caller;
use crate::entitlement::{self, Collection, Privilege, Resource};
use crate::error::{ApiError, ApiResult};
use crate::extract::{PathSegments, QueryParams};
use crate::names;
use crate::state::AppState;

/// The collection's name in list messages and in the `count=true` answer.
const COLLECTION: &str = "activations";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/namespaces/{namespace}/activations",
            get(list_activations),
        )
        .route(
            "/api/v1/namespaces/{namespace}/activations/",
            get(list_activations),
        )
        .route(
            "/api/v1/namespaces/{namespace}/activations/{id}",
            get(get_activation),
        )
        .route(
            "/api/v1/namespaces/{namespace}/activations/{id}/",
            get(get_activation),
        )
        .route(
            "/api/v1/namespaces/{namespace}/activations/{id}/result",
            get(get_activation_result),
        )
        .route(
            "/api/v1/namespaces/{namespace}/activations/{id}/logs",
            get(get_activation_logs),
        )
}

/// Why an activation record cannot be stored.
#[derive(Debug, thiserror::Error)]
#[error("activation record does not serialize: {0}")]
pub struct ActivationEncodeError(#[from] serde_json::Error);

/// The store entry for an activation record: its stored form plus the columns lists filter
/// on. Whoever writes activations (the invoker, trigger fires) should build entries here so
/// the read API can decode them.
///
/// `path_name` is what a `name=pkg/action` filter matches: the binding's name when the action
/// was invoked through a binding (annotation `binding` = `ns/binding`), else the package from
/// the `path` annotation (`ns/pkg/action`), else nothing.
pub fn activation_entry(
    activation: &WhiskActivation,
) -> Result<ActivationEntry, ActivationEncodeError> {
    Ok(ActivationEntry {
        namespace: activation.namespace.to_string(),
        activation_id: activation.activation_id.to_string(),
        name: activation.name.to_string(),
        path_name: package_of(activation).map(|package| format!("{package}/{}", activation.name)),
        start: activation.start,
        document: serde_json::to_value(activation)?,
    })
}

/// The package segment a `pkg/action` filter should match for this record.
fn package_of(activation: &WhiskActivation) -> Option<String> {
    let second_segment = |key: &str, segments: usize| {
        let path = EntityPath::parse(activation.annotations.get_str(key)?).ok()?;
        (path.len() == segments).then(|| path.segments()[1].to_string())
    };
    second_segment(annotation_keys::BINDING, 2).or_else(|| second_segment(annotation_keys::PATH, 3))
}

/// Decodes a stored record; a record that does not decode is reported, not served.
fn decode(document: Value) -> Result<WhiskActivation, ApiError> {
    serde_json::from_value(document).map_err(|error| {
        tracing::error!(%error, "stored activation does not decode");
        ApiError::corrupted_entity()
    })
}

/// Validates the id segment (400 with OpenWhisk's messages), then the caller's right to read
/// the namespace's activations, then reads the record (404 when unknown).
async fn find_activation(
    state: &AppState,
    caller: &Identity,
    namespace: &str,
    id: &str,
) -> ApiResult<WhiskActivation> {
    let namespace = names::resolve_namespace(caller, namespace)?;
    let id = ActivationId::parse(id)?;
    let resource = Resource::entity(
        Collection::Activations,
        EntityPath::namespace(namespace.clone()),
        EntityName::new(id.as_str())?,
    );
    entitlement::check(
        state.store.entities.as_ref(),
        caller,
        Privilege::Read,
        &resource,
    )
    .await?;
    let document = state
        .store
        .activations
        .get(namespace.as_str(), id.as_str())
        .await?
        .ok_or_else(ApiError::not_found)?;
    decode(document)
}

async fn get_activation(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathSegments((namespace, id)): PathSegments<(String, String)>,
) -> ApiResult<Json<Value>> {
    let activation = find_activation(&state, &caller, &namespace, &id).await?;
    Ok(Json(activation.to_api_json()))
}

async fn get_activation_result(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathSegments((namespace, id)): PathSegments<(String, String)>,
) -> ApiResult<Json<Value>> {
    let activation = find_activation(&state, &caller, &namespace, &id).await?;
    Ok(Json(json!(activation.result())))
}

async fn get_activation_logs(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathSegments((namespace, id)): PathSegments<(String, String)>,
) -> ApiResult<Json<Value>> {
    let activation = find_activation(&state, &caller, &namespace, &id).await?;
    Ok(Json(activation.logs_json()))
}

/// The filters of a list request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListFilters {
    /// `action` or `pkg/action`.
    name: Option<String>,
    since: Option<u64>,
    upto: Option<u64>,
    /// A negative `upto` is valid but lies before every record.
    matches_nothing: bool,
}

impl ListFilters {
    fn parse(query: &QueryParams) -> ApiResult<Self> {
        let name = match query.get("name").map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(name_filter(raw)?),
        };
        let since = epoch_millis(query, "since")?;
        let upto = epoch_millis(query, "upto")?;
        Ok(Self {
            name,
            // Every record starts at or after the epoch, so a negative lower bound is no bound.
            since: since.map(|millis| u64::try_from(millis).unwrap_or(0)),
            upto: upto.and_then(|millis| u64::try_from(millis).ok()),
            matches_nothing: upto.is_some_and(|millis| millis < 0),
        })
    }
}

/// `action` or `pkg/action`; anything else is refused with OpenWhisk's message.
fn name_filter(raw: &str) -> ApiResult<String> {
    let refuse = || ApiError::malformed_query_parameter("name", messages::bad_name_filter(raw));
    match EntityPath::parse(raw) {
        Ok(path) if path.len() <= 2 => Ok(path.to_string()),
        _ => Err(refuse()),
    }
}

/// An optional epoch-milliseconds parameter.
fn epoch_millis(query: &QueryParams, parameter: &str) -> ApiResult<Option<i64>> {
    query
        .get(parameter)
        .map(|raw| {
            raw.trim().parse::<i64>().map_err(|_| {
                ApiError::malformed_query_parameter(parameter, messages::bad_epoch(raw))
            })
        })
        .transpose()
}

/// The caller's activations, newest first: summaries, full records with `docs=true`, or
/// `{"activations": n}` with `count=true`; filtered by `name`, `since` and `upto`.
async fn list_activations(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
    PathSegments(namespace): PathSegments<String>,
) -> ApiResult<Json<Value>> {
    let namespace = entitlement::check_collection_read(
        state.store.entities.as_ref(),
        &caller,
        &namespace,
        Collection::Activations,
    )
    .await?;
    let options = query.list_options(COLLECTION)?;
    let docs = query.boolean("docs", false)?;
    let filters = ListFilters::parse(&query)?;
    if options.count && docs {
        return Err(ApiError::bad_request(messages::DOCS_NOT_ALLOWED_WITH_COUNT));
    }
    let mut store_query = ActivationQuery::new(namespace.as_str());
    store_query.name = filters.name;
    store_query.since = filters.since;
    store_query.upto = filters.upto;
    store_query.skip = u64::from(options.skip);
    let activations = state.store.activations.as_ref();
    if options.count {
        let count = if filters.matches_nothing {
            0
        } else {
            activations.count(&store_query).await?
        };
        return Ok(Json(json!({ COLLECTION: count })));
    }
    if filters.matches_nothing {
        return Ok(Json(json!([])));
    }
    store_query.limit = Some(u64::from(options.limit));
    let mut entries = Vec::new();
    for document in activations.list(&store_query).await? {
        match decode(document) {
            Ok(activation) if docs => entries.push(activation.to_api_json()),
            Ok(activation) => entries.push(activation.to_summary_json()),
            // One damaged record should not hide the rest of the list.
            Err(_) => continue,
        }
    }
    Ok(Json(Value::Array(entries)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use whisk_model::{ActivationResponse, Annotations, SemVer};

    use super::*;

    fn record(annotations: Annotations) -> WhiskActivation {
        WhiskActivation {
            namespace: EntityPath::parse("guest").unwrap(),
            name: EntityName::new("hello").unwrap(),
            subject: "guest".into(),
            activation_id: ActivationId::from_bytes([7; 16]),
            start: 10,
            end: 20,
            duration: None,
            cause: None,
            response: ActivationResponse::success(json!({}), None),
            logs: vec![],
            version: SemVer::default(),
            publish: false,
            annotations,
        }
    }

    #[test]
    fn entries_carry_the_package_or_binding_for_name_filters() {
        let plain =
            activation_entry(&record(Annotations::single("path", json!("guest/hello")))).unwrap();
        assert_eq!(plain.path_name, None);
        assert_eq!(plain.name, "hello");
        assert_eq!(plain.namespace, "guest");
        assert_eq!(plain.start, 10);

        let packaged = activation_entry(&record(Annotations::single(
            "path",
            json!("guest/utils/hello"),
        )))
        .unwrap();
        assert_eq!(packaged.path_name.as_deref(), Some("utils/hello"));

        let mut through_binding = Annotations::single("path", json!("whisk.system/utils/hello"));
        through_binding.insert("binding", json!("guest/myutils"));
        let bound = activation_entry(&record(through_binding)).unwrap();
        assert_eq!(bound.path_name.as_deref(), Some("myutils/hello"));
    }

    #[test]
    fn entries_store_the_decodable_stored_form() {
        let activation = record(Annotations::new());
        let entry = activation_entry(&activation).unwrap();
        assert_eq!(entry.document["response"]["statusCode"], json!(0));
        assert_eq!(decode(entry.document).unwrap(), activation);
    }

    #[test]
    fn name_filters_allow_at_most_two_segments() {
        assert_eq!(name_filter("hello").unwrap(), "hello");
        assert_eq!(name_filter("pkg/hello").unwrap(), "pkg/hello");
        assert_eq!(
            name_filter("a/b/c").unwrap_err().message(),
            "The query parameter 'name' was malformed:\nParameter may be a 'simple' name or 'package-name/simple' name: a/b/c"
        );
        assert!(name_filter("bad!").is_err());
    }

    #[test]
    fn negative_bounds_are_valid() {
        let filters = ListFilters::parse(&QueryParams::parse(Some("since=-5&upto=-1"))).unwrap();
        assert_eq!(filters.since, Some(0));
        assert_eq!(filters.upto, None);
        assert!(filters.matches_nothing);
        let error = ListFilters::parse(&QueryParams::parse(Some("since=yesterday"))).unwrap_err();
        assert_eq!(
            error.message(),
            "The query parameter 'since' was malformed:\nParameter is not a valid value for epoch seconds: yesterday"
        );
    }
}
