//! End-to-end tests of `wsk project deploy|undeploy` (wskdeploy manifests) against the real
//! whisk-rs server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use support::{GUEST_AUTH, Platform, Run};

const HELLO_JS: &str = "function greet(params) { return {greeting: 'hello ' + params.name} }";
const SHOUT_PY: &str =
    "def main(args):\n    return {'greeting': args.get('greeting', '').upper()}\n";

/// A project with a package, a Node.js and a Python action, a sequence of both, a trigger and
/// a rule. `$REGION` comes from the environment of the `wsk` run.
const MANIFEST: &str = r#"
project:
  name: demo
  packages:
    tools:
      version: 1.0
      license: Apache-2.0
      public: true
      inputs:
        region: $REGION
        retries:
          type: integer
          default: 3
      annotations:
        team: ops
      actions:
        hello:
          function: src/hello.js
          main: greet
          web-export: true
          limits:
            timeout: 5000
            memorySize: 128
          inputs:
            name: ${WHO}
        shout:
          function: src/shout.py
          runtime: python
      sequences:
        both:
          actions: hello, shout
      triggers:
        tick:
          inputs:
            every: 5
      rules:
        on-tick:
          trigger: tick
          action: both
"#;

/// Runs `wsk` against `platform` in `dir` with `REGION=eu` and `WHO=world` set.
fn wsk_in(platform: &Platform, dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_wsk"))
        .args(["--apihost", platform.url.as_str(), "-u", GUEST_AUTH])
        .args(args)
        .current_dir(dir)
        .env("WSK_CONFIG_FILE", platform.props_file())
        .env("REGION", "eu")
        .env("WHO", "world")
        .env_remove("WHISK_APIHOST")
        .env_remove("WHISK_AUTH")
        .env_remove("WHISK_APIVERSION")
        .output()
        .expect("run wsk");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A project directory holding `files` (paths relative to it).
fn project_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    dir
}

/// The JSON of `wsk <collection> get NAME`.
fn get(platform: &Platform, collection: &str, name: &str) -> Value {
    let run = platform.wsk(&[collection, "get", name]);
    assert_eq!(run.code, 0, "{run:?}");
    let (_, json) = run.stdout.split_once('\n').unwrap();
    serde_json::from_str(json).unwrap()
}

fn annotation<'a>(entity: &'a Value, key: &str) -> &'a Value {
    entity["annotations"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["key"] == key))
        .map(|a| &a["value"])
        .unwrap_or(&Value::Null)
}

/// `wsk list` output, the namespace's full content.
fn listing(platform: &Platform) -> Vec<String> {
    let run = platform.wsk(&["list", "-n"]);
    assert_eq!(run.code, 0, "{run:?}");
    run.stdout
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect()
}

fn row(name: &str, rest: &str) -> String {
    format!("{name:<70} {rest}")
}

const DEPLOYED: [&str; 6] = [
    "ok: deployed package tools",
    "ok: deployed action tools/hello",
    "ok: deployed action tools/shout",
    "ok: deployed sequence tools/both",
    "ok: deployed trigger tick",
    "ok: deployed rule on-tick",
];

