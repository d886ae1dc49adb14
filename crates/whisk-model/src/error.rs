//! The `{error, code}` body, every standard message string, and the crate-wide error type.
//!
//! All user-visible strings live in [`messages`] so that the controller never spells one itself
//! and a wording fix happens in one place.

use serde::{Deserialize, Serialize};

use crate::names::NameError;

/// The JSON body of every error the controller produces (REFERENCE §1.4).
/// `code` is the transaction id, the same value as the `X-Request-ID` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub code: String,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>, code: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.into(),
            code: code.into(),
        }
    }
}

/// How the controller should report an error from this crate. It deliberately says nothing
/// about HTTP; the controller maps each class to a status code in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The body could not be read as the expected shape: `400` with the message wrapped by
    /// [`messages::malformed_body`] (OpenWhisk reports these as deserialization failures).
    MalformedContent,
    /// A well-formed request that breaks a rule: `400` with the bare message.
    BadRequest,
    /// The request conflicts with what is stored: `409`.
    Conflict,
    /// A field exceeds a size limit: `413`.
    PayloadTooLarge,
}

/// Everything that can go wrong while validating or building model values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitError),
    #[error(transparent)]
    Entity(#[from] crate::entities::EntityError),
    /// A field (`exec`, `parameters`, `annotations`, `Request`) is over its size limit.
    #[error("{field} larger than allowed: {size} > {allowed} bytes.")]
    TooLarge {
        field: &'static str,
        size: u64,
        allowed: u64,
    },
}

impl ModelError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ModelError::Name(error) => error.class(),
            ModelError::Exec(error) => error.class(),
            ModelError::Limit(error) => error.class(),
            ModelError::Entity(error) => error.class(),
            ModelError::TooLarge { .. } => ErrorClass::PayloadTooLarge,
        }
    }

    /// The text for the `error` field of the response body, with the malformed-content
    /// prefix applied when the class calls for it.
    pub fn api_message(&self) -> String {
        match self.class() {
            ErrorClass::MalformedContent => messages::malformed_body(&self.to_string()),
            _ => self.to_string(),
        }
    }
}

/// OpenWhisk's exact user-visible strings (REFERENCE §1.4, §4–§12), as constants for fixed
/// texts and functions for texts with values in them.
pub mod messages {
    use std::fmt::Display;

    // ---- §1.4 routing, parsing and authentication -------------------------------------------

    /// Wraps the detail of a body that could not be parsed.
    pub fn malformed_body(detail: &str) -> String {
        format!("The request content was malformed:\n{detail}")
    }

    /// Wraps the detail of a query parameter that could not be parsed.
    pub fn malformed_query(name: &str, detail: &str) -> String {
        format!("The query parameter '{name}' was malformed:\n{detail}")
    }

    /// `405` text; `supported` are upper-case method names in the order to list them.
    pub fn method_not_allowed(supported: &[&str]) -> String {
        format!(
            "HTTP method not allowed, supported methods: {}",
            supported.join(", ")
        )
    }

    pub const NOT_FOUND_ROUTE: &str = "The requested resource could not be found.";
    pub const MISSING_AUTH: &str =
        "The resource requires authentication, which was not supplied with the request";
    pub const INVALID_AUTH: &str = "The supplied authentication is invalid";
    /// Value of the `WWW-Authenticate` header sent with every `401`.
    pub const AUTH_CHALLENGE: &str = "Basic realm=\"OpenWhisk secure realm\"";
    pub const UNSUPPORTED_CONTENT_TYPE: &str =
        "The request's Content-Type is not supported. Expected:\napplication/json";
    pub const SERVICE_UNAVAILABLE: &str =
        "The server is currently unavailable (because it is overloaded or down for maintenance).";
    pub const SYSTEM_OVERLOADED: &str = "System is overloaded, try again later.";

    // ---- §1.4 standard controller messages ---------------------------------------------------

    pub const RESOURCE_DOES_NOT_EXIST: &str = "The requested resource does not exist.";

    /// `404` naming the missing entity (`fqname` as `ns[/pkg]/name`).
    pub fn does_not_exist_named(fqname: impl Display) -> String {
        format!("The requested resource '{fqname}' does not exist.")
    }

    /// Generic `403` when no resource is named.
    pub const NOT_AUTHORIZED: &str =
        "The supplied authentication is not authorized to access this resource.";

    /// `403` naming the refused resources: sorted, de-duplicated and comma-joined.
    pub fn not_authorized<S: AsRef<str>>(fqnames: &[S]) -> String {
        let mut names: Vec<&str> = fqnames.iter().map(AsRef::as_ref).collect();
        names.sort_unstable();
        names.dedup();
        format!(
            "The supplied authentication is not authorized to access '{}'.",
            names.join(", ")
        )
    }

