//! E-mail codes (issue 11) through a real SMTP server (aiosmtpd, started by
//! the tests, TLS from a test CA, AUTH required): the code is read from the
//! delivered message and typed at a real libpam prompt (or over a real
//! sshd). Resend delay, the hourly cap, codes used once and only by their
//! user; relays that are wrong, plaintext, silent or refusing fail the
//! send, say so, and offer the user's other methods.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::pam::{PamResult, PendingLogin, PAM_MAXTRIES, PAM_SUCCESS};
use mfa_tests::smtp::{Listener, Mail, Mode, Smtp, Stage};
use mfa_tests::users::{self, TestUser};
use mfa_tests::{World, QUICK};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a mail may take to arrive.
const MAIL: Duration = Duration::from_secs(10);

/// A world whose mfad sends codes through `listener` of the shared relay.
fn world(listener: impl Into<Listener>, extra: &str) -> World {
    world_with(listener, extra, DaemonConfig::default())
}

fn world_with(listener: impl Into<Listener>, extra: &str, base: DaemonConfig) -> World {
    World::with_config(&DaemonConfig {
        // Lines before any table header belong to [policy.default].
        policy_tables: format!(
            "{}\n{}",
            base.policy_tables,
            Smtp::shared().email_table(listener, extra)
        ),
        ..base
    })
}

/// An address no other test sends to (the relay is shared).
fn address(user: &TestUser) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}-{}@example.org",
        user.name,
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// An admin sends `user`'s codes to `to`.
fn set_email(world: &World, user: &TestUser, to: &str) {
    world
        .mfactl(&users::root(), &["set-email", &user.name, to])
        .assert_success("mfactl set-email");
}

/// The code in a delivered message: the first run of `digits` digits.
fn code_in(mail: &Mail, digits: usize) -> String {
    let bytes = mail.body.as_bytes();
    (0..bytes.len())
        .find_map(|i| {
            let run = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            let starts = i == 0 || !bytes[i - 1].is_ascii_digit();
            (starts && run == digits).then(|| mail.body[i..i + digits].to_string())
        })
        .unwrap_or_else(|| panic!("no {digits}-digit code in {:?}", mail.body))
}

/// A login of `user` that waits for the test at each prompt.
fn login(world: &World, user: &TestUser) -> PendingLogin {
    let mut login = world.prepare(user, &[]);
    login.ask = true;
    login.spawn(&world.pam)
}

/// The next prompt, which must come.
fn prompt(world: &World, login: &mut PendingLogin) -> String {
    login.next_prompt(QUICK).unwrap_or_else(|| {
        panic!(
            "a prompt, not the end of the login:\n{}\n--- mfad ---\n{}",
            login.transcript(),
            world.daemon.log()
        )
    })
}

/// Answer the prompt with the code of the next mail to `to`, then the
/// login ends: its result.
fn answer_with_mail(mut login: PendingLogin, to: &str) -> (PamResult, String) {
    let code = code_in(&Smtp::shared().wait_for_mail(to, MAIL), 6);
    login.answer(&code);
    (login.finish(), code)
}

#[test]
fn a_code_read_from_the_mail_logs_in_over_starttls_and_over_tls_once() {
    let smtp = Smtp::shared();
    for mode in [Mode::Starttls, Mode::Tls] {
        let world = world(mode, "");
        let alice = users::named("alice");
        let to = address(&alice);
        set_email(&world, &alice, &to);
        let mut first = login(&world, &alice);
        let asked = prompt(&world, &mut first);
        assert!(
            asked.contains("A code was sent to a•••@example.org")
                && asked.ends_with("E-mail code: "),
            "{mode:?}: {asked:?}"
        );
        let (result, code) = answer_with_mail(first, &to);
        result.assert_rc(PAM_SUCCESS);
        assert!(
            result
                .infos()
                .iter()
                .any(|i| i.contains("Sending a code to a•••@example.org")),
            "{result:#?}"
        );
        let mail = smtp.mails_to(&to).pop().expect("the mail");
        assert_eq!(
            mail.subject,
            format!("Login code for {}", mfad::store::hostname())
        );
        assert!(mail.from.contains("mfa@example.org"), "{mail:?}");
        // Credentials went inside TLS, and were taken.
        assert!(
            smtp.auth_attempts(mode)
                .iter()
                .any(|(_, login, ok)| login == "mfad" && *ok),
            "{mode:?}"
        );
        // The same code again: a new one was sent, the old one is spent.
        let mut again = login(&world, &alice);
        prompt(&world, &mut again);
        let second = code_in(&smtp.wait_for_mail(&to, MAIL), 6);
        again.answer(&code);
        let refused = again.finish();
        assert_ne!(refused.rc, PAM_SUCCESS, "{mode:?}: a code works once");
        assert_ne!(second, code);
        world.daemon.assert_log_free_of(&[&code, &second, &to]);
    }
}

