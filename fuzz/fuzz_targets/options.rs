//! pam_mfa.so's module arguments, as written on the PAM line. An argument
//! cannot hold a NUL (argv is C strings), so NUL separates them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mfa::options::{Options, MAX_TIMEOUT_SECS};

fuzz_target!(|data: &[u8]| {
    let args: Vec<&[u8]> = if data.is_empty() {
        Vec::new()
    } else {
        data.split(|&b| b == 0).collect()
    };
    match Options::parse(args.iter().copied()) {
        Ok(o) => {
            assert!((1..=MAX_TIMEOUT_SECS).contains(&o.timeout.as_secs()));
            assert!(o.max_tries.is_none_or(|n| (1..=10).contains(&n)));
            let path = o.bus.strip_prefix("unix:path=/").expect("unix:path=/");
            assert!(path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_/.".contains(&b)));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
