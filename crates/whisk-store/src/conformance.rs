//! The behaviour every store adapter must show, written once against the traits.
//!
//! Each case takes a fresh, empty [`Store`] and panics on a violation. An
//! adapter runs them all with [`store_conformance_tests!`](crate::store_conformance_tests),
//! giving it an async constructor that returns the store and a guard that
//! keeps its backing resources (temp directory, database) alive for the test:
//!
//! ```ignore
//! async fn fresh_store() -> (whisk_store::Store, tempfile::TempDir) { ... }
//! whisk_store::store_conformance_tests!(fresh_store);
//! ```

use whisk_model::{AuthKey, EntityType, Identity, NamespaceKey, NamespaceLimits};

use crate::{
    ActivationEntry, ActivationQuery, EntityDocument, EntityQuery, EntityScope, Store, StoreError,
    StoredEntity,
};

/// Generates one `#[tokio::test]` per conformance case for an adapter.
///
/// `$fresh_store` is an async function (or closure returning a future) that
/// yields `(Store, guard)`, or `Option<(Store, guard)>` for an adapter whose
/// server may be absent (`None` makes the case return at once, after the
/// constructor has said why); the guard is dropped when the test ends.
#[macro_export]
macro_rules! store_conformance_tests {
    ($fresh_store:expr) => {
        $crate::store_conformance_tests!(@cases $fresh_store;
            entity_create_get_update,
            entity_get_missing_is_none,
            entity_id_space_is_shared_by_all_types,
            entity_update_of_missing_id_is_not_found,
            entity_delete_checks_revision,
            entity_revision_is_never_reused,
            entity_concurrent_updates_one_wins,
            entity_rejects_inconsistent_ids,
            entity_list_order_skip_limit_count,
            entity_list_scopes,
            entity_list_public_only,
            subject_create_get_list,
            subject_create_rejects_taken_names_and_uuids,
            subject_authenticate,
            subject_delete,
            subject_limits,
            subject_identity_for_namespace,
            activation_put_get_across_namespaces,
            activation_list_filters,
            activation_delete_older_than,
            activation_pending_notes_until_the_record_is_put,
            activation_pending_notes_by_owner,
            activation_pending_count_per_namespace,
            activation_minute_counters,
        );
    };
    (@cases $fresh_store:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let fresh = $crate::conformance::FreshStore::into_fresh(($fresh_store)().await);
                let Some((store, _keep_alive)) = fresh else {
                    return;
                };
                $crate::conformance::$case(store).await;
            }
        )*
    };
}

/// What a conformance constructor may return: a store with its guard, or
/// nothing when the adapter's server is not available to this test run.
pub trait FreshStore {
    type Guard;

    fn into_fresh(self) -> Option<(Store, Self::Guard)>;
}

impl<G> FreshStore for (Store, G) {
    type Guard = G;

    fn into_fresh(self) -> Option<(Store, G)> {
        Some(self)
    }
}

impl<G> FreshStore for Option<(Store, G)> {
    type Guard = G;

    fn into_fresh(self) -> Option<(Store, G)> {
        self
    }
}

/// A 64-character key made of one repeated character, so tests can tell keys apart.
pub fn test_key(uuid: &str, fill: char) -> AuthKey {
    AuthKey::new(uuid, fill.to_string().repeat(64)).expect("a 64-character key is valid")
}

/// An entity document whose JSON body mirrors its indexed columns.
pub fn test_entity(
    entity_type: EntityType,
    namespace: &str,
    name: &str,
    updated: u64,
) -> EntityDocument {
    EntityDocument {
        doc_id: format!("{namespace}/{name}"),
        entity_type,
        namespace: namespace.to_string(),
        name: name.to_string(),
        updated,
        publish: false,
        binding: false,
        document: serde_json::json!({
            "namespace": namespace,
            "name": name,
            "version": "0.0.1",
            "publish": false,
            "annotations": [],
            "updated": updated,
        }),
    }
}

/// A package document with the given sharing flags.
pub fn test_package(
    namespace: &str,
    name: &str,
    updated: u64,
    publish: bool,
    binding: bool,
) -> EntityDocument {
    let mut package = test_entity(EntityType::Package, namespace, name, updated);
    package.publish = publish;
    package.binding = binding;
    package.document["publish"] = serde_json::json!(publish);
    package.document["binding"] = if binding {
        serde_json::json!({"namespace": "elsewhere", "name": "target"})
    } else {
        serde_json::json!({})
    };
    package
}

/// An activation entry whose JSON body records its own identifying fields.
pub fn test_activation(
    namespace: &str,
    activation_id: &str,
    name: &str,
    path_name: Option<&str>,
    start: u64,
) -> ActivationEntry {
    ActivationEntry {
        namespace: namespace.to_string(),
        activation_id: activation_id.to_string(),
        name: name.to_string(),
        path_name: path_name.map(str::to_string),
        start,
        document: serde_json::json!({
            "namespace": namespace,
            "name": name,
            "activationId": activation_id,
            "start": start,
        }),
    }
}

