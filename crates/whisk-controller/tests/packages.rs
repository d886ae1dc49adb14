//! The packages API (packages and bindings) over a real SQLite store.

#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{GUEST, OTHER, TestApp};
use serde_json::{Value, json};

const CODE: &str = "function main(){return {}}";

async fn put_ok(app: &TestApp, path: &str, credentials: &str, body: Value) -> Value {
    let response = app.put(path, credentials, body).await;
    assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text);
    response.json()
}

async fn action(app: &TestApp, path: &str, credentials: &str, annotations: Value) {
    put_ok(
        app,
        path,
        credentials,
        json!({"exec": {"kind": "nodejs:20", "code": CODE}, "annotations": annotations}),
    )
    .await;
}

fn names_of(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn create_answers_the_package_and_get_adds_actions_and_feeds() {
    let app = TestApp::new().await;
    let created = put_ok(
        &app,
        "/api/v1/namespaces/_/packages/utils",
        GUEST,
        json!({"publish": true, "parameters": [{"key": "a", "value": 1}],
               "annotations": [{"key": "description", "value": "tools"}],
               "namespace": "ignored", "name": "ignored"}),
    )
    .await;
    assert_eq!(created["namespace"], "guest");
    assert_eq!(created["name"], "utils");
    assert_eq!(created["binding"], json!({}));
    assert_eq!(created["version"], "0.0.1");
    assert_eq!(created["publish"], true);
    assert_eq!(created["parameters"], json!([{"key": "a", "value": 1}]));
    assert!(created.get("actions").is_none());

    action(
        &app,
        "/api/v1/namespaces/_/actions/utils/split",
        GUEST,
        json!([]),
    )
    .await;
    action(
        &app,
        "/api/v1/namespaces/_/actions/utils/alarm",
        GUEST,
        json!([{"key": "feed", "value": true}]),
    )
    .await;

    let read = app
        .get("/api/v1/namespaces/guest/packages/utils", GUEST)
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let read = read.json();
    assert_eq!(names_of(&read["actions"]), vec!["split"]);
    assert_eq!(names_of(&read["feeds"]), vec!["alarm"]);
    assert_eq!(read["actions"][0]["version"], "0.0.1");
    assert!(read["actions"][0].get("exec").is_none());
    assert_eq!(
        read["feeds"][0]["annotations"],
        json!([{"key": "feed", "value": true},
               {"key": "provide-api-key", "value": false},
               {"key": "exec", "value": "nodejs:20"}])
    );
}

#[tokio::test]
async fn put_without_overwrite_is_409_and_overwrite_replaces_wholesale() {
    let app = TestApp::new().await;
    let path = "/api/v1/namespaces/_/packages/p";
    put_ok(
        &app,
        path,
        GUEST,
        json!({"parameters": [{"key": "a", "value": 1}, {"key": "b", "value": 2}],
               "annotations": [{"key": "x", "value": 1}], "publish": true}),
    )
    .await;

    let again = app.put(path, GUEST, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error(), "resource already exists");

    let updated = put_ok(
        &app,
        &format!("{path}?overwrite=true"),
        GUEST,
        json!({"parameters": [{"key": "c", "value": 3}]}),
    )
    .await;
    assert_eq!(updated["version"], "0.0.2");
    assert_eq!(updated["parameters"], json!([{"key": "c", "value": 3}]));
    assert_eq!(updated["annotations"], json!([{"key": "x", "value": 1}]));
    assert_eq!(updated["publish"], true);

    let replaced = put_ok(
        &app,
        &format!("{path}?overwrite=true"),
        GUEST,
        json!({"annotations": [], "publish": false}),
    )
    .await;
    assert_eq!(replaced["version"], "0.0.3");
    assert_eq!(replaced["annotations"], json!([]));
    assert_eq!(replaced["parameters"], json!([{"key": "c", "value": 3}]));
    assert_eq!(replaced["publish"], false);

    let created = put_ok(
        &app,
        "/api/v1/namespaces/_/packages/fresh?overwrite=true",
        GUEST,
        json!({}),
    )
    .await;
    assert_eq!(created["version"], "0.0.1");
}

#[tokio::test]
async fn default_is_reserved_and_names_are_validated() {
    let app = TestApp::new().await;
    let reserved = app
        .put("/api/v1/namespaces/_/packages/default", GUEST, json!({}))
        .await;
    assert_eq!(reserved.status, StatusCode::BAD_REQUEST);
    assert_eq!(reserved.error(), "Package name 'default' is reserved.");

    let illegal = app
        .put("/api/v1/namespaces/_/packages/bad!", GUEST, json!({}))
        .await;
    assert_eq!(illegal.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        illegal.error(),
        "The name of the entity contains illegal characters."
    );

    let foreign = app
        .put(
            "/api/v1/namespaces/guest/packages/default",
            OTHER,
            json!({}),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_name_held_by_another_collection_is_409() {
    let app = TestApp::new().await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/triggers/thing",
        GUEST,
        json!({}),
    )
    .await;
    for response in [
        app.get("/api/v1/namespaces/_/packages/thing", GUEST).await,
        app.put(
            "/api/v1/namespaces/_/packages/thing?overwrite=true",
            GUEST,
            json!({}),
        )
        .await,
        app.delete("/api/v1/namespaces/_/packages/thing", GUEST)
            .await,
    ] {
        assert_eq!(response.status, StatusCode::CONFLICT);
        assert_eq!(
            response.error(),
            "Resource by this name exists but is not in this collection."
        );
    }
}

#[tokio::test]
async fn bindings_get_the_binding_annotation_and_show_the_bound_contents() {
    let app = TestApp::new().await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/utils",
        GUEST,
        json!({"parameters": [{"key": "a", "value": 1}, {"key": "b", "value": 1}]}),
    )
    .await;
    action(
        &app,
        "/api/v1/namespaces/_/actions/utils/split",
        GUEST,
        json!([]),
    )
    .await;

    let binding = put_ok(
        &app,
        "/api/v1/namespaces/_/packages/mine",
        GUEST,
        json!({"binding": {"namespace": "_", "name": "utils"},
               "parameters": [{"key": "b", "value": 2}],
               "annotations": [{"key": "binding", "value": "forged"}, {"key": "d", "value": 1}]}),
    )
    .await;
    assert_eq!(
        binding["binding"],
        json!({"namespace": "guest", "name": "utils"})
    );
    assert_eq!(
        binding["annotations"],
        json!([{"key": "d", "value": 1},
               {"key": "binding", "value": {"namespace": "guest", "name": "utils"}}])
    );
    assert_eq!(binding["parameters"], json!([{"key": "b", "value": 2}]));

    let read = app.get("/api/v1/namespaces/_/packages/mine", GUEST).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    let read = read.json();
    assert_eq!(read["name"], "mine");
    assert_eq!(read["binding"], binding["binding"]);
    assert_eq!(
        read["parameters"],
        json!([{"key": "a", "value": 1}, {"key": "b", "value": 2}])
    );
    assert_eq!(names_of(&read["actions"]), vec!["split"]);

    let through = app
        .get("/api/v1/namespaces/_/actions/mine/split", GUEST)
        .await;
    assert_eq!(through.status, StatusCode::OK, "{}", through.text);
    assert_eq!(through.json()["namespace"], "guest/utils");
}

#[tokio::test]
async fn binding_targets_are_checked_with_exact_messages() {
    let app = TestApp::new().await;
    let bind = |name: &'static str, namespace: &'static str, target: &'static str| {
        let app = &app;
        async move {
            app.put(
                &format!("/api/v1/namespaces/_/packages/{name}"),
                GUEST,
                json!({"binding": {"namespace": namespace, "name": target}}),
            )
            .await
        }
    };

    let missing = bind("b1", "_", "nothing").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        missing.error(),
        "Binding references a package that does not exist."
    );

    put_ok(&app, "/api/v1/namespaces/_/triggers/t", GUEST, json!({})).await;
    let not_a_package = bind("b2", "guest", "t").await;
    assert_eq!(not_a_package.status, StatusCode::CONFLICT);
    assert_eq!(
        not_a_package.error(),
        "Cannot bind to a resource that is not a package."
    );

    put_ok(&app, "/api/v1/namespaces/_/packages/real", GUEST, json!({})).await;
    assert_eq!(bind("b3", "_", "real").await.status, StatusCode::OK);
    let to_binding = bind("b4", "_", "b3").await;
    assert_eq!(to_binding.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        to_binding.error(),
        "Cannot bind to another package binding."
    );

    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/private",
        OTHER,
        json!({}),
    )
    .await;
    let private = bind("b5", "other", "private").await;
    assert_eq!(private.status, StatusCode::FORBIDDEN);
    assert_eq!(
        private.error(),
        "The supplied authentication is not authorized to access 'other/private'."
    );
    let foreign_missing = bind("b6", "other", "nothing").await;
    assert_eq!(foreign_missing.status, StatusCode::FORBIDDEN);

    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/shared",
        OTHER,
        json!({"publish": true}),
    )
    .await;
    assert_eq!(bind("b7", "other", "shared").await.status, StatusCode::OK);

    for name in ["b1", "b2", "b4", "b5", "b6"] {
        let response = app
            .get(&format!("/api/v1/namespaces/_/packages/{name}"), GUEST)
            .await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{name} was stored");
    }
}

