//! The built-in API gateway: route management as `wsk api` and the npm client call it, and
//! routes served through web actions run by a scripted stand-in invoker.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tower::ServiceExt;
use whisk_controller::{ControllerConfig, LoadBalancer};
use whisk_model::ActivationResponse;
use whisk_model::bus::ActivationMessage;

use common::invoker::{Reply, StandIn, app_with_stand_in};
use common::{GUEST, OTHER, TestApp, TestResponse};

const CREATE: &str = "/api/v1/web/whisk.system/apimgmt/createApi.http";
const GET: &str = "/api/v1/web/whisk.system/apimgmt/getApi.http";
const DELETE: &str = "/api/v1/web/whisk.system/apimgmt/deleteApi.http";

/// `echo` returns its input with the action's name; `page` returns HTML; `mirror` returns its
/// input as an `.http` body.
fn script(message: &ActivationMessage) -> Reply {
    let result = match message.action.name.as_str() {
        "page" => json!({"html": "<p>routed</p>"}),
        "mirror" => json!({"body": message.content}),
        name => {
            let mut input = json!(message.content);
            input["__action"] = json!(name);
            input
        }
    };
    Reply::Finish(ActivationResponse::success(result, None))
}

async fn gateway_app() -> (TestApp, Arc<LoadBalancer>, StandIn) {
    app_with_stand_in(ControllerConfig::default(), Box::new(script)).await
}

