//! `DomainAction::parse` on arbitrary text: it must never panic, and an envelope it accepts must
//! survive `to_json` → `parse` unchanged (what a worker re-publishes or dead-letters is what it read).
#![no_main]

use common::envelope::DomainAction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(action) = DomainAction::parse(text) else {
        return;
    };
    let _ = action.service();
    let _ = action.is_expired(action.timestamp);
    let again = DomainAction::parse(&action.to_json());
    assert_eq!(again.as_ref(), Ok(&action), "round trip changed the envelope: {text}");
});