    /// `403` when the namespace may not use this runtime kind.
    pub fn not_authorized_kind(kind: &str) -> String {
        format!("The supplied authentication is not authorized to access actions of kind '{kind}'.")
    }

    pub const RESOURCE_EXISTS: &str = "resource already exists";
    pub const CONCURRENT_MODIFICATION: &str = "Concurrent modification to resource detected.";
    pub const CONFLICTING_TYPE: &str =
        "Resource by this name exists but is not in this collection.";
    pub const CORRUPTED_ENTITY: &str = "Resource is corrupted and cannot be read.";

    /// `413` for `exec`, `parameters`, `annotations` or `Request`.
    pub fn too_large(field: &str, size: u64, allowed: u64) -> String {
        format!("{field} larger than allowed: {size} > {allowed} bytes.")
    }

    pub fn too_many_requests(count: u64, allowed: u64) -> String {
        format!("Too many requests in the last minute (count: {count}, allowed: {allowed}).")
    }

    pub fn too_many_concurrent_requests(count: u64, allowed: u64) -> String {
        format!("Too many concurrent requests in flight (count: {count}, allowed: {allowed}).")
    }

    /// The scheduler-style throttle text, without counts.
    pub const TOO_MANY_REQUESTS: &str = "Too many requests";

    // ---- §3.4 entitlement ---------------------------------------------------------------------

    pub const NOT_ALLOWED_ON_BINDING: &str = "Operation not permitted on package binding.";

    pub fn binding_circular_reference(fqname: impl Display) -> String {
        format!("Package binding '{fqname}' contains a circular reference.")
    }

    pub fn forbidden_get_action(entity_path: impl Display) -> String {
        format!("GET not permitted for '{entity_path}' since it's an action in a shared package")
    }

    pub fn forbidden_get_action_binding(doc_id: impl Display) -> String {
        format!(
            "GET not permitted for '{doc_id}'. Resource does not exist or is an action in a shared package binding."
        )
    }

    pub fn forbidden_get_package(package: impl Display) -> String {
        format!("GET not permitted for '{package}' since it's a shared package")
    }

    pub fn forbidden_get_package_binding(package: impl Display) -> String {
        format!("GET not permitted since {package} is a binding of a shared package")
    }

    // ---- §5.4 list queries (wrap with `malformed_query`) -------------------------------------

    pub fn list_limit_out_of_range(collection: &str, value: impl Display, max: u64) -> String {
        format!("The value '{value}' is not in the range of 0 to {max} for {collection}.")
    }

    pub fn list_skip_out_of_range(collection: &str, value: impl Display) -> String {
        format!("The value '{value}' is not greater than or equal to 0 for {collection}.")
    }

    pub fn list_not_integer(collection: &str, value: &str) -> String {
        format!("The value '{value}' is not an integer for {collection}.")
    }

    // ---- §6 limits ----------------------------------------------------------------------------

    /// The result that replaces an over-long action response.
    pub fn truncated_response(length: u64, max: u64, truncated: &str) -> String {
        format!(
            "The action produced a response that exceeded the allowed length: {length} > {max} bytes. The truncated response was: {truncated}"
        )
    }

    // ---- §7 actions ---------------------------------------------------------------------------

    pub const EXEC_UNDEFINED: &str = "exec undefined";

    /// Unknown kind; `valid` is listed in the given order, each quoted.
    pub fn invalid_runtime<S: AsRef<str>>(kind: &str, valid: &[S]) -> String {
        let listed: Vec<String> = valid.iter().map(|k| format!("'{}'", k.as_ref())).collect();
        format!(
            "The specified runtime '{kind}' is not supported by this platform. Valid values are: {}.",
            listed.join(", ")
        )
    }

    pub fn runtime_deprecated(kind: &str) -> String {
        format!(
            "The '{kind}' runtime is no longer supported. You may read and delete but not update or invoke this action."
        )
    }

    pub const KIND_NOT_A_STRING: &str = "'kind' must be a string defined in 'exec'";

    pub fn code_missing(kind: &str) -> String {
        format!(
            "'code' must be a string or attachment object defined in 'exec' for '{kind}' actions"
        )
    }

    pub fn code_not_a_string(kind: &str) -> String {
        format!("'code' must be a string defined in 'exec' for '{kind}' actions")
    }

    pub fn main_required(kind: &str) -> String {
        format!("'main' must be a string defined in 'exec' for '{kind}' actions")
    }

    /// OpenWhisk's wording, including the missing "must".
    pub fn main_not_a_string(kind: &str) -> String {
        format!("if defined, 'main' be a string in 'exec' for '{kind}' actions")
    }

