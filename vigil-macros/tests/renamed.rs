//! A crate that depends on `vigil` or `vigil-std` under another name, and on
//! nothing else of the SDK, gets expansions that name it so, without
//! `crate = ".."`: `renamed_sdk/app.rs` is built and run, with Cargo, as
//! such a crate.

use std::path::Path;
use std::process::Command;

#[test]
fn a_renamed_dependency_is_found_in_cargo_toml() {
    let macros = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = macros.parent().expect("the workspace holds vigil-macros");
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("renamed-sdk");
    for (package, dir) in [
        ("vigil", workspace.to_owned()),
        ("vigil-std", workspace.join("vigil-std")),
    ] {
        let project = scratch.join(package);
        std::fs::create_dir_all(&project).unwrap();
        let manifest = format!(
            "[package]\n\
             name = \"renamed-{package}\"\n\
             version = \"0.0.0\"\n\
             edition = \"2021\"\n\
             publish = false\n\n\
             [[bin]]\n\
             name = \"app\"\n\
             path = '{app}'\n\n\
             [dependencies]\n\
             observability = {{ package = \"{package}\", path = '{dir}', default-features = false }}\n\n\
             [workspace]\n",
            app = macros.join("tests/renamed_sdk/app.rs").display(),
            dir = dir.display(),
        );
        std::fs::write(project.join("Cargo.toml"), manifest).unwrap();
        // The workspace's versions of the dependencies, already downloaded.
        std::fs::copy(workspace.join("Cargo.lock"), project.join("Cargo.lock")).unwrap();

        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args(["run", "--quiet", "--manifest-path"])
            .arg(project.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(scratch.join("target"))
            .output()
            .expect("cargo runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("renamed SDK: 3 spans"),
            "`{package}` renamed `observability`: {}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
        );
    }
}
