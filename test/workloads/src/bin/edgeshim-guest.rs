//! `edgeshim-guest`: writes one of the network guests to a file, for
//! scripts (hack/demo.sh) that have no Rust of their own.
//!
//!   edgeshim-guest mqtt-publisher --engine wasmtime -o publisher.wasm
//!
//! The publisher (test/workloads/modules/mqtt.c) is run as
//! `publisher.wasm A.B.C.D PORT SECONDS TOPIC`: it publishes the sensor
//! module's window aggregates of SECONDS seconds of its synthetic feed.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use edgeshim_workloads::components;

#[derive(Parser)]
#[command(
    about = "Writes a network test guest (a WASI 0.2 component, or a WasmEdge socket module)"
)]
struct Cli {
    #[command(subcommand)]
    guest: Guest,
}

#[derive(Clone, Copy, ValueEnum)]
enum Engine {
    /// A WASI 0.2 component (`wasi:sockets`), for the Wasmtime shim.
    Wasmtime,
    /// A preview 1 module on WasmEdge's socket extension.
    Wasmedge,
}

#[derive(Subcommand)]
enum Guest {
    /// The MQTT publisher of the sensor's window aggregates, in C
    MqttPublisher {
        #[arg(long, value_enum)]
        engine: Engine,
        #[arg(short)]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().guest {
        Guest::MqttPublisher { engine, out } => {
            let guest = match engine {
                Engine::Wasmtime => components::mqtt_publisher(),
                Engine::Wasmedge => std::fs::read(edgeshim_workloads::built("mqtt.wasm"))
                    .context("the built mqtt.wasm")?,
            };
            std::fs::write(&out, guest).with_context(|| out.display().to_string())
        }
    }
}
