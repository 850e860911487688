//! Print the return-code table for pam_mfa(8):
//! `cargo run -q -p pam_mfa --example outcome_table`.

fn main() {
    print!("{}", pam_mfa::outcome::table());
}
