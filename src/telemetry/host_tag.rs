//! Puts the configured host name on every log line, so lines gathered from several sidecars
//! behind one FreeSWITCH still say which box wrote them. It works on the finished line
//! rather than as a span: tasks spawned outside a span would otherwise lose it.

use std::io::{self, Write};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `... message fields host=<name>`: appended, so tools that match a line from its start
    /// (the fail2ban filter) see what they always saw.
    Text,
    /// `{"host":"<name>",...}`.
    Json,
}

pub struct HostTagged<M> {
    inner: M,
    /// What goes in, ready made: ` host=<name>` or `{"host":"<name>",`.
    tag: String,
    shape: Shape,
}

impl<M> HostTagged<M> {
    /// `host` is a validated host name: letters, digits, `.`, `-`, `_`, nothing to escape.
    pub fn new(inner: M, host: &str, shape: Shape) -> HostTagged<M> {
        let tag = match shape {
            Shape::Text => format!(" host={host}"),
            Shape::Json => format!("{{\"host\":\"{host}\","),
        };
        HostTagged { inner, tag, shape }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for HostTagged<M> {
    type Writer = TaggedWriter<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        TaggedWriter {
            inner: self.inner.make_writer(),
            tag: &self.tag,
            shape: self.shape,
        }
    }
}

pub struct TaggedWriter<'a, W> {
    inner: W,
    tag: &'a str,
    shape: Shape,
}

impl<W: Write> Write for TaggedWriter<'_, W> {
    /// The formatter hands over one whole line per event in one call.
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut out = Vec::with_capacity(line.len() + self.tag.len());
        match self.shape {
            Shape::Text => {
                let body = line.strip_suffix(b"\n").unwrap_or(line);
                out.extend_from_slice(body);
                out.extend_from_slice(self.tag.as_bytes());
                out.push(b'\n');
            }
            Shape::Json => match line.strip_prefix(b"{") {
                Some(rest) => {
                    out.extend_from_slice(self.tag.as_bytes());
                    out.extend_from_slice(rest);
                }
                None => out.extend_from_slice(line),
            },
        }
        self.inner.write_all(&out)?;
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn tagged(shape: Shape, line: &str) -> String {
        let sink = Sink::default();
        let seen = sink.0.clone();
        let make = HostTagged::new(move || sink.clone(), "box-a", shape);
        make.make_writer().write_all(line.as_bytes()).unwrap();
        let bytes = seen.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_text_line_ends_with_the_host() {
        assert_eq!(
            tagged(
                Shape::Text,
                "2026-12-04T22:00:00Z  INFO call started interface=i1\n"
            ),
            "2026-12-04T22:00:00Z  INFO call started interface=i1 host=box-a\n"
        );
    }

    #[test]
    fn a_json_line_starts_with_the_host_and_stays_json() {
        let line = tagged(Shape::Json, "{\"level\":\"INFO\",\"message\":\"hi\"}\n");
        let value: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(value["host"], "box-a");
        assert_eq!(value["message"], "hi");
    }
}
