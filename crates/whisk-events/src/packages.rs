//! The `whisk.system` packages this platform ships (`alarms`, `webhooks`, `utils`), installed
//! through the controller's own API as the `whisk.system` namespace, so they pass the same
//! validation as anything a user creates.
//!
//! Each package carries a digest of everything shipped in it; a start whose build ships the
//! same digest leaves the package alone, a different digest rewrites it (upgrade).

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

/// The annotation holding a package's digest.
pub const DIGEST_ANNOTATION: &str = "whisk-rs-digest";

/// The namespace the shared packages live in.
pub const SYSTEM_NAMESPACE: &str = "whisk.system";

const FEED_SOURCE: &str = include_str!("../actions/feed.js");

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot build the request for {0}")]
    Request(String),
    #[error("{what}: the API answered {status}: {body}")]
    Refused {
        what: String,
        status: StatusCode,
        body: String,
    },
}

/// One action of a shipped package.
#[derive(Debug, Clone)]
pub struct ShippedAction {
    pub name: &'static str,
    pub description: &'static str,
    pub code: String,
    /// Feed actions are annotated `feed: true`, so package listings show them as feeds.
    pub feed: bool,
}

/// One shipped package.
#[derive(Debug, Clone)]
pub struct ShippedPackage {
    pub name: &'static str,
    pub description: &'static str,
    pub actions: Vec<ShippedAction>,
}

impl ShippedPackage {
    /// Digest of the package's description and every action's name, flags and code.
    pub fn digest(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.name);
        hash.update([0]);
        hash.update(self.description);
        for action in &self.actions {
            hash.update([0]);
            hash.update(action.name);
            hash.update([0, u8::from(action.feed)]);
            hash.update(action.description);
            hash.update([0]);
            hash.update(&action.code);
        }
        hex::encode(hash.finalize())
    }
}

fn feed_action(name: &'static str, route: &str, description: &'static str) -> ShippedAction {
    ShippedAction {
        name,
        description,
        code: format!("const FEED = '{route}';\n{FEED_SOURCE}"),
        feed: true,
    }
}

fn util(name: &'static str, description: &'static str, code: &str) -> ShippedAction {
    ShippedAction {
        name,
        description,
        code: code.to_owned(),
        feed: false,
    }
}

/// What this build ships.
pub fn shipped() -> Vec<ShippedPackage> {
    vec![
        ShippedPackage {
            name: "alarms",
            description: "Alarms and periodic utility",
            actions: vec![
                feed_action(
                    "alarm",
                    "alarms/alarm",
                    "Fire trigger when alarm occurs (cron)",
                ),
                feed_action(
                    "interval",
                    "alarms/interval",
                    "Fire trigger every `minutes` minutes",
                ),
                feed_action("once", "alarms/once", "Fire trigger once at `date`"),
            ],
        },
        ShippedPackage {
            name: "webhooks",
            description: "Public URLs that fire a trigger, with GitHub or Slack signature checks",
            actions: vec![feed_action(
                "webhook",
                "webhooks",
                "Give a trigger a public URL; a POST to it fires the trigger",
            )],
        },
        ShippedPackage {
            name: "utils",
            description: "Building blocks that format and assemble data",
            actions: vec![
                util(
                    "echo",
                    "Returns the input",
                    include_str!("../actions/echo.js"),
                ),
                util(
                    "cat",
                    "Concatenates input into a string",
                    include_str!("../actions/cat.js"),
                ),
                util(
                    "head",
                    "Extract prefix of an array",
                    include_str!("../actions/head.js"),
                ),
                util("sort", "Sorts an array", include_str!("../actions/sort.js")),
                util(
                    "split",
                    "Split a string into an array",
                    include_str!("../actions/split.js"),
                ),
                util(
                    "date",
                    "Current date and time",
                    include_str!("../actions/date.js"),
                ),
                util(
                    "namespace",
                    "Returns namespace for the authorization key used to invoke this action",
                    include_str!("../actions/namespace.js"),
                ),
                util(
                    "hosturl",
                    "Returns the URL to activate an action or trigger",
                    include_str!("../actions/hosturl.js"),
                ),
            ],
        },
    ]
}