#[test]
fn deploy_is_idempotent_and_undeploy_removes_exactly_the_project() {
    let platform = Platform::start();
    let dir = project_dir(&[
        ("manifest.yaml", MANIFEST),
        ("src/hello.js", HELLO_JS),
        ("src/shout.py", SHOUT_PY),
        ("other.js", "function main() { return {} }"),
    ]);
    wsk_in(
        &platform,
        dir.path(),
        &["action", "create", "other", "other.js"],
    )
    .assert_ok(&["ok: created action other"]);

    wsk_in(&platform, dir.path(), &["project", "deploy"]).assert_ok(&DEPLOYED);

    let tools = get(&platform, "package", "tools");
    assert_eq!(tools["publish"], true);
    assert_eq!(
        tools["parameters"],
        json!([{"key": "region", "value": "eu"}, {"key": "retries", "value": 3}])
    );
    assert_eq!(annotation(&tools, "team"), "ops");
    let managed = annotation(&tools, "whisk-managed");
    assert_eq!(managed["projectName"], "demo");
    assert_eq!(managed["file"], "manifest.yaml");
    assert_eq!(managed["projectDeps"], json!([]));
    let hash = managed["projectHash"].as_str().unwrap();
    assert!(
        hash.len() == 40 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{hash}"
    );

    let hello = get(&platform, "action", "tools/hello");
    assert!(
        hello["exec"]["kind"]
            .as_str()
            .unwrap()
            .starts_with("nodejs:")
    );
    assert_eq!(hello["exec"]["code"], HELLO_JS);
    assert_eq!(hello["exec"]["main"], "greet");
    assert_eq!(hello["limits"]["timeout"], 5000);
    assert_eq!(hello["limits"]["memory"], 128);
    // The server shows the package's parameters merged in, the action's own last.
    assert_eq!(
        hello["parameters"].as_array().unwrap().last().unwrap(),
        &json!({"key": "name", "value": "world"})
    );
    assert_eq!(annotation(&hello, "web-export"), true);
    assert_eq!(annotation(&hello, "final"), true);
    assert_eq!(annotation(&hello, "whisk-managed")["projectName"], "demo");
    let shout = get(&platform, "action", "tools/shout");
    assert!(
        shout["exec"]["kind"]
            .as_str()
            .unwrap()
            .starts_with("python:")
    );
    assert_eq!(shout["exec"]["code"], SHOUT_PY);
    let both = get(&platform, "action", "tools/both");
    assert_eq!(both["exec"]["kind"], "sequence");
    let components: Vec<&str> = both["exec"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(components.len(), 2, "{components:?}");
    assert!(components[0].ends_with("/tools/hello"), "{components:?}");
    assert!(components[1].ends_with("/tools/shout"), "{components:?}");
    let tick = get(&platform, "trigger", "tick");
    assert_eq!(tick["parameters"], json!([{"key": "every", "value": 5}]));
    assert_eq!(annotation(&tick, "whisk-managed")["projectName"], "demo");
    let rule = get(&platform, "rule", "on-tick");
    assert_eq!(rule["trigger"]["name"], "tick");
    assert_eq!(rule["action"]["name"], "both");
    assert_eq!(rule["action"]["path"], "guest/tools");
    assert_eq!(rule["status"], "active");

    let before = listing(&platform);
    assert_eq!(
        before,
        [
            "Entities in namespace: default".to_string(),
            "packages".to_string(),
            row("/guest/tools", "shared"),
            "actions".to_string(),
            row("/guest/other", "private nodejs:20"),
            row("/guest/tools/both", "private sequence"),
            row(
                "/guest/tools/hello",
                &format!("private {}", hello["exec"]["kind"].as_str().unwrap())
            ),
            row(
                "/guest/tools/shout",
                &format!("private {}", shout["exec"]["kind"].as_str().unwrap())
            ),
            "triggers".to_string(),
            row("/guest/tick", "private"),
            "rules".to_string(),
            row("/guest/on-tick", "private active"),
        ]
    );

    // Deploying again changes nothing but the entities' versions.
    wsk_in(&platform, dir.path(), &["project", "deploy"]).assert_ok(&DEPLOYED);
    assert_eq!(listing(&platform), before);
    let again = get(&platform, "package", "tools");
    assert_eq!(again["parameters"], tools["parameters"]);
    assert_eq!(again["annotations"], tools["annotations"]);

    wsk_in(&platform, dir.path(), &["project", "undeploy"]).assert_ok(&[
        "ok: undeployed rule on-tick",
        "ok: undeployed trigger tick",
        "ok: undeployed sequence tools/both",
        "ok: undeployed action tools/shout",
        "ok: undeployed action tools/hello",
        "ok: undeployed package tools",
    ]);
    assert_eq!(
        listing(&platform),
        [
            "Entities in namespace: default".to_string(),
            "packages".to_string(),
            "actions".to_string(),
            row("/guest/other", "private nodejs:20"),
            "triggers".to_string(),
            "rules".to_string(),
        ]
    );

    // Undeploying what is already gone is not an error.
    wsk_in(
        &platform,
        dir.path(),
        &["project", "undeploy", "-m", "manifest.yaml"],
    )
    .assert_ok(&[
        "ok: rule on-tick was already gone",
        "ok: trigger tick was already gone",
        "ok: sequence tools/both was already gone",
        "ok: action tools/shout was already gone",
        "ok: action tools/hello was already gone",
        "ok: package tools was already gone",
    ]);
}

#[test]
fn undeploy_leaves_what_another_project_owns() {
    let platform = Platform::start();
    let alpha = project_dir(&[
        (
            "manifest.yml",
            "project:\n  name: alpha\npackages:\n  pa:\n    actions:\n      x:\n        function: x.js\n    triggers:\n      shared:\n      mine:\n",
        ),
        ("x.js", "function main() { return {} }"),
    ]);
    let beta = project_dir(&[(
        "beta.yaml",
        "packages:\n  default:\n    triggers:\n      shared:\n        inputs: {owner: beta}\n",
    )]);
    // manifest.yml is found in the current directory like manifest.yaml.
    wsk_in(&platform, alpha.path(), &["project", "deploy"]).assert_ok(&[
        "ok: deployed package pa",
        "ok: deployed action pa/x",
        "ok: deployed trigger mine",
        "ok: deployed trigger shared",
    ]);
    // Another project takes over the trigger `shared`; --projectname names it.
    wsk_in(
        &platform,
        beta.path(),
        &[
            "project",
            "deploy",
            "-m",
            "beta.yaml",
            "--projectname",
            "beta",
        ],
    )
    .assert_ok(&["ok: deployed trigger shared"]);
    let shared = get(&platform, "trigger", "shared");
    assert_eq!(annotation(&shared, "whisk-managed")["projectName"], "beta");
    assert_eq!(annotation(&shared, "whisk-managed")["file"], "beta.yaml");

    wsk_in(&platform, alpha.path(), &["project", "undeploy"]).assert_ok(&[
        "skipped trigger shared: it belongs to project 'beta'",
        "ok: undeployed trigger mine",
        "ok: undeployed action pa/x",
        "ok: undeployed package pa",
    ]);
    assert_eq!(
        get(&platform, "trigger", "shared")["parameters"],
        json!([{"key": "owner", "value": "beta"}])
    );

    // Under a project name the trigger never had, nothing of it is touched either.
    wsk_in(
        &platform,
        beta.path(),
        &[
            "project",
            "undeploy",
            "-m",
            "beta.yaml",
            "--projectname",
            "gamma",
        ],
    )
    .assert_ok(&["skipped trigger shared: it belongs to project 'beta'"]);
    wsk_in(
        &platform,
        beta.path(),
        &[
            "project",
            "undeploy",
            "-m",
            "beta.yaml",
            "--projectname",
            "beta",
        ],
    )
    .assert_ok(&["ok: undeployed trigger shared"]);
}

/// Asserts a failed run: exit 1, nothing on stdout, one stderr line containing `fragments`.
#[track_caller]
fn assert_refused(run: &Run, fragments: &[&str]) {
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stdout, "");
    let line = run.stderr.trim_end();
    assert!(!line.contains('\n'), "one line expected: {line}");
    assert!(line.starts_with("error: "), "{line}");
    for fragment in fragments {
        assert!(line.contains(fragment), "'{fragment}' missing in: {line}");
    }
}

