//! The plumbing shared by the commands that run the engine: the distributed process's broker
//! and store (`distributed`), the embedded engine against a simulated fleet (`simulated`).

pub mod distributed;
pub mod simulated;
