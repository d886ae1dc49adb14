//! End-to-end tests: the real `whisk` binary, a temporary data directory, real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{GUEST_AUTH, Platform};

const HELLO: &str = "function main(p){return p}";

fn hello_action() -> Value {
    json!({"exec": {"kind": "nodejs:default", "code": HELLO}})
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn info_endpoints_answer_without_credentials() {
    let platform = Platform::start();
    let api = platform.call(Method::GET, "", None, None).await;
    assert_eq!(api.assert_ok()["api_version_path"], "v1");
    assert_eq!(api.body["description"], "OpenWhisk API");

    let root = Reply::get(&platform, "/").await;
    assert_eq!(root["api_paths"], json!(["/api/v1"]));
    assert_eq!(root["limits"]["default_max_action_duration"], 300000);
    let kinds: Vec<&str> = root["runtimes"]["nodejs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|runtime| runtime["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"nodejs:20"), "{kinds:?}");

    let ping = platform
        .raw()
        .get(format!("{}/ping", platform.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    assert!(ping.text().await.unwrap().contains("pong"));

    let namespaces = platform.guest(Method::GET, "/namespaces", None).await;
    assert_eq!(namespaces.assert_ok(), &json!(["guest"]));
}

/// `GET /` is outside `/api/v1`, so it gets its own tiny helper.
struct Reply;
impl Reply {
    async fn get(platform: &Platform, path: &str) -> Value {
        let response = platform
            .raw()
            .get(format!("{}{path}", platform.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

#[tokio::test]
async fn action_lifecycle_matches_openwhisk() {
    let platform = Platform::start();
    let created = platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/hello",
            Some(hello_action()),
        )
        .await;
    let action = created.assert_ok();
    assert_eq!(action["namespace"], "guest");
    assert_eq!(action["name"], "hello");
    assert_eq!(
        action["exec"],
        json!({"kind": "nodejs:20", "code": HELLO, "binary": false})
    );
    assert_eq!(
        action["limits"],
        json!({"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1})
    );
    assert_eq!(action["version"], "0.0.1");
    assert_eq!(action["publish"], false);
    assert_eq!(action["parameters"], json!([]));
    assert_eq!(
        action["annotations"],
        json!([{"key": "provide-api-key", "value": false}, {"key": "exec", "value": "nodejs:20"}])
    );
    assert!(action["updated"].as_u64().unwrap() > 1_700_000_000_000);
    assert!(created.headers.get("x-request-id").is_some());
    assert_eq!(
        created.headers.get("access-control-allow-origin").unwrap(),
        "*"
    );

    platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/hello",
            Some(hello_action()),
        )
        .await
        .assert_error(409, "resource already exists");

    let updated = platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/hello?overwrite=true",
            Some(json!({
                "parameters": [{"key": "name", "value": "World"}],
                "annotations": [{"key": "description", "value": "greets"}],
                "limits": {"memory": 128}
            })),
        )
        .await;
    let updated = updated.assert_ok();
    assert_eq!(updated["version"], "0.0.2");
    assert_eq!(updated["exec"]["code"], HELLO, "exec kept when not given");
    assert_eq!(
        updated["parameters"],
        json!([{"key": "name", "value": "World"}])
    );
    assert_eq!(updated["limits"]["memory"], 128);
    assert_eq!(
        updated["limits"]["timeout"], 60000,
        "limits merged per field"
    );
    let annotation_keys: Vec<&str> = updated["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    for key in ["provide-api-key", "exec", "description"] {
        assert!(
            annotation_keys.contains(&key),
            "{annotation_keys:?} lacks {key}"
        );
    }

    let fetched = platform
        .guest(Method::GET, "/namespaces/guest/actions/hello", None)
        .await;
    assert_eq!(fetched.assert_ok(), updated);
    let without_code = platform
        .guest(Method::GET, "/namespaces/_/actions/hello?code=false", None)
        .await;
    assert_eq!(
        without_code.assert_ok()["exec"],
        json!({"kind": "nodejs:20", "binary": false})
    );

    let deleted = platform
        .guest(Method::DELETE, "/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(deleted.assert_ok()["name"], "hello");
    platform
        .guest(Method::GET, "/namespaces/_/actions/hello", None)
        .await
        .assert_error(404, "The requested resource does not exist.");
    platform
        .guest(Method::DELETE, "/namespaces/_/actions/hello", None)
        .await
        .assert_error(404, "The requested resource does not exist.");
}

#[tokio::test]
async fn lists_are_newest_first_with_paging_and_counts() {
    let platform = Platform::start();
    for name in ["a1", "a2", "a3", "a4", "a5"] {
        platform
            .guest(
                Method::PUT,
                &format!("/namespaces/_/actions/{name}"),
                Some(hello_action()),
            )
            .await
            .assert_ok();
        // `updated` has millisecond precision; keep the order unambiguous.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let all = platform
        .guest(Method::GET, "/namespaces/_/actions", None)
        .await;
    assert_eq!(names(all.assert_ok()), ["a5", "a4", "a3", "a2", "a1"]);
    assert_eq!(all.body[0]["exec"], json!({"binary": false}));
    assert!(
        all.body[0].get("parameters").is_none(),
        "list items are summaries"
    );

    let page = platform
        .guest(Method::GET, "/namespaces/_/actions?limit=2&skip=1", None)
        .await;
    assert_eq!(names(page.assert_ok()), ["a4", "a3"]);

    let count = platform
        .guest(Method::GET, "/namespaces/_/actions?count=true", None)
        .await;
    assert_eq!(count.assert_ok(), &json!({"actions": 5}));

    platform
        .guest(Method::GET, "/namespaces/_/actions?limit=201", None)
        .await
        .assert_error(
            400,
            "The query parameter 'limit' was malformed:\nThe value '201' is not in the range of 0 to 200 for actions.",
        );
    platform
        .guest(Method::GET, "/namespaces/_/actions?skip=-1", None)
        .await
        .assert_error(
            400,
            "The query parameter 'skip' was malformed:\nThe value '-1' is not greater than or equal to 0 for actions.",
        );
    platform
        .guest(Method::GET, "/namespaces/_/actions?limit=x", None)
        .await
        .assert_error(
            400,
            "The query parameter 'limit' was malformed:\nThe value 'x' is not an integer for actions.",
        );
}

#[tokio::test]
async fn packages_bindings_and_packaged_actions() {
    let platform = Platform::start();
    let package = platform
        .guest(
            Method::PUT,
            "/namespaces/_/packages/utils",
            Some(json!({"parameters": [{"key": "from", "value": "package"}, {"key": "p", "value": 1}]})),
        )
        .await;
    assert_eq!(package.assert_ok()["binding"], json!({}));

    let packaged = platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/utils/echo",
            Some(hello_action()),
        )
        .await;
    assert_eq!(packaged.assert_ok()["namespace"], "guest/utils");
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/missing/echo",
            Some(hello_action()),
        )
        .await
        .assert_error(404, "The requested resource does not exist.");

    let binding = platform
        .guest(
            Method::PUT,
            "/namespaces/_/packages/bound",
            Some(json!({
                "binding": {"namespace": "_", "name": "utils"},
                "parameters": [{"key": "from", "value": "binding"}]
            })),
        )
        .await;
    assert_eq!(
        binding.assert_ok()["binding"],
        json!({"namespace": "guest", "name": "utils"})
    );
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/bound/new",
            Some(hello_action()),
        )
        .await
        .assert_error(400, "Operation not permitted on package binding.");
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/packages/bound2",
            Some(json!({"binding": {"namespace": "_", "name": "bound"}})),
        )
        .await
        .assert_error(400, "Cannot bind to another package binding.");
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/packages/bound3",
            Some(json!({"binding": {"namespace": "_", "name": "nothing"}})),
        )
        .await
        .assert_error(400, "Binding references a package that does not exist.");

    let bound_view = platform
        .guest(Method::GET, "/namespaces/_/packages/bound", None)
        .await;
    let bound_view = bound_view.assert_ok();
    assert_eq!(names(&bound_view["actions"]), ["echo"]);
    let parameters = bound_view["parameters"].as_array().unwrap();
    assert!(parameters.contains(&json!({"key": "from", "value": "binding"})));
    assert!(parameters.contains(&json!({"key": "p", "value": 1})));

    let through_binding = platform
        .guest(Method::GET, "/namespaces/_/actions/bound/echo", None)
        .await;
    let through_binding = through_binding.assert_ok();
    assert_eq!(through_binding["namespace"], "guest/utils");
    let merged = through_binding["parameters"].as_array().unwrap();
    assert!(
        merged.contains(&json!({"key": "from", "value": "binding"})),
        "{merged:?}"
    );

    let listed = platform
        .guest(Method::GET, "/namespaces/_/actions/bound/", None)
        .await;
    assert_eq!(names(listed.assert_ok()), ["echo"]);
    let all_actions = platform
        .guest(Method::GET, "/namespaces/_/actions", None)
        .await;
    assert_eq!(all_actions.assert_ok()[0]["namespace"], "guest/utils");

    let not_empty = platform
        .guest(Method::DELETE, "/namespaces/_/packages/utils", None)
        .await;
    assert_eq!(not_empty.status, 409, "{}", not_empty.text);
    assert!(
        not_empty.body["error"]
            .as_str()
            .unwrap()
            .starts_with("Package not empty (contains 1 entity)"),
        "{}",
        not_empty.text
    );
    platform
        .guest(
            Method::DELETE,
            "/namespaces/_/packages/utils?force=true",
            None,
        )
        .await
        .assert_ok();
    platform
        .guest(Method::GET, "/namespaces/_/actions/utils/echo", None)
        .await
        .assert_error(404, "The requested resource 'guest/utils' does not exist.");

    let post = platform
        .guest(
            Method::POST,
            "/namespaces/_/packages/bound",
            Some(json!({})),
        )
        .await;
    assert_eq!(post.status, 405, "{}", post.text);
}

#[tokio::test]
async fn triggers_and_rules() {
    let platform = Platform::start();
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/hello",
            Some(hello_action()),
        )
        .await
        .assert_ok();
    let trigger = platform
        .guest(
            Method::PUT,
            "/namespaces/_/triggers/t",
            Some(json!({"parameters": [{"key": "x", "value": 1}]})),
        )
        .await;
    assert_eq!(
        trigger.assert_ok()["parameters"],
        json!([{"key": "x", "value": 1}])
    );

    platform
        .guest(Method::PUT, "/namespaces/_/triggers/hello", Some(json!({})))
        .await
        .assert_error(
            409,
            "Resource by this name exists but is not in this collection.",
        );

    let rule = platform
        .guest(
            Method::PUT,
            "/namespaces/_/rules/r",
            Some(json!({"trigger": "/_/t", "action": "/_/hello"})),
        )
        .await;
    let rule = rule.assert_ok();
    assert_eq!(rule["status"], "active");
    assert_eq!(rule["trigger"], json!({"path": "guest", "name": "t"}));
    assert_eq!(rule["action"], json!({"path": "guest", "name": "hello"}));

    platform
        .guest(
            Method::PUT,
            "/namespaces/_/rules/r2",
            Some(json!({"trigger": "/_/nope", "action": "/_/hello"})),
        )
        .await
        .assert_error(400, "trigger /guest/nope does not exist");
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/rules/r3",
            Some(json!({"trigger": "/_/t"})),
        )
        .await
        .assert_error(400, "rule requires a valid trigger and a valid action");

    let with_rules = platform
        .guest(Method::GET, "/namespaces/_/triggers/t", None)
        .await;
    assert_eq!(
        with_rules.assert_ok()["rules"]["guest/r"],
        json!({"action": {"path": "guest", "name": "hello"}, "status": "active"})
    );

    let disabled = platform
        .guest(
            Method::POST,
            "/namespaces/_/rules/r",
            Some(json!({"status": "inactive"})),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    let fetched = platform
        .guest(Method::GET, "/namespaces/_/rules/r", None)
        .await;
    assert_eq!(fetched.assert_ok()["status"], "inactive");
    platform
        .guest(Method::POST, "/namespaces/_/rules/r", Some(json!({"status": "paused"})))
        .await
        .assert_error(
            400,
            "The request content was malformed:\n'paused' is not a recognized rule state, must be one of ['active', 'inactive']",
        );

    let rules = platform
        .guest(Method::GET, "/namespaces/_/rules", None)
        .await;
    assert_eq!(names(rules.assert_ok()), ["r"]);

    let deleted = platform
        .guest(Method::DELETE, "/namespaces/_/rules/r", None)
        .await;
    assert_eq!(deleted.assert_ok()["status"], "inactive");
    let trigger_after = platform
        .guest(Method::GET, "/namespaces/_/triggers/t", None)
        .await;
    assert!(
        trigger_after
            .assert_ok()
            .get("rules")
            .is_none_or(|rules| rules == &json!({})),
        "{}",
        trigger_after.text
    );
    platform
        .guest(Method::DELETE, "/namespaces/_/triggers/t", None)
        .await
        .assert_ok();
}

#[tokio::test]
async fn second_user_is_isolated_but_reads_public_packages() {
    let platform = Platform::start();
    let alice = platform.create_user("alice");
    assert_eq!(alice.len(), 36 + 1 + 64, "uuid:key, got {alice}");
    let alice = alice.as_str();

    platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/secret",
            Some(hello_action()),
        )
        .await
        .assert_ok();
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/packages/private",
            Some(json!({})),
        )
        .await
        .assert_ok();
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/packages/shared",
            Some(json!({"publish": true})),
        )
        .await
        .assert_ok();
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/shared/tool",
            Some(hello_action()),
        )
        .await
        .assert_ok();

    let namespaces = platform
        .call(Method::GET, "/namespaces", Some(alice), None)
        .await;
    assert_eq!(namespaces.assert_ok(), &json!(["alice"]));
    platform
        .call(
            Method::GET,
            "/namespaces/guest/actions/secret",
            Some(alice),
            None,
        )
        .await
        .assert_error(
            403,
            "The supplied authentication is not authorized to access 'guest/secret'.",
        );
    platform
        .call(
            Method::PUT,
            "/namespaces/guest/actions/mine",
            Some(alice),
            Some(hello_action()),
        )
        .await
        .assert_error(
            403,
            "The supplied authentication is not authorized to access 'guest/mine'.",
        );
    for forbidden in [
        "/namespaces/guest/actions",
        "/namespaces/guest/packages/private",
        "/namespaces/guest/limits",
        "/namespaces/guest/activations",
    ] {
        let reply = platform
            .call(Method::GET, forbidden, Some(alice), None)
            .await;
        assert_eq!(reply.status, 403, "GET {forbidden}: {}", reply.text);
    }

    let shared = platform
        .call(
            Method::GET,
            "/namespaces/guest/packages/shared",
            Some(alice),
            None,
        )
        .await;
    assert_eq!(names(&shared.assert_ok()["actions"]), ["tool"]);
    let tool = platform
        .call(
            Method::GET,
            "/namespaces/guest/actions/shared/tool",
            Some(alice),
            None,
        )
        .await;
    assert_eq!(tool.assert_ok()["namespace"], "guest/shared");
    let visible = platform
        .call(Method::GET, "/namespaces/guest/packages", Some(alice), None)
        .await;
    assert_eq!(names(visible.assert_ok()), ["shared"]);

    let own = platform
        .call(
            Method::PUT,
            "/namespaces/_/packages/mybinding",
            Some(alice),
            Some(json!({"binding": {"namespace": "guest", "name": "shared"}})),
        )
        .await;
    assert_eq!(own.assert_ok()["namespace"], "alice");
    platform
        .call(
            Method::PUT,
            "/namespaces/_/packages/badbinding",
            Some(alice),
            Some(json!({"binding": {"namespace": "guest", "name": "private"}})),
        )
        .await
        .assert_error(
            403,
            "The supplied authentication is not authorized to access 'guest/private'.",
        );
}

