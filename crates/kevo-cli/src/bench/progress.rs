//! A live operation count on stderr while a workload runs (a terminal only; never with
//! `--json`), so a long run shows it is moving and how fast.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::report::progress_ops;

/// The display of one workload; `finish` clears it.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Starts the display for workload `name`, if `show`.
    pub fn start(name: &str, show: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = show.then(|| {
            let stop = stop.clone();
            let bar = indicatif::ProgressBar::new_spinner().with_message(name.to_string());
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg}: {human_pos} ops, {per_sec}, {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            let base = progress_ops();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    bar.set_position(progress_ops().saturating_sub(base));
                    bar.tick();
                    std::thread::sleep(Duration::from_millis(100));
                }
                bar.finish_and_clear();
            })
        });
        Progress { stop, thread }
    }

    /// Clears the display.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
