//! Reconnection and resumption: a killed link continues with `+CONTINUE` (nothing lost or
//! repeated), a checkpoint resumes after a restart, and PSYNC2 continues on a promoted replica.

use std::time::Duration;

use redis_sync_replica::{AckMode, Replica, ReplicaBuilder, ResumePoint};
use redis_sync_testkit::{Server, ServerVersion, poll_until, versions};

use crate::common::{
    Applier, Load, kill_replicas, master_offset, run_until, run_until_payload, runtime, server,
};

fn start(
    rt: &tokio::runtime::Runtime,
    b: ReplicaBuilder,
) -> (Replica, tokio::sync::oneshot::Sender<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let _g = rt.enter();
    let r = b.start(async move {
        let _ = rx.await;
    });
    (r, tx)
}

fn seed(source: &Server) {
    let mut c = source.client();
    for i in 0..200 {
        c.call(&["SET", &format!("seed:{i}"), &format!("value-{i}")])
            .unwrap();
    }
    c.call(&["SELECT", "2"]).unwrap();
    c.call(&["RPUSH", "seed:list", "a", "b", "c"]).unwrap();
}

fn caught_up(
    rt: &tokio::runtime::Runtime,
    r: &mut Replica,
    a: &mut Applier,
    s: &Server,
    what: &str,
) {
    run_until(rt, r, a, Duration::from_secs(30), what, |_, m| {
        m.offset() == master_offset(s)
    });
}

fn kill_mid_stream(v: &ServerVersion) {
    let rt = runtime();
    let source = server(v, &[]);
    let target = server(v, &[]);
    seed(&source);
    let (mut replica, _stop) = start(&rt, ReplicaBuilder::new(source.addr()));
    let mut a = Applier::new(&target);
    run_until_payload(&rt, &mut replica, &mut a);
    let load = Load::start(&source, 300, "k:");
    // Three kills while the load runs; each must be followed by +CONTINUE.
    for (i, after) in [300u64, 1500, 3000].into_iter().enumerate() {
        run_until(
            &rt,
            &mut replica,
            &mut a,
            Duration::from_secs(30),
            "some commands",
            |a, _| a.commands > after,
        );
        assert!(
            kill_replicas(&source) >= 1,
            "{v}: CLIENT KILL found no replica"
        );
        run_until(
            &rt,
            &mut replica,
            &mut a,
            Duration::from_secs(30),
            "+CONTINUE",
            |a, _| a.continued > i as u64,
        );
    }
    load.finish();
    caught_up(
        &rt,
        &mut replica,
        &mut a,
        &source,
        "the master's offset after the kill",
    );
    let m = replica.metrics();
    assert_eq!(
        a.full_syncs, 1,
        "{v}: a full resync after the kill: {:?}",
        a.link_lost
    );
    assert_eq!(m.partial_syncs(), 3, "{v}");
    assert_eq!(a.link_lost.len(), 3, "{v}: {:?}", a.link_lost);
    assert_eq!(
        source.digest(),
        target.digest(),
        "{v}: target differs after +CONTINUE"
    );
    eprintln!(
        "ok {v}: killed 3 times, continued each time, {} commands in all, offset {}",
        a.commands,
        m.offset()
    );
}

#[test]
fn killed_link_continues_without_loss_or_repeat() {
    for v in versions() {
        kill_mid_stream(&v);
    }
}

#[test]
fn checkpoint_resumes_after_restart() {
    let Some(v) = versions().into_iter().find(|v| v.at_least(7, 0)) else {
        return;
    };
    let rt = runtime();
    let source = server(&v, &[]);
    let target = server(&v, &[]);
    seed(&source);
    let point: ResumePoint = {
        let (mut replica, stop) = start(
            &rt,
            ReplicaBuilder::new(source.addr()).ack_mode(AckMode::Manual),
        );
        let mut a = Applier::new(&target);
        let load = Load::start(&source, 100, "a:");
        run_until_payload(&rt, &mut replica, &mut a);
        load.finish();
        caught_up(
            &rt,
            &mut replica,
            &mut a,
            &source,
            "the offset before the restart",
        );
        // Manual mode: nothing counts until the consumer says so.
        replica.applied().set(a.last_offset, a.last_db);
        // Trailing PINGs count as applied (the source may send one between two reads, and
        // the consumer must have applied everything before it: hence the poll).
        let point = poll_until(
            Duration::from_secs(15),
            "the checkpoint at the master's offset",
            || {
                replica.applied().set(a.last_offset, a.last_db);
                replica
                    .resume_point()
                    .filter(|p| p.offset == master_offset(&source))
            },
        );
        let _ = stop.send(());
        point
    };
    poll_until(Duration::from_secs(10), "the old link gone", || {
        (crate::common::replica_state(&source).is_none()).then_some(())
    });
    let load = Load::start(&source, 100, "b:");
    load.finish();
    let (mut replica, _stop) = start(&rt, ReplicaBuilder::new(source.addr()).resume_from(point));
    let mut a = Applier::new(&target);
    caught_up(
        &rt,
        &mut replica,
        &mut a,
        &source,
        "the offset after the restart",
    );
    assert_eq!(a.full_syncs, 0, "{v}: the restart forced a full sync");
    assert_eq!(a.continued, 1, "{v}");
    assert!(
        a.commands > 100,
        "{v}: only {} commands after the restart",
        a.commands
    );
    assert_eq!(
        source.digest(),
        target.digest(),
        "{v}: target differs after the restart"
    );
    // In Delivered mode the checkpoint follows by itself, trailing PINGs included.
    poll_until(
        Duration::from_secs(15),
        "the checkpoint after the restart",
        || {
            replica
                .resume_point()
                .filter(|p| p.offset == master_offset(&source))
        },
    );
}