#[test]
fn two_logins_within_the_resend_delay_share_one_mail() {
    // One answer per login: a wrong one ends it.
    let world = world_with(
        Mode::Starttls,
        "resend_delay = 300",
        DaemonConfig {
            max_tries: 1,
            ..DaemonConfig::default()
        },
    );
    let smtp = Smtp::shared();
    let bob = users::named("bob");
    let to = address(&bob);
    set_email(&world, &bob, &to);
    let mut first = login(&world, &bob);
    prompt(&world, &mut first);
    let code = code_in(&smtp.wait_for_mail(&to, MAIL), 6);
    let mut second = login(&world, &bob);
    let asked = prompt(&world, &mut second);
    assert!(
        asked.contains("a moment ago") && asked.contains("can be sent in"),
        "{asked:?}"
    );
    assert_eq!(smtp.mail_count(&to), 1, "one mail for both");
    // An empty answer asks for a new code: still too soon, none is sent.
    second.answer("");
    let asked = prompt(&world, &mut second);
    assert!(asked.contains("can be sent in"), "{asked:?}");
    second.answer(&code);
    second.finish().assert_rc(PAM_SUCCESS);
    first.answer(&code);
    assert_ne!(first.finish().rc, PAM_SUCCESS, "used by the second login");
    assert_eq!(smtp.mail_count(&to), 1);
}

/// A fleet (issue 10): two hosts on one PostgreSQL share a user's code and
/// its resend delay. A login on B within the delay sends no second mail and
/// takes the code A sent; A's login then finds it spent.
#[test]
fn two_hosts_on_one_database_share_the_resend_delay_and_spend_a_code_once() {
    let pg = mfa_tests::postgres::Postgres::shared();
    let store = pg.store_table(&pg.database());
    let email = Smtp::shared().email_table(Mode::Starttls, "resend_delay = 300");
    let host = |seed_key, name: &str| {
        World::with_config(&DaemonConfig {
            policy_tables: format!("{store}\n{email}"),
            max_tries: 1,
            seed_key,
            hostname: Some(name.into()),
            ..DaemonConfig::default()
        })
    };
    let a = host(None, "host-a");
    let b = host(
        Some(a.daemon.state_dir().join(mfad::store::KEY_FILE)),
        "host-b",
    );
    let smtp = Smtp::shared();
    let carol = users::named("carol");
    let to = address(&carol);
    set_email(&a, &carol, &to);
    let mut on_a = login(&a, &carol);
    prompt(&a, &mut on_a);
    let code = code_in(&smtp.wait_for_mail(&to, MAIL), 6);
    let mut on_b = login(&b, &carol);
    let asked = prompt(&b, &mut on_b);
    assert!(
        asked.contains("a moment ago") && asked.contains("can be sent in"),
        "{asked:?}"
    );
    on_b.answer(&code);
    on_b.finish().assert_rc(PAM_SUCCESS);
    on_a.answer(&code);
    assert_ne!(on_a.finish().rc, PAM_SUCCESS, "spent on the other host");
    assert_eq!(smtp.mail_count(&to), 1, "one mail for the fleet");
}

