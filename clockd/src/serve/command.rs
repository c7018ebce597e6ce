//! Commands of the topics protocol, parsed from one line (see the README's "Running the
//! broker" for the session a telnet user sees).
//!
//! ```text
//! SUB topic                 subscribe; deliveries arrive as `UPDATED topic message`
//! UNSUB topic               unsubscribe
//! PUB topic message         publish (creates the topic on first use)
//! CREATE topic              create a topic explicitly
//! CLOCK on|off              also receive `CLOCK stamp` lines (the watermark)
//! STAMPS on|off             deliveries become `STAMPED stamp topic message`
//! PING                      answered by PONG
//! AUTH token                first command when the server runs with --token
//! QUIT | CLOSE              close the connection
//! ```
//!
//! Verbs are case-insensitive; a topic is one word (no spaces), at most
//! [`MAX_TOPIC_BYTES`] bytes; a message is the rest of the line after `PUB topic `, verbatim.

use std::fmt;

/// The longest topic name accepted.
pub const MAX_TOPIC_BYTES: usize = 1024;

/// One parsed command.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `SUB topic`
    Sub(&'a str),
    /// `UNSUB topic`
    Unsub(&'a str),
    /// `PUB topic message`
    Pub {
        /// Where it goes.
        topic: &'a str,
        /// Everything after `PUB topic `.
        message: &'a str,
        /// `topic message`: everything after `PUB `, what subscribers get after `UPDATED `.
        body: &'a str,
    },
    /// `CREATE topic`
    Create(&'a str),
    /// `CLOCK on|off`
    Clock(bool),
    /// `STAMPS on|off`
    Stamps(bool),
    /// `PING`
    Ping,
    /// `AUTH token`
    Auth(&'a str),
    /// `QUIT` or `CLOSE`
    Quit,
    /// An empty line (telnet users press enter): ignored.
    Empty,
}

/// Why a line is not a command; sent back as `ERR {self}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The verb is not one we know.
    Unknown(String),
    /// The verb needs arguments it did not get, or got too many.
    Usage(&'static str),
    /// A topic name that is empty (two spaces) or too long.
    BadTopic(&'static str),
    /// An option this server does not have yet.
    NotYet(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unknown(verb) => write!(f, "unknown command {verb:?}"),
            ParseError::Usage(usage) => write!(f, "usage: {usage}"),
            ParseError::BadTopic(why) => write!(f, "bad topic name: {why}"),
            ParseError::NotYet(what) => write!(f, "not supported yet: {what}"),
        }
    }
}

/// Parses one line.
pub fn parse(line: &str) -> Result<Command<'_>, ParseError> {
    if line.trim().is_empty() {
        return Ok(Command::Empty);
    }
    let (verb, rest) = match line.split_once(' ') {
        Some((verb, rest)) => (verb, Some(rest)),
        None => (line, None),
    };
    let verb_is = |name: &str| verb.eq_ignore_ascii_case(name);
    if verb_is("PUB") {
        let usage = ParseError::Usage("PUB topic message");
        let body = rest.ok_or(usage.clone())?;
        let (topic, message) = body.split_once(' ').ok_or(usage)?;
        return Ok(Command::Pub {
            topic: topic_name(topic)?,
            message,
            body,
        });
    }
    let args: Vec<&str> = rest.map(|r| r.split(' ').collect()).unwrap_or_default();
    if verb_is("SUB") {
        return match args.as_slice() {
            [topic] => Ok(Command::Sub(topic_name(topic)?)),
            [_, option, ..] if option.eq_ignore_ascii_case("FROM") => Err(ParseError::NotYet(
                "SUB topic FROM stamp (replay needs retention)",
            )),
            [_, option, ..] if option.eq_ignore_ascii_case("AS") => Err(ParseError::NotYet(
                "SUB topic AS name (durable subscriptions)",
            )),
            _ => Err(ParseError::Usage("SUB topic")),
        };
    }
    if verb_is("UNSUB") {
        return match args.as_slice() {
            [topic] => Ok(Command::Unsub(topic_name(topic)?)),
            _ => Err(ParseError::Usage("UNSUB topic")),
        };
    }
    if verb_is("CREATE") {
        return match args.as_slice() {
            [topic] => Ok(Command::Create(topic_name(topic)?)),
            [topic, ..] => {
                topic_name(topic)?;
                Err(ParseError::NotYet("CREATE options (ttl=, compact=)"))
            }
            _ => Err(ParseError::Usage("CREATE topic")),
        };
    }
    if verb_is("CLOCK") || verb_is("STAMPS") {
        let usage = if verb_is("CLOCK") {
            "CLOCK on|off"
        } else {
            "STAMPS on|off"
        };
        let on = match args.as_slice() {
            [switch] if switch.eq_ignore_ascii_case("on") => true,
            [switch] if switch.eq_ignore_ascii_case("off") => false,
            _ => return Err(ParseError::Usage(usage)),
        };
        return Ok(if verb_is("CLOCK") {
            Command::Clock(on)
        } else {
            Command::Stamps(on)
        });
    }
    if verb_is("COMMIT") {
        return Err(ParseError::NotYet("COMMIT (durable subscriptions)"));
    }
    if verb_is("AUTH") {
        return match rest {
            Some(token) if !token.is_empty() => Ok(Command::Auth(token)),
            _ => Err(ParseError::Usage("AUTH token")),
        };
    }
    let bare = |command| match rest {
        None => Ok(command),
        Some(_) => Err(ParseError::Usage("PING, QUIT and CLOSE take no arguments")),
    };
    if verb_is("PING") {
        return bare(Command::Ping);
    }
    if verb_is("QUIT") || verb_is("CLOSE") {
        return bare(Command::Quit);
    }
    Err(ParseError::Unknown(verb.chars().take(64).collect()))
}

/// Checks a topic name.
fn topic_name(topic: &str) -> Result<&str, ParseError> {
    if topic.is_empty() {
        return Err(ParseError::BadTopic("empty"));
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(ParseError::BadTopic("longer than 1024 bytes"));
    }
    Ok(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topics_commands_parse() {
        assert_eq!(parse("SUB mytopic"), Ok(Command::Sub("mytopic")));
        assert_eq!(
            parse("PUB mytopic a message"),
            Ok(Command::Pub {
                topic: "mytopic",
                message: "a message",
                body: "mytopic a message"
            })
        );
        assert_eq!(
            parse("pub t  two  spaces "),
            Ok(Command::Pub {
                topic: "t",
                message: " two  spaces ",
                body: "t  two  spaces "
            })
        );
        assert_eq!(parse("unsub t"), Ok(Command::Unsub("t")));
        assert_eq!(parse("CREATE t"), Ok(Command::Create("t")));
        assert_eq!(parse("CLOCK on"), Ok(Command::Clock(true)));
        assert_eq!(parse("stamps OFF"), Ok(Command::Stamps(false)));
        assert_eq!(parse("PING"), Ok(Command::Ping));
        assert_eq!(parse("CLOSE"), Ok(Command::Quit));
        assert_eq!(
            parse("AUTH s3cret token"),
            Ok(Command::Auth("s3cret token"))
        );
        assert_eq!(parse("   "), Ok(Command::Empty));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert_eq!(parse("SUB"), Err(ParseError::Usage("SUB topic")));
        assert_eq!(parse("SUB  t"), Err(ParseError::Usage("SUB topic")));
        assert_eq!(parse("SUB "), Err(ParseError::BadTopic("empty")));
        assert_eq!(parse("PUB t"), Err(ParseError::Usage("PUB topic message")));
        assert_eq!(parse("PUB  m"), Err(ParseError::BadTopic("empty")));
        assert_eq!(parse("CLOCK maybe"), Err(ParseError::Usage("CLOCK on|off")));
        assert_eq!(
            parse("FROB x"),
            Err(ParseError::Unknown("FROB".to_string()))
        );
        let long = format!("SUB {}", "t".repeat(MAX_TOPIC_BYTES + 1));
        assert!(matches!(parse(&long), Err(ParseError::BadTopic(_))));
        assert!(matches!(parse("SUB t FROM 5"), Err(ParseError::NotYet(_))));
        assert_eq!(
            parse("FROB x").unwrap_err().to_string(),
            "unknown command \"FROB\""
        );
    }
}
