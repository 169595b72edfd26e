//! Running the built binary and replaying its RESP output into a real server.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use redis_sync_testkit::{Reply, Server, ServerVersion, find, versions};

/// Runs `redis-sync` with `args` and returns its output (whatever the exit status).
pub fn redis_sync(args: &[&str]) -> Output {
    run_bounded(Command::new(env!("CARGO_BIN_EXE_redis-sync")).args(args))
}

/// `redis-sync sync --until-caught-up` from `source` into `target` (URLs) with the state file
/// `state` and `extra` flags.
pub fn sync_until_caught_up(source: &str, target: &str, state: &Path, extra: &[&str]) -> Output {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_redis-sync"))
            .args([
                "sync",
                "--until-caught-up",
                "--source",
                source,
                "--target",
                target,
            ])
            .arg("--state-file")
            .arg(state)
            .args(extra),
    )
}

/// `redis-sync verify --source SOURCE --target TARGET` exits 0 (equal); its output otherwise.
#[track_caller]
pub fn assert_verify_equal(source: &str, target: &str) {
    let out = redis_sync(&["verify", "--source", source, "--target", target]);
    assert!(
        out.status.success(),
        "verify {source} {target}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How long one run of the binary may take before the test fails instead of hanging CI.
const RUN_DEADLINE: Duration = Duration::from_secs(300);

/// Runs `cmd` to completion and returns its output, like `Command::output`, but kills it and
/// fails the test, with the tail of what it printed, if it runs past [`RUN_DEADLINE`].
pub fn run_bounded(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the redis-sync binary");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + RUN_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for redis-sync") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = stderr.join().unwrap_or_default();
            let err = String::from_utf8_lossy(&err);
            let tail: Vec<&str> = err.lines().rev().take(40).collect();
            panic!(
                "redis-sync {:?} still running after {RUN_DEADLINE:?}; killed. Last lines it printed:\n{}",
                cmd.get_args().collect::<Vec<_>>(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// `redis-sync rdb FILE --format FORMAT`, which must succeed; returns stdout.
pub fn rdb(file: &Path, format: &str) -> Vec<u8> {
    let file = file.to_str().expect("UTF-8 temp path");
    let out = redis_sync(&["rdb", file, "--format", format]);
    assert!(
        out.status.success(),
        "redis-sync rdb --format {format} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Splits RESP output (arrays of bulk strings, as `--format resp` writes) into commands,
/// each with the byte range it occupies. Panics on anything else: the output must be clean.
pub fn split_commands(resp: &[u8]) -> Vec<(Vec<Vec<u8>>, std::ops::Range<usize>)> {
    fn line(resp: &[u8], pos: &mut usize, lead: u8) -> usize {
        assert_eq!(
            resp[*pos], lead,
            "expected {:?} at byte {}",
            lead as char, *pos
        );
        let end = (*pos..resp.len() - 1)
            .find(|&i| resp[i] == b'\r' && resp[i + 1] == b'\n')
            .expect("CRLF");
        let n = std::str::from_utf8(&resp[*pos + 1..end])
            .unwrap()
            .parse()
            .unwrap();
        *pos = end + 2;
        n
    }
    let mut cmds = Vec::new();
    let mut pos = 0;
    while pos < resp.len() {
        let start = pos;
        let argc = line(resp, &mut pos, b'*');
        let mut args = Vec::with_capacity(argc);
        for _ in 0..argc {
            let len = line(resp, &mut pos, b'$');
            args.push(resp[pos..pos + len].to_vec());
            assert_eq!(&resp[pos + len..pos + len + 2], b"\r\n", "bulk terminator");
            pos += len + 2;
        }
        cmds.push((args, start..pos));
    }
    cmds
}

/// Sends RESP `commands` to `server` pipelined (in batches) and asserts that no reply is an
/// error. Returns the number of commands.
#[track_caller]
pub fn replay(server: &Server, resp: &[u8]) -> usize {
    try_replay(server, resp).unwrap_or_else(|e| panic!("{e}"))
}

/// [`replay`], returning the first refused command instead of panicking.
pub fn try_replay(server: &Server, resp: &[u8]) -> Result<usize, String> {
    let cmds = split_commands(resp);
    let mut client = server.client();
    let mut first_error = None;
    for batch in cmds.chunks(500) {
        let range = batch[0].1.start..batch[batch.len() - 1].1.end;
        client
            .send_raw(&resp[range])
            .map_err(|e| format!("send: {e}"))?;
        for (args, _) in batch {
            let reply = client
                .read_reply()
                .map_err(|e| format!("read a reply: {e}"))?;
            if let (Reply::Error(e), None) = (reply, &first_error) {
                let shown: Vec<String> = args
                    .iter()
                    .take(6)
                    .map(|a| String::from_utf8_lossy(&a[..a.len().min(60)]).into_owned())
                    .collect();
                first_error = Some(format!("{} refused {shown:?}: {e}", server.version()));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(cmds.len()),
    }
}

/// A server of version `v` with the Redis Stack modules it ships (RedisJSON, RedisBloom).
pub fn server_with_modules(v: &ServerVersion) -> Server {
    let mut b = Server::builder(v);
    for m in ["rejson", "redisbloom"] {
        if v.module(m).is_some() {
            b = b.module(m);
        }
    }
    b.start()
}

/// Empties a server: keys of every db and, on 7.0+, function libraries.
pub fn flush(server: &Server) {
    server.cmd(&["FLUSHALL"]).ok();
    if server.version().at_least(7, 0) {
        server.cmd(&["FUNCTION", "FLUSH"]).ok();
    }
}

/// The version most end-to-end tests run on: Redis 7.0.15 when installed, else the newest
/// installed server. `None` (with a note) only outside CI with no server at all: under
/// `CI=true` the test kit fails instead.
pub fn usual_version() -> Option<ServerVersion> {
    let v = find("redis-7.0.15").or_else(|| versions().into_iter().last());
    if v.is_none() {
        eprintln!("skipped: no server installed");
    }
    v
}