#[tokio::test]
async fn a_package_cannot_become_a_binding_but_a_binding_can_be_repointed() {
    let app = TestApp::new().await;
    put_ok(&app, "/api/v1/namespaces/_/packages/one", GUEST, json!({})).await;
    put_ok(&app, "/api/v1/namespaces/_/packages/two", GUEST, json!({})).await;

    let convert = app
        .put(
            "/api/v1/namespaces/_/packages/one?overwrite=true",
            GUEST,
            json!({"binding": {"namespace": "_", "name": "two"}}),
        )
        .await;
    assert_eq!(convert.status, StatusCode::CONFLICT);
    assert_eq!(
        convert.error(),
        "Resource is a package and cannot be converted into a binding."
    );

    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/b",
        GUEST,
        json!({"binding": {"namespace": "_", "name": "one"}}),
    )
    .await;
    let repointed = put_ok(
        &app,
        "/api/v1/namespaces/_/packages/b?overwrite=true",
        GUEST,
        json!({"binding": {"namespace": "guest", "name": "two"}}),
    )
    .await;
    assert_eq!(repointed["binding"]["name"], "two");
    assert_eq!(repointed["version"], "0.0.2");
    let kept = put_ok(
        &app,
        "/api/v1/namespaces/_/packages/b?overwrite=true",
        GUEST,
        json!({"publish": true}),
    )
    .await;
    assert_eq!(kept["binding"]["name"], "two");
}

