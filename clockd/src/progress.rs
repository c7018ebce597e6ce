//! A progress bar over a journal's segments, on stderr, and only when stderr is a terminal
//! (never in a pipe, a log file or a test). It appears once a run turns out to span
//! [`MIN_SEGMENTS`] segments or more: a small journal is read before a bar would be seen.

use std::io::IsTerminal;

use clocked_dispatch::journal::inspect::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// The fewest segments worth a bar.
pub const MIN_SEGMENTS: u64 = 4;

/// A bar that may never be shown.
pub struct Bar {
    bar: Option<ProgressBar>,
    allowed: bool,
    segments_done: u64,
}

impl Bar {
    /// A bar on stderr if `allowed` and stderr is a terminal.
    pub fn new(allowed: bool) -> Self {
        Bar {
            bar: None,
            allowed: allowed && std::io::stderr().is_terminal(),
            segments_done: 0,
        }
    }

    /// Shows `progress` (creating the bar on the first call that warrants one).
    pub fn update(&mut self, progress: Progress) {
        if !self.allowed || progress.segments_done == self.segments_done {
            return;
        }
        self.segments_done = progress.segments_done;
        if self.bar.is_none() && progress.segments_total >= MIN_SEGMENTS {
            let bar = ProgressBar::new(progress.bytes_total.max(1));
            let style = ProgressStyle::with_template(
                "{spinner} [{bar:30}] {bytes}/{total_bytes} {msg} ({eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            // The newest segment may have grown since it was listed.
            bar.set_length(progress.bytes_total.max(progress.bytes_done).max(1));
            bar.set_position(progress.bytes_done);
            bar.set_message(format!(
                "segment {}/{}",
                progress.segments_done, progress.segments_total
            ));
        }
    }

    /// Removes the bar (before the result is printed).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