fn doc_ids(entities: &[StoredEntity]) -> Vec<&str> {
    entities
        .iter()
        .map(|entity| entity.doc_id.as_str())
        .collect()
}

fn activation_ids(records: &[serde_json::Value]) -> Vec<&str> {
    records
        .iter()
        .map(|record| {
            record["activationId"]
                .as_str()
                .unwrap_or("<no activationId>")
        })
        .collect()
}

pub async fn entity_create_get_update(store: Store) {
    let entities = store.entities;
    let original = test_entity(EntityType::Action, "guest", "hello", 1_000);
    let first = entities
        .put(original.clone(), None)
        .await
        .expect("create succeeds");

    let stored = entities
        .get("guest/hello")
        .await
        .expect("get succeeds")
        .expect("created entity is found");
    assert_eq!(stored.revision, first);
    let (document, revision) = stored.into_document();
    assert_eq!(document, original);
    assert_eq!(revision, first);

    let mut changed = original.clone();
    changed.updated = 2_000;
    changed.document["version"] = serde_json::json!("0.0.2");
    let second = entities
        .put(changed.clone(), Some(first))
        .await
        .expect("update with the current revision succeeds");
    assert_ne!(second, first);
    assert!(second > first, "revisions grow: {first} then {second}");

    let stale = entities.put(original.clone(), Some(first)).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict(_))),
        "update with a stale revision must conflict, got {stale:?}"
    );

    let stored = entities
        .get("guest/hello")
        .await
        .expect("get succeeds")
        .expect("entity still exists");
    assert_eq!(stored.revision, second);
    assert_eq!(stored.updated, 2_000);
    assert_eq!(stored.document, changed.document);
}

pub async fn entity_get_missing_is_none(store: Store) {
    let missing = store
        .entities
        .get("guest/nothing")
        .await
        .expect("get succeeds");
    assert_eq!(missing, None);
}

pub async fn entity_id_space_is_shared_by_all_types(store: Store) {
    let entities = store.entities;
    let action = test_entity(EntityType::Action, "guest", "shared", 1);
    let revision = entities
        .put(action.clone(), None)
        .await
        .expect("create action");

    let again = entities.put(action.clone(), None).await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists(_))),
        "second create of the same action must fail, got {again:?}"
    );
    for other_type in [EntityType::Trigger, EntityType::Rule] {
        let other = test_entity(other_type, "guest", "shared", 2);
        let created = entities.put(other.clone(), None).await;
        assert!(
            matches!(created, Err(StoreError::AlreadyExists(_))),
            "a {other_type} over an action's id must fail, got {created:?}"
        );
        let updated = entities.put(other, Some(revision)).await;
        assert!(
            matches!(updated, Err(StoreError::AlreadyExists(_))),
            "updating an action's id as a {other_type} must fail, got {updated:?}"
        );
    }
    let package = test_package("guest", "shared", 3, false, false);
    let created = entities.put(package, None).await;
    assert!(
        matches!(created, Err(StoreError::AlreadyExists(_))),
        "a package over a default-package action's id must fail, got {created:?}"
    );

    let stored = entities
        .get("guest/shared")
        .await
        .expect("get succeeds")
        .expect("the action is still there");
    assert_eq!(stored.entity_type, EntityType::Action);
    assert_eq!(stored.revision, revision);

    let elsewhere = test_entity(EntityType::Trigger, "other", "shared", 4);
    entities
        .put(elsewhere, None)
        .await
        .expect("the same name in another namespace is a different id");
}

pub async fn entity_update_of_missing_id_is_not_found(store: Store) {
    let entities = store.entities;
    let created = entities
        .put(test_entity(EntityType::Rule, "guest", "present", 1), None)
        .await
        .expect("create");
    let missing = entities
        .put(
            test_entity(EntityType::Rule, "guest", "absent", 1),
            Some(created),
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "updating a missing entity must be NotFound, got {missing:?}"
    );
    assert_eq!(entities.get("guest/absent").await.expect("get"), None);
}

pub async fn entity_delete_checks_revision(store: Store) {
    let entities = store.entities;
    let document = test_entity(EntityType::Trigger, "guest", "doomed", 1);
    let first = entities.put(document.clone(), None).await.expect("create");
    let second = entities.put(document, Some(first)).await.expect("update");

    let stale = entities.delete("guest/doomed", first).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict(_))),
        "delete with a stale revision must conflict, got {stale:?}"
    );
    assert!(entities.get("guest/doomed").await.expect("get").is_some());

    entities
        .delete("guest/doomed", second)
        .await
        .expect("delete with the current revision succeeds");
    assert_eq!(entities.get("guest/doomed").await.expect("get"), None);

    let again = entities.delete("guest/doomed", second).await;
    assert!(
        matches!(again, Err(StoreError::NotFound(_))),
        "deleting a missing entity must be NotFound, got {again:?}"
    );
}

