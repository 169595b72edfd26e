//! The source's module commands, learned once at start so that their keys are known.
//!
//! The command table knows the core commands only. A module's commands (`JSON.SET`, `BF.ADD`,
//! `TS.ADD`, `FT.*`, …) are described by the source itself: `MODULE LIST` says whether it has
//! any, and then its `COMMAND` reply (every command with its key specs, on every version since
//! 2.8.13; 7.0+ with key specs, older ones with the legacy first/last/step) is handed to
//! [`redis_sync_commands::learn_commands`]. From there on the filters (`--key-prefix` …), the
//! cluster routing in the sink and the cross-slot checks see their keys like a core command's.
//! Commands whose keys the reply cannot say stay unknown and are passed on unchanged, as before.
//!
//! Nothing here can stop a sync: a source that refuses (an ACL without `MODULE`/`COMMAND`), a
//! TLS source (the CLI's client speaks plain TCP only) or a file source only means the module
//! commands stay unknown, which is said once.

use std::time::Duration;

use anyhow::Context;
use redis_sync_commands::{CommandSpecs, Learned, ReplyValue, learn_commands};
use redis_sync_resp::Frame;

use crate::client::{Client, text};
use crate::config::Settings;

/// Bound on each question (the `COMMAND` reply of a server with modules is a few hundred KiB).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the source for its module commands and adds them to the command table; logs what it
/// learned. Never fails: without them, module commands are passed on unchanged.
pub(super) async fn learn(s: &Settings) {
    if s.files.is_some() {
        return; // a file source: no server to ask
    }
    match ask(s).await {
        Ok(None) => tracing::debug!("the source has no modules"),
        Ok(Some((modules, learned))) => log(&modules, &learned),
        Err(e) => tracing::warn!(
            "could not read the source's module commands ({e:#}): their keys are unknown, so \
             filters and cluster routing cannot see them; they are passed on unchanged"
        ),
    }
}

/// The source's module names and what was learned from its `COMMAND` reply; `None` when it
/// loaded no module.
async fn ask(s: &Settings) -> anyhow::Result<Option<(Vec<String>, Learned)>> {
    let mut c = Client::connect(&s.source, TIMEOUT).await?;
    // `MODULE LIST` exists since 4.0; an error (an older server, or an ACL that refuses it)
    // says nothing, so `COMMAND` is asked all the same.
    let modules = match c.call(&["MODULE", "LIST"]).await? {
        Frame::Array(list) | Frame::Set(list) => {
            if list.is_empty() {
                return Ok(None);
            }
            list.iter().filter_map(module_name).collect()
        }
        _ => Vec::new(),
    };
    let reply = c.ok(&["COMMAND"]).await?;
    let specs = CommandSpecs::parse(&value(&reply)).context("reading the COMMAND reply")?;
    Ok(Some((modules, learn_commands(&specs))))
}

fn log(modules: &[String], learned: &Learned) {
    let modules = if modules.is_empty() {
        String::new()
    } else {
        format!(" (modules: {})", modules.join(", "))
    };
    tracing::info!(
        "learned {} module commands from the source{modules}: their keys are known to filters \
         and cluster routing",
        learned.learned.len()
    );
    if !learned.keys_unknown.is_empty() {
        tracing::warn!(
            "the source does not say where the keys of {} module commands are ({}): they are \
             passed on unchanged, unfiltered, and routed by their first argument on a cluster",
            learned.keys_unknown.len(),
            learned.keys_unknown.join(", ")
        );
    }
}

/// The `name` of one `MODULE LIST` entry (RESP2 flat array or RESP3 map).
fn module_name(entry: &Frame) -> Option<String> {
    match entry {
        Frame::Array(f) => f
            .chunks_exact(2)
            .find(|p| text(&p[0]).as_deref() == Some("name"))
            .and_then(|p| text(&p[1])),
        Frame::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| text(k).as_deref() == Some("name"))
            .and_then(|(_, v)| text(v)),
        _ => None,
    }
}

/// A decoded reply as the commands crate's [`ReplyValue`] (which has no RESP codec).
fn value(f: &Frame) -> ReplyValue {
    match f {
        Frame::Integer(i) => ReplyValue::Int(*i),
        Frame::SimpleString(b) | Frame::BulkString(b) => ReplyValue::Text(b.clone()),
        Frame::VerbatimString { text, .. } => ReplyValue::Text(text.clone()),
        Frame::Array(a) | Frame::Set(a) => ReplyValue::Array(a.iter().map(value).collect()),
        Frame::Map(pairs) => {
            ReplyValue::Map(pairs.iter().map(|(k, v)| (value(k), value(v))).collect())
        }
        _ => ReplyValue::Nil,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn module_names_in_both_shapes() {
        let b = |s: &'static str| Frame::BulkString(Bytes::from_static(s.as_bytes()));
        let resp2 = Frame::Array(vec![b("name"), b("ReJSON"), b("ver"), Frame::Integer(1)]);
        assert_eq!(module_name(&resp2).as_deref(), Some("ReJSON"));
        let resp3 = Frame::Map(vec![(b("ver"), Frame::Integer(1)), (b("name"), b("bf"))]);
        assert_eq!(module_name(&resp3).as_deref(), Some("bf"));
        assert_eq!(module_name(&Frame::Integer(1)), None);
        assert_eq!(
            value(&Frame::Array(vec![b("x"), Frame::Integer(2), Frame::Null])),
            ReplyValue::Array(vec![
                ReplyValue::Text(Bytes::from_static(b"x")),
                ReplyValue::Int(2),
                ReplyValue::Nil
            ])
        );
    }
}