#[tokio::test]
async fn admin_blocks_users_and_sets_limits() {
    let platform = Platform::start();
    let bobby = platform.create_user("bobby");
    let ok = platform
        .call(Method::GET, "/namespaces", Some(&bobby), None)
        .await;
    ok.assert_ok();

    let blocked = platform.admin(&["user", "block", "bobby"]);
    assert!(blocked.status.success());
    platform
        .call_until(Method::GET, "/namespaces", Some(&bobby), |reply| {
            reply.status != 200
        })
        .await
        .assert_error(401, "The supplied authentication is invalid");
    assert!(
        platform
            .admin(&["user", "unblock", "bobby"])
            .status
            .success()
    );
    platform
        .call_until(Method::GET, "/namespaces", Some(&bobby), |reply| {
            reply.status != 401
        })
        .await
        .assert_ok();

    let set = platform.admin(&[
        "limits",
        "set",
        "bobby",
        "--invocations-per-minute",
        "7",
        "--concurrent-invocations",
        "3",
        "--fires-per-minute",
        "2",
    ]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let limits = platform
        .call_until(Method::GET, "/namespaces/_/limits", Some(&bobby), |reply| {
            reply.body["invocationsPerMinute"] != 120
        })
        .await;
    let limits = limits.assert_ok();
    assert_eq!(limits["invocationsPerMinute"], 7);
    assert_eq!(limits["concurrentInvocations"], 3);
    assert_eq!(limits["firesPerMinute"], 2);
    assert_eq!(limits["maxActionMemory"], 512);
    assert_eq!(limits["maxParameterSize"], "1048576 B");

    let guest_limits = platform
        .guest(Method::GET, "/namespaces/_/limits", None)
        .await;
    assert_eq!(guest_limits.assert_ok()["invocationsPerMinute"], 120);
    assert_eq!(guest_limits.body["concurrentInvocations"], 100);

    assert!(
        platform
            .admin(&["limits", "delete", "bobby"])
            .status
            .success()
    );
    let reset = platform
        .call_until(Method::GET, "/namespaces/_/limits", Some(&bobby), |reply| {
            reply.body["invocationsPerMinute"] != 7
        })
        .await;
    assert_eq!(reset.assert_ok()["invocationsPerMinute"], 120);

    let duplicate = platform.admin(&["user", "create", "bobby"]);
    assert!(
        !duplicate.status.success(),
        "creating bobby twice must fail"
    );
    let short = platform.admin(&["user", "create", "bob"]);
    assert!(
        !short.status.success(),
        "a 3-character subject must be refused"
    );

    let listed = platform.admin(&["user", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    for subject in ["guest", "whisk.system", "bobby"] {
        assert!(listed.contains(subject), "{listed}");
    }
    assert!(
        platform
            .admin(&["user", "delete", "bobby"])
            .status
            .success()
    );
    platform
        .call_until(Method::GET, "/namespaces", Some(&bobby), |reply| {
            reply.status != 200
        })
        .await
        .assert_error(401, "The supplied authentication is invalid");
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let mut platform = Platform::start();
    let carol = platform.create_user("carol");
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/kept",
            Some(hello_action()),
        )
        .await
        .assert_ok();
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/packages/pkg",
            Some(json!({"publish": true})),
        )
        .await
        .assert_ok();
    platform
        .guest(Method::PUT, "/namespaces/_/triggers/t", Some(json!({})))
        .await
        .assert_ok();
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/rules/r",
            Some(json!({"trigger": "/_/t", "action": "/_/kept"})),
        )
        .await
        .assert_ok();
    let before = platform
        .guest(Method::GET, "/namespaces/_/actions/kept", None)
        .await
        .body;

    platform.restart();

    let after = platform
        .guest(Method::GET, "/namespaces/_/actions/kept", None)
        .await;
    assert_eq!(after.assert_ok(), &before);
    let rule = platform
        .guest(Method::GET, "/namespaces/_/rules/r", None)
        .await;
    assert_eq!(rule.assert_ok()["status"], "active");
    platform
        .guest(Method::GET, "/namespaces/_/packages/pkg", None)
        .await
        .assert_ok();
    platform
        .call(Method::GET, "/namespaces", Some(&carol), None)
        .await
        .assert_ok();
    let db = std::fs::read(platform.data_dir().join("whisk.db")).unwrap();
    let key = GUEST_AUTH.split_once(':').unwrap().1;
    assert!(
        !db.windows(key.len()).any(|window| window == key.as_bytes()),
        "the guest key is stored in plain text"
    );
}

