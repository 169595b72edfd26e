//! Redis glob patterns, as `KEYS` and `SCAN MATCH` use them (`stringmatchlen` in util.c).
//!
//! `*` any run of bytes, `?` one byte, `[abc]` one of, `[^abc]` none of, `[a-z]` a range
//! (ends swapped if reversed), `\x` the byte `x` literally (also inside brackets). Matching is
//! on bytes, case-sensitive, and runs in O(pattern × key) time without recursion.

/// Matches one byte against the class starting after `[` at `p[start..]`. Returns whether it
/// matched and the index just past the closing `]` (or the end of the pattern if unclosed).
fn match_class(p: &[u8], start: usize, c: u8) -> (bool, usize) {
    let mut i = start;
    let negate = p.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    while i < p.len() && p[i] != b']' {
        if p[i] == b'\\' && i + 1 < p.len() {
            i += 1;
            matched |= p[i] == c;
            i += 1;
        } else if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            let (mut lo, mut hi) = (p[i], p[i + 2]);
            if lo > hi {
                std::mem::swap(&mut lo, &mut hi);
            }
            matched |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            matched |= p[i] == c;
            i += 1;
        }
    }
    let end = if i < p.len() { i + 1 } else { i };
    (matched != negate, end)
}

/// True when `key` matches the Redis glob `pattern`.
///
/// ```
/// use redis_sync_commands::glob_match;
/// assert!(glob_match(b"user:*", b"user:42"));
/// assert!(glob_match(b"h?llo", b"hallo"));
/// assert!(glob_match(b"h[^e]llo", b"hallo"));
/// assert!(!glob_match(b"h[a-b]llo", b"hello"));
/// assert!(glob_match(br"a\*b", b"a*b"));
/// ```
pub fn glob_match(pattern: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, key index it has eaten to).
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                // Collapse runs of `*`.
                while pattern.get(p) == Some(&b'*') {
                    p += 1;
                }
                if p == pattern.len() {
                    return true;
                }
                star = Some((p, k));
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => {
                let (ok, end) = match_class(pattern, p + 1, key[k]);
                ok.then_some(end)
            }
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == key[k]).then_some(p + 2),
            Some(&c) => (c == key[k]).then_some(p + 1),
            None => None,
        };
        match step {
            Some(next) => {
                p = next;
                k += 1;
            }
            None => match star {
                Some((sp, sk)) => {
                    p = sp;
                    k = sk + 1;
                    star = Some((sp, sk + 1));
                }
                None => return false,
            },
        }
    }
    while pattern.get(p) == Some(&b'*') {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_driven() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("a", "", false),
            ("a*", "a", true),
            ("a*b", "axxb", true),
            ("a*b", "axxbc", false),
            ("a*b*c", "abxbc", true),
            ("*a*a*a*", "aaa", true),
            ("*a*a*a*", "aa", false),
            ("?", "", false),
            ("??", "ab", true),
            ("[abc]", "b", true),
            ("[abc]", "d", false),
            ("[^abc]", "d", true),
            ("[^abc]", "a", false),
            ("[a-c]x", "bx", true),
            ("[c-a]x", "bx", true),
            ("[a-c]x", "dx", false),
            (r"[\]]", "]", true),
            (r"[\-]", "-", true),
            ("[a-]", "-", true),
            (r"\*", "*", true),
            (r"\*", "a", false),
            (r"\?x", "?x", true),
            ("a\\", "a\\", true),
            ("user:*:name", "user:42:name", true),
            ("user:*:name", "user:42:age", false),
            ("[ab", "a", true),
            ("*[0-9]", "abc7", true),
            ("*[0-9]", "abc", false),
        ];
        for (pat, key, want) in cases {
            assert_eq!(
                glob_match(pat.as_bytes(), key.as_bytes()),
                *want,
                "{pat:?} vs {key:?}"
            );
        }
        assert!(glob_match(b"k\xff*", b"k\xff\x00\x01"));
    }

    #[test]
    fn no_blowup() {
        let key = vec![b'a'; 4000];
        let pat = b"*a*a*a*a*a*a*a*a*a*a*b";
        assert!(!glob_match(pat, &key));
    }
}
