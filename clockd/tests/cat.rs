//! `clockd journal cat`: text lines and JSON lines that parse back, and the filters.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

fn cat(dir: &std::path::Path, extra: &[&str]) -> String {
    let mut args = vec!["journal".into(), "cat".into(), dir.as_os_str().to_owned()];
    args.extend(extra.iter().map(Into::into));
    let out = clockd(args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    stdout(&out)
}

/// A text line split into stamp, receiver, size, payload.
fn fields(line: &str) -> (usize, String, usize, String) {
    let f: Vec<&str> = line.split('\t').collect();
    assert_eq!(f.len(), 4, "{line:?}");
    (
        f[0].parse().unwrap(),
        f[1].to_string(),
        f[2].parse().unwrap(),
        f[3].to_string(),
    )
}

#[test]
fn every_message_is_a_line_of_stamp_receiver_size_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let known = known_journal(dir.path(), 1);
    let text = cat(dir.path(), &[]);
    let lines: Vec<_> = text.lines().map(fields).collect();
    let mut expected = Vec::new();
    for i in 0..5 {
        expected.push((i + 1, "orders".to_string(), 8, format!("\"order {i}\"")));
    }
    for i in 0..3 {
        expected.push((i + 6, "audit".to_string(), 8, format!("\"audit {i}\"")));
    }
    expected.push((9, "*".to_string(), 7, "\"tick 0\"".to_string()));
    expected.push((10, "*".to_string(), 7, "\"tick 1\"".to_string()));
    assert_eq!(lines, expected);

    // Filters: a receiver's own messages and the broadcasts it was open for, from a stamp on.
    let orders: Vec<usize> = cat(dir.path(), &["--receiver", "orders"])
        .lines()
        .map(|l| fields(l).0)
        .collect();
    assert_eq!(orders, [1, 2, 3, 4, 5, 9, 10]);
    let from: Vec<usize> = cat(dir.path(), &["--receiver", "audit", "--from", "8"])
        .lines()
        .map(|l| fields(l).0)
        .collect();
    assert_eq!(from, [8, 9, 10]);
    known.stop();
}

#[test]
fn json_lines_parse_back_with_the_same_contents() {
    let dir = tempfile::tempdir().unwrap();
    let known = known_journal(dir.path(), 64 << 20);
    let text = cat(dir.path(), &["--json"]);
    let values: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(values.len(), 10);
    assert_eq!(values[0]["kind"], "data");
    assert_eq!(values[0]["stamp"], 1);
    assert_eq!(values[0]["receiver"], "orders");
    assert_eq!(values[0]["size"], 8);
    assert_eq!(values[0]["text"], "order 0");
    assert_eq!(values[7]["text"], "audit 2");
    assert_eq!(values[8]["kind"], "broadcast");
    assert_eq!(values[8]["receiver"], Value::Null);
    assert_eq!(values[9]["text"], "tick 1");
    // The offsets are where the records are.
    let segment = values[0]["segment"].as_str().unwrap();
    let bytes = std::fs::read(segment).unwrap();
    let offset = values[0]["offset"].as_u64().unwrap() as usize;
    assert_eq!(&bytes[offset + 8 + 13..offset + 8 + 13 + 8], b"\x07order 0");

    // With the other records: the name, open and commit records are there too.
    let all: Vec<Value> = cat(dir.path(), &["--json", "--all", "--receiver", "orders"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = all.iter().map(|v| v["kind"].as_str().unwrap()).collect();
    assert!(kinds.starts_with(&["name", "open"]), "{kinds:?}");
    let commit = all.iter().find(|v| v["kind"] == "commit").unwrap();
    assert_eq!(
        (commit["receiver"].clone(), commit["stamp"].clone()),
        ("orders".into(), 4.into())
    );
    let text_all = cat(dir.path(), &["--all"]);
    assert!(
        text_all.lines().any(|l| l == "# commit orders 4"),
        "{text_all}"
    );
    assert!(
        text_all.lines().any(|l| l == "# tick 0"),
        "the first checkpoint"
    );
    known.stop();
}

#[test]
fn payloads_that_are_not_strings_are_hex() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = open::<u64>(dir.path(), 64 << 20);
        let (tx, rx) = d.new("tx", "numbers");
        tx.send_all([1000, 5]).unwrap();
        assert_eq!(next(&rx), (1000, 1));
        assert_eq!(next(&rx), (5, 2));
        drop((tx, rx));
        d.join();
    }
    let lines: Vec<_> = cat(dir.path(), &[]).lines().map(fields).collect();
    // postcard varints: 1000 is e8 07, 5 is 05 (which, as a length, promises 5 more bytes).
    assert_eq!(
        lines,
        [
            (1, "numbers".to_string(), 2, "0xe807".to_string()),
            (2, "numbers".to_string(), 1, "0x05".to_string()),
        ]
    );
    let json: Value =
        serde_json::from_str(cat(dir.path(), &["--json"]).lines().next().unwrap()).unwrap();
    assert_eq!(json["hex"], "e807");
    assert_eq!(json.get("text"), None);
}

