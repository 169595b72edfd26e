//! Redis glob patterns (`KEYS`, `SCAN MATCH`): `*`, `?`, `[abc]`, `[^abc]`, `[a-z]`, `\x`.
//!
//! Matches bytes, like Redis's `stringmatchlen`. The matcher backtracks only to the last `*`
//! (the classic two-pointer algorithm), so it runs in O(pattern × key) and cannot blow up on
//! patterns such as `a*a*a*a*b`.

/// Where the atom at `p` ends, and whether it matches byte `c`.
fn atom(pat: &[u8], p: usize, c: u8) -> (usize, bool) {
    match pat[p] {
        b'?' => (p + 1, true),
        b'\\' if p + 1 < pat.len() => (p + 2, pat[p + 1] == c),
        b'[' => class(pat, p + 1, c),
        other => (p + 1, other == c),
    }
}

/// A `[...]` class starting after the `[`: returns the index after `]` and the result.
/// An unterminated class runs to the end of the pattern, as in Redis.
fn class(pat: &[u8], mut p: usize, c: u8) -> (usize, bool) {
    let not = pat.get(p) == Some(&b'^');
    if not {
        p += 1;
    }
    let mut hit = false;
    while p < pat.len() && pat[p] != b']' {
        if pat[p] == b'\\' && p + 1 < pat.len() {
            hit |= pat[p + 1] == c;
            p += 2;
        } else if p + 2 < pat.len() && pat[p + 1] == b'-' && pat[p + 2] != b']' {
            let (lo, hi) = (pat[p].min(pat[p + 2]), pat[p].max(pat[p + 2]));
            hit |= (lo..=hi).contains(&c);
            p += 3;
        } else {
            hit |= pat[p] == c;
            p += 1;
        }
    }
    (p + 1, hit != not)
}

/// True when `key` matches the Redis glob `pat`.
pub fn matches(pat: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0, 0);
    // Where to resume after the last `*`: (pattern index after the star, key index).
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if p < pat.len() && pat[p] == b'*' {
            while p < pat.len() && pat[p] == b'*' {
                p += 1;
            }
            star = Some((p, k));
            continue;
        }
        if p < pat.len() {
            let (next, ok) = atom(pat, p, key[k]);
            if ok {
                p = next;
                k += 1;
                continue;
            }
        }
        match star {
            Some((sp, sk)) => {
                p = sp;
                k = sk + 1;
                star = Some((sp, sk + 1));
            }
            None => return false,
        }
    }
    while p < pat.len() && pat[p] == b'*' {
        p += 1;
    }
    p == pat.len()
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn m(p: &str, k: &str) -> bool {
        matches(p.as_bytes(), k.as_bytes())
    }

    #[test]
    fn redis_glob_semantics() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("user:*", "user:1"));
        assert!(!m("user:*", "users:1"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed ranges work as in Redis");
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*a*b", "xxaxxb"));
        assert!(!m("*a*b", "xxaxxbc"));
        assert!(m("a**b", "ab"));
        assert!(m("[\\]]", "]"));
        assert!(!m("abc", "ab"));
        assert!(!m("ab", "abc"));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let key = "a".repeat(5000);
        let pat = format!("{}b", "a*".repeat(50));
        let t = std::time::Instant::now();
        assert!(!m(&pat, &key));
        assert!(t.elapsed().as_secs() < 2);
    }
}
