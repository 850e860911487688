//! pam_mfa(8) prints the return-code table; it must be the one the code uses.
//! Regenerate the man page section with
//! `cargo run -q -p pam_mfa --example outcome_table`.

#[test]
fn man_page_has_the_current_return_code_table() {
    let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/man/pam_mfa.8");
    let text = std::fs::read_to_string(&page).expect("packaging/man/pam_mfa.8");
    let table = pam_mfa::outcome::table();
    assert!(
        text.contains(&table),
        "the RETURN VALUES table in {} is out of date; it must contain:\n{table}",
        page.display()
    );
}
