//! The actions API over a real SQLite store.

#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{GUEST, OTHER, START_MILLIS, TestApp};
use serde_json::{Value, json};

const HELLO_CODE: &str = "function main(p){return {msg:'hi '+p.name}}";

fn nodejs(code: &str) -> Value {
    json!({"exec": {"kind": "nodejs:default", "code": code}})
}

async fn create(app: &TestApp, path: &str, credentials: &str, body: Value) -> Value {
    let response = app.put(path, credentials, body).await;
    assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text);
    response.json()
}

async fn create_package(app: &TestApp, credentials: &str, name: &str, body: Value) {
    let document = whisk_model::WhiskPackage::create(
        whisk_model::EntityPath::parse(&namespace_of(credentials)).unwrap(),
        whisk_model::EntityName::new(name).unwrap(),
        serde_json::from_value(body).unwrap(),
        START_MILLIS,
    )
    .unwrap();
    let stored = whisk_controller::documents::package_document(&document).unwrap();
    app.store.entities.put(stored, None).await.unwrap();
}

fn namespace_of(credentials: &str) -> String {
    if credentials == GUEST {
        "guest"
    } else {
        "other"
    }
    .to_owned()
}

#[tokio::test]
async fn create_answers_the_stored_action_with_defaults_and_annotations() {
    let app = TestApp::new().await;
    let body = create(
        &app,
        "/api/v1/namespaces/_/actions/hello",
        GUEST,
        json!({
            "exec": {"kind": "nodejs:default", "code": HELLO_CODE},
            "parameters": [{"key": "name", "value": "world"}],
        }),
    )
    .await;
    assert_eq!(body["namespace"], "guest");
    assert_eq!(body["name"], "hello");
    assert_eq!(
        body["exec"],
        json!({"kind": "nodejs:20", "code": HELLO_CODE, "binary": false})
    );
    assert_eq!(
        body["parameters"],
        json!([{"key": "name", "value": "world"}])
    );
    assert_eq!(
        body["limits"],
        json!({"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1})
    );
    assert_eq!(body["version"], "0.0.1");
    assert_eq!(body["publish"], false);
    assert_eq!(
        body["annotations"],
        json!([{"key": "provide-api-key", "value": false}, {"key": "exec", "value": "nodejs:20"}])
    );
    assert!(body["updated"].as_u64().unwrap() >= START_MILLIS);

    let read = app
        .get("/api/v1/namespaces/guest/actions/hello", GUEST)
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json(), body);
}

#[tokio::test]
async fn user_provide_api_key_is_kept_and_exec_annotation_is_overwritten() {
    let app = TestApp::new().await;
    let body = create(
        &app,
        "/api/v1/namespaces/_/actions/keyed",
        GUEST,
        json!({
            "exec": {"kind": "nodejs:20", "code": HELLO_CODE},
            "annotations": [{"key": "provide-api-key", "value": true}, {"key": "exec", "value": "lies"}],
        }),
    )
    .await;
    assert_eq!(
        body["annotations"],
        json!([{"key": "provide-api-key", "value": true}, {"key": "exec", "value": "nodejs:20"}])
    );
}

#[tokio::test]
async fn second_put_without_overwrite_is_409() {
    let app = TestApp::new().await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/hello",
        GUEST,
        nodejs(HELLO_CODE),
    )
    .await;
    let response = app
        .put(
            "/api/v1/namespaces/_/actions/hello",
            GUEST,
            nodejs(HELLO_CODE),
        )
        .await;
    assert_eq!(response.status, StatusCode::CONFLICT);
    assert_eq!(response.error(), "resource already exists");
}

