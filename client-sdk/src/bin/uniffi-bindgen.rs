//! UniFFI's binding generator, pinned to the crate's UniFFI version:
//! `cargo run -p traceless-sdk --features uniffi-cli --bin uniffi-bindgen -- generate
//! --library target/debug/libtraceless_sdk.so --language kotlin --out-dir client-sdk/bindings/kotlin`
//! (the freshness test `tests/bindings_fresh.rs` does the same in-process).

fn main() {
    uniffi::uniffi_bindgen_main()
}