pub async fn entity_revision_is_never_reused(store: Store) {
    let entities = store.entities;
    let document = test_entity(EntityType::Action, "guest", "phoenix", 1);
    let first = entities.put(document.clone(), None).await.expect("create");
    entities
        .delete("guest/phoenix", first)
        .await
        .expect("delete");
    let reborn = entities
        .put(document.clone(), None)
        .await
        .expect("re-create");
    assert_ne!(
        reborn, first,
        "a re-created entity must get a fresh revision"
    );

    let stale = entities.put(document, Some(first)).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict(_))),
        "the previous incarnation's revision must not match, got {stale:?}"
    );
}

pub async fn entity_concurrent_updates_one_wins(store: Store) {
    let entities = store.entities;
    let document = test_entity(EntityType::Action, "guest", "contended", 1);
    let base = entities.put(document.clone(), None).await.expect("create");

    let writers: Vec<_> = (0..8u64)
        .map(|writer| {
            let entities = std::sync::Arc::clone(&entities);
            let mut attempt = document.clone();
            attempt.updated = 100 + writer;
            tokio::spawn(async move { entities.put(attempt, Some(base)).await })
        })
        .collect();
    let mut winners = Vec::new();
    for writer in writers {
        match writer.await.expect("writer task completes") {
            Ok(revision) => winners.push(revision),
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("a losing writer must see Conflict, got {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one writer of the same revision wins"
    );
    let stored = entities
        .get("guest/contended")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(Some(&stored.revision), winners.first());
}

pub async fn entity_rejects_inconsistent_ids(store: Store) {
    let mut document = test_entity(EntityType::Action, "guest", "name", 1);
    document.doc_id = "guest/other-name".to_string();
    let result = store.entities.put(document, None).await;
    assert!(
        matches!(result, Err(StoreError::InvalidInput(_))),
        "a doc id that disagrees with namespace/name must be refused, got {result:?}"
    );
    assert_eq!(
        store.entities.get("guest/other-name").await.expect("get"),
        None
    );
}

pub async fn entity_list_order_skip_limit_count(store: Store) {
    let entities = store.entities;
    // Two pairs share an `updated` value to exercise the doc-id tie break.
    for (name, updated) in [("a", 10), ("b", 30), ("c", 20), ("d", 30), ("e", 10)] {
        entities
            .put(
                test_entity(EntityType::Action, "guest", name, updated),
                None,
            )
            .await
            .expect("create");
    }
    let all = EntityQuery::new(
        EntityType::Action,
        EntityScope::Namespace("guest".to_string()),
    );
    let listed = entities.list(&all).await.expect("list");
    assert_eq!(
        doc_ids(&listed),
        ["guest/b", "guest/d", "guest/c", "guest/a", "guest/e"]
    );
    assert_eq!(entities.count(&all).await.expect("count"), 5);

    let page = EntityQuery {
        skip: 1,
        limit: Some(2),
        ..all.clone()
    };
    assert_eq!(
        doc_ids(&entities.list(&page).await.expect("list")),
        ["guest/d", "guest/c"]
    );
    assert_eq!(
        entities.count(&page).await.expect("count"),
        4,
        "count honours skip and ignores limit"
    );

    let past_end = EntityQuery {
        skip: 7,
        ..all.clone()
    };
    assert!(entities.list(&past_end).await.expect("list").is_empty());
    assert_eq!(entities.count(&past_end).await.expect("count"), 0);

    let zero = EntityQuery {
        limit: Some(0),
        ..all.clone()
    };
    assert!(entities.list(&zero).await.expect("list").is_empty());

    // An update moves the entity to the front.
    let stored = entities.get("guest/e").await.expect("get").expect("exists");
    let (mut document, revision) = stored.into_document();
    document.updated = 40;
    entities
        .put(document, Some(revision))
        .await
        .expect("update");
    let listed = entities.list(&all).await.expect("list");
    assert_eq!(
        listed.first().map(|entity| entity.doc_id.as_str()),
        Some("guest/e")
    );
}

pub async fn entity_list_scopes(store: Store) {
    let entities = store.entities;
    let documents = [
        test_entity(EntityType::Action, "guest", "top", 1),
        test_entity(EntityType::Action, "guest/utils", "inner", 2),
        test_entity(EntityType::Action, "guest/utils2", "sibling", 3),
        test_entity(EntityType::Action, "guest2", "neighbour", 4),
        test_entity(EntityType::Trigger, "guest", "trigger", 5),
        test_package("guest", "utils", 6, false, false),
        test_package("guest", "utils2", 7, false, false),
    ];
    for document in documents {
        entities.put(document, None).await.expect("create");
    }
    let scoped = |scope: EntityScope| EntityQuery::new(EntityType::Action, scope);

    let namespace = scoped(EntityScope::Namespace("guest".to_string()));
    let listed = entities.list(&namespace).await.expect("list");
    assert_eq!(
        doc_ids(&listed),
        ["guest/utils2/sibling", "guest/utils/inner", "guest/top"]
    );
    assert_eq!(entities.count(&namespace).await.expect("count"), 3);
    let inner = &listed[1];
    assert_eq!(inner.namespace, "guest/utils");
    assert_eq!(inner.name, "inner");
    assert_eq!(inner.root_namespace(), "guest");
    assert_eq!(inner.entity_type, EntityType::Action);

    let default_package = scoped(EntityScope::Exact("guest".to_string()));
    assert_eq!(
        doc_ids(&entities.list(&default_package).await.expect("list")),
        ["guest/top"]
    );
    assert_eq!(entities.count(&default_package).await.expect("count"), 1);

    let package = scoped(EntityScope::Exact("guest/utils".to_string()));
    assert_eq!(
        doc_ids(&entities.list(&package).await.expect("list")),
        ["guest/utils/inner"]
    );
    assert_eq!(entities.count(&package).await.expect("count"), 1);

    let packages = EntityQuery::new(
        EntityType::Package,
        EntityScope::Namespace("guest".to_string()),
    );
    assert_eq!(
        doc_ids(&entities.list(&packages).await.expect("list")),
        ["guest/utils2", "guest/utils"]
    );
    let nobody = scoped(EntityScope::Namespace("gue".to_string()));
    assert_eq!(entities.count(&nobody).await.expect("count"), 0);
}

pub async fn entity_list_public_only(store: Store) {
    let entities = store.entities;
    for package in [
        test_package("guest", "shared", 1, true, false),
        test_package("guest", "private", 2, false, false),
        test_package("guest", "shared-binding", 3, true, true),
        test_package("guest", "private-binding", 4, false, true),
        test_package("guest", "also-shared", 5, true, false),
    ] {
        entities.put(package, None).await.expect("create");
    }
    for scope in [
        EntityScope::Namespace("guest".to_string()),
        EntityScope::Exact("guest".to_string()),
    ] {
        let everything = EntityQuery::new(EntityType::Package, scope);
        assert_eq!(entities.count(&everything).await.expect("count"), 5);
        let public = EntityQuery {
            public_only: true,
            ..everything
        };
        let listed = entities.list(&public).await.expect("list");
        assert_eq!(doc_ids(&listed), ["guest/also-shared", "guest/shared"]);
        assert!(
            listed
                .iter()
                .all(|package| package.publish && !package.binding)
        );
        assert_eq!(entities.count(&public).await.expect("count"), 2);
        let paged = EntityQuery {
            skip: 1,
            limit: Some(1),
            ..public
        };
        assert_eq!(
            doc_ids(&entities.list(&paged).await.expect("list")),
            ["guest/shared"]
        );
        assert_eq!(entities.count(&paged).await.expect("count"), 1);
    }
}

pub async fn subject_create_get_list(store: Store) {
    let subjects = store.subjects;
    subjects
        .create_subject("zed-user", "zed", &test_key("uuid-zed", 'z'))
        .await
        .expect("create zed");
    subjects
        .create_subject("amy-user", "amy", &test_key("uuid-amy", 'a'))
        .await
        .expect("create amy");
    subjects
        .add_namespace("amy-user", "amy-extra", &test_key("uuid-amy-2", 'b'))
        .await
        .expect("add namespace");

    let amy = subjects
        .get_subject("amy-user")
        .await
        .expect("get")
        .expect("amy exists");
    assert_eq!(amy.subject, "amy-user");
    assert!(!amy.blocked);
    assert_eq!(
        amy.namespaces,
        [
            NamespaceKey {
                name: "amy".to_string(),
                uuid: "uuid-amy".to_string()
            },
            NamespaceKey {
                name: "amy-extra".to_string(),
                uuid: "uuid-amy-2".to_string()
            },
        ]
    );
    assert_eq!(subjects.get_subject("nobody").await.expect("get"), None);

    let listed = subjects.list_subjects().await.expect("list");
    let names: Vec<&str> = listed
        .iter()
        .map(|subject| subject.subject.as_str())
        .collect();
    assert_eq!(names, ["amy-user", "zed-user"]);
    assert_eq!(listed[0], amy);
    assert_eq!(listed[1].namespaces.len(), 1);

    let missing = subjects
        .add_namespace("nobody", "nobody-ns", &test_key("uuid-nobody", 'n'))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "adding a namespace to a missing subject must be NotFound, got {missing:?}"
    );
}

pub async fn subject_create_rejects_taken_names_and_uuids(store: Store) {
    let subjects = store.subjects;
    subjects
        .create_subject("first-user", "first", &test_key("uuid-1", 'a'))
        .await
        .expect("create");
    let attempts = [
        ("first-user", "fresh-ns", "uuid-fresh"),
        ("other-user", "first", "uuid-fresh"),
        ("other-user", "fresh-ns", "uuid-1"),
    ];
    for (subject_name, namespace, uuid) in attempts {
        let result = subjects
            .create_subject(subject_name, namespace, &test_key(uuid, 'b'))
            .await;
        assert!(
            matches!(result, Err(StoreError::AlreadyExists(_))),
            "create ({subject_name}, {namespace}, {uuid}) must fail, got {result:?}"
        );
    }
    assert_eq!(
        subjects.get_subject("other-user").await.expect("get"),
        None,
        "a failed create leaves nothing behind"
    );
    for (namespace, uuid) in [("first", "uuid-fresh"), ("fresh-ns", "uuid-1")] {
        let result = subjects
            .add_namespace("first-user", namespace, &test_key(uuid, 'c'))
            .await;
        assert!(
            matches!(result, Err(StoreError::AlreadyExists(_))),
            "add ({namespace}, {uuid}) must fail, got {result:?}"
        );
    }
    let first = subjects
        .get_subject("first-user")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(first.namespaces.len(), 1);
}

pub async fn subject_authenticate(store: Store) {
    let subjects = store.subjects;
    let key = test_key("uuid-guest", 'g');
    let second_key = test_key("uuid-guest-2", 'h');
    subjects
        .create_subject("guest-user", "guest", &key)
        .await
        .expect("create");
    subjects
        .add_namespace("guest-user", "guest-two", &second_key)
        .await
        .expect("add namespace");

    let expected = Identity {
        subject: "guest-user".to_string(),
        namespace: "guest".to_string(),
        uuid: "uuid-guest".to_string(),
        limits: NamespaceLimits::default(),
    };
    assert_eq!(
        subjects.authenticate(&key).await.expect("authenticate"),
        Some(expected.clone())
    );
    let second = subjects
        .authenticate(&second_key)
        .await
        .expect("authenticate")
        .expect("the second namespace's key works");
    assert_eq!(second.namespace, "guest-two");
    assert_eq!(second.uuid, "uuid-guest-2");

    let wrong_key = test_key("uuid-guest", 'x');
    assert_eq!(
        subjects
            .authenticate(&wrong_key)
            .await
            .expect("authenticate"),
        None
    );
    let crossed = AuthKey::new("uuid-guest", second_key.key.clone()).expect("valid key");
    assert_eq!(
        subjects.authenticate(&crossed).await.expect("authenticate"),
        None,
        "another namespace's key must not work for this uuid"
    );
    let unknown = test_key("uuid-unknown", 'g');
    assert_eq!(
        subjects.authenticate(&unknown).await.expect("authenticate"),
        None
    );

    subjects
        .set_blocked("guest-user", true)
        .await
        .expect("block");
    assert_eq!(
        subjects.authenticate(&key).await.expect("authenticate"),
        None
    );
    assert_eq!(
        subjects
            .authenticate(&second_key)
            .await
            .expect("authenticate"),
        None
    );
    let blocked = subjects
        .get_subject("guest-user")
        .await
        .expect("get")
        .expect("still exists");
    assert!(blocked.blocked);

    subjects
        .set_blocked("guest-user", false)
        .await
        .expect("unblock");
    assert_eq!(
        subjects.authenticate(&key).await.expect("authenticate"),
        Some(expected)
    );

    let missing = subjects.set_blocked("nobody", true).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "blocking a missing subject must be NotFound, got {missing:?}"
    );
}

