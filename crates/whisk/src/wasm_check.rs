//! The controller's check of WebAssembly actions' code when they are written: the module is
//! compiled then, so that a module that can never run is refused with a 400 at create or update
//! instead of failing every activation.
//!
//! What happens to the compiled module depends on the role. `whisk standalone` compiles into the
//! engine its own invoker runs from, so the action's first invoke finds the module ready in the
//! engine's cache and its cold start pays no compile. A cluster controller has no engine of its
//! own (the invokers are other processes, often on other hosts): it compiles with a
//! [`WasmValidator`] and drops the result, and each invoker compiles the module on first use.

use std::sync::Arc;

use async_trait::async_trait;
use whisk_controller::{AcceptAnyCode, CodeCheck, CodeRefused};
use whisk_invoker::KindRouter;
use whisk_model::Exec;
use whisk_wasm::{WasmEngine, WasmValidator};

/// Compiles the code of `wasm:*` actions when they are written; accepts every other kind.
#[derive(Debug, Clone)]
pub(crate) enum WasmCodeCheck {
    /// Compile into this engine's cache (standalone: the engine of the local invoker).
    Cache(WasmEngine),
    /// Compile and drop (a controller whose invokers run elsewhere).
    Validate(Arc<WasmValidator>),
}

impl WasmCodeCheck {
    /// The check of a controller: into `engine` when an invoker of this process runs from it,
    /// else through a validator. A validator wasmtime refuses to build (it never should: it has
    /// the settings of every engine) leaves the check to the invokers, with an error logged.
    pub(crate) fn for_controller(engine: Option<&WasmEngine>) -> Arc<dyn CodeCheck> {
        if let Some(engine) = engine {
            return Arc::new(WasmCodeCheck::Cache(engine.clone()));
        }
        match WasmValidator::new() {
            Ok(validator) => Arc::new(WasmCodeCheck::Validate(Arc::new(validator))),
            Err(error) => {
                tracing::error!(
                    %error,
                    "no WebAssembly validator; modules are checked by the invokers only"
                );
                Arc::new(AcceptAnyCode)
            }
        }
    }
}

#[async_trait]
impl CodeCheck for WasmCodeCheck {
    async fn check(&self, exec: &Exec) -> Result<(), CodeRefused> {
        let Exec::Code { kind, code, .. } = exec else {
            return Ok(());
        };
        if !KindRouter::is_wasm(kind) {
            return Ok(());
        }
        let check = self.clone();
        let code = code.clone();
        // Cranelift is CPU-bound for milliseconds or more: off the request's async thread.
        let checked = tokio::task::spawn_blocking(move || match &check {
            WasmCodeCheck::Cache(engine) => engine.compile_base64(&code).map(|compiled| {
                tracing::debug!(
                    digest = %compiled.digest_hex(),
                    compile_ms = compiled.compile_time().as_secs_f64() * 1000.0,
                    "WebAssembly module compiled as its action was written"
                );
            }),
            WasmCodeCheck::Validate(validator) => validator.check_base64(&code),
        })
        .await;
        match checked {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(CodeRefused(error.to_string())),
            // A panic inside wasmtime is a platform bug, not the developer's: the action is
            // stored, and the invoker's own compile reports the failure at init.
            Err(join) => {
                tracing::error!(error = %join, "the WebAssembly check of an action failed");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use base64::Engine as _;
    use whisk_wasm::WasmConfig;

    use super::*;

    fn exec(kind: &str, code: &str) -> Exec {
        Exec::Code {
            kind: kind.into(),
            code: code.into(),
            main: None,
            binary: true,
        }
    }

    fn module() -> String {
        let bytes = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[tokio::test]
    async fn the_standalone_check_compiles_into_the_invokers_engine() {
        let engine = WasmEngine::new(WasmConfig {
            max_instances: 1,
            max_memory_mb: 16,
            ..WasmConfig::default()
        })
        .unwrap();
        let check = WasmCodeCheck::for_controller(Some(&engine));
        check.check(&exec("wasm:wasi", &module())).await.unwrap();
        assert_eq!(engine.compilations(), 1);
        // The invoker's compile of the same code is a cache hit.
        engine.compile_base64(&module()).unwrap();
        assert_eq!(engine.compilations(), 1);

        let refused = check
            .check(&exec("wasm:wasi", "AGFzbQEAAAA="))
            .await
            .unwrap_err();
        assert_eq!(
            refused.0,
            "The WebAssembly module is not a WASI command: it must export a function '_start' taking and returning nothing."
        );
        // Other kinds are not WebAssembly's business.
        check.check(&exec("nodejs:20", "not base64")).await.unwrap();
        assert_eq!(engine.compilations(), 2);
    }

    #[tokio::test]
    async fn the_cluster_check_validates_without_an_engine() {
        let check = WasmCodeCheck::for_controller(None);
        check.check(&exec("wasm:wasi", &module())).await.unwrap();
        let refused = check
            .check(&exec("wasm:wasi", "not base64!"))
            .await
            .unwrap_err();
        assert!(
            refused
                .0
                .starts_with("The action's code is not valid base64: "),
            "{refused}"
        );
    }
}
