//! Golden snapshots of every JSON shape whisk-rs puts on the wire. Each one was checked by eye
//! against REFERENCE.md (§2, §6.4, §7.1, §8, §9.1, §12); a diff here is an API change.
#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

use insta::assert_json_snapshot;
use serde_json::{Value, json};
use whisk_model::activation::annotation_keys as activation_keys;
use whisk_model::{
    ActionLimits, ActionPut, ActivationId, ActivationResponse, Annotations, EntityName, EntityPath,
    ErrorBody, FullyQualifiedEntityName, NamespaceLimits, PackagePut, RuleFiring, RulePut,
    RuleStatus, RuntimeManifest, SemVer, SystemLimits, TriggerPut, WhiskAction, WhiskActivation,
    WhiskPackage, WhiskRule, WhiskTrigger, messages,
};

const CREATED: u64 = 1_717_000_000_000;
const UPDATED: u64 = 1_717_000_050_000;

fn path(text: &str) -> EntityPath {
    EntityPath::parse(text).unwrap()
}

fn name(text: &str) -> EntityName {
    EntityName::new(text).unwrap()
}

fn manifest() -> RuntimeManifest {
    RuntimeManifest::builtin().unwrap()
}

fn action(namespace: &str, action_name: &str, body: Value) -> WhiskAction {
    let put: ActionPut = serde_json::from_value(body).unwrap();
    WhiskAction::create(
        path(namespace),
        name(action_name),
        put,
        &manifest(),
        CREATED,
    )
    .unwrap()
}

fn hello() -> WhiskAction {
    action(
        "guest",
        "hello",
        json!({
            "exec": {"kind": "nodejs:default", "code": "function main(p){return {msg:'hi '+p.name}}"},
            "parameters": [{"key": "name", "value": "world"}]
        }),
    )
}

#[test]
fn action_full() {
    assert_json_snapshot!(hello().to_api_json(true));
}

#[test]
fn action_updated_twice_bumps_version() {
    let updated = hello()
        .update(ActionPut::default(), &manifest(), UPDATED)
        .unwrap();
    assert_json_snapshot!(updated.to_api_json(true));
}

#[test]
fn action_without_code() {
    let java = action(
        "guest",
        "hello-java",
        json!({"exec": {"kind": "java:8", "code": "UEsDBAoAAAAA", "main": "Hello"}}),
    );
    assert_json_snapshot!(java.to_api_json(false));
}

#[test]
fn action_summary() {
    assert_json_snapshot!(hello().to_summary_json());
}

#[test]
fn sequence_action() {
    let sequence = action(
        "guest",
        "seq",
        json!({"exec": {"kind": "sequence", "components": ["/_/hello", "/whisk.system/utils/echo"]}}),
    );
    assert_json_snapshot!("sequence_action_full", sequence.to_api_json(true));
    assert_json_snapshot!("sequence_action_without_code", sequence.to_api_json(false));
}

#[test]
fn blackbox_action() {
    let blackbox = action(
        "guest",
        "docker",
        json!({
            "exec": {"kind": "blackbox", "image": "openwhisk/dockerskeleton", "code": "UEsDBAoAAAAA"},
            "limits": {"memory": 128, "timeout": 1000},
            "annotations": [{"key": "provide-api-key", "value": true}]
        }),
    );
    assert_json_snapshot!("blackbox_action_full", blackbox.to_api_json(true));
    assert_json_snapshot!("blackbox_action_without_code", blackbox.to_api_json(false));
}

fn utils_package() -> WhiskPackage {
    let put: PackagePut = serde_json::from_value(json!({
        "publish": true,
        "annotations": [{"key": "description", "value": "handy actions"}]
    }))
    .unwrap();
    WhiskPackage::create(path("guest"), name("utils"), put, CREATED).unwrap()
}