pub async fn subject_delete(store: Store) {
    let subjects = store.subjects;
    let key = test_key("uuid-gone", 'd');
    subjects
        .create_subject("gone-user", "gone", &key)
        .await
        .expect("create");
    subjects
        .create_subject("kept-user", "kept", &test_key("uuid-kept", 'k'))
        .await
        .expect("create");
    subjects.delete_subject("gone-user").await.expect("delete");

    assert_eq!(subjects.get_subject("gone-user").await.expect("get"), None);
    assert_eq!(
        subjects.authenticate(&key).await.expect("authenticate"),
        None
    );
    assert_eq!(
        subjects
            .identity_for_namespace("gone")
            .await
            .expect("identity"),
        None
    );
    assert_eq!(subjects.list_subjects().await.expect("list").len(), 1);

    subjects
        .create_subject("new-owner", "gone", &key)
        .await
        .expect("the namespace and uuid are free again");

    let again = subjects.delete_subject("gone-user").await;
    assert!(
        matches!(again, Err(StoreError::NotFound(_))),
        "deleting a missing subject must be NotFound, got {again:?}"
    );
}

pub async fn subject_limits(store: Store) {
    let subjects = store.subjects;
    let key = test_key("uuid-limited", 'l');
    subjects
        .create_subject("limited-user", "limited", &key)
        .await
        .expect("create");
    assert_eq!(subjects.get_limits("limited").await.expect("get"), None);

    let limits = NamespaceLimits {
        invocations_per_minute: Some(7),
        concurrent_invocations: Some(3),
        allowed_kinds: Some(vec!["nodejs:20".to_string()]),
        store_activations: Some(false),
        max_payload_size: Some("2048 B".to_string()),
        ..NamespaceLimits::default()
    };
    let unknown = subjects.set_limits("no-such-namespace", &limits).await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "limits of an unowned namespace must be NotFound, got {unknown:?}"
    );

    subjects.set_limits("limited", &limits).await.expect("set");
    assert_eq!(
        subjects.get_limits("limited").await.expect("get"),
        Some(limits.clone())
    );
    let identity = subjects
        .authenticate(&key)
        .await
        .expect("authenticate")
        .expect("identity");
    assert_eq!(identity.limits, limits);
    let by_namespace = subjects
        .identity_for_namespace("limited")
        .await
        .expect("identity")
        .expect("identity");
    assert_eq!(by_namespace.limits, limits);

    let replaced = NamespaceLimits {
        fires_per_minute: Some(2),
        ..NamespaceLimits::default()
    };
    subjects
        .set_limits("limited", &replaced)
        .await
        .expect("replace");
    assert_eq!(
        subjects.get_limits("limited").await.expect("get"),
        Some(replaced.clone()),
        "set replaces the overrides wholesale"
    );

    subjects.delete_limits("limited").await.expect("delete");
    assert_eq!(subjects.get_limits("limited").await.expect("get"), None);
    let identity = subjects
        .authenticate(&key)
        .await
        .expect("authenticate")
        .expect("identity");
    assert_eq!(identity.limits, NamespaceLimits::default());
    let again = subjects.delete_limits("limited").await;
    assert!(
        matches!(again, Err(StoreError::NotFound(_))),
        "deleting absent limits must be NotFound, got {again:?}"
    );

    subjects
        .set_limits("limited", &replaced)
        .await
        .expect("set");
    subjects
        .delete_subject("limited-user")
        .await
        .expect("delete subject");
    subjects
        .create_subject("limited-user", "limited", &key)
        .await
        .expect("re-create");
    assert_eq!(
        subjects.get_limits("limited").await.expect("get"),
        None,
        "a deleted subject's overrides do not outlive it"
    );
}