#[test]
fn manifest_mistakes_are_one_clear_line_and_create_nothing() {
    let platform = Platform::start();
    // Each manifest declares a valid package and action before its mistake.
    let valid = "packages:\n  p:\n    actions:\n      a:\n        function: a.js\n";
    let dir = project_dir(&[
        ("a.js", "function main() { return {} }"),
        ("b.txt", "text"),
        (
            "missing.yaml",
            &format!("{valid}      b:\n        function: nowhere/b.js\n"),
        ),
        (
            "bad.yaml",
            &format!("{valid}      b:\n        function: \"unclosed\n"),
        ),
        (
            "unknown.yaml",
            &format!("{valid}      b:\n        function: a.js\n        memory: 256\n"),
        ),
        (
            "runtime.yaml",
            &format!("{valid}      b:\n        function: a.js\n        runtime: cobol@85\n"),
        ),
        (
            "noinfer.yaml",
            &format!("{valid}      b:\n        function: b.txt\n"),
        ),
        ("unsupported.yaml", &format!("{valid}    apis: {{}}\n")),
    ]);
    let deploy = |file: &str| wsk_in(&platform, dir.path(), &["project", "deploy", "-m", file]);
    assert_refused(
        &deploy("missing.yaml"),
        &[
            "missing.yaml: action 'p/b': cannot read code file",
            "nowhere/b.js",
        ],
    );
    assert_refused(&deploy("bad.yaml"), &["bad.yaml: ", "line 7"]);
    assert_refused(
        &deploy("unknown.yaml"),
        &[
            "unknown.yaml: packages.p.actions.b: unknown field `memory`",
            "line 8",
        ],
    );
    assert_refused(
        &deploy("runtime.yaml"),
        &[
            "runtime.yaml: action 'p/b': runtime 'cobol:85' is not supported by this platform",
            "nodejs:20",
        ],
    );
    assert_refused(
        &deploy("noinfer.yaml"),
        &["noinfer.yaml: action 'p/b': cannot infer a runtime from 'b.txt'; set `runtime`"],
    );
    assert_refused(
        &deploy("unsupported.yaml"),
        &["unsupported.yaml: package 'p': `apis` is not supported by wsk project deploy"],
    );
    assert_refused(
        &deploy("absent.yaml"),
        &["cannot read manifest 'absent.yaml'"],
    );
    assert_refused(
        &wsk_in(&platform, platform.dir(), &["project", "deploy"]),
        &["no manifest.yaml or manifest.yml in the current directory"],
    );
    assert_eq!(
        listing(&platform),
        [
            "Entities in namespace: default",
            "packages",
            "actions",
            "triggers",
            "rules"
        ]
    );
}

