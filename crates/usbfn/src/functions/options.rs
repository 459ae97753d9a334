//! Options of the ready functions: `key=value` text, the same keys on the command line
//! (`--function KIND,key=value,...`) and in a device file's `[function]` table.

/// An option that cannot be set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// No function has this name.
    #[error("no built-in function is called {given:?} (the built-in functions: {known})")]
    Kind {
        /// What was given.
        given: String,
        /// The functions there are.
        known: &'static str,
    },
    /// The function has no option of this name.
    #[error("{function} has no option {key:?} ({known})")]
    Unknown {
        /// The function.
        function: &'static str,
        /// The option given.
        key: String,
        /// The options it has.
        known: &'static str,
    },
    /// The value is not one the option accepts.
    #[error("option {key}={value:?}: {allowed} accepted")]
    Value {
        /// The option.
        key: String,
        /// What was given.
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
}

/// A function's options, set one key at a time from text.
pub trait FunctionOptions {
    /// Set `key` from its text form.
    fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError>;

    /// Apply a comma-separated `key=value` list (the part after `kind,`). A bare `key`
    /// (no `=`) is the flag `key=true`, so `msc,image=a.img,ro` reads as expected.
    fn apply_list(&mut self, list: &str) -> Result<(), OptionError> {
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once('=') {
                Some((key, value)) => self.set(key.trim(), value)?,
                None => self.set(item, "true")?,
            }
        }
        Ok(())
    }
}

/// A number in `lo..=hi`, or [`OptionError::Value`] naming `allowed`.
pub fn number<T: std::str::FromStr + PartialOrd>(
    key: &str,
    value: &str,
    lo: T,
    hi: T,
    allowed: &'static str,
) -> Result<T, OptionError> {
    value
        .trim()
        .parse::<T>()
        .ok()
        .filter(|v| *v >= lo && *v <= hi)
        .ok_or_else(|| OptionError::Value {
            key: key.to_owned(),
            value: value.to_owned(),
            allowed,
        })
}

/// A flag: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
pub fn flag(key: &str, value: &str) -> Result<bool, OptionError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(OptionError::Value {
            key: key.to_owned(),
            value: value.to_owned(),
            allowed: "true or false",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Two {
        n: u8,
        on: bool,
    }

    impl FunctionOptions for Two {
        fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
            match key {
                "n" => self.n = number(key, value, 1, 9, "1..=9")?,
                "on" => self.on = flag(key, value)?,
                _ => {
                    return Err(OptionError::Unknown {
                        function: "two",
                        key: key.into(),
                        known: "n, on",
                    });
                }
            }
            Ok(())
        }
    }

    #[test]
    fn lists_flags_and_errors() {
        let mut t = Two::default();
        t.apply_list(" n=3 , on ").expect("valid");
        assert_eq!((t.n, t.on), (3, true));
        t.apply_list("on=off").expect("valid");
        assert!(!t.on);
        assert_eq!(
            t.apply_list("n=10").expect_err("range").to_string(),
            "option n=\"10\": 1..=9 accepted"
        );
        assert!(matches!(
            t.apply_list("x=1"),
            Err(OptionError::Unknown { key, .. }) if key == "x"
        ));
        assert!(t.apply_list("on=maybe").is_err());
    }
}