pub async fn subject_identity_for_namespace(store: Store) {
    let subjects = store.subjects;
    subjects
        .create_subject("owner-user", "owned", &test_key("uuid-owned", 'o'))
        .await
        .expect("create");
    assert_eq!(
        subjects
            .identity_for_namespace("owned")
            .await
            .expect("identity"),
        Some(Identity {
            subject: "owner-user".to_string(),
            namespace: "owned".to_string(),
            uuid: "uuid-owned".to_string(),
            limits: NamespaceLimits::default(),
        })
    );
    assert_eq!(
        subjects
            .identity_for_namespace("unowned")
            .await
            .expect("identity"),
        None
    );
    subjects
        .set_blocked("owner-user", true)
        .await
        .expect("block");
    assert_eq!(
        subjects
            .identity_for_namespace("owned")
            .await
            .expect("identity"),
        None
    );
}

pub async fn activation_put_get_across_namespaces(store: Store) {
    let activations = store.activations;
    let id = "0123456789abcdef0123456789abcdef";
    let entry = test_activation("alice", id, "hello", None, 100);
    activations.put(entry.clone()).await.expect("put");

    assert_eq!(
        activations.get("alice", id).await.expect("get"),
        Some(entry.document.clone())
    );
    assert_eq!(
        activations.get("bob", id).await.expect("get"),
        None,
        "another namespace cannot read the record"
    );
    assert_eq!(
        activations
            .get("alice", "ffffffffffffffffffffffffffffffff")
            .await
            .expect("get"),
        None
    );

    let duplicate = activations.put(entry).await;
    assert!(
        matches!(duplicate, Err(StoreError::AlreadyExists(_))),
        "a second record with the same id must fail, got {duplicate:?}"
    );
    let bobs = test_activation("bob", id, "hello", None, 200);
    activations
        .put(bobs.clone())
        .await
        .expect("ids are per namespace");
    assert_eq!(
        activations.get("bob", id).await.expect("get"),
        Some(bobs.document)
    );
}

