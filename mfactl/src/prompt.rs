//! Questions on the terminal. Prompts go to stderr so that stdout stays
//! data (JSON, tables); answers are read from stdin, echo on (a one-time
//! code is worthless once used) except for a security key's PIN.

use std::io::{self, BufRead, IsTerminal, Read, Write};

/// Longest line mfactl reads from stdin; anything longer is not a code,
/// a secret or an answer.
const MAX_LINE: u64 = 4096;

pub fn stdin_is_terminal() -> bool {
    io::stdin().is_terminal()
}

/// Show `prompt` on stderr (if any) and read one line from stdin, without
/// its line ending. `None` at end of input.
pub fn read_line(prompt: Option<&str>) -> io::Result<Option<String>> {
    if let Some(p) = prompt {
        let mut err = io::stderr().lock();
        err.write_all(p.as_bytes())?;
        err.flush()?;
    }
    let mut line = String::new();
    let n = io::stdin().lock().take(MAX_LINE).read_line(&mut line)?;
    if n == 0 {
        return Ok(None);
    }
    let trimmed = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(trimmed);
    Ok(Some(line))
}

/// [`read_line`], without echo when stdin is a terminal (a PIN).
pub fn read_secret_line(prompt: Option<&str>) -> io::Result<Option<String>> {
    let Some(_quiet) = NoEcho::on_stdin() else {
        return read_line(prompt);
    };
    let line = read_line(prompt);
    let _ = say("");
    line
}

/// The terminal on stdin with echo off, until dropped.
struct NoEcho(libc::termios);

impl NoEcho {
    fn on_stdin() -> Option<NoEcho> {
        if !stdin_is_terminal() {
            return None;
        }
        // SAFETY: a zeroed termios is a valid buffer for tcgetattr, which
        // fills it for fd 0; tcsetattr only reads it.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return None;
            }
            let mut quiet = saved;
            quiet.c_lflag &= !libc::ECHO;
            (libc::tcsetattr(0, libc::TCSANOW, &quiet) == 0).then_some(NoEcho(saved))
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        // SAFETY: restores the settings read from the same fd.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.0);
        }
    }
}

/// mfad's side of a conversation (a proof of a factor) on the terminal:
/// texts on stderr, answers from stdin, echo off where mfad asks so.
pub struct Terminal;

impl mfa_dbus::Conversation for Terminal {
    fn info(&mut self, text: &str) -> Result<(), mfa_dbus::ConversationAborted> {
        say(text).map_err(|_| mfa_dbus::ConversationAborted)
    }

    fn error(&mut self, text: &str) -> Result<(), mfa_dbus::ConversationAborted> {
        say(text).map_err(|_| mfa_dbus::ConversationAborted)
    }

    fn prompt(
        &mut self,
        text: &str,
        echo: bool,
    ) -> Result<mfa_dbus::Answer, mfa_dbus::ConversationAborted> {
        let line = match echo {
            true => read_line(Some(text)),
            false => read_secret_line(Some(text)),
        };
        match line {
            Ok(Some(answer)) => Ok(mfa_dbus::Answer::new(answer)),
            _ => Err(mfa_dbus::ConversationAborted),
        }
    }
}

/// Ask a yes/no question on the terminal; anything but y/yes is no.
pub fn ask_yes_no(question: &str) -> io::Result<bool> {
    let answer = read_line(Some(&format!("{question} [y/N] ")))?;
    Ok(is_yes(answer.as_deref().unwrap_or("")))
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// A line on stderr between questions.
pub fn say(text: &str) -> io::Result<()> {
    let mut err = io::stderr().lock();
    writeln!(err, "{text}")?;
    err.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_is_yes() {
        for yes in ["y", "Y", "yes", " YES "] {
            assert!(is_yes(yes), "{yes}");
        }
        for no in ["", "n", "no", "yep", "oui"] {
            assert!(!is_yes(no), "{no}");
        }
    }
}
