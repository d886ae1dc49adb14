//! From what a runtime proxy answered to OpenWhisk's activation statuses (REFERENCE §8.2, §13.2,
//! §13.3). Pure functions, so each row of those tables is a unit test.
//!
//! Every text comes from [`whisk_model::messages`], where the project keeps OpenWhisk's messages.

use std::time::Duration;

use serde_json::Value;
use whisk_model::{ActivationResponse, ActivationStatus, messages};

use crate::client::{CallError, CallResult, RuntimeReply};

/// What the invoker must do after an `/init` or `/run`.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The activation's response; for a successful `/init` there is none.
    pub response: Option<ActivationResponse>,
    /// The call ran into the action's time limit (annotation `timeout: true`).
    pub timed_out: bool,
    /// The container must not be used again (developer or platform error, §13.3).
    pub destroy_container: bool,
    /// The proxy answered `503` (shutting down): run the activation on another container.
    pub reschedule: bool,
}

impl Verdict {
    fn done(response: ActivationResponse) -> Verdict {
        let destroy = matches!(
            response.status(),
            ActivationStatus::DeveloperError | ActivationStatus::WhiskInternalError
        );
        Verdict {
            response: Some(response),
            timed_out: false,
            destroy_container: destroy,
            reschedule: false,
        }
    }
}

/// The verdict on an `/init` call made with time limit `timeout`. A `200` yields no response:
/// the activation goes on to `/run`.
pub fn init_verdict(outcome: &CallResult, timeout: Duration) -> Verdict {
    match outcome {
        Ok(reply) if reply.status == 200 => Verdict {
            response: None,
            timed_out: false,
            destroy_container: false,
            reschedule: false,
        },
        Ok(reply) => {
            let error = error_field(reply)
                .unwrap_or_else(|| Value::String(messages::invalid_init_response(&reply.body)));
            Verdict::done(ActivationResponse::developer_error(error))
        }
        Err(CallError::Timeout(_)) => Verdict {
            timed_out: true,
            ..Verdict::done(ActivationResponse::developer_error(Value::String(
                messages::timed_out_init(millis(timeout)),
            )))
        },
        Err(CallError::Connection(_)) | Err(CallError::Request(_)) => {
            Verdict::done(ActivationResponse::developer_error(Value::String(
                messages::ABNORMAL_INITIALIZATION.to_string(),
            )))
        }
    }
}

/// The verdict on a `/run` call made with time limit `timeout`; `max_response` is the result cap
/// the client read with (needed for the "exceeded the allowed length" text).
pub fn run_verdict(outcome: &CallResult, timeout: Duration, max_response: usize) -> Verdict {
    let reply = match outcome {
        Ok(reply) => reply,
        Err(CallError::Timeout(_)) => {
            return Verdict {
                timed_out: true,
                ..Verdict::done(ActivationResponse::developer_error(Value::String(
                    messages::timed_out_run(millis(timeout)),
                )))
            };
        }
        Err(CallError::Connection(_)) | Err(CallError::Request(_)) => {
            return Verdict::done(ActivationResponse::developer_error(Value::String(
                messages::ABNORMAL_RUN.to_string(),
            )));
        }
    };
    if reply.status == 503 {
        return Verdict {
            reschedule: true,
            ..Verdict::done(ActivationResponse::whisk_error(Value::String(
                messages::invalid_run_response(&reply.body),
            )))
        };
    }
    // OpenWhisk counts the reply's characters; a cut reply is only known by its byte length.
    let size = Some(if reply.truncated {
        reply.length
    } else {
        reply.body.chars().count() as u64
    });
    if reply.truncated {
        // The result is not stored as sent; the application error keeps its first bytes.
        let text = messages::truncated_response(reply.length, max_response as u64, &reply.body);
        let response = ActivationResponse::error(
            ActivationStatus::ApplicationError,
            Value::String(text),
            size,
        );
        return Verdict::done(response);
    }
    let parsed: Option<Value> = serde_json::from_str(&reply.body).ok();
    let ok = reply.status == 200;
    let response = match parsed {
        Some(Value::Object(fields)) if ok => {
            let status = if fields.contains_key("error") {
                ActivationStatus::ApplicationError
            } else {
                ActivationStatus::Success
            };
            ActivationResponse::new(status, Some(Value::Object(fields)), size)
        }
        Some(Value::Array(items)) if ok => {
            ActivationResponse::new(ActivationStatus::Success, Some(Value::Array(items)), size)
        }
        Some(Value::Object(mut fields)) if !ok && fields.contains_key("error") => {
            let error = fields.remove("error").unwrap_or(Value::Null);
            ActivationResponse::error(ActivationStatus::DeveloperError, error, size)
        }
        _ => ActivationResponse::error(
            ActivationStatus::DeveloperError,
            Value::String(messages::invalid_run_response(&reply.body)),
            size,
        ),
    };
    Verdict::done(response)
}

