//! From flags to a ready engine: `load_settings` reads the config file the flags name and
//! merges it with them (a bad one is one line and exit 64), `verifier` builds the engine's
//! ports (resolver, connector, metrics) from the result. Used by every command that runs the
//! engine; the merge rules themselves are `config`'s.

use std::process::ExitCode;
use std::sync::Arc;

use rollcall_dns::MxResolver;
use rollcall_engine::WorkerMetrics;
use rollcall_engine::config::EngineConfig;
use rollcall_engine::coordinator::CacheSetup;
use rollcall_engine::probe::Connector;

use crate::config::{self, Config, EngineFlags};
use crate::exit::EX_USAGE;
use crate::io::console;

/// What a run needs besides its rows: the engine's settings and its ports to the world.
pub struct Verifier {
    pub engine: Arc<EngineConfig>,
    pub resolver: MxResolver,
    pub connector: Arc<dyn Connector>,
    pub metrics: Arc<WorkerMetrics>,
    /// The result cache (`verify` without `--no-cache`); `None` for `demo` and `bench`, so
    /// their figures stay comparable from run to run.
    pub cache: Option<CacheSetup>,
}

/// Why the engine's ports could not be built from valid-looking settings.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("DNS: {0} (fix: --dns ADDR[:PORT] or [dns] servers)")]
    Dns(#[from] rollcall_dns::Error),
    #[error("SMTP identity: {0} (fix: --helo / --mail-from, or [identity])")]
    Smtp(String),
}

/// Builds the resolver and the connector for `settings`.
pub fn verifier(settings: config::Settings) -> Result<Verifier, SetupError> {
    let resolver = MxResolver::new(settings.resolver)?;
    let connector = rollcall_engine::connector(&settings.engine).map_err(SetupError::Smtp)?;
    Ok(Verifier {
        engine: Arc::new(settings.engine),
        resolver,
        connector,
        metrics: Arc::new(WorkerMetrics::default()),
        cache: None,
    })
}

/// Loads the config file named by the flags (if any) and merges it with the flags. Prints the
/// one-line error and gives the exit code on failure.
pub fn load_settings(flags: &EngineFlags) -> Result<config::Settings, ExitCode> {
    let file = Config::load(flags.config.as_deref(), flags.lab);
    let settings = file
        .and_then(|file| config::build_engine_config(&file, flags, &config::default_helo_name()));
    match settings {
        Ok(settings) => Ok(settings),
        Err(e) => {
            console::err_line(format_args!("rollcall: {e}"));
            Err(ExitCode::from(EX_USAGE))
        }
    }
}
