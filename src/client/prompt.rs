//! The interactive start: with no arguments on a terminal, ask what to do, as the
//! lab's client did.
//!
//! The answers become an ordinary command line that goes through the same parser
//! as typed arguments, so the questions cannot accept what the flags refuse.

use std::io::{self, BufRead, Write};

use clap::Parser;

use super::args::{parse_probability, Cli};

/// Asks for mode, toy, quantity and count; `None` when stdin closes or the
/// answers do not make a command line (the parser's message is printed).
pub fn ask() -> Option<Cli> {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    println!("toystore client: press Enter to take the [default].");
    let mode = ask_one(&mut input, "Mode: query, buy or random", "query", |text| {
        ["query", "buy", "random"]
            .into_iter()
            .find(|mode| !text.is_empty() && mode.starts_with(text))
            .map(str::to_string)
            .ok_or_else(|| "answer query, buy or random".to_string())
    })?;
    let mut argv = vec!["client".to_string(), mode.clone()];
    if mode == "random" {
        let p = ask_one(
            &mut input,
            "Probability of buying a toy in stock",
            "0.5",
            |t| parse_probability(t).map(|_| t.to_string()),
        )?;
        argv.extend(["--p".to_string(), p]);
    } else {
        argv.push(ask_one(&mut input, "Toy", "Tux", |t| Ok(t.to_string()))?);
    }
    if mode != "query" {
        argv.extend([
            "--quantity".to_string(),
            ask_one(&mut input, "Quantity per order", "1", whole)?,
        ]);
    }
    let count = if mode == "random" {
        "How many rounds"
    } else {
        "How many times"
    };
    argv.extend([
        "--requests".to_string(),
        ask_one(&mut input, count, "1", whole)?,
    ]);
    println!("running: {}", argv.join(" "));
    Cli::try_parse_from(argv).map_err(|e| e.print()).ok()
}

/// A whole number from 1 up.
fn whole(text: &str) -> Result<String, String> {
    match text.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n.to_string()),
        _ => Err("answer a whole number from 1 up".to_string()),
    }
}

/// Asks one question until `check` accepts the answer (an empty answer is
/// `default`); `None` at end of input.
fn ask_one(
    input: &mut impl BufRead,
    question: &str,
    default: &str,
    check: impl Fn(&str) -> Result<String, String>,
) -> Option<String> {
    loop {
        print!("{question} [{default}]: ");
        io::stdout().flush().ok()?;
        let mut line = String::new();
        if input.read_line(&mut line).ok()? == 0 {
            println!();
            return None;
        }
        let answer = match line.trim() {
            "" => default,
            text => text,
        };
        match check(answer) {
            Ok(value) => return Some(value),
            Err(hint) => println!("  {hint}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_again_until_the_answer_fits() {
        let mut input = io::Cursor::new("zero\n0\n\n");
        assert_eq!(
            ask_one(&mut input, "How many", "1", whole),
            Some("1".to_string())
        );
        let mut input = io::Cursor::new("5\n");
        assert_eq!(
            ask_one(&mut input, "How many", "1", whole),
            Some("5".to_string())
        );
        let mut closed = io::Cursor::new("");
        assert_eq!(ask_one(&mut closed, "How many", "1", whole), None);
    }
}