#[tokio::test]
async fn overwrite_bumps_the_version_and_merges_per_rules() {
    let app = TestApp::new().await;
    let path = "/api/v1/namespaces/_/actions/hello?overwrite=true";
    let first = create(
        &app,
        path,
        GUEST,
        json!({
            "exec": {"kind": "nodejs:20", "code": HELLO_CODE},
            "parameters": [{"key": "a", "value": 1}],
            "annotations": [{"key": "keep", "value": "yes"}, {"key": "drop", "value": 1}],
            "limits": {"memory": 128, "timeout": 1000},
            "publish": true,
        }),
    )
    .await;
    assert_eq!(first["version"], "0.0.1");

    let second = create(
        &app,
        path,
        GUEST,
        json!({
            "annotations": [{"key": "new", "value": true}],
            "delAnnotations": ["drop"],
            "limits": {"timeout": 2000},
        }),
    )
    .await;
    assert_eq!(second["version"], "0.0.2");
    assert_eq!(second["exec"], first["exec"]);
    assert_eq!(second["parameters"], json!([{"key": "a", "value": 1}]));
    assert_eq!(second["publish"], true);
    assert_eq!(second["limits"]["memory"], 128);
    assert_eq!(second["limits"]["timeout"], 2000);
    let keys: Vec<&str> = second["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"keep"));
    assert!(keys.contains(&"new"));
    assert!(keys.contains(&"exec"));
    assert!(!keys.contains(&"drop"));
    assert!(second["updated"].as_u64() > first["updated"].as_u64());

    let third = create(
        &app,
        path,
        GUEST,
        json!({"parameters": [{"key": "b", "value": 2}], "version": "1.2.3"}),
    )
    .await;
    assert_eq!(third["version"], "1.2.3");
    assert_eq!(third["parameters"], json!([{"key": "b", "value": 2}]));

    let identical = create(&app, path, GUEST, nodejs(HELLO_CODE)).await;
    assert_eq!(identical["version"], "1.2.4");
}

#[tokio::test]
async fn overwrite_creates_when_absent() {
    let app = TestApp::new().await;
    let body = create(
        &app,
        "/api/v1/namespaces/_/actions/fresh?overwrite=true",
        GUEST,
        nodejs(HELLO_CODE),
    )
    .await;
    assert_eq!(body["version"], "0.0.1");
}

#[tokio::test]
async fn create_without_exec_is_400() {
    let app = TestApp::new().await;
    let response = app
        .put("/api/v1/namespaces/_/actions/nothing", GUEST, json!({}))
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.error(), "exec undefined");
}

