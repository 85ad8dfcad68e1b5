//! Progress lines for long work over many credentials (drill, rekey, hsm enroll): one line on
//! standard error, rewritten in place, shown only when standard error is a terminal (never in
//! a pipe, a log or a script's capture, and never with `TERM=dumb`). The end-to-end test runs
//! the binary on a pseudo-terminal to see them.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use vault_core::progress::Watcher;

/// How often the line is rewritten at most (the last step is always shown).
const EVERY: Duration = Duration::from_millis(100);

/// The progress line of one command.
struct Line {
    command: &'static str,
    last: Cell<Option<Instant>>,
    width: Cell<usize>,
}

impl Watcher for Line {
    fn step(&self, task: &str, done: usize, total: usize) {
        let now = Instant::now();
        let finished = done >= total;
        if !finished && self.last.get().is_some_and(|t| now - t < EVERY) {
            return;
        }
        self.last.set(Some(now));
        let text = format!("{}: {task}: {done} of {total}", self.command);
        let pad = self.width.get().saturating_sub(text.len());
        self.width.set(if finished { 0 } else { text.len() });
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{text}{}", " ".repeat(pad));
        if finished {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

/// Whether progress lines are shown.
fn shown() -> bool {
    std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// Runs `work`, showing the progress of its loops as `command: task: n of total` when shown.
pub fn run<T>(command: &'static str, work: impl FnOnce() -> T) -> T {
    if !shown() {
        return work();
    }
    let line = Rc::new(Line {
        command,
        last: Cell::new(None),
        width: Cell::new(0),
    });
    vault_core::progress::watch(line, work)
}