#[test]
fn a_feed_that_refuses_removes_its_new_trigger() {
    let platform = Platform::start();
    let dir = project_dir(&[(
        "manifest.yaml",
        "packages:\n  default:\n    triggers:\n      alarm:\n        feed: nosuch/feed\n        inputs: {cron: '* * * * *'}\n",
    )]);
    let run = wsk_in(&platform, dir.path(), &["project", "deploy"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .starts_with("error: Unable to deploy trigger 'alarm': "),
        "{}",
        run.stderr
    );
    assert_eq!(platform.wsk(&["trigger", "get", "alarm"]).code, 148);
}

#[test]
fn undeploy_by_project_name_alone_finds_the_entities_in_the_namespace() {
    let platform = Platform::start();
    let dir = project_dir(&[
        ("manifest.yaml", MANIFEST),
        ("src/hello.js", HELLO_JS),
        ("src/shout.py", SHOUT_PY),
    ]);
    wsk_in(&platform, dir.path(), &["project", "deploy"]).assert_ok(&DEPLOYED);
    let js = platform.file("other.js", "function main() { return {} }");
    platform
        .wsk(&["action", "create", "tools/other", js.to_str().unwrap()])
        .assert_ok(&["ok: created action tools/other"]);
    platform
        .wsk(&["action", "create", "loose", js.to_str().unwrap()])
        .assert_ok(&["ok: created action loose"]);

    // The platform's temp dir holds no manifest, so the namespace is searched.
    let run = wsk_in(
        &platform,
        platform.dir(),
        &["project", "undeploy", "--projectname", "demo"],
    );
    // 409 Conflict, as `wsk` reports it: 409 % 256.
    assert_eq!(run.code, 153, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[..2],
        ["ok: undeployed rule on-tick", "ok: undeployed trigger tick"]
    );
    let mut actions = lines[2..5].to_vec();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "ok: undeployed action tools/hello",
            "ok: undeployed action tools/shout",
            "ok: undeployed sequence tools/both",
        ]
    );
    // The package still holds an action the project did not deploy, so the server keeps it.
    assert_eq!(lines.len(), 5, "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: Unable to undeploy package 'tools': Package not empty"),
        "{}",
        run.stderr
    );
    platform
        .wsk(&["action", "delete", "tools/other"])
        .assert_ok(&["ok: deleted action tools/other"]);
    wsk_in(
        &platform,
        platform.dir(),
        &["project", "undeploy", "--projectname", "demo"],
    )
    .assert_ok(&["ok: undeployed package tools"]);
    assert_eq!(
        listing(&platform),
        [
            "Entities in namespace: default".to_string(),
            "packages".to_string(),
            "actions".to_string(),
            row("/guest/loose", "private nodejs:20"),
            "triggers".to_string(),
            "rules".to_string(),
        ]
    );
}

#[test]
fn dependencies_on_deployed_packages_are_bound() {
    let platform = Platform::start();
    platform
        .wsk(&["package", "create", "base", "--shared", "yes"])
        .assert_ok(&["ok: created package base"]);
    let dir = project_dir(&[(
        "manifest.yaml",
        "project:\n  name: bound\n  packages:\n    app:\n      dependencies:\n        mybase:\n          location: /guest/base\n          inputs: {limit: 5}\n",
    )]);
    wsk_in(&platform, dir.path(), &["project", "deploy"])
        .assert_ok(&["ok: deployed package app", "ok: deployed package mybase"]);
    let binding = get(&platform, "package", "mybase");
    assert_eq!(
        binding["binding"],
        json!({"namespace": "guest", "name": "base"})
    );
    assert_eq!(binding["parameters"], json!([{"key": "limit", "value": 5}]));
    assert_eq!(
        annotation(&binding, "whisk-managed")["projectName"],
        "bound"
    );
    wsk_in(&platform, dir.path(), &["project", "undeploy"]).assert_ok(&[
        "ok: undeployed package mybase",
        "ok: undeployed package app",
    ]);
    assert_eq!(get(&platform, "package", "base")["publish"], true);
}
