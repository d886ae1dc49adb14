//! End-to-end tests of `wsk api` against the real whisk-rs server (route management needs no
//! invoker; serving the routes is tested in the controller's tests).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::Platform;

fn web_action(platform: &Platform, name: &str, web: &str) {
    let file = format!("{}.js", name.replace('/', "_"));
    let code = platform.file(&file, "function main(p) { return p }");
    let run = platform.wsk(&[
        "action",
        "create",
        name,
        code.to_str().unwrap(),
        "--web",
        web,
    ]);
    assert_eq!(run.code, 0, "{run:?}");
}

fn table_row(action: &str, verb: &str, name: &str, url: &str, widths: (usize, usize)) -> String {
    format!(
        "{action:<a$} {verb:>7} {name:>n$}  {url}",
        a = widths.0,
        n = widths.1 + 1
    )
}

#[test]
fn create_list_get_and_delete_routes() {
    let platform = Platform::start();
    web_action(&platform, "echo", "true");
    let base = format!("{}/api/guest", platform.url);

    platform
        .wsk(&["api", "create", "/hello", "/world", "get", "echo"])
        .assert_ok(&[
            "ok: created API /hello/world GET for action /guest/echo",
            &format!("{base}/hello/world"),
        ]);
    platform
        .wsk(&[
            "api",
            "create",
            "/hello",
            "/world",
            "post",
            "echo",
            "-n",
            "Greeter",
            "--response-type",
            "http",
        ])
        .assert_ok(&[
            "ok: created API /hello/world POST for action /guest/echo",
            &format!("{base}/hello/world"),
        ]);
    platform
        .wsk(&["api", "create", "/items", "get", "echo"])
        .assert_ok(&[
            "ok: created API /items GET for action /guest/echo",
            &format!("{base}/items"),
        ]);

    let run = platform.wsk(&["package", "create", "tools"]);
    assert_eq!(run.code, 0, "{run:?}");
    web_action(&platform, "tools/pkgd", "true");
    platform
        .wsk(&["api", "create", "/tools", "/x", "put", "tools/pkgd"])
        .assert_ok(&[
            "ok: created API /tools/x PUT for action /guest/tools/pkgd",
            &format!("{base}/tools/x"),
        ]);
    platform
        .wsk(&[
            "api",
            "create",
            "/tools",
            "/y/{id}",
            "get",
            "tools/pkgd",
            "--response-type",
            "http",
        ])
        .assert_ok(&[
            "ok: created API /tools/y/{id} GET for action /guest/tools/pkgd",
            &format!("{base}/tools/y/{{id}}"),
        ]);
    let got = platform.wsk(&["api", "get", "/tools"]);
    let apidoc: Value = serde_json::from_str(&got.stdout).unwrap();
    let parameter = &apidoc["paths"]["/y/{id}"]["get"]["parameters"][0];
    assert_eq!(parameter["name"], "id");
    assert_eq!(parameter["description"], "Default description for 'id'");
    platform
        .wsk(&["api", "delete", "/tools"])
        .assert_ok(&["ok: deleted API /tools"]);

    let widths = ("/guest/echo".len(), "API Name".len());
    let listed = platform.wsk(&["api", "list", "-n"]);
    listed.assert_ok(&[
        "ok: APIs",
        &table_row("Action", "Verb", "API Name", "URL", widths),
        &table_row("/guest/echo", "get", "/", &format!("{base}/items"), widths),
        &table_row(
            "/guest/echo",
            "get",
            "/hello",
            &format!("{base}/hello/world"),
            widths,
        ),
        &table_row(
            "/guest/echo",
            "post",
            "/hello",
            &format!("{base}/hello/world"),
            widths,
        ),
    ]);
    platform
        .wsk(&["api", "list", "/hello", "/world", "post", "-f"])
        .assert_ok(&[
            "ok: APIs",
            "Action: /guest/echo",
            "   API Name: /hello",
            "   Base path: /hello",
            "   Path: /world",
            "   Verb: post",
            &format!("   URL: {base}/hello/world"),
        ]);

    let got = platform.wsk(&["api", "get", "/hello"]);
    assert_eq!(got.code, 0, "{got:?}");
    let apidoc: Value = serde_json::from_str(&got.stdout).unwrap();
    assert_eq!(apidoc["basePath"], "/hello");
    assert_eq!(apidoc["swagger"], "2.0");
    let post = &apidoc["paths"]["/world"]["post"]["x-openwhisk"];
    assert_eq!(post["action"], "echo");
    assert_eq!(post["namespace"], "guest");
    assert!(post["url"].as_str().unwrap().ends_with("/echo.http"));
    let full = platform.wsk(&["api", "get", "/hello", "-f"]);
    let full: Value = serde_json::from_str(&full.stdout).unwrap();
    assert_eq!(full["gwApiUrl"], format!("{base}/hello"));
    let yaml = platform.wsk(&["api", "get", "/hello", "--format", "yaml"]);
    assert_eq!(yaml.code, 0, "{yaml:?}");
    assert!(yaml.stdout.contains("basePath: /hello"), "{}", yaml.stdout);

    platform
        .wsk(&["api", "delete", "/hello", "/world", "get"])
        .assert_ok(&["ok: deleted /world GET from /hello"]);
    platform
        .wsk(&["api", "delete", "/hello", "/world"])
        .assert_ok(&["ok: deleted /world from /hello"]);
    platform
        .wsk(&["api", "delete", "/"])
        .assert_ok(&["ok: deleted API /"]);
    platform.wsk(&["api", "list"]).assert_ok(&[
        "ok: APIs",
        &format!("{:<30} {:>7} {:>20}  URL", "Action", "Verb", "API Name"),
    ]);
}

