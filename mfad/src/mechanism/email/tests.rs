use super::*;

fn mechanism(config: EmailConfig) -> Email {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn Store> =
        Arc::new(crate::store::SqliteStore::open(&dir.path().join("state")).expect("store"));
    // The directory goes when the test ends; the store stays open on it.
    std::mem::forget(dir);
    Email::from_config(
        &EmailConfig {
            enabled: true,
            ..config
        },
        "host.example.org",
        store,
    )
    .expect("enabled")
}

fn with_code(email: &Email, user: &str, code: &str, now: u64) -> FactorRecord {
    let hash = email.hash(user, code).expect("hash");
    FactorRecord {
        id: "e1".into(),
        user: user.into(),
        kind: FactorKind::Email,
        label: "mail".into(),
        counter: 1,
        data: FactorData::Email(Box::new(EmailFactor::new(
            "alice@example.org".into(),
            hash,
            now,
            email.config.validity,
        ))),
        confirmed: true,
        approved: false,
        created: now,
        last_used: 0,
        expires: 0,
    }
}

fn text(s: &str) -> Response {
    Response::Text(s.into())
}

#[test]
fn a_code_works_once_for_its_user_until_it_expires() {
    let email = mechanism(EmailConfig::default());
    let factor = with_code(&email, "alice", "123456", 1000);
    let Verdict::Accept(advance) = email.verify(&factor, &(), &text("123 456"), 1001) else {
        panic!("the right code")
    };
    let Some(FactorData::Email(used)) = advance.data else {
        panic!("data")
    };
    assert!(used.code.is_none(), "used up");
    let used = FactorRecord {
        data: FactorData::Email(used),
        ..factor.clone()
    };
    assert_eq!(
        email.verify(&used, &(), &text("123456"), 1002),
        Verdict::Reject
    );
    assert_eq!(
        email.verify(&factor, &(), &text("123457"), 1001),
        Verdict::Reject
    );
    assert_eq!(
        email.verify(&factor, &(), &text("123456"), 1000 + 900),
        Verdict::Reject,
        "expired"
    );
    let bobs = FactorRecord {
        user: "bob".into(),
        ..factor.clone()
    };
    assert_eq!(
        email.verify(&bobs, &(), &text("123456"), 1001),
        Verdict::Reject,
        "another user's code"
    );
}

#[test]
fn the_resend_delay_and_the_hourly_cap_hold_codes_back() {
    let email = mechanism(EmailConfig {
        resend_delay: 30,
        max_per_hour: 2,
        ..EmailConfig::default()
    });
    let mut factor = EmailFactor::new("a@example.org".into(), [1; 32], 1000, 900);
    assert_eq!(
        email.hold(&factor, 1010),
        Some(Hold::Recent {
            sent: 1000,
            wait: 20
        })
    );
    assert_eq!(email.hold(&factor, 1030), None);
    factor = factor.with_code([2; 32], 1030, 900);
    assert_eq!(email.hold(&factor, 1100), Some(Hold::Capped { wait: 3500 }));
    assert_eq!(email.hold(&factor, 4600), None, "a new hour");
    let next = factor.with_code([3; 32], 4600, 900);
    assert_eq!((next.window_start, next.sent_in_window), (4600, 1));
}

#[test]
fn the_message_fills_its_template_and_never_takes_a_code_from_a_name() {
    let email = mechanism(EmailConfig {
        subject: "Code for {user} on {host}".into(),
        template: "{user}: {code} ({minutes} min)".into(),
        validity: 600,
        ..EmailConfig::default()
    });
    let (subject, body) = email.mail_text("alice", "424242");
    assert_eq!(subject, "Code for alice on host.example.org");
    assert_eq!(body, "alice: 424242 (10 min)");
    let (_, body) = email.mail_text("{code}", "424242");
    assert_eq!(body, "{code}: 424242 (10 min)");
}
