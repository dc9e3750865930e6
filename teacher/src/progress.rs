//! Progress bars for long work: plain (colourless) templates on stderr, hidden with `--quiet`
//! or when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` units with a live message (loss, img/s …) and an ETA.
pub fn bar(len: u64, quiet: bool, prefix: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(
        Some(len),
        if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg} (ETA {eta})",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    pb.set_prefix(prefix.to_string());
    pb
}
