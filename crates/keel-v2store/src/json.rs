//! JSON output byte-for-byte as Go's `encoding/json` writes it.
//!
//! serde_json's compact output already matches Go's field layout; the differences are in
//! string escaping: Go escapes `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026` (HTML
//! safety), U+2028 and U+2029 as `\u2028` / `\u2029`, and backspace / form feed as
//! `\u0008` / `\u000c` (the Go release etcd 3.4 is built with). This formatter does the same.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};

/// A compact formatter with Go's string escaping.
pub(crate) struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W>(&mut self, writer: &mut W, char_escape: CharEscape) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let s: &[u8] = match char_escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"\\/",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::Backspace => b"\\u0008",
            CharEscape::FormFeed => b"\\u000c",
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let bytes = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xf)],
                ];
                return writer.write_all(&bytes);
            }
        };
        writer.write_all(s)
    }
}

/// Serialises `value` into `out` with Go's escaping.
pub(crate) fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let mut ser = serde_json::Serializer::with_formatter(out, GoFormatter);
    value
        .serialize(&mut ser)
        .expect("serialising into a Vec cannot fail: our Serialize impls emit no errors");
}

/// Serialises `value` to a string with Go's escaping.
pub(crate) fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    write(&mut out, value);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        assert_eq!(
            to_string("<a>&\"\\\n\t\u{8}\u{c}\u{1}\u{2028}é"),
            r#""\u003ca\u003e\u0026\"\\\n\t\u0008\u000c\u0001\u2028é""#
        );
    }
}
