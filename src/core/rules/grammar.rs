//! The grammar of `KEEPALIVE_DIRECTION` and `KEEPALIVE_RULES`, parsed once
//! at start-up; each bad rule becomes one `Diagnostic` and is dropped alone.

use super::{Action, Direction, Directions, Rule, MAX_RULES};
use crate::address::Network;
use crate::diagnostic::Diagnostic;
use crate::quantity::{parse_quantity, parse_user_timeout, quote_value, Quantity};
use crate::timers::{
    Timers, MAX_KEEPCNT, MAX_KEEPIDLE_SECS, MAX_KEEPINTVL_SECS, MAX_USER_TIMEOUT_MS,
};

/// Parses a `KEEPALIVE_DIRECTION` value.
pub fn parse_directions(text: &str) -> Option<Directions> {
    match text {
        "both" => Some(Directions::Both),
        "out" => Some(Directions::Out),
        "in" => Some(Directions::In),
        _ => None,
    }
}

/// `N` or `N-M`, 1..65535.
fn parse_ports(text: &str) -> Result<(u16, u16), String> {
    let port = |part: &str| -> Option<u16> {
        let digits =
            !part.is_empty() && part.len() <= 5 && part.bytes().all(|b| b.is_ascii_digit());
        part.parse::<u16>().ok().filter(|&p| digits && p >= 1)
    };
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    match (port(low), port(high)) {
        (Some(low), Some(high)) if low <= high => Ok((low, high)),
        _ => Err(format!(
            "port {} is not N or N-M with 1 <= N <= M <= 65535",
            quote_value(text)
        )),
    }
}

/// The condition and action keys a rule may use, for "given twice".
fn once<T>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("{key} is given twice"));
    }
    *slot = Some(value);
    Ok(())
}

fn parse_match(text: &str, rule: &mut Rule) -> Result<(), String> {
    if text == "*" {
        return Ok(());
    }
    for condition in text.split(',').map(str::trim) {
        let Some((key, value)) = condition.split_once('=') else {
            return Err(if condition == "*" {
                "* stands alone".to_string()
            } else {
                format!("condition {} is not KEY=VALUE", quote_value(condition))
            });
        };
        let value = value.trim();
        match key.trim() {
            "dir" => {
                let direction = match value {
                    "out" => Direction::Out,
                    "in" => Direction::In,
                    _ => return Err(format!("dir={} is not in or out", quote_value(value))),
                };
                once(&mut rule.direction, "dir", direction)?;
            }
            "net" => once(&mut rule.network, "net", Network::parse(value)?)?,
            "port" => once(&mut rule.ports, "port", parse_ports(value)?)?,
            other => return Err(format!("unknown condition {}", quote_value(other))),
        }
    }
    Ok(())
}

