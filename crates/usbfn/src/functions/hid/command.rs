//! The HID function's device-side commands, one per line of its `input=` FIFO:
//!
//! * `report HEX` — one input report (hex digits, spaces allowed between bytes);
//! * `type TEXT` — keyboard only: a press and a release report per character, US layout,
//!   left shift where the character needs it (letters, digits, space, Enter as `\n`, Tab,
//!   and the US punctuation keys).
//!
//! Lines come from a file anyone may write: typed errors, bounded lengths, no panics.

/// The longest line accepted (the reader drops longer ones with [`CommandError::TooLong`]).
pub const MAX_LINE: usize = 4096;

/// One command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `report HEX`.
    Report(Vec<u8>),
    /// `type TEXT`.
    Type(String),
}

/// A line that is not a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Longer than [`MAX_LINE`].
    #[error("line longer than {MAX_LINE} bytes (MAX_LINE)")]
    TooLong,
    /// Not UTF-8.
    #[error("line is not UTF-8")]
    NotUtf8,
    /// Not `report` or `type`.
    #[error("unknown command {0:?} (report HEX, type TEXT)")]
    Unknown(String),
    /// Bad hex in `report`.
    #[error("report: {0}")]
    Hex(&'static str),
    /// The report is empty or longer than the function's reports.
    #[error("report of {got} bytes: this function's input reports are 1..={max} bytes")]
    ReportLength {
        /// Bytes given.
        got: usize,
        /// The function's input report length.
        max: usize,
    },
    /// `type` on a function that is not a keyboard.
    #[error("type: only hid-keyboard types text")]
    NotKeyboard,
    /// A character the US layout has no key for.
    #[error("type: no US key for {0:?}")]
    NoKey(char),
}

/// Parse one line (without its newline; a trailing `\r` is ignored).
pub fn parse_line(line: &[u8], max_report: usize) -> Result<Command, CommandError> {
    if line.len() > MAX_LINE {
        return Err(CommandError::TooLong);
    }
    let line = std::str::from_utf8(line).map_err(|_| CommandError::NotUtf8)?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    match word {
        "report" => {
            let bytes = parse_hex(rest)?;
            if bytes.is_empty() || bytes.len() > max_report {
                return Err(CommandError::ReportLength {
                    got: bytes.len(),
                    max: max_report,
                });
            }
            Ok(Command::Report(bytes))
        }
        "type" => Ok(Command::Type(rest.to_owned())),
        other => Err(CommandError::Unknown(other.chars().take(32).collect())),
    }
}

fn parse_hex(text: &str) -> Result<Vec<u8>, CommandError> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(CommandError::Hex("odd number of hex digits"));
    }
    digits
        .chunks_exact(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).map_err(|_| CommandError::Hex("not hex"))?;
            u8::from_str_radix(s, 16).map_err(|_| CommandError::Hex("not hex"))
        })
        .collect()
}

/// Left shift in the modifier byte.
pub const LEFT_SHIFT: u8 = 0x02;

/// The (modifiers, usage) of a character on a US keyboard.
pub fn us_key(c: char) -> Option<(u8, u8)> {
    let plain = |u| Some((0, u));
    let shift = |u| Some((LEFT_SHIFT, u));
    let offset = |c: char, base: char| u8::try_from(u32::from(c) - u32::from(base)).ok();
    match c {
        'a'..='z' => plain(0x04 + offset(c, 'a')?),
        'A'..='Z' => shift(0x04 + offset(c, 'A')?),
        '1'..='9' => plain(0x1e + offset(c, '1')?),
        '0' => plain(0x27),
        '\n' => plain(0x28),
        '\t' => plain(0x2b),
        ' ' => plain(0x2c),
        '!' => shift(0x1e),
        '@' => shift(0x1f),
        '#' => shift(0x20),
        '$' => shift(0x21),
        '%' => shift(0x22),
        '^' => shift(0x23),
        '&' => shift(0x24),
        '*' => shift(0x25),
        '(' => shift(0x26),
        ')' => shift(0x27),
        '-' => plain(0x2d),
        '_' => shift(0x2d),
        '=' => plain(0x2e),
        '+' => shift(0x2e),
        '[' => plain(0x2f),
        '{' => shift(0x2f),
        ']' => plain(0x30),
        '}' => shift(0x30),
        '\\' => plain(0x31),
        '|' => shift(0x31),
        ';' => plain(0x33),
        ':' => shift(0x33),
        '\'' => plain(0x34),
        '"' => shift(0x34),
        '`' => plain(0x35),
        '~' => shift(0x35),
        ',' => plain(0x36),
        '<' => shift(0x36),
        '.' => plain(0x37),
        '>' => shift(0x37),
        '/' => plain(0x38),
        '?' => shift(0x38),
        _ => None,
    }
}

/// The boot-keyboard reports that type `text`: press, release, per character. Checked whole
/// before anything is sent (a line with a character without a key types nothing).
pub fn type_reports(text: &str) -> Result<Vec<[u8; 8]>, CommandError> {
    let mut reports = Vec::with_capacity(text.len() * 2);
    for c in text.chars() {
        let (modifiers, usage) = us_key(c).ok_or(CommandError::NoKey(c))?;
        reports.push([modifiers, 0, usage, 0, 0, 0, 0, 0]);
        reports.push([0; 8]);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(
            parse_line(b"report 00 00 04 00 00 00 00 00", 8),
            Ok(Command::Report(vec![0, 0, 4, 0, 0, 0, 0, 0]))
        );
        assert_eq!(
            parse_line(b"report 0102ff\r", 8),
            Ok(Command::Report(vec![1, 2, 0xff]))
        );
        assert_eq!(
            parse_line(b"type hello world", 8),
            Ok(Command::Type("hello world".into()))
        );
        assert_eq!(
            parse_line(b"report 0", 8),
            Err(CommandError::Hex("odd number of hex digits"))
        );
        assert_eq!(
            parse_line(b"report zz", 8),
            Err(CommandError::Hex("not hex"))
        );
        assert_eq!(
            parse_line(b"report 000000000000000000", 8),
            Err(CommandError::ReportLength { got: 9, max: 8 })
        );
        assert_eq!(
            parse_line(b"report", 8),
            Err(CommandError::ReportLength { got: 0, max: 8 })
        );
        assert_eq!(
            parse_line(b"press a", 8),
            Err(CommandError::Unknown("press".into()))
        );
        assert_eq!(parse_line(&[0xff], 8), Err(CommandError::NotUtf8));
        assert_eq!(
            parse_line(&[b'x'; MAX_LINE + 1], 8),
            Err(CommandError::TooLong)
        );
    }

    #[test]
    fn types_hello_as_the_issue_says() {
        let r = type_reports("hello").expect("keys");
        let usages: Vec<u8> = r.iter().step_by(2).map(|p| p[2]).collect();
        assert_eq!(usages, [0x0b, 0x08, 0x0f, 0x0f, 0x12]);
        assert!(r.iter().skip(1).step_by(2).all(|p| *p == [0; 8]));
        let r = type_reports("A!0\n").expect("keys");
        assert_eq!(r[0], [LEFT_SHIFT, 0, 0x04, 0, 0, 0, 0, 0]);
        assert_eq!(r[2], [LEFT_SHIFT, 0, 0x1e, 0, 0, 0, 0, 0]);
        assert_eq!(r[4][2], 0x27);
        assert_eq!(r[6][2], 0x28);
        assert_eq!(type_reports("é"), Err(CommandError::NoKey('é')));
    }
}