    pub const IMAGE_MISSING: &str =
        "'image' must be a string defined in 'exec' for 'blackbox' actions";
    pub const COMPONENTS_MISSING: &str = "'components' must be defined for sequence kind";
    pub const COMPONENTS_NOT_AN_ARRAY: &str = "'components' must be an array";

    pub const PARAMETERS_NOT_ALLOWED: &str =
        "Request defines parameters that are not allowed (e.g., reserved properties).";

    pub fn invalid_timeout(max_ms: u64) -> String {
        format!("Timeout must be number of milliseconds up to {max_ms}.")
    }

    // ---- §8 activations -----------------------------------------------------------------------

    pub fn timed_out_run(timeout_ms: u64) -> String {
        format!("The action exceeded its time limits of {timeout_ms} milliseconds.")
    }

    pub fn timed_out_init(timeout_ms: u64) -> String {
        format!(
            "The action exceeded its time limits of {timeout_ms} milliseconds during initialization."
        )
    }

    /// Init reply without an `error` field; `raw` is the reply text (may be empty).
    pub fn invalid_init_response(raw: &str) -> String {
        if raw.is_empty() {
            "The action failed during initialization.".to_string()
        } else {
            format!("The action failed during initialization: {raw}")
        }
    }

    /// Run reply that was not a usable JSON object or array; `raw` is the reply text (may be empty).
    pub fn invalid_run_response(raw: &str) -> String {
        if raw.is_empty() {
            "The action did not produce a valid JSON or JSON Array response.".to_string()
        } else {
            format!("The action did not produce a valid JSON or JSON Array response: {raw}")
        }
    }

    pub const ABNORMAL_INITIALIZATION: &str =
        "The action did not initialize and exited unexpectedly.";
    pub const ABNORMAL_RUN: &str =
        "The action did not produce a valid response and exited unexpectedly.";
    pub const MEMORY_EXHAUSTED: &str = "The action exhausted its memory and was aborted.";
    pub const RESOURCE_PROVISION_ERROR: &str = "Failed to provision resources to run the action.";

    pub fn image_pull_error(image: &str) -> String {
        format!("Failed to pull container image '{image}'.")
    }

    pub const ACTION_REMOVED_WHILE_INVOKING: &str =
        "Action could not be found or may have been deleted.";
    pub const NAMESPACE_BLACKLISTED: &str =
        "The action was not invoked due to a blacklisted namespace.";

    pub fn logs_truncated(limit_bytes: u64) -> String {
        format!(
            "Logs were truncated because the total bytes size exceeds the limit of {limit_bytes} bytes."
        )
    }

    pub const LOG_COLLECTION_FAILURE: &str =
        "There was an issue while collecting your logs. Data might be missing.";
    pub const LOG_WARNING_DEVELOPER_ERROR: &str =
        "The action did not initialize or run as expected. Log data might be missing.";

    pub const DOCS_NOT_ALLOWED_WITH_COUNT: &str =
        "The parameter 'docs' is not permitted with 'count'.";

    pub fn bad_name_filter(value: &str) -> String {
        format!("Parameter may be a 'simple' name or 'package-name/simple' name: {value}")
    }

    pub fn bad_epoch(value: &str) -> String {
        format!("Parameter is not a valid value for epoch seconds: {value}")
    }

    // ---- §9.1 packages and bindings -----------------------------------------------------------

    pub const BINDING_DOES_NOT_EXIST: &str = "Binding references a package that does not exist.";
    pub const PACKAGE_CANNOT_BECOME_BINDING: &str =
        "Resource is a package and cannot be converted into a binding.";
    pub const BINDING_CANNOT_REFERENCE_BINDING: &str = "Cannot bind to another package binding.";
    pub const BINDING_TARGET_NOT_A_PACKAGE: &str =
        "Cannot bind to a resource that is not a package.";

    pub fn package_not_empty(contained: usize) -> String {
        let noun = if contained == 1 { "entity" } else { "entities" };
        format!(
            "Package not empty (contains {contained} {noun}). Set force param or delete package contents."
        )
    }

    // ---- §10 sequences and §14 compositions ---------------------------------------------------

    pub const SEQUENCE_TOO_LONG: &str = "Too many actions in the sequence.";
    pub const SEQUENCE_NO_COMPONENT: &str = "No component specified for the sequence.";
    pub const SEQUENCE_CYCLIC: &str = "Sequence may not refer to itself.";
    pub const SEQUENCE_COMPONENT_NOT_FOUND: &str = "Sequence component does not exist.";
    pub const SEQUENCE_FAILURE: &str = "Sequence failed.";

    pub fn sequence_retrieve_timeout(activation_id: impl Display) -> String {
        format!(
            "Timeout reached when retrieving activation {activation_id} for sequence component."
        )
    }

