//! `clockd replicate`: a follower journal of a leader broker's topics, with real processes.
//! The leader and the follower are killed (SIGKILL) at random moments and restarted; in the
//! end the follower's journal holds exactly the leader's messages of the followed topics,
//! with the leader's stamps, in order.

mod server;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use server::Broker;

const CLOCKD: &str = env!("CARGO_BIN_EXE_clockd");

/// A journal's messages for one name: (stamp, `topic message`).
type Records = Vec<(usize, String)>;

/// A running follower, killed (SIGKILL) when dropped.
struct Follower(Child);

impl Follower {
    fn start(leader: &str, dir: &Path, extra: &[&str]) -> Follower {
        let mut child = Command::new(CLOCKD)
            .args(["replicate", "--from", leader, "--to"])
            .arg(dir)
            .args(["--topic", "a", "--topic", "b"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("clockd replicate starts");
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("a first line");
        assert!(line.starts_with("clockd: following"), "{line:?}");
        Follower(child)
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A journal's messages for receiver name `name`: (stamp, `topic message`).
fn records(dir: &Path, name: &str) -> Vec<(usize, String)> {
    let output = Command::new(CLOCKD)
        .args(["journal", "cat"])
        .arg(dir)
        .args(["--json", "--receiver", name])
        .output()
        .expect("clockd journal cat runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let stamp = record["stamp"].as_u64().unwrap() as usize;
            let bytes = match (record["hex"].as_str(), record["text"].as_str()) {
                (Some(hex), _) => (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect(),
                (None, Some(text)) => text.as_bytes().to_vec(),
                (None, None) => panic!("a payload: {line}"),
            };
            let (body, _at_ms): (String, u64) = postcard::from_bytes(&bytes).unwrap();
            (stamp, body)
        })
        .collect()
}

/// Publishes to a, b and c, one after the other, until told to stop, reconnecting to a leader
/// that is down; returns how many publishes the leader confirmed (a PONG after them).
fn publish_until(addr: String, stop: Arc<AtomicBool>) -> u64 {
    let mut confirmed = 0;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut socket) = TcpStream::connect(&addr) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reader = BufReader::new(socket.try_clone().unwrap());
        while !stop.load(Ordering::Relaxed) {
            let mut batch = String::new();
            for _ in 0..20 {
                let topic = ["a", "b", "c"][(n % 3) as usize];
                batch.push_str(&format!("PUB {topic} m{n}\n"));
                n += 1;
            }
            batch.push_str("PING\n");
            let mut line = String::new();
            let ok = socket.write_all(batch.as_bytes()).is_ok()
                && reader.read_line(&mut line).is_ok_and(|read| read > 0)
                && line == "PONG\n";
            if !ok {
                break;
            }
            confirmed += 20;
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    confirmed
}

/// Where two record lists first differ, briefly.
fn difference(leader: &[(usize, String)], follower: &[(usize, String)]) -> String {
    let at = leader.iter().zip(follower).position(|(l, f)| l != f);
    let at = at.unwrap_or(leader.len().min(follower.len()));
    let around = |records: &[(usize, String)]| {
        let from = at.saturating_sub(2).min(records.len());
        format!("{:?}", &records[from..(at + 3).min(records.len())])
    };
    format!(
        "leader {} records, follower {}; first difference at {at}: leader {} follower {}",
        leader.len(),
        follower.len(),
        around(leader),
        around(follower)
    )
}

/// A small xorshift: the moments of the kills, from a seed printed for a rerun.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Polls until the follower's records of `a` and `b` equal the leader's (or 30 s pass).
fn caught_up(leader: &Path, follower: &Path) -> Vec<(String, Records, Records)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let compared: Vec<_> = ["topic/a", "topic/b"]
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    records(leader, name),
                    records(follower, name),
                )
            })
            .collect();
        if compared.iter().all(|(_, l, f)| l == f) || Instant::now() > deadline {
            return compared;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_follower_ends_equal_to_the_leader_whatever_is_killed_when() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("replicate chaos seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let leader_dir = dir.path().join("leader");
    let follower_dir = dir.path().join("follower");
    let leader_data = leader_dir.to_str().unwrap();
    let mut leader = Broker::start(&["--data", leader_data]);
    let listen = leader.addr.to_string();
    let mut follower = Some(Follower::start(&listen, &follower_dir, &[]));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (addr, stop) = (listen.clone(), stop.clone());
        std::thread::spawn(move || publish_until(addr, stop))
    };
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(100 + rng.below(300)));
        let victim = rng.below(3);
        if victim != 1 {
            follower = None; // SIGKILL
        }
        if victim != 0 {
            drop(leader); // SIGKILL
            leader = Broker::start_on(&listen, &["--data", leader_data]);
        }
        if victim != 1 {
            std::thread::sleep(Duration::from_millis(rng.below(100)));
            follower = Some(Follower::start(&listen, &follower_dir, &[]));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let confirmed = publisher.join().unwrap();
    assert!(confirmed >= 60, "the publisher got through: {confirmed}");

    let compared = caught_up(&leader_dir.join("journal"), &follower_dir);
    for (name, on_leader, on_follower) in &compared {
        assert!(!on_leader.is_empty(), "{name} has messages");
        assert!(
            on_follower == on_leader,
            "{name}: the follower holds the leader's messages (seed {seed}): {}",
            difference(on_leader, on_follower)
        );
        assert!(
            on_leader.windows(2).all(|w| w[0].0 < w[1].0),
            "{name} in stamp order"
        );
    }
    let c = Command::new(CLOCKD)
        .args(["journal", "cat"])
        .arg(&follower_dir)
        .args(["--receiver", "topic/c"])
        .output()
        .unwrap();
    let refused = String::from_utf8_lossy(&c.stderr);
    assert!(
        refused.contains("no receiver named"),
        "c is not followed: {refused}"
    );
    // The follower's status tells its lag behind the leader.
    std::thread::sleep(Duration::from_millis(1200));
    let status = Command::new(CLOCKD)
        .args(["journal", "status"])
        .arg(&follower_dir)
        .output()
        .unwrap();
    let status = String::from_utf8(status.stdout).unwrap();
    assert!(
        status.contains("follower (clockd replicate): leader at stamp"),
        "{status}"
    );
    drop(follower);
    drop(leader);
}

#[test]
fn shares_split_the_stream_between_followers() {
    let dir = tempfile::tempdir().unwrap();
    let leader_dir = dir.path().join("leader");
    let leader = Broker::start(&["--data", leader_dir.to_str().unwrap()]);
    let listen = leader.addr.to_string();
    let mut publisher = leader.connect();
    for i in 0..60 {
        publisher.send(&format!("PUB {} s{i}", ["a", "b"][i % 2]));
    }
    publisher.sync();
    let shares: Vec<_> = (0..2)
        .map(|i| {
            let dir = dir.path().join(format!("share{i}"));
            let follower = Follower::start(&listen, &dir, &["--share", &format!("{i}/2")]);
            (dir, follower)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let whole: Vec<(usize, String)> = {
        let journal = leader_dir.join("journal");
        let mut all = records(&journal, "topic/a");
        all.extend(records(&journal, "topic/b"));
        all.sort();
        all
    };
    assert_eq!(whole.len(), 60);
    loop {
        let mut split: Vec<Vec<(usize, String)>> = shares
            .iter()
            .map(|(dir, _)| {
                let mut got = records(dir, "topic/a");
                got.extend(records(dir, "topic/b"));
                got.sort();
                got
            })
            .collect();
        if split.iter().map(Vec::len).sum::<usize>() == 60 || Instant::now() > deadline {
            for (i, share) in split.iter().enumerate() {
                assert!(share.iter().all(|(stamp, _)| stamp % 2 == i), "share {i}/2");
            }
            let mut union = split.remove(0);
            union.extend(split.remove(0));
            union.sort();
            assert_eq!(union, whole, "each message kept by exactly one follower");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
