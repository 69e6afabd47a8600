//! Fuzzes the signed-link check with arbitrary request paths and queries.
//!
//! The input as text: up to its first line break the path, the rest the query. Beyond "never
//! panics": a query without `exp` and `sig` is no link; an error reads as one line; whatever
//! verifies carries exactly `exp=…&sig=…` and a signature that is the one `sign` makes for the
//! path (or for its stream's `live.m3u8`); a link made by `sign` for the path verifies with any
//! of the input's other parameters around it, and fails once expired.

#![no_main]

use framecast::access::signed_link::{
    EXPIRY_PARAM, SIGNATURE_PARAM, hls_scope, parse_link_params, sign, verify,
};
use framecast::access::signing_key::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = text.split_once('\n').unwrap_or((text, ""));
    let Some(key) = SigningKey::from_bytes(&[0x42; 32]) else {
        return;
    };
    let parsed = parse_link_params(query);
    let has_params = query.split('&').any(|pair| {
        pair.split('=')
            .next()
            .is_some_and(|n| n == EXPIRY_PARAM || n == SIGNATURE_PARAM)
    });
    if !has_params {
        assert_eq!(parsed, Ok(None), "no link parameters, no link");
    }
    match verify(&key, path, query, 1_000) {
        Ok(grant) => {
            let expected = [Some(path.to_owned()), hls_scope(path)]
                .into_iter()
                .flatten()
                .map(|signed| sign(&key, &signed, grant.expires_at_unix))
                .collect::<Vec<_>>();
            assert!(expected.contains(&grant.query), "{:?}", grant.query);
            assert!(grant.expires_at_unix > 1_000);
        }
        Err(error) => assert!(!error.to_string().contains('\n')),
    }
    // A real link for this path, among the input's other parameters.
    let others: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            name != EXPIRY_PARAM && name != SIGNATURE_PARAM
        })
        .collect();
    let link = sign(&key, path, 5_000);
    let with_others = format!("{}&{link}", others.join("&"));
    let grant = verify(&key, path, &with_others, 4_999)
        .unwrap_or_else(|e| panic!("a made link is refused: {e}: {with_others}"));
    assert_eq!(grant.query, link);
    assert!(verify(&key, path, &with_others, 5_000).is_err(), "expired");
});