#[tokio::test]
async fn bad_input_gets_openwhisk_errors() {
    let platform = Platform::start();
    let anonymous = platform.call(Method::GET, "/namespaces", None, None).await;
    anonymous.assert_error(
        401,
        "The resource requires authentication, which was not supplied with the request",
    );
    assert_eq!(
        anonymous.headers.get("www-authenticate").unwrap(),
        "Basic realm=\"OpenWhisk secure realm\""
    );
    let wrong_key = format!(
        "{}:{}",
        "23bc46b1-71f6-4ed5-8c54-816aa4f8c502",
        "x".repeat(64)
    );
    platform
        .call(Method::GET, "/namespaces", Some(&wrong_key), None)
        .await
        .assert_error(401, "The supplied authentication is invalid");
    platform
        .call(Method::GET, "/namespaces", Some("someone:short"), None)
        .await
        .assert_error(401, "The supplied authentication is invalid");

    let malformed = platform
        .raw()
        .put(platform.api("/namespaces/_/actions/broken"))
        .basic_auth(
            GUEST_AUTH.split_once(':').unwrap().0,
            Some(GUEST_AUTH.split_once(':').unwrap().1),
        )
        .header("content-type", "application/json")
        .body("{\"exec\": ")
        .send()
        .await
        .unwrap();
    let malformed = support::Reply::from(malformed).await;
    assert_eq!(malformed.status, 400, "{}", malformed.text);
    assert!(
        malformed.body["error"]
            .as_str()
            .unwrap()
            .starts_with("The request content was malformed:\n"),
        "{}",
        malformed.text
    );

    let text_body = platform
        .raw()
        .put(platform.api("/namespaces/_/actions/texty"))
        .basic_auth(
            GUEST_AUTH.split_once(':').unwrap().0,
            Some(GUEST_AUTH.split_once(':').unwrap().1),
        )
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    let text_body = support::Reply::from(text_body).await;
    assert_eq!(text_body.status, 415, "{}", text_body.text);
    assert!(text_body.body["error"].is_string(), "{}", text_body.text);

    platform
        .guest(Method::PUT, "/namespaces/_/actions/noexec", Some(json!({})))
        .await
        .assert_error(400, "exec undefined");
    let unknown_kind = platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/k",
            Some(json!({"exec": {"kind": "cobol:1", "code": "x"}})),
        )
        .await;
    assert_eq!(unknown_kind.status, 400, "{}", unknown_kind.text);
    assert!(
        unknown_kind.text.contains("cobol:1") && unknown_kind.text.contains("nodejs:20"),
        "{}",
        unknown_kind.text
    );
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/big",
            Some(json!({"exec": {"kind": "nodejs:20", "code": HELLO}, "limits": {"memory": 4096}})),
        )
        .await
        .assert_error(
            400,
            "memory size 4096 MB exceeds allowed threshold of 512 MB",
        );
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/bad%20name%20",
            Some(hello_action()),
        )
        .await
        .assert_error(400, "The name of the entity contains illegal characters.");
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/packages/default",
            Some(json!({})),
        )
        .await
        .assert_error(400, "Package name 'default' is reserved.");
    platform
        .guest(Method::GET, "/namespaces/_/nothing", None)
        .await
        .assert_error(404, "The requested resource could not be found.");

    let huge_value = "v".repeat(1024 * 1024 + 10);
    let oversized = platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/heavy",
            Some(json!({
                "exec": {"kind": "nodejs:20", "code": HELLO},
                "parameters": [{"key": "blob", "value": huge_value}]
            })),
        )
        .await;
    assert_eq!(
        oversized.status,
        413,
        "{}",
        &oversized.text[..200.min(oversized.text.len())]
    );
    assert!(
        oversized.body["error"]
            .as_str()
            .unwrap()
            .starts_with("parameters larger than allowed:"),
        "{}",
        oversized.body["error"]
    );

    let invoke = platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/hello",
            Some(hello_action()),
        )
        .await;
    invoke.assert_ok();
    let not_yet = platform
        .guest(Method::POST, "/namespaces/_/actions/hello", Some(json!({})))
        .await;
    assert_eq!(not_yet.status, 503, "{}", not_yet.text);
    assert!(not_yet.body["error"].is_string() && not_yet.body["code"].is_string());
    let missing = platform
        .guest(
            Method::POST,
            "/namespaces/_/actions/missing",
            Some(json!({})),
        )
        .await;
    missing.assert_error(404, "The requested resource does not exist.");

    let web = platform
        .raw()
        .get(platform.api("/web/guest/default/hello.json"))
        .send()
        .await
        .unwrap();
    let web = support::Reply::from(web).await;
    // Not exported: the same 404 as a missing action, so the web learns nothing.
    web.assert_error(404, "The requested resource does not exist.");

    let nothing_lost = platform
        .guest(Method::GET, "/namespaces/_/actions", None)
        .await;
    assert_eq!(names(nothing_lost.assert_ok()), ["hello"]);
}

