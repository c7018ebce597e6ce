//! Commands of the topics protocol, parsed from one line (see the README's "Running the
//! broker" for the session a telnet user sees).
//!
//! ```text
//! SUB topic                 subscribe; deliveries arrive as `UPDATED topic message`
//! SUB topic FROM stamp      replay what the topic retains from `stamp` on, then live (--data)
//! SUB topic AS name         a durable subscription: resume after its last COMMIT (--data)
//! COMMIT topic stamp        the durable subscription to `topic` processed up to `stamp`
//! UNSUB topic               unsubscribe
//! PUB topic message         publish (creates the topic on first use)
//! CREATE topic [ttl=SECS] [compact=SECS]
//!                           create a topic explicitly, with retention and compaction
//! CLOCK on|off              also receive `CLOCK stamp` lines (the watermark)
//! STAMPS on|off             deliveries become `STAMPED stamp topic message`
//! PING                      answered by PONG
//! TIME                      answered by `TIME stamp`: the broker's clock now
//! AUTH token                first command when the server runs with --token
//! QUIT | CLOSE              close the connection
//! ```
//!
//! Verbs are case-insensitive; a topic is one word (no spaces), at most
//! [`MAX_TOPIC_BYTES`] bytes; a message is the rest of the line after `PUB topic `, verbatim.

use std::fmt;

/// The longest topic name accepted.
pub const MAX_TOPIC_BYTES: usize = 1024;

/// The longest durable subscription name accepted.
pub const MAX_NAME_BYTES: usize = 256;

/// Where a subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start<'a> {
    /// `SUB topic`: with what is published from now on.
    Live,
    /// `SUB topic FROM stamp`: with the retained messages stamped `stamp` or later.
    From(usize),
    /// `SUB topic AS name`: after the durable subscription `name`'s last commit.
    As(&'a str),
}

/// A topic's retention and compaction (`CREATE topic ttl=SECS compact=SECS`); `None` keeps
/// everything the journal keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopicOptions {
    /// Messages older than this many seconds are not replayed.
    pub ttl: Option<u64>,
    /// Of the messages with the same key published in one window of this many seconds, only
    /// the newest is replayed. A message's key is its first word.
    pub compact: Option<u64>,
}

/// One parsed command.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `SUB topic [FROM stamp | AS name]`
    Sub {
        /// The topic.
        topic: &'a str,
        /// Where the subscription starts.
        start: Start<'a>,
    },
    /// `COMMIT topic stamp`
    Commit {
        /// The topic of a durable subscription of this connection.
        topic: &'a str,
        /// Everything up to it is processed.
        stamp: usize,
    },
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
    /// `CREATE topic [ttl=SECS] [compact=SECS]`
    Create {
        /// The topic.
        topic: &'a str,
        /// Its retention and compaction.
        options: TopicOptions,
    },
    /// `CLOCK on|off`
    Clock(bool),
    /// `STAMPS on|off`
    Stamps(bool),
    /// `PING`
    Ping,
    /// `TIME`
    Time,
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
    /// A number, an option or a name that is not what the command takes.
    BadArgument(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unknown(verb) => write!(f, "unknown command {verb:?}"),
            ParseError::Usage(usage) => write!(f, "usage: {usage}"),
            ParseError::BadTopic(why) => write!(f, "bad topic name: {why}"),
            ParseError::BadArgument(why) => f.write_str(why),
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
        let usage = ParseError::Usage("SUB topic [FROM stamp | AS name]");
        let (topic, start) = match args.as_slice() {
            [topic] => (topic, Start::Live),
            [topic, option, stamp] if option.eq_ignore_ascii_case("FROM") => {
                (topic, Start::From(number(stamp, "stamp")?))
            }
            [topic, option, name] if option.eq_ignore_ascii_case("AS") => {
                (topic, Start::As(subscription_name(name)?))
            }
            _ => return Err(usage),
        };
        let topic = topic_name(topic)?;
        return Ok(Command::Sub { topic, start });
    }
    if verb_is("COMMIT") {
        return match args.as_slice() {
            [topic, stamp] => Ok(Command::Commit {
                topic: topic_name(topic)?,
                stamp: number(stamp, "stamp")?,
            }),
            _ => Err(ParseError::Usage("COMMIT topic stamp")),
        };
    }
    if verb_is("UNSUB") {
        return match args.as_slice() {
            [topic] => Ok(Command::Unsub(topic_name(topic)?)),
            _ => Err(ParseError::Usage("UNSUB topic")),
        };
    }
    if verb_is("CREATE") {
        let Some((topic, options)) = args.split_first() else {
            return Err(ParseError::Usage("CREATE topic [ttl=SECS] [compact=SECS]"));
        };
        return Ok(Command::Create {
            topic: topic_name(topic)?,
            options: topic_options(options)?,
        });
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
    if verb_is("AUTH") {
        return match rest {
            Some(token) if !token.is_empty() => Ok(Command::Auth(token)),
            _ => Err(ParseError::Usage("AUTH token")),
        };
    }
    let bare = |command| match rest {
        None => Ok(command),
        Some(_) => Err(ParseError::Usage(
            "PING, TIME, QUIT and CLOSE take no arguments",
        )),
    };
    if verb_is("PING") {
        return bare(Command::Ping);
    }
    if verb_is("TIME") {
        return bare(Command::Time);
    }
    if verb_is("QUIT") || verb_is("CLOSE") {
        return bare(Command::Quit);
    }
    Err(ParseError::Unknown(verb.chars().take(64).collect()))
}

