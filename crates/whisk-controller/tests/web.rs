//! Web actions through the router, the balancer and an in-process bus, with a scripted
//! stand-in invoker whose results depend on the action invoked.

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
use common::{GUEST, TestApp, TestResponse};

/// Results by action name: `echo` returns its input; the others return fixed shapes.
fn script(message: &ActivationMessage) -> Reply {
    let input = json!(message.content);
    let result = match message.action.name.as_str() {
        "page" => json!({"html": "<h1>Hello</h1>"}),
        "image" => json!({
            "headers": {"Content-Type": "image/png", "Set-Cookie": ["a=1", "b=2"]},
            "body": STANDARD.encode(b"\x89PNG\r\n\x1a\nDATA")
        }),
        "redirect" => json!({"statusCode": 302, "headers": {"location": "/elsewhere"}}),
        "fails" => {
            return Reply::Finish(ActivationResponse::application_error(
                json!({"statusCode": 418, "body": "teapot"}),
            ));
        }
        "crashes" => {
            return Reply::Finish(ActivationResponse::developer_error(json!(
                "The action did not produce a valid response and exited unexpectedly."
            )));
        }
        _ => input,
    };
    Reply::Finish(ActivationResponse::success(result, None))
}

async fn web_app() -> (TestApp, Arc<LoadBalancer>, StandIn) {
    app_with_stand_in(ControllerConfig::default(), Box::new(script)).await
}

