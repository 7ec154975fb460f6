//! The node installer (`edgeshim-install`), run from the installer image
//! with the host's `/` mounted (a privileged DaemonSet, or `ctr run`).
//!
//! It owns three things on the node, and records each in a manifest so
//! that `--uninstall` takes back exactly what it put there:
//! - the shim binaries (and libwasmedge when the image carries one), in
//!   `/opt/kwasm/bin` on K3s nodes (K3s registers `containerd-shim-*-v1`
//!   found there by itself) and `/usr/local/bin` elsewhere ([`node`]);
//! - elsewhere, the runtime handlers in `/etc/containerd/config.toml`,
//!   edited as TOML with a backup of the original ([`containerd_config`]);
//! - when asked, the example policy library in audit mode
//!   (`/etc/edgeshim`).
//!
//! It must not touch K3s's `config.toml.tmpl` (a Go template), any policy
//! it was not asked to install, or containerd itself unless asked to
//! restart it.

pub mod containerd_config;
pub mod node;
pub mod policy;