/// Installs or upgrades every shipped package through `api` (the controller's application)
/// with `credentials` (`uuid:key` of `whisk.system`); returns the names it (re)wrote.
///
/// A package's digest is written last, after its actions: a start interrupted halfway leaves
/// a package without the current digest, which the next start rewrites, and a controller
/// that finds the current digest knows the actions are all there.
pub async fn install(api: &Router, credentials: &str) -> Result<Vec<&'static str>, InstallError> {
    let authorization = format!("Basic {}", STANDARD.encode(credentials));
    let mut written = Vec::new();
    for package in shipped() {
        let digest = package.digest();
        let path = format!(
            "/api/v1/namespaces/{SYSTEM_NAMESPACE}/packages/{}",
            package.name
        );
        let (status, current) = call(api, &authorization, Method::GET, &path, None).await?;
        if status == StatusCode::OK
            && annotation(&current, DIGEST_ANNOTATION) == Some(&json!(digest))
        {
            tracing::debug!(package = package.name, "shipped package is current");
            continue;
        }
        let package_body = |digest: Option<&str>| {
            let mut annotations = vec![json!({"key": "description", "value": package.description})];
            if let Some(digest) = digest {
                annotations.push(json!({"key": DIGEST_ANNOTATION, "value": digest}));
            }
            json!({"publish": true, "annotations": annotations})
        };
        let overwrite = format!("{path}?overwrite=true");
        expect_ok(api, &authorization, &overwrite, package_body(None)).await?;
        for action in &package.actions {
            let mut annotations = vec![
                json!({"key": "description", "value": action.description}),
                json!({"key": "provide-api-key", "value": true}),
            ];
            if action.feed {
                annotations.push(json!({"key": "feed", "value": true}));
            }
            let body = json!({
                "exec": {"kind": "nodejs:default", "code": action.code},
                "annotations": annotations,
            });
            let action_path = format!(
                "/api/v1/namespaces/{SYSTEM_NAMESPACE}/actions/{}/{}?overwrite=true",
                package.name, action.name
            );
            expect_ok(api, &authorization, &action_path, body).await?;
        }
        expect_ok(api, &authorization, &overwrite, package_body(Some(&digest))).await?;
        tracing::info!(package = package.name, "installed shipped package");
        written.push(package.name);
    }
    Ok(written)
}

/// [`install`] for controllers of a cluster that may start together: two writing the same
/// entity at once make one of them meet a revision conflict (409), so it tries again after a
/// pause, and then finds the packages current or finishes them. Other refusals are returned
/// at once.
pub async fn install_shared(
    api: &Router,
    credentials: &str,
    attempts: u32,
    pause: std::time::Duration,
) -> Result<Vec<&'static str>, InstallError> {
    let mut attempt = 1;
    loop {
        match install(api, credentials).await {
            Err(InstallError::Refused { status, .. })
                if status == StatusCode::CONFLICT && attempt < attempts =>
            {
                tracing::debug!(
                    attempt,
                    "shipped packages written concurrently; trying again"
                );
                attempt += 1;
                tokio::time::sleep(pause * attempt).await;
            }
            other => return other,
        }
    }
}

fn annotation<'a>(entity: &'a Value, key: &str) -> Option<&'a Value> {
    entity
        .get("annotations")?
        .as_array()?
        .iter()
        .find(|annotation| annotation.get("key").and_then(Value::as_str) == Some(key))?
        .get("value")
}

async fn expect_ok(
    api: &Router,
    authorization: &str,
    path: &str,
    body: Value,
) -> Result<(), InstallError> {
    let (status, answer) = call(api, authorization, Method::PUT, path, Some(body)).await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(InstallError::Refused {
            what: path.to_owned(),
            status,
            body: answer.to_string(),
        })
    }
}

async fn call(
    api: &Router,
    authorization: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<(StatusCode, Value), InstallError> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, authorization)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, |body| Body::from(body.to_string())))
        .map_err(|_| InstallError::Request(path.to_owned()))?;
    let response = match api.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let bytes = to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|_| InstallError::Request(path.to_owned()))?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_change_with_what_is_shipped() {
        let mut package = shipped().remove(0);
        let before = package.digest();
        assert_eq!(before, shipped().remove(0).digest());
        package.actions[0].code.push(' ');
        assert_ne!(before, package.digest());
    }

    #[test]
    fn feed_actions_name_their_route_and_are_annotated_as_feeds() {
        let packages = shipped();
        let alarms = &packages[0];
        assert!(alarms.actions.iter().all(|action| action.feed));
        assert!(
            alarms.actions[1]
                .code
                .starts_with("const FEED = 'alarms/interval';")
        );
        assert!(packages[2].actions.iter().all(|action| !action.feed));
    }
}