pub async fn activation_list_filters(store: Store) {
    let activations = store.activations;
    let entries = [
        test_activation("alice", "a1", "hello", None, 100),
        test_activation("alice", "a2", "hello", Some("utils/hello"), 200),
        test_activation("alice", "a3", "world", Some("utils/world"), 300),
        test_activation("alice", "a4", "hello", Some("tools/hello"), 300),
        test_activation("alice", "a5", "tick", None, 500),
        test_activation("bob", "b1", "hello", None, 400),
    ];
    for entry in entries {
        activations.put(entry).await.expect("put");
    }
    let all = ActivationQuery::new("alice");
    assert_eq!(
        activation_ids(&activations.list(&all).await.expect("list")),
        ["a5", "a3", "a4", "a2", "a1"],
        "newest first by start, ties by id"
    );
    assert_eq!(activations.count(&all).await.expect("count"), 5);

    let bare = ActivationQuery {
        name: Some("hello".to_string()),
        ..all.clone()
    };
    assert_eq!(
        activation_ids(&activations.list(&bare).await.expect("list")),
        ["a4", "a2", "a1"]
    );
    assert_eq!(activations.count(&bare).await.expect("count"), 3);

    let packaged = ActivationQuery {
        name: Some("utils/hello".to_string()),
        ..all.clone()
    };
    assert_eq!(
        activation_ids(&activations.list(&packaged).await.expect("list")),
        ["a2"]
    );
    assert_eq!(activations.count(&packaged).await.expect("count"), 1);

    let window = ActivationQuery {
        since: Some(200),
        upto: Some(300),
        ..all.clone()
    };
    assert_eq!(
        activation_ids(&activations.list(&window).await.expect("list")),
        ["a3", "a4", "a2"],
        "since and upto are inclusive"
    );
    assert_eq!(activations.count(&window).await.expect("count"), 3);

    let since_only = ActivationQuery {
        since: Some(300),
        ..all.clone()
    };
    assert_eq!(activations.count(&since_only).await.expect("count"), 3);
    let upto_only = ActivationQuery {
        upto: Some(100),
        ..all.clone()
    };
    assert_eq!(
        activation_ids(&activations.list(&upto_only).await.expect("list")),
        ["a1"]
    );

    let page = ActivationQuery {
        skip: 1,
        limit: Some(2),
        ..all.clone()
    };
    assert_eq!(
        activation_ids(&activations.list(&page).await.expect("list")),
        ["a3", "a4"]
    );
    assert_eq!(
        activations.count(&page).await.expect("count"),
        4,
        "count honours skip and ignores limit"
    );

    let combined = ActivationQuery {
        name: Some("hello".to_string()),
        since: Some(150),
        skip: 1,
        limit: Some(5),
        ..all.clone()
    };
    assert_eq!(
        activation_ids(&activations.list(&combined).await.expect("list")),
        ["a2"]
    );
    assert_eq!(activations.count(&combined).await.expect("count"), 1);

    let bob = ActivationQuery::new("bob");
    assert_eq!(
        activation_ids(&activations.list(&bob).await.expect("list")),
        ["b1"]
    );
    let nobody = ActivationQuery::new("carol");
    assert_eq!(activations.count(&nobody).await.expect("count"), 0);
}

