//! TLS (rustls, ring): a full sync and the stream over TLS with a CA file, SNI and a client
//! certificate, against every installed version built with TLS; plain text to a TLS port fails
//! clearly.

use std::time::Duration;

use redis_sync_replica::{Error, ReplicaBuilder, TlsConfig};
use redis_sync_testkit::{Server, ServerVersion, TestCerts, versions};

use crate::common::{Applier, Load, master_offset, run_until, runtime};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tls_server(v: &ServerVersion, certs: &TestCerts, port: u16) -> Option<Server> {
    Server::builder(v)
        .arg("--repl-diskless-sync-delay")
        .arg("0")
        .arg("--tls-port")
        .arg(port.to_string())
        .arg("--tls-cert-file")
        .arg(certs.server_cert())
        .arg("--tls-key-file")
        .arg(certs.server_key())
        .arg("--tls-ca-cert-file")
        .arg(certs.ca())
        .arg("--tls-auth-clients")
        .arg("yes")
        .try_start()
        .ok()
}

fn sync_over_tls(v: &ServerVersion, certs: &TestCerts) -> bool {
    let port = free_port();
    let Some(source) = tls_server(v, certs, port) else {
        eprintln!("skip {v}: not built with TLS");
        return false;
    };
    let target = Server::builder(v).start();
    let rt = runtime();
    for i in 0..100 {
        source.cmd(&["SET", &format!("tls:{i}"), "v"]).ok();
    }
    let tls = TlsConfig {
        ca_file: Some(certs.ca()),
        cert_file: Some(certs.client_cert()),
        key_file: Some(certs.client_key()),
        server_name: Some("localhost".into()),
        insecure: false,
    };
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut replica = {
        let _g = rt.enter();
        ReplicaBuilder::new(format!("127.0.0.1:{port}"))
            .tls(tls)
            .start(async move {
                let _ = stop_rx.await;
            })
    };
    let mut a = Applier::new(&target);
    run_until(
        &rt,
        &mut replica,
        &mut a,
        Duration::from_secs(30),
        "the payload over TLS",
        |a, _| a.rdb_done,
    );
    Load::start(&source, 30, "t:").finish();
    run_until(
        &rt,
        &mut replica,
        &mut a,
        Duration::from_secs(30),
        "the offset over TLS",
        |_, m| m.offset() == master_offset(&source),
    );
    assert_eq!(
        source.digest(),
        target.digest(),
        "{v}: target differs after a TLS sync"
    );
    let _ = stop.send(());

    // Plain text to the TLS port: a clear error, no hang.
    let _g = rt.enter();
    let mut plain = ReplicaBuilder::new(format!("127.0.0.1:{port}"))
        .handshake_timeout(Duration::from_secs(2))
        .start(std::future::pending());
    let e = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), plain.next_event()).await })
        .expect("an answer within 10 s")
        .expect("an item")
        .expect_err("plain text to a TLS port fails");
    assert!(
        matches!(
            e,
            Error::Closed { .. }
                | Error::Timeout { .. }
                | Error::Protocol { .. }
                | Error::Io { .. }
        ),
        "{v}: {e}"
    );
    eprintln!("ok {v}: TLS sync with client certificate; plain text to the TLS port: {e}");
    true
}

#[test]
fn full_sync_and_stream_over_tls() {
    let Some(certs) = TestCerts::generate() else {
        return;
    };
    let ran = versions()
        .iter()
        .filter(|v| sync_over_tls(v, &certs))
        .count();
    eprintln!("TLS tested on {ran} versions");
}