#[tokio::test]
async fn delete_refuses_non_empty_packages_unless_forced() {
    let app = TestApp::new().await;
    put_ok(&app, "/api/v1/namespaces/_/packages/p", GUEST, json!({})).await;
    action(&app, "/api/v1/namespaces/_/actions/p/a", GUEST, json!([])).await;

    let one = app.delete("/api/v1/namespaces/_/packages/p", GUEST).await;
    assert_eq!(one.status, StatusCode::CONFLICT);
    assert_eq!(
        one.error(),
        "Package not empty (contains 1 entity). Set force param or delete package contents."
    );
    action(&app, "/api/v1/namespaces/_/actions/p/b", GUEST, json!([])).await;
    let two = app.delete("/api/v1/namespaces/_/packages/p", GUEST).await;
    assert_eq!(
        two.error(),
        "Package not empty (contains 2 entities). Set force param or delete package contents."
    );

    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/bound",
        GUEST,
        json!({"binding": {"namespace": "_", "name": "p"}}),
    )
    .await;
    let binding = app
        .delete("/api/v1/namespaces/_/packages/bound", GUEST)
        .await;
    assert_eq!(binding.status, StatusCode::OK);
    assert_eq!(binding.json()["binding"]["name"], "p");

    let forced = app
        .delete("/api/v1/namespaces/_/packages/p?force=true", GUEST)
        .await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.text);
    assert_eq!(forced.json()["name"], "p");
    assert_eq!(
        app.get("/api/v1/namespaces/_/actions/p/a", GUEST)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let actions = app.get("/api/v1/namespaces/_/actions", GUEST).await;
    assert_eq!(actions.json(), json!([]));
    let gone = app.delete("/api/v1/namespaces/_/packages/p", GUEST).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error(), "The requested resource does not exist.");
}