pub async fn activation_delete_older_than(store: Store) {
    let activations = store.activations;
    for (namespace, id, start) in [
        ("alice", "old", 100),
        ("bob", "old", 150),
        ("alice", "edge", 200),
        ("alice", "new", 300),
    ] {
        activations
            .put(test_activation(namespace, id, "hello", None, start))
            .await
            .expect("put");
    }
    assert_eq!(activations.delete_older_than(200).await.expect("delete"), 2);
    assert_eq!(
        activation_ids(
            &activations
                .list(&ActivationQuery::new("alice"))
                .await
                .expect("list")
        ),
        ["new", "edge"],
        "records starting exactly at the cutoff are kept"
    );
    assert_eq!(activations.get("bob", "old").await.expect("get"), None);
    assert_eq!(activations.delete_older_than(200).await.expect("delete"), 0);
}

pub async fn activation_pending_notes_by_owner(store: Store) {
    let activations = store.activations;
    let mine = test_activation("alice", "o1", "hello", None, 100);
    let theirs = test_activation("alice", "o2", "hello", None, 50);
    let untagged = test_activation("bob", "o3", "world", None, 200);
    let mine_later = test_activation("bob", "o4", "world", None, 300);
    activations
        .put_pending_owned(mine.clone(), "controller0")
        .await
        .expect("put_pending_owned");
    activations
        .put_pending_owned(theirs.clone(), "controller1")
        .await
        .expect("put_pending_owned");
    activations
        .put_pending(untagged.clone())
        .await
        .expect("put_pending");
    activations
        .put_pending_owned(mine_later.clone(), "controller0")
        .await
        .expect("put_pending_owned");
    let duplicate = activations
        .put_pending_owned(theirs.clone(), "controller0")
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::AlreadyExists(_))),
        "an id noted by another owner is still taken, got {duplicate:?}"
    );
    assert_eq!(
        activations
            .pending_owned("controller0")
            .await
            .expect("pending_owned"),
        vec![mine.clone(), mine_later.clone()],
        "only the owner's notes, oldest first"
    );
    assert_eq!(
        activations.pending_owned("").await.expect("pending_owned"),
        vec![untagged.clone()],
        "untagged notes belong to the empty owner"
    );
    assert_eq!(
        activations.pending().await.expect("pending"),
        vec![theirs.clone(), mine.clone(), untagged, mine_later.clone()],
        "pending lists every owner's notes"
    );
    activations.put(mine).await.expect("put");
    assert_eq!(
        activations
            .pending_owned("controller0")
            .await
            .expect("pending_owned"),
        vec![mine_later],
        "a record clears its owned note too"
    );
    assert!(
        activations
            .pending_owned("controller9")
            .await
            .expect("pending_owned")
            .is_empty()
    );
}

