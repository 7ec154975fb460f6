# Carries the edgeshim binaries onto nodes: copy /opt/kwasm out of it (K3s
# picks containerd-shim-*-v1 up from /opt/kwasm/bin). Both shims are built;
# the WasmEdge one with libwasmedge 0.14.1 from WasmEdge's release, shipped
# beside it in /opt/kwasm/lib (the shim's rpath is $ORIGIN/../lib).
# Build: docker build -t edgeshim .
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libseccomp-dev protobuf-compiler pkg-config \
      clang libclang-dev curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# WasmEdge 0.14.1, the release archive wasmedge-sys 0.19.4 itself names
# (and its sha256).
ARG WASMEDGE_VERSION=0.14.1
ARG WASMEDGE_SHA256=a82f9fb01a6a6f1dfbd1cb069dc96d116f22c15cdb01207a5d0e65096055d092
RUN curl -fsSL -o /tmp/wasmedge.tar.gz \
      https://github.com/WasmEdge/WasmEdge/releases/download/${WASMEDGE_VERSION}/WasmEdge-${WASMEDGE_VERSION}-manylinux2014_x86_64.tar.gz \
 && echo "${WASMEDGE_SHA256}  /tmp/wasmedge.tar.gz" | sha256sum -c - \
 && mkdir -p /opt/wasmedge \
 && tar -xzf /tmp/wasmedge.tar.gz -C /opt/wasmedge --strip-components=1 \
 && rm /tmp/wasmedge.tar.gz
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p containerd-shim-wasmtime -p edgeshim-tools
RUN WASMEDGE_DIR=/opt/wasmedge WASMEDGE_RPATH='$ORIGIN/../lib' \
    cargo build --release --locked -p containerd-shim-wasmedge --features wasmedge

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libseccomp2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/containerd-shim-wasmtime-v1 /opt/kwasm/bin/
COPY --from=build /src/target/release/containerd-shim-wasmedge-v1 /opt/kwasm/bin/
COPY --from=build /src/target/release/edgeshim-oci /opt/kwasm/bin/
COPY --from=build /opt/wasmedge/lib64/libwasmedge.so.0 /opt/kwasm/lib/
CMD ["ls", "-lR", "/opt/kwasm"]
