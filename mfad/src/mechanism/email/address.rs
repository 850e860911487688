//! E-mail addresses as mfad accepts them: a plain `local@domain`, no
//! display name, no comments, no quoting — what a login name template or an
//! admin gives. Shown masked at login.

/// The most an address may be (RFC 5321's path limit).
const MAX_ADDRESS: usize = 254;

/// `address` if mfad sends codes to it; otherwise what is wrong with it.
pub fn valid_address(address: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{address:?} is not an e-mail address: {why}"));
    if address.len() > MAX_ADDRESS {
        return bad("too long");
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return bad("no @");
    };
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if local.is_empty()
        || local.len() > 64
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || !local.chars().all(|c| atext(c) || c == '.')
    {
        return bad("the part before @ has a character mfad does not send to");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return bad("the domain is not a host name with a dot");
    }
    Ok(())
}

/// A `From:` mailbox: `addr@example.org` or `Name <addr@example.org>`;
/// the address in it.
pub fn parse_mailbox(text: &str) -> Option<&str> {
    let text = text.trim();
    let address = match text.rsplit_once('<') {
        Some((name, rest)) => {
            let address = rest.strip_suffix('>')?;
            if name.chars().any(|c| c.is_control() || c == '"' || c == '>') {
                return None;
            }
            address
        }
        None => text,
    };
    valid_address(address).ok().map(|()| address)
}

/// `alice@example.org` as a login shows it: `a•••@example.org`.
pub fn mask(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}\u{2022}\u{2022}\u{2022}@{domain}")
        }
        None => "\u{2022}\u{2022}\u{2022}".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_pass_and_odd_ones_are_named() {
        for ok in [
            "alice@example.org",
            "a.b+tag@mail.example.co.uk",
            "x@a-b.io",
        ] {
            assert_eq!(valid_address(ok), Ok(()), "{ok}");
        }
        for bad in [
            "alice",
            "@example.org",
            "alice@",
            "alice@localhost",
            "al ice@example.org",
            "alice@exa_mple.org",
            "a..b@example.org",
            ".a@example.org",
            "alice@-x.org",
            "\"a\"@example.org",
            "alice@example.org\r\nBcc: eve@example.org",
        ] {
            assert!(valid_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mailboxes_with_and_without_a_name() {
        assert_eq!(
            parse_mailbox("pam_mfa <mfa@example.org>"),
            Some("mfa@example.org")
        );
        assert_eq!(parse_mailbox("mfa@example.org"), Some("mfa@example.org"));
        assert_eq!(parse_mailbox("pam_mfa <mfa@example.org"), None);
        assert_eq!(parse_mailbox("a\r\nb <mfa@example.org>"), None);
    }

    #[test]
    fn masks_keep_the_first_letter_and_the_domain() {
        assert_eq!(mask("alice@example.org"), "a•••@example.org");
        assert_eq!(mask("x@y.z"), "x•••@y.z");
    }
}