fn utils_binding() -> WhiskPackage {
    let put: PackagePut = serde_json::from_value(json!({
        "binding": {"namespace": "_", "name": "utils"},
        "parameters": [{"key": "greeting", "value": "hey"}]
    }))
    .unwrap();
    WhiskPackage::create(path("guest"), name("myutils"), put, CREATED).unwrap()
}

fn utils_contents() -> Vec<WhiskAction> {
    let split = action(
        "guest/utils",
        "split",
        json!({"exec": {"kind": "nodejs:20", "code": "x"}}),
    );
    let alarm = action(
        "guest/utils",
        "alarm",
        json!({
            "exec": {"kind": "nodejs:20", "code": "y"},
            "annotations": [{"key": "feed", "value": true}]
        }),
    );
    vec![split, alarm]
}

#[test]
fn package_document() {
    assert_json_snapshot!(serde_json::to_value(utils_package()).unwrap());
}

#[test]
fn binding_document() {
    assert_json_snapshot!(serde_json::to_value(utils_binding()).unwrap());
}

#[test]
fn package_get_with_actions_and_feeds() {
    assert_json_snapshot!(utils_package().to_api_json(&utils_contents()));
}

#[test]
fn binding_get_merges_parameters_and_lists_bound_contents() {
    let mut bound = utils_package();
    bound.parameters.insert("greeting", json!("hello"));
    bound.parameters.insert("punctuation", json!("!"));
    assert_json_snapshot!(utils_binding().binding_api_json(&bound, &utils_contents()));
}

#[test]
fn package_summaries() {
    assert_json_snapshot!(json!([
        utils_package().to_summary_json(),
        utils_binding().to_summary_json()
    ]));
}

fn trigger_with_rule() -> WhiskTrigger {
    let put: TriggerPut = serde_json::from_value(json!({
        "parameters": [{"key": "type", "value": "webhook"}],
        "annotations": [{"key": "feed", "value": "/whisk.system/alarms/alarm"}]
    }))
    .unwrap();
    let mut trigger = WhiskTrigger::create(path("guest"), name("t"), put, CREATED);
    trigger.add_rule(
        "guest/r1".to_string(),
        FullyQualifiedEntityName::parse("/guest/hello").unwrap(),
        RuleStatus::Active,
    );
    trigger
}

#[test]
fn trigger_document_with_rules() {
    assert_json_snapshot!(trigger_with_rule().to_api_json());
}

#[test]
fn trigger_without_rules_and_summary() {
    let plain = WhiskTrigger::create(path("guest"), name("t"), TriggerPut::default(), CREATED);
    assert_json_snapshot!("trigger_without_rules", plain.to_api_json());
    assert_json_snapshot!("trigger_summary", trigger_with_rule().to_summary_json());
}

fn rule() -> WhiskRule {
    let put: RulePut =
        serde_json::from_value(json!({"trigger": "/_/t", "action": "/_/hello"})).unwrap();
    WhiskRule::create(path("guest"), name("r1"), put, CREATED).unwrap()
}

#[test]
fn rule_with_status() {
    assert_json_snapshot!(rule().to_api_json(RuleStatus::Active));
}

#[test]
fn rule_list_entry() {
    assert_json_snapshot!(rule().to_summary_json());
}

fn activation_id(last: u8) -> ActivationId {
    let mut bytes = [
        0xc7, 0xbb, 0x13, 0x39, 0xcb, 0x4f, 0x40, 0xe3, 0xa6, 0xcc, 0xea, 0xd6, 0xc9, 0x9f, 0x80,
        0x00,
    ];
    bytes[15] = last;
    ActivationId::from_bytes(bytes)
}

