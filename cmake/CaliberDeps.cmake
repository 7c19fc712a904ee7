# Third-party dependencies, all from Debian 12 packages (scripts/setup.sh installs them).
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Eigen3 3.4 CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(Protobuf REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)

# OpenBLAS backs Eigen's BLAS-3 products (EIGEN_USE_BLAS): ~3x plain Eigen on this hardware.
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)

# The service layer: gRPC + Protobuf (proto/), prometheus-cpp (/metrics), libcurl (S3 with
# SigV4), OpenSSL (hashes for SigV4 payloads and manifests), zlib (CRC-32 of streamed chunks),
# libmicrohttpd (serves /metrics: concurrent connections on one epoll thread).
find_package(gRPC CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(CURL REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(ZLIB REQUIRED)
pkg_check_modules(MICROHTTPD REQUIRED IMPORTED_TARGET libmicrohttpd)
find_program(CALIBER_PROTOC protoc REQUIRED)
find_program(CALIBER_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