#[tokio::test]
async fn unknown_kind_and_bad_limits_are_400() {
    let app = TestApp::new().await;
    let response = app
        .put(
            "/api/v1/namespaces/_/actions/x",
            GUEST,
            json!({"exec": {"kind": "cobol:1", "code": "x"}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response
            .error()
            .contains("The specified runtime 'cobol:1' is not supported by this platform."),
        "{}",
        response.text
    );

    let response = app
        .put(
            "/api/v1/namespaces/_/actions/x",
            GUEST,
            json!({"exec": {"kind": "nodejs:20", "code": "x"}, "limits": {"memory": 4096}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.error(),
        "memory size 4096 MB exceeds allowed threshold of 512 MB"
    );
    let response = app
        .put(
            "/api/v1/namespaces/_/actions/x",
            GUEST,
            json!({"exec": {"kind": "nodejs:20", "code": "x"}, "limits": {"timeout": 50}}),
        )
        .await;
    assert_eq!(
        response.error(),
        "duration 50 milliseconds below allowed threshold of 100 milliseconds"
    );
}

#[tokio::test]
async fn binary_is_computed_from_the_code() {
    let app = TestApp::new().await;
    let body = create(
        &app,
        "/api/v1/namespaces/_/actions/zip",
        GUEST,
        json!({"exec": {"kind": "nodejs:20", "code": "UEsDBAoAAAAAAA==", "binary": false}}),
    )
    .await;
    assert_eq!(body["exec"]["binary"], true);
}

#[tokio::test]
async fn restricted_kinds_are_403() {
    let app = TestApp::new().await;
    let overrides = whisk_model::NamespaceLimits {
        allowed_kinds: Some(vec!["python:3.11".into()]),
        ..Default::default()
    };
    app.store
        .subjects
        .set_limits("guest", &overrides)
        .await
        .unwrap();
    let response = app
        .put("/api/v1/namespaces/_/actions/x", GUEST, nodejs("x"))
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(
        response.error(),
        "The supplied authentication is not authorized to access actions of kind 'nodejs:20'."
    );
}

#[tokio::test]
async fn code_false_omits_the_code() {
    let app = TestApp::new().await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/hello",
        GUEST,
        nodejs(HELLO_CODE),
    )
    .await;
    let body = app
        .get("/api/v1/namespaces/_/actions/hello?code=false", GUEST)
        .await
        .json();
    assert_eq!(body["exec"], json!({"kind": "nodejs:20", "binary": false}));
    assert!(body.get("binding").is_none());
    let body = app
        .get("/api/v1/namespaces/_/actions/hello?code=true", GUEST)
        .await
        .json();
    assert_eq!(body["exec"]["code"], HELLO_CODE);
    let response = app
        .get("/api/v1/namespaces/_/actions/hello?code=perhaps", GUEST)
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.error(),
        "The query parameter 'code' was malformed:\n'perhaps' is not a valid Boolean value"
    );
}

#[tokio::test]
async fn missing_actions_are_404() {
    let app = TestApp::new().await;
    for (method, path) in [
        (Method::GET, "/api/v1/namespaces/_/actions/ghost"),
        (Method::DELETE, "/api/v1/namespaces/_/actions/ghost"),
    ] {
        let response = app.call(method, path, Some(GUEST), None).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.error(), "The requested resource does not exist.");
    }
}

#[tokio::test]
async fn delete_answers_the_deleted_action_with_code() {
    let app = TestApp::new().await;
    let created = create(
        &app,
        "/api/v1/namespaces/_/actions/hello",
        GUEST,
        nodejs(HELLO_CODE),
    )
    .await;
    let response = app
        .delete("/api/v1/namespaces/_/actions/hello", GUEST)
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json(), created);
    let response = app.get("/api/v1/namespaces/_/actions/hello", GUEST).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_name_taken_by_another_collection_is_409() {
    let app = TestApp::new().await;
    create_package(&app, GUEST, "utils", json!({})).await;
    let response = app
        .put(
            "/api/v1/namespaces/_/actions/utils?overwrite=true",
            GUEST,
            nodejs("x"),
        )
        .await;
    assert_eq!(response.status, StatusCode::CONFLICT);
    assert_eq!(
        response.error(),
        "Resource by this name exists but is not in this collection."
    );
    let response = app.get("/api/v1/namespaces/_/actions/utils", GUEST).await;
    assert_eq!(response.status, StatusCode::CONFLICT);
    assert_eq!(
        response.error(),
        "Resource by this name exists but is not in this collection."
    );
}

#[tokio::test]
async fn another_namespaces_default_package_is_403() {
    let app = TestApp::new().await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/hello",
        GUEST,
        nodejs(HELLO_CODE),
    )
    .await;
    let message = "The supplied authentication is not authorized to access 'guest/hello'.";
    for method in [Method::GET, Method::DELETE, Method::POST] {
        let response = app
            .call(
                method.clone(),
                "/api/v1/namespaces/guest/actions/hello",
                Some(OTHER),
                None,
            )
            .await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{method}");
        assert_eq!(response.error(), message);
    }
    let response = app
        .put("/api/v1/namespaces/guest/actions/hello", OTHER, nodejs("x"))
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(response.error(), message);
    let response = app
        .get("/api/v1/namespaces/guest/actions/nonexistent", OTHER)
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    let response = app.get("/api/v1/namespaces/guest/actions", OTHER).await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(
        response.error(),
        "The supplied authentication is not authorized to access 'guest'."
    );
}

#[tokio::test]
async fn packaged_action_crud() {
    let app = TestApp::new().await;
    create_package(
        &app,
        GUEST,
        "utils",
        json!({"parameters": [{"key": "p", "value": "package"}, {"key": "shared", "value": "package"}]}),
    )
    .await;
    let created = create(
        &app,
        "/api/v1/namespaces/_/actions/utils/split",
        GUEST,
        json!({
            "exec": {"kind": "nodejs:20", "code": "x"},
            "parameters": [{"key": "shared", "value": "action"}],
        }),
    )
    .await;
    assert_eq!(created["namespace"], "guest/utils");
    assert_eq!(
        created["parameters"],
        json!([{"key": "shared", "value": "action"}])
    );

    let read = app
        .get("/api/v1/namespaces/guest/actions/utils/split", GUEST)
        .await
        .json();
    assert_eq!(read["namespace"], "guest/utils");
    let parameters = read["parameters"].as_array().unwrap();
    assert!(parameters.contains(&json!({"key": "p", "value": "package"})));
    assert!(parameters.contains(&json!({"key": "shared", "value": "action"})));
    assert_eq!(parameters.len(), 2);

    let deleted = app
        .delete("/api/v1/namespaces/_/actions/utils/split", GUEST)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.json()["name"], "split");
}

