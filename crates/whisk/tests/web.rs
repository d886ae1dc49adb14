//! Web actions end to end: real Node.js actions in real containers, created over the REST API
//! with `web-export`, and requested under `/api/v1/web/...` over HTTP and HTTPS exactly as a
//! browser or a `curl` user would (issue 6).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{GUEST_AUTH, Platform, platform_with_invoker};

/// A 1×1 PNG: binary bytes (NULs, bytes above 0x7f) that any text decoding on the way would
/// mangle.
const PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// Serves the same page as `.html` (it reads `body`) and as `.http` (headers and body).
const PAGE: &str = "function main(params) {\n\
       const who = params.name || 'stranger';\n\
       return {\n\
         headers: {'Content-Type': 'text/html'},\n\
         body: '<!DOCTYPE html><html><body><h1>Hello, ' + who + '!</h1></body></html>'\n\
       };\n\
     }";

/// A small JSON API: it answers with what it was given, so the test sees the request mapping.
const API: &str = "function main(p) {\n\
       return {\n\
         method: p.__ow_method, path: p.__ow_path, name: p.name === undefined ? null : p.name,\n\
         n: p.n === undefined ? null : p.n, nested: p.nested === undefined ? null : p.nested,\n\
         greeting: p.greeting, user: p.__ow_user === undefined ? null : p.__ow_user,\n\
         contentType: p.__ow_headers['content-type'] === undefined ? null : p.__ow_headers['content-type'],\n\
         items: [1, 2, 3]\n\
       };\n\
     }";

fn image_code() -> String {
    format!(
        "function main() {{\n\
           return {{headers: {{'Content-Type': 'image/png'}}, body: '{PNG_BASE64}'}};\n\
         }}"
    )
}

const REDIRECT: &str = "function main() {\n\
       return {\n\
         statusCode: 302,\n\
         headers: {\n\
           location: '/api/v1/web/guest/default/page.html',\n\
           'Set-Cookie': ['session=abc123; Path=/; HttpOnly', 'theme=dark; Path=/']\n\
         }\n\
       };\n\
     }";

/// Echoes what a raw-http action receives.
const RAW: &str = "function main(p) {\n\
       return {query: p.__ow_query, body: p.__ow_body, a: p.a === undefined ? null : p.a,\n\
               method: p.__ow_method};\n\
     }";

/// Creates (or replaces) a Node.js action with these annotations and parameters.
async fn put_action(
    platform: &Platform,
    name: &str,
    code: &str,
    annotations: Value,
    parameters: Value,
) {
    platform
        .guest(
            Method::PUT,
            &format!("/namespaces/_/actions/{name}?overwrite=true"),
            Some(json!({
                "exec": {"kind": "nodejs:20", "code": code},
                "annotations": annotations,
                "parameters": parameters,
            })),
        )
        .await
        .assert_ok();
}

fn exported() -> Value {
    json!([{"key": "web-export", "value": true}])
}

/// A client for web requests: it does not follow redirects (the test looks at them) and, over
/// HTTPS, trusts only the platform's own certificate.
fn web_client(platform: &Platform) -> reqwest::Client {
    platform
        .client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("web client")
}

fn web_url(platform: &Platform, path: &str) -> String {
    format!("{}/api/v1/web/guest/default/{path}", platform.url)
}

/// What one web request answered, its body kept as bytes.
struct WebReply {
    status: StatusCode,
    version: reqwest::Version,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

impl WebReply {
    async fn from(response: reqwest::Response) -> Self {
        let status = response.status();
        let version = response.version();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("response body").to_vec();
        Self {
            status,
            version,
            headers,
            bytes,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|value| value.to_str().expect("a text header"))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The activation id the platform announces; every web action answer carries one.
    fn activation_id(&self) -> String {
        let id = self
            .header("x-openwhisk-activation-id")
            .unwrap_or_else(|| panic!("no activation id on {:?}", self.headers));
        assert_eq!(id.len(), 32, "{id}");
        id.to_owned()
    }

    #[track_caller]
    fn assert_status(&self, status: u16) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
    }

