//! The HTTP framework: info endpoints, transaction ids, CORS, authentication, routing errors,
//! body and query handling, namespaces and limits.

#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{BLOCKED, GUEST, OTHER, TestApp};
use serde_json::json;

#[tokio::test]
async fn ping_answers_pong() {
    let app = TestApp::new().await;
    let response = app.call(Method::GET, "/ping", None, None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text, "pong");
}

#[tokio::test]
async fn api_info_needs_no_authentication() {
    let app = TestApp::new().await;
    for path in ["/api/v1", "/api/v1/"] {
        let response = app.call(Method::GET, path, None, None).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        let body = response.json();
        assert_eq!(body["description"], "OpenWhisk API");
        assert_eq!(body["api_version"], "1.0.0");
        assert_eq!(body["api_version_path"], "v1");
        assert!(body["build"].is_string());
        assert!(body["buildno"].is_string());
        assert_eq!(
            body["swagger_paths"],
            json!({"ui": "/docs", "api-docs": "/api-docs"})
        );
    }
}

#[tokio::test]
async fn controller_info_reports_limits_in_bytes() {
    let app = TestApp::new().await;
    let response = app.call(Method::GET, "/", None, None).await;
    assert_eq!(response.status, StatusCode::OK);
    let body = response.json();
    assert_eq!(body["description"], "OpenWhisk");
    assert_eq!(body["api_paths"], json!(["/api/v1"]));
    assert_eq!(
        body["support"]["github"],
        "https://github.com/apache/openwhisk/issues"
    );
    let limits = &body["limits"];
    assert_eq!(limits["min_action_memory"], 134_217_728);
    assert_eq!(limits["max_action_memory"], 536_870_912);
    assert_eq!(limits["max_action_logs"], 10_485_760);
    assert_eq!(limits["max_action_duration"], 300_000);
    assert_eq!(limits["sequence_length"], 50);
    let nodejs = body["runtimes"]["nodejs"].as_array().unwrap();
    let default_node = nodejs.iter().find(|k| k["default"] == true).unwrap();
    assert_eq!(default_node["kind"], "nodejs:20");
    assert!(default_node["image"].is_string());
    assert!(default_node["requireMain"].is_boolean());
    assert_eq!(
        response.header("access-control-allow-methods"),
        Some("OPTIONS, GET, POST")
    );
}

#[tokio::test]
async fn api_docs_serves_the_swagger_document() {
    let app = TestApp::new().await;
    let response = app.call(Method::GET, "/api/v1/api-docs", None, None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert!(body["paths"].is_object());
    assert!(body["swagger"].is_string() || body["openapi"].is_string());
}

#[tokio::test]
async fn generated_request_ids_are_32_alphanumerics_and_echoed_in_errors() {
    let app = TestApp::new().await;
    let response = app
        .call(Method::GET, "/api/v1/namespaces", None, None)
        .await;
    let tid = response.header("x-request-id").unwrap().to_owned();
    assert_eq!(tid.len(), 32);
    assert!(tid.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(response.json()["code"], tid.as_str());
}

#[tokio::test]
async fn client_request_id_is_adopted_unless_it_is_a_system_id() {
    let app = TestApp::new().await;
    let request = |id: &str| {
        Request::builder()
            .uri("/api/v1/namespaces/_/nothing")
            .header("x-request-id", id)
            .body(Body::empty())
            .unwrap()
    };
    let adopted = app.send(request("my-trace-42")).await;
    assert_eq!(adopted.header("x-request-id"), Some("my-trace-42"));
    assert_eq!(adopted.json()["code"], "my-trace-42");

    let replaced = app.send(request("sid_invoker")).await;
    let tid = replaced.header("x-request-id").unwrap();
    assert_ne!(tid, "sid_invoker");
    assert!(!tid.starts_with("sid_"));
}

#[tokio::test]
async fn every_response_has_a_request_id() {
    let app = TestApp::new().await;
    for path in ["/", "/ping", "/api/v1", "/nowhere"] {
        let response = app.call(Method::GET, path, None, None).await;
        assert!(response.header("x-request-id").is_some(), "{path}");
    }
}

#[tokio::test]
async fn rest_api_responses_carry_cors_headers() {
    let app = TestApp::new().await;
    let response = app.get("/api/v1/namespaces", GUEST).await;
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        response.header("access-control-allow-methods"),
        Some("GET, DELETE, POST, PUT, HEAD")
    );
    assert_eq!(
        response.header("access-control-allow-headers"),
        Some("Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent")
    );
    let error = app
        .call(Method::GET, "/api/v1/namespaces", None, None)
        .await;
    assert_eq!(error.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn options_anywhere_under_the_api_is_200_without_credentials() {
    let app = TestApp::new().await;
    for path in [
        "/api/v1",
        "/api/v1/namespaces/_/actions/hello",
        "/api/v1/namespaces/guest/packages",
        "/api/v1/does/not/exist",
    ] {
        let response = app.call(Method::OPTIONS, path, None, None).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
        assert!(response.header("x-request-id").is_some());
    }
}

#[tokio::test]
async fn missing_credentials_are_401_with_a_challenge() {
    let app = TestApp::new().await;
    for path in [
        "/api/v1/namespaces",
        "/api/v1/namespaces/_/actions",
        "/api/v1/namespaces/_/unknown",
    ] {
        let response = app.call(Method::GET, path, None, None).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            response.error(),
            "The resource requires authentication, which was not supplied with the request"
        );
        assert_eq!(
            response.header("www-authenticate"),
            Some("Basic realm=\"OpenWhisk secure realm\"")
        );
    }
}

#[tokio::test]
async fn invalid_credentials_are_401_with_a_challenge() {
    let app = TestApp::new().await;
    let wrong_key = format!("23bc46b1-71f6-4ed5-8c54-816aa4f8c502:{}", "x".repeat(64));
    let unknown_uuid = format!("00000000-0000-0000-0000-000000000000:{}", "y".repeat(64));
    let short_key = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZ";
    for credentials in [
        wrong_key.as_str(),
        unknown_uuid.as_str(),
        short_key,
        BLOCKED,
        "no-colon-at-all",
    ] {
        let response = app.get("/api/v1/namespaces", credentials).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{credentials}");
        assert_eq!(response.error(), "The supplied authentication is invalid");
        assert_eq!(
            response.header("www-authenticate"),
            Some("Basic realm=\"OpenWhisk secure realm\"")
        );
    }
    let garbage = Request::builder()
        .uri("/api/v1/namespaces")
        .header(header::AUTHORIZATION, "Basic !!!not-base64!!!")
        .body(Body::empty())
        .unwrap();
    let response = app.send(garbage).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.error(), "The supplied authentication is invalid");
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let app = TestApp::new().await;
    for path in [
        "/nowhere",
        "/api/v1/namespaces/_/unknown",
        "/api/v1/namespaces/_/actions/a/b/c",
    ] {
        let response = app.get(path, GUEST).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            response.error(),
            "The requested resource could not be found."
        );
    }
}