#[test]
fn a_new_code_replaces_the_old_and_a_typo_sends_none() {
    let world = world_with(
        Mode::Starttls,
        "resend_delay = 0",
        DaemonConfig {
            max_tries: 5,
            ..DaemonConfig::default()
        },
    );
    let smtp = Smtp::shared();
    let carol = users::named("carol");
    let to = address(&carol);
    set_email(&world, &carol, &to);
    let mut pending = login(&world, &carol);
    prompt(&world, &mut pending);
    let old = code_in(&smtp.wait_for_mail(&to, MAIL), 6);
    // An empty answer: a new code (no delay here), and the old one is void.
    pending.answer("");
    prompt(&world, &mut pending);
    let new = code_in(&smtp.wait_for_mail(&to, MAIL), 6);
    pending.answer(&old);
    let asked = prompt(&world, &mut pending);
    assert!(
        asked.starts_with("Wrong code.")
            && asked.contains("Type the code sent to c•••@example.org"),
        "{asked:?}"
    );
    pending.answer(&new);
    pending.finish().assert_rc(PAM_SUCCESS);
    assert_eq!(smtp.mail_count(&to), 2, "a wrong answer sends no new code");
}

#[test]
fn an_expired_code_is_refused_and_a_new_one_is_sent() {
    // The shortest validity mfad accepts: this test waits it out.
    let world = world_with(
        Mode::Starttls,
        "validity = 60",
        DaemonConfig {
            max_tries: 3,
            ..DaemonConfig::default()
        },
    );
    let smtp = Smtp::shared();
    let alice = users::named("alice");
    let to = address(&alice);
    set_email(&world, &alice, &to);
    let mut pending = login(&world, &alice);
    prompt(&world, &mut pending);
    let old = code_in(&smtp.wait_for_mail(&to, MAIL), 6);
    let sent = Instant::now();
    // Not a wait for something to happen: the code's lifetime passing.
    std::thread::sleep(Duration::from_secs(61).saturating_sub(sent.elapsed()));
    pending.answer(&old);
    let asked = prompt(&world, &mut pending);
    assert!(
        asked.starts_with("Wrong code. A code was sent to a•••@example.org."),
        "refused, and asked again after a new send: {asked:?}"
    );
    let new = code_in(&smtp.wait_for_mail(&to, MAIL), 6);
    assert_ne!(new, old);
    pending.answer(&new);
    pending.finish().assert_rc(PAM_SUCCESS);
    assert_eq!(
        smtp.mail_count(&to),
        2,
        "the expired code was replaced once"
    );
}

#[test]
fn the_hourly_cap_stops_sending_and_says_when_the_next_can_go() {
    let world = world(Mode::Starttls, "resend_delay = 0\nmax_per_hour = 2");
    let smtp = Smtp::shared();
    let dave = users::named("dave");
    let to = address(&dave);
    set_email(&world, &dave, &to);
    let mut pending = login(&world, &dave);
    prompt(&world, &mut pending);
    smtp.wait_for_mail(&to, MAIL);
    pending.answer("");
    prompt(&world, &mut pending);
    smtp.wait_for_mail(&to, MAIL);
    pending.answer("");
    let capped = pending.finish();
    assert_ne!(capped.rc, PAM_SUCCESS);
    assert!(
        capped
            .errors()
            .iter()
            .chain(capped.infos().iter())
            .any(|m| m.contains("within the hour")),
        "{capped:#?}"
    );
    assert_eq!(smtp.mail_count(&to), 2);
    assert!(smtp.next_mail(&to, Duration::from_millis(300)).is_none());
}