    /// Asserts an OpenWhisk error body with this status and message.
    #[track_caller]
    fn assert_error(&self, status: u16, message: &str) {
        self.assert_status(status);
        let body = self.json();
        assert_eq!(body["error"], message, "{body}");
        assert_eq!(body["code"].as_str(), self.header("x-request-id"), "{body}");
    }
}

async fn send(request: reqwest::RequestBuilder) -> WebReply {
    WebReply::from(request.send().await.expect("the platform answers")).await
}

async fn get(client: &reqwest::Client, url: &str) -> WebReply {
    send(client.get(url)).await
}

#[tokio::test]
async fn an_html_page_a_json_api_an_image_and_a_redirect_are_served_as_openwhisk_serves_them() {
    let Some(platform) = platform_with_invoker("web-content", "", &[]) else {
        return;
    };
    put_action(&platform, "page", PAGE, exported(), json!([])).await;
    put_action(
        &platform,
        "api",
        API,
        exported(),
        json!([{"key": "greeting", "value": "hi"}]),
    )
    .await;
    put_action(&platform, "image", &image_code(), exported(), json!([])).await;
    put_action(&platform, "redirect", REDIRECT, exported(), json!([])).await;
    let client = web_client(&platform);

    // The page: `.html` takes the result's body as the document.
    let html = get(&client, &web_url(&platform, "page.html?name=Ann")).await;
    html.assert_status(200);
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=UTF-8")
    );
    assert_eq!(
        html.text(),
        "<!DOCTYPE html><html><body><h1>Hello, Ann!</h1></body></html>"
    );
    assert_eq!(html.header("access-control-allow-origin"), Some("*"));
    // The activation belongs to the namespace's owner, whose records the API lists.
    let id = html.activation_id();
    let record = platform.wait_for_record(&id).await;
    assert_eq!(record["name"], "page");
    assert_eq!(record["response"]["status"], "success");

    // The same page as `.http` (and with no extension, which means `.http`): the action's own
    // content type.
    for path in ["page.http?name=Bo", "page?name=Bo"] {
        let http = get(&client, &web_url(&platform, path)).await;
        http.assert_status(200);
        assert_eq!(http.header("content-type"), Some("text/html"), "{path}");
        assert_eq!(
            http.text(),
            "<!DOCTYPE html><html><body><h1>Hello, Bo!</h1></body></html>"
        );
        http.activation_id();
    }

