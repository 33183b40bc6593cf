//! `edgeice serve`: binds the listeners and drives an
//! [`edgeice_server::Server`] with what they receive.

mod tcp;
mod udp;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Args;
use edgeice_server::{Server, ServerConfig};

/// Arguments of `edgeice serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, UDP and TCP; repeat for several. Port 0 picks
    /// a free port (the chosen one is printed).
    #[arg(long = "listen", value_name = "ADDR:PORT", default_values_t = default_listen())]
    listen: Vec<SocketAddr>,

    /// Do not listen on TCP.
    #[arg(long)]
    no_tcp: bool,

    /// Leave the SOFTWARE attribute out of responses.
    #[arg(long)]
    no_software: bool,
}

fn default_listen() -> Vec<SocketAddr> {
    vec![
        "0.0.0.0:3478".parse().expect("valid literal"),
        "[::]:3478".parse().expect("valid literal"),
    ]
}

/// The server core shared by all listeners. The lock is held only to hand
/// one message in and take the responses out; the core does no I/O.
pub(crate) type SharedServer = Arc<Mutex<Server>>;

/// Runs the server until Ctrl-C.
pub fn run(args: ServeArgs) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> Result<()> {
    let mut config = ServerConfig::default();
    if args.no_software {
        config.software = None;
    }
    let server: SharedServer = Arc::new(Mutex::new(Server::new(config)));
    let mut tasks = tokio::task::JoinSet::new();
    for addr in &args.listen {
        let socket = udp::bind(*addr).await?;
        let bound = socket.local_addr()?;
        println!("edgeice: listening on udp {bound}");
        tasks.spawn(udp::run(socket, server.clone()));
        if !args.no_tcp {
            // Same port as UDP, so `--listen host:0` gives one port for both.
            let listener = tcp::bind(bound).await?;
            println!("edgeice: listening on tcp {}", listener.local_addr()?);
            tasks.spawn(tcp::run(listener, server.clone()));
        }
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted, stopping");
            Ok(())
        }
        Some(result) = tasks.join_next() => {
            result.context("listener task panicked")?
        }
    }
}
