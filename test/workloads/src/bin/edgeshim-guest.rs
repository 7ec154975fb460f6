//! `edgeshim-guest`: writes one of the network guests to a file, for
//! scripts (hack/demo.sh) that have no Rust of their own.
//!
//!   edgeshim-guest mqtt-publisher --engine wasmtime --to 127.0.0.1:47821 \
//!       --topic edge/line-3/sensor -o publisher.wasm < messages.txt
//!
//! The publisher sends one MQTT 3.1.1 PUBLISH per line of stdin (the
//! sensor module's window aggregates, in the demo).

use std::io::Read;
use std::net::SocketAddrV4;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use edgeshim_workloads::{components, wasmedge_sockets};

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
    /// An MQTT publisher: CONNECT, a PUBLISH per line of stdin, DISCONNECT
    MqttPublisher {
        #[arg(long, value_enum)]
        engine: Engine,
        /// The broker (IPv4)
        #[arg(long)]
        to: SocketAddrV4,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value = "edgeshim-sensor")]
        client_id: String,
        #[arg(short)]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().guest {
        Guest::MqttPublisher {
            engine,
            to,
            topic,
            client_id,
            out,
        } => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            let messages: Vec<String> = input.lines().map(str::to_string).collect();
            let packets = components::mqtt_packets(&client_id, &topic, &messages);
            let address = to.ip().octets();
            let guest = match engine {
                Engine::Wasmtime => components::tcp_send(address, to.port(), &packets),
                Engine::Wasmedge => wasmedge_sockets::tcp_send(address, to.port(), &packets),
            };
            std::fs::write(&out, guest).with_context(|| out.display().to_string())
        }
    }
}