#[tokio::test]
async fn packaged_actions_need_an_existing_real_package() {
    let app = TestApp::new().await;
    let response = app
        .put("/api/v1/namespaces/_/actions/nopkg/a", GUEST, nodejs("x"))
        .await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.error(), "The requested resource does not exist.");

    create_package(&app, GUEST, "utils", json!({})).await;
    create_package(
        &app,
        GUEST,
        "mybinding",
        json!({"binding": {"namespace": "guest", "name": "utils"}}),
    )
    .await;
    let response = app
        .put(
            "/api/v1/namespaces/_/actions/mybinding/a",
            GUEST,
            nodejs("x"),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.error(),
        "Operation not permitted on package binding."
    );
    let response = app
        .delete("/api/v1/namespaces/_/actions/mybinding/a", GUEST)
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);

    let response = app.get("/api/v1/namespaces/_/actions/nopkg/a", GUEST).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(
        response.error(),
        "The requested resource 'guest/nopkg' does not exist."
    );
}

#[tokio::test]
async fn reading_through_a_binding_merges_parameters_and_names_the_binding() {
    let app = TestApp::new().await;
    create_package(
        &app,
        GUEST,
        "utils",
        json!({"parameters": [{"key": "a", "value": "package"}, {"key": "b", "value": "package"}, {"key": "c", "value": "package"}]}),
    )
    .await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/utils/split",
        GUEST,
        json!({"exec": {"kind": "nodejs:20", "code": "x"}, "parameters": [{"key": "c", "value": "action"}]}),
    )
    .await;
    create_package(
        &app,
        GUEST,
        "bound",
        json!({
            "binding": {"namespace": "_", "name": "utils"},
            "parameters": [{"key": "b", "value": "binding"}, {"key": "c", "value": "binding"}],
        }),
    )
    .await;

    let read = app
        .get("/api/v1/namespaces/_/actions/bound/split", GUEST)
        .await
        .json();
    assert_eq!(read["namespace"], "guest/utils");
    let parameters = read["parameters"].as_array().unwrap();
    assert!(parameters.contains(&json!({"key": "a", "value": "package"})));
    assert!(parameters.contains(&json!({"key": "b", "value": "binding"})));
    assert!(parameters.contains(&json!({"key": "c", "value": "action"})));
    assert!(read.get("binding").is_none());

    let metadata = app
        .get("/api/v1/namespaces/_/actions/bound/split?code=false", GUEST)
        .await
        .json();
    assert_eq!(metadata["binding"], "guest/bound");
    assert!(metadata["exec"].get("code").is_none());
}

#[tokio::test]
async fn public_packages_are_readable_across_namespaces_private_ones_are_not() {
    let app = TestApp::new().await;
    create_package(&app, GUEST, "shared", json!({"publish": true})).await;
    create_package(&app, GUEST, "private", json!({})).await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/shared/tool",
        GUEST,
        nodejs("x"),
    )
    .await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/private/tool",
        GUEST,
        nodejs("x"),
    )
    .await;

    let read = app
        .get("/api/v1/namespaces/guest/actions/shared/tool", OTHER)
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json()["namespace"], "guest/shared");
    let listed = app
        .get("/api/v1/namespaces/guest/actions/shared/", OTHER)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json().as_array().unwrap().len(), 1);

    let response = app
        .get("/api/v1/namespaces/guest/actions/private/tool", OTHER)
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(
        response.error(),
        "The supplied authentication is not authorized to access 'guest/private/tool'."
    );
    // A missing package in another namespace looks exactly like a private one.
    let response = app
        .get("/api/v1/namespaces/guest/actions/missing/tool", OTHER)
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(
        response.error(),
        "The supplied authentication is not authorized to access 'guest/missing/tool'."
    );
    // Writing into a public package of another namespace is still refused.
    let response = app
        .put(
            "/api/v1/namespaces/guest/actions/shared/mine",
            OTHER,
            nodejs("x"),
        )
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_binding_to_a_foreign_public_package_is_readable_by_its_owner() {
    let app = TestApp::new().await;
    create_package(
        &app,
        GUEST,
        "shared",
        json!({"publish": true, "parameters": [{"key": "x", "value": 1}]}),
    )
    .await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/shared/tool",
        GUEST,
        nodejs("x"),
    )
    .await;
    create_package(
        &app,
        OTHER,
        "mine",
        json!({"binding": {"namespace": "guest", "name": "shared"}}),
    )
    .await;
    let read = app
        .get("/api/v1/namespaces/_/actions/mine/tool", OTHER)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.json()["parameters"], json!([{"key": "x", "value": 1}]));
    let listed = app
        .get("/api/v1/namespaces/_/actions/mine/", OTHER)
        .await
        .json();
    assert_eq!(listed[0]["namespace"], "guest/shared");
    // guest cannot read other's binding.
    let response = app
        .get("/api/v1/namespaces/other/actions/mine/tool", GUEST)
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_binding_to_itself_is_a_circular_reference() {
    let app = TestApp::new().await;
    create_package(
        &app,
        GUEST,
        "loop",
        json!({"binding": {"namespace": "guest", "name": "loop"}}),
    )
    .await;
    let response = app.get("/api/v1/namespaces/_/actions/loop/a", GUEST).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.error(),
        "Package binding 'guest/loop' contains a circular reference."
    );
}

