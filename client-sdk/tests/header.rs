//! `include/traceless.h` is what cbindgen generates from `src/ffi.rs` today.
//! Regenerate with `TRACELESS_BLESS=1 cargo test -p traceless-sdk --test header`.

#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn checked_in_header_is_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi.rs"))
        .generate()
        .unwrap()
        .write(&mut generated);
    let path = root.join("include/traceless.h");
    if std::env::var_os("TRACELESS_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "include/traceless.h is stale: regenerate it with \
         `TRACELESS_BLESS=1 cargo test -p traceless-sdk --test header`"
    );
}
