//! Fuzzes the `Authorization` header parser (HTTP Basic, RFC 7617; Bearer, RFC 6750) with
//! arbitrary bytes, as any client can send them.
//!
//! Beyond "never panics": accepted Basic credentials encode back to a header that parses to
//! the same user and password; an accepted Bearer token is only RFC 6750 b64token characters;
//! neither error text nor `Debug` ever quotes the secret.

#![no_main]

use framecast::access::credentials::{Credentials, basic_header, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Credentials::Basic { user, password }) => {
            assert!(!user.contains(':'));
            let again = parse(basic_header(&user, &password).as_bytes());
            let same = matches!(&again, Ok(Credentials::Basic { user: u, password: p })
                if *u == user && *p == password);
            assert!(same, "{again:?}");
            // Debug names the user only.
            assert_eq!(
                format!("{:?}", parse(data)),
                format!("Ok(Basic {{ user: {user:?}, .. }})")
            );
        }
        Ok(Credentials::Bearer { token }) => {
            assert!(!token.is_empty());
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)),
                "{token}"
            );
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
