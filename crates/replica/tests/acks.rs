//! ACKs report what the consumer applied (AckMode::Manual), `REPLCONF GETACK` is answered at
//! once (the source's `WAIT` returns), and a caught-up consumer acknowledges exactly the
//! master's offset.

use std::time::{Duration, Instant};

use redis_sync_replica::{AckMode, ReplicaBuilder};
use redis_sync_testkit::{ServerVersion, versions};

use crate::common::{
    Applier, master_offset, replica_state, run_until, run_until_payload, runtime, server,
};

fn acks(v: &ServerVersion) {
    let rt = runtime();
    let source = server(v, &[]);
    let target = server(v, &[]);
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut replica = {
        let _g = rt.enter();
        ReplicaBuilder::new(source.addr())
            .ack_mode(AckMode::Manual)
            .ack_interval(Duration::from_millis(200))
            .start(async move {
                let _ = stop_rx.await;
            })
    };
    let applied = replica.applied();
    let mut a = Applier::new(&target);
    run_until_payload(&rt, &mut replica, &mut a);
    applied.set(a.last_offset, 0);

    // A write that is received but not applied: WAIT must not count this replica.
    // WAIT counts from the offset of this connection's last write: one connection for both.
    let mut c = source.client();
    c.call(&["SET", "acked", "1"]).unwrap();
    run_until(
        &rt,
        &mut replica,
        &mut a,
        Duration::from_secs(10),
        "the write",
        |a, _| a.commands == 1,
    );
    let waited = c.call(&["WAIT", "1", "300"]).unwrap().int();
    assert_eq!(
        waited, 0,
        "{v}: the ACK covered a write the consumer had not applied"
    );

    // Applied: WAIT (which sends REPLCONF GETACK) returns at once.
    applied.set(a.last_offset, a.last_db);
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        let n = c.call(&["WAIT", "1", "5000"]).unwrap().int();
        (n, t.elapsed())
    });
    run_until(
        &rt,
        &mut replica,
        &mut a,
        Duration::from_secs(10),
        "WAIT",
        |_, _| waiter.is_finished(),
    );
    let (n, took) = waiter.join().unwrap();
    assert_eq!(n, 1, "{v}: WAIT did not see the ACK");
    assert!(took < Duration::from_secs(2), "{v}: WAIT took {took:?}");
    // (Whether WAIT needed a GETACK here depends on timing: an ACK after `set` may come
    // first. getack_is_answered_at_once checks GETACK alone.)

    // Caught up: the consumer reports the `Position`s too (the GETACK's, the PINGs'), and the
    // ACK is the master's offset.
    run_until(
        &rt,
        &mut replica,
        &mut a,
        Duration::from_secs(10),
        "the ACK at the master's offset",
        |a, m| {
            applied.set(a.last_offset, a.last_db);
            let master = master_offset(&source);
            m.offset() == master && replica_state(&source).is_some_and(|(_, off)| off == master)
        },
    );
    eprintln!("ok {v}: WAIT 0 before apply, 1 after in {took:?}");
    let _ = stop.send(());
}

#[test]
fn acks_follow_the_applied_offset_and_getack() {
    for v in versions() {
        acks(&v);
    }
}

/// With periodic ACKs effectively off (1 h), only the answer to `REPLCONF GETACK` can make
/// `WAIT` return.
fn getack_alone(v: &ServerVersion) {
    let rt = runtime();
    let source = server(v, &[]);
    let target = server(v, &[]);
    let mut replica = {
        let _g = rt.enter();
        ReplicaBuilder::new(source.addr())
            .ack_interval(Duration::from_secs(3600))
            .start(std::future::pending())
    };
    let mut a = Applier::new(&target);
    run_until_payload(&rt, &mut replica, &mut a);
    // Wait out the eager ACKs of the first 2 s online (a timer, not a synchronisation).
    std::thread::sleep(Duration::from_millis(2300));
    let mut c = source.client();
    c.call(&["SET", "k", "v"]).unwrap();
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        let n = c.call(&["WAIT", "1", "10000"]).unwrap().int();
        (n, t.elapsed())
    });
    run_until(
        &rt,
        &mut replica,
        &mut a,
        Duration::from_secs(15),
        "WAIT",
        |_, _| waiter.is_finished(),
    );
    let (n, took) = waiter.join().unwrap();
    assert_eq!(n, 1, "{v}");
    assert!(
        took < Duration::from_secs(3),
        "{v}: WAIT took {took:?}: GETACK not answered"
    );
    assert!(replica.metrics().getacks() >= 1, "{v}");
    eprintln!("ok {v}: WAIT answered through GETACK in {took:?}");
}

#[test]
fn getack_is_answered_at_once() {
    let all = versions();
    for v in [all.first(), all.last()].into_iter().flatten() {
        getack_alone(v);
    }
}
