//! `clockd journal status` against journals written by the library.

mod common;

use common::*;
use serde_json::Value;

/// The row of receiver `name` in the table: committed, backlog, consumed, backlog bytes,
/// oldest, newest (the bytes with their unit).
fn row(table: &str, name: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in\n{table}"));
    let t: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(t.len(), 8, "{line}");
    vec![
        t[1].to_string(),
        t[2].to_string(),
        t[3].to_string(),
        format!("{} {}", t[4], t[5]),
        t[6].to_string(),
        t[7].to_string(),
    ]
}

#[test]
fn the_table_shows_each_receivers_commit_and_backlog_while_the_dispatcher_runs() {
    for segment_size in [1, 64 << 20] {
        let dir = tempfile::tempdir().unwrap();
        let known = known_journal(dir.path(), segment_size);
        let out = clockd([
            "journal".as_ref(),
            "status".as_ref(),
            dir.path().as_os_str(),
        ]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let table = stdout(&out);
        let head = table.lines().nth(1).unwrap();
        let segments = segments(dir.path()).len();
        assert!(
            head.starts_with(&format!(
                "clock 10, oldest stamp 1, {segments} segment{}, ",
                if segments == 1 { "" } else { "s" }
            )),
            "{table}"
        );
        assert!(head.ends_with(", 10 messages, no damage"), "{table}");
        // Data records of "order n" are 8 + 13 + 8 bytes, broadcasts of "tick n" 8 + 9 + 7.
        assert_eq!(
            row(&table, "orders"),
            ["4", "3", "57.1%", "77 B", "1", "10"]
        );
        assert_eq!(row(&table, "audit"), ["0", "5", "0.0%", "135 B", "6", "10"]);
        let names: Vec<&str> = table
            .lines()
            .skip(3)
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(names, ["audit", "orders"], "sorted by name");
        known.stop();
    }
}

#[test]
fn json_has_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let known = known_journal(dir.path(), 1);
    known.stop();
    // An offline rewind of `orders` to stamp 2 (position 1) shows in the status.
    retry_in_use(|| clocked_dispatch::journal::rewind(dir.path(), "orders", 2)).unwrap();
    let out = clockd([
        "journal".as_ref(),
        "status".as_ref(),
        dir.path().as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "one JSON object: {text}");
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["clock"], 10);
    assert_eq!(status["oldest"], 1);
    assert_eq!(status["messages"], 10);
    assert_eq!(status["gaps"], 0);
    assert_eq!(status["segments"], segments(dir.path()).len());
    let on_disk: u64 = segments(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(status["bytes"], on_disk);
    let receivers = status["receivers"].as_array().unwrap();
    assert_eq!(receivers.len(), 2);
    let orders = &receivers[1];
    assert_eq!(orders["name"], "orders");
    assert_eq!(orders["committed"], 1);
    assert_eq!(orders["messages"], 7);
    assert_eq!(orders["consumed"], 1);
    assert_eq!(orders["backlog"], 6);
    assert_eq!(orders["expired"], 0, "no retention");
    assert_eq!(orders["backlog_bytes"], 4 * 29 + 2 * 24);
    let percent = orders["percent_consumed"].as_f64().unwrap();
    assert!((percent - 100.0 / 7.0).abs() < 1e-9, "{percent}");
    assert_eq!(
        (orders["oldest"].clone(), orders["newest"].clone()),
        (1.into(), 10.into())
    );
    assert_eq!(receivers[0]["name"], "audit");
    assert_eq!(receivers[0]["backlog"], 5);
}

#[test]
fn a_directory_that_is_not_a_journal_is_one_line_on_stderr_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = failed(&clockd([
        "journal".as_ref(),
        "status".as_ref(),
        missing.as_os_str(),
    ]));
    assert!(err.contains("no such file or directory"), "{err}");
    assert!(!missing.exists(), "status never creates the directory");
    let err = failed(&clockd([
        "journal".as_ref(),
        "status".as_ref(),
        dir.path().as_os_str(),
    ]));
    assert!(err.contains("not a journal"), "{err}");
    let usage = clockd(["journal", "status"]);
    assert_eq!(code(&usage), 2);
    assert!(stderr(&usage).contains("Usage"), "{}", stderr(&usage));
}
