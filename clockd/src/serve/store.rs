//! What a broker started with `--data DIR` keeps besides its journal: each topic's options.
//!
//! ```text
//! DIR/journal/   the dispatcher's journal: every message, each topic's history
//!                (`topic/NAME`), durable subscriptions' positions (`sub/NAME/TOPIC`)
//! DIR/topics     one line per topic created with options: `NAME TTL COMPACT` (seconds,
//!                0 for none), appended and synced by `CREATE`
//! ```
//!
//! A topic's options are written once (a later `CREATE` with other options is refused), so
//! the file has at most one line per topic. A crash can tear only the last line, whose
//! `CREATE` was never answered (`PING` after it is the barrier): a line that does not parse
//! is skipped when the file is read.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::command::TopicOptions;

/// The topics file, open for appending.
pub struct TopicStore {
    path: PathBuf,
    file: Mutex<File>,
}

impl TopicStore {
    /// Opens (or creates) `dir/topics` and reads the options it holds.
    pub fn open(dir: &Path) -> io::Result<(Self, HashMap<String, TopicOptions>)> {
        let path = dir.join("topics");
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let options = text.lines().filter_map(parse_line).collect();
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        if !text.is_empty() && !text.ends_with('\n') {
            // A line torn by a crash: end it, so that the next one is not glued to it.
            file.write_all(b"\n")?;
            file.sync_data()?;
        }
        if text.is_empty() {
            // A new file: its directory entry must survive a crash too.
            File::open(dir)?.sync_all()?;
        }
        let store = TopicStore {
            path,
            file: Mutex::new(file),
        };
        Ok((store, options))
    }

    /// Appends `topic`'s options and syncs them.
    pub fn record(&self, topic: &str, options: TopicOptions) -> io::Result<()> {
        let line = format!(
            "{topic} {} {}\n",
            options.ttl.unwrap_or(0),
            options.compact.unwrap_or(0)
        );
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(line.as_bytes())?;
        file.sync_data()
    }

    /// The file's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `NAME TTL COMPACT`, or `None` for a line a crash tore.
fn parse_line(line: &str) -> Option<(String, TopicOptions)> {
    let mut words = line.split(' ');
    let (name, ttl, compact) = (words.next()?, words.next()?, words.next()?);
    if name.is_empty() || words.next().is_some() {
        return None;
    }
    let seconds = |word: &str| word.parse::<u64>().ok().map(|s| Some(s).filter(|&s| s > 0));
    Some((
        name.to_owned(),
        TopicOptions {
            ttl: seconds(ttl)?,
            compact: seconds(compact)?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_survive_reopening_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, options) = TopicStore::open(dir.path()).unwrap();
            assert!(options.is_empty());
            let retained = TopicOptions {
                ttl: Some(60),
                compact: None,
            };
            store.record("a", retained).unwrap();
            store
                .record(
                    "b",
                    TopicOptions {
                        ttl: None,
                        compact: Some(5),
                    },
                )
                .unwrap();
        }
        // A crash tore a third line.
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join("topics"))
            .unwrap();
        file.write_all(b"c 1").unwrap();
        drop(file);
        let (store, options) = TopicStore::open(dir.path()).unwrap();
        assert_eq!(options.len(), 2);
        assert_eq!(options["a"].ttl, Some(60));
        assert_eq!(options["b"].compact, Some(5));
        // The line after the torn one stands on its own.
        store.record("d", TopicOptions::default()).unwrap();
        drop(store);
        let (_store, options) = TopicStore::open(dir.path()).unwrap();
        assert_eq!(options.len(), 3);
        assert_eq!(options["d"], TopicOptions::default());
    }
}