/// An action: `off` alone, or `on` and timers (not both), each with an
/// optional `override=on|off`. Returns the action and the override.
fn parse_action(text: &str) -> Result<(Action, Option<bool>), String> {
    if text == "off" {
        return Ok((Action::Off, None));
    }
    let mut on = None;
    let mut override_program = None;
    let mut timers = Timers::default();
    for item in text.split(',').map(str::trim) {
        match item {
            "on" => {
                once(&mut on, "on", ())?;
                continue;
            }
            "off" => return Err("off stands alone".to_string()),
            _ => {}
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(format!(
                "action {} is not off, on or KEY=VALUE",
                quote_value(item)
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "override" {
            let value = match value {
                "on" => true,
                "off" => false,
                _ => {
                    return Err(format!(
                        "override={}: expected on or off",
                        quote_value(value)
                    ))
                }
            };
            once(&mut override_program, key, value)?;
        } else {
            parse_timer(&mut timers, key, value)?;
        }
    }
    let action = match (on, timers == Timers::default()) {
        (Some(()), false) => return Err("on stands alone or with override".to_string()),
        (_, true) => Action::On,
        (None, false) => Action::Timers(timers),
    };
    Ok((action, override_program))
}

/// One `TIMER=VALUE` of an action, put into `timers`.
fn parse_timer(timers: &mut Timers, key: &str, value: &str) -> Result<(), String> {
    let quantity = match key {
        "idle" => Quantity::Seconds {
            max: MAX_KEEPIDLE_SECS,
        },
        "intvl" => Quantity::Seconds {
            max: MAX_KEEPINTVL_SECS,
        },
        "cnt" => Quantity::Count { max: MAX_KEEPCNT },
        "user_timeout" => Quantity::Millis {
            max: MAX_USER_TIMEOUT_MS,
        },
        _ => return Err(format!("unknown action {}", quote_value(key))),
    };
    let bad = || {
        format!(
            "{key}={}: expected {}",
            quote_value(value),
            quantity.describe()
        )
    };
    match key {
        "idle" => once(
            &mut timers.idle_secs,
            key,
            parse_quantity(value, quantity).ok_or_else(bad)?,
        ),
        "intvl" => once(
            &mut timers.interval_secs,
            key,
            parse_quantity(value, quantity).ok_or_else(bad)?,
        ),
        "cnt" => once(
            &mut timers.count,
            key,
            parse_quantity(value, quantity).ok_or_else(bad)?,
        ),
        _ => once(
            &mut timers.user_timeout,
            key,
            parse_user_timeout(value).ok_or_else(bad)?,
        ),
    }
}

/// One rule's text (already trimmed, not empty).
fn parse_rule(text: &str, number: usize) -> Result<Rule, String> {
    // IPv6 addresses hold colons, actions never do: split at the last one.
    let Some((matcher, action)) = text.rsplit_once(':') else {
        return Err("no ':' between the match and the action".to_string());
    };
    let (action, override_program) = parse_action(action.trim())?;
    let mut rule = Rule {
        number,
        direction: None,
        network: None,
        ports: None,
        action,
        override_program,
    };
    parse_match(matcher.trim(), &mut rule)?;
    Ok(rule)
}

/// What a bad rule's author probably meant, for the two common mistakes:
/// rules joined by a comma instead of `;` (`net=10.0.0.0/8:off, *:on`), and
/// conditions joined by a space instead of a comma (`dir=out port=22:off`).
fn likely_mistake(rule: &str) -> Option<&'static str> {
    let (matcher, _) = rule.rsplit_once(':')?;
    let ends_an_action = |text: &str| {
        let action = text.trim();
        ["off", "on"].contains(&action)
            || ["idle=", "intvl=", "cnt=", "user_timeout=", "override="]
                .iter()
                .any(|timer| action.starts_with(timer))
    };
    // `...:off, next...`: an action followed by a comma inside the match.
    let comma_after_action = matcher.split(',').any(|piece| {
        piece
            .rsplit_once(':')
            .is_some_and(|(_, action)| ends_an_action(action))
    });
    if comma_after_action {
        return Some("did you mean ';' between rules? ");
    }
    let space_between_conditions = matcher.split(',').any(|condition| {
        let mut words = condition.split_whitespace();
        words.next().is_some() && words.any(|word| word.contains('='))
    });
    space_between_conditions.then_some("did you mean ',' between conditions? ")
}

/// Parses `KEEPALIVE_RULES` (named `variable` in messages). Empty rules
/// (`;;`, a trailing `;`) are skipped; each bad rule gets one diagnostic
/// and is dropped, the others keep their order and their numbers.
pub fn parse_rules(variable: &'static str, text: &str) -> (Vec<Rule>, Vec<Diagnostic>) {
    let mut rules = Vec::new();
    let mut diagnostics = Vec::new();
    let pieces = text.split(';').map(str::trim).filter(|p| !p.is_empty());
    for (index, piece) in pieces.enumerate() {
        let number = index + 1;
        if number > MAX_RULES {
            diagnostics.push(Diagnostic::TooManyRules {
                variable,
                first_ignored: number,
            });
            break;
        }
        match parse_rule(piece, number) {
            Ok(rule) => rules.push(rule),
            Err(reason) => diagnostics.push(Diagnostic::BadRule {
                variable,
                number,
                rule: piece.to_string(),
                reason,
                hint: likely_mistake(piece),
            }),
        }
    }
    (rules, diagnostics)
}
