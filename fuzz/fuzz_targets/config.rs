//! Fuzzes the config parser: any text (and any `HOOKBOX_*` override) yields a
//! config or a `ConfigError`, never a panic.
#![no_main]

use hookbox::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Config::from_toml(&text, &[]);
    // The same text as an environment override of a few keys.
    for key in [
        "HOOKBOX_LISTEN",
        "HOOKBOX_MAX_BODY_BYTES",
        "HOOKBOX_ALLOW_NETWORKS",
    ] {
        let _ = Config::from_toml("", &[(key.to_owned(), text.clone().into_owned())]);
    }
});
