# Carries the edgeshim binaries onto nodes: copy /opt/kwasm/bin out of it
# (K3s picks containerd-shim-*-v1 up from there). Build: docker build -t edgeshim .
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libseccomp-dev protobuf-compiler pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p containerd-shim-wasmtime -p edgeshim-tools

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libseccomp2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/containerd-shim-wasmtime-v1 /opt/kwasm/bin/
COPY --from=build /src/target/release/edgeshim-oci /opt/kwasm/bin/
CMD ["ls", "-l", "/opt/kwasm/bin"]
