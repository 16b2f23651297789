//! Stand-ins for the outside world, for tests, the demo and the bench. Each mock is written
//! from the protocol notes in `shared/domain/`, never from the gateway's adapters, so an
//! adapter's mistake is caught instead of mirrored. Every mock keeps its state in memory, has
//! a `/_mock/...` control and inspection API, and prints `listening on http://ADDR` when ready.

pub mod bank;
pub mod centre;
pub mod dvclt;
pub mod dvcqg;
pub mod emc;
pub mod faults;
pub mod paygov;
pub mod tsa;
pub mod vietqr;
pub mod vnpay;

/// The portal's push side lives in `dvcqg/push.rs`; this keeps its old path working.
pub use dvcqg::push as dvcqg_push;

use std::net::{SocketAddr, TcpListener};

/// A running mock: its address, and a handle to stop it (for outage tests).
pub struct Running {
    pub addr: SocketAddr,
    pub handle: actix_web::dev::ServerHandle,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// Binds `bind` (port 0 for any free port) and spawns the server on the current runtime.
pub fn spawn_server<F>(bind: &str, configure: F) -> std::io::Result<Running>
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Send + Clone + 'static,
{
    let listener = TcpListener::bind(bind)?;
    let addr = listener.local_addr()?;
    let server = actix_web::HttpServer::new(move || actix_web::App::new().configure(configure.clone()))
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(Running { addr, handle })
}