/// A stamp or a number of seconds.
fn number(text: &str, what: &str) -> Result<usize, ParseError> {
    text.parse()
        .map_err(|_| ParseError::BadArgument(format!("{what} {text:?} is not a number")))
}

/// `ttl=SECS` and `compact=SECS`, each at most once; 0 means none.
fn topic_options(words: &[&str]) -> Result<TopicOptions, ParseError> {
    let mut options = TopicOptions::default();
    for word in words {
        let (key, value) = word.split_once('=').unwrap_or((word, ""));
        let slot = if key.eq_ignore_ascii_case("ttl") {
            &mut options.ttl
        } else if key.eq_ignore_ascii_case("compact") {
            &mut options.compact
        } else {
            let word: String = word.chars().take(64).collect();
            return Err(ParseError::BadArgument(format!(
                "unknown option {word:?}: CREATE takes ttl=SECS and compact=SECS"
            )));
        };
        if slot.is_some() {
            return Err(ParseError::BadArgument(format!("{key} given twice")));
        }
        let seconds = number(value, key)?;
        *slot = Some(seconds as u64).filter(|&s| s > 0);
    }
    Ok(options)
}

/// Checks a durable subscription's name.
fn subscription_name(name: &str) -> Result<&str, ParseError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(ParseError::BadArgument(format!(
            "a subscription name is 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    Ok(name)
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
        let sub = |topic, start| Ok(Command::Sub { topic, start });
        assert_eq!(parse("SUB mytopic"), sub("mytopic", Start::Live));
        assert_eq!(parse("SUB t FROM 12"), sub("t", Start::From(12)));
        assert_eq!(parse("sub t as reports"), sub("t", Start::As("reports")));
        assert_eq!(
            parse("COMMIT t 40"),
            Ok(Command::Commit {
                topic: "t",
                stamp: 40
            })
        );
        assert_eq!(
            parse("CREATE t ttl=60 compact=5"),
            Ok(Command::Create {
                topic: "t",
                options: TopicOptions {
                    ttl: Some(60),
                    compact: Some(5)
                }
            })
        );
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
        assert_eq!(
            parse("CREATE t"),
            Ok(Command::Create {
                topic: "t",
                options: TopicOptions::default()
            })
        );
        assert_eq!(parse("CLOCK on"), Ok(Command::Clock(true)));
        assert_eq!(parse("stamps OFF"), Ok(Command::Stamps(false)));
        assert_eq!(parse("PING"), Ok(Command::Ping));
        assert_eq!(parse("time"), Ok(Command::Time));
        assert!(parse("TIME now").is_err());
        assert_eq!(parse("CLOSE"), Ok(Command::Quit));
        assert_eq!(
            parse("AUTH s3cret token"),
            Ok(Command::Auth("s3cret token"))
        );
        assert_eq!(parse("   "), Ok(Command::Empty));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let sub_usage = Err(ParseError::Usage("SUB topic [FROM stamp | AS name]"));
        assert_eq!(parse("SUB"), sub_usage);
        assert_eq!(parse("SUB  t"), sub_usage);
        assert_eq!(parse("SUB t FROM"), sub_usage);
        assert_eq!(parse("SUB t SINCE 4"), sub_usage);
        assert!(matches!(
            parse("SUB t FROM -1"),
            Err(ParseError::BadArgument(_))
        ));
        assert!(matches!(
            parse("COMMIT t x"),
            Err(ParseError::BadArgument(_))
        ));
        assert!(matches!(
            parse("CREATE t ttl=x"),
            Err(ParseError::BadArgument(_))
        ));
        assert!(matches!(
            parse("CREATE t ttl=1 ttl=2"),
            Err(ParseError::BadArgument(_))
        ));
        assert!(matches!(
            parse("CREATE t size=3"),
            Err(ParseError::BadArgument(_))
        ));
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
        assert_eq!(
            parse("FROB x").unwrap_err().to_string(),
            "unknown command \"FROB\""
        );
    }
}
