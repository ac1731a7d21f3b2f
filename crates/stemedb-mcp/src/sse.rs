//! A bounded reader of Server-Sent Events (the node's winner feed): bytes in, whole events out.
//!
//! Only `event` and `data` fields matter here; comments (the feed's keep-alives), `id` and
//! `retry` are skipped. A line or an event longer than [`EVENT_BYTES_MAX`] is an error, not a
//! growing buffer.

/// Most bytes of one pending line or event: a winner event is about 200 bytes.
const EVENT_BYTES_MAX: usize = 64 * 1024;

/// One event: its name (`message` when unnamed) and its data lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event` field.
    pub name: String,
    /// The `data` field(s).
    pub data: String,
}

/// An event stream that broke the bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the winner feed sent a line or event longer than {EVENT_BYTES_MAX} bytes")]
pub(crate) struct SseTooLong;

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    line: Vec<u8>,
    name: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// Feeds a chunk; returns the events it completed, in order.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseTooLong> {
        let mut events = Vec::new();
        for &byte in chunk {
            if byte != b'\n' {
                if self.line.len() >= EVENT_BYTES_MAX {
                    return Err(SseTooLong);
                }
                self.line.push(byte);
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(event) = self.line_done(&String::from_utf8_lossy(&line))? {
                events.push(event);
            }
        }
        Ok(events)
    }

    fn line_done(&mut self, line: &str) -> Result<Option<SseEvent>, SseTooLong> {
        if line.is_empty() {
            let name = std::mem::take(&mut self.name);
            let data = std::mem::take(&mut self.data);
            if !std::mem::take(&mut self.has_data) {
                return Ok(None);
            }
            let name = if name.is_empty() {
                "message".to_owned()
            } else {
                name
            };
            return Ok(Some(SseEvent { name, data }));
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => value.clone_into(&mut self.name),
            "data" => {
                if self.data.len() + value.len() + 1 > EVENT_BYTES_MAX {
                    return Err(SseTooLong);
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let stream = b"event: current\ndata: {\"new\":null}\n\n: keep-alive\n\nevent: winner\r\ndata: {\"old\":null,\r\ndata: \"new\":\"aa\"}\r\n\r\n";
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for chunk in stream.chunks(7) {
            events.extend(parser.push(chunk).unwrap_or_default());
        }
        assert_eq!(
            events,
            vec![
                SseEvent {
                    name: "current".into(),
                    data: "{\"new\":null}".into()
                },
                SseEvent {
                    name: "winner".into(),
                    data: "{\"old\":null,\n\"new\":\"aa\"}".into()
                },
            ]
        );
    }

    #[test]
    fn endless_line_is_refused() {
        let mut parser = SseParser::default();
        let long = vec![b'x'; EVENT_BYTES_MAX + 1];
        assert_eq!(parser.push(&long), Err(SseTooLong));
    }
}