    pub const COMPOSITION_TOO_LONG: &str = "Too many actions in the composition.";
    pub const COMPOSITION_FAILURE: &str = "Activation failure during composition.";

    pub fn composition_timeout(activation_id: impl Display) -> String {
        format!("Timeout reached when retrieving activation {activation_id} during composition.")
    }

    pub fn composition_component_invalid(value: impl Display) -> String {
        format!("Failed to parse action name from json value {value} during composition.")
    }

    pub fn composition_component_not_found(name: &str) -> String {
        format!("Failed to resolve action with name '{name}' during composition.")
    }

    pub fn composition_component_not_accessible(name: &str) -> String {
        format!("Failed entitlement check for action with name '{name}' during composition.")
    }

    // ---- §12 triggers and rules ---------------------------------------------------------------

    pub const FEED_NAME_INVALID: &str = "Feed name is not valid";
    pub const RULE_REQUIRES_TRIGGER_AND_ACTION: &str =
        "rule requires a valid trigger and a valid action";
    pub const RULE_NEEDS_EXISTING_TRIGGER: &str =
        "Only rules with existing triggers can be activated";

    /// `fqname` in the `/ns/t` form.
    pub fn trigger_does_not_exist(fqname: impl Display) -> String {
        format!("trigger {fqname} does not exist")
    }

    /// `fqname` in the `/ns[/pkg]/a` form.
    pub fn action_does_not_exist(fqname: impl Display) -> String {
        format!("action {fqname} does not exist")
    }

    pub fn unknown_rule_status(status: &str) -> String {
        format!("'{status}' is not a recognized rule state, must be one of ['active', 'inactive']")
    }

    pub fn rule_inactive(rule: &str, action: &str) -> String {
        format!("Rule '{rule}' is inactive, action '{action}' was not activated.")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::messages::*;
    use super::*;

    #[test]
    fn error_body_has_error_and_code() {
        let body = ErrorBody::new(RESOURCE_EXISTS, "tid123");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":"resource already exists","code":"tid123"}"#
        );
    }

    #[test]
    fn malformed_wrappers_put_the_detail_on_a_new_line() {
        assert_eq!(malformed_body("x"), "The request content was malformed:\nx");
        assert_eq!(
            malformed_query("limit", "y"),
            "The query parameter 'limit' was malformed:\ny"
        );
    }

    #[test]
    fn not_authorized_sorts_and_deduplicates_names() {
        assert_eq!(
            not_authorized(&["ns/b", "ns/a", "ns/b"]),
            "The supplied authentication is not authorized to access 'ns/a, ns/b'."
        );
    }

    #[test]
    fn formatted_messages_match_openwhisk() {
        assert_eq!(
            does_not_exist_named("guest/x"),
            "The requested resource 'guest/x' does not exist."
        );
        assert_eq!(
            too_large("exec", 50331649, 50331648),
            "exec larger than allowed: 50331649 > 50331648 bytes."
        );
        assert_eq!(
            too_many_requests(61, 60),
            "Too many requests in the last minute (count: 61, allowed: 60)."
        );
        assert_eq!(
            list_limit_out_of_range("actions", 201, 200),
            "The value '201' is not in the range of 0 to 200 for actions."
        );
        assert_eq!(
            invalid_runtime("foo", &["blackbox", "nodejs:20"]),
            "The specified runtime 'foo' is not supported by this platform. Valid values are: 'blackbox', 'nodejs:20'."
        );
        assert_eq!(
            package_not_empty(1),
            "Package not empty (contains 1 entity). Set force param or delete package contents."
        );
        assert_eq!(
            package_not_empty(3),
            "Package not empty (contains 3 entities). Set force param or delete package contents."
        );
        assert_eq!(
            invalid_init_response(""),
            "The action failed during initialization."
        );
        assert_eq!(
            invalid_run_response("oops"),
            "The action did not produce a valid JSON or JSON Array response: oops"
        );
        assert_eq!(
            method_not_allowed(&["GET", "PUT", "DELETE"]),
            "HTTP method not allowed, supported methods: GET, PUT, DELETE"
        );
    }

    #[test]
    fn name_errors_are_reported_as_malformed_content() {
        let error = ModelError::from(NameError::EntityNameIllegal);
        assert_eq!(error.class(), ErrorClass::MalformedContent);
        assert_eq!(
            error.api_message(),
            "The request content was malformed:\nThe name of the entity contains illegal characters."
        );
        let too_large = ModelError::TooLarge {
            field: "parameters",
            size: 2,
            allowed: 1,
        };
        assert_eq!(too_large.class(), ErrorClass::PayloadTooLarge);
        assert_eq!(
            too_large.api_message(),
            "parameters larger than allowed: 2 > 1 bytes."
        );
    }
}
