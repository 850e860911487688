//! The interfaces mfad serves are the ones the package installs as
//! `org.pam_mfa.Mfad1.xml`: a change to the contract shows up here first.

use mfa_tests::{block_on, workspace_root, World};

/// The `<interface name="org.pam_mfa.…">…</interface>` blocks of an
/// introspection document, in order.
fn our_interfaces(xml: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<interface name=\"org.pam_mfa.") {
        let Some(len) = rest[start..].find("</interface>") else {
            break;
        };
        let end = start + len + "</interface>".len();
        found.push(rest[start..end].to_string());
        rest = &rest[end..];
    }
    found
}

#[test]
fn served_interfaces_match_the_shipped_xml() {
    let world = World::start();
    let connection = world.bus.connect();
    let served: String = block_on(async {
        let proxy = zbus::fdo::IntrospectableProxy::builder(&connection)
            .destination(mfa_dbus::BUS_NAME)?
            .path(mfa_dbus::OBJECT_PATH)?
            .build()
            .await?;
        proxy.introspect().await
    })
    .expect("introspect mfad");
    let shipped_path = workspace_root().join("packaging/dbus/org.pam_mfa.Mfad1.xml");
    let shipped = std::fs::read_to_string(&shipped_path).expect("shipped XML");
    let served = our_interfaces(&served);
    assert_eq!(served.len(), 3, "Login1, Factors1, Admin1");
    // MFA_BLESS=1 rewrites the shipped file from what mfad serves (after a
    // deliberate change of the contract); review the diff before committing.
    if std::env::var_os("MFA_BLESS").is_some() {
        let start = shipped
            .find("<interface name=\"org.pam_mfa.")
            .expect("first");
        let end = shipped.rfind("</interface>").expect("last") + "</interface>".len();
        let blessed = format!(
            "{}{}{}",
            &shipped[..start],
            served.join("\n  "),
            &shipped[end..]
        );
        std::fs::write(&shipped_path, blessed).expect("write shipped XML");
        return;
    }
    assert_eq!(
        served,
        our_interfaces(&shipped),
        "{} is out of date; mfad serves:\n{}",
        shipped_path.display(),
        served.join("\n")
    );
    for name in [
        mfa_dbus::LOGIN_INTERFACE,
        mfa_dbus::FACTORS_INTERFACE,
        mfa_dbus::ADMIN_INTERFACE,
    ] {
        assert!(
            shipped.contains(&format!("<interface name=\"{name}\">")),
            "{name}"
        );
    }
}