#[test]
fn swagger_files_create_whole_apis() {
    let platform = Platform::start();
    let file = platform.file(
        "shop.yaml",
        "swagger: '2.0'\nbasePath: /shop\ninfo:\n  title: Shop\n  version: 1.0.0\npaths:\n  /items:\n    get:\n      operationId: getItems\n      x-openwhisk:\n        namespace: guest\n        package: tools\n        action: items\n        url: http://127.0.0.1/api/v1/web/guest/tools/items.json\n",
    );
    let base = format!("{}/api/guest", platform.url);
    platform
        .wsk(&["api", "create", "-c", file.to_str().unwrap()])
        .assert_ok(&[
            "ok: created API /shop/items get for action /guest/tools/items",
            &format!("{base}/shop/items"),
        ]);
    let got = platform.wsk(&["api", "get", "Shop"]);
    let apidoc: Value = serde_json::from_str(&got.stdout).unwrap();
    assert_eq!(apidoc["info"]["title"], "Shop");

    let broken = platform.file("broken.json", r#"{"swagger": "2.0", "basePath": "/x"}"#);
    let run = platform.wsk(&["api", "create", "-c", broken.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("Swagger file is invalid (missing basePath, info, paths, or swagger fields)"),
        "{run:?}"
    );
}

#[test]
fn refusals() {
    let platform = Platform::start();
    web_action(&platform, "plain", "false");
    let refused = |args: &[&str], message: &str| {
        let run = platform.wsk(args);
        assert_eq!(run.code, 1, "{run:?}");
        assert_eq!(run.stdout, "");
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    };
    refused(
        &["api", "create", "/a", "/b", "get", "plain"],
        "Action '/_/plain' is not a web action. Issue 'wsk action update \"/_/plain\" --web true' to convert the action to a web action.",
    );
    refused(
        &["api", "create", "/a", "/b", "get", "missing"],
        "Unable to get action '/_/missing': The requested resource does not exist.",
    );
    refused(
        &["api", "create"],
        "Invalid argument(s). Specify a swagger file",
    );
    refused(
        &["api", "create", "/a", "b", "get", "plain"],
        "'b' must begin with '/'.",
    );
    refused(
        &["api", "create", "/a", "/b", "fetch", "plain"],
        "'fetch' is not a valid API verb.",
    );
    refused(
        &["api", "create", "/a", "/b/{id}", "get", "plain"],
        "A response type of 'http' is required when using path parameters.",
    );
    refused(
        &["api", "create", "Name", "/b", "get", "plain", "-n", "Other"],
        "An API name can only be specified once.",
    );
    refused(
        &["api", "get", "/nothing"],
        "API does not exist for basepath /nothing",
    );
    refused(
        &["api", "get", "/nothing", "--format", "xml"],
        "Invalid format type: xml",
    );
    refused(
        &["api", "delete", "/nothing"],
        "Unable to delete API: API deletion failure: API '/nothing' does not exist.",
    );
}
