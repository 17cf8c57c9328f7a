//! A child process whose stdout and stderr go to one log file, killed (and reaped) on drop.
//!
//! Readiness and results are read back from the log: [`Proc::wait_line`] polls it for a line
//! starting with a prefix (the Python helpers print `READY port=N`), failing early when the
//! process exits first. Errors name the process; its owner appends [`Proc::log_tail`].
//! Nothing here sleeps longer than 50 ms at a time.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How many log lines a failure message shows.
pub const LOG_TAIL_LINES: usize = 40;

/// A running child process with its log file.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` with stdin closed and stdout+stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc> {
        let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("{name}: cannot start {cmd:?}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            exited: None,
        })
    }

    /// The name given at spawn time (used in messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file's path.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far (lossy UTF-8).
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last [`LOG_TAIL_LINES`] lines of the log, headed by the process name and log path.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "----- {} (pid {}, log {}) -----\n{}\n",
            self.name,
            self.child.id(),
            self.log.display(),
            lines[start..].join("\n")
        )
    }

    /// The exit status if the process has ended (never blocks).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Waits for the process to end, failing after `timeout`. (Errors from `Proc` never carry
    /// the log: the owner adds the logs of every process involved, once.)
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("{} still running after {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until a log line starts with `prefix` and returns that line. Fails with the log tail
    /// when the process exits first or `timeout` passes.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.starts_with(prefix)) {
                return Ok(line.to_owned());
            }
            if let Some(status) = self.try_exit() {
                bail!("{} exited ({status}) before printing {prefix:?}", self.name);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} printed no {prefix:?} line within {timeout:?}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the `READY port=N` line the Python helpers print and returns N.
    pub fn wait_ready_port(&mut self, timeout: Duration) -> Result<u16> {
        let line = self.wait_line("READY port=", timeout)?;
        line.trim_start_matches("READY port=")
            .trim()
            .parse()
            .with_context(|| format!("{}: bad READY line {line:?}", self.name))
    }

    /// Kills the process (SIGKILL) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