#[tokio::test]
async fn wrong_methods_are_405_listing_supported_ones() {
    let app = TestApp::new().await;
    let response = app.post("/api/v1/namespaces/_/limits", GUEST, None).await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response.error(),
        "HTTP method not allowed, supported methods: GET"
    );
}

#[tokio::test]
async fn namespaces_lists_only_the_callers_namespace() {
    let app = TestApp::new().await;
    let response = app.get("/api/v1/namespaces", GUEST).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json(), json!(["guest"]));
    let response = app.get("/api/v1/namespaces", OTHER).await;
    assert_eq!(response.json(), json!(["other"]));
}

#[tokio::test]
async fn limits_are_the_callers_effective_limits() {
    let app = TestApp::new().await;
    for path in [
        "/api/v1/namespaces/_/limits",
        "/api/v1/namespaces/guest/limits",
    ] {
        let response = app.get(path, GUEST).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        let body = response.json();
        assert_eq!(body["minActionMemory"], 128);
        assert_eq!(body["maxActionMemory"], 512);
        assert_eq!(body["minActionTimeout"], 100);
        assert_eq!(body["maxActionTimeout"], 300_000);
        assert_eq!(body["maxActionLogs"], 10);
        assert_eq!(body["maxParameterSize"], "1048576 B");
        assert!(body["invocationsPerMinute"].is_u64());
        assert!(body.get("allowedKinds").is_none());
    }
}

#[tokio::test]
async fn limits_reflect_namespace_overrides() {
    let app = TestApp::new().await;
    let overrides = whisk_model::NamespaceLimits {
        invocations_per_minute: Some(7),
        allowed_kinds: Some(vec!["nodejs:20".into()]),
        ..Default::default()
    };
    app.store
        .subjects
        .set_limits("guest", &overrides)
        .await
        .unwrap();
    let body = app.get("/api/v1/namespaces/_/limits", GUEST).await.json();
    assert_eq!(body["invocationsPerMinute"], 7);
    assert_eq!(body["allowedKinds"], json!(["nodejs:20"]));
}

#[tokio::test]
async fn limits_of_another_namespace_are_403() {
    let app = TestApp::new().await;
    let response = app.get("/api/v1/namespaces/other/limits", GUEST).await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(
        response.error(),
        "The supplied authentication is not authorized to access 'other'."
    );
}

#[tokio::test]
async fn individual_limits_are_not_implemented() {
    let app = TestApp::new().await;
    let response = app.get("/api/v1/namespaces/_/limits/memory", GUEST).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.error(),
        "Inner entity level routes for limits are not yet implemented."
    );
}

#[tokio::test]
async fn bad_namespace_segments_are_400() {
    let app = TestApp::new().await;
    let response = app.get("/api/v1/namespaces/bad!ns/limits", GUEST).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.error(),
        "The namespace contains illegal characters."
    );
    let long = "n".repeat(257);
    let response = app
        .get(&format!("/api/v1/namespaces/{long}/limits"), GUEST)
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.error(),
        "Namespace longer than allowed: 257 > 256."
    );
}
