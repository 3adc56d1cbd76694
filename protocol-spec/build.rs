//! Compiles `proto/*.proto` with protox (a pure-Rust protobuf compiler), so building
//! Traceless needs no `protoc` binary on the developer's or the phone builder's machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/traceless.proto",
        "proto/gaen_export.proto",
        "proto/venue.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
