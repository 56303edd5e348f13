//! The plumbing shared by the commands that run the engine: settings from flags and file
//! (`settings`), the result cache's flags and file (`cache`), the signals that stop a command (`signals`), the embedded engine's run loop
//! (`embedded`) and its reorder buffer (`reorder`), the distributed process's broker and store
//! (`distributed`), the embedded engine against a simulated fleet (`simulated`).

pub mod cache;
pub mod distributed;
pub mod embedded;
pub mod reorder;
pub mod settings;
pub mod signals;
pub mod simulated;