#[tokio::test]
async fn cross_namespace_reads_see_only_public_packages() {
    let app = TestApp::new().await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/public",
        GUEST,
        json!({"publish": true}),
    )
    .await;
    action(
        &app,
        "/api/v1/namespaces/_/actions/public/a",
        GUEST,
        json!([]),
    )
    .await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/private",
        GUEST,
        json!({}),
    )
    .await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/bound",
        GUEST,
        json!({"binding": {"namespace": "_", "name": "public"}, "publish": true}),
    )
    .await;

    let public = app
        .get("/api/v1/namespaces/guest/packages/public", OTHER)
        .await;
    assert_eq!(public.status, StatusCode::OK);
    assert_eq!(names_of(&public.json()["actions"]), vec!["a"]);

    for name in ["private", "bound", "missing"] {
        let response = app
            .get(&format!("/api/v1/namespaces/guest/packages/{name}"), OTHER)
            .await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{name}");
        assert_eq!(
            response.error(),
            format!("The supplied authentication is not authorized to access 'guest/{name}'.")
        );
    }
    let missing_own = app
        .get("/api/v1/namespaces/_/packages/missing", GUEST)
        .await;
    assert_eq!(missing_own.status, StatusCode::NOT_FOUND);

    let foreign_list = app.get("/api/v1/namespaces/guest/packages", OTHER).await;
    assert_eq!(foreign_list.status, StatusCode::OK);
    assert_eq!(names_of(&foreign_list.json()), vec!["public"]);
    let foreign_count = app
        .get("/api/v1/namespaces/guest/packages?count=true", OTHER)
        .await;
    assert_eq!(foreign_count.json(), json!({"packages": 1}));

    let own_list = app.get("/api/v1/namespaces/_/packages", GUEST).await;
    assert_eq!(
        names_of(&own_list.json()),
        vec!["bound", "private", "public"]
    );

    for response in [
        app.put(
            "/api/v1/namespaces/guest/packages/public?overwrite=true",
            OTHER,
            json!({}),
        )
        .await,
        app.delete("/api/v1/namespaces/guest/packages/public", OTHER)
            .await,
    ] {
        assert_eq!(response.status, StatusCode::FORBIDDEN);
        assert_eq!(
            response.error(),
            "The supplied authentication is not authorized to access 'guest/public'."
        );
    }
}

#[tokio::test]
async fn list_summaries_page_and_count() {
    let app = TestApp::new().await;
    for name in ["p1", "p2", "p3"] {
        put_ok(
            &app,
            &format!("/api/v1/namespaces/_/packages/{name}"),
            GUEST,
            json!({"parameters": [{"key": "secret", "value": 1}]}),
        )
        .await;
    }
    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/b",
        GUEST,
        json!({"binding": {"namespace": "_", "name": "p1"}}),
    )
    .await;

    let list = app.get("/api/v1/namespaces/_/packages", GUEST).await.json();
    assert_eq!(names_of(&list), vec!["b", "p3", "p2", "p1"]);
    let summary = &list[1];
    let mut keys: Vec<&str> = summary
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "annotations",
            "binding",
            "name",
            "namespace",
            "publish",
            "updated",
            "version"
        ]
    );
    assert_eq!(summary["binding"], false);
    assert_eq!(
        list[0]["binding"],
        json!({"namespace": "guest", "name": "p1"})
    );

    let page = app
        .get("/api/v1/namespaces/_/packages?limit=2&skip=1", GUEST)
        .await;
    assert_eq!(names_of(&page.json()), vec!["p3", "p2"]);
    let count = app
        .get("/api/v1/namespaces/_/packages?count=true&skip=1", GUEST)
        .await;
    assert_eq!(count.json(), json!({"packages": 3}));
    let bad = app
        .get("/api/v1/namespaces/_/packages?limit=201", GUEST)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.error(),
        "The query parameter 'limit' was malformed:\nThe value '201' is not in the range of 0 to 200 for packages."
    );
}

#[tokio::test]
async fn post_on_a_package_is_405() {
    let app = TestApp::new().await;
    put_ok(&app, "/api/v1/namespaces/_/packages/p", GUEST, json!({})).await;
    let response = app
        .post("/api/v1/namespaces/_/packages/p", GUEST, Some(json!({})))
        .await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        response
            .error()
            .starts_with("HTTP method not allowed, supported methods: "),
        "{}",
        response.text
    );
}

#[tokio::test]
async fn oversized_parameters_are_413() {
    let app = TestApp::new().await;
    let big = "x".repeat(1_048_576);
    let response = app
        .put(
            "/api/v1/namespaces/_/packages/p",
            GUEST,
            json!({"parameters": [{"key": "k", "value": big}]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.error(),
        "parameters larger than allowed: 1048579 > 1048576 bytes."
    );
}
