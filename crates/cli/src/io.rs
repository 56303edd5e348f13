//! What the commands read and write. Public, so another front end (an HTTP one) can read and
//! write lists exactly as the command line does without it: input formats (`rows`) and output
//! formats (`output`). The rest serves the command line only: opening the list a command was
//! given (`list`), the progress display and summary (`progress`), lines for the operator
//! (`console`). Knows nothing of commands or of the engine's wiring.

pub(crate) mod console;
pub(crate) mod flags;
pub(crate) mod list;
pub mod output;
pub(crate) mod progress;
pub mod rows;
