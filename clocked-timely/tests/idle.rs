//! An idle computation costs no CPU: the source and the sink wait for the dispatcher's
//! wake-up (through timely's `SyncActivator`) instead of polling, and the workers park in
//! `step_or_park`. The only test in this file, so the process's CPU time is its own.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clocked_timely::{per_worker, Sink, WorkerSlots, Workers};
use timely::dataflow::operators::Inspect;

/// User plus system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: `getrusage` only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Waits up to 10 s until `count` messages went through timely; whether they did.
fn wait_for(seen: &AtomicU64, count: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.load(Ordering::SeqCst) < count {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
    true
}

#[test]
fn an_idle_source_and_sink_cost_no_cpu() {
    let input = clocked_dispatch::new::<u64>(64);
    let (senders, readers) = per_worker(&input, Workers::local(2), "idle").unwrap();
    let output = clocked_dispatch::new::<Vec<u64>>(64);
    let (sink_tx, out) = output.new("sink", "out");
    let sink_tx = WorkerSlots::on_worker(0, sink_tx);
    let seen = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&seen);
    let guards = timely::execute(timely::Config::process(2), move |worker| {
        let counted = Arc::clone(&counted);
        worker.dataflow::<u64, _, _>(|scope| {
            let (numbers, _) = readers.source(scope).unwrap();
            let numbers = numbers.inspect(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
            });
            let sender = sink_tx.take(scope.index()).unwrap();
            Sink::new(0, sender).build(numbers).unwrap();
        });
    })
    .unwrap();
    let reader = thread::spawn(move || out.filter(|(v, _)| v.is_some()).count());

    // Warm up: everything started, a message went through both workers.
    senders.for_key(0).send(1).unwrap();
    senders.for_key(1).send(2).unwrap();
    let warm = wait_for(&seen, 2);
    thread::sleep(Duration::from_millis(100));

    let before = cpu_time();
    thread::sleep(Duration::from_secs(1));
    let used = cpu_time() - before;

    // Still awake: a message after the idle second gets through at once.
    let sent = Instant::now();
    senders.for_key(0).send(3).unwrap();
    let woken = wait_for(&seen, 3);
    let latency = sent.elapsed();
    // Shut down before asserting: a failed assertion must not leave the workers running
    // (dropping the guards joins them, which waits for the senders to go).
    drop(senders);
    support::within(Duration::from_secs(30), move || {
        for result in guards.join() {
            result.unwrap();
        }
    });
    eprintln!("idle second: {used:?} of CPU; woken after {latency:?}");
    assert!(
        used < Duration::from_millis(50),
        "an idle second cost {used:?} of CPU (limit 50 ms, 5%)"
    );
    assert!(warm, "the first messages did not get through timely");
    assert!(
        woken && latency < Duration::from_secs(1),
        "not woken after idling"
    );
    assert_eq!(reader.join().unwrap(), 3, "the sink forwarded all three");
}
