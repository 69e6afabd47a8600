//! Query-string parameters, parsed into typed values with one-line reasons for a 400.
//!
//! Only what framecast's endpoints take is parsed here; unknown parameters are ignored, as
//! browsers and players add their own (cache busters and the like).

use std::ops::RangeInclusive;

/// The range `?fps=` accepts: a viewer may ask for fewer frames, from one a second up.
pub const FPS_RANGE: RangeInclusive<u32> = 1..=120;

/// A bad parameter: its name, the value as sent, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad query parameter {name}={value:?}: expected {expected}")]
pub struct QueryError {
    pub name: String,
    pub value: String,
    pub expected: String,
}

/// The first value of `name` in `query` (without the `?`), decoded as
/// application/x-www-form-urlencoded (`%XX` escapes, `+` as space); `None` if absent. A
/// malformed escape is kept as it is, so it fails the typed parse with the value the client sent.
pub fn lookup(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// `?fps=N`: a per-viewer frame-rate cap.
pub fn fps_cap(query: &str) -> Result<Option<u32>, QueryError> {
    let Some(value) = lookup(query, "fps") else {
        return Ok(None);
    };
    match value.parse::<u32>() {
        Ok(fps) if FPS_RANGE.contains(&fps) => Ok(Some(fps)),
        _ => Err(QueryError {
            name: "fps".into(),
            value,
            expected: format!(
                "a whole number of frames per second from {} to {}",
                FPS_RANGE.start(),
                FPS_RANGE.end()
            ),
        }),
    }
}

/// `?after=SEQ`: wait for a frame newer than sequence number SEQ.
pub fn after_seq(query: &str) -> Result<Option<u64>, QueryError> {
    let Some(value) = lookup(query, "after") else {
        return Ok(None);
    };
    value.parse::<u64>().map(Some).map_err(|_| QueryError {
        name: "after".into(),
        value,
        expected: "a frame sequence number (a whole number, 0 or more)".into(),
    })
}

/// mjpg-streamer's `?action=`, which OctoPrint, Klipper front ends and Home Assistant put in
/// their default camera URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Stream,
    Snapshot,
}

/// `?action=stream` or `?action=snapshot`; `None` if absent.
pub fn action(query: &str) -> Result<Option<Action>, QueryError> {
    let Some(value) = lookup(query, "action") else {
        return Ok(None);
    };
    match value.as_str() {
        "stream" => Ok(Some(Action::Stream)),
        "snapshot" => Ok(Some(Action::Snapshot)),
        _ => Err(QueryError {
            name: "action".into(),
            value,
            expected: "`stream` or `snapshot` (mjpg-streamer's actions)".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fps_cap_accepts_its_range_and_nothing_else() {
        assert_eq!(fps_cap(""), Ok(None));
        assert_eq!(fps_cap("x=1"), Ok(None));
        assert_eq!(fps_cap("fps=5"), Ok(Some(5)));
        assert_eq!(fps_cap("a=b&fps=120"), Ok(Some(120)));
        assert_eq!(fps_cap("fps=%31%30"), Ok(Some(10)));
        for bad in [
            "fps=abc", "fps=0", "fps=121", "fps=-1", "fps=", "fps", "fps=1.5", "fps=%zz",
        ] {
            let err = fps_cap(bad).unwrap_err();
            assert_eq!(err.name, "fps", "{bad}");
            let line = err.to_string();
            assert!(!line.contains('\n') && line.contains("fps"), "{line}");
        }
    }

    #[test]
    fn after_seq_takes_non_negative_whole_numbers() {
        assert_eq!(after_seq("after=0"), Ok(Some(0)));
        assert_eq!(after_seq("after=18446744073709551615"), Ok(Some(u64::MAX)));
        for bad in [
            "after=-1",
            "after=x",
            "after=18446744073709551616",
            "after=",
        ] {
            assert!(after_seq(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn actions_are_mjpg_streamers_two() {
        assert_eq!(action(""), Ok(None));
        assert_eq!(action("action=stream"), Ok(Some(Action::Stream)));
        assert_eq!(action("action=snapshot&x=1"), Ok(Some(Action::Snapshot)));
        for bad in ["action=", "action=Stream", "action=take_picture"] {
            let err = action(bad).unwrap_err();
            assert_eq!(err.name, "action", "{bad}");
        }
    }

    #[test]
    fn the_first_value_wins_and_escapes_decode() {
        assert_eq!(lookup("fps=1&fps=2", "fps").as_deref(), Some("1"));
        assert_eq!(lookup("a%20b=c+d", "a b").as_deref(), Some("c d"));
        assert_eq!(lookup("x=%", "x").as_deref(), Some("%"));
        assert_eq!(lookup("x=%4", "x").as_deref(), Some("%4"));
        assert_eq!(lookup("x=%e2%82%ac", "x").as_deref(), Some("€"));
    }
}
