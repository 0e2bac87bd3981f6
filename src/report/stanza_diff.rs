//! Expected pattern vs received stanza as a readable line diff, for the reports.
//!
//! Both are parsed and pretty-printed one attribute per line (sorted, so a server's attribute order
//! does not matter), then compared line by line. This is a reading aid only: the verdict was decided
//! by the matcher and is never re-derived here.

use crate::xml::{parse_fragment, Element, Node, NS_CLIENT, NS_XML};

/// How a line of the diff relates the two sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    /// On both sides.
    Same,
    /// In the pattern, not in the stanza: what made the match fail.
    Missing,
    /// In the stanza, not in the pattern (allowed: matching is non-strict).
    Extra,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DiffLine {
    pub kind: LineKind,
    pub text: String,
}

/// Above this many lines per side, no diff is computed (the LCS table would be too large).
const MAX_LINES: usize = 1500;

/// Pretty lines of a stanza: `<name>`, then `    @attr='value'` lines, children indented, text on its own
/// line, `</name>` to close. Elements holding only text and no attributes stay on one line.
/// Returns None when the text does not parse as XML.
pub fn pretty_lines(xml: &str) -> Option<Vec<String>> {
    let element = parse_fragment(xml, NS_CLIENT).ok()?;
    let mut lines = Vec::new();
    write_element(&element, NS_CLIENT, 0, &mut lines);
    Some(lines)
}

fn write_element(e: &Element, parent_ns: &str, depth: usize, out: &mut Vec<String>) {
    let pad = "  ".repeat(depth);
    let mut attrs: Vec<String> = e
        .attrs
        .iter()
        .map(|a| {
            let name = match a.ns.as_str() {
                "" => a.name.clone(),
                NS_XML => format!("xml:{}", a.name),
                ns => format!("{{{ns}}}{}", a.name),
            };
            format!("{name}='{}'", a.value)
        })
        .collect();
    attrs.sort();
    if e.ns != parent_ns {
        attrs.insert(0, format!("xmlns='{}'", e.ns));
    }
    let only_text = e.children.iter().all(|c| matches!(c, Node::Text(_)));
    if attrs.is_empty() && e.children.is_empty() {
        out.push(format!("{pad}<{}/>", e.name));
        return;
    }
    if attrs.is_empty() && only_text {
        out.push(format!("{pad}<{}>{}</{}>", e.name, e.text(), e.name));
        return;
    }
    out.push(format!("{pad}<{}>", e.name));
    for a in attrs {
        out.push(format!("{pad}    @{a}"));
    }
    for child in &e.children {
        match child {
            Node::Element(c) => write_element(c, &e.ns, depth + 1, out),
            // Whitespace between child elements is indentation, not content.
            Node::Text(t) if t.trim().is_empty() && !only_text => {}
            Node::Text(t) => out.push(format!("{pad}  {t}")),
        }
    }
    out.push(format!("{pad}</{}>", e.name));
}

/// A pattern line with a placeholder value (`{*}`, `{=name}`, `{name}`) stands for any value.
fn lines_match(expected: &str, received: &str) -> bool {
    if expected == received {
        return true;
    }
    let Some((name, value)) = expected.split_once("='") else { return false };
    let value = value.strip_suffix('\'').unwrap_or(value);
    let is_placeholder = value.len() > 2
        && value.starts_with('{')
        && value.ends_with('}')
        && value[1..value.len() - 1].chars().all(|c| c == '*' || c == '=' || c.is_alphanumeric() || "_-.".contains(c));
    is_placeholder && received.starts_with(&format!("{name}='"))
}