async fn create(app: &TestApp, name: &str, annotations: Value, parameters: Value) {
    let response = app
        .put(
            &format!("/api/v1/namespaces/_/actions/{name}"),
            GUEST,
            json!({
                "exec": {"kind": "nodejs:20", "code": "function main(p) { return p }"},
                "annotations": annotations,
                "parameters": parameters,
            }),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
}

fn exported() -> Value {
    json!([{"key": "web-export", "value": true}])
}

async fn web(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> TestResponse {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    app.send(builder.body(Body::from(body.to_vec())).unwrap())
        .await
}

#[tokio::test]
async fn json_extension_gets_query_body_and_context() {
    let (app, _balancer, _stand_in) = web_app().await;
    create(
        &app,
        "echo",
        exported(),
        json!([{"key": "greeting", "value": "hi"}]),
    )
    .await;
    let response = web(
        &app,
        Method::POST,
        "/api/v1/web/guest/default/echo.json/extra/path?name=Jane&n=1",
        &[("content-type", "application/json"), ("x-custom", "Yes")],
        br#"{"n": 2, "nested": {"a": true}}"#,
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert!(response.header("x-openwhisk-activation-id").is_some());
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    let body = response.json();
    assert_eq!(body["name"], "Jane");
    assert_eq!(body["n"], 2, "the body wins over the query");
    assert_eq!(body["nested"]["a"], true);
    assert_eq!(body["greeting"], "hi", "action parameters come along");
    assert_eq!(body["__ow_method"], "post");
    assert_eq!(body["__ow_path"], "/extra/path");
    assert_eq!(body["__ow_headers"]["x-custom"], "Yes");
    assert!(body.get("__ow_user").is_none(), "anonymous caller");
}

#[tokio::test]
async fn only_exported_actions_of_existing_namespaces_are_reachable() {
    let (app, _balancer, stand_in) = web_app().await;
    create(&app, "hidden", json!([]), json!([])).await;
    for path in [
        "/api/v1/web/guest/default/hidden.json",
        "/api/v1/web/guest/default/missing.json",
        "/api/v1/web/nobody/default/echo.json",
        "/api/v1/web/guest/nopackage/echo.json",
        "/api/v1/web/guest/default",
    ] {
        let response = web(&app, Method::GET, path, &[], b"").await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.error(), "The requested resource does not exist.");
    }
    assert!(stand_in.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn html_binary_cookies_and_redirects_are_shaped() {
    let (app, _balancer, _stand_in) = web_app().await;
    for name in ["page", "image", "redirect"] {
        create(&app, name, exported(), json!([])).await;
    }
    let page = web(
        &app,
        Method::GET,
        "/api/v1/web/guest/default/page.html",
        &[],
        b"",
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=UTF-8")
    );
    assert_eq!(page.text, "<h1>Hello</h1>");

    let request = Request::builder()
        .uri("/api/v1/web/guest/default/image")
        .body(Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/png");
    let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"\x89PNG\r\n\x1a\nDATA");

    let redirect = web(
        &app,
        Method::GET,
        "/api/v1/web/guest/default/redirect",
        &[],
        b"",
    )
    .await;
    assert_eq!(redirect.status, StatusCode::FOUND);
    assert_eq!(redirect.header("location"), Some("/elsewhere"));
}

#[tokio::test]
async fn errors_application_shaped_developer_opaque() {
    let (app, _balancer, _stand_in) = web_app().await;
    create(&app, "fails", exported(), json!([])).await;
    create(&app, "crashes", exported(), json!([])).await;
    create(&app, "page", exported(), json!([])).await;
    let fails = web(
        &app,
        Method::GET,
        "/api/v1/web/guest/default/fails",
        &[],
        b"",
    )
    .await;
    assert_eq!(fails.status.as_u16(), 418);
    assert_eq!(fails.text, "teapot");
    let crashes = web(
        &app,
        Method::GET,
        "/api/v1/web/guest/default/crashes",
        &[],
        b"",
    )
    .await;
    assert_eq!(crashes.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        crashes.error(),
        "There was an error processing your request."
    );
    let not_svg = web(
        &app,
        Method::GET,
        "/api/v1/web/guest/default/page.svg",
        &[],
        b"",
    )
    .await;
    assert_eq!(not_svg.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_svg.error(), "Response is not valid 'image/svg+xml'.");
}

#[tokio::test]
async fn require_whisk_auth_true_and_secret() {
    let (app, _balancer, _stand_in) = web_app().await;
    let with = |value: Value| json!([{"key": "web-export", "value": true}, {"key": "require-whisk-auth", "value": value}]);
    create(&app, "echo", with(json!(true)), json!([])).await;
    create(&app, "secret", with(json!("s3cret")), json!([])).await;

    let anonymous = web(
        &app,
        Method::GET,
        "/api/v1/web/guest/default/echo.json",
        &[],
        b"",
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let authorization = format!("Basic {}", STANDARD.encode(GUEST));
    let known = web(
        &app,
        Method::GET,
        "/api/v1/web/guest/default/echo.json",
        &[("authorization", &authorization)],
        b"",
    )
    .await;
    assert_eq!(known.status, StatusCode::OK, "{}", known.text);
    assert_eq!(known.json()["__ow_user"], "guest");

    let wrong = web(
        &app,
        Method::GET,
        "/api/v1/web/guest/default/secret.json",
        &[("x-require-whisk-auth", "nope")],
        b"",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let right = web(
        &app,
        Method::GET,
        "/api/v1/web/guest/default/secret.json",
        &[("x-require-whisk-auth", "s3cret")],
        b"",
    )
    .await;
    assert_eq!(right.status, StatusCode::OK);
}

#[tokio::test]
async fn options_is_answered_without_invoking_unless_custom() {
    let (app, _balancer, stand_in) = web_app().await;
    create(&app, "echo", exported(), json!([])).await;
    create(
        &app,
        "custom",
        json!([{"key": "web-export", "value": true}, {"key": "web-custom-options", "value": true}]),
        json!([]),
    )
    .await;
    let preflight = web(
        &app,
        Method::OPTIONS,
        "/api/v1/web/guest/default/echo",
        &[("access-control-request-headers", "X-Mine")],
        b"",
    )
    .await;
    assert_eq!(preflight.status, StatusCode::OK);
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("X-Mine")
    );
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH")
    );
    assert!(stand_in.received.lock().unwrap().is_empty());

    let custom = web(
        &app,
        Method::OPTIONS,
        "/api/v1/web/guest/default/custom.json",
        &[],
        b"",
    )
    .await;
    assert_eq!(custom.status, StatusCode::OK);
    assert_eq!(custom.json()["__ow_method"], "options");
    assert!(custom.header("access-control-allow-origin").is_none());
    assert_eq!(stand_in.received.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn reserved_and_final_parameters_cannot_be_overridden() {
    let (app, _balancer, stand_in) = web_app().await;
    create(
        &app,
        "echo",
        json!([{"key": "web-export", "value": true}, {"key": "final", "value": true}]),
        json!([{"key": "fixed", "value": "mine"}]),
    )
    .await;
    for query in ["__ow_method=get", "fixed=yours"] {
        let response = web(
            &app,
            Method::GET,
            &format!("/api/v1/web/guest/default/echo.json?{query}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(
            response.error(),
            "Request defines parameters that are not allowed (e.g., reserved properties)."
        );
    }
    assert!(stand_in.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn raw_actions_and_form_bodies() {
    let (app, _balancer, _stand_in) = web_app().await;
    create(
        &app,
        "raw",
        json!([{"key": "web-export", "value": true}, {"key": "raw-http", "value": true}]),
        json!([]),
    )
    .await;
    create(&app, "echo", exported(), json!([])).await;
    let raw = web(
        &app,
        Method::POST,
        "/api/v1/web/guest/default/raw.json?a=1&b=2",
        &[("content-type", "application/json")],
        br#"{"x":1}"#,
    )
    .await;
    assert_eq!(raw.status, StatusCode::OK, "{}", raw.text);
    let body = raw.json();
    assert_eq!(body["__ow_query"], "a=1&b=2");
    assert_eq!(body["__ow_body"], STANDARD.encode(br#"{"x":1}"#));
    assert!(body.get("a").is_none());

    let form = web(
        &app,
        Method::POST,
        "/api/v1/web/guest/default/echo.json",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"name=Jane+Doe",
    )
    .await;
    assert_eq!(form.json()["name"], "Jane Doe");
}

#[tokio::test]
async fn an_exported_sequence_is_a_web_action() {
    let (app, _balancer, stand_in) = web_app().await;
    create(&app, "echo", json!([]), json!([])).await;
    create(&app, "page", json!([]), json!([])).await;
    let response = app
        .put(
            "/api/v1/namespaces/_/actions/site",
            GUEST,
            json!({
                "exec": {"kind": "sequence", "components": ["/_/echo", "/_/page"]},
                "annotations": [{"key": "web-export", "value": true}]
            }),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let page = web(
        &app,
        Method::GET,
        "/api/v1/web/guest/default/site.html",
        &[],
        b"",
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.text, "<h1>Hello</h1>");
    let id = page
        .header("x-openwhisk-activation-id")
        .unwrap()
        .to_string();
    let record = app
        .get(&format!("/api/v1/namespaces/_/activations/{id}"), GUEST)
        .await;
    assert_eq!(
        record.json()["name"],
        "site",
        "the header names the sequence"
    );
    assert_eq!(stand_in.received.lock().unwrap().len(), 2);
}