    // The JSON API: query parameters are strings, a JSON body's object merges over them, a form
    // body's fields arrive as strings; action parameters sit underneath.
    let query = get(
        &client,
        &web_url(&platform, "api.json/items/42?name=Ann&n=1"),
    )
    .await;
    query.assert_status(200);
    assert_eq!(query.header("content-type"), Some("application/json"));
    assert_eq!(
        query.json(),
        json!({"method": "get", "path": "/items/42", "name": "Ann", "n": "1", "nested": null,
               "greeting": "hi", "user": null, "contentType": null, "items": [1, 2, 3]})
    );
    let posted = send(
        client
            .post(web_url(&platform, "api.json?name=Ann&n=1"))
            .json(&json!({"n": 2, "nested": {"deep": [true, null]}, "greeting": "hello"})),
    )
    .await;
    posted.assert_status(200);
    assert_eq!(
        posted.json(),
        json!({"method": "post", "path": "", "name": "Ann", "n": 2,
               "nested": {"deep": [true, null]}, "greeting": "hello", "user": null,
               "contentType": "application/json", "items": [1, 2, 3]})
    );
    let form = send(
        client
            .put(web_url(&platform, "api.json"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("name=Jane+Doe&n=3"),
    )
    .await;
    form.assert_status(200);
    assert_eq!(
        form.json(),
        json!({"method": "put", "path": "", "name": "Jane Doe", "n": "3", "nested": null,
               "greeting": "hi", "user": null,
               "contentType": "application/x-www-form-urlencoded", "items": [1, 2, 3]})
    );
    // A reserved name in the request is refused before anything runs.
    get(&client, &web_url(&platform, "api.json?__ow_method=get"))
        .await
        .assert_error(
            400,
            "Request defines parameters that are not allowed (e.g., reserved properties).",
        );
    // An object result is not an HTML document.
    get(&client, &web_url(&platform, "api.html"))
        .await
        .assert_error(400, "Response is not valid 'text/html'.");

    // The image: a base64 body with a binary content type is decoded to its exact bytes.
    let png = STANDARD.decode(PNG_BASE64).unwrap();
    for path in ["image", "image.http"] {
        let image = get(&client, &web_url(&platform, path)).await;
        image.assert_status(200);
        assert_eq!(image.header("content-type"), Some("image/png"), "{path}");
        assert_eq!(
            image.header("content-length"),
            Some(png.len().to_string().as_str())
        );
        assert_eq!(image.bytes, png, "{path}");
        image.activation_id();
    }

    // The redirect: the status, the location and each cookie as a header of its own; no body.
    let redirect = get(&client, &web_url(&platform, "redirect")).await;
    redirect.assert_status(302);
    assert_eq!(
        redirect.header("location"),
        Some("/api/v1/web/guest/default/page.html")
    );
    let cookies: Vec<&str> = redirect
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect();
    assert_eq!(
        cookies,
        ["session=abc123; Path=/; HttpOnly", "theme=dark; Path=/"]
    );
    assert!(redirect.bytes.is_empty(), "{}", redirect.text());
    redirect.activation_id();
}

#[tokio::test]
async fn whisk_auth_cors_raw_http_private_actions_and_sequences_behave_as_on_openwhisk() {
    let Some(platform) = platform_with_invoker("web-access", "", &[]) else {
        return;
    };
    let requiring = |value: Value| json!([{"key": "web-export", "value": true}, {"key": "require-whisk-auth", "value": value}]);
    put_action(&platform, "api", API, requiring(json!(true)), json!([])).await;
    put_action(
        &platform,
        "secret",
        API,
        requiring(json!("s3cret")),
        json!([]),
    )
    .await;
    put_action(&platform, "pin", API, requiring(json!(4711)), json!([])).await;
    put_action(&platform, "open", API, exported(), json!([])).await;
    put_action(&platform, "hidden", API, json!([]), json!([])).await;
    put_action(
        &platform,
        "raw",
        RAW,
        json!([{"key": "web-export", "value": true}, {"key": "raw-http", "value": true}]),
        json!([]),
    )
    .await;
    let client = web_client(&platform);
    let alice = platform.create_user("alice");
    let (guest_user, guest_key) = GUEST_AUTH.split_once(':').unwrap();
    let (alice_user, alice_key) = alice.split_once(':').unwrap();

    // `require-whisk-auth: true`: any valid identity, which the action sees as `__ow_user`;
    // wrong or absent credentials are anonymous, and so refused.
    let url = web_url(&platform, "api.json");
    get(&client, &url).await.assert_status(401);
    send(client.get(&url).basic_auth(guest_user, Some("wrong-key")))
        .await
        .assert_status(401);
    let as_guest = send(client.get(&url).basic_auth(guest_user, Some(guest_key))).await;
    as_guest.assert_status(200);
    assert_eq!(as_guest.json()["user"], "guest");
    let as_alice = send(client.get(&url).basic_auth(alice_user, Some(alice_key))).await;
    as_alice.assert_status(200);
    assert_eq!(as_alice.json()["user"], "alice");

    // A secret annotation: the `X-Require-Whisk-Auth` header must carry it (a number as its
    // decimal text); Basic credentials do not replace it.
    let secret = web_url(&platform, "secret.json");
    get(&client, &secret).await.assert_status(401);
    send(client.get(&secret).header("x-require-whisk-auth", "nope"))
        .await
        .assert_status(401);
    send(client.get(&secret).basic_auth(guest_user, Some(guest_key)))
        .await
        .assert_status(401);
    let right = send(client.get(&secret).header("x-require-whisk-auth", "s3cret")).await;
    right.assert_status(200);
    assert_eq!(right.json()["user"], Value::Null);
    let pin = web_url(&platform, "pin.json");
    send(client.get(&pin).header("x-require-whisk-auth", "4712"))
        .await
        .assert_status(401);
    send(client.get(&pin).header("x-require-whisk-auth", "4711"))
        .await
        .assert_status(200);

    // A CORS preflight is answered by the platform itself: no activation, no body.
    let preflight = send(
        client
            .request(Method::OPTIONS, web_url(&platform, "open.json"))
            .header("origin", "https://example.test")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "X-Custom, Content-Type"),
    )
    .await;
    preflight.assert_status(200);
    assert!(preflight.bytes.is_empty(), "{}", preflight.text());
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("X-Custom, Content-Type")
    );
    assert!(preflight.header("x-openwhisk-activation-id").is_none());
    let open = get(&client, &web_url(&platform, "open.json")).await;
    open.assert_status(200);
    assert_eq!(open.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        open.header("access-control-allow-headers"),
        Some("Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent")
    );

    // An action that is not exported does not exist for the web, as a missing one does not.
    for path in ["hidden.json", "hidden", "missing.json"] {
        get(&client, &web_url(&platform, path))
            .await
            .assert_error(404, "The requested resource does not exist.");
    }
    get(
        &client,
        &format!("{}/api/v1/web/nobody/default/open.json", platform.url),
    )
    .await
    .assert_error(404, "The requested resource does not exist.");

