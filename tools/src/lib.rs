//! The tools around hcc-gateway that are not the service: the demo (`hcc-demo`, the newcomer's
//! first command) and the bench (`hcc-bench`). Both run the gateway beside the mocks, with the
//! mocks' development secrets, which is why they live here: the service crate depends on no
//! mock, whatever its features.
//!
//! # Layout
//!
//! - [`demo`]: a province's centre syncing dossiers through a portal outage while citizens pay
//!   fees by every route; `src/bin/hcc-demo.rs` is its command line;
//! - [`hand_down`]: the demo's dossier pushed down by the portal and its status sent back up;
//! - `src/bin/hcc-bench.rs`: the performance figures beside raw baselines (not a test).

pub mod demo;
pub mod hand_down;