#[test]
fn a_code_sent_to_another_user_does_not_let_this_one_in() {
    let world = world_with(
        Mode::Starttls,
        "",
        DaemonConfig {
            max_tries: 1,
            ..DaemonConfig::default()
        },
    );
    let smtp = Smtp::shared();
    let (alice, bob) = (users::named("alice"), users::named("bob"));
    let (to_alice, to_bob) = (address(&alice), address(&bob));
    set_email(&world, &alice, &to_alice);
    set_email(&world, &bob, &to_bob);
    let mut bobs = login(&world, &bob);
    prompt(&world, &mut bobs);
    let bobs_code = code_in(&smtp.wait_for_mail(&to_bob, MAIL), 6);
    let mut alices = login(&world, &alice);
    prompt(&world, &mut alices);
    smtp.wait_for_mail(&to_alice, MAIL);
    alices.answer(&bobs_code);
    alices.finish().assert_rc(PAM_MAXTRIES);
    bobs.answer(&bobs_code);
    bobs.finish().assert_rc(PAM_SUCCESS);
}

/// A relay that cannot take the code: the login says the code could not
/// be sent, promptly, and counts nothing against the user.
fn send_fails(listener: Listener, ca: Option<&str>, why: &[&str]) {
    let smtp = Smtp::shared();
    let extra = ca
        .map(|ca| format!("ca_file = \"{ca}\""))
        .unwrap_or_default();
    let table = smtp.email_table(listener, "");
    // The CA line is replaced, not added twice.
    let table = match ca {
        Some(_) => {
            table
                .lines()
                .filter(|l| !l.starts_with("ca_file"))
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
                + &extra
                + "\n"
        }
        None => table,
    };
    let world = World::with_config(&DaemonConfig {
        policy_tables: table,
        ..DaemonConfig::default()
    });
    let erin = users::named("demo");
    let to = address(&erin);
    set_email(&world, &erin, &to);
    let started = Instant::now();
    let failed = login(&world, &erin).finish();
    assert_ne!(failed.rc, PAM_SUCCESS, "{listener:?}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{listener:?}: took {:?}",
        started.elapsed()
    );
    assert!(
        failed
            .errors()
            .iter()
            .chain(failed.infos().iter())
            .any(|m| m.contains("Could not send a code to d•••@example.org")),
        "{listener:?}: {failed:#?}"
    );
    let log = world.daemon.log();
    assert!(
        log.contains("reason=factor-failed") && why.iter().any(|w| log.to_lowercase().contains(w)),
        "{listener:?}: the log says why ({why:?}):\n{log}"
    );
    assert_eq!(smtp.mail_count(&to), 0, "{listener:?}: nothing delivered");
    // Nothing was counted: the user is not closer to a lockout.
    let users = world.mfactl(&users::root(), &["--json", "users"]);
    assert!(
        !users.stdout.contains("\"locked\":true"),
        "{}",
        users.describe()
    );
}

#[test]
fn a_relay_with_a_certificate_from_another_ca_gets_no_code() {
    let other = Smtp::shared().other_ca_file().display().to_string();
    send_fails(
        Listener::new(Mode::Starttls),
        Some(&other),
        &["certificate", "issuer"],
    );
}

#[test]
fn a_relay_without_starttls_gets_no_code_and_no_password() {
    let smtp = Smtp::shared();
    for mode in [Mode::NoStarttls, Mode::PlainAuth] {
        send_fails(Listener::new(mode), None, &["starttls", "tls"]);
        assert!(
            smtp.auth_attempts(mode).is_empty(),
            "{mode:?}: credentials sent in plaintext"
        );
    }
}

#[test]
fn a_relay_that_never_answers_is_given_up_within_the_send_timeout() {
    send_fails(
        Listener::new(Mode::Starttls).stall(),
        None,
        &["send_timeout", "timed out", "timeout"],
    );
}

#[test]
fn a_relay_that_refuses_the_message_gets_its_code_reported() {
    send_fails(
        Listener::new(Mode::Starttls).reply(Stage::Data, 451),
        None,
        &["451"],
    );
    send_fails(
        Listener::new(Mode::Starttls).reply(Stage::Rcpt, 550),
        None,
        &["550"],
    );
}

