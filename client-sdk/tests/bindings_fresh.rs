//! The checked-in Kotlin, Swift and Python bindings (`bindings/`) are what
//! UniFFI generates from the library built for this test run (the same as
//! `uniffi-bindgen generate --library`). Regenerate them with
//! `TRACELESS_BLESS=1 cargo test -p traceless-sdk --test bindings_fresh`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use uniffi::{GenerateOptions, TargetLanguage};

/// The shared library cargo built beside the test executables.
fn shared_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let name = format!(
        "{}traceless_sdk{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    exe.parent().unwrap().join(name)
}

/// Where each generated file lives in `bindings/`: Kotlin and Python as
/// generated, Swift as a Swift package (sources, and the C module the
/// XCFramework carries).
fn checked_in_path(language: &str, generated: &Path) -> PathBuf {
    let name = generated.file_name().unwrap().to_str().unwrap();
    let base = PathBuf::from(language);
    match (language, generated.extension().and_then(|e| e.to_str())) {
        ("swift", Some("swift")) => base.join("Sources/TracelessSdk").join(name),
        ("swift", Some("modulemap")) => base.join("Headers/module.modulemap"),
        ("swift", Some("h")) => base.join("Headers").join(name),
        _ => base.join(generated.strip_prefix(language).unwrap()),
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Every generated file, keyed by its path under `bindings/`.
fn generate() -> BTreeMap<PathBuf, Vec<u8>> {
    let library = shared_library();
    assert!(library.exists(), "{} is missing", library.display());
    let tmp = tempfile::tempdir().unwrap();
    let mut out = BTreeMap::new();
    for (language, target) in [
        ("kotlin", TargetLanguage::Kotlin),
        ("swift", TargetLanguage::Swift),
        ("python", TargetLanguage::Python),
    ] {
        let dir = tmp.path().join(language);
        uniffi::generate(GenerateOptions {
            languages: vec![target],
            source: library.to_str().unwrap().to_owned().into(),
            out_dir: dir.to_str().unwrap().to_owned().into(),
            config_override: None,
            format: false,
            crate_filter: None,
            metadata_no_deps: true,
        })
        .unwrap();
        let mut generated = Vec::new();
        files(&dir, &mut generated);
        for file in generated {
            let rel = checked_in_path(language, file.strip_prefix(tmp.path()).unwrap());
            out.insert(rel, std::fs::read(&file).unwrap());
        }
    }
    out
}

#[test]
fn checked_in_bindings_are_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings");
    let generated = generate();
    if std::env::var_os("TRACELESS_BLESS").is_some() {
        for (rel, bytes) in &generated {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
    let stale: Vec<String> = generated
        .iter()
        .filter(|(rel, bytes)| std::fs::read(root.join(rel)).ok().as_ref() != Some(*bytes))
        .map(|(rel, _)| rel.display().to_string())
        .collect();
    assert!(
        stale.is_empty(),
        "stale or missing bindings {stale:?}: regenerate them with \
         `TRACELESS_BLESS=1 cargo test -p traceless-sdk --test bindings_fresh`"
    );
}
