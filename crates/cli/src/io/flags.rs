//! The list, results and progress flags (`--output`, `--format`, `--input-format`, `--column`,
//! `--progress`), declared once and flattened into the commands that read a list or write
//! results (`verify`, `submit`, `watch`). A command whose wording or rule differs says so with
//! `mut_arg` on its own `Args` (as `submit` does for `--output`), so each `--help` reads as
//! the command needs. Owns the flags only; what they do is `list`, `output` and `progress`.

use std::path::PathBuf;

use clap::Arg;

use crate::io::output::OutputFormat;
use crate::io::progress::ProgressMode;
use crate::io::rows::InputFormat;

/// Where results go and in which format.
#[derive(Debug, clap::Args)]
pub struct OutputFlags {
    /// Where to write results; - or absent: standard output.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,

    /// Output format. Default: jsonl for a .jsonl/.ndjson OUT, else csv.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<OutputFormat>,
}

/// How the list is read: its format and the field holding the address.
#[derive(Debug, clap::Args)]
pub struct InputFlags {
    /// Input format, when the extension does not tell (.csv, .jsonl/.ndjson, else text).
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<InputFormat>,

    /// The CSV column or JSONL field holding the address.
    #[arg(long, value_name = "NAME")]
    pub column: Option<String>,
}

/// How progress is shown on stderr.
#[derive(Debug, clap::Args)]
pub struct ProgressFlags {
    /// Progress on stderr: auto, bar, log or off.
    #[arg(
        long,
        value_name = "MODE",
        default_value = "auto",
        env = "ROLLCALL_PROGRESS"
    )]
    pub progress: ProgressMode,
}

/// Changes the flag `id` in place, for `#[command(mut_args(flag("column", |a| a.help(..))))]`:
/// the flag keeps its position, so `--help` and the shell completions list it where they did
/// (`Command::mut_arg` would move it last).
pub fn flag(id: &'static str, change: impl Fn(Arg) -> Arg) -> impl FnMut(Arg) -> Arg {
    move |arg| if arg.get_id() == id { change(arg) } else { arg }
}