#[test]
fn a_failed_send_offers_the_users_other_methods() {
    let smtp = Smtp::shared();
    let world = world(Listener::new(Mode::Starttls).reply(Stage::Data, 550), "");
    let alice = users::named("alice");
    let to = address(&alice);
    set_email(&world, &alice, &to);
    let token = world.enrol_hotp(&alice, 6);
    let mut pending = login(&world, &alice);
    let asked = prompt(&world, &mut pending);
    assert!(
        asked.contains("Could not send a code") && asked.contains("Methods:"),
        "{asked:?}"
    );
    pending.answer("2");
    let asked = prompt(&world, &mut pending);
    assert!(asked.contains("Verification code"), "{asked:?}");
    pending.answer(&token.hotp_code(token.next_counter()));
    pending.finish().assert_rc(PAM_SUCCESS);
    assert_eq!(smtp.mail_count(&to), 0);
}

#[test]
fn a_user_registers_an_address_confirmed_by_the_code_sent_there() {
    let world = world(Mode::Starttls, "");
    let smtp = Smtp::shared();
    let bob = users::named("bob");
    let to = address(&bob);
    let mut enrol = mfa_tests::process::Running::spawn(
        "mfactl enrol email",
        users::command_as(&bob, &mfa_tests::bins::mfactl())
            .arg("--bus-address")
            .arg(world.address())
            .args(["enrol", "email", "--address", &to]),
    );
    let code = code_in(&smtp.wait_for_mail(&to, MAIL), 6);
    enrol.send_line(&code);
    let done = enrol.finish(QUICK);
    done.assert_success("mfactl enrol email");
    assert!(
        done.stdout.contains("A code was sent to b•••@example.org"),
        "{}",
        done.describe()
    );
    let mut next = login(&world, &bob);
    prompt(&world, &mut next);
    let (result, _) = answer_with_mail(next, &to);
    result.assert_rc(PAM_SUCCESS);
    // Bad addresses are refused before anything is sent.
    let bad = world.mfactl(&bob, &["enrol", "email", "--address", "bob@localhost"]);
    assert_eq!(bad.code(), Some(1), "{}", bad.describe());
    assert!(
        bad.stderr.contains("not an e-mail address"),
        "{}",
        bad.describe()
    );
}

#[test]
fn a_new_address_needs_a_code_from_the_old_one_or_an_admin() {
    let world = world_with(
        Mode::Starttls,
        "",
        DaemonConfig {
            step_up: true,
            ..DaemonConfig::default()
        },
    );
    let smtp = Smtp::shared();
    let erin = users::named("carol");
    let old = address(&erin);
    // An admin sets an address: no proof of anything of erin's.
    set_email(&world, &erin, &old);

    // Someone at erin's open session, who cannot read her mail: the code
    // goes to the old address, the new one gets nothing.
    let new = address(&erin);
    let enrol = ["enrol", "email", "--address", new.as_str()];
    let refused = world.mfactl_with_input(&erin, &enrol, "");
    assert_eq!(refused.code(), Some(5), "{}", refused.describe());
    let sent = code_in(&smtp.wait_for_mail(&old, MAIL), 6);
    assert_eq!(smtp.mail_count(&new), 0, "nothing sent to the new address");

    // Erin, who can: the code from the old address (still the one sent,
    // within the resend delay), then the new address's own.
    let mut changing = mfa_tests::process::Running::spawn(
        "mfactl enrol email",
        users::command_as(&erin, &mfa_tests::bins::mfactl())
            .arg("--bus-address")
            .arg(world.address())
            .args(enrol),
    );
    changing.send_line(&sent);
    let confirm = code_in(&smtp.wait_for_mail(&new, MAIL), 6);
    changing.send_line(&confirm);
    changing
        .finish(QUICK)
        .assert_success("a new address with a proof");
    let listed = world.mfactl(&erin, &["--json", "list"]);
    let factors: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).expect("JSON");
    let active = |f: &&serde_json::Value| f["kind"] == "email" && f["status"] == "active";
    assert_eq!(
        factors.iter().filter(active).count(),
        2,
        "the old address and the new: {}",
        listed.describe()
    );
    assert!(
        !world.daemon.log().contains(&new),
        "only the masked address is logged"
    );
}