/// The line diff of `expected` against `received` (longest common subsequence).
pub fn diff_lines(expected: &[String], received: &[String]) -> Vec<DiffLine> {
    let (n, m) = (expected.len(), received.len());
    if n > MAX_LINES || m > MAX_LINES {
        let mut out: Vec<DiffLine> =
            expected.iter().map(|t| DiffLine { kind: LineKind::Missing, text: t.clone() }).collect();
        out.extend(received.iter().map(|t| DiffLine { kind: LineKind::Extra, text: t.clone() }));
        return out;
    }
    // lcs[i][j]: length of the LCS of expected[i..] and received[j..].
    let mut lcs = vec![vec![0u16; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if lines_match(&expected[i], &received[j]) {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(n.max(m));
    while i < n || j < m {
        if i < n && j < m && lines_match(&expected[i], &received[j]) {
            // Show what arrived: the placeholder's actual value is the useful part.
            out.push(DiffLine { kind: LineKind::Same, text: received[j].clone() });
            i += 1;
            j += 1;
        } else if i < n
            && (j == m
                || lcs[i + 1][j] > lcs[i][j + 1]
                || (lcs[i + 1][j] == lcs[i][j + 1] && !extra_first(&expected[i], &received[j])))
        {
            // On a tie the expected line comes first, as in a unified diff, unless the received
            // line is an attribute: attributes stay together above the children.
            out.push(DiffLine { kind: LineKind::Missing, text: expected[i].clone() });
            i += 1;
        } else {
            out.push(DiffLine { kind: LineKind::Extra, text: received[j].clone() });
            j += 1;
        }
    }
    out
}

fn extra_first(expected: &str, received: &str) -> bool {
    let is_attr = |l: &str| l.trim_start().starts_with('@');
    is_attr(received) && !is_attr(expected)
}

/// The diff of a pattern against the closest of the received stanzas (fewest missing lines), with the
/// index of that stanza. None when nothing was received or the pattern does not parse.
pub fn closest(expected: &str, received: &[String]) -> Option<(usize, Vec<DiffLine>)> {
    let want = pretty_lines(expected)?;
    received
        .iter()
        .enumerate()
        .filter_map(|(i, r)| pretty_lines(r).map(|got| (i, diff_lines(&want, &got))))
        .min_by_key(|(i, d)| (d.iter().filter(|l| l.kind == LineKind::Missing).count(), *i))
}

/// The diff as plain text: `  ` same, `- ` missing (expected), `+ ` extra (received).
pub fn to_text(diff: &[DiffLine]) -> String {
    diff.iter()
        .map(|l| {
            let mark = match l.kind {
                LineKind::Same => "  ",
                LineKind::Missing => "- ",
                LineKind::Extra => "+ ",
            };
            format!("{mark}{}\n", l.text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(diff: &[DiffLine]) -> Vec<(LineKind, &str)> {
        diff.iter().map(|l| (l.kind, l.text.trim())).collect()
    }

    #[test]
    fn attributes_are_sorted_one_per_line_and_text_stays_inline() {
        let lines = pretty_lines("<message type='chat' id='m1'><body>hi &lt;b&gt;</body></message>").unwrap();
        assert_eq!(lines, ["<message>", "    @id='m1'", "    @type='chat'", "  <body>hi <b></body>", "</message>"]);
        let lines = pretty_lines("<x xmlns='urn:x' xml:lang='en'><y/></x>").unwrap();
        assert_eq!(lines, ["<x>", "    @xmlns='urn:x'", "    @xml:lang='en'", "  <y/>", "</x>"]);
        assert!(pretty_lines("not xml <").is_none());
    }

    #[test]
    fn a_wrong_value_is_missing_plus_extra_and_additions_are_extra() {
        let want = pretty_lines("<message from='a@x/r1' type='chat'/>").unwrap();
        let got = pretty_lines("<message type='chat' from='a@x' to='b@y'><body>hi</body></message>").unwrap();
        let d = diff_lines(&want, &got);
        assert_eq!(
            kinds(&d),
            [
                (LineKind::Same, "<message>"),
                (LineKind::Missing, "@from='a@x/r1'"),
                (LineKind::Extra, "@from='a@x'"),
                (LineKind::Extra, "@to='b@y'"),
                (LineKind::Same, "@type='chat'"),
                (LineKind::Extra, "<body>hi</body>"),
                (LineKind::Same, "</message>"),
            ]
        );
        assert!(to_text(&d).contains("- ") && to_text(&d).contains("+ "));
    }

    #[test]
    fn received_attributes_stay_above_a_missing_child() {
        let want = pretty_lines("<message type='chat'><body>never</body></message>").unwrap();
        let got = pretty_lines("<message type='chat' xml:lang='en'><body>hi</body></message>").unwrap();
        let d = diff_lines(&want, &got);
        assert_eq!(
            kinds(&d),
            [
                (LineKind::Same, "<message>"),
                (LineKind::Same, "@type='chat'"),
                (LineKind::Extra, "@xml:lang='en'"),
                (LineKind::Missing, "<body>never</body>"),
                (LineKind::Extra, "<body>hi</body>"),
                (LineKind::Same, "</message>"),
            ]
        );
    }

    #[test]
    fn placeholders_match_any_value_and_show_the_received_one() {
        let want = pretty_lines("<iq type='result' id='{=rid}'/>").unwrap();
        let got = pretty_lines("<iq id='abc' type='result'/>").unwrap();
        let d = diff_lines(&want, &got);
        assert!(d.iter().all(|l| l.kind == LineKind::Same), "{d:?}");
        assert!(d.iter().any(|l| l.text.contains("id='abc'")));
    }

    #[test]
    fn closest_prefers_the_stanza_missing_least() {
        let received = vec![
            "<presence from='b@y/r'/>".to_string(),
            "<message from='a@x/r1' type='chat'><body>no</body></message>".to_string(),
        ];
        let (i, d) = closest("<message type='chat'><body>yes</body></message>", &received).unwrap();
        assert_eq!(i, 1);
        assert_eq!(d.iter().filter(|l| l.kind == LineKind::Missing).count(), 1);
        assert!(closest("<message/>", &[]).is_none());
    }
}