#[test]
fn a_reader_that_stops_early_ends_cat_quietly() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = open::<String>(dir.path(), 64 << 20);
        let (tx, rx) = d.new("tx", "rx");
        let reader = std::thread::spawn(move || while rx.recv().is_ok() {});
        tx.send_all((0..20_000).map(|i| format!("line {i:>40}")))
            .unwrap();
        drop(tx);
        reader.join().unwrap();
        d.join();
    }
    // Like `clockd journal cat DIR | head -1`: far more output than a pipe holds.
    let mut child = Command::new(env!("CARGO_BIN_EXE_clockd"))
        .args(["journal".as_ref(), "cat".as_ref(), dir.path().as_os_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("1\trx\t"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

#[test]
fn an_unknown_receiver_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let known = known_journal(dir.path(), 64 << 20);
    let out = clockd([
        "journal".as_ref(),
        "cat".as_ref(),
        dir.path().as_os_str(),
        "--receiver".as_ref(),
        "nobody".as_ref(),
    ]);
    let err = failed(&out);
    assert!(err.contains("no receiver named \"nobody\""), "{err}");
    let bad_stamp = clockd([
        "journal".as_ref(),
        "cat".as_ref(),
        dir.path().as_os_str(),
        "--from".as_ref(),
        "yesterday".as_ref(),
    ]);
    assert_eq!(code(&bad_stamp), 2);
    assert!(!stderr(&bad_stamp).contains("panicked"));
    known.stop();
}

#[test]
fn a_multicast_is_one_line_naming_its_receivers() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = open::<String>(dir.path(), 1 << 20);
        let (tx_a, rx_a) = d.new("tx_a", "a");
        let (tx_b, rx_b) = d.new("tx_b", "b");
        let (tx_c, rx_c) = d.new("tx_c", "c");
        let group = d.multicaster("g").unwrap();
        group.add(&tx_a).unwrap();
        group.add(&tx_b).unwrap();
        group.multicast("to a and b".to_string()).unwrap();
        tx_c.send("to c".to_string()).unwrap();
        assert_eq!(next(&rx_a).1, 1);
        assert_eq!(next(&rx_c).1, 2);
        drop((group, tx_a, tx_b, tx_c, rx_a, rx_b, rx_c));
        d.join();
    }
    let text = cat(dir.path(), &[]);
    let lines: Vec<_> = text.lines().map(fields).collect();
    assert_eq!(
        lines,
        [
            (1, "a,b".to_string(), 11, "\"to a and b\"".to_string()),
            (2, "c".to_string(), 5, "\"to c\"".to_string()),
        ]
    );
    // A receiver's filter finds the multicasts it is in; JSON lists them all.
    let b: Vec<usize> = cat(dir.path(), &["--receiver", "b"])
        .lines()
        .map(|l| fields(l).0)
        .collect();
    assert_eq!(b, [1]);
    let json = cat(dir.path(), &["--json"]);
    let first: Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["kind"], "multicast");
    assert_eq!(first["receivers"], serde_json::json!(["a", "b"]));
}