#[test]
fn with_an_address_template_a_forced_user_enrols_at_login() {
    let world = world_with(
        Mode::Starttls,
        "address = \"{user}@enrol.example.org\"",
        DaemonConfig {
            enrol_at_login: true,
            // The default rule: force, by e-mail.
            policy_tables: "methods = [\"email\"]".into(),
            ..DaemonConfig::default()
        },
    );
    let smtp = Smtp::shared();
    let dave = users::named("dave");
    let to = "dave@enrol.example.org";
    let mut first = login(&world, &dave);
    let asked = prompt(&world, &mut first);
    assert_eq!(asked, "E-mail code: ");
    let code = code_in(&smtp.wait_for_mail(to, MAIL), 6);
    first.answer("000000");
    let asked = prompt(&world, &mut first);
    assert_eq!(asked, "Wrong code. E-mail code: ");
    first.answer(&code);
    let enrolled = first.finish();
    enrolled.assert_rc(PAM_SUCCESS);
    assert!(
        enrolled
            .infos()
            .iter()
            .any(|i| i.contains("A code was sent to d•••@enrol.example.org")),
        "{enrolled:#?}"
    );
    let listed = world.mfactl(&dave, &["--json", "list"]);
    assert!(listed.stdout.contains("\"email\""), "{}", listed.describe());
    // Only an admin gives such a user another address.
    let own = world.mfactl(&dave, &["enrol", "email", "--address", "d@example.org"]);
    assert_eq!(own.code(), Some(1), "{}", own.describe());
    assert!(
        own.stderr.contains("mfactl set-email"),
        "{}",
        own.describe()
    );
}

#[test]
fn a_group_rule_can_require_the_email_code() {
    let rule = format!(
        "[[policy.group]]\ngroup = \"{}\"\nrequire = \"force\"\nmethods = [\"email\"]\n",
        users::POLICY_GROUP
    );
    let world = world_with(
        Mode::Starttls,
        "",
        DaemonConfig {
            require: "no".into(),
            policy_tables: rule,
            ..DaemonConfig::default()
        },
    );
    let alice = users::named("alice");
    let token = world.enrol_hotp(&alice, 6);
    let to = address(&alice);
    set_email(&world, &alice, &to);
    let explained = world.explain("alice", "sshd", "", None);
    assert_eq!(explained["outcome"], "ask", "{explained}");
    // Her app is not what the rule asks for: only the mail.
    let mut pending = login(&world, &alice);
    let asked = prompt(&world, &mut pending);
    assert!(
        asked.ends_with("E-mail code: ") && !asked.contains("Methods"),
        "{asked:?}"
    );
    pending.answer(&token.hotp_code(token.next_counter()));
    assert!(prompt(&world, &mut pending).starts_with("Wrong code."));
    let (result, _) = answer_with_mail(pending, &to);
    result.assert_rc(PAM_SUCCESS);
}

#[test]
fn over_sshd_the_note_comes_with_the_code_prompt() {
    use mfa_tests::sshd::{Sshd, SshdConfig, KBDINT};
    let world = world(Mode::Starttls, "");
    let sshd = Sshd::start(&SshdConfig::mfa(
        KBDINT,
        world.address(),
        mfa_tests::world::OPTIONS,
    ));
    let bob = users::named("bob");
    let to = address(&bob);
    set_email(&world, &bob, &to);
    let mut ssh = sshd.client("bob").spawn();
    let shown = ssh.expect("E-mail code: ", QUICK);
    let (sending, sent) = (
        shown.find("Sending a code to b•••@example.org"),
        shown.find("A code was sent to b•••@example.org."),
    );
    assert!(
        sending.is_some() && sent.is_some() && sending < sent,
        "the wait text, then the note, then the prompt:\n{}",
        ssh.transcript()
    );
    let code = code_in(&Smtp::shared().wait_for_mail(&to, MAIL), 6);
    ssh.send_line(&code);
    ssh.finish().assert_logged_in("bob");
}