#[tokio::test]
async fn listing_covers_packages_newest_first_with_summaries() {
    let app = TestApp::new().await;
    create_package(&app, GUEST, "utils", json!({})).await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/first",
        GUEST,
        nodejs("x"),
    )
    .await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/utils/second",
        GUEST,
        nodejs("x"),
    )
    .await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/third",
        GUEST,
        nodejs("UEsDBAoAAAAAAA=="),
    )
    .await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/foreign",
        OTHER,
        nodejs("x"),
    )
    .await;

    let listed = app.get("/api/v1/namespaces/_/actions", GUEST).await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed = listed.json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["third", "second", "first"]);
    let third = &listed[0];
    assert_eq!(third["exec"], json!({"binary": true}));
    assert!(third.get("parameters").is_none());
    assert_eq!(third["namespace"], "guest");
    assert_eq!(listed[1]["namespace"], "guest/utils");
    for key in ["version", "publish", "annotations", "limits", "updated"] {
        assert!(third.get(key).is_some(), "{key}");
    }

    let with_slash = app.get("/api/v1/namespaces/_/actions/", GUEST).await.json();
    assert_eq!(with_slash, listed);

    let package_list = app
        .get("/api/v1/namespaces/_/actions/utils/", GUEST)
        .await
        .json();
    assert_eq!(package_list.as_array().unwrap().len(), 1);
    assert_eq!(package_list[0]["name"], "second");
}

#[tokio::test]
async fn listing_pages_and_counts() {
    let app = TestApp::new().await;
    for index in 0..5 {
        create(
            &app,
            &format!("/api/v1/namespaces/_/actions/a{index}"),
            GUEST,
            nodejs("x"),
        )
        .await;
    }
    let page = app
        .get("/api/v1/namespaces/_/actions?limit=2&skip=1", GUEST)
        .await
        .json();
    let names: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a3", "a2"]);

    let count = app
        .get("/api/v1/namespaces/_/actions?count=true", GUEST)
        .await
        .json();
    assert_eq!(count, json!({"actions": 5}));
    let count = app
        .get(
            "/api/v1/namespaces/_/actions?count=true&skip=2&limit=1",
            GUEST,
        )
        .await
        .json();
    assert_eq!(count, json!({"actions": 3}));

    let all = app
        .get("/api/v1/namespaces/_/actions?limit=0", GUEST)
        .await
        .json();
    assert_eq!(all.as_array().unwrap().len(), 5);

    let response = app
        .get("/api/v1/namespaces/_/actions?limit=201", GUEST)
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.error(),
        "The query parameter 'limit' was malformed:\nThe value '201' is not in the range of 0 to 200 for actions."
    );
    let response = app.get("/api/v1/namespaces/_/actions?skip=-1", GUEST).await;
    assert_eq!(
        response.error(),
        "The query parameter 'skip' was malformed:\nThe value '-1' is not greater than or equal to 0 for actions."
    );
}

