//! The processes of one test: its scratch directory (logs, lists, results), and the
//! `rollcall` children it starts, each logging to a file there, killed and reaped when the test
//! ends, with the end of every log printed when the test fails.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::{rollcall_bin, wait_for};

/// A directory for one test's files; kept (and named) when the test fails, removed otherwise.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(test: &str, tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("rollcall-{test}-{tag}"));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept the failed test's files in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One child process and the file its stdout and stderr go to.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

/// The processes a test started. Dropping it kills (SIGKILL) and reaps every one still
/// running; when the test is failing it also prints the end of each process's log.
#[derive(Default)]
pub struct Procs {
    procs: Vec<Proc>,
}

impl Procs {
    /// Starts `rollcall ARGS` as `name`, its output in `DIR/NAME.log`. The environment's
    /// `ROLLCALL_*` settings are dropped so only the test's flags count; logs at info level.
    pub fn spawn(&mut self, scratch: &Scratch, name: &str, args: &[String]) -> u32 {
        assert!(
            self.procs.iter().all(|p| p.name != name),
            "process name {name} used twice"
        );
        let log = scratch.path(&format!("{name}.log"));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut command = Command::new(rollcall_bin());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ROLLCALL_") {
                command.env_remove(&key);
            }
        }
        let child = command
            .args(args)
            .env("ROLLCALL_LOG", "info")
            // `verify`'s result cache goes to the scratch folder, never the user's.
            .env("XDG_CACHE_HOME", scratch.path("cache"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let pid = child.id();
        self.procs.push(Proc {
            name: name.to_string(),
            child,
            log,
        });
        pid
    }

    fn find(&mut self, name: &str) -> &mut Proc {
        self.procs
            .iter_mut()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no process {name}"))
    }

    /// The process id of `name`.
    pub fn pid(&mut self, name: &str) -> u32 {
        self.find(name).child.id()
    }

    /// SIGKILL (`Child::kill`) and reap.
    pub fn kill(&mut self, name: &str) {
        let proc = self.find(name);
        let _ = proc.child.kill();
        let _ = proc.child.wait();
    }

    /// Sends SIGINT (Ctrl-C) through kill(1) and waits up to `timeout` for the exit.
    pub fn interrupt(&mut self, name: &str, timeout: Duration) -> ExitStatus {
        self.signal(name, "-INT", timeout)
    }

    /// Sends SIGTERM (what an orchestrator sends to stop a process) through kill(1) and waits
    /// up to `timeout` for the exit.
    pub fn terminate(&mut self, name: &str, timeout: Duration) -> ExitStatus {
        self.signal(name, "-TERM", timeout)
    }

    fn signal(&mut self, name: &str, signal: &str, timeout: Duration) -> ExitStatus {
        let pid = self.pid(name).to_string();
        let sent = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill(1) runs");
        assert!(sent.success(), "kill {signal} {pid} ({name}) failed");
        self.wait(name, timeout)
    }

    /// `name`'s exit status if it has ended.
    pub fn try_wait(&mut self, name: &str) -> Option<ExitStatus> {
        self.find(name).child.try_wait().ok().flatten()
    }

    /// The exit status once `name` has ended; panics after `timeout` (the guard kills it).
    pub fn wait(&mut self, name: &str, timeout: Duration) -> ExitStatus {
        let what = format!("{name} to exit");
        let proc = self.find(name);
        wait_for(&what, timeout, || proc.child.try_wait().ok().flatten())
    }

    /// `name`'s output so far.
    pub fn log(&mut self, name: &str) -> String {
        let path = self.find(name).log.clone();
        std::fs::read_to_string(path).unwrap_or_default()
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for proc in &mut self.procs {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
        if std::thread::panicking() {
            for proc in &self.procs {
                let text = std::fs::read_to_string(&proc.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                eprintln!(
                    "----- last lines of {} ({}) -----\n{tail}",
                    proc.name,
                    proc.log.display()
                );
            }
        }
    }
}