fn failover(v: &ServerVersion) {
    let rt = runtime();
    let master = server(v, &[]);
    let promoted = Server::builder(v)
        .arg("--repl-diskless-sync-delay")
        .arg("0")
        .replica_of(&master)
        .start();
    promoted.wait_replica_synced();
    let target = server(v, &[]);
    seed(&master);
    let point = {
        let (mut replica, stop) = start(&rt, ReplicaBuilder::new(master.addr()));
        let mut a = Applier::new(&target);
        run_until_payload(&rt, &mut replica, &mut a);
        Load::start(&master, 100, "m:").finish();
        caught_up(&rt, &mut replica, &mut a, &master, "the master's offset");
        let point = replica.resume_point().expect("a resume point");
        let _ = stop.send(());
        point
    };
    // The real replica has everything we have; promote it.
    let want = master_offset(&master);
    poll_until(
        Duration::from_secs(10),
        "the replica at the master's offset",
        || (master_offset(&promoted) >= want).then_some(()),
    );
    promoted.cmd(&["REPLICAOF", "NO", "ONE"]).ok();
    let new_id = promoted
        .info("replication")
        .get("master_replid")
        .cloned()
        .unwrap_or_default();
    assert_ne!(
        new_id, point.replid,
        "{v}: promotion keeps the replication ID"
    );
    Load::start(&promoted, 100, "p:").finish();
    let (mut replica, _stop) = start(&rt, ReplicaBuilder::new(promoted.addr()).resume_from(point));
    let mut a = Applier::new(&target);
    let mut continued_with = None;
    run_until(
        &rt,
        &mut replica,
        &mut a,
        Duration::from_secs(30),
        "the promoted offset",
        |a, m| a.continued >= 1 && m.offset() == master_offset(&promoted),
    );
    // `Continued` names the new ID (PSYNC2).
    if let Some(p) = replica.resume_point() {
        continued_with = Some(p.replid);
    }
    assert_eq!(a.full_syncs, 0, "{v}: the failover forced a full sync");
    assert_eq!(continued_with.as_deref(), Some(new_id.as_str()), "{v}");
    assert_eq!(
        promoted.digest(),
        target.digest(),
        "{v}: target differs after the failover"
    );
    eprintln!("ok {v}: continued on the promoted replica with {new_id}");
}

#[test]
fn psync2_continues_on_a_promoted_replica() {
    for v in versions() {
        failover(&v);
    }
}

fn kill_mid_payload(v: &ServerVersion) -> bool {
    let rt = runtime();
    let source = server(v, &["--repl-diskless-sync", "yes"]);
    // Slow the RDB down (µs per key) so the link can be killed while it is being sent.
    if source
        .cmd(&["CONFIG", "SET", "rdb-key-save-delay", "1000"])
        .is_error()
    {
        eprintln!("skip {v}: no rdb-key-save-delay to slow a payload down");
        return false;
    }
    source.cmd(&["DEBUG", "POPULATE", "1200", "pop"]).ok();
    let target = server(v, &[]);
    let (mut replica, _stop) = start(&rt, ReplicaBuilder::new(source.addr()));
    let mut a = Applier::new(&target);
    run_until(
        &rt,
        &mut replica,
        &mut a,
        Duration::from_secs(30),
        "part of the payload",
        |a, _| a.rdb_commands > 200,
    );
    assert!(!a.rdb_done, "{v}: the payload was not slow enough");
    source
        .cmd(&["CONFIG", "SET", "rdb-key-save-delay", "0"])
        .ok();
    assert!(
        kill_replicas(&source) >= 1,
        "{v}: CLIENT KILL found no replica"
    );
    run_until(
        &rt,
        &mut replica,
        &mut a,
        Duration::from_secs(30),
        "a second full sync",
        |a, _| a.full_syncs == 2 && a.rdb_done,
    );
    Load::start(&source, 20, "after:").finish();
    caught_up(
        &rt,
        &mut replica,
        &mut a,
        &source,
        "the offset after the second sync",
    );
    assert_eq!(a.link_lost.len(), 1, "{v}: {:?}", a.link_lost);
    assert_eq!(
        source.digest(),
        target.digest(),
        "{v}: target differs after the resync"
    );
    eprintln!(
        "ok {v}: killed mid-payload, full resync, {} keys",
        replica.metrics().rdb_keys()
    );
    true
}

#[test]
fn killed_mid_payload_resyncs() {
    let ran = versions().iter().filter(|v| kill_mid_payload(v)).count();
    eprintln!("mid-payload kill run on {ran} versions");
}

/// A resume point the source does not know: a full resync, reported as forced.
#[test]
fn unknown_resume_point_forces_a_full_resync() {
    let Some(v) = versions().pop() else { return };
    let rt = runtime();
    let source = server(&v, &[]);
    let target = server(&v, &[]);
    seed(&source);
    let point = ResumePoint {
        replid: "0123456789abcdef0123456789abcdef01234567".into(),
        offset: 41,
        db: 0,
    };
    let (mut replica, _stop) = start(&rt, ReplicaBuilder::new(source.addr()).resume_from(point));
    let mut a = Applier::new(&target);
    run_until_payload(&rt, &mut replica, &mut a);
    assert_eq!(a.forced, [true], "{v}");
    assert_eq!(a.continued, 0, "{v}");
    assert_eq!(source.digest(), target.digest(), "{v}");
}
