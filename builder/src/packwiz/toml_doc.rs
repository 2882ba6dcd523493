//! Reading one packwiz TOML file into diagnostics-friendly pieces: UTF-8 text,
//! a spanned document (syntax errors as `file:line:column`), unknown keys
//! with the nearest known name, and typed values whose errors name a line.

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::{Diagnostic, Severity};

/// The keys a table may hold; `Any` for open tables and for leaves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Keys {
    Any,
    Only(&'static [(&'static str, Keys)]),
    /// A field older tools wrote and nothing reads any more: reported as a
    /// warning saying what it was, and ignored.
    Legacy(&'static str),
}

/// The line starts of a text, for turning byte offsets into lines in
/// `O(log lines)`: an index of thousands of entries asks for each entry's
/// line, and counting newlines from the start each time is quadratic.
#[derive(Debug)]
pub(crate) struct Lines<'a> {
    text: &'a str,
    /// Byte offset where each line after the first starts.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let starts = text
            .bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        Self { text, starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|s| *s <= offset);
        let start = if line == 0 { 0 } else { self.starts[line - 1] };
        (line + 1, self.text[start..offset].chars().count() + 1)
    }

    /// 1-based line of a byte offset.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.line_col(offset).0
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    Lines::new(text).line_col(offset)
}

/// 1-based line of a byte offset (see [`Lines`] for many lookups in one text).
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    line_col(text, offset).0
}

/// Bytes as text: UTF-8, with a leading byte-order mark dropped.
pub(crate) fn text<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, Diagnostic> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col(&String::from_utf8_lossy(bytes), e.valid_up_to());
        Diagnostic {
            column: Some(column),
            ..Diagnostic::error(file, Some(line), "is not UTF-8 text")
        }
    })
}

fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> Diagnostic {
    let at = e.span().map(|s| line_col(text, s.start));
    Diagnostic {
        column: at.map(|(_, column)| column),
        ..Diagnostic::error(file, at.map(|(line, _)| line), e.message().trim())
    }
}

/// Parses a TOML document; a syntax error names its line and column.
pub(crate) fn parse<'i>(file: &str, text: &'i str) -> Result<Spanned<DeTable<'i>>, Diagnostic> {
    DeTable::parse(text).map_err(|e| toml_error(file, text, &e))
}

/// Deserialises a parsed document into `T`; a type error names its line.
pub(crate) fn typed<T: DeserializeOwned>(
    file: &str,
    text: &str,
    doc: Spanned<DeTable<'_>>,
) -> Result<T, Diagnostic> {
    T::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| toml_error(file, text, &e))
}