    // raw-http: the query string and the body arrive untouched (a JSON body base64-encoded).
    let body = r#"{"a": 5, "b": [1, 2]}"#;
    let raw = send(
        client
            .post(web_url(&platform, "raw.json?a=1&b=two%20words"))
            .header("content-type", "application/json")
            .body(body),
    )
    .await;
    raw.assert_status(200);
    assert_eq!(
        raw.json(),
        json!({"query": "a=1&b=two%20words", "body": STANDARD.encode(body), "a": null,
               "method": "post"})
    );
    let text = send(
        client
            .post(web_url(&platform, "raw.json"))
            .header("content-type", "text/plain")
            .body("plain words"),
    )
    .await;
    text.assert_status(200);
    assert_eq!(
        text.json(),
        json!({"query": "", "body": "plain words", "a": null, "method": "post"})
    );

    // A sequence exported as a web action: the request reaches the first component, the last
    // component's result is shaped into the response.
    put_action(
        &platform,
        "shout",
        "function main(p) { return {text: String(p.text).toUpperCase()} }",
        json!([]),
        json!([]),
    )
    .await;
    put_action(
        &platform,
        "wrap",
        "function main(p) { return {headers: {'Content-Type': 'text/html'}, body: '<p>' + p.text + '</p>'} }",
        json!([]),
        json!([]),
    )
    .await;
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/loud-page?overwrite=true",
            Some(json!({
                "exec": {"kind": "sequence", "components": ["/_/shout", "/_/wrap"]},
                "annotations": exported(),
            })),
        )
        .await
        .assert_ok();
    let sequence = get(&client, &web_url(&platform, "loud-page?text=hello")).await;
    sequence.assert_status(200);
    assert_eq!(sequence.header("content-type"), Some("text/html"));
    assert_eq!(sequence.text(), "<p>HELLO</p>");
    let record = platform.wait_for_record(&sequence.activation_id()).await;
    assert_eq!(record["name"], "loud-page");
    assert_eq!(record["logs"].as_array().map(Vec::len), Some(2), "{record}");
    // Its components are not exported: the sequence is the only way in.
    get(&client, &web_url(&platform, "shout.json?text=x"))
        .await
        .assert_error(404, "The requested resource does not exist.");
}

// Multi-threaded: the client's HTTP/2 connection tasks must keep running while the platform is
// stopped in `Drop` (an HTTP/2 shutdown waits for the client to acknowledge it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_the_image_are_served_over_https_with_the_self_signed_certificate() {
    let Some(platform) = platform_with_invoker("web-tls", "", &["--tls-self-signed"]) else {
        return;
    };
    assert!(platform.url.starts_with("https://"), "{}", platform.url);
    // Over HTTPS the REST API creates the actions too (the support client trusts the
    // certificate the same way).
    put_action(&platform, "page", PAGE, exported(), json!([])).await;
    put_action(&platform, "image", &image_code(), exported(), json!([])).await;
    let client = web_client(&platform);

    let html = get(&client, &web_url(&platform, "page.html?name=TLS")).await;
    html.assert_status(200);
    assert_eq!(html.version, reqwest::Version::HTTP_2);
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=UTF-8")
    );
    assert_eq!(
        html.text(),
        "<!DOCTYPE html><html><body><h1>Hello, TLS!</h1></body></html>"
    );
    html.activation_id();

    let image = get(&client, &web_url(&platform, "image")).await;
    image.assert_status(200);
    assert_eq!(image.header("content-type"), Some("image/png"));
    assert_eq!(image.bytes, STANDARD.decode(PNG_BASE64).unwrap());

    // HTTP/1.1 clients are served as well.
    let http1 = web_client_http1(&platform);
    let page = get(&http1, &web_url(&platform, "page.html?name=h1")).await;
    page.assert_status(200);
    assert_eq!(page.version, reqwest::Version::HTTP_11);
    assert_eq!(
        page.text(),
        "<!DOCTYPE html><html><body><h1>Hello, h1!</h1></body></html>"
    );

    // A client that does not trust the certificate is turned away by its own TLS check.
    let untrusting = reqwest::Client::builder().use_rustls_tls().build().unwrap();
    assert!(
        untrusting
            .get(web_url(&platform, "page.html"))
            .send()
            .await
            .is_err(),
        "an unknown self-signed certificate must not be accepted"
    );
}

fn web_client_http1(platform: &Platform) -> reqwest::Client {
    platform
        .client_builder()
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP/1.1 client")
}
