// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "lmtphook",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "lmtphook", targets: ["lmtphook"]),
        /// The LMTP server as a library: a message handler, a MAIL/RCPT policy hook, logging, run/stop.
        .library(name: "LMTPServer", targets: ["LMTPServer"]),
        .library(name: "LMTPCore", targets: ["LMTPCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.0.0"),
        // `swift package generate-documentation --target LMTPServer` (DocC catalogues of the library products).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
        // The retry queue's heap.
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        // The delivery journal (and the archive index): SQLite in WAL mode.
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.0.0"),
        // Test clocks that the delivery tests drive instead of sleeping.
        .package(url: "https://github.com/pointfreeco/swift-clocks.git", from: "1.0.0"),
    ],
    targets: [
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // Pure cores: no sockets, no curl, no clocks.
        .target(name: "LMTPCore", swiftSettings: strict),
        // A message's bytes as a handle (memory or file) and request bodies streamed from it.
        .target(name: "MessageData", swiftSettings: strict),
        .target(
            name: "MailCore",
            dependencies: ["MessageData", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // Where mail goes and what it looks like there: routes, target formats (Slack, Discord, …,
        // Mustache templates), truncation, rate limits. Pure: no sockets, no curl, no clocks.
        .target(
            name: "Targets",
            dependencies: [
                "MailCore", "MessageData", .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // The durable spool and the retry policy: blocking POSIX file I/O, no NIO.
        .target(
            name: "Spool",
            dependencies: ["MessageData", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // Only this target knows curl.
        .target(
            name: "WebhookClient",
            dependencies: [
                "CCurl", "MessageData", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // The delivery engine: attempts, endpoint policy (breaker, buckets, slots) over a clock,
        // the retry scheduler, dispositions. Knows endpoints, the spool and the webhook client,
        // not LMTP.
        .target(
            name: "Delivery",
            dependencies: [
                "MailCore", "Spool", "Targets", "WebhookClient", "MessageData",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The NIO shell around LMTPCore, also shipped as a library product.
        .target(
            name: "LMTPServer",
            dependencies: [
                "LMTPCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The relay: LMTP server + payload + webhook delivery + embedded receiver.
        .target(
            name: "LMTPHook",
            dependencies: [
                "LMTPServer", "LMTPCore", "MailCore", "WebhookClient", "Spool", "Targets", "Delivery", "MessageData",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "LMTPHookCLI",
            dependencies: [
                "LMTPHook", "LMTPServer", "WebhookClient", "MailCore", "Spool", "Targets", "Delivery",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(name: "lmtphook", dependencies: ["LMTPHookCLI"], swiftSettings: strict),
        // Benchmarks: `swift run -c release lmtphook-bench parse ../shared/corpus` (figures in the README).
        .executableTarget(
            name: "lmtphook-bench",
            dependencies: ["MailCore", "LMTPHook", "Delivery"],
            swiftSettings: strict
        ),
        // Fuzzers (libFuzzer): the LMTP session engine and the parser + payload encoder. A normal build
        // replays inputs (`swift run lmtphook-fuzz lmtp FILES…`); deploy/fuzz/fuzz.sh builds them for libFuzzer.
        .target(name: "Fuzzing", dependencies: ["LMTPCore", "MailCore", "Targets"], swiftSettings: strict),
        .executableTarget(name: "lmtphook-fuzz", dependencies: ["Fuzzing"], swiftSettings: strict),
        // Helpers shared by the socket-level test targets (real HTTP receivers, temp dirs, processes).
        .target(
            name: "LMTPHookTestSupport",
            dependencies: [
                "LMTPHook", "LMTPServer", "LMTPCore", "WebhookClient", "Spool", "Delivery",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/LMTPHookTestSupport"
        ),
        .testTarget(name: "LMTPCoreTests", dependencies: ["LMTPCore"]),
        .testTarget(name: "FuzzingTests", dependencies: ["Fuzzing"], exclude: ["Corpus"]),
        .testTarget(
            name: "MailCoreTests",
            dependencies: ["MailCore", "MessageData"],
            exclude: ["Golden", "Messages"]
        ),
        .testTarget(name: "SpoolTests", dependencies: ["Spool", "MessageData"]),
        .testTarget(name: "MessageDataTests", dependencies: ["MessageData"]),
        .testTarget(
            name: "DeliveryTests",
            dependencies: ["Delivery", "Targets", .product(name: "Clocks", package: "swift-clocks")]
        ),
        .testTarget(
            name: "TargetsTests",
            dependencies: ["Targets", "MailCore", "MessageData", "LMTPHookTestSupport"],
            exclude: ["Golden"]
        ),
        .testTarget(
            name: "WebhookClientTests",
            dependencies: [
                "WebhookClient", "LMTPHook", "MessageData", "LMTPHookTestSupport",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "LMTPHookTests",
            dependencies: [
                "LMTPHook", "LMTPServer", "LMTPCore", "MailCore", "WebhookClient", "LMTPHookCLI", "LMTPHookTestSupport",
                "Spool", "Targets", "Delivery", .product(name: "Clocks", package: "swift-clocks"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Read by path at run time (receivers, the power-loss file system, spool fixtures).
            exclude: ["Fixtures"]
        ),
    ]
)