pub async fn activation_pending_notes_until_the_record_is_put(store: Store) {
    let activations = store.activations;
    assert!(activations.pending().await.expect("pending").is_empty());
    let first = test_activation("alice", "p1", "hello", Some("utils/hello"), 300);
    let second = test_activation("alice", "p2", "hello", None, 100);
    let dropped = test_activation("bob", "p3", "world", None, 200);
    for entry in [&first, &second, &dropped] {
        activations
            .put_pending(entry.clone())
            .await
            .expect("put_pending");
    }
    let duplicate = activations.put_pending(first.clone()).await;
    assert!(
        matches!(duplicate, Err(StoreError::AlreadyExists(_))),
        "a second note with the same id must fail, got {duplicate:?}"
    );
    assert_eq!(
        activations.pending().await.expect("pending"),
        vec![second.clone(), dropped.clone(), first.clone()],
        "oldest first, every column kept"
    );
    assert_eq!(
        activations.get("alice", "p1").await.expect("get"),
        None,
        "a note is not a record"
    );

    activations.put(first.clone()).await.expect("put");
    activations
        .remove_pending("bob", "p3")
        .await
        .expect("remove_pending");
    activations
        .remove_pending("bob", "never-noted")
        .await
        .expect("removing a missing note is fine");
    assert_eq!(
        activations.pending().await.expect("pending"),
        vec![second],
        "the record cleared its note"
    );
    let after_record = activations.put_pending(first).await;
    assert!(
        matches!(after_record, Err(StoreError::AlreadyExists(_))),
        "no note for an activation that already has its record, got {after_record:?}"
    );
}

pub async fn activation_pending_count_per_namespace(store: Store) {
    let activations = store.activations;
    assert_eq!(activations.pending_count("alice").await.expect("count"), 0);
    for (namespace, id, owner) in [
        ("alice", "c1", "controller0"),
        ("alice", "c2", "controller1"),
        ("bob", "c3", "controller0"),
    ] {
        activations
            .put_pending_owned(test_activation(namespace, id, "hello", None, 100), owner)
            .await
            .expect("put_pending_owned");
    }
    assert_eq!(
        activations.pending_count("alice").await.expect("count"),
        2,
        "every owner's notes count"
    );
    activations
        .put(test_activation("alice", "c1", "hello", None, 100))
        .await
        .expect("put");
    assert_eq!(
        activations.pending_count("alice").await.expect("count"),
        1,
        "a record closes its note"
    );
    assert_eq!(activations.pending_count("bob").await.expect("count"), 1);
    assert_eq!(activations.pending_count("carol").await.expect("count"), 0);
}

pub async fn activation_minute_counters(store: Store) {
    let activations = store.activations;
    let minute = 28_616_667;
    for expected in 1..=3 {
        assert_eq!(
            activations
                .count_in_minute("invocations/alice", minute)
                .await
                .expect("count_in_minute"),
            expected
        );
    }
    assert_eq!(
        activations
            .count_in_minute("fires/alice", minute)
            .await
            .expect("count_in_minute"),
        1,
        "each key counts on its own"
    );
    assert_eq!(
        activations
            .count_in_minute("invocations/alice", minute + 1)
            .await
            .expect("count_in_minute"),
        1,
        "a new minute starts from zero"
    );

    // Concurrent bumps never lose a count: each caller sees a different value.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let activations = std::sync::Arc::clone(&activations);
        tasks.push(tokio::spawn(async move {
            activations.count_in_minute("invocations/bob", minute).await
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.expect("join").expect("count_in_minute"));
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<u64>>());
}