/// The known key closest to `key`, if any is close enough to be a likely typo.
pub(crate) fn nearest<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::normalized_damerau_levenshtein(key, k), k))
        .filter(|(score, _)| *score >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Reports keys of `table` (and its sub-tables, recursively) that `keys` does not allow.
pub(crate) fn unknown_keys(
    file: &str,
    text: &str,
    table: &DeTable<'_>,
    keys: Keys,
    severity: Severity,
    out: &mut Vec<Diagnostic>,
) {
    let mut found = Vec::new();
    let lines = Lines::new(text);
    walk(file, &lines, table, keys, "", severity, &mut found);
    found.sort_by_key(|d| d.line);
    out.extend(found);
}

fn walk(
    file: &str,
    lines: &Lines<'_>,
    table: &DeTable<'_>,
    keys: Keys,
    prefix: &str,
    severity: Severity,
    out: &mut Vec<Diagnostic>,
) {
    let Keys::Only(allowed) = keys else { return };
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        let Some((_, sub)) = allowed.iter().find(|(k, _)| *k == name) else {
            let line = lines.line_of(key.span().start);
            let hint = match nearest(name, allowed.iter().map(|(k, _)| *k)) {
                Some(k) => format!("; did you mean `{prefix}{k}`?"),
                None => {
                    let list: Vec<String> = allowed.iter().map(|(k, _)| format!("`{k}`")).collect();
                    format!("; expected one of {}", list.join(", "))
                }
            };
            // In a foreign format an unknown field is what its own tools
            // make of it: ignored. Say so.
            let ignored = if severity == Severity::Warning {
                " is ignored"
            } else {
                ""
            };
            out.push(Diagnostic {
                severity,
                ..Diagnostic::error(
                    file,
                    Some(line),
                    format!("unknown field `{prefix}{name}`{ignored}{hint}"),
                )
            });
            continue;
        };
        if let Keys::Legacy(what) = sub {
            let line = lines.line_of(key.span().start);
            out.push(Diagnostic::warning(
                file,
                Some(line),
                format!("`{prefix}{name}` {what}; ignored"),
            ));
            continue;
        }
        let sub_prefix = format!("{prefix}{name}.");
        match value.get_ref() {
            DeValue::Table(t) => walk(file, lines, t, *sub, &sub_prefix, severity, out),
            DeValue::Array(items) => {
                for item in items.iter() {
                    if let DeValue::Table(t) = item.get_ref() {
                        walk(file, lines, t, *sub, &sub_prefix, severity, out);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: Keys = Keys::Only(&[
        ("name", Keys::Any),
        ("filename", Keys::Any),
        (
            "download",
            Keys::Only(&[("url", Keys::Any), ("hash-format", Keys::Any)]),
        ),
        ("options", Keys::Any),
    ]);

    fn unknown(text: &str) -> Vec<String> {
        let doc = parse("f.toml", text).expect("valid toml");
        let mut out = Vec::new();
        unknown_keys("f.toml", text, doc.get_ref(), KEYS, Severity::Error, &mut out);
        out.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn names_unknown_keys_with_nearest() {
        let got = unknown(
            "name = \"a\"\r\nfilname = \"b\"\r\n[download]\r\nhash-fromat = \"x\"\r\nzzz = 1\n[options]\nanything = 1\n",
        );
        assert_eq!(
            got,
            [
                "f.toml:2: error: unknown field `filname`; did you mean `filename`?",
                "f.toml:4: error: unknown field `download.hash-fromat`; did you mean `download.hash-format`?",
                "f.toml:5: error: unknown field `download.zzz`; expected one of `url`, `hash-format`",
            ]
        );
    }

    #[test]
    fn warnings_say_ignored_and_legacy_fields_say_what_they_were() {
        const LEGACY: Keys = Keys::Only(&[
            ("name", Keys::Any),
            ("old", Keys::Legacy("was written by old versions")),
        ]);
        let text = "name = \"a\"\nnmae = 1\nold = true\n";
        let doc = parse("f.toml", text).expect("valid toml");
        let mut out = Vec::new();
        unknown_keys("f.toml", text, doc.get_ref(), LEGACY, Severity::Warning, &mut out);
        let got: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "f.toml:2: warning: unknown field `nmae` is ignored; did you mean `name`?",
                "f.toml:3: warning: `old` was written by old versions; ignored",
            ]
        );
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = parse("f.toml", "a = 1\r\nb = \r\n").expect_err("invalid");
        assert_eq!(e.line, Some(2));
        assert!(e.column.is_some());
        assert!(e.to_string().starts_with("f.toml:2:"), "{e}");
    }

    #[test]
    fn text_strips_bom_and_rejects_invalid_utf8() {
        assert_eq!(text("f", b"\xEF\xBB\xBFa = 1").expect("utf8"), "a = 1");
        let e = text("f", b"a = 1\nb = \"\xFF\"").expect_err("not utf8");
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn line_col_is_one_based() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 2), (1, 3));
        assert_eq!(line_col("ab\ncd", 3), (2, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab\ncd", 99), (2, 3));
        assert_eq!(line_col("é\r\nx", 1), (1, 1), "inside a character");
        let lines = Lines::new("a\n\nb\n");
        assert_eq!(
            (
                lines.line_of(0),
                lines.line_of(2),
                lines.line_of(3),
                lines.line_of(5)
            ),
            (1, 2, 3, 4)
        );
    }
}
