//! The canonical spelling of a rule: what `--check` and debug lines show.

use super::{Action, Direction, Rule};
use crate::timers::UserTimeout;
use std::fmt;

/// The canonical spelling: what `--check` and debug lines show.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut separator = |f: &mut fmt::Formatter<'_>| {
            let text = if first { "" } else { "," };
            first = false;
            f.write_str(text)
        };
        if let Some(direction) = self.direction {
            separator(f)?;
            let name = if direction == Direction::Out {
                "out"
            } else {
                "in"
            };
            write!(f, "dir={name}")?;
        }
        if let Some(network) = self.network {
            separator(f)?;
            write!(f, "net={network}")?;
        }
        if let Some((low, high)) = self.ports {
            separator(f)?;
            if low == high {
                write!(f, "port={low}")?;
            } else {
                write!(f, "port={low}-{high}")?;
            }
        }
        if first {
            f.write_str("*")?;
        }
        f.write_str(":")?;
        match self.action {
            Action::Off => f.write_str("off")?,
            Action::On => f.write_str("on")?,
            Action::Timers(timers) => {
                let mut items = 0;
                let mut item =
                    |f: &mut fmt::Formatter<'_>, key: &str, value: fmt::Arguments<'_>| {
                        let comma = if items == 0 { "" } else { "," };
                        items += 1;
                        write!(f, "{comma}{key}={value}")
                    };
                if let Some(idle) = timers.idle_secs {
                    item(f, "idle", format_args!("{idle}"))?;
                }
                if let Some(interval) = timers.interval_secs {
                    item(f, "intvl", format_args!("{interval}"))?;
                }
                if let Some(count) = timers.count {
                    item(f, "cnt", format_args!("{count}"))?;
                }
                match timers.user_timeout {
                    Some(UserTimeout::Millis(ms)) => item(f, "user_timeout", format_args!("{ms}"))?,
                    Some(UserTimeout::Auto) => item(f, "user_timeout", format_args!("auto"))?,
                    None => {}
                }
            }
        }
        match self.override_program {
            Some(true) => f.write_str(",override=on"),
            Some(false) => f.write_str(",override=off"),
            None => Ok(()),
        }
    }
}