#[tokio::test]
async fn bad_names_in_the_path_are_400() {
    let app = TestApp::new().await;
    let response = app.get("/api/v1/namespaces/_/actions/%20lead", GUEST).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.error(),
        "The name of the entity contains illegal characters."
    );
    let long = "a".repeat(257);
    let response = app
        .get(&format!("/api/v1/namespaces/_/actions/{long}"), GUEST)
        .await;
    assert_eq!(
        response.error(),
        "Name segement longer than allowed: 257 > 256."
    );
    let response = app.get("/api/v1/namespaces/b@d!/actions/x", GUEST).await;
    assert_eq!(
        response.error(),
        "The namespace contains illegal characters."
    );
}

#[tokio::test]
async fn malformed_and_non_json_bodies() {
    let app = TestApp::new().await;
    let request = Request::builder()
        .method(Method::PUT)
        .uri("/api/v1/namespaces/_/actions/x")
        .header(header::AUTHORIZATION, basic(GUEST))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response
            .error()
            .starts_with("The request content was malformed:\n"),
        "{}",
        response.text
    );

    let request = Request::builder()
        .method(Method::PUT)
        .uri("/api/v1/namespaces/_/actions/x")
        .header(header::AUTHORIZATION, basic(GUEST))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("hello"))
        .unwrap();
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        response.error(),
        "The request's Content-Type [text/plain] is not supported. Expected:\napplication/json"
    );

    let response = app
        .put(
            "/api/v1/namespaces/_/actions/x",
            GUEST,
            json!({"exec": {"kind": "nodejs:20", "code": "x"}, "limits": {"memory": "big"}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response
            .error()
            .starts_with("The request content was malformed:\n")
    );
}

fn basic(credentials: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

#[tokio::test]
async fn oversized_fields_and_requests_are_413() {
    let defaults = whisk_controller::ControllerConfig::default();
    let config = whisk_controller::ControllerConfig {
        max_request_body: 4 * 1024 * 1024,
        limits: whisk_model::SystemLimits {
            max_exec_size: 1000,
            ..defaults.limits.clone()
        },
        ..defaults
    };
    let app = TestApp::with_config(config).await;

    let response = app
        .put(
            "/api/v1/namespaces/_/actions/big",
            GUEST,
            nodejs(&"x".repeat(1001)),
        )
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.error(),
        "exec larger than allowed: 1001 > 1000 bytes."
    );

    let big_value = "v".repeat(1_048_576);
    let response = app
        .put(
            "/api/v1/namespaces/_/actions/big",
            GUEST,
            json!({"exec": {"kind": "nodejs:20", "code": "x"}, "parameters": [{"key": "k", "value": big_value}]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.error(),
        "parameters larger than allowed: 1048579 > 1048576 bytes."
    );
    let response = app
        .put(
            "/api/v1/namespaces/_/actions/big",
            GUEST,
            json!({"exec": {"kind": "nodejs:20", "code": "x"}, "annotations": [{"key": "k", "value": big_value}]}),
        )
        .await;
    assert_eq!(
        response.error(),
        "annotations larger than allowed: 1048579 > 1048576 bytes."
    );

    let huge = "y".repeat(4 * 1024 * 1024 + 1);
    let response = app
        .put("/api/v1/namespaces/_/actions/big", GUEST, nodejs(&huge))
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    let message = response.error();
    assert!(
        message.starts_with("Request larger than allowed: ")
            && message.ends_with(" > 4194304 bytes."),
        "{message}"
    );
}

#[tokio::test]
async fn default_exec_limit_is_48_megabytes() {
    let app = TestApp::new().await;
    let response = app
        .put(
            "/api/v1/namespaces/_/actions/big",
            GUEST,
            nodejs(&"x".repeat(50_331_649)),
        )
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.error(),
        "exec larger than allowed: 50331649 > 50331648 bytes."
    );
}

#[tokio::test]
async fn wrong_method_on_an_action_is_405() {
    let app = TestApp::new().await;
    let response = app
        .call(
            Method::PATCH,
            "/api/v1/namespaces/_/actions/hello",
            Some(GUEST),
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response.error(),
        "HTTP method not allowed, supported methods: GET, PUT, DELETE, POST"
    );
    let response = app
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions",
            Some(GUEST),
            Some(json!({})),
        )
        .await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response.error(),
        "HTTP method not allowed, supported methods: GET"
    );
}

