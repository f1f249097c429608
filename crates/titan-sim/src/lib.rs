//! `titan-sim`: a faithful local fake of the Titan Task Service (titan-api.md §1-§3, §5),
//! served with axum on a loopback address, for the demo, end-to-end tests and benchmarks.
//!
//! Invariant: everything served is a pure function of the [`Scenario`] and the time since
//! [`start`] (plus pause/resume/stop calls); exports are streamed, never materialised.

pub mod data;
mod dirty;
pub mod export;
pub mod faults;
pub mod format;
mod gate;
mod media;
mod ordered;
mod routes;
pub mod scenario;
mod state;
mod timeline;

pub use faults::{FaultConfig, FaultCounts, FaultKind, RouteKind};
pub use format::ExportFormat;
pub use scenario::{
    AuthHeader, ListShape, PriceFormat, Scenario, ScenarioError, SimExecution, SimTask,
};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use state::SimState;

/// How long [`RunningSim::shutdown`] lets in-flight responses finish before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// One request as the simulator saw it, so tests can assert what a client sent.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub authorization: Option<String>,
    pub x_api_key: Option<String>,
    pub status: u16,
    /// The fault injected into this response, if any (see [`faults`]).
    pub fault: Option<FaultKind>,
}

/// A simulator serving in the background; dropping it also stops the server.
pub struct RunningSim {
    addr: SocketAddr,
    state: Arc<SimState>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

/// Starts the simulator on `addr` (must be a loopback address; else error) and returns once listening.
/// The scenario is validated first (an invalid one is an `InvalidInput` error); port 0 picks a free port.
pub async fn start(scenario: Scenario, addr: SocketAddr) -> std::io::Result<RunningSim> {
    use std::io::{Error, ErrorKind};
    if !addr.ip().is_loopback() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("refusing to listen on {addr}: the simulator only binds loopback addresses"),
        ));
    }
    let scenario = scenario
        .validated()
        .map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(SimState::new(scenario, format!("http://{addr}")));
    let app = routes::router(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            // Either an explicit shutdown or the RunningSim being dropped.
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "Simulator server failed");
        }
    });
    tracing::info!(%addr, tasks = state.scenario.tasks.len(), "Simulator listening");
    Ok(RunningSim {
        addr,
        state,
        stop,
        server,
    })
}

impl RunningSim {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the origin, without `/api/v1` (as `TITAN_API_URL` in the docs).
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// Every request served so far, in completion order of the response head.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.requests()
    }

    /// How many faults of each kind were injected so far.
    pub fn faults_injected(&self) -> FaultCounts {
        self.state.faults.counts()
    }

    /// Stops accepting connections, lets in-flight responses finish (up to 5 s), then returns.
    pub async fn shutdown(self) {
        let RunningSim {
            stop, mut server, ..
        } = self;
        let _ = stop.send(());
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
            .await
            .is_err()
        {
            tracing::warn!("Simulator shutdown timed out; aborting open connections");
            server.abort();
            let _ = server.await;
        }
    }
}

#[cfg(test)]
mod tests;
