// swift-tools-version:5.7
// The Traceless SDK for iOS: the generated Swift bindings (Sources/TracelessSdk)
// over the Rust library, shipped as an XCFramework built by the steps in
// client-sdk/README.md ("iOS"): `TracelessSdkFFI.xcframework` holds
// libtraceless_sdk.a for the device and the simulator with Headers/ (the C
// module `traceless_sdkFFI` the Swift file imports).
import PackageDescription

let package = Package(
    name: "TracelessSdk",
    platforms: [.iOS(.v13), .macOS(.v11)],
    products: [
        .library(name: "TracelessSdk", targets: ["TracelessSdk"]),
    ],
    targets: [
        .binaryTarget(name: "traceless_sdkFFI", path: "TracelessSdkFFI.xcframework"),
        .target(
            name: "TracelessSdk",
            dependencies: ["traceless_sdkFFI"],
            path: "Sources/TracelessSdk"
        ),
    ]
)
