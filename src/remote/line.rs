//! The lines a `clockd serve` broker sends a subscriber that turned `STAMPS on` and
//! `CLOCK on` (the topics protocol; see clockd's README section).

/// One line from the broker.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// `STAMPED stamp topic message`.
    Stamped {
        stamp: usize,
        topic: &'a str,
        body: &'a str,
    },
    /// `CLOCK stamp`: everything for this connection up to `stamp` was delivered.
    Clock(usize),
    /// `PONG`.
    Pong,
    /// `TIME stamp`: the broker's clock.
    Time(usize),
    /// `ERR reason`.
    Err(&'a str),
    /// Anything else (an `UPDATED` line would mean `STAMPS on` was not taken).
    Other(&'a str),
}

/// Parses one line, without its `\n` or `\r\n`.
pub(crate) fn parse(line: &str) -> Line<'_> {
    if let Some(rest) = line.strip_prefix("STAMPED ") {
        let mut fields = rest.splitn(3, ' ');
        if let (Some(stamp), Some(topic)) = (fields.next(), fields.next()) {
            if let Ok(stamp) = stamp.parse() {
                let body = fields.next().unwrap_or("");
                return Line::Stamped { stamp, topic, body };
            }
        }
        return Line::Other(line);
    }
    if let Some(stamp) = line.strip_prefix("CLOCK ") {
        return match stamp.parse() {
            Ok(stamp) => Line::Clock(stamp),
            Err(_) => Line::Other(line),
        };
    }
    if let Some(stamp) = line.strip_prefix("TIME ") {
        return match stamp.parse() {
            Ok(stamp) => Line::Time(stamp),
            Err(_) => Line::Other(line),
        };
    }
    if line == "PONG" {
        return Line::Pong;
    }
    if let Some(reason) = line.strip_prefix("ERR ") {
        return Line::Err(reason);
    }
    Line::Other(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse() {
        assert_eq!(
            parse("STAMPED 42 prices EURUSD 1.09"),
            Line::Stamped {
                stamp: 42,
                topic: "prices",
                body: "EURUSD 1.09"
            }
        );
        assert_eq!(
            parse("STAMPED 7 t"),
            Line::Stamped {
                stamp: 7,
                topic: "t",
                body: ""
            }
        );
        assert_eq!(parse("CLOCK 9"), Line::Clock(9));
        assert_eq!(parse("PONG"), Line::Pong);
        assert_eq!(parse("TIME 12"), Line::Time(12));
        assert_eq!(parse("ERR slow consumer"), Line::Err("slow consumer"));
        assert_eq!(parse("STAMPED x t m"), Line::Other("STAMPED x t m"));
        assert_eq!(parse("CLOCK -1"), Line::Other("CLOCK -1"));
        assert_eq!(parse("UPDATED t m"), Line::Other("UPDATED t m"));
    }
}
