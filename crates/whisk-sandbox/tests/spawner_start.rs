//! Starting the spawner and the sandbox fails with a named error when it cannot work; these
//! need no root.

use std::ffi::OsString;
use std::path::Path;

use whisk_sandbox::{Sandbox, SandboxConfig, SandboxError, Spawner};

#[tokio::test]
async fn a_missing_spawner_program_is_a_start_error() {
    let error = Spawner::start(Path::new("/nonexistent/whisk-spawner"), &[], true)
        .await
        .expect_err("no such program");
    assert!(
        matches!(error, SandboxError::SpawnerStart { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_spawner_that_exits_without_greeting_is_a_start_error() {
    let error = Spawner::start(
        Path::new("/bin/sh"),
        &[OsString::from("-c"), OsString::from("exit 0")],
        true,
    )
    .await
    .expect_err("no greeting");
    assert!(
        error.to_string().contains("exited before greeting"),
        "{error}"
    );
}

#[tokio::test]
async fn the_real_spawner_starts_and_greets() {
    // CI runs tests with stdin on /dev/null (and a closed fd 0 was checked by hand): the
    // socket pair reaches the spawner as its stdin whatever our own fd 0 is.
    let spawner = Spawner::start(Path::new(env!("CARGO_BIN_EXE_whisk-spawner")), &[], true).await;
    let spawner = spawner.expect("the spawner starts and greets");
    assert!(spawner.pid() > 0);
}

#[tokio::test]
async fn an_instance_name_that_could_escape_its_cgroup_is_refused() {
    for instance in ["", "../etc", "a/b", "with space"] {
        let config = SandboxConfig {
            instance: instance.to_owned(),
            spawner_program: env!("CARGO_BIN_EXE_whisk-spawner").into(),
            spawner_args: Vec::new(),
            user_namespaces: true,
        };
        assert!(
            matches!(
                Sandbox::start(config).await,
                Err(SandboxError::InvalidInstance(_))
            ),
            "{instance:?}"
        );
    }
}
