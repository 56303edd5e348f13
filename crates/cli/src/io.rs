//! What the commands read and write: input formats (`rows`), output formats (`output`), the
//! progress display and summary (`progress`), and lines for the operator (`console`). Knows
//! nothing of commands or of the engine's wiring.

pub mod console;
pub mod output;
pub mod progress;
pub mod rows;