/// The `error` field of a reply that is a JSON object holding one.
fn error_field(reply: &RuntimeReply) -> Option<Value> {
    match serde_json::from_str::<Value>(&reply.body) {
        Ok(Value::Object(mut fields)) => fields.remove("error"),
        _ => None,
    }
}

fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use serde_json::json;

    use super::*;

    const LIMIT: Duration = Duration::from_millis(60000);
    const MAX: usize = 1024 * 1024;

    fn reply(status: u16, body: &str) -> CallResult {
        Ok(RuntimeReply {
            status,
            body: body.to_string(),
            length: body.len() as u64,
            truncated: false,
            elapsed: Duration::from_millis(3),
        })
    }

    fn run(status: u16, body: &str) -> Verdict {
        run_verdict(&reply(status, body), LIMIT, MAX)
    }

    fn api(verdict: &Verdict) -> Value {
        verdict.response.as_ref().expect("a response").to_api_json()
    }

    #[test]
    fn init_200_goes_on_to_run() {
        let verdict = init_verdict(&reply(200, r#"{"OK":true}"#), LIMIT);
        assert_eq!(verdict.response, None);
        assert!(!verdict.destroy_container && !verdict.timed_out);
    }

    #[test]
    fn init_failure_with_error_field_uses_it() {
        let verdict = init_verdict(
            &reply(502, r#"{"error":"Initialization has failed due to: boom"}"#),
            LIMIT,
        );
        assert_eq!(
            api(&verdict),
            json!({"status":"action developer error","success":false,
                   "result":{"error":"Initialization has failed due to: boom"}})
        );
        assert!(verdict.destroy_container);
    }

    #[test]
    fn init_failure_without_error_field_quotes_the_reply() {
        let verdict = init_verdict(&reply(500, "bad things"), LIMIT);
        assert_eq!(
            api(&verdict)["result"],
            json!({"error":"The action failed during initialization: bad things"})
        );
        let verdict = init_verdict(&reply(500, ""), LIMIT);
        assert_eq!(
            api(&verdict)["result"],
            json!({"error":"The action failed during initialization."})
        );
        let verdict = init_verdict(&reply(403, r#"{"other":1}"#), LIMIT);
        assert_eq!(
            api(&verdict)["result"],
            json!({"error":"The action failed during initialization: {\"other\":1}"})
        );
    }

    #[test]
    fn init_timeout_says_during_initialization() {
        let verdict = init_verdict(&Err(CallError::Timeout(LIMIT)), Duration::from_millis(1500));
        assert_eq!(
            api(&verdict),
            json!({"status":"action developer error","success":false,"result":{"error":
                "The action exceeded its time limits of 1500 milliseconds during initialization."}})
        );
        assert!(verdict.timed_out && verdict.destroy_container);
    }

    #[test]
    fn init_connection_failure_is_an_abnormal_initialization() {
        let verdict = init_verdict(&Err(CallError::Connection("reset".into())), LIMIT);
        assert_eq!(
            api(&verdict)["result"],
            json!({"error":"The action did not initialize and exited unexpectedly."})
        );
        assert_eq!(
            verdict.response.as_ref().map(|r| r.status()),
            Some(ActivationStatus::DeveloperError)
        );
    }

    #[test]
    fn run_object_is_success_with_size() {
        let verdict = run(200, r#"{"payload":"Hello"}"#);
        assert_eq!(
            api(&verdict),
            json!({"status":"success","success":true,"result":{"payload":"Hello"},"size":19})
        );
        assert!(!verdict.destroy_container);
    }

    #[test]
    fn run_size_counts_characters() {
        let verdict = run(200, r#"{"s":"☃"}"#);
        assert_eq!(api(&verdict)["size"], 9);
    }

    #[test]
    fn run_array_is_success() {
        let verdict = run(200, "[1,2]");
        assert_eq!(api(&verdict)["status"], "success");
        assert_eq!(api(&verdict)["result"], json!([1, 2]));
    }

    #[test]
    fn run_200_with_error_is_an_application_error_keeping_the_object() {
        let verdict = run(200, r#"{"error":{"code":7},"extra":true}"#);
        assert_eq!(
            api(&verdict),
            json!({"status":"application error","success":false,
                   "result":{"error":{"code":7},"extra":true},"size":33})
        );
        assert!(!verdict.destroy_container);
    }

    #[test]
    fn run_non_200_with_error_is_a_developer_error_with_that_value() {
        let verdict = run(
            502,
            r#"{"error":"The action did not return a dictionary."}"#,
        );
        assert_eq!(
            api(&verdict)["result"],
            json!({"error":"The action did not return a dictionary."})
        );
        assert_eq!(api(&verdict)["status"], "action developer error");
        assert!(verdict.destroy_container);
    }

    #[test]
    fn run_non_200_without_error_quotes_the_reply() {
        let verdict = run(500, r#"{"x":1}"#);
        assert_eq!(
            api(&verdict)["result"],
            json!({"error":"The action did not produce a valid JSON or JSON Array response: {\"x\":1}"})
        );
        let verdict = run(500, "");
        assert_eq!(
            api(&verdict)["result"],
            json!({"error":"The action did not produce a valid JSON or JSON Array response."})
        );
    }

    #[test]
    fn run_non_json_and_non_object_json_are_developer_errors() {
        for body in ["not json", "\"a string\"", "42", "null"] {
            let verdict = run(200, body);
            assert_eq!(api(&verdict)["status"], "action developer error", "{body}");
            assert_eq!(
                api(&verdict)["result"]["error"],
                json!(format!(
                    "The action did not produce a valid JSON or JSON Array response: {body}"
                ))
            );
        }
    }

    #[test]
    fn run_timeout_is_a_developer_error_flagged_timed_out() {
        let verdict = run_verdict(
            &Err(CallError::Timeout(LIMIT)),
            Duration::from_millis(3000),
            MAX,
        );
        assert_eq!(
            api(&verdict)["result"],
            json!({"error":"The action exceeded its time limits of 3000 milliseconds."})
        );
        assert!(verdict.timed_out && verdict.destroy_container);
    }

    #[test]
    fn run_connection_failure_is_an_abnormal_run() {
        let verdict = run_verdict(&Err(CallError::Connection("eof".into())), LIMIT, MAX);
        assert_eq!(
            api(&verdict),
            json!({"status":"action developer error","success":false,"result":
                {"error":"The action did not produce a valid response and exited unexpectedly."}})
        );
        assert!(verdict.destroy_container && !verdict.timed_out);
    }

    #[test]
    fn run_too_large_is_an_application_error_with_the_truncated_text() {
        let outcome = Ok(RuntimeReply {
            status: 200,
            body: "{\"a\":\"xx".to_string(),
            length: 20,
            truncated: true,
            elapsed: Duration::ZERO,
        });
        let verdict = run_verdict(&outcome, LIMIT, 8);
        assert_eq!(
            api(&verdict),
            json!({"status":"application error","success":false,"size":20,"result":{"error":
                "The action produced a response that exceeded the allowed length: 20 > 8 bytes. The truncated response was: {\"a\":\"xx"}})
        );
        assert!(!verdict.destroy_container);
    }

    #[test]
    fn run_503_asks_for_another_container() {
        let verdict = run(503, "shutting down");
        assert!(verdict.reschedule && verdict.destroy_container);
    }
}