#[tokio::test]
async fn invoke_checks_rights_and_existence_then_answers_503_without_invokers() {
    let app = TestApp::new().await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/hello",
        GUEST,
        nodejs(HELLO_CODE),
    )
    .await;

    let response = app
        .post(
            "/api/v1/namespaces/_/actions/hello",
            GUEST,
            Some(json!({"name": "Ann"})),
        )
        .await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.error(),
        "The server is currently unavailable (because it is overloaded or down for maintenance)."
    );

    let response = app
        .post("/api/v1/namespaces/_/actions/ghost", GUEST, None)
        .await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);

    let response = app
        .post("/api/v1/namespaces/guest/actions/hello", OTHER, None)
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);

    let response = app
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/hello",
            None,
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);

    let response = app
        .post(
            "/api/v1/namespaces/_/actions/hello",
            GUEST,
            Some(json!([1, 2])),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response
            .error()
            .starts_with("The request content was malformed:\n")
    );
}

#[tokio::test]
async fn invoke_query_parameters_are_validated_before_the_action_is_looked_up() {
    let app = TestApp::new().await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/hello",
        GUEST,
        nodejs(HELLO_CODE),
    )
    .await;
    for path in [
        "/api/v1/namespaces/_/actions/hello?blocking=true&timeout=60001",
        "/api/v1/namespaces/_/actions/hello?timeout=0",
        "/api/v1/namespaces/_/actions/ghost?blocking=true&timeout=0",
    ] {
        let response = app.post(path, GUEST, None).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            response.error(),
            "The query parameter 'timeout' was malformed:\nTimeout must be number of milliseconds up to 60000.",
            "{path}"
        );
    }
    let response = app
        .post(
            "/api/v1/namespaces/_/actions/hello?blocking=maybe",
            GUEST,
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.error(),
        "The query parameter 'blocking' was malformed:\n'maybe' is not a valid Boolean value"
    );
    let response = app
        .post(
            "/api/v1/namespaces/_/actions/hello?blocking=true&result=true&timeout=60000",
            GUEST,
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn invoke_payload_over_the_limit_is_413() {
    let app = TestApp::new().await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/hello",
        GUEST,
        nodejs(HELLO_CODE),
    )
    .await;
    let body = json!({"blob": "z".repeat(1_048_576)});
    let length = body.to_string().len();
    let response = app
        .post("/api/v1/namespaces/_/actions/hello", GUEST, Some(body))
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.error(),
        format!("Request larger than allowed: {length} > 1048576 bytes.")
    );
}

#[tokio::test]
async fn invoke_refuses_overriding_final_parameters() {
    let app = TestApp::new().await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/locked",
        GUEST,
        json!({
            "exec": {"kind": "nodejs:20", "code": "x"},
            "parameters": [{"key": "fixed", "value": 1}, {"key": "open", "value": null}],
            "annotations": [{"key": "final", "value": true}],
        }),
    )
    .await;
    let response = app
        .post(
            "/api/v1/namespaces/_/actions/locked",
            GUEST,
            Some(json!({"fixed": 2})),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.error(),
        "Request defines parameters that are not allowed (e.g., reserved properties)."
    );
    let response = app
        .post(
            "/api/v1/namespaces/_/actions/locked",
            GUEST,
            Some(json!({"open": 2})),
        )
        .await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn sequences_are_created_with_resolved_components_and_actions_parameter() {
    let app = TestApp::new().await;
    create(&app, "/api/v1/namespaces/_/actions/a", GUEST, nodejs("x")).await;
    create(&app, "/api/v1/namespaces/_/actions/b", GUEST, nodejs("x")).await;
    let body = create(
        &app,
        "/api/v1/namespaces/_/actions/seq",
        GUEST,
        json!({
            "exec": {"kind": "sequence", "components": ["/_/a", "/guest/b"]},
            "parameters": [{"key": "ignored", "value": 1}],
        }),
    )
    .await;
    assert_eq!(
        body["exec"],
        json!({"kind": "sequence", "components": ["/guest/a", "/guest/b"]})
    );
    assert_eq!(
        body["parameters"],
        json!([{"key": "_actions", "value": ["/guest/a", "/guest/b"]}])
    );
    assert_eq!(
        body["annotations"][1],
        json!({"key": "exec", "value": "sequence"})
    );
}