#[tokio::test]
async fn cors_preflight_and_request_ids() {
    let platform = Platform::start();
    let preflight = platform
        .raw()
        .request(Method::OPTIONS, platform.api("/namespaces/_/actions/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    let allowed = preflight
        .headers()
        .get("access-control-allow-methods")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        allowed.contains("PUT") && allowed.contains("DELETE"),
        "{allowed}"
    );

    let adopted = platform
        .raw()
        .get(platform.api("/namespaces"))
        .basic_auth("nobody", Some("nothing"))
        .header("x-request-id", "my-trace-42")
        .send()
        .await
        .unwrap();
    let adopted = support::Reply::from(adopted).await;
    assert_eq!(adopted.headers.get("x-request-id").unwrap(), "my-trace-42");
    assert_eq!(adopted.body["code"], "my-trace-42");
}

/// A stop signal that arrives while the server is still starting (here: right after its store
/// is opened, before it listens) stops it cleanly instead of killing it with the default action:
/// a supervisor stopping a process that just started must not see it die of the signal.
#[test]
fn a_sigterm_during_start_up_stops_the_server_cleanly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let data_dir = tempfile::tempdir().expect("temp data dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_whisk"))
        .args(["standalone", "--port", "0", "--data-dir"])
        .arg(data_dir.path())
        .env("WHISK_INVOKER_ENABLED", "false")
        .env("WHISK_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start whisk standalone");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let first = lines
        .next()
        .expect("whisk logged nothing before exiting")
        .expect("readable stderr");
    assert!(first.contains("sqlite migration"), "first line: {first}");
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let drained = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let status = child.wait().expect("wait for whisk");
    let rest = drained.join().expect("drain stderr");
    assert!(
        status.success(),
        "exited with {status}; log after the first line:\n{}",
        rest.join("\n")
    );
}
