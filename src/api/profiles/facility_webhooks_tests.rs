//! Unit tests of `api/profiles/facility_webhooks.rs`.

use super::*;
use serde_json::json;

fn check(v: Value) -> (Vec<String>, Vec<String>) {
    let mut r = Vec::new();
    let out = take_plain_secrets(&mut json!({ "secrets": v }), &mut r);
    (out.iter().map(|s| s.expose().to_owned()).collect(), r)
}

#[test]
fn plain_secret_rules() {
    let seed = [
        "sDV1aKqitCLClI12m7UPFbAAvZfZquJw",
        "mryefgHPBVHJwux0o3BYW7hPM0BZlcCa",
    ];
    assert_eq!(
        check(json!(seed)),
        (seed.map(str::to_owned).to_vec(), vec![])
    );
    assert_eq!(check(json!([])), (vec![], vec![]));
    assert_eq!(check(json!(null)), (vec![], vec![]));
    assert_eq!(check(json!("x")).1, ["secrets must be an array"]);
    let (_, r) = check(json!([
        "short",
        "x".repeat(65),
        "tab\tinside-sixteen-chars",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        7
    ]));
    assert_eq!(
        r,
        [
            "secrets must contain no more than 2 elements".to_owned(),
            "secrets[0] must be 16 to 64 characters long".to_owned(),
            "secrets[1] must be 16 to 64 characters long".to_owned(),
            "secrets[2] must contain only printable ASCII characters".to_owned(),
            "secrets[3] must not start with \"whsec_\" (that marks a base64 Standard \
             Webhooks secret: register it through /v1/webhooks, or send a plain secret)"
                .to_owned(),
            "secrets[4] must be a string".to_owned(),
        ]
    );
    let (_, r) = check(json!([seed[0], seed[0]]));
    assert_eq!(r, ["secrets must not contain the same secret twice"]);
    let sixteen = "a b~c!d\"e#f$g%h&";
    assert_eq!(check(json!([sixteen])).1, Vec::<String>::new());
}
