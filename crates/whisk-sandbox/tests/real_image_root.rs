//! A container on an image's root filesystem (`ContainerSpec::rootfs`): it sees the image and
//! nothing of the host's runtime directories, cannot write into the shared image, and gets its
//! own `/etc/hosts` without the image's file being touched.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{run, sandbox, shell, value};
use whisk_sandbox::ExitStatus;

/// Copies a host program and the shared libraries `ldd` names (with the loader) into `root`
/// at the same paths.
fn copy_program(program: &str, root: &Path) {
    let mut files = vec![program.to_owned()];
    let output = std::process::Command::new("ldd")
        .arg(program)
        .output()
        .expect("run ldd");
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|path| path.starts_with('/')) {
            files.push(path.to_owned());
        }
    }
    for file in files {
        let target = root.join(file.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(&file, &target).expect("copy a file into the image");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_runs_on_a_read_only_image_root() {
    let Some(sandbox) = sandbox("image-root").await else {
        return;
    };
    let image = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(image.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let root = image.path().join("rootfs");
    std::fs::create_dir(&root).expect("mkdir rootfs");
    for program in ["/bin/sh", "/bin/cat"] {
        copy_program(program, &root);
    }
    std::fs::create_dir_all(root.join("etc")).expect("mkdir etc");
    std::fs::write(root.join("etc/hosts"), "from the image\n").expect("write hosts");
    std::fs::write(root.join("marker"), "image-marker\n").expect("write marker");

    let mut spec = shell(
        "img-1",
        "echo marker=$(cat /marker); \
         if echo x > /marker 2>/dev/null; then echo root=writable; else echo root=read-only; fi; \
         if echo x > /etc/hosts 2>/dev/null; then echo hosts=writable; else echo hosts=read-only; fi; \
         if [ -e /usr/bin/python3 ] || [ -e /usr/lib/os-release ]; then echo host=visible; else echo host=hidden; fi; \
         echo tmp > /tmp/probe && echo tmp=$(cat /tmp/probe); \
         echo proc=$(cat /proc/self/comm); \
         grep_hosts=$(cat /etc/hosts); case \"$grep_hosts\" in *action-box*) echo hosts=generated;; *) echo hosts=image;; esac",
    );
    spec.rootfs = Some(root.clone());
    let (out, err, status) = run(&sandbox, spec).await;
    assert_eq!(status, ExitStatus::Code(0), "stdout {out}\nstderr {err}");
    assert_eq!(value(&out, "marker"), Some("image-marker"), "{out}");
    assert_eq!(value(&out, "root"), Some("read-only"), "{out}");
    assert!(out.contains("hosts=read-only"), "{out}");
    assert!(out.contains("hosts=generated"), "{out}");
    assert_eq!(value(&out, "host"), Some("hidden"), "{out}");
    assert_eq!(value(&out, "tmp"), Some("tmp"), "{out}");
    assert_eq!(value(&out, "proc"), Some("cat"), "{out}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hosts")).expect("read hosts"),
        "from the image\n",
        "the shared image stays as it was"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("marker")).expect("read marker"),
        "image-marker\n"
    );
    assert!(!root.join(".whisk").exists() && !root.join("proc").exists());
    sandbox.shutdown().await.expect("shut down");
}