fn action_activation() -> WhiskActivation {
    let mut annotations = Annotations::new();
    annotations.insert(activation_keys::PATH, json!("guest/hello"));
    annotations.insert(activation_keys::KIND, json!("nodejs:20"));
    annotations.insert(
        activation_keys::LIMITS,
        serde_json::to_value(ActionLimits::default()).unwrap(),
    );
    annotations.insert(activation_keys::TIMEOUT, json!(false));
    annotations.insert(activation_keys::WAIT_TIME, json!(45));
    annotations.insert(activation_keys::INIT_TIME, json!(30));
    WhiskActivation {
        namespace: path("guest"),
        name: name("hello"),
        subject: "guest".to_string(),
        activation_id: activation_id(0x4e),
        start: 1_717_000_000_123,
        end: 1_717_000_000_456,
        duration: None,
        cause: None,
        response: ActivationResponse::success(json!({"payload": "Hello"}), Some(19)),
        logs: vec!["2024-05-29T16:26:40.123456789Z stdout: hello".to_string()],
        version: SemVer::default(),
        publish: false,
        annotations,
    }
}

fn trigger_activation() -> WhiskActivation {
    let fired = RuleFiring::Invoked {
        rule: "guest/r1".to_string(),
        action: "guest/hello".to_string(),
        activation_id: activation_id(0x01),
    };
    let refused = RuleFiring::Rejected {
        rule: "guest/r2".to_string(),
        action: "guest/gone".to_string(),
        error: messages::RESOURCE_DOES_NOT_EXIST.to_string(),
    };
    WhiskActivation {
        namespace: path("guest"),
        name: name("t"),
        subject: "guest".to_string(),
        activation_id: activation_id(0x02),
        start: 1_717_000_000_000,
        end: 0,
        duration: None,
        cause: None,
        response: ActivationResponse::success(json!({"name": "Bob"}), None),
        logs: vec![fired.to_log_line(), refused.to_log_line()],
        version: SemVer::default(),
        publish: false,
        annotations: Annotations::new(),
    }
}

#[test]
fn activation_extended_record() {
    assert_json_snapshot!(action_activation().to_api_json());
}

#[test]
fn activation_stored_record() {
    assert_json_snapshot!(serde_json::to_value(action_activation()).unwrap());
}

#[test]
fn activation_developer_error_record() {
    let failed = WhiskActivation {
        response: ActivationResponse::developer_error(json!("An error has occurred: Error: boom")),
        logs: vec![],
        ..action_activation()
    };
    assert_json_snapshot!(failed.to_api_json());
}

#[test]
fn sequence_component_summary() {
    let component = WhiskActivation {
        cause: Some(activation_id(0x99)),
        ..action_activation()
    };
    assert_json_snapshot!(component.to_summary_json());
}

#[test]
fn activation_summary() {
    assert_json_snapshot!(action_activation().to_summary_json());
}

#[test]
fn activation_result() {
    assert_json_snapshot!(serde_json::to_value(action_activation().result()).unwrap());
}

#[test]
fn trigger_activation_record() {
    assert_json_snapshot!(
        "trigger_activation_extended",
        trigger_activation().to_api_json()
    );
    assert_json_snapshot!(
        "trigger_activation_summary",
        trigger_activation().to_summary_json()
    );
}

#[test]
fn error_body() {
    assert_json_snapshot!(ErrorBody::new(
        messages::RESOURCE_EXISTS,
        "sid_0123456789abcdef0123456789ab"
    ));
}

#[test]
fn effective_limits_defaults() {
    assert_json_snapshot!(SystemLimits::default().effective(&NamespaceLimits::default()));
}

#[test]
fn effective_limits_with_namespace_overrides() {
    let overrides = NamespaceLimits {
        invocations_per_minute: Some(60),
        concurrent_invocations: Some(30),
        allowed_kinds: Some(vec!["nodejs:20".to_string(), "python:3.11".to_string()]),
        store_activations: Some(false),
        max_payload_size: Some("524288 B".to_string()),
        ..NamespaceLimits::default()
    };
    assert_json_snapshot!(SystemLimits::default().effective(&overrides));
}

#[test]
fn root_info_limits_and_runtimes() {
    assert_json_snapshot!(json!({
        "limits": SystemLimits::default().info_json(),
        "runtimes": manifest().info_json(),
    }));
}