async fn web_action(app: &TestApp, name: &str) {
    let response = app
        .put(
            &format!("/api/v1/namespaces/_/actions/{name}"),
            GUEST,
            json!({
                "exec": {"kind": "nodejs:20", "code": "function main(p) { return p }"},
                "annotations": [{"key": "web-export", "value": true}],
            }),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
}

/// The body `wsk api create BASE REL VERB ACTION` sends.
fn cli_apidoc(base: &str, rel: &str, verb: &str, action: &str) -> Value {
    json!({"apidoc": {
        "namespace": "_",
        "gatewayBasePath": base,
        "gatewayPath": rel,
        "gatewayMethod": verb,
        "id": format!("API:_:{base}"),
        "action": {
            "name": action,
            "namespace": "_",
            "backendMethod": verb,
            "backendUrl": format!("http://127.0.0.1:3233/api/v1/web/_/default/{action}.http"),
            "authkey": GUEST,
        }
    }})
}

async fn create(app: &TestApp, query: &str, body: Value) -> TestResponse {
    app.post(&format!("{CREATE}{query}"), GUEST, Some(body))
        .await
}

fn management_error(response: &TestResponse) -> String {
    assert_eq!(
        response.status,
        StatusCode::BAD_GATEWAY,
        "{}",
        response.text
    );
    response.error()
}

#[tokio::test]
async fn create_get_list_and_delete_routes() {
    let app = TestApp::new().await;
    let created = create(&app, "", cli_apidoc("/hello", "/world", "get", "echo")).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let value = created.json();
    assert_eq!(value["gwApiUrl"], "http://127.0.0.1:3233/api/guest/hello");
    assert_eq!(value["apidoc"]["basePath"], "/hello");
    assert_eq!(value["apidoc"]["info"]["title"], "/hello");
    let operation = &value["apidoc"]["paths"]["/world"]["get"];
    assert_eq!(operation["x-openwhisk"]["namespace"], "guest");
    assert_eq!(operation["x-openwhisk"]["action"], "echo");
    assert_eq!(
        operation["x-openwhisk"]["url"],
        "http://127.0.0.1:3233/api/v1/web/guest/default/echo.json"
    );

    let mut named = cli_apidoc("/shop", "/items", "post", "echo");
    named["apidoc"]["apiName"] = json!("Shop");
    let created = create(&app, "?responsetype=http", named).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let created = create(&app, "", cli_apidoc("/hello", "/world", "post", "page")).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let paths = &created.json()["apidoc"]["paths"]["/world"];
    assert!(
        paths["get"].is_object() && paths["post"].is_object(),
        "{paths}"
    );

    let listed = app.get(GET, GUEST).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let apis = listed.json()["apis"].as_array().unwrap().clone();
    assert_eq!(apis.len(), 2);
    assert!(
        apis.iter()
            .all(|api| api["value"]["gwApiActivated"] == true)
    );
    let by_name = app.get(&format!("{GET}?basepath=Shop"), GUEST).await;
    let apis = by_name.json()["apis"].clone();
    assert_eq!(apis[0]["value"]["apidoc"]["basePath"], "/shop");
    let by_path = app.get(&format!("{GET}?basepath=/hello"), GUEST).await;
    assert_eq!(by_path.json()["apis"].as_array().unwrap().len(), 1);
    let paged = app.get(&format!("{GET}?skip=1&limit=1"), GUEST).await;
    assert_eq!(paged.json()["apis"].as_array().unwrap().len(), 1);
    let elsewhere = app.get(GET, OTHER).await;
    assert_eq!(
        elsewhere.json(),
        json!({"apis": []}),
        "APIs belong to their namespace"
    );

    let deleted = app
        .delete(
            &format!("{DELETE}?basepath=/hello&relpath=/world&operation=GET"),
            GUEST,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.json(), json!({}));
    let left = app.get(&format!("{GET}?basepath=/hello"), GUEST).await;
    let paths = left.json()["apis"][0]["value"]["apidoc"]["paths"]["/world"].clone();
    assert!(paths.get("get").is_none() && paths["post"].is_object());
    let deleted = app
        .delete(&format!("{DELETE}?basepath=/hello&relpath=/world"), GUEST)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    let gone = app.get(&format!("{GET}?basepath=/hello"), GUEST).await;
    assert_eq!(
        gone.json(),
        json!({"apis": []}),
        "an API without routes goes"
    );
    // The npm client calls the endpoints without an extension.
    let bare = app
        .get(
            "/api/v1/web/whisk.system/apimgmt/getApi?basepath=Shop",
            GUEST,
        )
        .await;
    assert_eq!(bare.json()["apis"].as_array().unwrap().len(), 1);
    let deleted = app.delete(&format!("{DELETE}?basepath=Shop"), GUEST).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(app.get(GET, GUEST).await.json(), json!({"apis": []}));
}

#[tokio::test]
async fn swagger_documents_replace_the_api() {
    let app = TestApp::new().await;
    create(&app, "", cli_apidoc("/shop", "/old", "get", "echo")).await;
    let swagger = json!({
        "swagger": "2.0",
        "basePath": "/shop",
        "info": {"title": "Shop", "version": "1.0.0"},
        "paths": {"/new": {"get": {"operationId": "getNew", "x-openwhisk": {
            "namespace": "guest", "package": "", "action": "echo",
            "url": "http://127.0.0.1:3233/api/v1/web/guest/default/echo.json"}}}}
    });
    let created = create(
        &app,
        "",
        json!({"apidoc": {"namespace": "_", "swagger": swagger.to_string()}}),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let got = app.get(&format!("{GET}?basepath=/shop"), GUEST).await;
    let apidoc = got.json()["apis"][0]["value"]["apidoc"].clone();
    assert_eq!(apidoc, swagger);
}

#[tokio::test]
async fn management_errors() {
    let app = TestApp::new().await;
    let anonymous = app
        .call(
            Method::POST,
            CREATE,
            None,
            Some(cli_apidoc("/a", "/b", "get", "c")),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let anonymous = app.call(Method::GET, GET, None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let mut body = cli_apidoc("/a", "/b", "get", "c");
    body["apidoc"]
        .as_object_mut()
        .unwrap()
        .remove("gatewayPath");
    assert_eq!(
        management_error(&create(&app, "", body).await),
        "API creation failure: apidoc is missing the gatewayPath field"
    );
    assert_eq!(
        management_error(
            &create(
                &app,
                "?responsetype=xml",
                cli_apidoc("/a", "/b", "get", "c")
            )
            .await
        ),
        "API creation failure: 'xml' is not a valid response type. Valid values are: json, http, html, text, svg"
    );
    assert_eq!(
        management_error(&app.delete(DELETE, GUEST).await),
        "basepath is required."
    );
    assert_eq!(
        management_error(
            &app.delete(&format!("{DELETE}?basepath=/a&operation=get"), GUEST)
                .await
        ),
        "When specifying an operation, the path is required."
    );
    assert_eq!(
        management_error(&app.delete(&format!("{DELETE}?basepath=/none"), GUEST).await),
        "API deletion failure: API '/none' does not exist."
    );
    create(&app, "", cli_apidoc("/a", "/b", "get", "c")).await;
    assert_eq!(
        management_error(
            &app.delete(&format!("{DELETE}?basepath=/a&relpath=/x"), GUEST)
                .await
        ),
        "API deletion failure: path /x does not exist in the API"
    );
    let bad_limit = app.get(&format!("{GET}?limit=many"), GUEST).await;
    assert_eq!(
        bad_limit.status,
        StatusCode::BAD_REQUEST,
        "{}",
        bad_limit.text
    );
}

async fn call_route(app: &TestApp, method: Method, path: &str, body: &str) -> TestResponse {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    app.send(request).await
}

#[tokio::test]
async fn routes_run_their_web_actions_by_method() {
    let (app, _balancer, _stand_in) = gateway_app().await;
    web_action(&app, "echo").await;
    web_action(&app, "page").await;
    let created = create(&app, "", cli_apidoc("/hello", "/world", "post", "echo")).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let created = create(
        &app,
        "?responsetype=html",
        cli_apidoc("/hello", "/world", "get", "page"),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let mut templated = cli_apidoc("/hello", "/items/{id}", "get", "echo");
    templated["apidoc"]["action"]["name"] = json!("echo");
    let created = create(&app, "?responsetype=http", templated).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);

    let posted = call_route(
        &app,
        Method::POST,
        "/api/guest/hello/world?q=1",
        r#"{"name": "Ann"}"#,
    )
    .await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.text);
    assert_eq!(posted.header("content-type"), Some("application/json"));
    assert!(posted.header("x-openwhisk-activation-id").is_some());
    let body = posted.json();
    assert_eq!(body["__action"], "echo");
    assert_eq!(body["name"], "Ann");
    assert_eq!(body["q"], "1");
    assert_eq!(body["__ow_method"], "post");

    let page = call_route(&app, Method::GET, "/api/guest/hello/world", "").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page.text, "<p>routed</p>");

    // `.http` shaping: a result without `body` or `statusCode` is an empty 204 (`.json` is 200).
    let item = call_route(&app, Method::GET, "/api/guest/hello/items/42", "").await;
    assert_eq!(item.status, StatusCode::NO_CONTENT, "{}", item.text);
    // An `.http` route hands the relative path on, so the action sees `{id}`'s value.
    web_action(&app, "mirror").await;
    let created = create(
        &app,
        "?responsetype=http",
        cli_apidoc("/raw", "/things/{id}", "get", "mirror"),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let mirrored = call_route(&app, Method::GET, "/api/guest/raw/things/42", "").await;
    assert_eq!(mirrored.status, StatusCode::OK, "{}", mirrored.text);
    assert_eq!(mirrored.json()["__ow_path"], "/things/42");

    let preflight = call_route(&app, Method::OPTIONS, "/api/guest/hello/world", "").await;
    assert_eq!(preflight.status, StatusCode::OK, "{}", preflight.text);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));

    for (method, path) in [
        (Method::PUT, "/api/guest/hello/world"),
        (Method::GET, "/api/guest/hello/nowhere"),
        (Method::GET, "/api/guest/elsewhere/world"),
        (Method::GET, "/api/other/hello/world"),
        (Method::GET, "/api/guest"),
    ] {
        let missing = call_route(&app, method.clone(), path, "").await;
        assert_eq!(
            missing.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            missing.text
        );
        assert_eq!(missing.error(), "The requested resource does not exist.");
    }
    let rest = app.get("/api/v1/nothing-here", GUEST).await;
    assert_eq!(rest.status, StatusCode::NOT_FOUND);
    assert_eq!(rest.error(), "The requested resource could not be found.");
}

#[tokio::test]
async fn a_route_to_an_action_that_is_not_exported_is_not_found() {
    let (app, _balancer, _stand_in) = gateway_app().await;
    let response = app
        .put(
            "/api/v1/namespaces/_/actions/private",
            GUEST,
            json!({"exec": {"kind": "nodejs:20", "code": "function main(p) { return p }"}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    create(&app, "", cli_apidoc("/p", "/x", "get", "private")).await;
    let missing = call_route(&app, Method::GET, "/api/guest/p/x", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_to_one_api_all_land() {
    let app = TestApp::new().await;
    let mut creates = tokio::task::JoinSet::new();
    for index in 0..8 {
        let router = app.router.clone();
        let body = cli_apidoc("/busy", &format!("/r{index}"), "get", "echo");
        creates.spawn(async move {
            let request = Request::builder()
                .method(Method::POST)
                .uri(CREATE)
                .header("content-type", "application/json")
                .header("authorization", format!("Basic {}", STANDARD.encode(GUEST)))
                .body(Body::from(body.to_string()))
                .unwrap();
            router.oneshot(request).await.unwrap().status()
        });
    }
    while let Some(status) = creates.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    let got = app.get(&format!("{GET}?basepath=/busy"), GUEST).await;
    let paths = got.json()["apis"][0]["value"]["apidoc"]["paths"].clone();
    assert_eq!(paths.as_object().unwrap().len(), 8, "{paths}");

    let mut deletes = tokio::task::JoinSet::new();
    for index in 0..8 {
        let router = app.router.clone();
        deletes.spawn(async move {
            let request = Request::builder()
                .method(Method::DELETE)
                .uri(format!("{DELETE}?basepath=/busy&relpath=/r{index}"))
                .header("authorization", format!("Basic {}", STANDARD.encode(GUEST)))
                .body(Body::empty())
                .unwrap();
            router.oneshot(request).await.unwrap().status()
        });
    }
    while let Some(status) = deletes.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    let gone = app.get(&format!("{GET}?basepath=/busy"), GUEST).await;
    assert_eq!(gone.json(), json!({"apis": []}));
}

#[tokio::test]
async fn urls_follow_the_host_the_platform_is_reached_at() {
    let app = TestApp::new().await;
    create(&app, "", cli_apidoc("/hello", "/world", "get", "echo")).await;
    let request = Request::builder()
        .uri(format!("{GET}?basepath=/hello"))
        .header("host", "moved.test:4000")
        .header("authorization", format!("Basic {}", STANDARD.encode(GUEST)))
        .body(Body::empty())
        .unwrap();
    let got = app.send(request).await;
    assert_eq!(
        got.json()["apis"][0]["value"]["gwApiUrl"],
        "http://moved.test:4000/api/guest/hello",
        "the scheme it was created with, the host it is reached at"
    );
}

/// APIs are store documents: they outlive the process, and a namespace's own lists never show
/// them.
#[tokio::test]
async fn apis_survive_a_reopened_store_and_stay_out_of_entity_lists() {
    use whisk_controller::gateway::{openapi, registry};
    use whisk_model::EntityType;
    use whisk_store::{EntityQuery, EntityScope};

    let dir = tempfile::tempdir().unwrap();
    let doc = openapi::base_document("/kept", Some("Kept"));
    {
        let store = whisk_store::open_sqlite(dir.path()).unwrap();
        registry::save(store.entities.as_ref(), "guest", &doc, "http://h", None, 1)
            .await
            .unwrap();
    }
    let store = whisk_store::open_sqlite(dir.path()).unwrap();
    let entities = store.entities.as_ref();
    let apis = registry::list(entities, "guest").await.unwrap();
    assert_eq!(apis.len(), 1);
    assert_eq!(apis[0].apidoc, doc);
    assert_eq!(apis[0].origin, "http://h");
    let by_name = registry::find(entities, "guest", "Kept").await.unwrap();
    assert_eq!(by_name.map(|api| api.revision), Some(apis[0].revision));
    assert!(registry::list(entities, "other").await.unwrap().is_empty());
    for entity_type in EntityType::ALL {
        for scope in [
            EntityScope::Namespace("guest".into()),
            EntityScope::Exact("guest".into()),
        ] {
            let query = EntityQuery::new(entity_type, scope);
            assert_eq!(entities.count(&query).await.unwrap(), 0);
        }
    }
    registry::remove(entities, "guest", &apis[0]).await.unwrap();
    assert!(registry::list(entities, "guest").await.unwrap().is_empty());
}