#[tokio::test]
async fn sequence_create_time_validation() {
    let app = TestApp::new().await;
    create(&app, "/api/v1/namespaces/_/actions/a", GUEST, nodejs("x")).await;

    let sequence =
        |components: Value| json!({"exec": {"kind": "sequence", "components": components}});

    let response = app
        .put("/api/v1/namespaces/_/actions/s", GUEST, sequence(json!([])))
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.error(), "No component specified for the sequence.");

    let response = app
        .put(
            "/api/v1/namespaces/_/actions/s",
            GUEST,
            sequence(json!(["/_/missing"])),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.error(), "Sequence component does not exist.");

    let response = app
        .put(
            "/api/v1/namespaces/_/actions/s",
            GUEST,
            sequence(json!(["/_/a", "/_/s"])),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.error(), "Sequence may not refer to itself.");

    let response = app
        .put(
            "/api/v1/namespaces/_/actions/s",
            GUEST,
            sequence(json!(["a"])),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.error(),
        "The request content was malformed:\nrequirement failed: The fully qualified name of the entity must contain at least the namespace and the name of the entity."
    );

    let too_many: Vec<String> = (0..51).map(|_| "/_/a".to_owned()).collect();
    let response = app
        .put(
            "/api/v1/namespaces/_/actions/s",
            GUEST,
            sequence(json!(too_many)),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.error(), "Too many actions in the sequence.");

    // Nested: 30 + 30 atomic actions exceed 50 once inlined.
    let thirty: Vec<String> = (0..30).map(|_| "/_/a".to_owned()).collect();
    create(
        &app,
        "/api/v1/namespaces/_/actions/inner",
        GUEST,
        sequence(json!(thirty)),
    )
    .await;
    let mut outer = thirty.clone();
    outer.push("/_/inner".to_owned());
    let response = app
        .put(
            "/api/v1/namespaces/_/actions/outer",
            GUEST,
            sequence(json!(outer)),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.error(), "Too many actions in the sequence.");

    // A sequence containing a sequence that contains it.
    create(
        &app,
        "/api/v1/namespaces/_/actions/s1",
        GUEST,
        sequence(json!(["/_/a"])),
    )
    .await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/s2",
        GUEST,
        sequence(json!(["/_/s1"])),
    )
    .await;
    let response = app
        .put(
            "/api/v1/namespaces/_/actions/s1?overwrite=true",
            GUEST,
            sequence(json!(["/_/s2"])),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.error(), "Sequence may not refer to itself.");
}

#[tokio::test]
async fn sequence_components_must_be_readable() {
    let app = TestApp::new().await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/theirs",
        OTHER,
        nodejs("x"),
    )
    .await;
    create(&app, "/api/v1/namespaces/_/actions/b", OTHER, nodejs("x")).await;
    let response = app
        .put(
            "/api/v1/namespaces/_/actions/s",
            GUEST,
            json!({"exec": {"kind": "sequence", "components": ["/other/theirs", "/other/b"]}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(
        response.error(),
        "The supplied authentication is not authorized to access 'other/b, other/theirs'."
    );

    create_package(&app, OTHER, "pub", json!({"publish": true})).await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/pub/tool",
        OTHER,
        nodejs("x"),
    )
    .await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/s",
        GUEST,
        json!({"exec": {"kind": "sequence", "components": ["/other/pub/tool"]}}),
    )
    .await;
}

#[tokio::test]
async fn updating_a_sequence_without_exec_keeps_its_parameters() {
    let app = TestApp::new().await;
    create(&app, "/api/v1/namespaces/_/actions/a", GUEST, nodejs("x")).await;
    create(
        &app,
        "/api/v1/namespaces/_/actions/s",
        GUEST,
        json!({"exec": {"kind": "sequence", "components": ["/_/a"]}}),
    )
    .await;
    let updated = create(
        &app,
        "/api/v1/namespaces/_/actions/s?overwrite=true",
        GUEST,
        json!({"annotations": [{"key": "x", "value": 1}]}),
    )
    .await;
    assert_eq!(
        updated["parameters"],
        json!([{"key": "_actions", "value": ["/guest/a"]}])
    );
    let changed = create(
        &app,
        "/api/v1/namespaces/_/actions/s?overwrite=true",
        GUEST,
        nodejs("x"),
    )
    .await;
    assert_eq!(changed["parameters"], json!([]));
}
